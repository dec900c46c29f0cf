//! Fleet mode (`cluster:`): several greenlight instances switch, drain and say
//! "safe to stop" together, coordinated through etcd.
//!
//! greenlight writes no consensus of its own: etcd's transactions make a
//! switch compare-and-swap, its watches carry a switch to every member, and
//! its leases keep each member's status key only while the member lives.
//! The request path never talks to etcd: [`ClusterService`] turns the watched
//! keys into the same state changes the admin API and SIGHUP make (an
//! active-pool choice re-applied on every reload, see [`switch::apply_remote`]),
//! so the snapshot stays the only thing a request reads.
//!
//! Keys under `cluster.prefix`:
//!
//! | key | value | written by |
//! |---|---|---|
//! | `<prefix>/active/<upstream>` | `{"pool": "green", "by": member, "requested_at": µs}` (a bare pool name is accepted too) | a switch, in one transaction compared against the revision the member last saw |
//! | `<prefix>/members/<id>` | the member's status ([`status::member_status`]), bound to its lease | each member, on change (an active pool's counts alone at most every 5 s, `service::ACTIVE_COUNTS_EVERY`) |
//! | `<prefix>/acme/lock/<site>/<lease>` | (etcd's Lock API) | the member ordering or checking `<site>`'s certificate, bound to the lock's own lease ([`acme_lock`]) |
//! | `<prefix>/acme/certs/<site>` | `{"directory", "names", "chain", "key", "serial", "not_after", "by"}`: PEM chain **and private key** | the member that ordered it, under the lock ([`acme`]); every member watches and installs it |
//! | `<prefix>/acme/account` | the ACME account file (`account.json`: URL **and private key**) | the first member that ordered, under the lock; the others adopt it before they order |
//! | `<prefix>/acme/challenges/<site>/<type>/<host>[/<token>]` | a challenge answer (`acme::ChallengeAnswer` JSON) | the orderer, bound to the lock's lease; every member serves it while it exists |
//! | `<prefix>/acme/backoff/<site>` | `{"failures", "next_attempt", "error", "by"}` | the orderer after a failed order (deleted by a success): no member orders before `next_attempt` |
//!
//! etcd unreachable: members keep serving their last state, a switch is
//! refused (a member never switches alone), the session is retried with
//! backoff, and on reconnection every member converges on the stored keys.

pub mod acme;
mod acme_lock;
mod acme_watch;
pub mod service;
pub mod status;
pub mod switch;

use crate::config::validate_cluster::ClusterConfig;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

pub use service::ClusterService;

/// How long one etcd request may take before the member calls etcd
/// unreachable (a switch is then refused).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// The live fleet-mode state of this member, shared by the watch service and
/// the admin API.
pub struct Cluster {
    /// The `cluster:` section.
    pub config: ClusterConfig,
    /// This member's id (`<host>:<admin port>`): its key under `members/`.
    pub id: String,
    /// The admin API address, published in the member's status.
    pub admin: String,
    client: Mutex<Option<etcd_client::Client>>,
    /// The etcd endpoint of the live session.
    endpoint: Mutex<String>,
    connected: AtomicBool,
    last_error: Mutex<String>,
    /// Per upstream: the `active/` key as last seen and applied.
    seen: Mutex<HashMap<String, Seen>>,
    /// The newest switch revision this member applied (0: none).
    applied_revision: AtomicI64,
    applied_at: AtomicI64,
    /// The revision and time (µs) of this member's last successful switch write.
    last_write: Mutex<Option<(i64, i64)>>,
    /// The etcd revision through which this member serves the fleet's
    /// challenge answers (-1: fleet ACME does not run here).
    acme_challenges: AtomicI64,
    /// Wakes the service to publish the member status now.
    pub(crate) status_changed: tokio::sync::Notify,
    metrics: Arc<crate::metrics::Metrics>,
}

/// One `active/<upstream>` key as a member last saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// The pool it names.
    pub pool: String,
    /// Its etcd mod revision.
    pub revision: i64,
}

impl Cluster {
    /// The fleet-mode state for `config`, published under `admin`'s port.
    pub fn new(
        config: ClusterConfig,
        admin: std::net::SocketAddr,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Arc<Cluster> {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_string());
        metrics.cluster_connected(false);
        Arc::new(Cluster {
            config,
            id: format!("{host}:{}", admin.port()),
            admin: admin.to_string(),
            client: Mutex::new(None),
            endpoint: Mutex::new(String::new()),
            connected: AtomicBool::new(false),
            last_error: Mutex::new("not connected yet".to_string()),
            seen: Mutex::new(HashMap::new()),
            applied_revision: AtomicI64::new(0),
            applied_at: AtomicI64::new(0),
            last_write: Mutex::new(None),
            acme_challenges: AtomicI64::new(-1),
            status_changed: tokio::sync::Notify::new(),
            metrics,
        })
    }

