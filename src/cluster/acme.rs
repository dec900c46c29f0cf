//! Fleet ACME: each certificate ordered once for the whole fleet.
//!
//! Owns the fleet's ACME keys under `<prefix>/acme/` (the table in
//! `cluster/mod.rs`) and [`FleetAcme`], the [`Issuer`] the ACME service uses
//! in fleet mode. Orders themselves stay `AcmeManager`'s (same account
//! handling, same files); this module only decides *whether* this member
//! orders, and shares what it gets. The watch side (installing what other
//! members store, serving their challenge answers) is `acme_watch.rs`.
//!
//! ```text
//!  obtain(site): wait for the etcd session (≤ 10 s, else a fleet error: retried in 15 s)
//!    ─▶ take <prefix>/acme/lock/<site> (etcd Lock API, a lease of lease_ttl kept alive)
//!    ─▶ certs/<site> in etcd fits (directory, names) and is not due for renewal?
//!          yes ─▶ keep it locally, FromFleet (no order: another member just ordered)
//!    ─▶ backoff/<site> says wait? ─▶ a fleet error carrying the fleet's time
//!    ─▶ adopt <prefix>/acme/account (one account for the fleet)
//!    ─▶ AcmeManager::obtain_with(sink = etcd): each answer is put under
//!       challenges/<site>/… with the lock's lease, then the CA is told only
//!       once every member serving answers reports it has it
//!    ─▶ put certs/<site> (and delete backoff/<site>) — or put backoff/<site>
//!    ─▶ release the lock (revoking its lease withdraws the answers)
//! ```
//!
//! Choices, for operators:
//! - Never order without the lock: etcd unreachable means no order (members
//!   keep serving their certificates and local files), because N members
//!   ordering alone would multiply orders against the CA's rate limits. A
//!   holder that loses its lease mid-order abandons the order.
//! - The re-check under the lock uses the same renewal time as the schedule
//!   (`renew_at`): a certificate another member just renewed is taken; one
//!   that is due is renewed — so the members that wake together at renewal
//!   time make one order, not three.
//! - A failed order is recorded for the fleet (`backoff/<site>`, the same
//!   1 min / 10 min / 100 min / 24 h schedule and the CA's `Retry-After`),
//!   so the next member to take the lock does not retry at once.
//!   `etcdctl del <prefix>/acme/backoff/<site>` lifts it.
//! - Local files stay the fallback: every certificate taken from etcd is
//!   also written to `<storage>/<site>/` (key 0600), so a member restarted
//!   without etcd serves its last certificate.
//! - Private keys (certificates and account) are in etcd: etcd must use TLS
//!   and authentication (`cluster.ca`, `username`/`password`); a warning at
//!   start says when either is missing.

use super::acme_lock::FleetLock;
use super::{Cluster, timed};
use crate::acme::{
    AcmeError, AcmeManager, AcmeSite, ChallengeAnswer, ChallengeGuard, ChallengeSink, Challenges,
    Issuer, Obtained, Updates, backoff, fmt_utc, name_set, renew_at, seed_for,
};
use crate::tls::{LoadedCert, load_pem_bytes};
use async_trait::async_trait;
use etcd_client::{Client, GetOptions, PutOptions, Txn, TxnOp};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// How long `obtain` waits for the etcd session before it reports a fleet
/// error (start-up connects within this; an outage is retried later).
const CONNECT_WAIT: Duration = Duration::from_secs(10);
/// How long the orderer waits for every member to serve an answer.
const ACK_WAIT: Duration = Duration::from_secs(5);
/// Interval of that wait's reads.
const ACK_POLL: Duration = Duration::from_millis(20);

/// A certificate as stored at `<prefix>/acme/certs/<site>`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct StoredCert {
    /// The ACME directory that issued it.
    pub(crate) directory: String,
    /// The names it was ordered for.
    pub(crate) names: Vec<String>,
    /// PEM chain, leaf first.
    pub(crate) chain: String,
    /// PEM private key.
    pub(crate) key: String,
    /// Serial (hex), for people reading etcd.
    pub(crate) serial: String,
    /// Expiry, seconds since the epoch.
    pub(crate) not_after: u64,
    /// The member that ordered (or published) it.
    pub(crate) by: String,
}

