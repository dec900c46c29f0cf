//! HTTP clients for talking to the proxy.
//!
//! - [`H1Conn`]: a raw HTTP/1.1 client over plain TCP or TLS. It sends exactly
//!   the bytes it is given ([`H1Conn::send_raw`]) or a simple request
//!   ([`H1Conn::request`]), reads exactly one response per call (body framed by
//!   `Content-Length`, chunked coding or close), and reuses the connection for
//!   keep-alive tests.
//! - [`H2Conn`]: HTTP/2 over TLS with the `h2` crate; refuses to proceed
//!   unless ALPN actually negotiated `h2`.
//! - [`http_get`], [`https_get`], [`h2_get`]: one-shot conveniences.
//!
//! Every network await is bounded by the connection's timeout
//! ([`super::IO_TIMEOUT`] by default).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustls::ClientConfig;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::http1::{self, BodyKind};
use super::tls::{NegotiatedInfo, client_config, tls_connect_with};
use super::{AsyncIo, BoxedIo, IO_TIMEOUT, io_err, timed, timed_for};

/// One HTTP response (from either client).
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Version token, `HTTP/1.1`, `HTTP/1.0` or `HTTP/2`.
    pub version: String,
    /// Reason phrase (empty for HTTP/2).
    pub reason: String,
    /// Headers in order received (HTTP/2 names are lowercase).
    pub headers: Vec<(String, String)>,
    /// Decoded body.
    pub body: Vec<u8>,
}

impl Response {
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

    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON. Panics, showing status and body, if it is not
    /// JSON: a test asserting on JSON wants to fail loudly there.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response is not JSON ({e}): status {} body {:?}",
                self.status,
                self.text()
            )
        })
    }
}

/// A raw HTTP/1.1 client connection.
pub struct H1Conn {
    io: BufReader<BoxedIo>,
    timeout: Duration,
    closed: bool,
    /// What TLS negotiated, for connections made with [`H1Conn::connect_tls`].
    pub tls: Option<NegotiatedInfo>,
}

impl H1Conn {
    /// Connects over plain TCP.
    pub async fn connect(addr: SocketAddr) -> io::Result<H1Conn> {
        let tcp = timed(&format!("TCP connect to {addr}"), TcpStream::connect(addr)).await?;
        tcp.set_nodelay(true)?;
        Ok(Self::from_stream(tcp))
    }

    /// Connects over TLS with SNI `server_name`, trusting `root_pem`, offering
    /// ALPN `http/1.1`.
    pub async fn connect_tls(
        addr: SocketAddr,
        server_name: &str,
        root_pem: &str,
    ) -> io::Result<H1Conn> {
        Self::connect_tls_with(addr, server_name, client_config(root_pem, &["http/1.1"])).await
    }

    /// Connects over TLS with a ready-made client config.
    pub async fn connect_tls_with(
        addr: SocketAddr,
        server_name: &str,
        config: Arc<ClientConfig>,
    ) -> io::Result<H1Conn> {
        let (stream, info) = tls_connect_with(addr, server_name, config).await?;
        let mut conn = Self::from_stream(stream);
        conn.tls = Some(info);
        Ok(conn)
    }

    /// Wraps an already-connected stream (TCP, TLS, ...).
    pub fn from_stream(io: impl AsyncIo) -> H1Conn {
        H1Conn {
            io: BufReader::new(Box::new(io)),
            timeout: IO_TIMEOUT,
            closed: false,
            tls: None,
        }
    }

    /// Changes the per-operation timeout (default [`IO_TIMEOUT`]).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Whether the last response said the connection will close
    /// (`Connection: close`, or a body delimited by close).
    pub fn server_will_close(&self) -> bool {
        self.closed
    }

