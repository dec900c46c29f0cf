//! `files:` routes (issue #16, static files) through the real binary with
//! real clients: `root`, `alias`, `index`, `try_files` with the SPA
//! fallback, MIME types, ETag / Last-Modified and 304s, single and
//! multipart ranges and 416, HEAD, the directory redirect, a 1 MiB file over
//! h2 compared byte for byte, and a traversal corpus of our own (encoded
//! dots and slashes, NUL, backslashes, dotfiles, a symlink out of the root).

use crate::support::*;

const YAML: &str = r#"
listeners:
  http: {address: "127.0.0.1:{HTTP}"}
  https: {address: "127.0.0.1:{HTTPS}", tls: true}
admin: {address: "127.0.0.1:{ADMIN}"}
sites:
  site:
    hosts: [files.test]
    tls: {cert: "{DIR}/files.crt", key: "{DIR}/files.key"}
    plain_http: serve
    response_headers: {add: {X-Site: files}}
    routes:
      - path: /
        files: {root: "{WWW}"}
      - path: /static/
        files: {alias: "{ASSETS}/", index: [home.html]}
      - path: /spa/
        files: {root: "{WWW}", try_files: ["$uri", "$uri/", "/spa/index.html"]}
      - path: /strict/
        files: {root: "{WWW}", try_files: ["$uri", "=410"]}
      - path: "~ ^/~(.+?)(/.*)?$"
        files: {alias: "{HOMES}/$1/public_html$2"}
      - path: "~ ^/docs/(?<ver>v[0-9]+)/(?<page>.*)$"
        files: {alias: "{WWW}/docs-$ver/$page"}
"#;

struct Fixture {
    site: TlsSite,
    _www: tempfile::TempDir,
    big: Vec<u8>,
}

impl Fixture {
    async fn start() -> Fixture {
        let www = tempfile::tempdir().expect("tempdir");
        let root = www.path().join("www");
        let assets = www.path().join("assets");
        write_file(&root, "index.html", b"<h1>home</h1>\n");
        write_file(&root, "app.js", b"console.log('hi');\n");
        write_file(&root, "sub/index.html", b"<p>sub</p>\n");
        write_file(&root, "empty/keep.txt", b"x");
        write_file(&root, ".env", b"SECRET=1\n");
        write_file(&root, "spa/index.html", b"<div id=app></div>\n");
        write_file(&root, "spa/main.css", b"body{}\n");
        write_file(&root, "strict/here.txt", b"here\n");
        write_file(&assets, "img/logo.svg", b"<svg/>\n");
        write_file(&assets, "home.html", b"assets home\n");
        write_file(www.path(), "secret.txt", b"outside the root\n");
        let homes = www.path().join("homes");
        write_file(&homes, "alice/public_html/index.html", b"alice's page\n");
        write_file(&homes, "alice/public_html/a b.txt", b"alice a b\n");
        write_file(&homes, "alice/private.txt", b"SECRET of alice\n");
        write_file(&homes, "bob/public_html/keep.txt", b"bob\n");
        write_file(&root, "docs-v2/intro.html", b"docs v2 intro\n");
        std::os::unix::fs::symlink(
            www.path().join("secret.txt"),
            homes.join("bob/public_html/out.txt"),
        )
        .expect("symlink");
        std::os::unix::fs::symlink(www.path().join("secret.txt"), root.join("link.txt"))
            .expect("symlink");
        let big: Vec<u8> = (0..1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        write_file(&root, "big.bin", &big);
        let template = YAML
            .replace("{WWW}", &root.display().to_string())
            .replace("{ASSETS}", &assets.display().to_string())
            .replace("{HOMES}", &homes.display().to_string());
        let site = TlsSite::start(&template, &["files.test"], "files", &[]).await;
        Fixture {
            site,
            _www: www,
            big,
        }
    }

    async fn h1(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut c = H1Conn::connect(self.site.http).await.expect("connect");
        c.request(method, path, "files.test", headers, b"")
            .await
            .expect("response")
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        self.h1("GET", path, headers).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_served_with_types_validators_and_nginx_paths() {
    let f = Fixture::start().await;
    let r = f.get("/app.js", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "console.log('hi');\n");
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.ends_with("javascript")),
        "{:?}",
        r.headers
    );
    assert_eq!(
        r.header("x-site"),
        Some("files"),
        "the site's header steps apply"
    );
    let etag = r.header("etag").expect("etag").to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with(&format!("-{:x}\"", 19)),
        "nginx's form: {etag}"
    );
    let lm = r
        .header("last-modified")
        .expect("last-modified")
        .to_string();

    assert_eq!(
        f.get("/app.js", &[("If-None-Match", &etag)]).await.status,
        304
    );
    assert_eq!(
        f.get("/app.js", &[("If-Modified-Since", &lm)]).await.status,
        304
    );
    assert_eq!(
        f.get("/app.js", &[("If-None-Match", "\"other\"")])
            .await
            .status,
        200
    );

