//! Fleet ACME against real parts: a 3-member etcd (Debian's etcd), Pebble
//! (Let's Encrypt's test CA) and three greenlight processes with the same
//! `tls: acme` site. Pebble validates through a test load balancer
//! (`support/balancer.rs`) that sends it to a member that does NOT hold the
//! fleet lock, so a validation only succeeds if the orderer's answer reached
//! the other members through etcd.
//!
//! Proven here: while the lock is held (by the test, as an operator could)
//! no member orders; released, exactly one order reaches Pebble (its log
//! counts new orders) and all three serve the same certificate (a real TLS
//! handshake to each); a renewal is again one order, swapped on all three;
//! with etcd down no member orders, every member keeps serving, a member
//! restarted then serves its certificate from its local files, and when etcd
//! is back the fleet renews once. HTTP-01 and TLS-ALPN-01 both. Every wait
//! is a bounded poll.

use crate::cluster::{cluster_view, etcd as answer};
use crate::support::balancer::{Balancer, Chooser};
use crate::support::etcd::EtcdCluster;
use crate::support::pebble::{Pebble, PebbleOptions};
use crate::support::*;
use etcd_client::{GetOptions, LockOptions};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PREFIX: &str = "/greenlight/test";
/// An order, or a renewal, may take this long to reach every member (it
/// takes about a second on loopback; this only bounds a failing test).
const ISSUE: Duration = Duration::from_secs(60);
/// The members' logs say they hold or released the fleet lock.
const TOOK: &str = "took the fleet lock";
const RELEASED: &str = "released the fleet lock";

struct Member {
    https: SocketAddr,
    admin: SocketAddr,
    addrs: [SocketAddr; 3],
    yaml: String,
    proxy: ProxyProcess,
}

/// Where each connection through a balancer went: (target, lock holders).
type Choices = Arc<Mutex<Vec<(usize, Vec<usize>)>>>;

struct AcmeFleet {
    etcd: EtcdCluster,
    pebble: Pebble,
    root: String,
    members: Vec<Member>,
    /// Each member's current stderr log (replaced when it restarts).
    logs: Arc<Mutex<Vec<PathBuf>>>,
    choices: Choices,
    http_lb: Balancer,
    tls_lb: Balancer,
    _app: HttpUpstream,
    dir: tempfile::TempDir,
}