    /// Writes `bytes` verbatim.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        let io = &mut self.io;
        let fut = async {
            io.write_all(bytes).await?;
            io.flush().await
        };
        timed_for(self.timeout, "sending request bytes", fut).await
    }

    /// Reads one response to a non-HEAD request (interim 1xx responses other
    /// than 101 are skipped).
    pub async fn read_response(&mut self) -> io::Result<Response> {
        self.read_response_to("GET").await
    }

    /// Reads one response to a request with `method` (a `HEAD` response has
    /// no body whatever its headers say).
    pub async fn read_response_to(&mut self, method: &str) -> io::Result<Response> {
        let head_request = method.eq_ignore_ascii_case("HEAD");
        let io = &mut self.io;
        let fut = async {
            loop {
                let head = http1::read_head(io).await?.ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed before a response",
                    )
                })?;
                let mut parts = head.start_line.splitn(3, ' ');
                let version = parts.next().unwrap_or("").to_string();
                let status: u16 = parts
                    .next()
                    .and_then(|s| s.parse().ok())
                    .filter(|_| version.starts_with("HTTP/1."))
                    .ok_or_else(|| io_err("bad status line", &head.start_line))?;
                let reason = parts.next().unwrap_or("").to_string();
                if (100..200).contains(&status) && status != 101 {
                    continue;
                }
                let kind = if head_request || status == 101 || status == 204 || status == 304 {
                    BodyKind::Empty
                } else {
                    http1::body_kind(&head.headers, BodyKind::UntilClose)?
                };
                let body = http1::read_body(io, kind).await?;
                let closes = kind == BodyKind::UntilClose
                    || http1::has_token(&head.headers, "connection", "close")
                    || (version == "HTTP/1.0"
                        && !http1::has_token(&head.headers, "connection", "keep-alive"));
                let response = Response {
                    status,
                    version,
                    reason,
                    headers: head.headers,
                    body,
                };
                return Ok((response, closes));
            }
        };
        let (response, closes) = timed_for(self.timeout, "reading response", fut).await?;
        self.closed = closes;
        Ok(response)
    }

    /// Sends `METHOD path HTTP/1.1` with `Host: host`, the given headers and
    /// body, and reads the response. `Content-Length` is added when the body
    /// is non-empty unless the headers already frame the body.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        host: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        let mut out = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
        for (name, value) in headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        let framed = headers.iter().any(|(n, _)| {
            n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding")
        });
        if !body.is_empty() && !framed {
            out.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(body);
        self.send_raw(&bytes).await?;
        self.read_response_to(method).await
    }

    /// `GET path` with `Host: host` on this connection.
    pub async fn get(&mut self, path: &str, host: &str) -> io::Result<Response> {
        self.request("GET", path, host, &[], &[]).await
    }

    /// Waits up to `timeout` for the peer to close the connection; true if
    /// it did (EOF or reset), false if it stayed open or sent data.
    pub async fn wait_closed_by_peer(&mut self, timeout: Duration) -> bool {
        if !self.io.buffer().is_empty() {
            return false;
        }
        tokio::time::timeout(timeout, http1::peer_closed(&mut self.io))
            .await
            .unwrap_or(false)
    }
}

/// One-shot plain `GET path` with `Host: host`.
pub async fn http_get(addr: SocketAddr, host: &str, path: &str) -> io::Result<Response> {
    H1Conn::connect(addr).await?.get(path, host).await
}

/// The Prometheus text of `/metrics` on the admin API at `admin`.
pub async fn metrics_text(admin: SocketAddr) -> String {
    let mut c = H1Conn::connect(admin).await.expect("admin");
    c.get("/metrics", &admin.to_string())
        .await
        .expect("metrics")
        .text()
}

/// The sum of every sample of metric `name` in `text` (any labels) whose
/// line passes `keep`; 0 when there is none yet.
pub fn metric_sum(text: &str, name: &str, keep: impl Fn(&str) -> bool) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with(['{', ' ']))
        })
        .filter(|l| keep(l))
        .map(|l| {
            l.rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("bad sample {l:?}"))
        })
        .sum()
}

/// One-shot HTTP/1.1-over-TLS `GET path` with SNI and Host `server_name`.
pub async fn https_get(
    addr: SocketAddr,
    server_name: &str,
    path: &str,
    root_pem: &str,
) -> io::Result<(Response, NegotiatedInfo)> {
    let mut conn = H1Conn::connect_tls(addr, server_name, root_pem).await?;
    let response = conn.get(path, server_name).await?;
    let info = conn.tls.take().expect("TLS info of a TLS connection");
    Ok((response, info))
}

/// An HTTP/2-over-TLS client connection (ALPN `h2` required).
pub struct H2Conn {
    send: h2::client::SendRequest<Bytes>,
    authority: String,
    driver: JoinHandle<()>,
    timeout: Duration,
    /// What TLS negotiated.
    pub tls: NegotiatedInfo,
}

