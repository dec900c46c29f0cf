//! The keep-alive pool of upstream connections, through the real binary:
//! an idle pooled connection is reused; one the upstream closed (or half
//! closed) while idle, or sent stray bytes on, is never handed to a request;
//! and a half-closed idle one is let go without waiting for a request
//! (vendored pingora-core `connectors/idle.rs`, which replaced Pingora's
//! watcher task per idle connection with checks on take and a sweep).

use crate::support::*;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

/// What the test asks every idle upstream connection to do.
#[derive(Clone, Copy, Debug)]
enum Poke {
    /// Send a FIN (shutdown of the write side), keep reading.
    HalfClose,
    /// Write a complete, unrequested response.
    Stray,
}

/// A poke and who waits for it to be done.
type PokeTx = mpsc::UnboundedSender<(Poke, oneshot::Sender<()>)>;

#[derive(Default)]
struct Shared {
    accepted: AtomicU64,
    open: AtomicUsize,
    /// (path, connection id) of every request, in arrival order.
    requests: Mutex<Vec<(String, u64)>>,
    /// One sender per open connection, to poke it while it is idle.
    pokes: Mutex<Vec<PokeTx>>,
}

/// An HTTP/1.1 upstream that answers every GET with `conn=<id> path=<path>`
/// on a keep-alive connection and can be told to misbehave on its idle ones.
struct PokeUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl PokeUpstream {
    async fn start() -> PokeUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let tcp = accept(&listener).await;
                let id = s.accepted.fetch_add(1, Ordering::SeqCst) + 1;
                let (tx, rx) = mpsc::unbounded_channel();
                s.pokes.lock().unwrap().push(tx);
                s.open.fetch_add(1, Ordering::SeqCst);
                let s = s.clone();
                conns.spawn(async move {
                    let _ = serve(tcp, id, &s, rx).await;
                    s.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        PokeUpstream { addr, shared, task }
    }

    fn requests(&self) -> Vec<(String, u64)> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Pokes every open connection; returns once each has done it.
    async fn poke_all(&self, poke: Poke) {
        let senders: Vec<_> = self.shared.pokes.lock().unwrap().clone();
        for tx in senders {
            let (done, wait) = oneshot::channel();
            if tx.send((poke, done)).is_ok() {
                let _ = tokio::time::timeout(IO_TIMEOUT, wait).await;
            }
        }
    }
}

impl Drop for PokeUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves one connection: requests in, answers out, pokes while idle.
async fn serve(
    mut tcp: TcpStream,
    id: u64,
    shared: &Shared,
    mut pokes: mpsc::UnboundedReceiver<(Poke, oneshot::Sender<()>)>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut write_open = true;
    loop {
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            buf.drain(..end + 4);
            let path = head.split(' ').nth(1).unwrap_or("").to_string();
            shared.requests.lock().unwrap().push((path.clone(), id));
            if write_open {
                let body = format!("conn={id} path={path}");
                // What the answer says about its connection, by path (the
                // connection itself is kept open either way): see
                // `what_an_answer_says_about_its_connection_is_honoured`.
                let head = if path.starts_with("/close") {
                    "HTTP/1.1 200 OK\r\nConnection: close"
                } else if path.starts_with("/http10-ka") {
                    "HTTP/1.0 200 OK\r\nConnection: keep-alive"
                } else if path.starts_with("/http10") {
                    "HTTP/1.0 200 OK"
                } else {
                    "HTTP/1.1 200 OK"
                };
                let resp = format!("{head}\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                tcp.write_all(resp.as_bytes()).await?;
            }
        }
        tokio::select! {
            n = tcp.read(&mut chunk) => {
                let n = n?;
                if n == 0 {
                    return Ok(());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            Some((poke, done)) = pokes.recv() => {
                match poke {
                    Poke::HalfClose => {
                        tcp.shutdown().await?;
                        write_open = false;
                    }
                    Poke::Stray => {
                        tcp.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale").await?;
                    }
                }
                let _ = done.send(());
            }
        }
    }
}

async fn start() -> (PokeUpstream, ProxyProcess, SocketAddr) {
    let up = PokeUpstream::start().await;
    let (proxy, http, _admin) = start_single_upstream(
        "app",
        &format!(
            "    active: main\n    pools: {{main: [\"127.0.0.1:{}\"]}}\n",
            up.addr.port()
        ),
    )
    .await;
    (up, proxy, http)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_requests_reuse_one_upstream_connection() {
    let (up, _proxy, http) = start().await;
    // One client connection, then a fresh client connection each time: the
    // upstream connection is the proxy's, kept either way.
    let mut c = H1Conn::connect(http).await.expect("connect");
    for i in 0..5 {
        let r = c.get(&format!("/ka/{i}"), "a.test").await.expect("ok");
        assert_eq!(r.text(), format!("conn=1 path=/ka/{i}"));
    }
    // A fresh client connection may send its request before the previous
    // request's task has handed its upstream connection back (the client
    // has the whole answer a moment earlier): then a second upstream
    // connection is opened, and kept. Reuse means a few, not one per request.
    for i in 0..5 {
        let r = http_get(http, "a.test", &format!("/fresh/{i}"))
            .await
            .expect("ok");
        assert!(
            r.text().ends_with(&format!(" path=/fresh/{i}")),
            "{}",
            r.text()
        );
    }
    let accepted = up.shared.accepted.load(Ordering::SeqCst);
    assert!(
        accepted <= 2,
        "{accepted} upstream connections for 10 sequential requests: {:?}",
        up.requests()
    );
}

/// The upstream's answer decides whether its connection is kept: an
/// HTTP/1.1 answer is kept unless it says `Connection: close`, an HTTP/1.0
/// one only when it says `Connection: keep-alive`. (The vendored pingora-core
/// hands the response header itself to the proxy and keeps only this
/// decision, taken when the header is read: issue #15.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_an_answer_says_about_its_connection_is_honoured() {
    let (up, _proxy, http) = start().await;
    let mut c = H1Conn::connect(http).await.expect("connect");
    let paths = [
        "/a",
        "/b",
        "/close",
        "/c",
        "/http10",
        "/d",
        "/http10-ka",
        "/e",
    ];
    for path in paths {
        let r = c.get(path, "a.test").await.expect(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert!(r.text().ends_with(&format!(" path={path}")), "{}", r.text());
    }
    let conns: Vec<u64> = up.requests().into_iter().map(|(_, id)| id).collect();
    assert_eq!(
        conns,
        vec![1, 1, 1, 2, 2, 3, 3, 3],
        "upstream connection per request: {:?}",
        up.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_the_upstream_closed_is_not_used() {
    let (up, _proxy, http) = start().await;
    let mut c = H1Conn::connect(http).await.expect("connect");
    assert_eq!(
        c.get("/one", "a.test").await.expect("one").text(),
        "conn=1 path=/one"
    );
    // The upstream sends its FIN while the connection idles in the pool but
    // would still read: a request written to it would be seen here.
    up.poke_all(Poke::HalfClose).await;
    let r = c.get("/two", "a.test").await.expect("two");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "conn=2 path=/two");
    assert_eq!(
        up.requests(),
        vec![("/one".to_string(), 1), ("/two".to_string(), 2)],
        "the second request went to the closed connection first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_with_stray_bytes_is_not_used() {
    let (up, _proxy, http) = start().await;
    let mut c = H1Conn::connect(http).await.expect("connect");
    assert_eq!(
        c.get("/one", "a.test").await.expect("one").text(),
        "conn=1 path=/one"
    );
    // A complete response nobody asked for: reusing the connection would
    // hand it to the next request as its answer.
    up.poke_all(Poke::Stray).await;
    let r = c.get("/two", "a.test").await.expect("two");
    assert_eq!(r.text(), "conn=2 path=/two", "not the stray answer");
    assert_eq!(
        up.requests(),
        vec![("/one".to_string(), 1), ("/two".to_string(), 2)]
    );
    // The new connection is pooled and reused as usual.
    let r = c.get("/three", "a.test").await.expect("three");
    assert_eq!(r.text(), "conn=2 path=/three");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_the_upstream_closed_is_let_go_without_a_request() {
    let (up, _proxy, http) = start().await;
    assert_eq!(
        http_get(http, "a.test", "/one").await.expect("one").text(),
        "conn=1 path=/one"
    );
    assert_eq!(up.shared.open.load(Ordering::SeqCst), 1, "pooled");
    up.poke_all(Poke::HalfClose).await;
    // The upstream's side ends only when greenlight closes its socket.
    eventually(
        IO_TIMEOUT,
        "greenlight closes the half-closed idle connection",
        || async { up.shared.open.load(Ordering::SeqCst) == 0 },
    )
    .await;
}

// ---- The connector itself: idle timeout and the pool's size limit ----
//
// greenlight sets neither an upstream idle timeout nor a pool size, so
// these drive Pingora's `TransportConnector` (vendored, patched) directly,
// over real loopback sockets.

use pingora::connectors::{ConnectorOptions, TransportConnector};
use pingora::upstreams::peer::{BasicPeer, Peer};

/// Accepts connections and reports each one's end (EOF or error) by its
/// accept order (from 1).
async fn closing_watcher() -> (SocketAddr, mpsc::UnboundedReceiver<u64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        for id in 1.. {
            let mut tcp = accept(&listener).await;
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut b = [0u8; 64];
                while matches!(tcp.read(&mut b).await, Ok(n) if n > 0) {}
                let _ = tx.send(id);
            });
        }
    });
    (addr, rx)
}

async fn next_closed(rx: &mut mpsc::UnboundedReceiver<u64>) -> u64 {
    timed_for(IO_TIMEOUT, "an upstream connection to end", async {
        rx.recv()
            .await
            .ok_or_else(|| std::io::Error::other("watcher gone"))
    })
    .await
    .expect("closed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_timeout_closes_the_idle_connection_without_a_request() {
    let (addr, mut closed) = closing_watcher().await;
    let connector = TransportConnector::new(None);
    let peer = BasicPeer::new(&addr.to_string());
    let stream = connector.new_stream(&peer).await.expect("connect");
    connector.release_stream(stream, peer.reuse_hash(), Some(Duration::from_millis(100)));
    // Nothing takes it: the timeout alone ends it.
    assert_eq!(next_closed(&mut closed).await, 1);
    let (_, reused) = connector.get_stream(&peer).await.expect("connect");
    assert!(!reused, "a timed-out connection is not handed out");

    // Without a timeout it stays and is reused.
    let stream = connector.new_stream(&peer).await.expect("connect");
    connector.release_stream(stream, peer.reuse_hash(), None);
    let (_, reused) = connector.get_stream(&peer).await.expect("reuse");
    assert!(reused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_connection_is_not_taken_even_before_it_is_swept() {
    let (addr, _closed) = closing_watcher().await;
    let connector = TransportConnector::new(None);
    let peer = BasicPeer::new(&addr.to_string());
    let stream = connector.new_stream(&peer).await.expect("connect");
    connector.release_stream(stream, peer.reuse_hash(), Some(Duration::from_millis(1)));
    tokio::time::sleep(Duration::from_millis(20)).await; // idle time is the behaviour under test
    let (_, reused) = connector.get_stream(&peer).await.expect("connect");
    assert!(!reused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_lets_its_oldest_idle_connection_go() {
    let (addr, mut closed) = closing_watcher().await;
    let (addr2, _closed2) = closing_watcher().await;
    let connector = TransportConnector::new(Some(ConnectorOptions::new(2)));
    let peer = BasicPeer::new(&addr.to_string());
    let peer2 = BasicPeer::new(&addr2.to_string());
    let a = connector.new_stream(&peer).await.expect("a");
    let b = connector.new_stream(&peer2).await.expect("b");
    let c = connector.new_stream(&peer2).await.expect("c");
    connector.release_stream(a, peer.reuse_hash(), None);
    connector.release_stream(b, peer2.reuse_hash(), None);
    // A third idle connection: the least recently released (`a`, another
    // peer's) goes.
    connector.release_stream(c, peer2.reuse_hash(), None);
    assert_eq!(next_closed(&mut closed).await, 1);
    let (_, reused) = connector.get_stream(&peer).await.expect("connect");
    assert!(!reused);
    // Both of peer2's were kept.
    let (_b, reused) = connector.get_stream(&peer2).await.expect("reuse");
    assert!(reused);
    let (_c, reused) = connector.get_stream(&peer2).await.expect("reuse");
    assert!(reused);
}
