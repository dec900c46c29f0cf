//! Test upstreams for the proxy to forward to.
//!
//! [`HttpUpstream`] is a hand-rolled HTTP/1.1 server on a tokio `TcpListener`
//! bound to `127.0.0.1:0`, so tests see exactly what the proxy sent: every
//! request is recorded (request line, headers in wire order, body, and the id
//! of the TCP connection it came on). It answers with a JSON echo of the
//! request, and its behaviour is driven by the request path:
//!
//! | path                 | response                                                 |
//! |----------------------|----------------------------------------------------------|
//! | `/slow?ms=N`         | waits N ms, then the JSON echo                           |
//! | `/status/NNN`        | status NNN with the JSON echo (no body for 204/304)      |
//! | `/bytes?n=N`         | N bytes of `abc…xyzabc…` (Content-Length framed)         |
//! | `/chunked?n=N&chunk=M` | N pattern bytes sent chunked, M bytes per chunk (default 1000) |
//! | `/close`             | JSON echo with `Connection: close`, then closes          |
//! | `ANY?reply_status=NNN` | status NNN with the JSON echo, on any path             |
//! | anything else        | `200` JSON echo                                          |
//!
//! Every response carries `x-upstream: <name>`, plus one header line per
//! `x-reply-header: Name: value` request header (to test what the proxy does
//! with an upstream's response headers). The JSON echo reflects what the
//! upstream received and is
//! `{"upstream", "method", "path", "headers": {lowercased name: value joined
//! with ", "}, "body_len", "connection"}`.
//!
//! [`DeadUpstream`] is an address nothing listens on (connections refused).

use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use super::http1::{self, BodyKind};
use super::{AnyListener, AsyncIo, BoxedIo, deadline_in, wait_until_async};

/// One request as received by an [`HttpUpstream`].
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Request method, e.g. `GET`.
    pub method: String,
    /// Request target as sent, including any query string.
    pub path: String,
    /// Protocol version token, e.g. `HTTP/1.1`.
    pub version: String,
    /// Header fields in wire order, names as sent.
    pub headers: Vec<(String, String)>,
    /// Decoded body (chunked coding removed).
    pub body: Vec<u8>,
    /// Id of the TCP connection it arrived on (1 for the first accepted).
    pub conn_id: u64,
}

impl RecordedRequest {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        http1::header(&self.headers, name)
    }

    /// All values of header `name` (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Counters and the request log shared between the server tasks and the test.
#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<RecordedRequest>>,
    open: AtomicUsize,
    accepted: AtomicU64,
    heads: AtomicU64,
}

/// Decrements the open-connection count when a connection task ends or is
/// aborted.
struct OpenGuard(Arc<Shared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A recording HTTP/1.1 upstream on `127.0.0.1:<ephemeral>`; see the module docs.
///
/// Dropping it stops the server and closes all its connections.
pub struct HttpUpstream {
    name: String,
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl HttpUpstream {
    /// Starts a plain-HTTP upstream named `name` on `127.0.0.1:0`.
    pub async fn start(name: &str) -> HttpUpstream {
        Self::spawn(name, None).await
    }

    /// Starts an upstream that speaks HTTP/1.1 over TLS with `config`
    /// (see [`super::tls::TestCa::server_config`]).
    pub async fn start_tls(name: &str, config: Arc<rustls::ServerConfig>) -> HttpUpstream {
        Self::spawn(name, Some(TlsAcceptor::from(config))).await
    }

    /// Starts a plain-HTTP upstream on a given port (e.g. the port of one that
    /// was stopped, to bring a server "back").
    pub async fn start_at(name: &str, port: u16) -> HttpUpstream {
        Self::spawn_on(name, None, port).await
    }

    async fn spawn(name: &str, tls: Option<TlsAcceptor>) -> HttpUpstream {
        Self::spawn_on(name, tls, 0).await
    }

    async fn spawn_on(name: &str, tls: Option<TlsAcceptor>, port: u16) -> HttpUpstream {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind upstream on 127.0.0.1");
        let addr = listener.local_addr().expect("upstream local_addr");
        Self::spawn_listener(name, tls, AnyListener::Tcp(listener), addr)
    }

    /// Starts a plain-HTTP upstream listening on the unix socket `path`
    /// (its [`addr`](Self::addr) is then `0.0.0.0:0`, meaningless). Stopping
    /// it leaves the socket file in place, as a crashed app does.
    pub async fn start_unix(name: &str, path: &std::path::Path) -> HttpUpstream {
        let listener = tokio::net::UnixListener::bind(path).expect("bind upstream unix socket");
        let addr = SocketAddr::from(([0, 0, 0, 0], 0));
        Self::spawn_listener(name, None, AnyListener::Unix(listener), addr)
    }

    fn spawn_listener(
        name: &str,
        tls: Option<TlsAcceptor>,
        listener: AnyListener,
        addr: SocketAddr,
    ) -> HttpUpstream {
        let shared = Arc::new(Shared::default());
        let task = tokio::spawn(accept_loop(listener, name.to_string(), shared.clone(), tls));
        HttpUpstream {
            name: name.to_string(),
            addr,
            shared,
            task,
        }
    }

    /// The upstream's name (sent back in `x-upstream`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The listening address (`127.0.0.1:<port>`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// A copy of every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The most recent request, if any.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.shared.requests.lock().unwrap().last().cloned()
    }

    /// Number of requests received so far.
    pub fn request_count(&self) -> usize {
        self.shared.requests.lock().unwrap().len()
    }

    /// Forgets all recorded requests (counters are kept).
    pub fn clear_requests(&self) {
        self.shared.requests.lock().unwrap().clear();
    }

    /// Connections currently open.
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Connections accepted since start.
    pub fn accepted_connections(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Request heads read since start: a request counts here as soon as its
    /// header arrived, before (and whether or not) its body is complete.
    pub fn request_heads(&self) -> u64 {
        self.shared.heads.load(Ordering::SeqCst)
    }

    /// Waits (bounded by `timeout`) until at least `n` requests were recorded.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> bool {
        wait_until_async(deadline_in(timeout), || async { self.request_count() >= n }).await
    }

    /// Waits (bounded by `timeout`) until exactly `n` connections are open.
    pub async fn wait_for_open_connections(&self, n: usize, timeout: Duration) -> bool {
        wait_until_async(deadline_in(timeout), || async {
            self.open_connections() == n
        })
        .await
    }

    /// Stops accepting, closes every connection, and waits (at most 2 s) until
    /// they are all gone.
    pub async fn stop(mut self) {
        self.task.abort();
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.task).await;
        self.wait_for_open_connections(0, Duration::from_secs(2))
            .await;
    }
}

