//! `access:` (issue #16, access control) through the real binary with real
//! clients: `ip` allow/deny in first-match order on the real client IP (a
//! spoofed `X-Forwarded-For` from an untrusted peer changes nothing; a
//! trusted one is believed), IPv6 loopback; basic auth against htpasswd
//! files made by the real `htpasswd` (`-B`, `-m`, `-s`) and `openssl passwd`
//! (`-1`, `-5`, `-6`, `-apr1`), 401 with `WWW-Authenticate`, `basic_auth:
//! off` on an inner route, `satisfy: any` (an address or a password), a
//! reload with a missing file kept out, a reload
//! with a changed file taken; forward auth to a small auth service of the
//! test that allows (copying a header, dropping a forged one), denies (its
//! 401 and `WWW-Authenticate` pass through) and fails (500), by upstream
//! and by URL, over HTTP/1.1 and h2.

use crate::support::*;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncWriteExt, BufReader};

const YAML: &str = r#"
listeners:
  http: {address: "127.0.0.1:{HTTP}"}
  https: {address: "127.0.0.1:{HTTPS}", tls: true}
  v6: {address: "[::1]:{V6}"}
admin: {address: "127.0.0.1:{ADMIN}"}
trusted_proxies: [10.0.0.0/8]
sites:
  ip:
    hosts: [ip.test]
    access:
      ip: [{deny: 127.0.0.2}, {allow: 127.0.0.0/8}, {allow: "::1"}, {deny: all}]
    routes:
      - {path: /, upstream: app}
      - path: /ten/
        upstream: app
        access: {ip: [{allow: 10.0.0.0/8}, {deny: all}]}
  behind:
    hosts: [behind.test]
    trusted_proxies: [127.0.0.1]
    access: {ip: [{allow: 10.0.0.0/8}, {deny: all}]}
    routes: [{path: /, upstream: app}]
  basic:
    hosts: [basic.test]
    tls: {cert: "{DIR}/access.crt", key: "{DIR}/access.key"}
    plain_http: serve
    access: {basic_auth: {realm: "Staff only", users_file: "{USERS}"}}
    routes:
      - {path: /, upstream: app}
      - path: /public/
        upstream: app
        access: {basic_auth: off}
      - path: /office/
        upstream: app
        access: {ip: [{allow: 127.0.0.2}, {deny: all}], satisfy: any}
  fwd:
    hosts: [fwd.test]
    tls: {cert: "{DIR}/access.crt", key: "{DIR}/access.key"}
    plain_http: serve
    access: {forward_auth: {upstream: auth, path: "/verify?from=greenlight", copy_headers: [X-User]}}
    routes:
      - {path: /, upstream: app}
      - path: /url/
        upstream: app
        access: {forward_auth: {url: "http://127.0.0.1:{AUTH}/url-verify", request_headers: [Authorization]}}
      - path: /dead/
        upstream: app
        access: {forward_auth: {url: "http://127.0.0.1:{DEAD}/verify", timeout: 2s}}
      - path: /tpl/
        upstream: app
        access: {forward_auth: {upstream: auth, path: "/grant$request_uri"}}
upstreams:
  app: {active: p, pools: {p: ["127.0.0.1:{APP}"]}}
  auth: {active: p, pools: {p: ["127.0.0.1:{AUTH}"]}}
"#;

/// What the auth service saw: (request line, headers).
type Seen = Arc<Mutex<Vec<(String, Vec<(String, String)>)>>>;

/// A small real auth service: answers by the `Authorization` it receives.
async fn auth_service() -> (SocketAddr, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen: Seen = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut r = BufReader::new(r);
                while let Ok(Some(head)) = http1::read_head(&mut r).await {
                    let auth = http1::header(&head.headers, "authorization").unwrap_or("");
                    let answer = match auth {
                        "Bearer good" => "HTTP/1.1 200 OK\r\nX-User: alice\r\nX-Other: no\r\nContent-Length: 0\r\n\r\n".to_string(),
                        "Bearer nouser" => "HTTP/1.1 204 No Content\r\n\r\n".to_string(),
                        "Bearer broken" => "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 4\r\n\r\noops".to_string(),
                        "Bearer forbidden" => "HTTP/1.1 403 Forbidden\r\nContent-Length: 3\r\n\r\nno\n".to_string(),
                        _ => {
                            let body = "sign in first\n";
                            format!(
                                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"sso\"\r\nContent-Type: text/x-auth\r\nContent-Length: {}\r\n\r\n{body}",
                                body.len()
                            )
                        }
                    };
                    log.lock()
                        .expect("lock")
                        .push((head.start_line.clone(), head.headers.clone()));
                    if w.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, seen)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("the tool runs");
    assert!(out.status.success(), "{cmd:?}: {out:?}");
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_string()
}

