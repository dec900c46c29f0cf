//! `compress:` (issue #16, compression) through the real binary: proxied
//! and `files:` answers compressed with gzip, brotli and zstd by
//! `Accept-Encoding` q-values, decoded and compared byte for byte (by the
//! codings' own crates and by curl `--compressed`); what must never be
//! compressed (short, other types, encoded already, 206, HEAD,
//! `no-transform`, a WebSocket); Server-Sent Events arriving event by event
//! over HTTP/1.1 and h2, the upstream holding the second event back until
//! the client decoded the first; precompressed siblings.

use crate::support::*;
use bytes::Bytes;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Notify;

const YAML: &str = r#"
listeners:
  http: {address: "127.0.0.1:{HTTP}"}
  https: {address: "127.0.0.1:{HTTPS}", tls: true}
admin: {address: "127.0.0.1:{ADMIN}"}
upstreams:
  app: {active: a, pools: {a: ["127.0.0.1:{APP}"]}}
  ws: {active: a, pools: {a: ["127.0.0.1:{WS}"]}}
sites:
  site:
    hosts: [zip.test]
    tls: {cert: "{DIR}/zip.crt", key: "{DIR}/zip.key"}
    plain_http: serve
    compress: {min_length: 100}
    routes:
      - {path: /, upstream: app}
      - {path: /ws/, upstream: ws}
      - {path: /gz/, upstream: app, upstream_path: /, compress: {algorithms: [gzip], types: [text/html]}}
      - {path: /off/, upstream: app, upstream_path: /, compress: false}
      - path: /files/
        files: {alias: "{WWW}/"}
        compress: {precompressed: [br, gzip]}
"#;

/// The page every compressed answer is checked against.
fn page() -> Vec<u8> {
    let mut p = b"<!doctype html><title>t</title>\n".to_vec();
    for i in 0..2000 {
        p.extend_from_slice(format!("<p>line {i}: the quick brown fox</p>\n").as_bytes());
    }
    p
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

fn decode(coding: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "gzip" => {
            flate2::read::GzDecoder::new(data)
                .read_to_end(&mut out)
                .expect("gzip body");
        }
        "br" => {
            brotli::Decompressor::new(data, 4096)
                .read_to_end(&mut out)
                .expect("br body");
        }
        "zstd" => out = zstd::decode_all(data).expect("zstd body"),
        other => panic!("unexpected coding {other}"),
    }
    out
}

