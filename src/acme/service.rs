//! The background service that keeps every ACME site's certificate valid.
//!
//! Owns the per-site loop and its status; uses an [`Issuer`] (the
//! [`AcmeManager`] in greenlight, a fake in unit tests) for stored
//! certificates and orders. Must not touch the proxy directly: certificates
//! go out through the install callback, which greenlight points at its
//! `CertStore`.
//!
//! Per site (one task each, all started at once so start-up never waits):
//! ```text
//!   stored certificate loads? ──▶ install it now
//!       still fresh (names match, > 1/3 lifetime left)? ──▶ next = renew_at
//!       otherwise ──▶ next = now
//!   loop: sleep until next (wall clock, woken hourly to re-check; shutdown ends it)
//!         obtain ──ok──▶ install, failures = 0, next = renew_at (at least 1 min ahead)
//!                └─err─▶ failures += 1, next = now + max(backoff, Retry-After)
//! ```
//! A shutdown also cancels an order in flight (its challenge answers are
//! removed by their guards).

use super::error::{AcmeError, chain};
use super::order::AcmeManager;
use super::schedule::{backoff, fmt_utc, needs_order, renew_at, seed_for};
use crate::tls::LoadedCert;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::task::JoinSet;

/// Longest single sleep: the wall clock is re-read at least this often, so
/// suspend/resume or clock changes cannot delay a renewal for long.
const MAX_SLEEP: Duration = Duration::from_secs(3600);
/// Least time between a successful order and the next one.
const MIN_RENEW_GAP: Duration = Duration::from_secs(60);

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

/// Where certificates come from: stored ones and new orders.
#[async_trait]
pub trait Issuer: Send + Sync {
    /// The site's stored certificate if it is usable (no network).
    fn stored(&self, site: &str) -> Option<LoadedCert>;
    /// A new certificate for `names`, stored for the next start.
    async fn obtain(&self, site: &str, names: &[String]) -> Result<LoadedCert, AcmeError>;
}

#[async_trait]
impl Issuer for AcmeManager {
    fn stored(&self, site: &str) -> Option<LoadedCert> {
        AcmeManager::stored(self, site)
    }

    async fn obtain(&self, site: &str, names: &[String]) -> Result<LoadedCert, AcmeError> {
        AcmeManager::obtain(self, site, names).await
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

/// Told the outcome of every order: (site, succeeded).
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
}

impl SiteTask {
    fn install(&self, cert: LoadedCert) {
        let (issuer, not_after) = (cert.info.issuer.clone(), cert.info.not_after);
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
    let mut failures: u32 = 0;
    loop {
        task.status
            .update(task.index, |s| s.next_attempt = Some(next));
        if !sleep_until(next, &mut task.shutdown).await {
            return;
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
        if let Some(report) = &task.report {
            report(&task.site.name, issued, result.is_ok());
        }
        issued |= result.is_ok();
        match result {
            Ok(cert) => {
                failures = 0;
                let due = renew_at(cert.info.not_before, cert.info.not_after, seed);
                // Never renew back to back, but scale the guard with the
                // lifetime so short-lived certificates (tests, private CAs)
                // still renew on time: 60 s for Let's Encrypt's 90 days.
                let lifetime = cert
                    .info
                    .not_after
                    .duration_since(cert.info.not_before)
                    .unwrap_or_default();
                let gap = (lifetime / 6).clamp(Duration::from_secs(1), MIN_RENEW_GAP);
                next = due.max(now + gap);
                task.status.update(task.index, |s| {
                    s.last_error = None;
                    s.failures = 0;
                });
                task.install(cert);
                log::info!("ACME site '{name}': next renewal {}", fmt_utc(next));
            }
            Err(e) => {
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

/// Sleeps until the wall clock reaches `at`; false if shut down first.
async fn sleep_until(at: SystemTime, shutdown: &mut ShutdownWatch) -> bool {
    loop {
        if *shutdown.borrow() {
            return false;
        }
        let left = at
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        if left.is_zero() {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(left.min(MAX_SLEEP)) => {}
            _ = shut_down(shutdown) => return false,
        }
    }
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
        async fn obtain(&self, _site: &str, names: &[String]) -> Result<LoadedCert, AcmeError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.fail {
                return Err(AcmeError::Invalid(format!("no for {}", names.join(","))));
            }
            let n: Vec<&str> = names.iter().map(String::as_str).collect();
            Ok(cert(
                &n,
                Duration::from_secs(60),
                Duration::from_secs(90 * 86_400),
            ))
        }
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
        let (stop, watch_rx) = watch::channel(false);
        let svc = Arc::new(svc);
        let running = tokio::spawn({
            let svc = svc.clone();
            async move { svc.start(watch_rx).await }
        });
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
        stop.send(true).expect("stop");
        tokio::time::timeout(WAIT, running)
            .await
            .expect("stops")
            .expect("joined");
    }

    #[tokio::test]
    async fn a_missing_certificate_is_ordered_and_failures_back_off() {
        let fake = Arc::new(Fake {
            stored: None,
            calls: AtomicU32::new(0),
            fail: true,
        });
        let (svc, _installed) = service(fake.clone());
        let (stop, watch_rx) = watch::channel(false);
        let svc = Arc::new(svc);
        let running = tokio::spawn({
            let svc = svc.clone();
            async move { svc.start(watch_rx).await }
        });
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
        stop.send(true).expect("stop");
        tokio::time::timeout(WAIT, running)
            .await
            .expect("stops")
            .expect("joined");
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
        let (stop, watch_rx) = watch::channel(false);
        let running = tokio::spawn(async move { svc.start(watch_rx).await });
        let first = tokio::time::timeout(WAIT, installed.recv())
            .await
            .expect("old");
        assert_eq!(first, Some(format!("app:{old_serial}")), "old one first");
        let second = tokio::time::timeout(WAIT, installed.recv())
            .await
            .expect("new");
        assert_ne!(second, first, "then the renewed one");
        assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
        stop.send(true).expect("stop");
        tokio::time::timeout(WAIT, running)
            .await
            .expect("stops")
            .expect("joined");
    }
}
