//! Certificates per TLS listener, for configs where some site has
//! `listeners:`.
//!
//! A TLS listener's SNI table is the sites on that listener: two TLS ports
//! may then give one name different certificates, and a client without SNI
//! gets that listener's default site's certificate (else its first TLS
//! site's), as nginx's default server per address:port does. The router
//! makes the same choice per listener for its 421 check
//! (`plan::router::listeners`). Without bound sites the table is empty and
//! every listener uses the shared map, as before.

use super::store::{CertMap, CertStore};
use crate::config::Config;
use crate::config::model::HostPattern;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::Arc;

/// The certificates of the sites on one listener.
#[derive(Debug, Default)]
pub struct ListenerCerts {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    fallback: Option<Arc<CertifiedKey>>,
}

/// Per listener of `config`, the certificates among `keys` (site index,
/// its key) of the sites on it; empty when no site has `listeners:`.
pub(super) fn build(config: &Config, keys: &[(usize, Arc<CertifiedKey>)]) -> Vec<ListenerCerts> {
    if config.sites.iter().all(|s| s.listeners.is_none()) {
        return Vec::new();
    }
    (0..config.listeners.len())
        .map(|l| {
            let mut c = ListenerCerts::default();
            for (i, key) in keys {
                let site = &config.sites[*i];
                if !site.listeners.as_ref().is_none_or(|ls| ls.contains(&l)) {
                    continue;
                }
                for h in &site.hosts {
                    match h {
                        HostPattern::Exact(n) => c.exact.insert(n.clone(), key.clone()),
                        HostPattern::Wildcard(s) => c.wildcard.insert(s.clone(), key.clone()),
                        HostPattern::TrailingWildcard(_) | HostPattern::Regex(_) => None,
                    };
                }
                if site.default.covers(true) || c.fallback.is_none() {
                    c.fallback = Some(key.clone());
                }
            }
            c
        })
        .collect()
}

impl CertMap {
    /// [`CertMap::lookup`] for a handshake on listener `listener`: its own
    /// sites' certificates when it has a table, else the shared map.
    pub fn lookup_on(&self, listener: usize, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let Some(c) = self.by_listener.get(listener) else {
            return self.lookup(sni);
        };
        if let Some(name) = sni {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if let Some(k) = c.exact.get(&name) {
                return Some(k.clone());
            }
            if let Some(dot) = name.find('.')
                && let Some(k) = c.wildcard.get(&name[dot..])
            {
                return Some(k.clone());
            }
        }
        c.fallback.clone()
    }
}

/// The certificate resolver of one TLS listener: the shared store, asked
/// for that listener's certificates.
#[derive(Debug)]
pub struct ListenerResolver {
    store: Arc<CertStore>,
    listener: usize,
}

impl ListenerResolver {
    /// The resolver of listener `listener` (index into the config's
    /// listeners, fixed for the life of the process).
    pub fn new(store: Arc<CertStore>, listener: usize) -> ListenerResolver {
        ListenerResolver { store, listener }
    }
}

impl ResolvesServerCert for ListenerResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let map = self.store.current();
        if map.by_listener.is_empty() {
            return self.store.resolve(hello);
        }
        let found = map.lookup_on(self.listener, hello.server_name());
        if found.is_none() {
            self.store.count_no_certificate();
        }
        found
    }
}
