//! The fleet's ACME lock: one orderer per certificate at a time.
//!
//! Owns one etcd lease and the lock held with it; touches no other key
//! (the challenge answers an order publishes are bound to the same lease by
//! `cluster::acme`, so they vanish with it). etcd's Lock API does the
//! distributed part: `lock(<prefix>/acme/lock/<site>, lease)` returns once
//! every earlier holder's key is gone, in the order the members asked.
//!
//! Why a lease of its own and not the member's session lease: the session
//! lease is replaced on every reconnection, and a lock must lapse exactly
//! when its holder stops keeping it — a crashed or cut-off orderer releases
//! the lock (and withdraws its answers) after `cluster.lease_ttl`, and no
//! sooner. The lease is kept alive only while [`FleetLock::guard`] runs the
//! holder's work; a holder that cannot refresh it for a whole TTL is told
//! the lock is lost and must stop (the ACME order in flight is abandoned:
//! ordering without the lock could order twice against the CA's limits).
//!
//! Log lines (operators and the fleet test read them): `took the fleet lock`
//! once per acquisition, then exactly one `released the fleet lock`.

use super::{REQUEST_TIMEOUT, timed};
use etcd_client::{Client, LeaseKeepAliveStream, LeaseKeeper, LockOptions};
use std::future::Future;
use std::time::{Duration, Instant};

/// How long a member waits for the lock before it gives up and tries again
/// later: longer than one order may take (validation and issuance have
/// 120 s deadlines each, plus the account and the answers' publication).
pub(crate) const LOCK_WAIT: Duration = Duration::from_secs(600);
/// A lock granted within this is not logged as a wait.
const QUIET_WAIT: Duration = Duration::from_millis(300);
/// Pause before another keep-alive after a failed one.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// A held fleet lock (see the module doc).
pub(crate) struct FleetLock {
    client: Client,
    lease: i64,
    ttl: Duration,
    site: String,
    /// The last time etcd confirmed the lease.
    refreshed: Instant,
    keeper: Option<(LeaseKeeper, LeaseKeepAliveStream)>,
    /// True once the release was logged (or nothing was acquired).
    released: bool,
}

impl FleetLock {
    /// Takes the lock `name` for `site` with a new lease of `ttl`, waiting
    /// (at most [`LOCK_WAIT`]) while another member holds it.
    pub(crate) async fn acquire(
        client: Client,
        name: String,
        site: &str,
        ttl: Duration,
    ) -> Result<FleetLock, String> {
        let mut c = client.clone();
        let lease = timed(
            "grant the lock's lease",
            c.lease_grant(ttl.as_secs() as i64, None),
        )
        .await?
        .id();
        let mut lock = FleetLock {
            client,
            lease,
            ttl,
            site: site.to_string(),
            refreshed: Instant::now(),
            keeper: None,
            released: true,
        };
        let wait = async {
            let mut lc = c.clone();
            let mut call =
                std::pin::pin!(lc.lock(name, Some(LockOptions::new().with_lease(lease))));
            if let Ok(r) = tokio::time::timeout(QUIET_WAIT, &mut call).await {
                return r.map_err(|e| format!("lock: {e}"));
            }
            log::info!(
                "ACME site '{site}': waiting for the fleet lock (another member is ordering \
                 or checking this certificate)"
            );
            match tokio::time::timeout(LOCK_WAIT, call).await {
                Ok(r) => r.map_err(|e| format!("lock: {e}")),
                Err(_) => Err(format!(
                    "another member held the fleet lock for more than {LOCK_WAIT:?}"
                )),
            }
        };
        match lock.guard(wait).await {
            Ok(Ok(_)) => {
                lock.released = false;
                log::info!("ACME site '{site}': took the fleet lock");
                Ok(lock)
            }
            Ok(Err(e)) | Err(e) => {
                // Not held: withdraw the waiter's key now (else it lapses
                // with the lease).
                let _ = lock.revoke().await;
                Err(e)
            }
        }
    }

    /// The lease the lock is held with (bind the order's keys to it).
    pub(crate) fn lease(&self) -> i64 {
        self.lease
    }

    /// Runs `work` while keeping the lease alive; `Err` (why) when the lease
    /// could not be kept for a whole TTL or etcd says it is gone — `work` is
    /// then dropped unfinished.
    pub(crate) async fn guard<T>(&mut self, work: impl Future<Output = T>) -> Result<T, String> {
        tokio::select! {
            biased;
            v = work => Ok(v),
            why = self.keep_alive() => Err(why),
        }
    }

    /// Releases the lock now (revoking the lease also withdraws every key
    /// bound to it); a failure leaves it to lapse with the lease.
    pub(crate) async fn release(mut self) {
        self.released = true;
        match self.revoke().await {
            Ok(()) => log::info!("ACME site '{}': released the fleet lock", self.site),
            Err(e) => log::warn!(
                "ACME site '{}': released the fleet lock ({e}; it lapses with its lease within {:?})",
                self.site,
                self.ttl
            ),
        }
    }

    async fn revoke(&mut self) -> Result<(), String> {
        let mut c = self.client.clone();
        timed("revoke the lock's lease", c.lease_revoke(self.lease))
            .await
            .map(|_| ())
    }

    /// Refreshes the lease every third of its TTL; returns only when it is
    /// lost.
    async fn keep_alive(&mut self) -> String {
        let every = self.ttl / 3;
        loop {
            tokio::time::sleep_until((self.refreshed + every).into()).await;
            match self.refresh().await {
                Ok(true) => self.refreshed = Instant::now(),
                Ok(false) => return "etcd says the lock's lease expired".to_string(),
                Err(e) => {
                    self.keeper = None;
                    if self.refreshed.elapsed() >= self.ttl {
                        return format!(
                            "the lock's lease could not be kept alive for {:?}: {e}",
                            self.ttl
                        );
                    }
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        }
    }

    /// One keep-alive round trip: whether the lease still lives.
    async fn refresh(&mut self) -> Result<bool, String> {
        if self.keeper.is_none() {
            let mut c = self.client.clone();
            self.keeper = Some(timed("lease keep-alive", c.lease_keep_alive(self.lease)).await?);
        }
        let Some((keeper, stream)) = self.keeper.as_mut() else {
            return Err("lease keep-alive: no stream".into());
        };
        timed("lease keep-alive", keeper.keep_alive()).await?;
        match tokio::time::timeout(REQUEST_TIMEOUT, stream.message()).await {
            Ok(Ok(Some(r))) => Ok(r.ttl() > 0),
            Ok(Ok(None)) => Err("lease keep-alive: stream closed".into()),
            Ok(Err(e)) => Err(format!("lease keep-alive: {e}")),
            Err(_) => Err(format!(
                "lease keep-alive: no answer from etcd in {REQUEST_TIMEOUT:?}"
            )),
        }
    }
}

impl Drop for FleetLock {
    fn drop(&mut self) {
        if !self.released {
            // Dropped without `release` (shutdown cancelled the holder):
            // the lease lapses on its own; a detached revoke would outlive
            // the service's shutdown.
            log::info!(
                "ACME site '{}': released the fleet lock (left to its lease, which lapses within {:?})",
                self.site,
                self.ttl
            );
        }
    }
}