    /// The key of `upstream`'s active pool.
    pub fn active_key(&self, upstream: &str) -> String {
        format!("{}/active/{upstream}", self.config.prefix)
    }

    /// The prefix of every `active/` key.
    pub fn active_prefix(&self) -> String {
        format!("{}/active/", self.config.prefix)
    }

    /// The prefix of every member key.
    pub fn members_prefix(&self) -> String {
        format!("{}/members/", self.config.prefix)
    }

    /// Everything fleet ACME keeps under the prefix: `<prefix>/acme/`.
    pub fn acme_prefix(&self) -> String {
        format!("{}/acme/", self.config.prefix)
    }

    /// `<prefix>/acme/<rest>`.
    pub fn acme_key(&self, rest: &str) -> String {
        format!("{}{rest}", self.acme_prefix())
    }

    /// The revision through which this member serves the fleet's challenge
    /// answers (`None`: fleet ACME does not run here).
    pub fn acme_challenges_seen(&self) -> Option<i64> {
        let v = self.acme_challenges.load(Ordering::SeqCst);
        (v >= 0).then_some(v)
    }

    /// Records that the answers up to `revision` are served here, and has
    /// the member status say so now (the orderer waits for it).
    pub(crate) fn mark_acme_challenges(&self, revision: i64) {
        self.acme_challenges.fetch_max(revision, Ordering::SeqCst);
        self.status_changed.notify_one();
    }

    /// Whether the last etcd session is up.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    /// Why the member is disconnected (the last etcd error).
    pub fn last_error(&self) -> String {
        lock(&self.last_error).clone()
    }

    /// A client of the live session, `None` while disconnected.
    pub fn client(&self) -> Option<etcd_client::Client> {
        if !self.connected() {
            return None;
        }
        lock(&self.client).clone()
    }

    /// The etcd endpoint of the live (or last) session.
    pub fn endpoint(&self) -> String {
        lock(&self.endpoint).clone()
    }

    /// Marks the session up with `client`, talking to `endpoint`.
    fn set_connected(&self, client: etcd_client::Client, endpoint: &str) {
        *lock(&self.endpoint) = endpoint.to_string();
        *lock(&self.client) = Some(client);
        self.connected.store(true, Ordering::SeqCst);
        self.metrics.cluster_connected(true);
    }

    /// Marks the session down because of `why`; true if it was up.
    fn set_disconnected(&self, why: &str) -> bool {
        *lock(&self.last_error) = why.to_string();
        *lock(&self.client) = None;
        self.metrics.cluster_connected(false);
        self.connected.swap(false, Ordering::SeqCst)
    }

    /// The `active/` keys as last seen, by upstream.
    pub fn seen(&self) -> HashMap<String, Seen> {
        lock(&self.seen).clone()
    }

    pub(crate) fn seen_mut(&self) -> MutexGuard<'_, HashMap<String, Seen>> {
        lock(&self.seen)
    }

    /// Records that the switch at `revision` was applied now.
    pub(crate) fn mark_applied(&self, revision: i64) {
        self.applied_revision.fetch_max(revision, Ordering::SeqCst);
        self.applied_at
            .store(unix_micros(SystemTime::now()), Ordering::SeqCst);
        self.status_changed.notify_one();
    }

    /// The newest switch revision applied, and when (µs since the epoch).
    pub fn applied(&self) -> (i64, i64) {
        (
            self.applied_revision.load(Ordering::SeqCst),
            self.applied_at.load(Ordering::SeqCst),
        )
    }

    pub(crate) fn set_last_write(&self, revision: i64, at: SystemTime) {
        *lock(&self.last_write) = Some((revision, unix_micros(at)));
    }

    /// This member's last successful switch write: revision, time (µs).
    pub fn last_write(&self) -> Option<(i64, i64)> {
        *lock(&self.last_write)
    }
}

/// Microseconds since the Unix epoch (0 before it).
pub fn unix_micros(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs one etcd request with [`REQUEST_TIMEOUT`]; a timeout is an error.
pub(crate) async fn timed<T>(
    what: &str,
    fut: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!(
            "{what}: no answer from etcd in {REQUEST_TIMEOUT:?}"
        )),
    }
}
