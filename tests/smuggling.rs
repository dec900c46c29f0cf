//! Request smuggling policy, pinned. greenlight follows nginx: a request whose
//! framing is ambiguous is refused with 400 and its connection closed, never
//! forwarded. For every case the upstream's own log must show at most one
//! clean request per client request.

use crate::fixture::Scene;
use crate::support::*;
use std::time::Duration;

/// Sends raw bytes on a fresh connection; returns the status (0 when the
/// proxy closed without answering) and whether the connection was closed.
async fn raw(s: &Scene, bytes: &[u8]) -> (u16, bool) {
    let mut c = H1Conn::connect(s.http).await.expect("connect");
    c.set_timeout(Duration::from_secs(3));
    c.send_raw(bytes).await.expect("send");
    let status = match c.read_response().await {
        Ok(r) => r.status,
        Err(_) => 0,
    };
    let closed = c.wait_closed_by_peer(Duration::from_secs(2)).await;
    (status, closed)
}

fn upstream_paths(s: &Scene) -> Vec<String> {
    s.api
        .requests()
        .iter()
        .chain(s.web.requests().iter())
        .map(|r| r.path.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_framing_is_refused_with_400_and_never_forwarded() {
    let s = Scene::start().await;
    let cases: &[(&str, &[u8])] = &[
        (
            "CL and TE together",
            b"POST /api/a HTTP/1.1\r\nHost: app.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /api/smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n",
        ),
        (
            "obfuscated TE",
            b"POST /api/b HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: xchunked\r\nContent-Length: 4\r\n\r\nabcd",
        ),
        (
            "TE with a trailing coding",
            b"POST /api/c HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        ),
        (
            "two different Content-Lengths",
            b"POST /api/d HTTP/1.1\r\nHost: app.test\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd",
        ),
        (
            "HTTP/1.0 with chunked",
            b"POST /api/e HTTP/1.0\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "a space before the colon",
            b"POST /api/f HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        ),
    ];
    for (name, bytes) in cases {
        let (status, closed) = raw(&s, bytes).await;
        assert!(status == 400 || status == 0, "{name}: got {status}");
        assert!(closed, "{name}: the connection must be closed");
    }
    let paths = upstream_paths(&s);
    assert!(
        paths.is_empty(),
        "nothing ambiguous reached an upstream: {paths:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_whose_body_hides_a_second_request_forwards_one_request() {
    let s = Scene::start().await;
    // The upstream answers 200 (no upgrade): the bytes after the header must
    // not be read as a second request on the upstream connection.
    let bytes = b"GET /api/up HTTP/1.1\r\nHost: app.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nContent-Length: 0\r\n\r\nGET /api/hidden HTTP/1.1\r\nHost: app.test\r\n\r\n";
    let mut c = H1Conn::connect(s.http).await.expect("connect");
    c.set_timeout(Duration::from_secs(3));
    c.send_raw(bytes).await.expect("send");
    let first = c.read_response().await.expect("response");
    assert_eq!(first.status, 200);
    // Whatever happens to the pipelined bytes, the upstream must never see
    // /api/hidden arrive on the upgrade request's upstream connection.
    let _ = c.read_response().await;
    let reqs = s.api.requests();
    let up = reqs
        .iter()
        .find(|r| r.path == "/api/up")
        .expect("the first request");
    let smuggled: Vec<_> = reqs
        .iter()
        .filter(|r| r.path == "/api/hidden" && r.conn_id == up.conn_id)
        .collect();
    assert!(
        smuggled.is_empty(),
        "smuggled on the same upstream connection: {reqs:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_requests_with_connection_headers_or_crlf_are_refused() {
    let s = Scene::start().await;
    let mut c = H2Conn::connect(s.https, "app.test", &s.root())
        .await
        .expect("h2");
    let r = c
        .request("GET", "/api/h2-conn", &[("connection", "keep-alive")], b"")
        .await;
    assert!(
        r.map_or(true, |r| r.status >= 400),
        "connection-specific header must be refused"
    );
    let mut c = H2Conn::connect(s.https, "app.test", &s.root())
        .await
        .expect("h2");
    let r = c
        .request(
            "GET",
            "/api/h2-te",
            &[("transfer-encoding", "chunked")],
            b"",
        )
        .await;
    assert!(r.map_or(true, |r| r.status >= 400));
    let paths = upstream_paths(&s);
    assert!(paths.is_empty(), "{paths:?}");
}
