//! TLS for client-facing listeners: certificates from files, reloaded when the files change
//! (renewals, cert-manager) without a restart and without dropping connections. A new pair
//! that does not load — half-written, key not matching — is refused and the old one stays.

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{ClientHello, CryptoProvider, ResolvesServerCert};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A certificate and key that can be swapped while the listener runs.
#[derive(Debug)]
pub struct ReloadingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: ArcSwap<CertifiedKey>,
    /// The file contents the current pair was built from.
    loaded_from: Mutex<(Vec<u8>, Vec<u8>)>,
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn certified_key(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, String> {
    pingora::tls::install_default_crypto_provider();
    let loaded = pingora::tls::load_certs_and_key_files(
        &cert_path.display().to_string(),
        &key_path.display().to_string(),
    )
    .map_err(|e| {
        format!(
            "cannot load {} / {}: {e}",
            cert_path.display(),
            key_path.display()
        )
    })?;
    let Some((certs, key)) = loaded else {
        return Err(format!(
            "{} / {}: no certificate or no private key found",
            cert_path.display(),
            key_path.display()
        ));
    };
    let provider = CryptoProvider::get_default()
        .ok_or_else(|| "no TLS crypto provider installed".to_owned())?;
    CertifiedKey::from_der(certs, key, provider)
        .map_err(|e| format!("{} / {}: {e}", cert_path.display(), key_path.display()))
}

impl ReloadingCert {
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Arc<ReloadingCert>, String> {
        let contents = (read(cert_path)?, read(key_path)?);
        let key = certified_key(cert_path, key_path)?;
        Ok(Arc::new(ReloadingCert {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            current: ArcSwap::from_pointee(key),
            loaded_from: Mutex::new(contents),
        }))
    }

    /// Reloads when either file changed; `Ok(true)` when a new pair went live.
    pub fn reload_if_changed(&self) -> Result<bool, String> {
        let contents = (read(&self.cert_path)?, read(&self.key_path)?);
        let mut loaded = crate::lock(&self.loaded_from);
        if *loaded == contents {
            return Ok(false);
        }
        // Record the attempt either way, so a broken pair is reported once, not every second.
        *loaded = contents;
        let key = certified_key(&self.cert_path, &self.key_path)?;
        self.current.store(Arc::new(key));
        Ok(true)
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// Checks the certificate files every second.
pub struct CertWatcher {
    pub certs: Vec<Arc<ReloadingCert>>,
}

#[async_trait]
impl BackgroundService for CertWatcher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => {
                    for cert in &self.certs {
                        match cert.reload_if_changed() {
                            Ok(true) => tracing::info!(cert = %cert.cert_path.display(), "TLS certificate reloaded"),
                            Ok(false) => {}
                            Err(e) => tracing::error!("TLS certificate not reloaded, the previous one stays: {e}"),
                        }
                    }
                }
            }
        }
    }
}
