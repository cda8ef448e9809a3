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
                policy.networks.push(IpNet::from(ip));
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
        let ip = canonical(ip);
        if !is_internal(ip)
            || self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
            || self.networks.iter().any(|n| n.contains(&ip))
        {
            return None;
        }
        Some(format!(
            "the source {host} resolves to {ip}, an internal address; only an admin may use \
             internal sources (or allow it in private_sources_allowed)"
        ))
    }
}

/// `::ffff:10.0.0.1` is 10.0.0.1.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Loopback, private, link-local (incl. 169.254.169.254 metadata), unspecified, CGNAT,
/// broadcast and multicast; for IPv6 also unique-local fc00::/7 and link-local fe80::/10.
pub fn is_internal(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => internal_v6(v6),
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
}

fn internal_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        // NAT64 well-known prefix: it can carry any IPv4 address, internal ones too.
        || ip.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
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
        ] {
            assert!(is_internal(ip(s)), "{s}");
        }
        for s in [
            "8.8.8.8",
            "172.32.0.1",
            "192.169.0.1",
            "2001:4860::8888",
            "1.1.1.1",
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
