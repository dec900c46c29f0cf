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
//! SIGHUP right then (one `kill` system call). Before the
//! fix the handler came about a millisecond later (after logging set-up and
//! argument parsing): about half of such starts died.

use crate::support::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Starts; bounded in count (and each by the harness's timeouts).
const STARTS: usize = 12;

/// When the SIGHUPs go out, in microseconds after the runtime was seen to start.
const HUPS_AT_MICROS: [u64; 6] = [0, 100, 250, 500, 1000, 2000];

/// `SigCgt` bit of SIGSEGV (signal 11).
const SIGSEGV_BIT: u64 = 1 << (11 - 1);

/// Sends SIGHUP to `pid` with one system call (spawning `kill` would take
/// milliseconds).
fn hup(pid: u32) {
    let pid = nix::unistd::Pid::from_raw(pid as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).expect("kill -HUP");
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
        // A burst over the next 2 ms (the old window was about 1 ms wide in
        // the debug build): every one must be caught; they coalesce into
        // one or more reloads.
        let started = Instant::now();
        for at in HUPS_AT_MICROS {
            while started.elapsed() < Duration::from_micros(at) {
                std::hint::spin_loop();
            }
            hup(pid);
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
