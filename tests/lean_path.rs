//! The per-request patches of issue #15, through the real binary: a response
//! body that came with its header uses a buffer of its own size (vendored
//! pingora-core `BodyReader::init_content_length`), a response header is
//! written from a buffer of its exact size (`http_resp_header_wire_len`),
//! and neither changes a byte of what the client gets — whether the body came
//! with the header, after it, or half and half, and however large the header.

use crate::support::*;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BODY: &[u8] = b"hello world";

/// The response header of `/wide`: 60 fields in mixed spellings, some long,
/// about 6 KiB in all (more than the 4 KiB buffer the header used to get),
/// and a reason phrase of its own.
fn wide_head() -> Vec<u8> {
    let mut h = b"HTTP/1.1 200 Fine Thanks\r\nContent-Length: 11\r\n".to_vec();
    for i in 0..60 {
        let name = if i % 2 == 0 { "X-Wide" } else { "x-WIDE-odd" };
        h.extend_from_slice(format!("{name}-{i}: {}\r\n", "v".repeat(i * 3)).as_bytes());
    }
    h.extend_from_slice(b"\r\n");
    h
}

/// An upstream that answers each request on its connection by target, some
/// in two writes 100 ms apart. The pause is not a synchronisation: every
/// assertion holds however the proxy's reads split the bytes; it makes the
/// split the test is about (body after its header) the likely one.
async fn upstream(listener: TcpListener) {
    let (mut s, _) = listener.accept().await.expect("accept");
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        let end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        buf.drain(..end);
        let target = head.split(' ').nth(1).unwrap_or("").to_string();
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n";
        let parts: Vec<Vec<u8>> = match target.as_str() {
            "/whole" => vec![[&ok[..], BODY].concat()],
            "/later" => vec![ok.to_vec(), BODY.to_vec()],
            "/part" => vec![[&ok[..], &BODY[..5]].concat(), BODY[5..].to_vec()],
            "/wide" => vec![[&wide_head()[..], BODY].concat()],
            _ => vec![b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec()],
        };
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            s.write_all(part).await.expect("upstream write");
        }
    }
}

/// Reads one response off `c`: its header and its `Content-Length` body.
async fn response(c: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = timed("response header", c.read(&mut chunk))
            .await
            .expect("read");
        assert!(n > 0, "proxy closed before the header ended");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..end].to_vec()).expect("header is text");
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .or_else(|| {
            head.lines()
                .find_map(|l| l.strip_prefix("content-length: "))
        })
        .expect("a Content-Length")
        .trim()
        .parse()
        .expect("a number");
    let mut body = buf[end..].to_vec();
    while body.len() < len {
        let n = timed("response body", c.read(&mut chunk))
            .await
            .expect("read");
        assert!(n > 0, "proxy closed before the body ended");
        body.extend_from_slice(&chunk[..n]);
    }
    (head, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_that_come_with_after_or_around_their_header_arrive_whole() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let up = listener.local_addr().expect("addr").port();
    let server = tokio::spawn(upstream(listener));
    let ports = free_ports(2);
    let yaml = format!(
        r#"
listeners: {{http: {{address: "127.0.0.1:{http}"}}}}
admin: {{address: "127.0.0.1:{admin}"}}
sites:
  app:
    hosts: [app.test]
    default: true
    routes: [{{path: /, upstream: app}}]
upstreams:
  app: {{active: main, pools: {{main: ["127.0.0.1:{up}"]}}}}
"#,
        http = ports[0],
        admin = ports[1],
    );
    let http: SocketAddr = ([127, 0, 0, 1], ports[0]).into();
    let _proxy = ProxyProcess::start_ready(&yaml, &[http])
        .await
        .expect("greenlight starts");

    // One client connection, one upstream connection, four responses in turn.
    let mut c = TcpStream::connect(http).await.expect("connect");
    for target in ["/whole", "/later", "/part", "/wide"] {
        let req = format!("GET {target} HTTP/1.1\r\nHost: app.test\r\n\r\n");
        c.write_all(req.as_bytes()).await.expect("send");
        let (head, body) = response(&mut c).await;
        assert_eq!(body, BODY, "{target}: the body, whole");
        if target == "/wide" {
            assert!(head.starts_with("HTTP/1.1 200 Fine Thanks\r\n"), "{head}");
            for i in 0..60 {
                let name = if i % 2 == 0 { "X-Wide" } else { "x-WIDE-odd" };
                let field = format!("\r\n{name}-{i}: {}\r\n", "v".repeat(i * 3));
                assert!(head.contains(&field), "{target}: field {i} as sent");
            }
            assert!(head.len() > 6000, "{target}: a header over 4 KiB");
        } else {
            assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{target}: {head}");
        }
    }
    server.abort();
}