fn response(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// The app: fixed answers by path, and `/events`, a Server-Sent Events
/// stream that sends its second event only once `next` is notified.
async fn app(next: Arc<Notify>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let next = next.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    buf.drain(..end + 4);
                    let mut words = head.split_whitespace();
                    let method = words.next().unwrap_or("").to_string();
                    let path = words.next().unwrap_or("").to_string();
                    if path == "/events" {
                        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n";
                        let ev = |n: u32| {
                            let e = format!("id: {n}\ndata: event number {n}\n\n");
                            format!("{:x}\r\n{e}\r\n", e.len())
                        };
                        let _ = s.write_all(format!("{head}{}", ev(1)).as_bytes()).await;
                        next.notified().await;
                        let _ = s.write_all(format!("{}0\r\n\r\n", ev(2)).as_bytes()).await;
                        continue;
                    }
                    let html = [
                        ("content-type", "text/html; charset=utf-8"),
                        ("etag", "\"v1\""),
                    ];
                    let mut out = match path.as_str() {
                        "/page.html" => response("200 OK", &html, &page()),
                        "/small.html" => response("200 OK", &html, b"<p>tiny</p>"),
                        "/data.json" => {
                            response("200 OK", &[("content-type", "application/json")], &page())
                        }
                        "/image.png" => {
                            response("200 OK", &[("content-type", "image/png")], &page())
                        }
                        "/encoded.html" => response(
                            "200 OK",
                            &[("content-type", "text/html"), ("content-encoding", "gzip")],
                            &gzip(&page()),
                        ),
                        "/partial.html" => response(
                            "206 Partial Content",
                            &[
                                ("content-type", "text/html"),
                                ("content-range", "bytes 0-999/9999"),
                            ],
                            &page()[..1000],
                        ),
                        "/keep.html" => response(
                            "200 OK",
                            &[
                                ("content-type", "text/html"),
                                ("cache-control", "no-transform"),
                            ],
                            &page(),
                        ),
                        _ => response("404 Not Found", &[("content-type", "text/plain")], b"no"),
                    };
                    if method == "HEAD" {
                        let end = out.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
                        out.truncate(end);
                    }
                    if s.write_all(&out).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

struct Fixture {
    site: TlsSite,
    next: Arc<Notify>,
    _www: tempfile::TempDir,
    _ws: WsUpstream,
}

impl Fixture {
    async fn start() -> Fixture {
        let next = Arc::new(Notify::new());
        let app = app(next.clone()).await;
        let ws = WsUpstream::start("ws").await;
        let www = tempfile::tempdir().expect("tempdir");
        let w = www.path();
        std::fs::write(w.join("page.html"), page()).expect("page");
        // Siblings whose content tells them apart from on-the-fly output.
        let mut br = Vec::new();
        {
            let mut e = brotli::CompressorWriter::new(&mut br, 4096, 5, 22);
            e.write_all(b"from the .br sibling").expect("br");
        }
        std::fs::write(w.join("page.html.br"), &br).expect("br sibling");
        std::fs::write(w.join("page.html.gz"), gzip(b"from the .gz sibling")).expect("gz");
        std::fs::write(w.join("logo.png"), page()).expect("png");
        let yaml = YAML.replace("{WWW}", &w.display().to_string());
        let site = TlsSite::start(
            &yaml,
            &["zip.test"],
            "zip",
            &[("APP", app), ("WS", ws.port())],
        )
        .await;
        Fixture {
            site,
            next,
            _www: www,
            _ws: ws,
        }
    }

    async fn h1(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut c = H1Conn::connect(self.site.http).await.expect("connect");
        c.request(method, path, "zip.test", headers, b"")
            .await
            .expect("response")
    }

    async fn h2(&self) -> H2Conn {
        H2Conn::connect(self.site.https, "zip.test", &self.site.ca.cert_pem())
            .await
            .expect("h2")
    }
}

fn untouched(r: &Response, what: &str) {
    assert_eq!(
        r.header("content-encoding"),
        None,
        "{what}: {:?}",
        r.headers
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxied_answers_are_compressed_by_q_value_and_decode_byte_for_byte() {
    let f = Fixture::start().await;
    let want = page();
    for (ae, coding) in [
        ("gzip", "gzip"),
        ("br", "br"),
        ("zstd", "zstd"),
        ("gzip, deflate, br, zstd", "zstd"),
        ("gzip, br;q=0.9", "gzip"),
        ("zstd;q=0, br;q=0.2, gzip;q=0.1", "br"),
        ("*", "zstd"),
    ] {
        let r = f.h1("GET", "/page.html", &[("Accept-Encoding", ae)]).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-encoding"), Some(coding), "{ae}");
        assert_eq!(r.header("content-length"), None, "{ae}");
        assert_eq!(r.header("transfer-encoding"), Some("chunked"), "{ae}");
        assert_eq!(r.header("vary"), Some("Accept-Encoding"), "{ae}");
        assert_eq!(r.header("etag"), Some("W/\"v1\""), "a weak validator: {ae}");
        assert!(
            r.body.len() < want.len() / 3,
            "{ae}: {} bytes",
            r.body.len()
        );
        assert!(
            decode(coding, &r.body) == want,
            "{ae}: decoded body differs"
        );

        let r = f
            .h2()
            .await
            .request("GET", "/page.html", &[("accept-encoding", ae)], b"")
            .await
            .expect("h2");
        assert_eq!(r.header("content-encoding"), Some(coding), "h2 {ae}");
        assert!(
            decode(coding, &r.body) == want,
            "h2 {ae}: decoded body differs"
        );
    }
    for ae in [
        None,
        Some("identity"),
        Some("*;q=0"),
        Some("gzip;q=0"),
        Some("deflate"),
    ] {
        let h: Vec<(&str, &str)> = ae.map(|v| ("Accept-Encoding", v)).into_iter().collect();
        let r = f.h1("GET", "/page.html", &h).await;
        untouched(&r, &format!("{ae:?}"));
        assert_eq!(r.body, want);
        assert_eq!(
            r.header("vary"),
            Some("Accept-Encoding"),
            "varies all the same"
        );
        assert_eq!(r.header("etag"), Some("\"v1\""));
    }

    // A real client: curl decodes what it asked for.
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "--compressed",
            "-H",
            "Host: zip.test",
            "-w",
            "\n%{size_download}",
        ])
        .arg(format!("http://127.0.0.1:{}/page.html", f.site.http.port()))
        .output()
        .expect("curl runs");
    let (body, size) = out
        .stdout
        .split_at(out.stdout.iter().rposition(|b| *b == b'\n').expect("size"));
    assert!(body == want, "curl's decoded body differs");
    let size: usize = String::from_utf8_lossy(&size[1..]).parse().expect("size");
    assert!(size < want.len() / 3, "curl downloaded {size} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_typed_encoded_ranged_head_and_no_transform_answers_pass_as_they_are() {
    let f = Fixture::start().await;
    let gz = [("Accept-Encoding", "gzip, br, zstd")];
    let r = f.h1("GET", "/small.html", &gz).await;
    untouched(&r, "below min_length");
    assert_eq!(r.header("vary"), None);
    untouched(&f.h1("GET", "/image.png", &gz).await, "not a listed type");
    let r = f.h1("GET", "/data.json", &gz).await;
    assert_eq!(
        r.header("content-encoding"),
        Some("zstd"),
        "json is a default type"
    );

    let r = f.h1("GET", "/encoded.html", &gz).await;
    assert_eq!(
        r.header_all("content-encoding"),
        ["gzip"],
        "no double encoding"
    );
    assert!(decode("gzip", &r.body) == page());

    let r = f.h1("GET", "/partial.html", &gz).await;
    assert_eq!(r.status, 206);
    untouched(&r, "206");
    assert!(r.body == page()[..1000]);
    untouched(&f.h1("GET", "/keep.html", &gz).await, "no-transform");
    let r = f.h1("HEAD", "/page.html", &gz).await;
    untouched(&r, "HEAD");
    assert_eq!(
        r.header("content-length"),
        Some(page().len().to_string().as_str())
    );

    // A route's own block: gzip only, text/html only; another turns it off.
    let r = f
        .h1(
            "GET",
            "/gz/page.html",
            &[("Accept-Encoding", "br, zstd, gzip;q=0.1")],
        )
        .await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert!(decode("gzip", &r.body) == page());
    untouched(
        &f.h1("GET", "/gz/page.html", &[("Accept-Encoding", "br")])
            .await,
        "br not offered",
    );
    untouched(&f.h1("GET", "/gz/data.json", &gz).await, "json not listed");
    untouched(&f.h1("GET", "/off/page.html", &gz).await, "compress: false");

    // A WebSocket through a compressing site: its frames pass as they are.
    let url = format!("ws://zip.test:{}/ws/chat", f.site.http.port());
    let mut ws = ws_connect_with(&url, None, &[("Accept-Encoding", "gzip")])
        .await
        .expect("ws upgrade");
    assert_eq!(ws.status, 101);
    assert_eq!(ws.recv_text().await.expect("hello"), "hello from ws");
    ws.send_text("plain text, not gzip").await.expect("send");
    assert_eq!(ws.recv_text().await.expect("echo"), "plain text, not gzip");
}

/// Feeds `raw` (HTTP/1.1 chunked framing, possibly partial) to `dec`,
/// returning the bytes not yet framed.
fn unchunk(raw: &mut Vec<u8>, dec: &mut flate2::write::GzDecoder<Vec<u8>>) {
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return;
        };
        let size = usize::from_str_radix(String::from_utf8_lossy(&raw[..eol]).trim(), 16)
            .expect("chunk size");
        if raw.len() < eol + 2 + size + 2 {
            return;
        }
        dec.write_all(&raw[eol + 2..eol + 2 + size])
            .expect("gzip data");
        dec.flush().expect("gzip flush");
        raw.drain(..eol + 2 + size + 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sent_events_arrive_event_by_event_over_h1_and_h2() {
    let f = Fixture::start().await;
    let deadline = Duration::from_secs(10);
    let first = b"id: 1\ndata: event number 1\n\n".to_vec();
    let both = b"id: 1\ndata: event number 1\n\nid: 2\ndata: event number 2\n\n".to_vec();

    // HTTP/1.1: the first event decodes while the upstream still holds the second.
    let mut s = tokio::net::TcpStream::connect(f.site.http)
        .await
        .expect("connect");
    s.write_all(b"GET /events HTTP/1.1\r\nHost: zip.test\r\nAccept-Encoding: gzip\r\n\r\n")
        .await
        .expect("send");
    let mut raw = Vec::new();
    let mut dec = flate2::write::GzDecoder::new(Vec::new());
    let mut head = None;
    for target in [&first, &both] {
        tokio::time::timeout(deadline, async {
            let mut buf = [0u8; 4096];
            while dec.get_ref() != target {
                let n = s.read(&mut buf).await.expect("read");
                assert!(n > 0, "closed before the event arrived");
                raw.extend_from_slice(&buf[..n]);
                if head.is_none()
                    && let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n")
                {
                    head = Some(String::from_utf8_lossy(&raw[..end]).to_lowercase());
                    raw.drain(..end + 4);
                }
                if head.is_some() {
                    unchunk(&mut raw, &mut dec);
                }
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "h1: {:?} not decoded in time, got {:?}",
                target,
                dec.get_ref()
            )
        });
        if target == &first {
            f.next.notify_one();
        }
    }
    let head = head.expect("head");
    assert!(head.contains("content-encoding: gzip"), "{head}");

    // h2: the same, reading DATA frames as they come.
    let (tls, _) = tls_connect_prefixed(
        f.site.https,
        b"",
        "zip.test",
        crate::support::tls::client_config(&f.site.ca.cert_pem(), &["h2"]),
    )
    .await
    .expect("tls");
    let (send, conn) = h2::client::handshake(tls).await.expect("h2 handshake");
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = http::Request::get("https://zip.test/events")
        .header("accept-encoding", "br")
        .body(())
        .expect("request");
    let (resp, _) = send
        .ready()
        .await
        .expect("ready")
        .send_request(req, true)
        .expect("send");
    let resp = tokio::time::timeout(deadline, resp)
        .await
        .expect("head in time")
        .expect("head");
    assert_eq!(resp.headers()["content-encoding"], "br");
    let mut body = resp.into_body();
    let mut dec = brotli::DecompressorWriter::new(Vec::new(), 4096);
    for target in [&first, &both] {
        tokio::time::timeout(deadline, async {
            while dec.get_ref() != target {
                let data: Bytes = body.data().await.expect("more data").expect("data");
                let _ = body.flow_control().release_capacity(data.len());
                dec.write_all(&data).expect("br data");
                dec.flush().expect("br flush");
            }
        })
        .await
        .unwrap_or_else(|_| panic!("h2: {:?} not decoded in time", target));
        if target == &first {
            f.next.notify_one();
        }
    }
    driver.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_serve_precompressed_siblings_or_compress_on_the_fly() {
    let f = Fixture::start().await;
    let dir = f._www.path();
    let sibling = |name: &str| std::fs::read(dir.join(name)).expect("sibling");
    let r = f
        .h1(
            "GET",
            "/files/page.html",
            &[("Accept-Encoding", "gzip, br")],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("br"), "{:?}", r.headers);
    assert_eq!(
        r.header("content-type"),
        Some("text/html"),
        "the original's type"
    );
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert!(
        r.body == sibling("page.html.br"),
        "the sibling's bytes as they are"
    );
    assert_eq!(decode("br", &r.body), b"from the .br sibling");
    let len = sibling("page.html.br").len().to_string();
    assert_eq!(r.header("content-length"), Some(len.as_str()));
    let etag = r.header("etag").expect("etag").to_string();
    assert_eq!(
        f.h1(
            "GET",
            "/files/page.html",
            &[("Accept-Encoding", "br"), ("If-None-Match", &etag)]
        )
        .await
        .status,
        304
    );
    let r = f
        .h1(
            "GET",
            "/files/page.html",
            &[("Accept-Encoding", "br"), ("Range", "bytes=0-3")],
        )
        .await;
    assert_eq!((r.status, r.header("content-encoding")), (206, Some("br")));
    assert!(
        r.body == sibling("page.html.br")[..4],
        "a range of the sibling"
    );

    let r = f
        .h1(
            "GET",
            "/files/page.html",
            &[("Accept-Encoding", "gzip;q=0.5, br;q=0.1")],
        )
        .await;
    assert_eq!(
        decode("gzip", &r.body),
        b"from the .gz sibling",
        "higher q wins"
    );
    assert!(
        r.header("etag") != Some(etag.as_str()),
        "each sibling has its own ETag"
    );

    // No sibling for zstd: compressed on the fly from the original.
    let r = f
        .h1("GET", "/files/page.html", &[("Accept-Encoding", "zstd")])
        .await;
    assert_eq!(r.header("content-encoding"), Some("zstd"));
    assert!(decode("zstd", &r.body) == page());
    assert_eq!(r.header("content-length"), None);
    assert!(
        r.header("etag").is_some_and(|e| e.starts_with("W/\"")),
        "{:?}",
        r.headers
    );
    let r = f
        .h2()
        .await
        .request(
            "GET",
            "/files/page.html",
            &[("accept-encoding", "zstd")],
            b"",
        )
        .await
        .expect("h2");
    assert!(decode("zstd", &r.body) == page(), "h2 on the fly");

    // Identity, ranges and HEAD of the original are not compressed.
    let r = f.h1("GET", "/files/page.html", &[]).await;
    untouched(&r, "no Accept-Encoding");
    assert!(r.body == page());
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    let r = f
        .h1(
            "GET",
            "/files/page.html",
            &[("Accept-Encoding", "zstd"), ("Range", "bytes=0-9")],
        )
        .await;
    assert_eq!(r.status, 206);
    untouched(&r, "a range of the original");
    untouched(
        &f.h1("HEAD", "/files/page.html", &[("Accept-Encoding", "zstd")])
            .await,
        "HEAD",
    );
    untouched(
        &f.h1("GET", "/files/logo.png", &[("Accept-Encoding", "zstd")])
            .await,
        "png",
    );
}