/// A failed order, as stored at `<prefix>/acme/backoff/<site>`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct FleetBackoff {
    failures: u32,
    /// Seconds since the epoch.
    next_attempt: u64,
    error: String,
    by: String,
}

/// The fleet's certificates as `GET /api/cluster` shows them (`acme`), from
/// the keys under `<prefix>/acme/` (`rest` is the part after that prefix):
/// per site the stored certificate (serial, expiry, who ordered it; never
/// its key), whether a member holds the site's lock now (ordering or
/// checking), and a recorded failed order (no member orders before
/// `next_attempt`).
pub(crate) fn fleet_view<'k>(keys: impl Iterator<Item = (&'k str, &'k [u8])>) -> serde_json::Value {
    use serde_json::json;
    let mut sites = serde_json::Map::new();
    fn entry<'m>(
        sites: &'m mut serde_json::Map<String, serde_json::Value>,
        site: &str,
    ) -> &'m mut serde_json::Value {
        sites.entry(site.to_string()).or_insert_with(
            || serde_json::json!({"certificate": null, "locked": false, "backoff": null}),
        )
    }
    for (rest, value) in keys {
        if let Some(site) = rest.strip_prefix("certs/") {
            if let Ok(c) = serde_json::from_slice::<StoredCert>(value) {
                let not_after = UNIX_EPOCH + Duration::from_secs(c.not_after);
                entry(&mut sites, site)["certificate"] = json!({
                    "serial": c.serial,
                    "not_after": fmt_utc(not_after),
                    "names": c.names,
                    "by": c.by,
                });
            }
        } else if let Some(site) = rest.strip_prefix("backoff/") {
            if let Ok(b) = serde_json::from_slice::<FleetBackoff>(value) {
                entry(&mut sites, site)["backoff"] = json!({
                    "failures": b.failures,
                    "next_attempt": fmt_utc(UNIX_EPOCH + Duration::from_secs(b.next_attempt)),
                    "error": b.error,
                    "by": b.by,
                });
            }
        } else if let Some((site, _lease)) =
            rest.strip_prefix("lock/").and_then(|l| l.split_once('/'))
        {
            entry(&mut sites, site)["locked"] = json!(true);
        }
    }
    serde_json::Value::Object(sites)
}

/// What the lock holder reads first.
struct FleetState {
    cert: Option<StoredCert>,
    backoff: Option<FleetBackoff>,
    account: Option<Vec<u8>>,
}

/// The fleet-mode [`Issuer`] and the fleet's ACME state on this member.
pub struct FleetAcme {
    pub(crate) cluster: Arc<Cluster>,
    pub(crate) manager: Arc<AcmeManager>,
    /// This member's ACME sites and the names each certificate must carry.
    pub(crate) sites: HashMap<String, Vec<String>>,
    updates: HashMap<String, watch::Sender<Option<LoadedCert>>>,
    /// The store the proxy answers challenges from.
    pub(crate) challenges: Challenges,
    /// Answers published by the fleet, by etcd key, served while present.
    pub(crate) answers: Mutex<HashMap<String, ChallengeGuard>>,
}

