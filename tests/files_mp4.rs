//! `files: {mp4: …}` end to end (issue #16, nginx's `mp4` module): the
//! real binary serving a synthetic video over plain HTTP/1.1 (where a range
//! of the media data goes by sendfile), TLS and HTTP/2. A cut answer is
//! compared byte for byte with the library's own cut of the same file (the
//! parity harness compares that cut with nginx's: golden/27-mp4.conf), and
//! its samples are checked through the new tables' chunk offsets. Also:
//! ranges of a cut (several at once get the whole cut, as in nginx), HEAD,
//! the ETag of the cut, no cut without arguments or on a plain `files:`
//! route, a start past the end answered 500, a moov over
//! `max_buffer_size` answered 500.

use crate::support::*;
use greenlight::mp4::sample::{Spec, sample_bytes, synthetic};
use greenlight::mp4::{Interval, Options, cut};

const YAML: &str = r#"
listeners:
  http: {address: "127.0.0.1:{HTTP}"}
  https: {address: "127.0.0.1:{HTTPS}", tls: true}
admin: {address: "127.0.0.1:{ADMIN}"}
sites:
  site:
    hosts: [video.test]
    tls: {cert: "{DIR}/video.crt", key: "{DIR}/video.key"}
    plain_http: serve
    routes:
      - path: /v/
        files: {root: "{WWW}", mp4: true}
      - path: /small/
        files: {alias: "{WWW}/v/", mp4: {buffer_size: 1k, max_buffer_size: 2k}}
      - path: /plain/
        files: {alias: "{WWW}/v/"}
"#;

struct Fixture {
    site: TlsSite,
    _dir: tempfile::TempDir,
    video: Vec<u8>,
    path: std::path::PathBuf,
}

impl Fixture {
    async fn start() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let www = dir.path().join("www");
        // Moov at the end, so `start=0` is a cut too; 64-bit offsets; ~600
        // KiB of media data, so a range of it is more than the inline size.
        let spec = Spec {
            video: 5000,
            audio: 0,
            moov_first: false,
            co64: true,
            ..Spec::default()
        };
        let video = synthetic(&spec);
        write_file(&www.join("v"), "clip.mp4", &video);
        let yaml = YAML.replace("{WWW}", &www.display().to_string());
        let site = TlsSite::start(&yaml, &["video.test"], "video", &[]).await;
        Fixture {
            site,
            path: www.join("v/clip.mp4"),
            _dir: dir,
            video,
        }
    }

    /// What the cut of the file at `start..start+length` ms must be.
    fn expected(&self, start: u64, length: u64) -> Vec<u8> {
        let file = std::fs::File::open(&self.path).expect("open");
        let at = Interval { start, length };
        let c = cut(&file, self.video.len() as u64, at, &Options::default())
            .expect("cut")
            .expect("a cut, not the whole file");
        let mut out = c.head.clone();
        out.extend_from_slice(&self.video[c.data.start as usize..c.data.end as usize]);
        out
    }
}

