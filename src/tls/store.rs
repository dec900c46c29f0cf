//! The certificate store rustls consults on every handshake.
//!
//! [`CertStore`] implements `ResolvesServerCert` over an `ArcSwap<CertMap>`:
//! lookups are lock-free; [`CertStore::swap`] replaces the whole map at once
//! (reload, renewal) without touching open connections. [`SniCapture`] records
//! the SNI a connection used, so the proxy can tell a Host header that does not
//! belong to the connection's certificate (421, RFC 9110 §15.5.20), and the
//! client certificate it sent when asked (`client_auth:`).

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
    /// The `client_auth:` of every TLS site that has one: while any does,
    /// the listeners ask clients for a certificate.
    pub client_auth: Vec<Arc<super::client_auth::ClientAuth>>,
    /// Per listener, when some site has `listeners:` (empty otherwise):
    /// the certificates of the sites on it (`super::listener_certs`).
    pub(super) by_listener: Vec<super::listener_certs::ListenerCerts>,
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
    // (site index, its key), for the per-listener tables.
    let mut keys = Vec::new();
    for (i, site) in config.sites.iter().enumerate() {
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
                    ensure_self_signed(&config.certs_dir, &site.name, &site.acme_cert_names())
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
        // `tls: {acme: [names]}`: those names (a catch-all site's) get it too.
        for n in &site.acme_names {
            map.exact
                .entry(n.clone())
                .or_insert_with(|| loaded.key.clone());
        }
        if site.default.covers(true) || map.fallback.is_none() {
            map.fallback = Some(loaded.key.clone());
        }
        keys.push((i, loaded.key.clone()));
        map.sites.push((site.name.clone(), loaded.info));
        map.client_auth.extend(site.client_auth.clone());
    }
    map.by_listener = super::listener_certs::build(config, &keys);
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
    /// The listeners' client-certificate request, set with every map.
    client_auth: Arc<super::client_auth::ClientAuthOffer>,
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
        let client_auth = Arc::new(super::client_auth::ClientAuthOffer::default());
        client_auth.set(map.client_auth.iter().map(|a| &**a));
        CertStore {
            map: ArcSwap::from_pointee(map),
            metrics: None,
            client_auth,
        }
    }

    /// Counts handshakes refused for want of a certificate.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> CertStore {
        self.metrics = Some(metrics);
        self
    }

    /// Replaces every certificate at once.
    pub fn swap(&self, map: CertMap) {
        self.client_auth.set(map.client_auth.iter().map(|a| &**a));
        self.map.store(Arc::new(map));
    }

    /// The rustls client-certificate verifier every TLS listener installs:
    /// it asks for a certificate only while the current map has a site
    /// with `client_auth:`.
    pub fn client_verifier(&self) -> Arc<super::client_auth::ClientAuthOffer> {
        self.client_auth.clone()
    }

    /// The current map (for status output).
    pub fn current(&self) -> Arc<CertMap> {
        self.map.load_full()
    }
}

impl CertStore {
    /// Counts a handshake refused for want of a certificate.
    pub(super) fn count_no_certificate(&self) {
        if let Some(m) = &self.metrics {
            m.tls_handshake_failed(crate::metrics::TlsFailure::NoCertificate);
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let found = self.map.load().lookup(hello.server_name());
        if found.is_none() {
            self.count_no_certificate();
        }
        found
    }
}

/// What greenlight keeps of a TLS handshake, attached to the connection's
/// digest by [`SniCapture`]: the client's SNI, and the certificate it sent
/// when the listener asked for one (some site has `client_auth:`).
#[derive(Debug, Clone, Default)]
pub struct SniName {
    /// The SNI, lower-case; `None` when the client sent none.
    pub name: Option<String>,
    /// The client's certificate chain, read once.
    pub client_cert: Option<Arc<super::client_cert::PeerCert>>,
}

/// Pingora TLS callback that stores the client's SNI (and certificate) with
/// the connection.
pub struct SniCapture;

#[async_trait]
impl TlsAccept for SniCapture {
    async fn handshake_complete_callback(
        &self,
        tls: &TlsRef,
    ) -> Option<Arc<dyn Any + Send + Sync>> {
        let name = tls.server_name().map(str::to_ascii_lowercase);
        let client_cert = tls
            .peer_cert_chain_der()
            .and_then(super::client_cert::PeerCert::new)
            .map(Arc::new);
        if name.is_none() && client_cert.is_none() {
            return None;
        }
        Some(Arc::new(SniName { name, client_cert }) as Arc<dyn Any + Send + Sync>)
    }
}