impl Drop for HttpUpstream {
    fn drop(&mut self) {
        // Aborting the accept task drops its JoinSet, which aborts every
        // connection task and so closes their sockets.
        self.task.abort();
    }
}

async fn accept_loop(
    listener: AnyListener,
    name: String,
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            tcp = listener.accept() => {
                let conn_id = shared.accepted.fetch_add(1, Ordering::SeqCst) + 1;
                shared.open.fetch_add(1, Ordering::SeqCst);
                let guard = OpenGuard(shared.clone());
                let (name, shared, tls) = (name.clone(), shared.clone(), tls.clone());
                conns.spawn(async move {
                    let _guard = guard;
                    let io: BoxedIo = match tls {
                        None => Box::new(tcp),
                        Some(acceptor) => match tokio::time::timeout(
                            super::IO_TIMEOUT,
                            acceptor.accept(tcp),
                        )
                        .await
                        {
                            Ok(Ok(stream)) => Box::new(stream),
                            _ => return,
                        },
                    };
                    let _ = serve_conn(io, &name, &shared, conn_id).await;
                });
            }
            // Reap finished connection tasks so the set does not grow.
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// What a parsed request asks the upstream to do.
enum Action {
    Echo {
        status: u16,
        delay: Option<Duration>,
    },
    Bytes(usize),
    Chunked {
        n: usize,
        chunk: usize,
    },
    Close,
}

fn query_param(query: &str, key: &str) -> Option<usize> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
}

fn route(target: &str) -> Action {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let echo = Action::Echo {
        status: 200,
        delay: None,
    };
    match path {
        "/slow" => Action::Echo {
            status: 200,
            delay: Some(Duration::from_millis(
                query_param(query, "ms").unwrap_or(1000) as u64,
            )),
        },
        "/bytes" => Action::Bytes(query_param(query, "n").unwrap_or(0)),
        "/chunked" => Action::Chunked {
            n: query_param(query, "n").unwrap_or(0),
            chunk: query_param(query, "chunk").unwrap_or(1000),
        },
        "/close" => Action::Close,
        // `?reply_status=NNN` on any path (one `upstream_path` may not strip).
        _ if query_param(query, "reply_status").is_some_and(|s| (200..=599).contains(&s)) => {
            Action::Echo {
                status: query_param(query, "reply_status").unwrap_or(200) as u16,
                delay: None,
            }
        }
        _ => match path
            .strip_prefix("/status/")
            .and_then(|s| s.parse::<u16>().ok())
        {
            Some(status) if (200..=599).contains(&status) => Action::Echo {
                status,
                delay: None,
            },
            _ => echo,
        },
    }
}

/// The deterministic payload of `/bytes` and `/chunked`: `abc…xyz` repeated.
pub fn pattern_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

