//! The member's etcd session, for the life of the process: lease + status
//! key, converge on the stored `active/` keys, watch them, keep the lease
//! alive. Any failure ends the session: the member is `disconnected` (log,
//! metric, `/api/cluster`), keeps serving its last state, and retries with
//! backoff; the next session converges on whatever etcd holds then.
//!
//! With fleet ACME (`acme:` and `cluster:` both set) the session also
//! converges on and watches `<prefix>/acme/` ([`FleetAcme::start_watch`],
//! `acme_watch.rs`): certificates stored by other members and their
//! challenge answers reach this member the same way a switch does.

use super::acme::FleetAcme;
use super::switch::{apply_remote, pool_of, requested_at};
use super::{Cluster, REQUEST_TIMEOUT, timed};
use crate::state::StateHandle;
use async_trait::async_trait;
use etcd_client::{
    Certificate, Client, ConnectOptions, EventType, GetOptions, PutOptions, TlsOptions,
    WatchOptions, WatchResponse, WatchStream,
};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

/// First retry delay after a failed session; doubled up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(200);
/// Longest retry delay.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often the member status is compared with what was last published.
const STATUS_EVERY: Duration = Duration::from_millis(250);
/// How often a change of an active pool's counts alone is published. The
/// counts `switch --wait` waits on (a draining pool's) and every other
/// change go out at once; an active pool's in-flight count moves on nearly
/// every tick under load and would otherwise be a write to etcd each time.
const ACTIVE_COUNTS_EVERY: Duration = Duration::from_secs(5);

/// What was last put as the member status.
struct Published {
    /// The status as put.
    full: String,
    /// The same without the active pools' counts (see [`ACTIVE_COUNTS_EVERY`]).
    significant: String,
    at: std::time::Instant,
}

impl Published {
    fn new() -> Published {
        Published {
            full: String::new(),
            significant: String::new(),
            at: std::time::Instant::now(),
        }
    }
}

/// `status` without the `inflight`/`websockets` counts of active pools.
fn significant(status: &serde_json::Value) -> String {
    let mut s = status.clone();
    if let Some(pools) = s["pools"].as_array_mut() {
        for p in pools.iter_mut().filter(|p| p["state"] == "active") {
            if let Some(o) = p.as_object_mut() {
                o.remove("inflight");
                o.remove("websockets");
            }
        }
    }
    s.to_string()
}

/// The background service of fleet mode.
pub struct ClusterService {
    cluster: Arc<Cluster>,
    state: StateHandle,
    lease: AtomicI64,
    /// The endpoint the next session tries first.
    next: AtomicUsize,
    /// Fleet ACME, when this member has ACME sites.
    acme: Option<Arc<FleetAcme>>,
}

impl ClusterService {
    /// The service for `cluster` over `state`.
    pub fn new(cluster: Arc<Cluster>, state: StateHandle) -> ClusterService {
        ClusterService {
            cluster,
            state,
            lease: AtomicI64::new(0),
            next: AtomicUsize::new(0),
            acme: None,
        }
    }

    /// Also keeps fleet ACME's certificates and answers in step with etcd.
    pub fn with_acme(mut self, acme: Option<Arc<FleetAcme>>) -> ClusterService {
        self.acme = acme;
        self
    }

    fn options(&self) -> Result<ConnectOptions, String> {
        let c = &self.cluster.config;
        // require_leader: without quorum a request fails at once instead of
        // waiting for a leader, so a switch is refused promptly.
        let mut o = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
            .with_require_leader(true);
        if let Some((user, password)) = &c.credentials {
            o = o.with_user(user.clone(), password.clone());
        }
        if let Some(ca) = &c.ca {
            let pem = std::fs::read(ca)
                .map_err(|e| format!("cannot read cluster.ca {}: {e}", ca.display()))?;
            o = o.with_tls(TlsOptions::new().ca_certificate(Certificate::from_pem(pem)));
        }
        Ok(o)
    }

    /// One session; returns why it ended.
    async fn session(&self, backoff: &mut Duration) -> String {
        match self.try_session(backoff).await {
            Ok(never) => match never {},
            Err(e) => e,
        }
    }