/// The first sample the answer's first chunk offset points at (co64 of the
/// only track) is sample `first` of the file.
fn starts_with_sample(body: &[u8], first: u32) {
    let at = body.windows(4).position(|w| w == b"co64").expect("co64") + 12;
    let offset = u64::from_be_bytes(body[at..at + 8].try_into().unwrap()) as usize;
    let want = sample_bytes(1, first, 40);
    assert_eq!(
        &body[offset..offset + 40],
        &want[..],
        "the first sample is {first}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_video_arrives_byte_for_byte_over_h1_tls_and_h2() {
    let f = Fixture::start().await;
    let want = f.expected(2000, 0);
    assert!(want.len() < f.video.len());
    let mut plain = H1Conn::connect(f.site.http).await.expect("connect");
    let r = plain
        .get("/v/clip.mp4?start=2", "video.test")
        .await
        .expect("get");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("video/mp4"));
    assert_eq!(r.header("content-length"), Some(&*want.len().to_string()));
    assert!(r.body == want, "the cut differs from the library's");
    starts_with_sample(&r.body, 50);
    let etag = r.header("etag").expect("etag").to_string();
    assert!(etag.ends_with(&format!("-{:x}\"", want.len())), "{etag}");

    // An interval; the same connection.
    let r = plain
        .get("/v/clip.mp4?start=10.5&end=20", "video.test")
        .await
        .expect("interval");
    assert!(r.body == f.expected(10_500, 9_500));
    starts_with_sample(&r.body, 262);

    let ca = f.site.ca.cert_pem();
    let (r, _) = client::https_get(f.site.https, "video.test", "/v/clip.mp4?start=2", &ca)
        .await
        .expect("https");
    assert!(r.body == want, "over TLS");
    let (r, tls) = h2_get(f.site.https, "video.test", "/v/clip.mp4?start=2", &ca)
        .await
        .expect("h2");
    assert_eq!(tls.alpn.as_deref(), Some(&b"h2"[..]));
    assert!(r.body == want, "over HTTP/2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_head_and_conditionals_apply_to_the_cut() {
    let f = Fixture::start().await;
    let want = f.expected(2000, 0);
    let n = want.len();
    let mut c = H1Conn::connect(f.site.http).await.expect("connect");
    let path = "/v/clip.mp4?start=2";
    // In the new boxes, across into the media data, and only media data
    // (large enough for sendfile on plain HTTP/1).
    for (range, from, to) in [
        ("bytes=0-99", 0, 99),
        ("bytes=100-70000", 100, 70000),
        ("bytes=200000-", 200_000, n - 1),
    ] {
        let r = c
            .request("GET", path, "video.test", &[("Range", range)], b"")
            .await
            .expect("range");
        assert_eq!(r.status, 206, "{range}");
        assert_eq!(
            r.header("content-range"),
            Some(&*format!("bytes {from}-{to}/{n}"))
        );
        assert!(r.body == want[from..=to], "{range}");
    }
    // Several ranges: the whole cut (nginx's single_range).
    let r = c
        .request(
            "GET",
            path,
            "video.test",
            &[("Range", "bytes=0-9,20-29")],
            b"",
        )
        .await
        .expect("ranges");
    assert_eq!(r.status, 200);
    assert!(r.body == want);
    let r = c
        .request("HEAD", path, "video.test", &[], b"")
        .await
        .expect("head");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some(&*n.to_string()));
    let etag = r.header("etag").expect("etag").to_string();
    let r = c
        .request("GET", path, "video.test", &[("If-None-Match", &etag)], b"")
        .await
        .expect("conditional");
    assert_eq!(r.status, 304);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_files_where_nothing_is_cut_and_500_where_nothing_can_be() {
    let f = Fixture::start().await;
    let mut c = H1Conn::connect(f.site.http).await.expect("connect");
    for path in [
        "/v/clip.mp4",
        "/v/clip.mp4?start=abc",
        "/v/clip.mp4?end=0",
        "/plain/clip.mp4?start=2",
    ] {
        let r = c.get(path, "video.test").await.expect("get");
        assert_eq!(r.status, 200, "{path}");
        assert!(r.body == f.video, "{path}: the whole file");
    }
    // The moov is at the end: start=0 moves it to the front.
    let r = c
        .get("/v/clip.mp4?start=0", "video.test")
        .await
        .expect("start=0");
    assert!(r.body == f.expected(0, 0));
    assert_eq!(&r.body[4..8], b"ftyp");
    starts_with_sample(&r.body, 0);
    // Past the end (the clip is 200 s), and a moov over max_buffer_size.
    for path in ["/v/clip.mp4?start=500", "/small/clip.mp4?start=1"] {
        let r = c.get(path, "video.test").await.expect("get");
        assert_eq!(r.status, 500, "{path}");
    }
    // The connection still serves.
    let r = c.get("/small/clip.mp4", "video.test").await.expect("get");
    assert_eq!(r.status, 200);
}
