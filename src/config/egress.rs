//! Where a non-admin user's adapter may send requests: never to the operator's own network
//! (loopback, private, link-local and cloud-metadata addresses, and their IPv6 kin) unless
//! the server config allow-lists the address or host (`private_sources_allowed`). Checked
//! when the adapter is created or edited and again on every connect, against the address the
//! name resolved to then, so a DNS answer that changes later (rebinding) is caught.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What the operator allows despite being private: networks (`10.1.2.0/24`, `127.0.0.1`)
/// and host names (`llm.internal`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    pub networks: Vec<IpNet>,
    pub hosts: Vec<String>,
}

impl EgressPolicy {
    /// Parses the `private_sources_allowed` entries: a CIDR, an address, or a host name.
    pub fn parse(entries: &[String]) -> Result<EgressPolicy, String> {
        let mut policy = EgressPolicy::default();
        for entry in entries {
            let entry = entry.trim();
            if let Ok(net) = entry.parse::<IpNet>() {
                policy.networks.push(net);
            } else if let Ok(ip) = entry.parse::<IpAddr>() {
                // `::ffff:10.0.0.1` is 10.0.0.1, as `refusal` sees it.
                policy.networks.push(IpNet::from(canonical(ip)));
            } else if !entry.is_empty() && !entry.contains(['/', ' ']) {
                policy.hosts.push(entry.to_ascii_lowercase());
            } else {
                return Err(format!(
                    "private_sources_allowed: `{entry}` is not an address, network or host name"
                ));
            }
        }
        Ok(policy)
    }

    /// Why a connection to `ip` (reached through `host`) is refused for a non-admin's
    /// adapter, or `None` when it is allowed.
    pub fn refusal(&self, host: &str, ip: IpAddr) -> Option<String> {
        let (given, ip) = (ip, canonical(ip));
        // An allowed IPv6 network of IPv4-mapped addresses allows them as written too.
        if !is_internal(ip)
            || self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
            || self
                .networks
                .iter()
                .any(|n| n.contains(&ip) || n.contains(&given))
        {
            return None;
        }
        Some(format!(
            "the source {host} resolves to {ip}, an internal address; only an admin may use \
             internal sources (or allow it in private_sources_allowed)"
        ))
    }
}

/// The IPv4 address an IPv6 address stands for, where it embeds one that a network on the
/// way may reach: IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d` (deprecated, but
/// stacks still route it), SIIT `::ffff:0:a.b.c.d`, 6to4 `2002:AABB:CCDD::/48`, NAT64
/// `64:ff9b::/96` and the local-use `64:ff9b:1::/48` (last 32 bits), and Teredo
/// `2001:0::/32` (the server's address in bits 32–63, the client's inverted in the last 32:
/// either internal makes the whole address internal, so both are returned by
/// [`embedded_v4`]).
fn embedded_v4(v6: Ipv6Addr) -> Vec<Ipv4Addr> {
    let s = v6.segments();
    let last = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let v4 = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, ..] => vec![last],
        // `::` and `::1` are IPv6's own unspecified and loopback addresses.
        [0, 0, 0, 0, 0, 0, hi, lo] if (hi, lo) != (0, 0) && (hi, lo) != (0, 1) => vec![last],
        [0, 0, 0, 0, 0xffff, 0, ..] => vec![last],
        [0x2002, hi, lo, ..] => vec![v4(hi, lo)],
        [0x64, 0xff9b, 0, 0, 0, 0, ..] => vec![last],
        [0x64, 0xff9b, 1, ..] => vec![last],
        [0x2001, 0, hi, lo, ..] => vec![v4(hi, lo), v4(!s[6], !s[7])],
        _ => Vec::new(),
    }
}

/// `::ffff:10.0.0.1` is 10.0.0.1 (the other embeddings are checked by [`is_internal`]).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Loopback, private, link-local (incl. 169.254.169.254 metadata), unspecified, CGNAT,
/// benchmarking, reserved, broadcast and multicast; for IPv6 also unique-local fc00::/7,
/// link-local fe80::/10, site-local fec0::/10, and every form that embeds an internal IPv4
/// address (see [`embedded_v4`]).
pub fn is_internal(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => internal_v6(v6) || embedded_v4(v6).into_iter().any(internal_v4),
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        // 198.18.0.0/15: benchmarking networks, used inside data centres.
        || (a == 198 && (b & 0xfe) == 18)
        // 240.0.0.0/4: reserved (and 255.255.255.255).
        || a >= 240
        // 192.0.0.0/24: IETF protocol assignments (DS-Lite, NAT64 discovery).
        || (a == 192 && b == 0 && c == 0)
}

fn internal_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first & 0xffc0) == 0xfec0
        // NAT64 prefixes can carry any IPv4 address: refused whole, whatever they embed.
        || ip.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
        || ip.segments()[..3] == [0x64, 0xff9b, 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_ranges() {
        for s in [
            "127.0.0.1",
            "127.9.9.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "::127.0.0.1",
            "::10.0.0.1",
            "::ffff:0:7f00:1",
            "::ffff:0:a00:1",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::",
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
            "2001:0:7f00:1::1",
            "198.18.0.1",
            "198.19.255.254",
            "240.0.0.1",
            "255.255.255.255",
            "192.0.0.8",
            "fec0::1",
            "64:ff9b:1::a00:1",
        ] {
            assert!(is_internal(ip(s)), "{s}");
        }
        for s in [
            "8.8.8.8",
            "172.32.0.1",
            "192.169.0.1",
            "2001:4860::8888",
            "1.1.1.1",
            "198.20.0.1",
            "2002:808:808::1",
            "2001:0:808:808:0:0:f7f7:f7f7",
        ] {
            assert!(!is_internal(ip(s)), "{s}");
        }
    }

    #[test]
    fn allow_list_by_network_and_host() {
        let p = EgressPolicy::parse(&["10.1.0.0/16".into(), "127.0.0.2".into(), "vllm.lan".into()])
            .unwrap();
        assert!(p.refusal("x", ip("10.1.3.4")).is_none());
        assert!(p.refusal("x", ip("10.2.3.4")).is_some());
        assert!(p.refusal("x", ip("127.0.0.2")).is_none());
        assert!(p.refusal("x", ip("127.0.0.1")).is_some());
        assert!(p.refusal("VLLM.lan", ip("192.168.0.9")).is_none());
        assert!(p.refusal("api.example.com", ip("93.184.216.34")).is_none());
        assert!(EgressPolicy::parse(&["not a host".into()]).is_err());
    }
}
