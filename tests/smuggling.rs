//! Request smuggling policy, pinned. greenlight follows nginx: a request whose
//! framing is ambiguous is refused with 400 and its connection closed, never
//! forwarded. For every case the upstream's own log must show at most one
//! clean request per client request.

use crate::fixture::Scene;
use crate::support::*;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

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
        // One Content-Length field that is not plain digits (the vendored
        // pingora-core reads plain digits directly, the rest as before).
        (
            "a Content-Length list that disagrees",
            b"POST /api/g HTTP/1.1\r\nHost: app.test\r\nContent-Length: 4, 40\r\n\r\nabcd",
        ),
        (
            "a signed Content-Length",
            b"POST /api/h HTTP/1.1\r\nHost: app.test\r\nContent-Length: +4\r\n\r\nabcd",
        ),
        (
            "a Content-Length with a letter",
            b"POST /api/i HTTP/1.1\r\nHost: app.test\r\nContent-Length: 4a\r\n\r\nabcd",
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
    // The upstream answers 200 (no upgrade). The bytes after the header are
    // the client's next (pipelined) request: greenlight must parse and route
    // it itself (`/hidden` belongs to `web`), never pass it to `api` on the
    // upgrade request's upstream connection, where the app would read it as
    // a request greenlight never saw.
    let bytes = b"GET /api/up HTTP/1.1\r\nHost: app.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\nGET /hidden HTTP/1.1\r\nHost: app.test\r\n\r\n";
    let mut c = H1Conn::connect(s.http).await.expect("connect");
    c.set_timeout(Duration::from_secs(3));
    c.send_raw(bytes).await.expect("send");
    let first = c.read_response().await.expect("response");
    assert_eq!(first.status, 200);
    assert_eq!(first.json()["path"], "/api/up");
    let second = c
        .read_response()
        .await
        .expect("the pipelined request's answer");
    assert_eq!(second.json()["upstream"], "web", "{}", second.text());
    let api: Vec<String> = s.api.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        api,
        ["/api/up"],
        "nothing smuggled to the upgrade's upstream"
    );
    let web: Vec<String> = s.web.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(web, ["/hidden"], "routed by greenlight");
}

/// Pipelining keeps bytes read past a request for the next one: a refused
/// request among them must still end the connection, with nothing after it
/// forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_in_a_pipeline_closes_the_connection() {
    let s = Scene::start().await;
    let bytes = b"GET /api/first HTTP/1.1\r\nHost: app.test\r\n\r\nPOST /api/bad HTTP/1.1\r\nHost: app.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /api/after HTTP/1.1\r\nHost: app.test\r\n\r\n";
    let mut c = H1Conn::connect(s.http).await.expect("connect");
    c.set_timeout(Duration::from_secs(3));
    c.send_raw(bytes).await.expect("send");
    let first = c.read_response().await.expect("first");
    assert_eq!(first.status, 200);
    let refused = c.read_response().await.expect("the refusal");
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(c.server_will_close(), "the refusal says close");
    assert!(c.wait_closed_by_peer(Duration::from_secs(2)).await);
    assert_eq!(upstream_paths(&s), ["/api/first"]);
}

// A hand-written HTTP/2 client (RFC 9113 frames, RFC 7541 HPACK literals).
// A real client library such as the `h2` crate refuses to send the malformed
// requests below, so a test using one proves nothing about greenlight.

use crate::support::h2raw::*;

/// An HPACK integer with a 7-bit prefix and no flag bits (RFC 7541 §5.1).
fn hpack_len(out: &mut Vec<u8>, mut n: usize) {
    if n < 0x7f {
        out.push(n as u8);
        return;
    }
    out.push(0x7f);
    n -= 0x7f;
    while n >= 0x80 {
        out.push((n % 0x80) as u8 | 0x80);
        n /= 0x80;
    }
    out.push(n as u8);
}

/// Every field as "literal header field without indexing, new name"
/// (RFC 7541 §6.2.2) with raw (non-Huffman) strings: the bytes go on the
/// wire exactly as given, CR/LF and uppercase included.
fn hpack_literals(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0x00);
        hpack_len(&mut out, name.len());
        out.extend_from_slice(name.as_bytes());
        hpack_len(&mut out, value.len());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// The HPACK Huffman code of one digit (RFC 7541 Appendix B): `0`-`2` are
