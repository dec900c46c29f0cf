//! Request buffering (nginx `proxy_request_buffering`): a body is read whole
//! before any upstream connection is made; a body over
//! `limits.body_buffer_size` goes to an unlinked temp file; a malformed body
//! is refused before the application sees anything. With
//! `request_buffering: off` the body streams, and a malformed one still never
//! reaches the application as a complete request.

use crate::support::upstream::pattern_bytes;
use crate::support::*;
use bytes::Bytes;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Bed {
    ca: TestCa,
    app: HttpUpstream,
    http: SocketAddr,
    https: SocketAddr,
    proxy: ProxyProcess,
    /// The admin API.
    admin: SocketAddr,
    /// The proxy's `$TMPDIR`, where spilled bodies go.
    tmp: tempfile::TempDir,
}

/// greenlight with a buffered site (`/`, and `/failover/` whose first server
/// refuses) and a streaming route (`/stream/`), 4 KiB of body memory, 1 MiB
/// bodies at most (`/large/`: 2 MiB, `/tiny/`: 1 KiB), a 1 s body timeout.
async fn start() -> Bed {
    let ca = TestCa::new();
    let cert = ca.issue_to(&["a.test"], ca.dir(), "a");
    let app = HttpUpstream::start("app").await;
    let dead = DeadUpstream::new();
    let ports = free_ports(3);
    let yaml = format!(
        "access_log: off
limits: {{body_buffer_size: 4k, body_timeout: 1s}}
listeners:
  http: {{address: \"127.0.0.1:{}\"}}
  https: {{address: \"127.0.0.1:{}\", tls: true}}
admin: {{address: \"127.0.0.1:{}\"}}
sites:
  s:
    hosts: [a.test]
    default: true
    tls: {{cert: \"{}\", key: \"{}\"}}
    plain_http: serve
    max_body_size: 1m
    routes:
      - {{path: /, upstream: u}}
      - {{path: /stream/, upstream: u, request_buffering: off}}
      - {{path: /failover/, upstream: f}}
      - {{path: /large/, upstream: u, max_body_size: 2m}}
      - {{path: /tiny/, upstream: u, max_body_size: 1k}}
upstreams:
  u: {{active: p, pools: {{p: [\"127.0.0.1:{}\"]}}}}
  f: {{active: p, pools: {{p: [\"127.0.0.1:{}\", \"127.0.0.1:{}\"]}}}}
",
        ports[0],
        ports[1],
        ports[2],
        cert.cert_path.display(),
        cert.key_path.display(),
        app.port(),
        dead.port(),
        app.port(),
    );
    let http: SocketAddr = ([127, 0, 0, 1], ports[0]).into();
    let https: SocketAddr = ([127, 0, 0, 1], ports[1]).into();
    let admin: SocketAddr = ([127, 0, 0, 1], ports[2]).into();
    let tmp = tempfile::tempdir().expect("tmp dir");
    let tmp_env = tmp.path().display().to_string();
    let mut proxy = ProxyProcess::start_with_bin(
        &greenlight_bin(),
        &yaml,
        &["run", "-c", "{config}"],
        &[("TMPDIR", &tmp_env)],
    )
    .expect("spawn");
    proxy.wait_ready(&[http, https]).await.expect("starts");
    Bed {
        ca,
        app,
        http,
        https,
        admin,
        proxy,
        tmp,
    }
}

/// Files the proxy holds open under `dir` that are already unlinked.
fn unlinked_files_under(pid: u32, dir: &Path) -> Vec<PathBuf> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir) && target.to_string_lossy().ends_with("(deleted)"))
        .collect()
}

/// The pace of a client that trickles its body (the behaviour under test).
async fn pause() {
    tokio::time::sleep(Duration::from_millis(150)).await;
}

async fn h2_client(b: &Bed) -> h2::client::SendRequest<Bytes> {
    let (tls, info) = tls_connect(b.https, "a.test", &["h2"], &b.ca.cert_pem())
        .await
        .expect("tls");
    assert_eq!(info.alpn_str(), Some("h2"));
    let (client, conn) = h2::client::handshake(tls).await.expect("h2 handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// Reads an h2 response whole: (status, body), or the stream error.
async fn h2_response(resp: h2::client::ResponseFuture) -> Result<(u16, Vec<u8>), h2::Error> {
    let (parts, mut body) = resp.await?.into_parts();
    let mut out = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        out.extend_from_slice(&chunk);
    }
    Ok((parts.status.as_u16(), out))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_opens_no_upstream_connection_until_it_is_complete() {
    let b = start().await;
    // HTTP/1.1, chunked: the app gets it whole, with a length instead.
    let mut c = H1Conn::connect(b.http).await.expect("connect");
    c.send_raw(b"POST /h1 HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .expect("head");
    for _ in 0..5 {
        c.send_raw(b"2\r\nab\r\n").await.expect("chunk");
        // Time for the proxy to act on that chunk, if it were to connect.
        pause().await;
        assert_eq!(b.app.accepted_connections(), 0, "no upstream connection");
        assert_eq!(b.app.request_heads(), 0, "no request started upstream");
    }
    c.send_raw(b"0\r\n\r\n").await.expect("end");
    let r = c.read_response().await.expect("response");
    assert_eq!(r.status, 200);
    let seen = b.app.last_request().expect("the request arrived");
    assert_eq!(seen.body, b"ababababab");
    assert_eq!(seen.header("content-length"), Some("10"));
    assert_eq!(seen.header("transfer-encoding"), None);
    let next = c
        .get("/next", "a.test")
        .await
        .expect("the connection goes on");
    assert_eq!(next.status, 200);

    // HTTP/2, DATA frames without a content-length.
    let before = b.app.request_heads();
    let mut client = h2_client(&b).await;
    let req = http::Request::post("https://a.test/h2")
        .body(())
        .expect("req");
    let (resp, mut body) = client.send_request(req, false).expect("send");
    for _ in 0..5 {
        body.send_data(Bytes::from_static(b"cd"), false)
            .expect("data");
        pause().await;
        assert_eq!(b.app.request_heads(), before, "no request started upstream");
    }
    body.send_data(Bytes::new(), true).expect("end");
    let (status, _) = h2_response(resp).await.expect("response");
    assert_eq!(status, 200);
    let seen = b.app.last_request().expect("the request arrived");
    assert_eq!(seen.path, "/h2");
    assert_eq!(seen.body, b"cdcdcdcdcd");
    assert_eq!(seen.header("content-length"), Some("10"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_request_buffering_off_the_app_sees_the_request_before_the_body_ends() {
    let b = start().await;
    let mut c = H1Conn::connect(b.http).await.expect("connect");
    c.send_raw(b"POST /stream/up HTTP/1.1\r\nHost: a.test\r\nContent-Length: 10\r\n\r\nabc")
        .await
        .expect("head");
    eventually(
        IO_TIMEOUT,
        "the request starts upstream mid-body",
        || async { b.app.request_heads() == 1 },
    )
    .await;
    assert_eq!(b.app.request_count(), 0, "the body is not complete yet");
    c.send_raw(b"defghij").await.expect("rest");
    let r = c.read_response().await.expect("response");
    assert_eq!(r.status, 200);
    assert_eq!(b.app.last_request().expect("arrived").body, b"abcdefghij");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_memory_bound_goes_to_an_unlinked_temp_file_and_arrives_whole() {
    let b = start().await;
    let data = pattern_bytes(300_000);
    let (first, rest) = data.split_at(100_000);
    let spilled = || !unlinked_files_under(b.proxy.pid(), b.tmp.path()).is_empty();

    // HTTP/1.1, chunked, in two parts: the temp file exists in between.
    let mut c = H1Conn::connect(b.http).await.expect("connect");
    let mut head =
        b"POST /big1 HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    head.extend(format!("{:x}\r\n", first.len()).as_bytes());
    head.extend_from_slice(first);
    head.extend_from_slice(b"\r\n");
    c.send_raw(&head).await.expect("first part");
    eventually(
        IO_TIMEOUT,
        "the body spills to an unlinked temp file",
        || async { spilled() },
    )
    .await;
    assert_eq!(b.app.accepted_connections(), 0);
    let mut tail = format!("{:x}\r\n", rest.len()).into_bytes();
    tail.extend_from_slice(rest);
    tail.extend_from_slice(b"\r\n0\r\n\r\n");
    c.send_raw(&tail).await.expect("rest");
    let r = c.read_response().await.expect("response");
    assert_eq!(r.status, 200);
    let seen = b.app.last_request().expect("arrived");
    assert_eq!(seen.header("content-length"), Some("300000"));
    assert!(
        seen.body == data,
        "the body arrives byte-exact over HTTP/1.1"
    );
    eventually(
        IO_TIMEOUT,
        "the temp file is closed with the request",
        || async { !spilled() },
    )
    .await;

    // HTTP/2, same body.
    let mut client = h2_client(&b).await;
    let req = http::Request::post("https://a.test/big2")
        .body(())
        .expect("req");
    let (resp, mut body) = client.send_request(req, false).expect("send");
    body.send_data(Bytes::copy_from_slice(first), false)
        .expect("data");
    eventually(IO_TIMEOUT, "the h2 body spills too", || async { spilled() }).await;
    body.send_data(Bytes::copy_from_slice(rest), true)
        .expect("data");
    let (status, _) = timed("h2 response", async {
        h2_response(resp).await.map_err(std::io::Error::other)
    })
    .await
    .expect("response");
    assert_eq!(status, 200);
    let seen = b.app.last_request().expect("arrived");
    assert_eq!(seen.path, "/big2");
    assert!(seen.body == data, "the body arrives byte-exact over HTTP/2");

    // A spilled body goes whole to the next server when the first refuses.
    // Two requests: round robin starts one of them at the refusing server.
    let before = b.app.request_count();
    for n in 0..2 {
        let mut c = H1Conn::connect(b.http).await.expect("connect");
        let r = c
            .request("POST", &format!("/failover/{n}"), "a.test", &[], &data)
            .await
            .expect("response");
        assert_eq!(r.status, 200);
        assert!(b.app.last_request().expect("arrived").body == data);
    }
    assert_eq!(b.app.request_count(), before + 2);
    assert!(
        b.proxy.stderr().contains("trying the next server"),
        "the refusing server was tried first for one of them:\n{}",
        b.proxy.stderr()
    );
}

/// Sends `bytes` (then half-closes when `eof`) on a fresh connection and
/// returns the status of the answer (0 if none).
async fn raw_status(addr: SocketAddr, bytes: &[u8], eof: bool) -> u16 {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("send");
    if eof {
        s.shutdown().await.expect("half-close");
    }
    let mut out = Vec::new();
    // The proxy must answer or close: hanging on is a failure, not a "0".
    let read = tokio::time::timeout(IO_TIMEOUT, s.read_to_end(&mut out)).await;
    assert!(
        read.is_ok(),
        "neither an answer nor a close within {IO_TIMEOUT:?}"
    );
    let text = String::from_utf8_lossy(&out);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Seven ways to break a chunked body: (name, bytes after the header, half-close).
const MALFORMED_CHUNKED: &[(&str, &[u8], bool)] = &[
    ("bad chunk-size hex", b"zz\r\nabc\r\n0\r\n\r\n", false),
    (
        "no CRLF after the chunk data",
        b"3\r\nabcXY0\r\n\r\n",
        false,
    ),
    (
        "chunk-size overflow",
        b"fffffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
        false,
    ),
    ("EOF in the middle of a chunk", b"a\r\nabc", true),
    ("EOF after the last chunk", b"3\r\nabc\r\n0\r\n", true),
    ("a negative chunk size", b"-3\r\nabc\r\n0\r\n\r\n", false),
    ("a trailer section over the limit", b"", false),
];

fn malformed_case(path: &str, tail: &[u8], name: &str) -> Vec<u8> {
    let mut out =
        format!("POST {path} HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n")
            .into_bytes();
    match name {
        "a trailer section over the limit" => {
            out.extend_from_slice(b"3\r\nabc\r\n0\r\nX-T: ");
            out.extend(std::iter::repeat_n(b'y', 70_000));
            out.extend_from_slice(b"\r\n\r\n");
        }
        _ => out.extend_from_slice(tail),
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_chunked_bodies_get_400_and_the_app_sees_nothing() {
    let b = start().await;
    for (name, tail, eof) in MALFORMED_CHUNKED {
        let status = raw_status(b.http, &malformed_case("/bad", tail, name), *eof).await;
        assert_eq!(status, 400, "{name}");
    }
    assert_eq!(
        b.app.accepted_connections(),
        0,
        "no upstream connection for a malformed body: {:?}",
        b.app.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_buffering_off_a_malformed_body_never_reaches_the_app_as_a_request() {
    let b = start().await;
    for (name, tail, eof) in MALFORMED_CHUNKED {
        let status = raw_status(b.http, &malformed_case("/stream/bad", tail, name), *eof).await;
        assert!(status == 400 || status == 0, "{name}: {status}");
    }
    assert!(b.app.wait_for_open_connections(0, IO_TIMEOUT).await);
    assert_eq!(
        b.app.request_count(),
        0,
        "the app saw a complete request: {:?}",
        b.app.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_body_that_misses_its_content_length_resets_the_stream_unseen_by_the_app() {
    let b = start().await;
    let mut client = h2_client(&b).await;
    // Fewer bytes than announced, then more.
    for (len, data) in [("10", &b"abc"[..]), ("3", &b"abcdefghij"[..])] {
        let req = http::Request::post("https://a.test/h2bad")
            .header("content-length", len)
            .body(())
            .expect("req");
        let (resp, mut body) = client.send_request(req, false).expect("send");
        let _ = body.send_data(Bytes::copy_from_slice(data), true);
        let e = timed("the h2 answer", async { Ok(h2_response(resp).await) })
            .await
            .expect("answer")
            .expect_err("the stream is reset");
        assert_eq!(e.reason(), Some(h2::Reason::PROTOCOL_ERROR), "{len}: {e}");
    }
    assert_eq!(b.app.accepted_connections(), 0, "{:?}", b.app.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_gets_408_and_a_body_over_the_limit_413_without_an_upstream_connection() {
    let b = start().await;
    let mut c = H1Conn::connect(b.http).await.expect("connect");
    c.send_raw(b"POST /stall HTTP/1.1\r\nHost: a.test\r\nContent-Length: 10\r\n\r\nabc")
        .await
        .expect("send");
    let r = c
        .read_response()
        .await
        .expect("answer after the 1s body timeout");
    assert_eq!(r.status, 408);

    let mut c = H1Conn::connect(b.http).await.expect("connect");
    c.send_raw(b"POST /big HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .expect("head");
    // Exactly 1 MiB, then one byte more (and nothing after it, so that the
    // proxy has read everything when it answers and closes).
    let chunk = [b'z'; 64 * 1024];
    let mut sent = Vec::new();
    sent.extend(format!("{:x}\r\n", chunk.len()).as_bytes());
    sent.extend_from_slice(&chunk);
    sent.extend_from_slice(b"\r\n");
    for _ in 0..16 {
        c.send_raw(&sent).await.expect("chunk");
    }
    c.send_raw(b"1\r\nz\r\n").await.expect("the byte too many");
    let r = c.read_response().await.expect("answer");
    assert_eq!(r.status, 413, "a chunked body over 1m");

    let mut client = h2_client(&b).await;
    let req = http::Request::post("https://a.test/big2")
        .body(())
        .expect("req");
    let (resp, mut body) = client.send_request(req, false).expect("send");
    let big = Bytes::from(vec![b'z'; 1_100_000]);
    let _ = body.send_data(big, true);
    let got = timed("the h2 answer", async { Ok(h2_response(resp).await) })
        .await
        .expect("answer");
    assert!(matches!(got, Ok((413, _))), "{got:?}");
    assert_eq!(b.app.accepted_connections(), 0, "{:?}", b.app.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_buffering_off_an_h2_body_that_overruns_its_length_is_never_complete_for_the_app() {
    let b = start().await;
    let mut client = h2_client(&b).await;
    let req = http::Request::post("https://a.test/stream/h2")
        .header("content-length", "3")
        .body(())
        .expect("req");
    let (resp, mut body) = client.send_request(req, false).expect("send");
    body.send_data(Bytes::from_static(b"abc"), false)
        .expect("data");
    eventually(IO_TIMEOUT, "the body streams to the app", || async {
        b.app.request_heads() == 1
    })
    .await;
    // Before END_STREAM the three bytes do not make a request for the app
    // (the proxy cannot know yet whether more DATA will break the length).
    let complete_early = b.app.wait_for_requests(1, Duration::from_secs(1)).await;
    let _ = body.send_data(Bytes::from_static(b"de"), true);
    let e = timed("the h2 answer", async { Ok(h2_response(resp).await) })
        .await
        .expect("answer")
        .expect_err("the stream is reset");
    assert_eq!(e.reason(), Some(h2::Reason::PROTOCOL_ERROR), "{e}");
    assert!(b.app.wait_for_open_connections(0, IO_TIMEOUT).await);
    assert!(
        !complete_early,
        "the app had a complete request before END_STREAM"
    );
    assert_eq!(b.app.request_count(), 0, "{:?}", b.app.requests());

    // A well-formed streamed h2 body still arrives whole, with its length.
    let req = http::Request::post("https://a.test/stream/ok")
        .header("content-length", "5")
        .body(())
        .expect("req");
    let (resp, mut body) = client.send_request(req, false).expect("send");
    body.send_data(Bytes::from_static(b"abc"), false)
        .expect("data");
    body.send_data(Bytes::from_static(b"de"), false)
        .expect("data");
    body.send_data(Bytes::new(), true).expect("end");
    let (status, _) = timed("h2 response", async {
        h2_response(resp).await.map_err(std::io::Error::other)
    })
    .await
    .expect("response");
    assert_eq!(status, 200);
    assert_eq!(b.app.last_request().expect("arrived").body, b"abcde");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_is_answered_by_the_proxy_and_not_sent_upstream() {
    let b = start().await;
    let mut s = TcpStream::connect(b.http).await.expect("connect");
    s.write_all(b"POST /expect HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .await
        .expect("head");
    let mut interim = Vec::new();
    let read_interim = async {
        while !interim.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            s.read_exact(&mut byte).await?;
            interim.push(byte[0]);
        }
        Ok(())
    };
    timed("the 100 Continue", read_interim)
        .await
        .expect("interim");
    assert!(
        interim.starts_with(b"HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&interim)
    );
    assert_eq!(b.app.accepted_connections(), 0);
    s.write_all(b"hello").await.expect("body");
    let mut c = H1Conn::from_stream(s);
    let r = c.read_response().await.expect("response");
    assert_eq!(r.status, 200);
    let seen = b.app.last_request().expect("arrived");
    assert_eq!(seen.body, b"hello");
    assert_eq!(seen.header("expect"), None, "the body is already here");
}

/// The in-flight count of upstream `u`'s pool, from the admin API.
async fn pool_inflight(admin: SocketAddr) -> i64 {
    let mut c = H1Conn::connect(admin).await.expect("admin connect");
    let r = c
        .get("/api/upstreams", &admin.to_string())
        .await
        .expect("admin answer");
    r.json()["upstreams"]
        .as_array()
        .and_then(|u| u.iter().find(|u| u["name"] == "u"))
        .and_then(|u| u["pools"][0]["inflight"].as_i64())
        .unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_waits_for_a_body_still_being_buffered() {
    let mut b = start().await;
    let mut c = H1Conn::connect(b.http).await.expect("connect");
    c.send_raw(b"POST /upload HTTP/1.1\r\nHost: a.test\r\nContent-Length: 10\r\n\r\nabc")
        .await
        .expect("head");
    // The stop comes once the proxy buffers the body (the upload holds the
    // pool): under load, a SIGTERM sent right after the bytes could reach a
    // proxy that has not read the request yet.
    assert!(
        wait_until_async(deadline_in(IO_TIMEOUT), || async {
            pool_inflight(b.admin).await == 1
        })
        .await,
        "the upload is in flight"
    );
    let mark = b.proxy.log_mark();
    b.proxy.signal("TERM").expect("SIGTERM");
    assert!(
        b.proxy
            .wait_for_stderr_after(mark, "SIGTERM", IO_TIMEOUT)
            .await,
        "the stop began"
    );
    // A bounded wait for something that must not happen: a stop that does
    // not count the upload as in flight exits within 250 ms of seeing none.
    // The client keeps trickling meanwhile (within the 1s body timeout).
    for byte in [b"d", b"e", b"f"] {
        assert!(
            b.proxy
                .wait_exit(Duration::from_millis(400))
                .await
                .is_none(),
            "the process waits for the upload"
        );
        c.send_raw(byte).await.expect("a byte");
    }
    c.send_raw(b"ghij").await.expect("rest");
    let r = c.read_response().await.expect("response");
    assert_eq!(r.status, 200);
    assert_eq!(b.app.last_request().expect("arrived").body, b"abcdefghij");
    assert!(
        b.proxy.wait_exit(IO_TIMEOUT).await.is_some(),
        "then it exits"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_max_body_size_overrides_the_site_limit_both_ways() {
    let b = start().await;
    // Over a limit: answered from the declared length alone, so only the
    // header is sent (the proxy closes after a 413).
    let head = |path: &str, len: usize| {
        format!("POST {path} HTTP/1.1\r\nHost: a.test\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n")
            .into_bytes()
    };
    let whole = |path: &str, len: usize| {
        let mut req = head(path, len);
        req.extend(std::iter::repeat_n(b'b', len));
        req
    };
    let big = 1536 * 1024;
    assert_eq!(
        raw_status(b.http, &whole("/large/x", big), false).await,
        200,
        "the 2m route takes 1.5 MiB"
    );
    assert_eq!(
        raw_status(b.http, &head("/x", big), false).await,
        413,
        "the site's 1m applies elsewhere"
    );
    assert_eq!(
        raw_status(b.http, &head("/tiny/x", 2048), false).await,
        413,
        "the 1k route refuses 2 KiB"
    );
    assert_eq!(
        raw_status(b.http, &whole("/x", 2048), false).await,
        200,
        "the site takes 2 KiB"
    );
    let seen: Vec<String> = b.app.requests().iter().map(|r| r.path.clone()).collect();
    assert!(seen.contains(&"/large/x".to_string()), "{seen:?}");
    assert!(!seen.contains(&"/tiny/x".to_string()), "{seen:?}");
}
