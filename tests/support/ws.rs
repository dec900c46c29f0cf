//! WebSocket test peers.
//!
//! [`WsUpstream`] is an echo server built on tokio-tungstenite. It records
//! each handshake (request target, headers, connection id) so tests can check
//! what the proxy forwarded (e.g. `X-Forwarded-For`), greets every client with
//! a text message `hello from <name>` so a test knows which upstream it
//! reached, then echoes text and binary messages exactly. It counts open
//! WebSockets, records the code of each Close frame a client sends it
//! ([`WsUpstream::closes_received`]; tungstenite refuses unmasked ones), and
//! can close them all with a given code ([`WsUpstream::close_all`]).
//!
//! [`ws_connect`] is the client: `ws://` or `wss://` URLs whose host is the
//! name the proxy should see (Host header, and SNI for `wss://`) while the TCP
//! connection always goes to loopback: an IP-literal host is dialled as is,
//! any other host name is dialled at `127.0.0.1`. TLS is done here with
//! tokio-rustls, then the stream is handed to `tokio_tungstenite::client_async`.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::Uri;
use rustls::ClientConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::tls::{NegotiatedInfo, client_config, tls_connect_with};
use super::{
    AnyListener, BoxedIo, IO_TIMEOUT, deadline_in, io_err, timed, timed_for, wait_until_async,
};

/// One WebSocket handshake as received by a [`WsUpstream`].
#[derive(Debug, Clone)]
pub struct WsHandshake {
    /// Request target, e.g. `/chat?room=1`.
    pub path: String,
    /// Request headers (names lowercased by the `http` crate; repeated names
    /// are adjacent, otherwise in arrival order).
    pub headers: Vec<(String, String)>,
    /// Id of the TCP connection (1 for the first accepted).
    pub conn_id: u64,
}

impl WsHandshake {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        super::http1::header(&self.headers, name)
    }
}

#[derive(Default)]
struct WsShared {
    handshakes: Mutex<Vec<WsHandshake>>,
    open: AtomicUsize,
    accepted: AtomicU64,
    /// Close frames received from clients: their code, `None` if empty.
    closes: Mutex<Vec<Option<u16>>>,
}