/// An htpasswd file made by the real tools; (user, password) per format.
fn users_file(path: &Path) -> Vec<(&'static str, &'static str)> {
    let p = path.to_str().expect("path");
    run(Command::new("htpasswd").args(["-cbB", "-C", "5", p, "bcrypt", "b-pass"]));
    run(Command::new("htpasswd").args(["-bm", p, "apr1", "m-pass"]));
    run(Command::new("htpasswd").args(["-bs", p, "sha1", "s-pass"]));
    let mut text = std::fs::read_to_string(path).expect("read");
    for (user, flag, pass) in [
        ("md5", "-1", "one-pass"),
        ("sha256", "-5", "five-pass"),
        ("sha512", "-6", "six-pass"),
        ("osslapr1", "-apr1", "apr-pass"),
    ] {
        let hash = run(Command::new("openssl").args(["passwd", flag, pass]));
        text.push_str(&format!("{user}:{hash}\n"));
    }
    std::fs::write(path, text).expect("write");
    vec![
        ("bcrypt", "b-pass"),
        ("apr1", "m-pass"),
        ("sha1", "s-pass"),
        ("md5", "one-pass"),
        ("sha256", "five-pass"),
        ("sha512", "six-pass"),
        ("osslapr1", "apr-pass"),
    ]
}

fn basic(user: &str, pass: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

struct Fixture {
    site: TlsSite,
    app: HttpUpstream,
    seen: Seen,
    v6: SocketAddr,
    users: std::path::PathBuf,
    yaml: String,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn start() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let users = dir.path().join("htpasswd");
        users_file(&users);
        let app = HttpUpstream::start("app").await;
        let (auth, seen) = auth_service().await;
        let dead = DeadUpstream::new();
        let v6_port = free_port();
        let template = YAML.replace("{USERS}", &users.display().to_string());
        let site = TlsSite::start(
            &template,
            &["basic.test", "fwd.test"],
            "access",
            &[
                ("APP", app.port()),
                ("AUTH", auth.port()),
                ("DEAD", dead.port()),
                ("V6", v6_port),
            ],
        )
        .await;
        let yaml = std::fs::read_to_string(site.proxy.config_path()).expect("config");
        Fixture {
            site,
            app,
            seen,
            v6: SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, v6_port)),
            users,
            yaml,
            _dir: dir,
        }
    }

    async fn get(&self, host: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut c = H1Conn::connect(self.site.http).await.expect("connect");
        c.request("GET", path, host, headers, b"")
            .await
            .expect("response")
    }
}

/// A request from a chosen loopback source address.
async fn get_from(src: &str, to: SocketAddr, host: &str, path: &str) -> Response {
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.bind(format!("{src}:0").parse().expect("src"))
        .expect("bind");
    let s = sock.connect(to).await.expect("connect");
    let mut c = H1Conn::from_stream(s);
    c.get(path, host).await.expect("response")
}

#[tokio::test]
async fn ip_rules_take_the_first_match_on_the_real_client_ip() {
    let f = Fixture::start().await;
    let ok = f.get("ip.test", "/", &[]).await;
    assert_eq!(ok.status, 200, "127.0.0.1 is allowed");
    let r = get_from("127.0.0.2", f.site.http, "ip.test", "/").await;
    assert_eq!(
        r.status,
        403,
        "the deny before the allow decides: {}",
        r.text()
    );
    assert!(r.text().contains("403 Forbidden"));
    // 127.0.0.1 is not a trusted proxy: what it says about the client is
    // not believed, in either direction.
    let spoof = f
        .get("ip.test", "/ten/", &[("X-Forwarded-For", "10.1.2.3")])
        .await;
    assert_eq!(spoof.status, 403, "spoofed X-Forwarded-For is ignored");
    let spoof = f
        .get("ip.test", "/", &[("X-Forwarded-For", "203.0.113.9")])
        .await;
    assert_eq!(spoof.status, 200);
    // A site that trusts the loopback peer believes it.
    let behind = f
        .get("behind.test", "/", &[("X-Forwarded-For", "10.1.2.3")])
        .await;
    assert_eq!(behind.status, 200, "{}", behind.text());
    let behind = f
        .get("behind.test", "/", &[("X-Forwarded-For", "192.0.2.1")])
        .await;
    assert_eq!(behind.status, 403);
    // IPv6 loopback: allowed by `::1` on the site, denied by the route's list.
    let mut c = H1Conn::connect(f.v6).await.expect("connect ::1");
    assert_eq!(c.get("/", "ip.test").await.expect("v6").status, 200);
    assert_eq!(c.get("/ten/x", "ip.test").await.expect("v6").status, 403);
    let seen = f.app.requests().len();
    assert_eq!(seen, 4, "only allowed requests reached the app");
}

