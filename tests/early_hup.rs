//! A SIGHUP sent right after `greenlight run` starts (a deploy script that
//! reloads as soon as it spawned the proxy) must never kill it: it is
//! caught from the first instant and served as a reload once the server is
//! up.
//!
//! "The first instant" has a floor no program can lower: until the dynamic
//! loader has mapped and relocated the binary, none of its code runs, and a
//! SIGHUP then has its default effect (on this 2-core machine, loaded by
//! parallel builds, that phase of the ~240 MB debug binary takes from 2 ms to
//! over 20 ms). A fixed delay after spawn is therefore either too short to be
//! robust or too long to catch the bug. The test instead waits until the
//! Rust runtime has started — it installs its SIGSEGV handler (seen in
//! `/proc/PID/status`, `SigCgt`) just before calling `main` — and sends the
//! SIGHUP right then, through a shell whose `kill` is a builtin (tens of
//! microseconds, where spawning `kill` would take milliseconds). Before the
//! fix the handler came about a millisecond later (after logging set-up and
//! argument parsing): about half of such starts died.

use crate::support::*;
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// Starts; bounded in count (and each by the harness's timeouts).
const STARTS: usize = 12;

/// `SigCgt` bit of SIGSEGV (signal 11).
const SIGSEGV_BIT: u64 = 1 << (11 - 1);

/// A shell that sends SIGHUP to each pid written to it, with its builtin `kill`.
struct Hupper {
    child: Child,
    input: ChildStdin,
}

impl Hupper {
    fn start() -> Hupper {
        let mut child = Command::new("sh")
            .args(["-c", "while read pid; do kill -s HUP $pid; done"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("sh");
        let input = child.stdin.take().expect("stdin");
        Hupper { child, input }
    }

    fn hup(&mut self, pid: u32) {
        writeln!(self.input, "{pid}").expect("write pid");
        self.input.flush().expect("flush");
    }
}

impl Drop for Hupper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The caught-signal mask of `pid`, or `None` once it is gone.
fn caught_signals(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("SigCgt:"))?;
    u64::from_str_radix(line["SigCgt:".len()..].trim(), 16).ok()
}

/// Spins (a 10 ms poll would miss a millisecond window) until the Rust
/// runtime of `pid` has installed its SIGSEGV handler; false if the
/// process ended or the deadline passed first.
fn wait_runtime_started(pid: u32, deadline: Instant) -> bool {
    while Instant::now() < deadline {
        match caught_signals(pid) {
            Some(mask) if mask & SIGSEGV_BIT != 0 => return true,
            Some(_) => std::hint::spin_loop(),
            None => return false,
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighup_right_after_start_never_kills_greenlight() {
    let app = HttpUpstream::start("app").await;
    let mut hupper = Hupper::start();
    for round in 0..STARTS {
        let ports = free_ports(2);
        let yaml = fill_ports(
            "listeners:\n  http: {address: \"127.0.0.1:{HTTP}\"}\nadmin: {address: \"127.0.0.1:{ADMIN}\"}\nsites:\n  s: {hosts: [a.test], default: true, routes: [{path: /, upstream: app}]}\nupstreams:\n  app: {active: p, pools: {p: [\"127.0.0.1:{APP}\"]}}\n",
            &[("HTTP", ports[0]), ("ADMIN", ports[1]), ("APP", app.port())],
        );
        let http: SocketAddr = ([127, 0, 0, 1], ports[0]).into();
        let admin: SocketAddr = ([127, 0, 0, 1], ports[1]).into();
        let mut proxy = ProxyProcess::start(&yaml).expect("spawn");
        let pid = proxy.pid();
        assert!(
            wait_runtime_started(pid, deadline_in(Duration::from_secs(10))),
            "round {round}: greenlight never started its runtime; stderr:\n{}",
            proxy.stderr()
        );
        hupper.hup(pid);
        if round % 2 == 1 {
            hupper.hup(pid); // two in a row: coalesced, still no harm
        }
        if let Err(e) = proxy.wait_ready(&[http, admin]).await {
            panic!("round {round}: a SIGHUP right after start killed greenlight: {e}");
        }
        let r = http_get(http, "a.test", "/").await.expect("serves");
        assert_eq!(r.status, 200, "round {round}");
        assert!(
            proxy
                .wait_for_stderr("SIGHUP: reloading", Duration::from_secs(5))
                .await,
            "round {round}: the early SIGHUP was not served as a reload:\n{}",
            proxy.stderr()
        );
        assert!(proxy.try_exit_status().is_none(), "round {round}");
        proxy.stop(Duration::from_secs(10)).await;
    }
}
