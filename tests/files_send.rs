//! How a `files:` route sends a body (issue #16, speed of large files):
//! over plain HTTP/1 a large body goes by sendfile(2), over TLS through the
//! blocking-pool reads, and a small one is read on the request's thread.
//! Whatever the way: byte-exact bodies and ranges, the connection serving
//! its next request, the access log's `bytes_sent`, and nginx's
//! `send_timeout` for a client that stops reading.

use crate::support::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

const YAML: &str = r#"
access_log: {path: "{LOG}", format: json}
limits: {send_timeout: 1s}
listeners:
  http: {address: "127.0.0.1:{HTTP}"}
  https: {address: "127.0.0.1:{HTTPS}", tls: true}
admin: {address: "127.0.0.1:{ADMIN}"}
sites:
  site:
    hosts: [send.test]
    tls: {cert: "{DIR}/send.crt", key: "{DIR}/send.key"}
    plain_http: serve
    routes:
      - path: /
        files: {root: "{WWW}"}
"#;

/// Bytes that differ from one offset to the next (a shifted or repeated
/// piece shows), `len` of them.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i >> 16) as u8)
        .collect()
}

struct Fixture {
    site: TlsSite,
    dir: tempfile::TempDir,
    /// 3 MiB and 7 bytes: more than one sendfile(2) chunk of the socket.
    big: Vec<u8>,
    small: Vec<u8>,
}

impl Fixture {
    async fn start() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let www = dir.path().join("www");
        let big = pattern(3 * 1024 * 1024 + 7);
        let small = pattern(1000);
        write_file(&www, "big.bin", &big);
        write_file(&www, "small.txt", &small);
        // 32 MiB: far more than the socket buffers of a client that stops.
        write_file(&www, "huge.bin", &pattern(32 << 20));
        let yaml = YAML.replace("{WWW}", &www.display().to_string()).replace(
            "{LOG}",
            &dir.path().join("access.json").display().to_string(),
        );
        let site = TlsSite::start(&yaml, &["send.test"], "send", &[]).await;
        Fixture {
            site,
            dir,
            big,
            small,
        }
    }

    /// The access log's line for `path` (polled until written, within `limit`).
    async fn logged(&self, path: &str, limit: Duration) -> serde_json::Value {
        let log = self.dir.path().join("access.json");
        let needle = format!("\"path\":\"{path}\"");
        eventually(limit, "the access log line is written", || async {
            std::fs::read_to_string(&log).is_ok_and(|t| t.contains(&needle))
        })
        .await;
        let text = std::fs::read_to_string(&log).expect("log");
        let line = text.lines().find(|l| l.contains(&needle)).expect("line");
        serde_json::from_str(line).expect("json")
    }
}

/// One keep-alive connection: a whole large file, a range of it that spans
/// chunks, HEAD, a small file and the large one again; each byte for byte.
async fn exchange(f: &Fixture, c: &mut H1Conn) {
    let r = c
        .request("GET", "/big.bin", "send.test", &[], b"")
        .await
        .expect("big");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("3145735"));
    assert!(r.body == f.big, "the body differs from the file");

    let r = c
        .request(
            "GET",
            "/big.bin",
            "send.test",
            &[("Range", "bytes=65537-2100000")],
            b"",
        )
        .await
        .expect("range");
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some("bytes 65537-2100000/3145735")
    );
    assert!(r.body == f.big[65537..2100001], "the range differs");

    let r = c
        .request("HEAD", "/big.bin", "send.test", &[], b"")
        .await
        .expect("head");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("3145735"));
    assert!(r.body.is_empty());

    let r = c
        .request("GET", "/small.txt", "send.test", &[], b"")
        .await
        .expect("small");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, f.small);

    let r = c
        .request(
            "GET",
            "/big.bin",
            "send.test",
            &[("Range", "bytes=-3")],
            b"",
        )
        .await
        .expect("tail");
    assert_eq!(r.body, f.big[f.big.len() - 3..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_files_and_ranges_arrive_whole_over_plain_and_tls_keep_alive() {
    let f = Fixture::start().await;
    let mut plain = H1Conn::connect(f.site.http).await.expect("connect");
    exchange(&f, &mut plain).await;
    let ca = f.site.ca.cert_pem();
    let mut tls = H1Conn::connect_tls(f.site.https, "send.test", &ca)
        .await
        .expect("tls");
    exchange(&f, &mut tls).await;
    // The body sent by the kernel is counted as any other.
    let line = f.logged("/big.bin", IO_TIMEOUT).await;
    assert_eq!(line["status"], 200);
    assert_eq!(line["bytes_sent"], 3145735);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_a_large_file_is_closed_after_send_timeout() {
    let f = Fixture::start().await;
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut tcp = timed("connect", socket.connect(f.site.http))
        .await
        .expect("connect");
    tcp.write_all(b"GET /huge.bin HTTP/1.1\r\nHost: send.test\r\n\r\n")
        .await
        .expect("request");
    // Nothing read: after 1s without progress the proxy gives up, which
    // ends the request (its access log line) short of the file.
    let line = f.logged("/huge.bin", Duration::from_secs(20)).await;
    let sent = line["bytes_sent"].as_u64().expect("bytes_sent");
    assert!(sent < 16 << 20, "sent {sent} bytes of 32 MiB");
    // And the connection is closed: what was on its way, then the end.
    let mut got = Vec::new();
    let read = timed_for(Duration::from_secs(15), "read to the close", async {
        tcp.read_to_end(&mut got).await
    })
    .await;
    assert!(
        !matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::TimedOut),
        "the connection was closed: {read:?}"
    );
    assert!(got.len() < 16 << 20, "read {} bytes of 32 MiB", got.len());
}

/// A client that resets the connection in the middle of a large file is
/// the client's doing: the request ends without an ERROR line (nor a 500).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_resets_mid_file_is_not_an_error() {
    let f = Fixture::start().await;
    // SO_LINGER 0: closing sends a reset, as a browser's cancelled download.
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_zero_linger().expect("linger");
    let mut tcp = timed("connect", socket.connect(f.site.http))
        .await
        .expect("connect");
    tcp.write_all(b"GET /huge.bin HTTP/1.1\r\nHost: send.test\r\n\r\n")
        .await
        .expect("request");
    let mut first = vec![0u8; 64 << 10];
    timed("the first bytes", tcp.read_exact(&mut first))
        .await
        .expect("read");
    drop(tcp);
    let line = f.logged("/huge.bin", Duration::from_secs(20)).await;
    let sent = line["bytes_sent"].as_u64().expect("bytes_sent");
    assert!(sent < 32 << 20, "the whole file cannot have gone: {sent}");
    let stderr = f.site.proxy.stderr();
    assert!(
        !stderr
            .lines()
            .any(|l| l.contains("ERROR") && l.contains("/huge.bin")),
        "{stderr}"
    );
}
