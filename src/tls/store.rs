//! The certificate store rustls consults on every handshake.
//!
//! [`CertStore`] implements `ResolvesServerCert` over an `ArcSwap<CertMap>`:
//! lookups are lock-free; [`CertStore::swap`] replaces the whole map at once
//! (reload, renewal) without touching open connections. [`SniCapture`] records
//! the SNI a connection used, so the proxy can tell a Host header that does not
//! belong to the connection's certificate (421, RFC 9110 §15.5.20).

use super::{CertInfo, LoadedCert, ensure_self_signed, load_pem_pair};
use crate::config::Config;
use crate::config::diag::Diagnostic;
use crate::config::model::{HostPattern, TlsSource};
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::listeners::TlsAccept;
use pingora::protocols::tls::TlsRef;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

/// Host name -> certificate, built whole and swapped whole.
#[derive(Debug, Default)]
pub struct CertMap {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    fallback: Option<Arc<CertifiedKey>>,
    /// Per TLS site: its name and what its certificate says (status API).
    pub sites: Vec<(String, CertInfo)>,
}

impl CertMap {
    /// The certificate for an SNI name; clients without SNI (or with a name
    /// no site has) get the default site's certificate, like nginx's default
    /// server, so that IP-address access still completes a handshake.
    pub fn lookup(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = sni {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if let Some(k) = self.exact.get(&name) {
                return Some(k.clone());
            }
            if let Some(dot) = name.find('.')
                && let Some(k) = self.wildcard.get(&name[dot..])
            {
                return Some(k.clone());
            }
        }
        self.fallback.clone()
    }
}

/// Loads every site certificate of `config`. With `generate`, self-signed
/// certificates are created as needed (at start and reload); without it
/// (`greenlight check`) they are skipped. Problems name the site's `tls:` line.
///
/// `acme` holds the latest ACME certificate of each `tls: acme` site; a site
/// without one yet is served a temporary self-signed certificate, so start-up
/// never waits for a CA.
pub fn build_cert_map(
    config: &Config,
    generate: bool,
    acme: &HashMap<String, LoadedCert>,
) -> Result<CertMap, Vec<Diagnostic>> {
    let mut map = CertMap::default();
    let mut problems = Vec::new();
    for site in &config.sites {
        let Some(src) = &site.tls else { continue };
        let loaded = match src {
            TlsSource::Files { cert, key } => load_pem_pair(cert, key),
            TlsSource::SelfSigned if generate => {
                let names: Vec<String> = site
                    .hosts
                    .iter()
                    .filter_map(HostPattern::cert_name)
                    .collect();
                ensure_self_signed(&config.certs_dir, &site.name, &names)
            }
            TlsSource::SelfSigned => continue,
            TlsSource::Acme => match acme.get(&site.name) {
                Some(c) => Ok(c.clone()),
                None if generate => {
                    let names: Vec<String> = site
                        .hosts
                        .iter()
                        .filter_map(HostPattern::cert_name)
                        .collect();
                    ensure_self_signed(&config.certs_dir, &site.name, &names)
                }
                None => continue,
            },
        };
        let loaded = match loaded {
            Ok(l) => l,
            Err(e) => {
                problems.push(Diagnostic {
                    origin: site.tls_origin.clone(),
                    what: format!("site '{}': {e}", site.name),
                    fix: "fix the certificate files, or use `tls: self_signed` for development"
                        .into(),
                });
                continue;
            }
        };
        for h in &site.hosts {
            match h {
                HostPattern::Exact(n) => map.exact.insert(n.clone(), loaded.key.clone()),
                HostPattern::Wildcard(s) => map.wildcard.insert(s.clone(), loaded.key.clone()),
                // Routing-only forms: no certificate names them.
                HostPattern::TrailingWildcard(_) | HostPattern::Regex(_) => None,
            };
        }
        if site.default.covers(true) || map.fallback.is_none() {
            map.fallback = Some(loaded.key.clone());
        }
        map.sites.push((site.name.clone(), loaded.info));
    }
    if problems.is_empty() {
        Ok(map)
    } else {
        Err(problems)
    }
}

/// The SNI resolver shared by every TLS listener.
#[derive(Default)]
pub struct CertStore {
    map: ArcSwap<CertMap>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore")
            .field("map", &self.map)
            .finish_non_exhaustive()
    }
}

impl CertStore {
    /// A store serving `map`.
    pub fn new(map: CertMap) -> CertStore {
        CertStore {
            map: ArcSwap::from_pointee(map),
            metrics: None,
        }
    }

    /// Counts handshakes refused for want of a certificate.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> CertStore {
        self.metrics = Some(metrics);
        self
    }

    /// Replaces every certificate at once.
    pub fn swap(&self, map: CertMap) {
        self.map.store(Arc::new(map));
    }

    /// The current map (for status output).
    pub fn current(&self) -> Arc<CertMap> {
        self.map.load_full()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let found = self.map.load().lookup(hello.server_name());
        if found.is_none()
            && let Some(m) = &self.metrics
        {
            m.tls_handshake_failed(crate::metrics::TlsFailure::NoCertificate);
        }
        found
    }
}

/// The SNI of a TLS connection, attached to its digest by [`SniCapture`].
#[derive(Debug, Clone)]
pub struct SniName(pub String);

/// Pingora TLS callback that stores the client's SNI with the connection.
pub struct SniCapture;

#[async_trait]
impl TlsAccept for SniCapture {
    async fn handshake_complete_callback(
        &self,
        tls: &TlsRef,
    ) -> Option<Arc<dyn Any + Send + Sync>> {
        tls.server_name()
            .map(|n| Arc::new(SniName(n.to_ascii_lowercase())) as Arc<dyn Any + Send + Sync>)
    }
}