fn echo_json(name: &str, req: &RecordedRequest) -> Vec<u8> {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (n, v) in &req.headers {
        headers
            .entry(n.to_ascii_lowercase())
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(v);
            })
            .or_insert_with(|| v.clone());
    }
    serde_json::to_vec(&serde_json::json!({
        "upstream": name,
        "method": req.method,
        "path": req.path,
        "headers": headers,
        "body_len": req.body.len(),
        "connection": req.conn_id,
    }))
    .expect("serialise echo JSON")
}

async fn serve_conn(io: BoxedIo, name: &str, shared: &Shared, conn_id: u64) -> io::Result<()> {
    let mut io = BufReader::new(io);
    while let Some(head) = http1::read_head(&mut io).await? {
        shared.heads.fetch_add(1, Ordering::SeqCst);
        let mut parts = head.start_line.splitn(3, ' ');
        let (method, path, version) = match (parts.next(), parts.next(), parts.next()) {
            (Some(m), Some(p), Some(v)) if v.starts_with("HTTP/1.") => (m, p, v),
            _ => {
                write_simple(&mut io, 400, "bad request line").await?;
                return Ok(());
            }
        };
        if http1::has_token(&head.headers, "expect", "100-continue") {
            io.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        }
        let kind = match http1::body_kind(&head.headers, BodyKind::Empty) {
            Ok(BodyKind::UntilClose) | Err(_) => {
                write_simple(&mut io, 400, "bad body framing").await?;
                return Ok(());
            }
            Ok(kind) => kind,
        };
        let body = http1::read_body(&mut io, kind).await?;
        let req = RecordedRequest {
            method: method.to_string(),
            path: path.to_string(),
            version: version.to_string(),
            headers: head.headers,
            body,
            conn_id,
        };
        shared.requests.lock().unwrap().push(req.clone());

        let mut keep_alive = if version == "HTTP/1.0" {
            http1::has_token(&req.headers, "connection", "keep-alive")
        } else {
            !http1::has_token(&req.headers, "connection", "close")
        };
        let is_head = req.method == "HEAD";
        let (status, body, chunked, json) = match route(&req.path) {
            Action::Echo { status, delay } => {
                if let Some(delay) = delay {
                    // Simulated slowness of the upstream, not synchronisation.
                    tokio::time::sleep(delay).await;
                }
                let body = if status == 204 || status == 304 {
                    Vec::new()
                } else {
                    echo_json(name, &req)
                };
                (status, body, None, true)
            }
            Action::Bytes(n) => (200, pattern_bytes(n), None, false),
            Action::Chunked { n, chunk } => (200, pattern_bytes(n), Some(chunk), false),
            Action::Close => {
                keep_alive = false;
                (200, echo_json(name, &req), None, true)
            }
        };

        let mut out = format!(
            "HTTP/1.1 {status} {}\r\nx-upstream: {name}\r\n",
            reason(status)
        );
        let content_type = if json {
            "application/json"
        } else {
            "application/octet-stream"
        };
        if !body.is_empty() {
            out.push_str(&format!("content-type: {content_type}\r\n"));
        }
        match chunked {
            Some(_) => out.push_str("transfer-encoding: chunked\r\n"),
            None if status != 204 && status != 304 => {
                out.push_str(&format!("content-length: {}\r\n", body.len()));
            }
            None => {}
        }
        if !keep_alive {
            out.push_str("connection: close\r\n");
        }
        for line in req.header_all("x-reply-header") {
            out.push_str(line);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        if !is_head {
            match chunked {
                Some(chunk) => bytes.extend_from_slice(&http1::encode_chunked(&body, chunk)),
                None => bytes.extend_from_slice(&body),
            }
        }
        io.write_all(&bytes).await?;
        io.flush().await?;
        if !keep_alive {
            io.shutdown().await?;
            return Ok(());
        }
    }
    Ok(())
}

async fn write_simple<W: AsyncIo>(w: &mut BufReader<W>, status: u16, msg: &str) -> io::Result<()> {
    let out = format!(
        "HTTP/1.1 {status} {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{msg}",
        reason(status),
        msg.len()
    );
    w.write_all(out.as_bytes()).await?;
    w.shutdown().await
}

/// An address on which connections are refused: a port from
/// [`super::ports`] (outside the kernel's ephemeral range, never handed out
/// twice by this process), checked free and released again.
#[derive(Debug, Clone, Copy)]
pub struct DeadUpstream {
    addr: SocketAddr,
}

impl DeadUpstream {
    /// Picks a fresh refusing address.
    pub fn new() -> DeadUpstream {
        DeadUpstream {
            addr: super::ports::free_addr(),
        }
    }

    /// The refusing address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The refusing port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Default for DeadUpstream {
    fn default() -> Self {
        Self::new()
    }
}
