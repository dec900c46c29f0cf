//! A real etcd cluster on loopback for the fleet-mode tests: N members of
//! Debian's `etcd` (package `etcd-server`, installed by `./test.sh`), each on
//! two free ports (client, peer) with its own data directory, so a member can
//! be killed and started again with its data (quorum loss and recovery).

use super::ports::free_ports;
use super::{IO_TIMEOUT, deadline_in, wait_until_async};
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a member (or the whole cluster) may take to answer `/health`.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Whole-cluster start attempts (a port taken between picking and binding).
const START_ATTEMPTS: usize = 3;

/// One etcd member: its ports and, while running, its process.
struct Member {
    name: String,
    client: u16,
    peer: u16,
    /// Plain-HTTP `/health` (etcd's metrics listener), so health is read
    /// the same way when clients must use TLS.
    metrics: u16,
    data: PathBuf,
    child: Option<Child>,
}

/// A running etcd cluster; every member is killed on drop.
pub struct EtcdCluster {
    dir: tempfile::TempDir,
    members: Vec<Member>,
    initial: String,
    /// Client TLS: certificate and key files (clients then need https).
    tls: Option<(PathBuf, PathBuf)>,
}

fn etcd_bin() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("etcd"))
            .find(|f| f.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("etcd not found on PATH: install Debian's etcd-server (./test.sh does)")
    })
}

impl EtcdCluster {
    /// Starts `n` members and waits until every one answers healthy.
    pub async fn start(n: usize) -> EtcdCluster {
        EtcdCluster::start_with(n, None).await
    }

    /// [`EtcdCluster::start`] with client TLS (`cert`, `key`: PEM files for
    /// 127.0.0.1); peers still talk plain HTTP on loopback.
    pub async fn start_tls(n: usize, cert: PathBuf, key: PathBuf) -> EtcdCluster {
        EtcdCluster::start_with(n, Some((cert, key))).await
    }

    async fn start_with(n: usize, tls: Option<(PathBuf, PathBuf)>) -> EtcdCluster {
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let mut c = EtcdCluster::spawn(n, tls.clone());
            if c.wait_healthy(START_TIMEOUT).await {
                return c;
            }
            last = c.log();
            c.stop_all();
        }
        panic!("etcd did not start in {START_ATTEMPTS} attempts; last log:\n{last}");
    }

    fn spawn(n: usize, tls: Option<(PathBuf, PathBuf)>) -> EtcdCluster {
        let dir = tempfile::tempdir().expect("temporary directory for etcd");
        let ports = free_ports(3 * n);
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                client: ports[3 * i],
                peer: ports[3 * i + 1],
                metrics: ports[3 * i + 2],
                data: dir.path().join(format!("m{i}")),
                child: None,
            })
            .collect();
        let initial = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        let mut c = EtcdCluster {
            dir,
            members,
            initial,
            tls,
        };
        for i in 0..n {
            c.start_member(i);
        }
        c
    }

    /// Starts member `i` (again: with its data directory as it was left).
    pub fn start_member(&mut self, i: usize) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("m{i}.log")))
            .expect("etcd log file");
        let m = &self.members[i];
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let client = format!("{scheme}://127.0.0.1:{}", m.client);
        let peer = format!("http://127.0.0.1:{}", m.peer);
        let metrics = format!("http://127.0.0.1:{}", m.metrics);
        let mut cmd = Command::new(etcd_bin());
        if let Some((cert, key)) = &self.tls {
            cmd.arg("--cert-file").arg(cert).arg("--key-file").arg(key);
        }
        let child = cmd
            .args(["--name", &m.name, "--data-dir"])
            .arg(&m.data)
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--listen-metrics-urls", &metrics])
            .args(["--initial-cluster", &self.initial])
            .args(["--initial-cluster-token", "greenlight-test"])
            .args(["--initial-cluster-state", "new"])
            // Quick elections: a lost leader is noticed in about a second.
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("etcd log file"))
            .stderr(log)
            .spawn()
            .expect("start etcd");
        self.members[i].child = Some(child);
    }

    /// Kills member `i` at once (SIGKILL), as a crash would.
    pub fn kill_member(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills every member.
    pub fn stop_all(&mut self) {
        for i in 0..self.members.len() {
            self.kill_member(i);
        }
    }

    /// Starts every member that is not running.
    pub fn start_all(&mut self) {
        for i in 0..self.members.len() {
            if self.members[i].child.is_none() {
                self.start_member(i);
            }
        }
    }

    /// The client endpoints, `127.0.0.1:PORT` each.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.client))
            .collect()
    }

    /// The endpoints as a YAML flow list, for a `cluster.etcd:` value.
    pub fn yaml_list(&self) -> String {
        format!("[{}]", self.endpoints().join(", "))
    }

    /// Waits until every running member answers `/health` with true (on
    /// its plain metrics listener).
    pub async fn wait_healthy(&self, timeout: Duration) -> bool {
        let ports: Vec<u16> = self
            .members
            .iter()
            .filter(|m| m.child.is_some())
            .map(|m| m.metrics)
            .collect();
        wait_until_async(deadline_in(timeout), || {
            let ports = ports.clone();
            async move {
                for p in ports {
                    let addr = ([127, 0, 0, 1], p).into();
                    let ok = match super::client::http_get(addr, "127.0.0.1", "/health").await {
                        Ok(r) => r.status == 200 && r.text().contains("true"),
                        Err(_) => false,
                    };
                    if !ok {
                        return false;
                    }
                }
                true
            }
        })
        .await
    }

    /// A client of this cluster, for a test that writes keys itself (as an
    /// operator's `etcdctl` would).
    pub async fn client(&self) -> etcd_client::Client {
        tokio::time::timeout(
            IO_TIMEOUT,
            etcd_client::Client::connect(self.endpoints(), None),
        )
        .await
        .expect("etcd connect in time")
        .expect("etcd connect")
    }

    /// Every member's log so far.
    pub fn log(&self) -> String {
        (0..self.members.len())
            .map(|i| {
                let text = fs::read_to_string(self.dir.path().join(format!("m{i}.log")))
                    .unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(20).collect();
                format!(
                    "--- m{i}\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}
