//! The background service that keeps every ACME site's certificate valid.
//!
//! Owns the per-site loop and its status; uses an [`Issuer`] (the
//! [`AcmeManager`] in greenlight, `cluster::acme::FleetAcme` in fleet mode, a
//! fake in unit tests) for stored certificates and orders. Must not touch the
//! proxy directly: certificates go out through the install callback, which
//! greenlight points at its `CertStore`.
//!
//! Per site (one task each, all started at once so start-up never waits):
//! ```text
//!   stored certificate loads? ──▶ install it now
//!       still fresh (names match, > 1/3 lifetime left)? ──▶ next = renew_at
//!       otherwise ──▶ next = now
//!   loop: sleep until next (wall clock, woken hourly to re-check; shutdown ends it;
//!                           a certificate from the issuer's updates is installed
//!                           and reschedules: next = its renew_at)
//!         obtain ──ordered / from the fleet──▶ install, failures = 0, next = renew_at
//!                                              (at least 1 min ahead)
//!                └─err─▶ failures += 1, next = now + max(backoff, Retry-After)
//!                └─fleet err (nothing sent to the CA)─▶ next = the fleet's time or now + 15 s
//! ```
//! Only certificates the issuer *ordered* count in the orders metric: in
//! fleet mode a member that finds the certificate another member just stored
//! made no order. A shutdown also cancels an order in flight (its challenge
//! answers are removed by their guards).

use super::error::{AcmeError, chain};
use super::order::AcmeManager;
use super::schedule::{backoff, fmt_utc, needs_order, renew_at, seed_for};
use crate::tls::CertInfo;
use crate::tls::LoadedCert;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Longest single sleep: the wall clock is re-read at least this often, so
/// suspend/resume or clock changes cannot delay a renewal for long.
const MAX_SLEEP: Duration = Duration::from_secs(3600);
/// Least time between a successful order and the next one.
const MIN_RENEW_GAP: Duration = Duration::from_secs(60);
/// Next attempt after a fleet problem that named no time (etcd hiccup).
const FLEET_RETRY: Duration = Duration::from_secs(15);

/// Called with (site name, certificate) whenever a site has a new
/// certificate; greenlight swaps it into its `CertStore`.
pub type InstallFn = Arc<dyn Fn(&str, LoadedCert) + Send + Sync>;

/// One site whose certificate comes from ACME.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcmeSite {
    /// The site's name (also its directory under the storage).
    pub name: String,
    /// Every host name the certificate must cover.
    pub names: Vec<String>,
}

/// What [`Issuer::obtain`] came back with.
#[derive(Clone, Debug)]
pub enum Obtained {
    /// A certificate from a new order at the CA.
    Ordered(LoadedCert),
    /// Fleet mode: a certificate another member ordered, found stored for
    /// the fleet; no order was sent.
    FromFleet(LoadedCert),
}

impl Obtained {
    /// The certificate, whatever its origin.
    pub fn cert(&self) -> &LoadedCert {
        match self {
            Obtained::Ordered(c) | Obtained::FromFleet(c) => c,
        }
    }
}

/// The latest certificate for a site that arrived without an order.
pub type Updates = watch::Receiver<Option<LoadedCert>>;

/// Where certificates come from: stored ones and new orders.
#[async_trait]
pub trait Issuer: Send + Sync {
    /// The site's stored certificate if it is usable (no network).
    fn stored(&self, site: &str) -> Option<LoadedCert>;
    /// A certificate for `names` (a new order, or in fleet mode one another
    /// member just stored), stored for the next start.
    async fn obtain(&self, site: &str, names: &[String]) -> Result<Obtained, AcmeError>;
    /// Certificates for `site` that arrive without this member ordering
    /// (fleet mode: another member's, from the etcd watch); `None` when
    /// there is no such source.
    fn updates(&self, _site: &str) -> Option<Updates> {
        None
    }
}

#[async_trait]
impl Issuer for AcmeManager {
    fn stored(&self, site: &str) -> Option<LoadedCert> {
        AcmeManager::stored(self, site)
    }

    async fn obtain(&self, site: &str, names: &[String]) -> Result<Obtained, AcmeError> {
        AcmeManager::obtain(self, site, names)
            .await
            .map(Obtained::Ordered)
    }
}