/// 5 bits (00000-00010), `3`-`9` are 6 bits (011001-011111).
fn huffman_digits(bytes: &[u8], count: usize) -> Option<String> {
    let bit = |i: usize| bytes.get(i / 8).map(|b| (b >> (7 - i % 8)) & 1);
    let mut out = String::new();
    let mut i = 0;
    while out.len() < count {
        let mut v = 0u8;
        for _ in 0..5 {
            v = v << 1 | bit(i)?;
            i += 1;
        }
        if v <= 2 {
            out.push(char::from(b'0' + v));
            continue;
        }
        v = v << 1 | bit(i)?;
        i += 1;
        if !(0x19..=0x1f).contains(&v) {
            return None;
        }
        out.push(char::from(b'0' + v - 0x19 + 3));
    }
    Some(out)
}

/// `:status` from the start of a response header block, in the forms an
/// encoder uses for it: indexed (static entries 8-14) or a literal with the
/// static name `:status`, raw or Huffman value (RFC 7541 §6.1, §6.2, App. A).
fn status_of(block: &[u8]) -> Option<u16> {
    const STATIC: [u16; 7] = [200, 204, 206, 304, 400, 404, 500];
    let first = *block.first()?;
    if first & 0x80 != 0 {
        let index = usize::from(first & 0x7f);
        return (8..=14).contains(&index).then(|| STATIC[index - 8]);
    }
    let name_index = if first & 0xc0 == 0x40 {
        first & 0x3f
    } else if first & 0xe0 == 0x00 {
        first & 0x0f
    } else {
        return None;
    };
    if !(8..=14).contains(&name_index) {
        return None;
    }
    let len_byte = *block.get(1)?;
    let len = usize::from(len_byte & 0x7f);
    let value = block.get(2..2 + len)?;
    let digits = if len_byte & 0x80 != 0 {
        huffman_digits(value, 3)?
    } else {
        String::from_utf8(value.to_vec()).ok()?
    };
    digits.parse().ok()
}

/// How greenlight answered one hand-written HTTP/2 request.
#[derive(Debug, PartialEq)]
enum H2Answer {
    /// RST_STREAM on the request's stream, with its error code.
    Reset(u32),
    /// GOAWAY, with its error code.
    GoAway(u32),
    /// A response HEADERS frame; the status if it could be decoded.
    Response(Option<u16>),
}

/// Opens a fresh h2-over-TLS connection, sends the preface, SETTINGS and one
/// HEADERS frame (END_STREAM | END_HEADERS) on stream 1 carrying `fields`,
/// and reads frames until greenlight answers that request.
async fn raw_h2(s: &Scene, fields: &[(&str, &str)]) -> H2Answer {
    let config = tls::client_config(&s.root(), &["h2"]);
    let (mut io, info) = tls_connect_with(s.https, "app.test", config)
        .await
        .expect("TLS");
    assert_eq!(info.alpn.as_deref(), Some(&b"h2"[..]), "ALPN h2");
    let mut out = PREFACE.to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    out.extend(frame(
        HEADERS,
        END_STREAM | END_HEADERS,
        1,
        &hpack_literals(fields),
    ));
    let exchange = async {
        io.write_all(&out).await?;
        io.flush().await?;
        loop {
            let (kind, flags, stream, payload) = read_frame(&mut io).await?;
            let code = || u32::from_be_bytes(payload[..4].try_into().expect("4 bytes"));
            match kind {
                SETTINGS if flags & ACK == 0 => {
                    io.write_all(&frame(SETTINGS, ACK, 0, &[])).await?;
                    io.flush().await?;
                }
                RST_STREAM if stream == 1 && payload.len() >= 4 => {
                    return Ok(H2Answer::Reset(code()));
                }
                GOAWAY if payload.len() >= 8 => {
                    let code = u32::from_be_bytes(payload[4..8].try_into().expect("4 bytes"));
                    return Ok(H2Answer::GoAway(code));
                }
                HEADERS if stream == 1 => {
                    let mut block = &payload[..];
                    let mut pad = 0;
                    if flags & PADDED != 0 {
                        pad = usize::from(*block.first().unwrap_or(&0));
                        block = block.get(1..).unwrap_or_default();
                    }
                    if flags & PRIORITY != 0 {
                        block = block.get(5..).unwrap_or_default();
                    }
                    let block = &block[..block.len().saturating_sub(pad)];
                    return Ok(H2Answer::Response(status_of(block)));
                }
                _ => {}
            }
        }
    };
    timed("an answer to a hand-written h2 request", exchange)
        .await
        .expect("greenlight answers the request (RST_STREAM, GOAWAY or a response)")
}

