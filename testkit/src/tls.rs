//! Throwaway PKI for TLS tests: a CA and a leaf certificate it signs, valid for the given
//! host names plus `localhost` and `127.0.0.1`. Used for fake HTTPS providers and for
//! FlexiProxy's own TLS listener.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, date_time_ymd,
};

/// PEM material for one test CA and one server certificate.
#[derive(Clone, Debug)]
pub struct TestPki {
    /// The CA certificate: what clients must trust.
    pub ca_cert_pem: String,
    /// Leaf certificate followed by the CA certificate: what servers present.
    pub cert_chain_pem: String,
    /// The leaf's private key (PKCS#8).
    pub key_pem: String,
}

/// Make a CA and a leaf certificate signed by it for `hostnames` (names or IP addresses),
/// always including `localhost` and `127.0.0.1`. ECDSA P-256, valid 2024 to 2049.
pub fn test_ca_and_cert(hostnames: &[&str]) -> TestPki {
    let ca_key = KeyPair::generate().expect("generate CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.distinguished_name = name("FlexiProxy Test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut ca_params);
    let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign CA");
    let issuer = Issuer::new(ca_params, ca_key);

    let mut sans: Vec<String> = hostnames.iter().map(|h| h.to_string()).collect();
    for default in ["localhost", "127.0.0.1"] {
        if !sans.iter().any(|s| s == default) {
            sans.push(default.to_string());
        }
    }
    let leaf_key = KeyPair::generate().expect("generate leaf key");
    let mut leaf_params =
        CertificateParams::new(sans.clone()).expect("leaf params (bad host name?)");
    leaf_params.distinguished_name = name(&sans[0]);
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    leaf_params.use_authority_key_identifier_extension = true;
    set_validity(&mut leaf_params);
    let leaf_cert = leaf_params
        .signed_by(&leaf_key, &issuer)
        .expect("sign leaf certificate");

    TestPki {
        ca_cert_pem: ca_cert.pem(),
        cert_chain_pem: format!("{}{}", leaf_cert.pem(), ca_cert.pem()),
        key_pem: leaf_key.serialize_pem(),
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

fn set_validity(params: &mut CertificateParams) {
    // Before 2050 so the dates encode as UTCTime, which every TLS stack accepts.
    params.not_before = date_time_ymd(2024, 1, 1);
    params.not_after = date_time_ymd(2049, 12, 31);
}

impl TestPki {
    /// Write `ca.pem`, `cert.pem` (the chain) and `key.pem` into `dir`; returns their paths
    /// in that order. Handy for config files and `SSL_CERT_FILE` / `NODE_EXTRA_CA_CERTS`.
    pub fn write_to_dir(&self, dir: &Path) -> io::Result<(PathBuf, PathBuf, PathBuf)> {
        let ca = dir.join("ca.pem");
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&ca, &self.ca_cert_pem)?;
        std::fs::write(&cert, &self.cert_chain_pem)?;
        std::fs::write(&key, &self.key_pem)?;
        Ok((ca, cert, key))
    }

    /// A rustls client configuration (ring provider) that trusts only this CA.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.ca_cert_pem.as_bytes()) {
            roots
                .add(cert.expect("CA PEM"))
                .expect("add CA to root store");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }
}