struct OpenGuard(Arc<WsShared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A recording WebSocket echo upstream on `127.0.0.1:<ephemeral>`; see the
/// module docs. Dropping it stops the server and drops all its connections.
pub struct WsUpstream {
    name: String,
    addr: SocketAddr,
    shared: Arc<WsShared>,
    close_tx: watch::Sender<u16>,
    task: JoinHandle<()>,
}

impl WsUpstream {
    /// Starts a plain (`ws://`) echo upstream named `name`.
    pub async fn start(name: &str) -> WsUpstream {
        Self::spawn(name, None).await
    }

    /// Starts a TLS (`wss://`) echo upstream with `config`, which should offer
    /// ALPN `http/1.1` or none (see [`super::tls::TestCa::server_config`]).
    pub async fn start_tls(name: &str, config: Arc<rustls::ServerConfig>) -> WsUpstream {
        Self::spawn(name, Some(TlsAcceptor::from(config))).await
    }

    async fn spawn(name: &str, tls: Option<TlsAcceptor>) -> WsUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind ws upstream on 127.0.0.1:0");
        let addr = listener.local_addr().expect("ws upstream local_addr");
        Self::spawn_listener(name, tls, AnyListener::Tcp(listener), addr)
    }

    /// Starts a plain echo upstream on the unix socket `path` (its
    /// [`addr`](Self::addr) is then `0.0.0.0:0`).
    pub async fn start_unix(name: &str, path: &std::path::Path) -> WsUpstream {
        let listener = tokio::net::UnixListener::bind(path).expect("bind ws unix socket");
        let addr = SocketAddr::from(([0, 0, 0, 0], 0));
        Self::spawn_listener(name, None, AnyListener::Unix(listener), addr)
    }

    fn spawn_listener(
        name: &str,
        tls: Option<TlsAcceptor>,
        listener: AnyListener,
        addr: SocketAddr,
    ) -> WsUpstream {
        let shared = Arc::new(WsShared::default());
        let (close_tx, close_rx) = watch::channel(1000);
        let task = tokio::spawn(accept_loop(
            listener,
            name.to_string(),
            shared.clone(),
            tls,
            close_rx,
        ));
        WsUpstream {
            name: name.to_string(),
            addr,
            shared,
            close_tx,
            task,
        }
    }

    /// The upstream's name (in the greeting `hello from <name>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every completed handshake so far, in order.
    pub fn handshakes(&self) -> Vec<WsHandshake> {
        self.shared.handshakes.lock().unwrap().clone()
    }

    /// WebSockets currently open (handshake done, not yet closed).
    pub fn open_websockets(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// The code of every Close frame a client sent, in arrival order.
    pub fn closes_received(&self) -> Vec<Option<u16>> {
        self.shared.closes.lock().unwrap().clone()
    }

    /// TCP connections accepted since start.
    pub fn accepted_connections(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Waits (bounded by `timeout`) until exactly `n` WebSockets are open.
    pub async fn wait_for_open(&self, n: usize, timeout: Duration) -> bool {
        wait_until_async(deadline_in(timeout), || async {
            self.open_websockets() == n
        })
        .await
    }

    /// Sends a Close frame with `code` on every open WebSocket.
    pub fn close_all(&self, code: u16) {
        self.close_tx.send_replace(code);
    }

    /// Stops accepting and drops every connection (without Close frames),
    /// waiting at most 2 s for them to be gone.
    pub async fn stop(mut self) {
        self.task.abort();
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.task).await;
        self.wait_for_open(0, Duration::from_secs(2)).await;
    }
}

impl Drop for WsUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(
    listener: AnyListener,
    name: String,
    shared: Arc<WsShared>,
    tls: Option<TlsAcceptor>,
    close_rx: watch::Receiver<u16>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            tcp = listener.accept() => {
                let conn_id = shared.accepted.fetch_add(1, Ordering::SeqCst) + 1;
                let (name, shared, tls) = (name.clone(), shared.clone(), tls.clone());
                let mut close_rx = close_rx.clone();
                close_rx.mark_unchanged();
                conns.spawn(async move {
                    let io: BoxedIo = match tls {
                        None => Box::new(tcp),
                        Some(acceptor) => {
                            match tokio::time::timeout(IO_TIMEOUT, acceptor.accept(tcp)).await {
                                Ok(Ok(stream)) => Box::new(stream),
                                _ => return,
                            }
                        }
                    };
                    serve_ws(io, &name, shared, conn_id, close_rx).await;
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn serve_ws(
    io: BoxedIo,
    name: &str,
    shared: Arc<WsShared>,
    conn_id: u64,
    mut close_rx: watch::Receiver<u16>,
) {
    let recorder = shared.clone();
    // The callback's error type is fixed by tungstenite.
    #[allow(clippy::result_large_err)]
    let callback = move |req: &Request, resp: Response| {
        let headers = req
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        recorder.handshakes.lock().unwrap().push(WsHandshake {
            path: req.uri().to_string(),
            headers,
            conn_id,
        });
        Ok(resp)
    };
    let handshake = tokio_tungstenite::accept_hdr_async(io, callback);
    let Ok(Ok(mut ws)) = tokio::time::timeout(IO_TIMEOUT, handshake).await else {
        return;
    };
    shared.open.fetch_add(1, Ordering::SeqCst);
    let _guard = OpenGuard(shared.clone());
    if ws
        .send(Message::text(format!("hello from {name}")))
        .await
        .is_err()
    {
        return;
    }
    loop {
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(msg @ (Message::Text(_) | Message::Binary(_)))) => {
                    if ws.send(msg).await.is_err() {
                        return;
                    }
                }
                // Pings are answered and Close replies sent by tungstenite
                // itself while we keep polling; the stream then ends.
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.map(|f| u16::from(f.code));
                    shared.closes.lock().unwrap().push(code);
                }
                Some(Ok(_)) => {}
                None | Some(Err(_)) => return,
            },
            Ok(()) = close_rx.changed() => {
                let code = *close_rx.borrow_and_update();
                let frame = CloseFrame { code: CloseCode::from(code), reason: "".into() };
                let _ = ws.close(Some(frame)).await;
                // Wait (bounded) for the peer's Close reply, then drop.
                let drain = async { while let Some(Ok(_)) = ws.next().await {} };
                let _ = tokio::time::timeout(IO_TIMEOUT, drain).await;
                return;
            }
        }
    }
}

/// TLS settings for a `wss://` connection.
#[derive(Clone)]
pub struct TlsClient {
    /// The client config; for WebSockets it should offer `http/1.1` or no ALPN.
    pub config: Arc<ClientConfig>,
    /// SNI (and certificate name) to use; `None` means the URL's host.
    pub server_name: Option<String>,
}

impl TlsClient {
    /// Trusts the certificate(s) in `root_pem`, offers ALPN `http/1.1`, and
    /// uses the URL's host as SNI.
    pub fn trusting(root_pem: &str) -> TlsClient {
        TlsClient {
            config: client_config(root_pem, &["http/1.1"]),
            server_name: None,
        }
    }

    /// Uses `name` as SNI instead of the URL's host.
    pub fn with_sni(mut self, name: &str) -> TlsClient {
        self.server_name = Some(name.to_string());
        self
    }
}

/// How a WebSocket was closed by the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsClose {
    /// The close code, `None` if the Close frame had no payload.
    pub code: Option<u16>,
    /// The close reason (may be empty).
    pub reason: String,
}