/// What the service knows about one site (for the status API).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteStatus {
    /// Site name.
    pub site: String,
    /// Names the certificate must cover.
    pub names: Vec<String>,
    /// Issuer of the installed certificate, if any.
    pub issuer: Option<String>,
    /// Expiry of the installed certificate, if any.
    pub not_after: Option<SystemTime>,
    /// When the last order started.
    pub last_attempt: Option<SystemTime>,
    /// The last order's error with its cause chain; `None` after a success.
    pub last_error: Option<String>,
    /// When the next order is due.
    pub next_attempt: Option<SystemTime>,
    /// Consecutive failed orders.
    pub failures: u32,
}

/// A shared, cloneable view of every site's [`SiteStatus`].
#[derive(Clone, Debug, Default)]
pub struct AcmeStatus {
    sites: Arc<Mutex<Vec<SiteStatus>>>,
}

impl AcmeStatus {
    /// A copy of the current status, in configuration order.
    pub fn snapshot(&self) -> Vec<SiteStatus> {
        self.sites.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn update(&self, index: usize, f: impl FnOnce(&mut SiteStatus)) {
        let mut sites = self.sites.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = sites.get_mut(index) {
            f(s);
        }
    }
}

/// Told the outcome of every order: site, whether it renewed a certificate
/// already issued (else a first issue), and whether it succeeded.
pub type ReportFn = Arc<dyn Fn(&str, bool, bool) + Send + Sync>;

/// The pingora background service running every ACME site.
pub struct AcmeService {
    issuer: Arc<dyn Issuer>,
    sites: Vec<AcmeSite>,
    install: InstallFn,
    status: AcmeStatus,
    report: Option<ReportFn>,
}

impl AcmeService {
    /// A service for `sites` getting certificates from `issuer` and handing
    /// them to `install`.
    pub fn new(issuer: Arc<dyn Issuer>, sites: Vec<AcmeSite>, install: InstallFn) -> AcmeService {
        let status = AcmeStatus {
            sites: Arc::new(Mutex::new(
                sites
                    .iter()
                    .map(|s| SiteStatus {
                        site: s.name.clone(),
                        names: s.names.clone(),
                        issuer: None,
                        not_after: None,
                        last_attempt: None,
                        last_error: None,
                        next_attempt: None,
                        failures: 0,
                    })
                    .collect(),
            )),
        };
        AcmeService {
            issuer,
            sites,
            install,
            status,
            report: None,
        }
    }

    /// Also tells `report` the outcome of every order (for metrics).
    pub fn with_report(mut self, report: ReportFn) -> AcmeService {
        self.report = Some(report);
        self
    }

    /// Every site's status.
    pub fn status(&self) -> Vec<SiteStatus> {
        self.status.snapshot()
    }

    /// A handle on the status that outlives moving the service into pingora.
    pub fn status_handle(&self) -> AcmeStatus {
        self.status.clone()
    }
}

#[async_trait]
impl BackgroundService for AcmeService {
    async fn start(&self, shutdown: ShutdownWatch) {
        let mut tasks = JoinSet::new();
        for (index, site) in self.sites.iter().enumerate() {
            tasks.spawn(run_site(SiteTask {
                index,
                site: site.clone(),
                issuer: self.issuer.clone(),
                install: self.install.clone(),
                status: self.status.clone(),
                report: self.report.clone(),
                shutdown: shutdown.clone(),
                installed: None,
            }));
        }
        while let Some(done) = tasks.join_next().await {
            if let Err(e) = done {
                log::error!("ACME: a site task ended abnormally: {e}");
            }
        }
    }
}

struct SiteTask {
    index: usize,
    site: AcmeSite,
    issuer: Arc<dyn Issuer>,
    install: InstallFn,
    status: AcmeStatus,
    report: Option<ReportFn>,
    shutdown: ShutdownWatch,
    /// What the last installed certificate says.
    installed: Option<CertInfo>,
}

impl SiteTask {
    /// Whether `cert` is news: another serial, and not older than the one
    /// installed (a stale copy arriving late never replaces a newer one).
    fn is_news(&self, cert: &LoadedCert) -> bool {
        self.installed
            .as_ref()
            .is_none_or(|i| i.serial != cert.info.serial && cert.info.not_after >= i.not_after)
    }

