//! The running state: one immutable [`Snapshot`] behind one `ArcSwap`, and the
//! [`StateHandle`], its only writer.
//!
//! A request loads the snapshot once (`StateHandle::load`) into its context and
//! uses that `Arc` for its whole life, so a swap never changes a request
//! half-way and never blocks it. Writers (start, reload, switch) build a
//! complete new snapshot first — router, pools, certificates — and only then
//! swap; if any part fails, nothing is swapped. Writers are serialised by a
//! mutex that no request ever takes.

use crate::config::diag::Diagnostic;
use crate::config::{Config, ConfigError, ConfigSource};
use crate::proxy::route::Router;
use crate::tls::{CertMap, CertStore, build_cert_map};
use crate::upstream::Upstream;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Everything a request needs, frozen at one config generation.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases by one on every successful apply.
    pub generation: u64,
    /// The validated configuration.
    pub config: Arc<Config>,
    /// Host + path routing.
    pub router: Router,
    /// Upstreams, indexed as the router's decisions.
    pub upstreams: Vec<Arc<Upstream>>,
}

impl Snapshot {
    /// Builds a snapshot from `config`, reusing unchanged pools of `previous`.
    pub fn build(config: Config, generation: u64, previous: Option<&Snapshot>) -> Snapshot {
        let index: HashMap<String, usize> = config
            .upstreams
            .iter()
            .enumerate()
            .map(|(i, u)| (u.name.clone(), i))
            .collect();
        let upstreams = config
            .upstreams
            .iter()
            .map(|u| {
                let prev = previous.and_then(|p| p.upstream(&u.name));
                Arc::new(Upstream::build(u, prev.map(|a| a.as_ref())))
            })
            .collect();
        Snapshot {
            generation,
            router: Router::build(&config, &index),
            config: Arc::new(config),
            upstreams,
        }
    }

    /// The upstream called `name`.
    pub fn upstream(&self, name: &str) -> Option<&Arc<Upstream>> {
        self.upstreams.iter().find(|u| u.config.name == name)
    }
}

/// Why a new configuration was not applied (the old one keeps serving).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The file could not be read or is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Certificates could not be loaded.
    #[error("{}", crate::config::diag::render(.0).trim_end())]
    Certificates(Vec<Diagnostic>),
}

impl ApplyError {
    /// Every problem as a diagnostic line.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        match self {
            ApplyError::Config(c) => c.diagnostics(),
            ApplyError::Certificates(d) => d.clone(),
        }
    }
}

/// The cloneable control surface of the running state.
#[derive(Clone)]
pub struct StateHandle {
    inner: Arc<Inner>,
}

struct Inner {
    current: ArcSwap<Snapshot>,
    certs: Arc<CertStore>,
    source: ConfigSource,
    writer: Mutex<()>,
}

impl StateHandle {
    /// Loads the configuration and certificates for the first time.
    pub fn start(source: ConfigSource) -> Result<StateHandle, ApplyError> {
        let config = source.load()?;
        let certs = build_cert_map(&config, true).map_err(ApplyError::Certificates)?;
        Ok(StateHandle::from_parts(source, config, certs))
    }

    /// Assembles a handle from an already validated config and certificates.
    pub fn from_parts(source: ConfigSource, config: Config, certs: CertMap) -> StateHandle {
        let snapshot = Snapshot::build(config, 1, None);
        StateHandle {
            inner: Arc::new(Inner {
                current: ArcSwap::from_pointee(snapshot),
                certs: Arc::new(CertStore::new(certs)),
                source,
                writer: Mutex::new(()),
            }),
        }
    }

    /// The current snapshot; a request calls this once.
    pub fn load(&self) -> Arc<Snapshot> {
        self.inner.current.load_full()
    }

    /// The SNI certificate resolver shared by the TLS listeners.
    pub fn cert_store(&self) -> Arc<CertStore> {
        self.inner.certs.clone()
    }

    /// Where the configuration is read from.
    pub fn source(&self) -> &ConfigSource {
        &self.inner.source
    }

    /// Builds everything from `config` and swaps it in, or changes nothing.
    pub fn apply(&self, config: Config) -> Result<Arc<Snapshot>, ApplyError> {
        let _writer = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let certs = build_cert_map(&config, true).map_err(ApplyError::Certificates)?;
        let old = self.inner.current.load_full();
        let next = Arc::new(Snapshot::build(config, old.generation + 1, Some(&old)));
        self.inner.certs.swap(certs);
        self.inner.current.store(next.clone());
        Ok(next)
    }
}