/// A connected WebSocket client; every receive is bounded by a timeout.
pub struct WsClient {
    ws: WebSocketStream<BoxedIo>,
    /// Status of the handshake response (101).
    pub status: u16,
    /// Headers of the handshake response.
    pub response_headers: Vec<(String, String)>,
    /// What TLS negotiated, for `wss://`.
    pub tls: Option<NegotiatedInfo>,
    timeout: Duration,
}

/// Connects to a `ws://` or `wss://` URL (see the module docs for how the
/// host is dialled). `tls` is required for `wss://`.
pub async fn ws_connect(url: &str, tls: Option<TlsClient>) -> io::Result<WsClient> {
    ws_connect_with(url, tls, &[]).await
}

/// Like [`ws_connect`] with extra request headers (e.g. a spoofed
/// `X-Forwarded-For` the proxy must not trust).
pub async fn ws_connect_with(
    url: &str,
    tls: Option<TlsClient>,
    headers: &[(&str, &str)],
) -> io::Result<WsClient> {
    let uri: Uri = url
        .parse()
        .map_err(|e| io_err(&format!("bad URL {url:?}"), e))?;
    let secure = match uri.scheme_str() {
        Some("ws") => false,
        Some("wss") => true,
        other => return Err(io_err("unsupported scheme", format!("{other:?}"))),
    };
    let host = uri
        .host()
        .unwrap_or("")
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let ip: IpAddr = host.parse().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let addr = SocketAddr::new(ip, port);

    let (io, tls_info): (BoxedIo, _) = match (secure, tls) {
        (false, _) => {
            let tcp = timed(&format!("TCP connect to {addr}"), TcpStream::connect(addr)).await?;
            tcp.set_nodelay(true)?;
            (Box::new(tcp), None)
        }
        (true, Some(tls)) => {
            let sni = tls.server_name.as_deref().unwrap_or(host);
            let (stream, info) = tls_connect_with(addr, sni, tls.config).await?;
            (Box::new(stream), Some(info))
        }
        (true, None) => return Err(io_err("wss:// URL", "needs a TlsClient")),
    };

    let mut request = url
        .into_client_request()
        .map_err(|e| io_err("build WebSocket request", e))?;
    for (name, value) in headers {
        let name =
            http::HeaderName::from_bytes(name.as_bytes()).map_err(|e| io_err("header name", e))?;
        let value = http::HeaderValue::from_str(value).map_err(|e| io_err("header value", e))?;
        request.headers_mut().append(name, value);
    }
    let handshake = async {
        tokio_tungstenite::client_async(request, io)
            .await
            .map_err(|e| match e {
                tokio_tungstenite::tungstenite::Error::Http(resp) => io_err(
                    "WebSocket handshake rejected",
                    format!("HTTP {}", resp.status().as_u16()),
                ),
                other => io_err("WebSocket handshake", other),
            })
    };
    let (ws, response) = timed(&format!("WebSocket handshake with {url}"), handshake).await?;
    let response_headers = response
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    Ok(WsClient {
        ws,
        status: response.status().as_u16(),
        response_headers,
        tls: tls_info,
        timeout: IO_TIMEOUT,
    })
}