    fn install(&mut self, cert: LoadedCert) {
        let (issuer, not_after) = (cert.info.issuer.clone(), cert.info.not_after);
        self.installed = Some(cert.info.clone());
        (self.install)(&self.site.name, cert);
        self.status.update(self.index, |s| {
            s.issuer = Some(issuer);
            s.not_after = Some(not_after);
        });
    }
}

async fn run_site(mut task: SiteTask) {
    let name = task.site.name.clone();
    let seed = seed_for(&name);
    let mut next = SystemTime::now();
    let mut updates = task.issuer.updates(&name);
    // Whether an order replaces a certificate the CA issued (a renewal).
    let mut issued = false;
    if let Some(cert) = task.issuer.stored(&name) {
        issued = true;
        let fresh = !needs_order(Some(&cert.info), &task.site.names, SystemTime::now());
        if fresh {
            next = renew_at(cert.info.not_before, cert.info.not_after, seed);
        }
        log::info!(
            "ACME site '{name}': using the stored certificate (valid until {}); {}",
            fmt_utc(cert.info.not_after),
            if fresh {
                format!("renewal due {}", fmt_utc(next))
            } else {
                "ordering a new one now".to_string()
            }
        );
        task.install(cert);
    }
    // One that arrived before this task subscribed counts too.
    let early = updates.as_mut().and_then(|u| u.borrow_and_update().clone());
    let mut failures: u32 = 0;
    let mut pending = early;
    loop {
        if let Some(cert) = pending.take()
            && task.is_news(&cert)
        {
            issued = true;
            failures = 0;
            next = next_renewal(&cert, seed, SystemTime::now());
            log::info!(
                "ACME site '{name}': installing the certificate the fleet stored (serial {}); \
                 next renewal {}",
                cert.info.serial,
                fmt_utc(next)
            );
            task.status.update(task.index, |s| {
                s.last_error = None;
                s.failures = 0;
            });
            task.install(cert);
        }
        task.status
            .update(task.index, |s| s.next_attempt = Some(next));
        match sleep_until(next, &mut task.shutdown, &mut updates).await {
            Wake::Shutdown => return,
            Wake::Update(cert) => {
                pending = Some(cert);
                continue;
            }
            Wake::Due => {}
        }
        let started = SystemTime::now();
        task.status
            .update(task.index, |s| s.last_attempt = Some(started));
        let result = tokio::select! {
            r = task.issuer.obtain(&name, &task.site.names) => r,
            _ = shut_down(&mut task.shutdown) => {
                log::info!("ACME site '{name}': order cancelled by shutdown");
                return;
            }
        };
        let now = SystemTime::now();
        match result {
            Ok(obtained) => {
                let ordered = matches!(obtained, Obtained::Ordered(_));
                if ordered && let Some(report) = &task.report {
                    report(&task.site.name, issued, true);
                }
                issued = true;
                failures = 0;
                let cert = obtained.cert().clone();
                next = next_renewal(&cert, seed, now);
                task.status.update(task.index, |s| {
                    s.last_error = None;
                    s.failures = 0;
                });
                if task.is_news(&cert) {
                    task.install(cert);
                }
                log::info!("ACME site '{name}': next renewal {}", fmt_utc(next));
            }
            Err(e) if e.is_fleet() => {
                // Nothing reached the CA: no order counted, no CA backoff.
                next = e.retry_after().unwrap_or(now + FLEET_RETRY).max(now);
                let text = chain(&e);
                // The same problem again (etcd still down) is logged once.
                let again = task
                    .status
                    .snapshot()
                    .get(task.index)
                    .and_then(|s| s.last_error.clone())
                    == Some(text.clone());
                let level = if again {
                    log::Level::Debug
                } else {
                    log::Level::Warn
                };
                log::log!(
                    level,
                    "ACME site '{name}': {text} (next attempt {})",
                    fmt_utc(next)
                );
                task.status
                    .update(task.index, |s| s.last_error = Some(text));
            }
            Err(e) => {
                if let Some(report) = &task.report {
                    report(&task.site.name, issued, false);
                }
                failures = failures.saturating_add(1);
                let mut due = now + backoff(failures);
                if let Some(at) = e.retry_after() {
                    due = due.max(at);
                }
                next = due;
                let text = chain(&e);
                log::warn!(
                    "ACME site '{name}': {text} (failure {failures}; next attempt {})",
                    fmt_utc(next)
                );
                task.status.update(task.index, |s| {
                    s.last_error = Some(text);
                    s.failures = failures;
                });
            }
        }
    }
}

/// When to renew `cert`: its [`renew_at`], but never back to back — the
/// guard scales with the lifetime so short-lived certificates (tests,
/// private CAs) still renew on time: 60 s for Let's Encrypt's 90 days.
fn next_renewal(cert: &LoadedCert, seed: u64, now: SystemTime) -> SystemTime {
    let due = renew_at(cert.info.not_before, cert.info.not_after, seed);
    let lifetime = cert
        .info
        .not_after
        .duration_since(cert.info.not_before)
        .unwrap_or_default();
    let gap = (lifetime / 6).clamp(Duration::from_secs(1), MIN_RENEW_GAP);
    due.max(now + gap)
}

/// Why [`sleep_until`] returned.
enum Wake {
    /// The time came.
    Due,
    /// A certificate arrived from the issuer's updates.
    Update(LoadedCert),
    /// Shutdown was signalled.
    Shutdown,
}

/// Sleeps until the wall clock reaches `at`, shutdown, or an update.
async fn sleep_until(
    at: SystemTime,
    shutdown: &mut ShutdownWatch,
    updates: &mut Option<Updates>,
) -> Wake {
    loop {
        if *shutdown.borrow() {
            return Wake::Shutdown;
        }
        let left = at
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        if left.is_zero() {
            return Wake::Due;
        }
        tokio::select! {
            _ = tokio::time::sleep(left.min(MAX_SLEEP)) => {}
            _ = shut_down(shutdown) => return Wake::Shutdown,
            cert = next_update(updates) => return Wake::Update(cert),
        }
    }
}

/// The next certificate from `updates`; never resolves without a source.
async fn next_update(updates: &mut Option<Updates>) -> LoadedCert {
    if let Some(rx) = updates {
        while rx.changed().await.is_ok() {
            if let Some(cert) = rx.borrow_and_update().clone() {
                return cert;
            }
        }
        // The sender is gone: no more updates.
        *updates = None;
    }
    std::future::pending().await
}

/// Resolves when shutdown is signalled (or its sender is gone).
async fn shut_down(shutdown: &mut ShutdownWatch) {
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use tokio::sync::{mpsc, watch};

    /// A stored certificate valid for `lifetime`, issued `age` ago.
    fn cert(names: &[&str], age: Duration, lifetime: Duration) -> LoadedCert {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("params");
        let now = SystemTime::now();
        params.not_before = (now - age).into();
        params.not_after = (now - age + lifetime).into();
        let c = params.self_signed(&key).expect("cert");
        let dir = tempfile::tempdir().expect("tmp");
        let (cp, kp) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cp, c.pem()).expect("c");
        std::fs::write(&kp, key.serialize_pem()).expect("k");
        crate::tls::load_pem_pair(&cp, &kp).expect("loads")
    }