impl H2Conn {
    /// Connects with SNI and `:authority` `server_name`, trusting `root_pem`,
    /// offering only ALPN `h2`.
    pub async fn connect(
        addr: SocketAddr,
        server_name: &str,
        root_pem: &str,
    ) -> io::Result<H2Conn> {
        Self::connect_with(addr, server_name, client_config(root_pem, &["h2"])).await
    }

    /// Like [`H2Conn::connect`] with a ready-made client config. Fails with
    /// `InvalidData` if the server did not select `h2`.
    pub async fn connect_with(
        addr: SocketAddr,
        server_name: &str,
        config: Arc<ClientConfig>,
    ) -> io::Result<H2Conn> {
        Self::connect_prefixed(addr, b"", server_name, config).await
    }

    /// Like [`H2Conn::connect_with`], sending `prefix` before the TLS
    /// handshake (see [`super::tls::tls_connect_prefixed`]).
    pub async fn connect_prefixed(
        addr: SocketAddr,
        prefix: &[u8],
        server_name: &str,
        config: Arc<ClientConfig>,
    ) -> io::Result<H2Conn> {
        let (stream, tls) =
            super::tls::tls_connect_prefixed(addr, prefix, server_name, config).await?;
        if tls.alpn.as_deref() != Some(b"h2") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("ALPN negotiated {:?}, expected h2", tls.alpn_str()),
            ));
        }
        let handshake = async {
            h2::client::handshake(stream)
                .await
                .map_err(|e| io_err("h2 handshake", e))
        };
        let (send, connection) = timed("h2 handshake", handshake).await?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(H2Conn {
            send,
            authority: server_name.to_string(),
            driver,
            timeout: IO_TIMEOUT,
            tls,
        })
    }

    /// Changes the per-request timeout (default [`IO_TIMEOUT`]).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Uses `authority` as `:authority` from now on instead of the SNI name
    /// (e.g. to test a request whose authority differs from the TLS name).
    pub fn set_authority(&mut self, authority: &str) {
        self.authority = authority.to_string();
    }

    /// Sends one request on a new stream and reads the whole response.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        let mut builder = http::Request::builder()
            .method(method)
            .uri(format!("https://{}{}", self.authority, path));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(())
            .map_err(|e| io_err("build h2 request", e))?;
        let send = &mut self.send;
        let fut = async {
            let h2e = |what: &'static str| move |e: h2::Error| io_err(what, e);
            let mut ready = send.clone().ready().await.map_err(h2e("h2 ready"))?;
            let (response, mut stream) = ready
                .send_request(request, body.is_empty())
                .map_err(h2e("h2 send request"))?;
            if !body.is_empty() {
                stream
                    .send_data(Bytes::copy_from_slice(body), true)
                    .map_err(h2e("h2 send body"))?;
            }
            let (parts, mut recv) = response.await.map_err(h2e("h2 response"))?.into_parts();
            let mut data = Vec::new();
            while let Some(chunk) = recv.data().await {
                let chunk = chunk.map_err(h2e("h2 body"))?;
                let _ = recv.flow_control().release_capacity(chunk.len());
                data.extend_from_slice(&chunk);
            }
            Ok(Response {
                status: parts.status.as_u16(),
                version: "HTTP/2".to_string(),
                reason: String::new(),
                headers: parts
                    .headers
                    .iter()
                    .map(|(n, v)| {
                        (
                            n.to_string(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect(),
                body: data,
            })
        };
        timed_for(self.timeout, &format!("h2 {method} {path}"), fut).await
    }

    /// `GET path` on a new stream.
    pub async fn get(&mut self, path: &str) -> io::Result<Response> {
        self.request("GET", path, &[], &[]).await
    }
}

impl Drop for H2Conn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// One-shot HTTP/2 `GET path` over TLS with SNI and `:authority`
/// `server_name`; also returns what TLS negotiated (ALPN is `h2` on success).
pub async fn h2_get(
    addr: SocketAddr,
    server_name: &str,
    path: &str,
    root_pem: &str,
) -> io::Result<(Response, NegotiatedInfo)> {
    let mut conn = H2Conn::connect(addr, server_name, root_pem).await?;
    let response = conn.get(path).await?;
    Ok((response, conn.tls.clone()))
}