    async fn try_session(
        &self,
        backoff: &mut Duration,
    ) -> Result<std::convert::Infallible, String> {
        let cl = &self.cluster;
        // One endpoint per session, the next one after a failure: the
        // client's own balancing keeps sending to a dead member, so a killed
        // etcd member would otherwise fail session after session.
        let endpoints = &cl.config.endpoints;
        let ttl = cl.config.lease_ttl.as_secs() as i64;
        let mut problems = Vec::new();
        let mut found = None;
        for _ in 0..endpoints.len() {
            let i = self.next.fetch_add(1, Ordering::SeqCst) % endpoints.len();
            let endpoint = &endpoints[i];
            let attempt = async {
                let mut c = timed(
                    "connect",
                    Client::connect([endpoint], Some(self.options()?)),
                )
                .await?;
                let lease = timed("lease grant", c.lease_grant(ttl, None)).await?.id();
                Ok::<_, String>((c, lease, endpoint.clone()))
            };
            match attempt.await {
                Ok(ok) => {
                    // Stay on this endpoint while it works.
                    self.next.store(i, Ordering::SeqCst);
                    found = Some(ok);
                    break;
                }
                Err(e) => problems.push(format!("{endpoint}: {e}")),
            }
        }
        let Some((mut client, lease, endpoint)) = found else {
            return Err(problems.join("; "));
        };
        self.lease.store(lease, Ordering::SeqCst);
        let (mut keeper, mut alive) =
            timed("lease keep-alive", client.lease_keep_alive(lease)).await?;
        let prefix = cl.active_prefix();
        let got = timed(
            "read the active keys",
            client.get(prefix.clone(), Some(GetOptions::new().with_prefix())),
        )
        .await?;
        let revision = got.header().map_or(0, |h| h.revision());
        // Converge: every stored key, and back to the file's `active:` for
        // an upstream whose key went away while this member was not looking.
        let mut present = HashSet::new();
        for kv in got.kvs() {
            let Some(upstream) = kv.key_str().ok().and_then(|k| k.strip_prefix(&prefix)) else {
                continue;
            };
            present.insert(upstream.to_string());
            self.apply(
                upstream,
                pool_of(kv.value()).as_deref(),
                kv.mod_revision(),
                kv.value(),
            );
        }
        let gone: Vec<String> = cl
            .seen()
            .into_keys()
            .filter(|u| !present.contains(u))
            .collect();
        for upstream in gone {
            self.apply(&upstream, None, revision, b"");
        }
        let mut watch = timed(
            "watch the active keys",
            client.watch(
                prefix.clone(),
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(revision + 1),
                ),
            ),
        )
        .await?;
        let mut acme_watch = match &self.acme {
            Some(a) => Some(a.start_watch(&mut client).await?),
            None => None,
        };
        cl.set_connected(client.clone(), &endpoint);
        *backoff = MIN_BACKOFF;
        log::info!(
            "cluster: connected to etcd ({}) as member '{}' under {}; {} switch key(s) at revision {revision}",
            endpoint,
            cl.id,
            cl.config.prefix,
            got.kvs().len()
        );
        let member_key = format!("{}{}", cl.members_prefix(), cl.id);
        let mut published = Published::new();
        let mut keep_alive = tokio::time::interval(cl.config.lease_ttl / 3);
        let mut status_tick = tokio::time::interval(STATUS_EVERY);
        loop {
            tokio::select! {
                msg = watch.message() => {
                    let msg = msg
                        .map_err(|e| format!("watch: {e}"))?
                        .ok_or_else(|| "watch: etcd closed the stream".to_string())?;
                    if msg.canceled() {
                        return Err(format!("watch canceled by etcd: {}", msg.cancel_reason()));
                    }
                    for ev in msg.events() {
                        let Some(kv) = ev.kv() else { continue };
                        let Some(upstream) =
                            kv.key_str().ok().and_then(|k| k.strip_prefix(&prefix))
                        else {
                            continue;
                        };
                        let pool = match ev.event_type() {
                            EventType::Put => pool_of(kv.value()),
                            EventType::Delete => None,
                        };
                        self.apply(upstream, pool.as_deref(), kv.mod_revision(), kv.value());
                    }
                }
                msg = next_message(&mut acme_watch) => {
                    let msg = msg
                        .map_err(|e| format!("ACME watch: {e}"))?
                        .ok_or_else(|| "ACME watch: etcd closed the stream".to_string())?;
                    if msg.canceled() {
                        return Err(format!("ACME watch canceled by etcd: {}", msg.cancel_reason()));
                    }
                    if let Some(a) = &self.acme {
                        a.on_watch(&msg);
                    }
                }
                _ = keep_alive.tick() => {
                    timed("lease keep-alive", keeper.keep_alive()).await?;
                    match tokio::time::timeout(REQUEST_TIMEOUT, alive.message()).await {
                        Ok(Ok(Some(r))) if r.ttl() > 0 => {}
                        Ok(Ok(Some(_))) => return Err("the member's lease expired".into()),
                        Ok(Ok(None)) => return Err("lease keep-alive: stream closed".into()),
                        Ok(Err(e)) => return Err(format!("lease keep-alive: {e}")),
                        Err(_) => return Err(format!(
                            "lease keep-alive: no answer from etcd in {REQUEST_TIMEOUT:?}"
                        )),
                    }
                }
                _ = status_tick.tick() => self.publish(&mut client, &member_key, lease, &mut published).await?,
                _ = cl.status_changed.notified() => self.publish(&mut client, &member_key, lease, &mut published).await?,
            }
        }
    }

    /// Puts the member status when it changed since the last put.
    async fn publish(
        &self,
        client: &mut Client,
        key: &str,
        lease: i64,
        published: &mut Published,
    ) -> Result<(), String> {
        let status = super::status::member_status(&self.cluster, &self.state);
        let full = status.to_string();
        if full == published.full {
            return Ok(());
        }
        let significant = significant(&status);
        if significant == published.significant && published.at.elapsed() < ACTIVE_COUNTS_EVERY {
            return Ok(());
        }
        timed(
            "publish the member status",
            client.put(key, full.clone(), Some(PutOptions::new().with_lease(lease))),
        )
        .await?;
        *published = Published {
            full,
            significant,
            at: std::time::Instant::now(),
        };
        Ok(())
    }

    fn apply(&self, upstream: &str, pool: Option<&str>, revision: i64, value: &[u8]) {
        let since = requested_at(value)
            .and_then(|us| SystemTime::UNIX_EPOCH.checked_add(Duration::from_micros(us as u64)));
        if let Err(e) = apply_remote(&self.cluster, &self.state, upstream, pool, revision, since) {
            log::error!(
                "cluster: cannot apply upstream '{upstream}' -> {} (etcd revision {revision}): {e}",
                pool.unwrap_or("the file's `active:`")
            );
        }
    }

    /// Revokes the lease at shutdown, so the member leaves the fleet's
    /// status at once instead of after `lease_ttl`.
    async fn leave(&self) {
        let lease = self.lease.load(Ordering::SeqCst);
        if let Some(mut c) = self.cluster.client()
            && lease != 0
        {
            let _ = tokio::time::timeout(Duration::from_secs(1), c.lease_revoke(lease)).await;
        }
    }
}