#[tokio::test]
async fn basic_auth_checks_every_format_the_real_tools_write() {
    let f = Fixture::start().await;
    let none = f.get("basic.test", "/", &[]).await;
    assert_eq!(none.status, 401);
    assert_eq!(
        none.header("www-authenticate"),
        Some("Basic realm=\"Staff only\"")
    );
    for (user, pass) in users_file(&f._dir.path().join("again")) {
        let good = f
            .get("basic.test", "/", &[("Authorization", &basic(user, pass))])
            .await;
        assert_eq!(good.status, 200, "{user}: {}", good.text());
        let bad = f
            .get(
                "basic.test",
                "/",
                &[("Authorization", &basic(user, "wrong"))],
            )
            .await;
        assert_eq!(bad.status, 401, "{user} with a wrong password");
        assert!(bad.header("www-authenticate").is_some());
    }
    let nobody = f
        .get(
            "basic.test",
            "/",
            &[("Authorization", &basic("eve", "b-pass"))],
        )
        .await;
    assert_eq!(nobody.status, 401);
    // The remembered bcrypt credential is still checked against the user.
    let again = f
        .get(
            "basic.test",
            "/",
            &[("Authorization", &basic("bcrypt", "b-pass"))],
        )
        .await;
    assert_eq!(again.status, 200);
    let open = f.get("basic.test", "/public/x", &[]).await;
    assert_eq!(open.status, 200, "basic_auth: off on the inner route");
    // satisfy any: the office address without a password, others with one.
    let office = get_from("127.0.0.2", f.site.http, "basic.test", "/office/").await;
    assert_eq!(office.status, 200, "{}", office.text());
    let outside = f.get("basic.test", "/office/", &[]).await;
    assert_eq!(outside.status, 401, "the password is asked for, not a 403");
    assert!(outside.header("www-authenticate").is_some());
    let who = basic("sha1", "s-pass");
    let outside = f
        .get("basic.test", "/office/", &[("Authorization", &who)])
        .await;
    assert_eq!(outside.status, 200);
    // h2 over TLS.
    let mut h2 = H2Conn::connect(f.site.https, "basic.test", &f.site.ca.cert_pem())
        .await
        .expect("h2");
    assert_eq!(h2.get("/").await.expect("h2").status, 401);
    let auth = basic("sha512", "six-pass");
    let r = h2
        .request("GET", "/", &[("authorization", &auth)], b"")
        .await
        .expect("h2");
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn the_users_file_is_read_again_on_reload_and_a_missing_one_keeps_the_old() {
    let mut f = Fixture::start().await;
    let who = basic("apr1", "m-pass");
    let h = [("Authorization", who.as_str())];
    assert_eq!(f.get("basic.test", "/", &h).await.status, 200);
    // A reload naming a file that is not there is refused: still serving.
    let missing = f.yaml.replace(
        &f.users.display().to_string(),
        "/nonexistent/greenlight-htpasswd",
    );
    f.site.proxy.write_config(&missing).expect("write");
    let mark = f.site.proxy.log_mark();
    f.site.proxy.signal("HUP").expect("hup");
    assert!(
        f.site
            .proxy
            .wait_for_stderr_after(mark, "reload rejected", IO_TIMEOUT)
            .await,
        "{}",
        f.site.proxy.stderr()
    );
    assert!(f.site.proxy.stderr()[mark..].contains("cannot read users file"));
    assert_eq!(f.get("basic.test", "/", &h).await.status, 200);
    // The user removed from the file and the config reloaded: refused.
    let text = std::fs::read_to_string(&f.users).expect("read");
    let kept: String = text
        .lines()
        .filter(|l| !l.starts_with("apr1:"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&f.users, kept).expect("write");
    f.site.proxy.write_config(&f.yaml).expect("write");
    let mark = f.site.proxy.log_mark();
    f.site.proxy.signal("HUP").expect("hup");
    assert!(
        f.site
            .proxy
            .wait_for_stderr_after(mark, "configuration reloaded", IO_TIMEOUT)
            .await
    );
    assert_eq!(f.get("basic.test", "/", &h).await.status, 401);
}

#[tokio::test]
async fn forward_auth_allows_denies_and_fails() {
    let f = Fixture::start().await;
    // Allowed: the service's X-User reaches the app, the client's forged
    // one does not, and the service saw the original request.
    let r = f
        .get(
            "fwd.test",
            "/orders?id=7",
            &[
                ("Authorization", "Bearer good"),
                ("X-User", "mallory"),
                ("Cookie", "s=1"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let up = f.app.last_request().expect("app saw it");
    assert_eq!(up.header("x-user"), Some("alice"));
    assert_eq!(up.header("x-other"), None, "only copy_headers are copied");
    assert_eq!(up.path, "/orders?id=7");
    let (line, headers) = f.seen.lock().expect("lock").last().cloned().expect("seen");
    assert_eq!(line, "GET /verify?from=greenlight HTTP/1.1");
    assert_eq!(
        http1::header(&headers, "x-original-uri"),
        Some("/orders?id=7")
    );
    assert_eq!(http1::header(&headers, "x-forwarded-method"), Some("GET"));
    assert_eq!(
        http1::header(&headers, "x-forwarded-host"),
        Some("fwd.test")
    );
    assert_eq!(
        http1::header(&headers, "cookie"),
        Some("s=1"),
        "client headers go along"
    );
    // Allowed without the header: the forged one is removed.
    let r = f
        .get(
            "fwd.test",
            "/",
            &[("Authorization", "Bearer nouser"), ("X-User", "mallory")],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(f.app.last_request().expect("app").header("x-user"), None);
    // Denied: the service's 401, its WWW-Authenticate and body.
    let count = f.app.request_count();
    let r = f.get("fwd.test", "/", &[]).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"sso\""));
    assert_eq!(r.header("content-type"), Some("text/x-auth"));
    assert_eq!(r.text(), "sign in first\n");
    let r = f
        .get("fwd.test", "/", &[("Authorization", "Bearer forbidden")])
        .await;
    assert_eq!(r.status, 403);
    // Failed: another status, or nobody listening, is a 500 and a log line.
    let r = f
        .get("fwd.test", "/", &[("Authorization", "Bearer broken")])
        .await;
    assert_eq!(r.status, 500);
    let r = f.get("fwd.test", "/dead/x", &[]).await;
    assert_eq!(r.status, 500);
    assert_eq!(
        f.app.request_count(),
        count,
        "no denied request reached the app"
    );
    assert!(
        f.site
            .proxy
            .wait_for_stderr(
                "forward auth upstream 'auth' /verify?from=greenlight answered 502",
                IO_TIMEOUT
            )
            .await,
        "{}",
        f.site.proxy.stderr()
    );
    assert!(f.site.proxy.stderr().contains("/dead/x: forward auth"));
    // By URL, with only the listed client headers.
    let r = f
        .get(
            "fwd.test",
            "/url/a",
            &[("Authorization", "Bearer good"), ("Cookie", "s=1")],
        )
        .await;
    assert_eq!(r.status, 200);
    let (line, headers) = f.seen.lock().expect("lock").last().cloned().expect("seen");
    assert_eq!(line, "GET /url-verify HTTP/1.1");
    assert_eq!(http1::header(&headers, "cookie"), None, "not listed");
    // A path with variables (nginx: `proxy_pass http://auth/grant$request_uri`
    // in the auth location) is rendered per request.
    let r = f
        .get(
            "fwd.test",
            "/tpl/doc?id=3",
            &[("Authorization", "Bearer good")],
        )
        .await;
    assert_eq!(r.status, 200);
    let (line, _) = f.seen.lock().expect("lock").last().cloned().expect("seen");
    assert_eq!(line, "GET /grant/tpl/doc?id=3 HTTP/1.1");
    // h2 over TLS, both ways.
    let mut h2 = H2Conn::connect(f.site.https, "fwd.test", &f.site.ca.cert_pem())
        .await
        .expect("h2");
    let r = h2.get("/h2").await.expect("h2");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"sso\""));
    let r = h2
        .request("GET", "/h2", &[("authorization", "Bearer good")], b"")
        .await
        .expect("h2");
    assert_eq!(r.status, 200);
    assert_eq!(
        f.app.last_request().expect("app").header("x-user"),
        Some("alice")
    );
    let (_, headers) = f.seen.lock().expect("lock").last().cloned().expect("seen");
    assert_eq!(http1::header(&headers, "x-forwarded-proto"), Some("https"));
}