/// The pseudo-headers of a GET for `path` on app.test.
fn get(path: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "app.test"),
        (":path", path),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_requests_with_connection_headers_or_crlf_are_refused() {
    let s = Scene::start().await;
    // RFC 9113 §8.2.1 (uppercase names, CR/LF in values) and §8.2.2
    // (connection-specific fields; TE only as "trailers"): malformed, so a
    // stream error, never forwarded.
    let cases: &[(&str, &'static str, (&str, &str))] = &[
        ("connection", "/api/h2-conn", ("connection", "keep-alive")),
        (
            "transfer-encoding",
            "/api/h2-te",
            ("transfer-encoding", "chunked"),
        ),
        ("te other than trailers", "/api/h2-te-gzip", ("te", "gzip")),
        ("upgrade", "/api/h2-upgrade", ("upgrade", "h2c")),
        (
            "CR/LF in a value",
            "/api/h2-crlf",
            ("x-note", "a\r\ninjected: yes"),
        ),
        ("uppercase name", "/api/h2-upper", ("X-Upper", "1")),
    ];
    for (name, path, field) in cases {
        let mut fields = get(path);
        fields.push(*field);
        let answer = raw_h2(&s, &fields).await;
        let refused = match answer {
            H2Answer::Reset(code) | H2Answer::GoAway(code) => code == PROTOCOL_ERROR,
            H2Answer::Response(Some(status)) => !(200..300).contains(&status),
            H2Answer::Response(None) => false,
        };
        assert!(refused, "{name}: must be refused, got {answer:?}");
    }
    let paths = upstream_paths(&s);
    assert!(
        paths.is_empty(),
        "no malformed h2 request reached an upstream: {paths:?}"
    );

    // Control: the same encoder with clean fields (te: trailers is allowed)
    // reaches the upstream, so the refusals above are about the fields.
    let mut fields = get("/api/h2-clean");
    fields.extend([("te", "trailers"), ("x-raw", "encoded by hand")]);
    assert_eq!(raw_h2(&s, &fields).await, H2Answer::Response(Some(200)));
    let reqs = s.api.requests();
    assert_eq!(reqs.len(), 1, "{reqs:#?}");
    assert_eq!(reqs[0].path, "/api/h2-clean");
    assert_eq!(reqs[0].header("x-raw"), Some("encoded by hand"));
    assert!(
        s.api
            .requests()
            .iter()
            .chain(s.web.requests().iter())
            .all(|r| r.header("injected").is_none()),
        "no injected header line"
    );
    assert!(s.web.requests().is_empty(), "{:#?}", s.web.requests());
}

#[test]
fn the_status_decoder_reads_indexed_raw_and_huffman_forms() {
    assert_eq!(status_of(&[0x88]), Some(200));
    assert_eq!(status_of(&[0x8c]), Some(400));
    // Literal without indexing, name :status (index 8), raw "421".
    assert_eq!(status_of(&[0x08, 3, b'4', b'2', b'1']), Some(421));
    // Literal with incremental indexing, name index 8, Huffman "503":
    // 011011 00000 011001 + EOS padding = 6c 0c ff.
    assert_eq!(status_of(&[0x48, 0x83, 0x6c, 0x0c, 0xff]), Some(503));
    assert_eq!(status_of(&[0x00, 1, b'x']), None);
}