    // Index files, the directory redirect, and 403 for a directory without one.
    assert_eq!(f.get("/", &[]).await.text(), "<h1>home</h1>\n");
    assert_eq!(f.get("/sub/", &[]).await.text(), "<p>sub</p>\n");
    let r = f.get("/sub?x=1", &[]).await;
    assert_eq!(r.status, 301);
    let want = format!("http://files.test:{}/sub/?x=1", f.site.http.port());
    assert_eq!(r.header("location"), Some(want.as_str()));
    assert_eq!(f.get("/empty/", &[]).await.status, 403);
    assert_eq!(f.get("/missing.txt", &[]).await.status, 404);

    // alias replaces the route's prefix; its own index list.
    let r = f.get("/static/img/logo.svg", &[]).await;
    assert_eq!(
        (r.status, r.header("content-type")),
        (200, Some("image/svg+xml"))
    );
    assert_eq!(f.get("/static/", &[]).await.text(), "assets home\n");

    // alias with a regex route's captures: the alias, filled, is the file.
    assert_eq!(f.get("/~alice/", &[]).await.text(), "alice's page\n");
    assert_eq!(f.get("/~alice/a%20b.txt", &[]).await.text(), "alice a b\n");
    let r = f.get("/~alice", &[]).await;
    assert_eq!(r.status, 301, "a directory named without its slash");
    let want = format!("http://files.test:{}/~alice/", f.site.http.port());
    assert_eq!(r.header("location"), Some(want.as_str()));
    assert_eq!(f.get("/~carol/", &[]).await.status, 404);
    assert_eq!(
        f.get("/docs/v2/intro.html", &[]).await.text(),
        "docs v2 intro\n"
    );

    // HEAD: the headers of the GET, no body.
    let r = f.h1("HEAD", "/app.js", &[]).await;
    assert_eq!((r.status, r.header("content-length")), (200, Some("19")));
    assert!(r.body.is_empty());
    let r = f.h1("POST", "/app.js", &[]).await;
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_single_multipart_and_unsatisfiable() {
    let f = Fixture::start().await;
    let r = f.get("/big.bin", &[("Range", "bytes=10-19")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 10-19/1048576"));
    assert_eq!(r.body, f.big[10..20]);
    let r = f.get("/big.bin", &[("Range", "bytes=-5")]).await;
    assert_eq!(r.body, f.big[f.big.len() - 5..]);

    let r = f.get("/big.bin", &[("Range", "bytes=0-1,100-101")]).await;
    assert_eq!(r.status, 206);
    let ct = r.header("content-type").expect("type").to_string();
    assert!(ct.starts_with("multipart/byteranges; boundary="), "{ct}");
    let text = String::from_utf8_lossy(&r.body).into_owned();
    assert!(text.contains("Content-Range: bytes 0-1/1048576"), "{text}");
    assert!(
        text.contains("Content-Range: bytes 100-101/1048576"),
        "{text}"
    );

    let r = f.get("/big.bin", &[("Range", "bytes=2000000-")]).await;
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */1048576"));

    // A whole 1 MiB file over h2, flow-controlled, byte for byte.
    let mut c = H2Conn::connect(f.site.https, "files.test", &f.site.ca.cert_pem())
        .await
        .expect("h2");
    let r = c.get("/big.bin").await.expect("h2 get");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), f.big.len());
    assert!(r.body == f.big, "the h2 body differs from the file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_files_falls_back_like_a_single_page_app() {
    let f = Fixture::start().await;
    assert_eq!(f.get("/spa/main.css", &[]).await.text(), "body{}\n");
    for deep in ["/spa/users/42", "/spa/settings/", "/spa/"] {
        let r = f.get(deep, &[]).await;
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "<div id=app></div>\n"),
            "{deep}"
        );
    }
    assert_eq!(f.get("/strict/here.txt", &[]).await.status, 200);
    assert_eq!(
        f.get("/strict/gone.txt", &[]).await.status,
        410,
        "`=410` fallback"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_outside_the_root_nor_a_dotfile_is_served() {
    let f = Fixture::start().await;
    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/sub/..%2f..%2fsecret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/..%5csecret.txt",
        "/app.js%00.html",
        "/.env",
        "/%2eenv",
        "/link.txt",
        "/static/..%2f..%2fsecret.txt",
        // Regex alias templates: captures that try to climb out.
        "/~../secret.txt",
        "/~%2e%2e/secret.txt",
        "/~alice/../private.txt",
        "/~alice/..%2fprivate.txt",
        "/~alice%2f..%2f..%2fsecret.txt",
        "/~alice/%2e%2e/%2e%2e/%2e%2e/secret.txt",
        "/~alice%2fpublic_html%2f..%2fprivate.txt",
        "/~alice/index.html%00.txt",
        "/~alice/..%5cprivate.txt",
        "/~alice\\..\\private.txt",
        "/~bob/out.txt",
        "/docs/v2/..%2f..%2fsecret.txt",
        "/docs/v2%2f..%2f..%2fsecret.txt",
    ] {
        let r = f.get(path, &[]).await;
        assert!(
            r.status == 404 || r.status == 400,
            "{path}: {} {}",
            r.status,
            r.text()
        );
        assert!(
            !r.text().contains("outside the root") && !r.text().contains("SECRET"),
            "{path}"
        );
    }
    // Under try_files a refused candidate falls through to the fallback.
    let r = f.get("/spa/..%2f..%2fsecret.txt", &[]).await;
    assert_eq!(r.text(), "<div id=app></div>\n");
}