    struct Fake {
        stored: Option<LoadedCert>,
        calls: AtomicU32,
        fail: bool,
    }

    #[async_trait]
    impl Issuer for Fake {
        fn stored(&self, _site: &str) -> Option<LoadedCert> {
            self.stored.clone()
        }
        async fn obtain(&self, _site: &str, names: &[String]) -> Result<Obtained, AcmeError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.fail {
                return Err(AcmeError::Invalid(format!("no for {}", names.join(","))));
            }
            let n: Vec<&str> = names.iter().map(String::as_str).collect();
            Ok(Obtained::Ordered(cert(
                &n,
                Duration::from_secs(60),
                Duration::from_secs(90 * 86_400),
            )))
        }
    }

    /// A fleet member's issuer: nothing stored, every obtain finds the
    /// fleet's certificate (or is told to wait), updates from a channel.
    struct FleetFake {
        fleet: LoadedCert,
        wait: bool,
        calls: AtomicU32,
        updates: watch::Sender<Option<LoadedCert>>,
    }

    #[async_trait]
    impl Issuer for FleetFake {
        fn stored(&self, _site: &str) -> Option<LoadedCert> {
            None
        }
        async fn obtain(&self, _site: &str, _names: &[String]) -> Result<Obtained, AcmeError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.wait {
                return Err(AcmeError::Fleet {
                    detail: "the fleet's last order failed".into(),
                    retry_at: Some(SystemTime::now() + Duration::from_secs(3600)),
                });
            }
            Ok(Obtained::FromFleet(self.fleet.clone()))
        }
        fn updates(&self, _site: &str) -> Option<Updates> {
            Some(self.updates.subscribe())
        }
    }

    /// A service started on its own task, stopped by [`Running::stop`].
    struct Running {
        svc: Arc<AcmeService>,
        stop: watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Running {
        fn start(svc: AcmeService) -> Running {
            let (stop, watch_rx) = watch::channel(false);
            let svc = Arc::new(svc);
            let task = tokio::spawn({
                let svc = svc.clone();
                async move { svc.start(watch_rx).await }
            });
            Running { svc, stop, task }
        }

        async fn stop(self) {
            self.stop.send(true).expect("stop");
            tokio::time::timeout(WAIT, self.task)
                .await
                .expect("stops")
                .expect("joined");
        }
    }

    fn fleet_service(
        fake: Arc<FleetFake>,
    ) -> (AcmeService, mpsc::UnboundedReceiver<String>, Arc<AtomicU32>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let install: InstallFn = Arc::new(move |site: &str, c: LoadedCert| {
            let _ = tx.send(format!("{site}:{}", c.info.serial));
        });
        let reports = Arc::new(AtomicU32::new(0));
        let counted = reports.clone();
        let sites = vec![AcmeSite {
            name: "app".into(),
            names: vec!["app.test".into()],
        }];
        let svc = AcmeService::new(fake, sites, install).with_report(Arc::new(
            move |_: &str, _: bool, _: bool| {
                counted.fetch_add(1, Ordering::SeqCst);
            },
        ));
        (svc, rx, reports)
    }

    #[tokio::test]
    async fn a_certificate_from_the_fleet_is_installed_but_not_counted_as_an_order() {
        let year = Duration::from_secs(365 * 86_400);
        let fleet = cert(&["app.test"], Duration::from_secs(60), year);
        let serial = fleet.info.serial.clone();
        let (updates, _) = watch::channel(None);
        let fake = Arc::new(FleetFake {
            fleet,
            wait: false,
            calls: AtomicU32::new(0),
            updates,
        });
        let (svc, mut installed, reports) = fleet_service(fake.clone());
        let running = Running::start(svc);
        let svc = running.svc.clone();
        let got = tokio::time::timeout(WAIT, installed.recv())
            .await
            .expect("in time");
        assert_eq!(got, Some(format!("app:{serial}")));
        // A renewal another member stored arrives through the updates and
        // is installed at once, with no call to obtain.
        let renewed = cert(&["app.test"], Duration::ZERO, year);
        let renewed_serial = renewed.info.serial.clone();
        fake.updates.send_replace(Some(renewed));
        let got = tokio::time::timeout(WAIT, installed.recv())
            .await
            .expect("in time");
        assert_eq!(got, Some(format!("app:{renewed_serial}")));
        // The same certificate again (a reconnection re-reads it) is no news.
        let again = fake.updates.borrow().clone();
        fake.updates.send_replace(again);
        assert!(
            tokio::time::timeout(Duration::from_millis(200), installed.recv())
                .await
                .is_err(),
            "installed once"
        );
        let next = svc.status()[0].next_attempt.expect("scheduled");
        assert!(next > SystemTime::now() + Duration::from_secs(200 * 86_400));
        assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
        assert_eq!(reports.load(Ordering::SeqCst), 0, "no order was made");
        running.stop().await;
    }

    #[tokio::test]
    async fn a_fleet_backoff_waits_for_the_fleets_time_without_counting_a_failure() {
        let (updates, _) = watch::channel(None);
        let fake = Arc::new(FleetFake {
            fleet: cert(&["app.test"], Duration::ZERO, Duration::from_secs(86_400)),
            wait: true,
            calls: AtomicU32::new(0),
            updates,
        });
        let (svc, _installed, reports) = fleet_service(fake.clone());
        let running = Running::start(svc);
        let svc = running.svc.clone();
        let st = tokio::time::timeout(WAIT, async {
            loop {
                let st = svc.status().remove(0);
                if st.last_error.is_some() && st.next_attempt > st.last_attempt {
                    return st;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the fleet's answer recorded");
        assert_eq!(st.failures, 0, "{st:?}");
        let wait = st
            .next_attempt
            .and_then(|n| n.duration_since(st.last_attempt.unwrap_or(n)).ok())
            .unwrap_or_default();
        assert!(
            wait >= Duration::from_secs(3500),
            "the fleet's time: {wait:?}"
        );
        assert_eq!(reports.load(Ordering::SeqCst), 0);
        running.stop().await;
    }

    fn service(fake: Arc<Fake>) -> (AcmeService, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let install: InstallFn = Arc::new(move |site: &str, c: LoadedCert| {
            let _ = tx.send(format!("{site}:{}", c.info.serial));
        });
        let sites = vec![AcmeSite {
            name: "app".into(),
            names: vec!["app.test".into()],
        }];
        (AcmeService::new(fake, sites, install), rx)
    }

    const WAIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn a_fresh_stored_certificate_is_installed_without_an_order() {
        let stored = cert(
            &["app.test"],
            Duration::from_secs(86_400),
            Duration::from_secs(90 * 86_400),
        );
        let serial = stored.info.serial.clone();
        let fake = Arc::new(Fake {
            stored: Some(stored),
            calls: AtomicU32::new(0),
            fail: false,
        });
        let (svc, mut installed) = service(fake.clone());
        let running = Running::start(svc);
        let svc = running.svc.clone();
        let got = tokio::time::timeout(WAIT, installed.recv())
            .await
            .expect("in time");
        assert_eq!(got, Some(format!("app:{serial}")));
        let next = tokio::time::timeout(WAIT, async {
            loop {
                if let Some(n) = svc.status()[0].next_attempt {
                    return n;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("scheduled");
        assert!(next > SystemTime::now() + Duration::from_secs(50 * 86_400));
        assert_eq!(fake.calls.load(Ordering::SeqCst), 0, "no order while valid");
        running.stop().await;
    }

    #[tokio::test]
    async fn a_missing_certificate_is_ordered_and_failures_back_off() {
        let fake = Arc::new(Fake {
            stored: None,
            calls: AtomicU32::new(0),
            fail: true,
        });
        let (svc, _installed) = service(fake.clone());
        let running = Running::start(svc);
        let svc = running.svc.clone();
        let st = tokio::time::timeout(WAIT, async {
            loop {
                let st = svc.status().remove(0);
                if st.failures == 1 && st.next_attempt > st.last_attempt {
                    return st;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("one failure recorded");
        assert_eq!(
            st.last_error.as_deref(),
            Some("invalid ACME request: no for app.test")
        );
        let wait = st
            .next_attempt
            .and_then(|n| n.duration_since(st.last_attempt.unwrap_or(n)).ok())
            .unwrap_or_default();
        assert!(wait >= Duration::from_secs(59), "backoff {wait:?}");
        assert_eq!(fake.calls.load(Ordering::SeqCst), 1, "no tight retry loop");
        running.stop().await;
    }

    #[tokio::test]
    async fn a_certificate_near_expiry_is_installed_then_renewed() {
        let old = cert(
            &["app.test"],
            Duration::from_secs(80 * 86_400),
            Duration::from_secs(90 * 86_400),
        );
        let old_serial = old.info.serial.clone();
        let fake = Arc::new(Fake {
            stored: Some(old),
            calls: AtomicU32::new(0),
            fail: false,
        });
        let (svc, mut installed) = service(fake.clone());
        let running = Running::start(svc);
        let first = tokio::time::timeout(WAIT, installed.recv())
            .await
            .expect("old");
        assert_eq!(first, Some(format!("app:{old_serial}")), "old one first");
        let second = tokio::time::timeout(WAIT, installed.recv())
            .await
            .expect("new");
        assert_ne!(second, first, "then the renewed one");
        assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
        running.stop().await;
    }
}