impl FleetAcme {
    /// Fleet ACME for `sites`, ordering with `manager` and serving answers
    /// from `challenges` (the proxy's store).
    pub fn new(
        cluster: Arc<Cluster>,
        manager: Arc<AcmeManager>,
        sites: &[AcmeSite],
        challenges: Challenges,
    ) -> Arc<FleetAcme> {
        let c = &cluster.config;
        let missing: Vec<&str> = [
            (c.ca.is_none(), "TLS (`cluster.ca`)"),
            (
                c.credentials.is_none(),
                "authentication (`cluster.username`/`password`)",
            ),
        ]
        .into_iter()
        .filter_map(|(m, what)| m.then_some(what))
        .collect();
        if !missing.is_empty() {
            log::warn!(
                "cluster: ACME private keys (certificates and account) are stored in etcd under {} \
                 but the etcd connection has no {}: anyone who can reach etcd can read them",
                cluster.acme_prefix(),
                missing.join(" and no ")
            );
        }
        cluster.mark_acme_challenges(0);
        Arc::new(FleetAcme {
            updates: sites
                .iter()
                .map(|s| (s.name.clone(), watch::channel(None).0))
                .collect(),
            sites: sites
                .iter()
                .map(|s| (s.name.clone(), s.names.clone()))
                .collect(),
            cluster,
            manager,
            challenges,
            answers: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn cert_key(&self, site: &str) -> String {
        self.cluster.acme_key(&format!("certs/{site}"))
    }

    fn backoff_key(&self, site: &str) -> String {
        self.cluster.acme_key(&format!("backoff/{site}"))
    }

    fn account_key(&self) -> String {
        self.cluster.acme_key("account")
    }

    /// `challenges/<site>/<type>/<host>[/<token>]`.
    fn answer_key(&self, site: &str, answer: &ChallengeAnswer) -> String {
        self.cluster.acme_key(&match answer {
            ChallengeAnswer::Http01 { host, token, .. } => {
                format!("challenges/{site}/http-01/{host}/{token}")
            }
            ChallengeAnswer::TlsAlpn01 { host, .. } => {
                format!("challenges/{site}/tls-alpn-01/{host}")
            }
        })
    }

    /// `stored` as `site`'s certificate when it fits this member: issued by
    /// its directory for exactly the site's names, and it loads; else why not.
    pub(crate) fn check(&self, site: &str, stored: &StoredCert) -> Result<LoadedCert, String> {
        let names = self
            .sites
            .get(site)
            .ok_or_else(|| format!("'{site}' is not an ACME site of this member"))?;
        let directory = &self.manager.config().directory;
        if &stored.directory != directory {
            return Err(format!(
                "it was issued by {}, this member uses {directory}",
                stored.directory
            ));
        }
        let key = self.cert_key(site);
        let cert = load_pem_bytes(
            stored.chain.as_bytes(),
            Path::new(&key),
            stored.key.as_bytes(),
            Path::new(&key),
            SystemTime::now(),
        )
        .map_err(|e| crate::acme::chain(&e))?;
        if name_set(&cert.info.dns_names) != name_set(names) {
            return Err(format!(
                "it carries {}, this member's site needs {}",
                cert.info.dns_names.join(", "),
                names.join(", ")
            ));
        }
        Ok(cert)
    }

    /// Writes `stored` to the local storage unless the files already hold
    /// it (the fallback for a restart without etcd); a failure is logged.
    pub(crate) fn keep_locally(&self, site: &str, stored: &StoredCert) {
        if self.manager.issued_pem(site) == Some((stored.chain.clone(), stored.key.clone())) {
            return;
        }
        let names = self.sites.get(site).cloned().unwrap_or_default();
        if let Err(e) = self
            .manager
            .save_issued(site, &names, &stored.chain, &stored.key)
        {
            log::error!(
                "ACME site '{site}': cannot store the fleet's certificate locally (serving it \
                 anyway; a restart without etcd would not have it): {}",
                crate::acme::chain(&e)
            );
        }
    }

    /// Hands a certificate that arrived without an order to the site's task.
    pub(crate) fn announce(&self, site: &str, cert: LoadedCert) {
        if let Some(tx) = self.updates.get(site) {
            tx.send_replace(Some(cert));
        }
    }

    /// `stored` for a certificate of `site` this member holds as PEM.
    pub(crate) fn stored_cert(
        &self,
        site: &str,
        cert: &LoadedCert,
        chain: String,
        key: String,
    ) -> StoredCert {
        StoredCert {
            directory: self.manager.config().directory.clone(),
            names: self.sites.get(site).cloned().unwrap_or_default(),
            chain,
            key,
            serial: cert.info.serial.clone(),
            not_after: unix_secs(cert.info.not_after),
            by: self.cluster.id.clone(),
        }
    }

    /// The live session's client; at start-up (never connected yet) it is
    /// waited for up to [`CONNECT_WAIT`], during an outage not at all.
    async fn connected(&self) -> Result<Client, AcmeError> {
        let deadline = Instant::now() + CONNECT_WAIT;
        loop {
            if let Some(c) = self.cluster.client() {
                return Ok(c);
            }
            let starting = self.cluster.endpoint().is_empty();
            if !starting || Instant::now() >= deadline {
                return Err(fleet(
                    format!(
                        "etcd is unreachable ({}); in fleet mode a certificate is ordered only \
                         under the fleet lock, so this member keeps its certificate and waits",
                        self.cluster.last_error()
                    ),
                    None,
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn read_state(&self, mut client: Client, site: &str) -> Result<FleetState, String> {
        let get = |r: etcd_client::GetResponse| r.kvs().first().map(|kv| kv.value().to_vec());
        let cert = get(timed(
            "read the fleet's certificate",
            client.get(self.cert_key(site), None),
        )
        .await?);
        let backoff = get(timed(
            "read the fleet's backoff",
            client.get(self.backoff_key(site), None),
        )
        .await?);
        let account = get(timed(
            "read the fleet's account",
            client.get(self.account_key(), None),
        )
        .await?);
        Ok(FleetState {
            cert: parse(site, "stored certificate", cert),
            backoff: parse(site, "backoff record", backoff),
            account,
        })
    }

    /// Everything `obtain` does once the lock is held.
    async fn under_lock(
        &self,
        lock: &mut FleetLock,
        mut client: Client,
        site: &str,
        names: &[String],
    ) -> Result<Obtained, AcmeError> {
        let lost = |why: String| fleet(format!("lost the fleet lock: {why}"), None);
        let state = lock
            .guard(self.read_state(client.clone(), site))
            .await
            .map_err(lost)?
            .map_err(|e| fleet(format!("cannot read the fleet's ACME keys: {e}"), None))?;
        let now = SystemTime::now();
        if let Some(stored) = &state.cert {
            match self.check(site, stored) {
                Ok(cert)
                    if now
                        < renew_at(cert.info.not_before, cert.info.not_after, seed_for(site)) =>
                {
                    log::info!(
                        "ACME site '{site}': the fleet has a current certificate (serial {}, \
                         stored by {}); no order",
                        cert.info.serial,
                        stored.by
                    );
                    self.keep_locally(site, stored);
                    return Ok(Obtained::FromFleet(cert));
                }
                Ok(_) => {}
                Err(why) => log::warn!(
                    "ACME site '{site}': the fleet's stored certificate does not fit this member \
                     ({why}); ordering one"
                ),
            }
        }
        if let Some(b) = &state.backoff {
            let at = UNIX_EPOCH + Duration::from_secs(b.next_attempt);
            if at > now {
                return Err(fleet(
                    format!(
                        "the fleet's last order failed on member {} ({} failure(s): {}); no \
                         member orders before {}",
                        b.by,
                        b.failures,
                        b.error,
                        fmt_utc(at)
                    ),
                    Some(at),
                ));
            }
        }
        if let Some(account) = &state.account
            && let Err(e) = self.manager.adopt_account(account).await
        {
            log::warn!(
                "ACME: not using the fleet's account: {}",
                crate::acme::chain(&e)
            );
        }
        let sink = EtcdAnswers {
            fleet: self,
            client: client.clone(),
            lease: lock.lease(),
            site,
        };
        let ordered = match lock
            .guard(self.manager.obtain_with(site, names, Some(&sink)))
            .await
        {
            Ok(r) => r,
            Err(why) => {
                return Err(fleet(
                    format!(
                        "lost the fleet lock during the order ({why}); the order was abandoned \
                         so that no two members order at once"
                    ),
                    None,
                ));
            }
        };
        self.share_account(&mut client, state.account.as_deref())
            .await;
        match ordered {
            Ok(cert) => {
                self.share_cert(&mut client, site, &cert).await;
                Ok(Obtained::Ordered(cert))
            }
            Err(e) => {
                if !e.is_fleet() {
                    self.record_failure(&mut client, site, state.backoff.as_ref(), &e)
                        .await;
                }
                Err(e)
            }
        }
    }

    /// Puts this member's account in etcd when the fleet has another (or
    /// none).
    async fn share_account(&self, client: &mut Client, fleets: Option<&[u8]>) {
        let Some(ours) = self.manager.account_json() else {
            return;
        };
        if fleets == Some(ours.as_slice()) {
            return;
        }
        match timed(
            "store the account",
            client.put(self.account_key(), ours, None),
        )
        .await
        {
            Ok(_) => log::info!("ACME: the account is stored for the fleet"),
            Err(e) => log::warn!("ACME: cannot store the account for the fleet: {e}"),
        }
    }

    /// Stores the certificate just ordered for the fleet and clears the
    /// backoff, in one transaction.
    async fn share_cert(&self, client: &mut Client, site: &str, cert: &LoadedCert) {
        let Some((chain, key)) = self.manager.issued_pem(site) else {
            log::error!("ACME site '{site}': the certificate just ordered cannot be read back");
            return;
        };
        let stored = self.stored_cert(site, cert, chain, key);
        let value = serde_json::to_string(&stored).unwrap_or_default();
        let txn = Txn::new().and_then([
            TxnOp::put(self.cert_key(site), value, None),
            TxnOp::delete(self.backoff_key(site), None),
        ]);
        match timed("store the certificate", client.txn(txn)).await {
            Ok(_) => log::info!(
                "ACME site '{site}': certificate serial {} stored for the fleet",
                cert.info.serial
            ),
            Err(e) => log::error!(
                "ACME site '{site}': cannot store the certificate for the fleet ({e}); it is \
                 served here and kept locally, and published when this member reconnects"
            ),
        }
    }

    /// Records a failed order so that no member retries before the backoff.
    async fn record_failure(
        &self,
        client: &mut Client,
        site: &str,
        before: Option<&FleetBackoff>,
        e: &AcmeError,
    ) {
        let failures = before.map_or(0, |b| b.failures).saturating_add(1);
        let now = SystemTime::now();
        let mut at = now + backoff(failures);
        if let Some(retry) = e.retry_after() {
            at = at.max(retry);
        }
        let record = FleetBackoff {
            failures,
            next_attempt: unix_secs(at),
            error: crate::acme::chain(e),
            by: self.cluster.id.clone(),
        };
        let value = serde_json::to_string(&record).unwrap_or_default();
        if let Err(err) = timed(
            "record the failed order",
            client.put(self.backoff_key(site), value, None),
        )
        .await
        {
            log::warn!("ACME site '{site}': cannot record the failed order for the fleet: {err}");
        } else {
            log::info!(
                "ACME site '{site}': no member orders again before {} (failure {failures})",
                fmt_utc(at)
            );
        }
    }

    /// Waits (at most [`ACK_WAIT`]) until every member that serves fleet
    /// answers reports having seen `revision`; a member that does not is
    /// named, and the order goes on (the CA may reach another member).
    ///
    /// A member once seen behind stays waited for even if its status key
    /// vanishes meanwhile: after etcd itself restarts, the keys of members
    /// still reconnecting live on for a lease TTL and then expire, which
    /// must not read as "every member serves it" while they cannot yet.
    async fn wait_for_members(&self, client: &mut Client, revision: i64, host: &str) {
        let started = Instant::now();
        let prefix = self.cluster.members_prefix();
        let mut behind = std::collections::BTreeSet::new();
        loop {
            let lagging: Vec<String> = match timed(
                "read the members",
                client.get(prefix.clone(), Some(GetOptions::new().with_prefix())),
            )
            .await
            {
                Ok(r) => {
                    for m in r.kvs().iter().filter_map(|kv| {
                        serde_json::from_slice::<serde_json::Value>(kv.value()).ok()
                    }) {
                        let id = m["id"].as_str().unwrap_or("?").to_string();
                        match m["acme_challenges"].as_i64() {
                            Some(seen) if seen >= revision => behind.remove(&id),
                            Some(_) => behind.insert(id),
                            None => false,
                        };
                    }
                    behind.iter().cloned().collect()
                }
                Err(e) => vec![format!("(members unreadable: {e})")],
            };
            if lagging.is_empty() {
                log::info!(
                    "ACME: every member serves the answer for {host} ({:.1} ms after it was stored)",
                    started.elapsed().as_secs_f64() * 1e3
                );
                return;
            }
            if started.elapsed() >= ACK_WAIT {
                log::warn!(
                    "ACME: member(s) {} do not serve the answer for {host} after {ACK_WAIT:?}; \
                     letting the CA validate (it fails if it reaches one of them)",
                    lagging.join(", ")
                );
                return;
            }
            tokio::time::sleep(ACK_POLL).await;
        }
    }
}

#[async_trait]
impl Issuer for FleetAcme {
    fn stored(&self, site: &str) -> Option<LoadedCert> {
        self.manager.stored(site)
    }

    async fn obtain(&self, site: &str, names: &[String]) -> Result<Obtained, AcmeError> {
        let client = self.connected().await?;
        let name = self.cluster.acme_key(&format!("lock/{site}"));
        let mut lock =
            FleetLock::acquire(client.clone(), name, site, self.cluster.config.lease_ttl)
                .await
                .map_err(|e| {
                    fleet(
                        format!("cannot take the fleet lock ({e}); not ordering without it"),
                        None,
                    )
                })?;
        let result = self.under_lock(&mut lock, client, site, names).await;
        lock.release().await;
        result
    }

    fn updates(&self, site: &str) -> Option<Updates> {
        self.updates.get(site).map(watch::Sender::subscribe)
    }
}

/// Publishes an order's answers in etcd for the other members.
struct EtcdAnswers<'a> {
    fleet: &'a FleetAcme,
    client: Client,
    /// The lock's lease: the answers vanish with it.
    lease: i64,
    site: &'a str,
}

#[async_trait]
impl ChallengeSink for EtcdAnswers<'_> {
    async fn publish(&self, answer: &ChallengeAnswer) -> Result<(), AcmeError> {
        let key = self.fleet.answer_key(self.site, answer);
        let value = serde_json::to_string(answer).unwrap_or_default();
        let mut client = self.client.clone();
        let put = timed(
            "publish the challenge answer",
            client.put(key, value, Some(PutOptions::new().with_lease(self.lease))),
        )
        .await
        .map_err(|e| {
            fleet(
                format!("cannot publish the answer for {}: {e}", answer.host()),
                None,
            )
        })?;
        let revision = put.header().map_or(0, |h| h.revision());
        self.fleet
            .wait_for_members(&mut client, revision, answer.host())
            .await;
        Ok(())
    }
}

/// A JSON value read from etcd; one that does not parse is logged and
/// treated as absent.
fn parse<T: serde::de::DeserializeOwned>(
    site: &str,
    what: &str,
    bytes: Option<Vec<u8>>,
) -> Option<T> {
    bytes.and_then(|b| match serde_json::from_slice(&b) {
        Ok(v) => Some(v),
        Err(e) => {
            log::warn!("ACME site '{site}': ignoring the fleet's {what}: {e}");
            None
        }
    })
}

fn fleet(detail: String, retry_at: Option<SystemTime>) -> AcmeError {
    AcmeError::Fleet { detail, retry_at }
}

pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acme::{AcmeConfig, ChallengeKind};

    fn fleet(storage: &Path) -> Arc<FleetAcme> {
        let cluster = Cluster::new(
            crate::config::validate_cluster::ClusterConfig {
                endpoints: vec!["http://127.0.0.1:1".into()],
                prefix: "/g".into(),
                lease_ttl: Duration::from_secs(10),
                credentials: None,
                ca: None,
            },
            "127.0.0.1:9".parse().expect("addr"),
            Arc::new(crate::metrics::Metrics::new().expect("metrics")),
        );
        let config = AcmeConfig {
            email: String::new(),
            directory: "https://ca.test/dir".into(),
            ca_root: None,
            storage: storage.to_path_buf(),
            challenge: ChallengeKind::Http01,
        };
        let manager = Arc::new(AcmeManager::new(config, Challenges::new()).expect("manager"));
        let sites = [AcmeSite {
            name: "app".into(),
            names: vec!["app.test".into(), "www.app.test".into()],
        }];
        FleetAcme::new(cluster, manager, &sites, Challenges::new())
    }

    fn stored(names: &[&str], directory: &str) -> StoredCert {
        let key = rcgen::KeyPair::generate().expect("key");
        let params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("params");
        let cert = params.self_signed(&key).expect("cert");
        StoredCert {
            directory: directory.into(),
            names: names.iter().map(|s| s.to_string()).collect(),
            chain: cert.pem(),
            key: key.serialize_pem(),
            serial: "01".into(),
            not_after: 0,
            by: "other:1".into(),
        }
    }

    #[test]
    fn only_a_certificate_from_the_same_directory_for_the_same_names_is_taken() {
        let tmp = tempfile::tempdir().expect("tmp");
        let f = fleet(&tmp.path().join("acme"));
        let good = stored(&["www.app.test", "APP.test"], "https://ca.test/dir");
        let cert = f.check("app", &good).expect("fits");
        // Taken from the fleet, it is also kept locally (the key 0600).
        f.keep_locally("app", &good);
        assert_eq!(
            f.manager.stored("app").map(|c| c.info.serial),
            Some(cert.info.serial)
        );
        use std::os::unix::fs::PermissionsExt;
        let key = tmp.path().join("acme/app/privkey.pem");
        let mode = std::fs::metadata(key).expect("key").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let staging = stored(&["app.test", "www.app.test"], "https://staging.test/dir");
        let e = f.check("app", &staging).expect_err("other directory");
        assert!(e.contains("staging.test"), "{e}");
        let fewer = stored(&["app.test"], "https://ca.test/dir");
        let e = f.check("app", &fewer).expect_err("other names");
        assert!(e.contains("needs app.test, www.app.test"), "{e}");
        assert!(f.check("blog", &good).is_err(), "not a site of this member");
        let mut broken = good.clone();
        broken.key = stored(&["app.test"], "x").key;
        assert!(
            f.check("app", &broken).is_err(),
            "key of another certificate"
        );
    }

    #[test]
    fn keys_live_under_the_prefix() {
        let tmp = tempfile::tempdir().expect("tmp");
        let f = fleet(tmp.path());
        assert_eq!(f.cert_key("app"), "/g/acme/certs/app");
        let http = ChallengeAnswer::Http01 {
            host: "app.test".into(),
            token: "tok".into(),
            key_authorization: "tok.k".into(),
        };
        assert_eq!(
            f.answer_key("app", &http),
            "/g/acme/challenges/app/http-01/app.test/tok"
        );
        let alpn = ChallengeAnswer::TlsAlpn01 {
            host: "app.test".into(),
            digest: "00".into(),
        };
        assert_eq!(
            f.answer_key("app", &alpn),
            "/g/acme/challenges/app/tls-alpn-01/app.test"
        );
        assert_eq!(f.cluster.acme_challenges_seen(), Some(0), "published");
    }

    #[test]
    fn the_api_view_shows_certificates_locks_and_failures_never_keys() {
        let cert = serde_json::to_vec(&StoredCert {
            directory: "https://ca/dir".into(),
            names: vec!["app.test".into()],
            chain: "-----BEGIN CERTIFICATE-----".into(),
            key: "-----BEGIN PRIVATE KEY-----".into(),
            serial: "0a:0b".into(),
            not_after: 1_800_000_000,
            by: "m1:9000".into(),
        })
        .unwrap();
        let backoff = br#"{"failures":2,"next_attempt":1800000000,"error":"dns","by":"m2:9000"}"#;
        let keys: Vec<(&str, &[u8])> = vec![
            ("certs/app", &cert),
            ("lock/app/694d9c", b""),
            ("backoff/web", backoff),
            ("account", b"{}"),
            ("challenges/app/http-01/app.test/tok", b"{}"),
        ];
        let v = fleet_view(keys.into_iter());
        assert_eq!(v["app"]["certificate"]["serial"], "0a:0b");
        assert_eq!(v["app"]["certificate"]["by"], "m1:9000");
        assert_eq!(v["app"]["locked"], true);
        assert_eq!(v["web"]["backoff"]["failures"], 2);
        assert_eq!(v["web"]["locked"], false);
        assert!(v["web"]["certificate"].is_null());
        assert!(!v.to_string().contains("PRIVATE KEY"));
        assert_eq!(v.as_object().unwrap().len(), 2, "{v}");
    }
}
