//! ERROR is for what an operator must act on. A failed client TLS handshake
//! (a scanner, plain HTTP sent to the TLS port, a garbage ClientHello) is
//! the client's doing: it is counted in
//! `greenlight_tls_handshake_failures_total` and writes no ERROR line. A
//! normal binary upgrade (SIGQUIT + `run --upgrade`, or SIGUSR2) writes none
//! either.

use crate::fixture::Scene;
use crate::support::*;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The ERROR lines of a log.
fn errors(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains(" ERROR]")).collect()
}

/// The sum of `greenlight_tls_handshake_failures_total` over `reason`s
/// other than `no_certificate`.
async fn handshake_failures(admin: SocketAddr) -> f64 {
    metric_sum(
        &metrics_text(admin).await,
        "greenlight_tls_handshake_failures_total",
        |l| !l.contains("no_certificate"),
    )
}

/// Sends `bytes` to `addr`, then reads until the server closes (bounded).
async fn send_and_drain(addr: SocketAddr, bytes: &[u8]) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(IO_TIMEOUT, s.read_to_end(&mut sink)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_tls_handshakes_are_counted_not_logged_as_errors() {
    let s = Scene::start().await;
    let before = handshake_failures(s.admin).await;
    send_and_drain(s.https, b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n").await;
    // A TLS record header announcing a handshake, then junk.
    let mut garbage = vec![0x16, 0x03, 0x01, 0x00, 0x40];
    garbage.extend((0..64u8).map(|i| i.wrapping_mul(37)));
    send_and_drain(s.https, &garbage).await;
    send_and_drain(s.https, &[0xde, 0xad, 0xbe, 0xef].repeat(64)).await;
    eventually(
        Duration::from_secs(5),
        "three more failures counted",
        || async { handshake_failures(s.admin).await >= before + 3.0 },
    )
    .await;
    // A real handshake still works.
    let (r, _) = h2_get(s.https, "app.test", "/", &s.root())
        .await
        .expect("h2 over TLS");
    assert_eq!(r.status, 200);
    let log = s.proxy.stderr();
    assert!(errors(&log).is_empty(), "ERROR lines:\n{log}");
}

fn upgrade_yaml(http: u16, admin: u16, app: u16, sock: &str) -> String {
    format!(
        "shutdown_timeout: 10s\nupgrade_socket: \"{sock}\"\nlisteners:\n  http: {{address: \"127.0.0.1:{http}\"}}\nadmin: {{address: \"127.0.0.1:{admin}\"}}\nsites:\n  s: {{hosts: [a.test], default: true, routes: [{{path: /, upstream: app}}]}}\nupstreams:\n  app: {{active: p, pools: {{p: [\"127.0.0.1:{app}\"]}}}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_upgrade_writes_no_error_line() {
    let app = HttpUpstream::start("app").await;
    let dir = tempfile::tempdir().expect("tmp");
    let sock = dir.path().join("upgrade.sock").display().to_string();
    let ports = free_ports(2);
    let http: SocketAddr = ([127, 0, 0, 1], ports[0]).into();
    let yaml = upgrade_yaml(ports[0], ports[1], app.port(), &sock);

    // SIGQUIT: the new process is started first and waits for the sockets.
    let mut old = ProxyProcess::start_ready(&yaml, &[http])
        .await
        .expect("old");
    let mut new = ProxyProcess::start_with_bin(
        &greenlight_bin(),
        &yaml,
        &["run", "--upgrade", "-c", "{config}"],
        &[],
    )
    .expect("new");
    // Let the new process reach its wait for the sockets before the old one
    // lets go (the order an operator follows); it logs its start first.
    assert!(
        new.wait_for_stderr("starting", Duration::from_secs(10))
            .await,
        "{}",
        new.stderr()
    );
    old.signal("QUIT").expect("quit");
    let status = old
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("old exits");
    assert!(status.success(), "{}", old.stderr());
    eventually(
        Duration::from_secs(10),
        "the new process serves",
        || async {
            http_get(http, "a.test", "/")
                .await
                .is_ok_and(|r| r.status == 200)
        },
    )
    .await;
    for (who, log) in [("old", old.stderr()), ("new", new.stderr())] {
        assert!(errors(&log).is_empty(), "{who}: ERROR lines:\n{log}");
    }

    // SIGUSR2: the running process starts its successor itself (whose log
    // goes to the same stderr).
    let mark = new.log_mark();
    new.signal("USR2").expect("usr2");
    assert!(
        new.wait_for_stderr_after(
            mark,
            "is ready; handing the listening sockets",
            Duration::from_secs(20)
        )
        .await,
        "{}",
        new.stderr()
    );
    let pid = successor_pid(&new.stderr());
    let _successor = KillOnDrop(pid);
    let status = new
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("exits after the hand-over");
    assert!(status.success(), "{}", new.stderr());
    eventually(Duration::from_secs(10), "the successor serves", || async {
        http_get(http, "a.test", "/")
            .await
            .is_ok_and(|r| r.status == 200)
    })
    .await;
    let log = new.stderr();
    assert!(errors(&log).is_empty(), "ERROR lines:\n{log}");
}