/// The next message of an optional watch; never resolves without one.
async fn next_message(
    watch: &mut Option<WatchStream>,
) -> Result<Option<WatchResponse>, etcd_client::Error> {
    match watch {
        Some(w) => w.message().await,
        None => std::future::pending().await,
    }
}

#[async_trait]
impl BackgroundService for ClusterService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut backoff = MIN_BACKOFF;
        // The same failure again (etcd still down) is logged at debug: one
        // warning per outage and per new reason, not one per retry.
        let mut last_why = String::new();
        loop {
            let why = tokio::select! {
                why = self.session(&mut backoff) => why,
                _ = shutdown.changed() => {
                    self.leave().await;
                    return;
                }
            };
            if self.cluster.set_disconnected(&why) {
                log::warn!(
                    "cluster: disconnected from etcd ({why}); serving the last state, switches are refused until etcd is back"
                );
            } else if why != last_why {
                log::warn!("cluster: cannot reach etcd ({why}); retrying with backoff");
            } else {
                log::debug!("cluster: cannot reach etcd ({why}); retrying in {backoff:?}");
            }
            last_why = why;
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::significant;
    use serde_json::json;

    #[test]
    fn only_an_active_pools_counts_wait_for_the_slow_publish() {
        let status = |blue: u64, green: u64, green_state: &str| {
            json!({"id": "m", "pools": [
                {"upstream": "app", "pool": "blue", "state": "active", "inflight": blue, "websockets": 1},
                {"upstream": "app", "pool": "green", "state": green_state, "inflight": green, "websockets": 0},
            ]})
        };
        // The active pool's load moving: not significant.
        assert_eq!(
            significant(&status(3, 0, "idle")),
            significant(&status(9, 0, "idle"))
        );
        // A draining pool's count (what `switch --wait` waits on) is.
        assert_ne!(
            significant(&status(3, 2, "draining")),
            significant(&status(3, 1, "draining"))
        );
        // So is a pool changing state.
        assert_ne!(
            significant(&status(3, 0, "draining")),
            significant(&status(3, 0, "drained"))
        );
    }
}