/// The members holding the fleet lock now, by their own logs.
fn holders(logs: &[PathBuf]) -> Vec<usize> {
    logs.iter()
        .enumerate()
        .filter(|(_, p)| {
            let log = std::fs::read_to_string(p).unwrap_or_default();
            log.matches(TOOK).count() > log.matches(RELEASED).count()
        })
        .map(|(i, _)| i)
        .collect()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl AcmeFleet {
    /// etcd, Pebble issuing `validity`-second certificates, the balancers,
    /// then three members started while the test holds the fleet lock; the
    /// lock is released once all three wait for it.
    async fn start(challenge: &str, validity: u64) -> AcmeFleet {
        let dir = tempfile::tempdir().expect("tmp");
        let etcd = EtcdCluster::start(3).await;
        let app = HttpUpstream::start("app").await;
        let ports = free_ports(9);
        let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let logs: Arc<Mutex<Vec<PathBuf>>> = Arc::default();
        let choices: Choices = Arc::default();
        let choose: Chooser = {
            let (logs, choices) = (logs.clone(), choices.clone());
            Arc::new(move || {
                let held = holders(&lock(&logs));
                let target = (0..3).find(|i| !held.contains(i)).unwrap_or(0);
                lock(&choices).push((target, held));
                target
            })
        };
        let http_lb =
            Balancer::start((0..3).map(|i| addr(ports[3 * i])).collect(), choose.clone()).await;
        let tls_lb =
            Balancer::start((0..3).map(|i| addr(ports[3 * i + 1])).collect(), choose).await;
        let (h, t) = (http_lb.port(), tls_lb.port());
        let pebble = tokio::task::spawn_blocking(move || {
            Pebble::start(PebbleOptions {
                http_port: h,
                tls_port: t,
                validity_secs: Some(validity),
            })
        })
        .await
        .unwrap_or_else(|e| match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("pebble start task: {e}"),
        });
        let root = pebble.issued_root_pem();

        // The test holds the fleet lock while the members start.
        let mut c = etcd.client().await;
        let lease = answer(c.lease_grant(60, None)).await.id();
        answer(c.lock(
            format!("{PREFIX}/acme/lock/app"),
            Some(LockOptions::new().with_lease(lease)),
        ))
        .await;
        let mut members = Vec::new();
        for i in 0..3 {
            let addrs = [
                addr(ports[3 * i]),
                addr(ports[3 * i + 1]),
                addr(ports[3 * i + 2]),
            ];
            let storage = dir.path().join(format!("m{i}"));
            let yaml = format!(
                r#"
access_log: off
certs_dir: "{storage}"
acme:
  email: ops@app.test
  directory: "{directory}"
  ca_root: "{ca}"
  storage: "{storage}/acme"
  challenge: {challenge}
listeners:
  http: {{address: "{http}"}}
  https: {{address: "{https}", tls: true}}
admin: {{address: "{admin}"}}
sites:
  app:
    hosts: [app.test]
    tls: acme
    plain_http: redirect
    routes: [{{path: /, upstream: app}}]
upstreams:
  app: {{active: main, pools: {{main: ["127.0.0.1:{app}"]}}}}
cluster:
  etcd: {etcd}
  prefix: {PREFIX}
  lease_ttl: 2s
"#,
                storage = storage.display(),
                directory = pebble.directory_url(),
                ca = pebble.ca_pem_path().display(),
                http = addrs[0],
                https = addrs[1],
                admin = addrs[2],
                app = app.port(),
                etcd = etcd.yaml_list(),
            );
            let proxy = ProxyProcess::start_ready(&yaml, &addrs)
                .await
                .expect("greenlight starts");
            lock(&logs).push(proxy.dir().join("stderr.log"));
            members.push(Member {
                https: addrs[1],
                admin: addrs[2],
                addrs,
                yaml,
                proxy,
            });
        }
        let fleet = AcmeFleet {
            etcd,
            pebble,
            root,
            members,
            logs,
            choices,
            http_lb,
            tls_lb,
            _app: app,
            dir,
        };
        fleet
            .wait(
                "all three connected and waiting for the lock the test holds",
                || async {
                    let mut ok = true;
                    for m in &fleet.members {
                        let v = cluster_view(m.admin).await;
                        ok &= v["members"].as_array().is_some_and(|a| a.len() == 3)
                            && m.proxy.stderr().contains("waiting for the fleet lock");
                    }
                    ok
                },
            )
            .await;
        assert_eq!(
            fleet.pebble.order_count(),
            0,
            "no order while the lock is held"
        );
        answer(c.lease_revoke(lease)).await;
        fleet
    }

    /// Polls `cond` for at most [`ISSUE`]; fails with every member's log.
    async fn wait<F, Fut>(&self, what: &str, cond: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        if !wait_until_async(deadline_in(ISSUE), cond).await {
            panic!(
                "not reached within {ISSUE:?}: {what}\n{}",
                self.report().await
            );
        }
    }

    async fn report(&self) -> String {
        let mut out = format!("serials: {:?}\n", self.serials().await);
        for (i, m) in self.members.iter().enumerate() {
            out += &format!("--- member {i}\n{}\n", m.proxy.stderr());
        }
        out + "--- pebble\n" + &self.pebble.log()
    }

    /// The serial each member serves for app.test, if Pebble issued it.
    async fn serials(&self) -> Vec<Option<String>> {
        let mut out = Vec::new();
        for m in &self.members {
            out.push(
                tls_connect(m.https, "app.test", &["http/1.1"], &self.root)
                    .await
                    .ok()
                    .map(|(_, info)| info.serial),
            );
        }
        out
    }

    /// Waits until all three serve one Pebble certificate not in `not`;
    /// returns its serial.
    async fn wait_same_serial(&self, not: &[String], what: &str) -> String {
        self.wait(what, || async {
            let s = self.serials().await;
            s[0].as_ref().is_some_and(|x| !not.contains(x)) && s.iter().all(|x| x == &s[0])
        })
        .await;
        self.serials().await[0].clone().expect("a serial")
    }

    /// How many members logged ordering a certificate (each order logs once).
    fn orderers(&self) -> Vec<usize> {
        let mut out = Vec::new();
        for (i, m) in self.members.iter().enumerate() {
            for _ in 0..m.proxy.stderr().matches("ordering a certificate").count() {
                out.push(i);
            }
        }
        out
    }

    /// The fleet's stored certificate: (serial as the TLS client prints it:
    /// hex without colons, by).
    async fn stored(&self) -> (String, String) {
        let mut c = self.etcd.client().await;
        let r = answer(c.get(format!("{PREFIX}/acme/certs/app"), None)).await;
        let v: serde_json::Value =
            serde_json::from_slice(r.kvs().first().expect("stored").value()).expect("json");
        (
            v["serial"].as_str().unwrap_or("").replace(':', ""),
            v["by"].as_str().unwrap_or("").to_string(),
        )
    }

    /// Keys under `<prefix>/acme/<rest>`.
    async fn keys(&self, rest: &str) -> usize {
        let mut c = self.etcd.client().await;
        let r = answer(c.get(
            format!("{PREFIX}/acme/{rest}"),
            Some(GetOptions::new().with_prefix()),
        ))
        .await;
        r.kvs().len()
    }

    /// Every validation (through either balancer) went to a member that
    /// did not hold the lock while exactly one did (the orderer); returns
    /// how many went through `lb`.
    fn validations_reached_non_orderers(&self, lb: &Balancer) -> usize {
        let choices = lock(&self.choices).clone();
        for (target, held) in &choices {
            assert_eq!(held.len(), 1, "one holder at validation time: {choices:?}");
            assert!(!held.contains(target), "sent to a non-orderer: {choices:?}");
        }
        lb.picks().len()
    }

    /// Measured from the members' log timestamps (same host, same clock):
    /// the orderer's wait for every member to serve the answer, and per
    /// member how long after the orderer stored `serial` it served it (ms).
    fn measure(&self, serial: &str) -> (Vec<String>, Vec<i64>) {
        let colon: Vec<String> = serial
            .as_bytes()
            .chunks(2)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        let colon = colon.join(":");
        let logs: Vec<String> = self.members.iter().map(|m| m.proxy.stderr()).collect();
        let find = |log: &str, what: &str| {
            log.lines()
                .find(|l| l.contains(what) && l.contains(&colon))
                .and_then(log_ms)
        };
        let answers = logs
            .iter()
            .flat_map(|l| l.lines())
            .filter_map(|l| {
                l.split("every member serves the answer for app.test (")
                    .nth(1)
            })
            .filter_map(|rest| rest.split(" after").next().map(str::to_string))
            .collect();
        let stored = logs
            .iter()
            .find_map(|l| find(l, "stored for the fleet"))
            .expect("the orderer logged storing it");
        let served = logs
            .iter()
            .map(|l| find(l, "now serving ACME certificate").map_or(-1, |t| t - stored))
            .collect();
        (answers, served)
    }

    async fn orders_metric(&self) -> f64 {
        let mut sum = 0.0;
        for m in &self.members {
            sum += metric_sum(
                &metrics_text(m.admin).await,
                "greenlight_acme_orders_total",
                |l| l.contains("result=\"ok\""),
            );
        }
        sum
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_orders_a_certificate_once_and_renews_it_once_on_every_member() {
    // 30 s certificates: renewal is due about 20 s after issuance.
    let f = AcmeFleet::start("http-01", 30).await;
    let first = f
        .wait_same_serial(&[], "one certificate on all three")
        .await;
    assert_eq!(f.pebble.order_count(), 1, "{}", f.report().await);
    let orderers = f.orderers();
    assert_eq!(orderers.len(), 1, "one member ordered: {orderers:?}");
    let validations = f.validations_reached_non_orderers(&f.http_lb);
    assert!(validations >= 1, "Pebble validated through the balancer");
    let (serial, by) = f.stored().await;
    assert_eq!(serial, first, "the stored certificate is the one served");
    assert!(
        by.ends_with(&format!(":{}", f.members[orderers[0]].admin.port())),
        "{by}"
    );
    assert_eq!(f.keys("account").await, 1, "the account is shared");
    f.wait("the answers are withdrawn with the lock", || async {
        f.keys("challenges/").await == 0 && f.keys("lock/").await == 0
    })
    .await;
    // Every member's /api/cluster shows the fleet's certificate (never its
    // key), the lock free and no failed order.
    for m in &f.members {
        let v = cluster_view(m.admin).await;
        let app = &v["acme"]["app"];
        let shown = app["certificate"]["serial"]
            .as_str()
            .unwrap_or("")
            .replace(':', "");
        assert_eq!(shown, serial, "{v}");
        assert_eq!(app["certificate"]["by"].as_str(), Some(by.as_str()));
        assert_eq!(app["locked"], false, "{v}");
        assert!(app["backoff"].is_null(), "{v}");
        assert!(!v.to_string().contains("PRIVATE KEY"), "no key in the API");
    }
    // And `greenlight status` says it in a line.
    let o = admin_cli(f.members[0].admin, &["status"]).await;
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        text.contains("acme app: serial ") && text.contains(&format!("ordered by {by}")),
        "{text}"
    );
    assert_eq!(f.orders_metric().await, 1.0, "one order in the metrics");
    // Every member keeps the certificate in its local storage (the key 0600).
    use std::os::unix::fs::PermissionsExt;
    for i in 0..3 {
        let key = f.dir.path().join(format!("m{i}/acme/app/privkey.pem"));
        let mode = std::fs::metadata(&key)
            .expect("stored locally")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{}", key.display());
    }

    let renewed = f
        .wait_same_serial(
            std::slice::from_ref(&first),
            "the renewed certificate on all three",
        )
        .await;
    assert_eq!(
        f.pebble.order_count(),
        2,
        "one order per round\n{}",
        f.report().await
    );
    assert_eq!(f.orderers().len(), 2);
    assert_eq!(f.stored().await.0, renewed);
    assert_eq!(f.orders_metric().await, 2.0);
    f.validations_reached_non_orderers(&f.http_lb);
    for (round, serial) in [(1, &first), (2, &renewed)] {
        let (_, served) = f.measure(serial);
        eprintln!(
            "fleet ACME round {round}: each member served the certificate {served:?} ms after \
             the orderer stored it"
        );
    }
    let (answers, _) = f.measure(&renewed);
    eprintln!(
        "fleet ACME: every member served the challenge answer {answers:?} after it was stored (per order)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_alpn01_validation_reaching_a_member_that_did_not_order_succeeds() {
    let f = AcmeFleet::start("tls-alpn-01", 3600).await;
    let serial = f
        .wait_same_serial(&[], "one certificate on all three")
        .await;
    assert_eq!(f.pebble.order_count(), 1);
    assert_eq!(f.orderers().len(), 1);
    assert!(f.validations_reached_non_orderers(&f.tls_lb) >= 1);
    assert!(f.http_lb.picks().is_empty(), "no HTTP-01 used");
    let answered: usize = f
        .members
        .iter()
        .map(|m| {
            m.proxy
                .stderr()
                .matches("answered an ACME tls-alpn-01 validation")
                .count()
        })
        .sum();
    assert!(answered >= 1, "{}", f.report().await);
    assert_eq!(f.stored().await.0, serial);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_etcd_down_no_member_orders_and_every_member_keeps_its_certificate() {
    // 45 s certificates: renewal is due about 30 s after issuance.
    let mut f = AcmeFleet::start("http-01", 45).await;
    let first = f
        .wait_same_serial(&[], "one certificate on all three")
        .await;
    assert_eq!(f.pebble.order_count(), 1);
    f.etcd.stop_all();
    // Renewal time comes: each member says why it does not order.
    f.wait("every member refuses to order without etcd", || async {
        let mut ok = true;
        for m in &f.members {
            let c = &admin_json(m.admin, "/api/certificates").await["certificates"][0];
            ok &= c["acme"]["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("etcd is unreachable"));
        }
        ok
    })
    .await;
    assert_eq!(f.pebble.order_count(), 1, "no order without the fleet lock");
    assert_eq!(
        f.serials().await,
        vec![Some(first.clone()); 3],
        "all keep serving"
    );
    // A member that did not order, restarted without etcd, serves the
    // certificate from its local files from the first handshake.
    let i = (0..3)
        .find(|i| !f.orderers().contains(i))
        .expect("a non-orderer");
    f.members[i].proxy.stop(Duration::from_secs(5)).await;
    let proxy = ProxyProcess::start_ready(&f.members[i].yaml, &f.members[i].addrs)
        .await
        .expect("restarts without etcd");
    lock(&f.logs)[i] = proxy.dir().join("stderr.log");
    f.members[i].proxy = proxy;
    assert_eq!(
        f.serials().await[i].as_deref(),
        Some(first.as_str()),
        "served from the local files"
    );

    f.etcd.start_all();
    assert!(
        f.etcd.wait_healthy(Duration::from_secs(20)).await,
        "etcd back"
    );
    let renewed = f
        .wait_same_serial(&[first], "the fleet renews once etcd is back")
        .await;
    assert_eq!(f.pebble.order_count(), 2, "one order\n{}", f.report().await);
    assert_eq!(f.stored().await.0, renewed);
}

/// A log line's time of day in ms (`[2026-12-07T13:55:58.722Z INFO ]`).
fn log_ms(line: &str) -> Option<i64> {
    let t = line.split('T').nth(1)?.split('Z').next()?;
    let mut parts = t.split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3_600_000 + m * 60_000 + (s * 1000.0).round() as i64)
}

async fn admin_json(admin: SocketAddr, path: &str) -> serde_json::Value {
    let mut c = H1Conn::connect(admin).await.expect("admin");
    c.get(path, &admin.to_string()).await.expect("api").json()
}