impl WsClient {
    /// Changes the per-operation timeout (default [`IO_TIMEOUT`]).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// First value of handshake response header `name` (case-insensitive).
    pub fn response_header(&self, name: &str) -> Option<&str> {
        super::http1::header(&self.response_headers, name)
    }

    /// Sends any message.
    pub async fn send(&mut self, msg: Message) -> io::Result<()> {
        let fut = async {
            self.ws
                .send(msg)
                .await
                .map_err(|e| io_err("WebSocket send", e))
        };
        timed_for(self.timeout, "WebSocket send", fut).await
    }

    /// Sends a text message.
    pub async fn send_text(&mut self, text: &str) -> io::Result<()> {
        self.send(Message::text(text)).await
    }

    /// Sends a binary message.
    pub async fn send_binary(&mut self, data: &[u8]) -> io::Result<()> {
        self.send(Message::binary(data.to_vec())).await
    }

    /// Receives the next text, binary or Close message (pings and pongs are
    /// skipped). The end of the stream is an `UnexpectedEof` error.
    pub async fn recv(&mut self) -> io::Result<Message> {
        let fut = async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                    Some(Ok(msg)) => return Ok(msg),
                    Some(Err(e)) => return Err(io_err("WebSocket receive", e)),
                    None => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "WebSocket stream ended",
                        ));
                    }
                }
            }
        };
        timed_for(self.timeout, "WebSocket receive", fut).await
    }

    /// Receives the next message and requires it to be text.
    pub async fn recv_text(&mut self) -> io::Result<String> {
        match self.recv().await? {
            Message::Text(text) => Ok(text.to_string()),
            other => Err(io_err("expected a text message", format!("{other:?}"))),
        }
    }

    /// Receives the next message and requires it to be binary.
    pub async fn recv_binary(&mut self) -> io::Result<Vec<u8>> {
        match self.recv().await? {
            Message::Binary(data) => Ok(data.to_vec()),
            other => Err(io_err("expected a binary message", format!("{other:?}"))),
        }
    }

    /// Reads until the peer's Close frame, skipping data messages, and
    /// returns its code and reason; the Close reply is then sent. A stream
    /// that ends without a Close frame is an `UnexpectedEof` error.
    pub async fn expect_close(&mut self) -> io::Result<WsClose> {
        loop {
            if let Message::Close(frame) = self.recv().await? {
                // Keep polling so tungstenite flushes its Close reply.
                let drain = async { while let Some(Ok(_)) = self.ws.next().await {} };
                let _ = tokio::time::timeout(self.timeout, drain).await;
                return Ok(match frame {
                    Some(f) => WsClose {
                        code: Some(u16::from(f.code)),
                        reason: f.reason.to_string(),
                    },
                    None => WsClose {
                        code: None,
                        reason: String::new(),
                    },
                });
            }
        }
    }

    /// Sends a Close frame with `code` and waits (bounded) for the peer's reply.
    pub async fn close(&mut self, code: u16) -> io::Result<()> {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: "".into(),
        };
        let fut = async {
            self.ws
                .close(Some(frame))
                .await
                .map_err(|e| io_err("WebSocket close", e))?;
            while let Some(Ok(_)) = self.ws.next().await {}
            Ok(())
        };
        timed_for(self.timeout, "WebSocket close handshake", fut).await
    }
}
