//! Rate and connection limits (`limit_req`, `limit_conn`) and error pages
//! through the real binary: answers are counted, never timed.

use crate::support::*;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

/// An upstream whose answers wait until the test releases them: each
/// request takes one permit of `release` before it is answered (200, then
/// the connection closes).
struct HoldUpstream {
    addr: SocketAddr,
    waiting: Arc<AtomicUsize>,
    release: Arc<Semaphore>,
    task: tokio::task::JoinHandle<()>,
}

impl HoldUpstream {
    async fn start() -> HoldUpstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let waiting = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(Semaphore::new(0));
        let (w, r) = (waiting.clone(), release.clone());
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let tcp = accept(&listener).await;
                let (w, r) = (w.clone(), r.clone());
                conns.spawn(async move {
                    let mut tcp = tcp;
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|x| x == b"\r\n\r\n") {
                        match tcp.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    w.fetch_add(1, Ordering::SeqCst);
                    let permit = r.acquire().await.expect("open");
                    permit.forget();
                    w.fetch_sub(1, Ordering::SeqCst);
                    let _ = tcp
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nheld")
                        .await;
                });
            }
        });
        HoldUpstream {
            addr,
            waiting,
            release,
            task,
        }
    }

    async fn wait_waiting(&self, n: usize) -> bool {
        let w = self.waiting.clone();
        wait_until_async(deadline_in(IO_TIMEOUT), || {
            let w = w.clone();
            async move { w.load(Ordering::SeqCst) == n }
        })
        .await
    }
}

impl Drop for HoldUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A proxy on one plain port with `top` (zones) and `sites` (YAML).
async fn proxy(top: &str, sites: &str) -> (ProxyProcess, SocketAddr) {
    let ports = free_ports(2);
    let yaml = format!(
        "listeners:\n  http: {{address: \"127.0.0.1:{}\"}}\nadmin: {{address: \"127.0.0.1:{}\"}}\n{top}{sites}",
        ports[0], ports[1]
    );
    let http: SocketAddr = ([127, 0, 0, 1], ports[0]).into();
    let p = ProxyProcess::start_ready(&yaml, &[http])
        .await
        .expect("starts");
    (p, http)
}

async fn statuses(http: SocketAddr, host: &str, path: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(http_get(http, host, path).await.expect("answer").status);
    }
    out
}

fn count(v: &[u16], s: u16) -> usize {
    v.iter().filter(|x| **x == s).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_with_nodelay_lets_exactly_burst_plus_one_through() {
    let app = HttpUpstream::start("app").await;
    let sites = format!(
        r#"sites:
  s:
    hosts: [a.test]
    limit_req: [{{zone: ip, burst: 3, nodelay: true}}]
    routes:
      - {{path: /, upstream: u}}
      - {{path: /other, upstream: u, limit_req: [{{zone: ip2, status: 503}}]}}
      - {{path: /free, upstream: u, limit_req: []}}
upstreams:
  u: {{active: p, pools: {{p: ["127.0.0.1:{}"]}}}}
"#,
        app.port()
    );
    let (mut p, http) = proxy(
        "limit_req_zones:\n  ip: {key: $binary_remote_addr, rate: 1r/m}\n  ip2: {rate: 1r/m}\n",
        &sites,
    )
    .await;
    let got = statuses(http, "a.test", "/", 10).await;
    assert_eq!(count(&got, 200), 4, "{got:?}");
    assert_eq!(count(&got, 429), 6, "{got:?}");
    assert_eq!(&got[..4], [200; 4], "the first burst+1 pass: {got:?}");
    assert_eq!(
        app.request_count(),
        4,
        "refused requests never reach the app"
    );
    let r = http_get(http, "a.test", "/").await.expect("429");
    assert!(r.text().contains("429 Too Many Requests"), "{}", r.text());
    // A route with its own list does not inherit the site's; `[]` = none.
    let other = statuses(http, "a.test", "/other", 3).await;
    assert_eq!(other, [200, 503, 503]);
    assert_eq!(statuses(http, "a.test", "/free", 5).await, [200; 5]);

    // A reload with the zone unchanged keeps every bucket.
    let mark = p.log_mark();
    p.write_config(&std::fs::read_to_string(p.config_path()).expect("read"))
        .expect("write");
    p.signal("HUP").expect("hup");
    assert!(
        p.wait_for_stderr_after(mark, "configuration reloaded", IO_TIMEOUT)
            .await,
        "{}",
        p.stderr()
    );
    assert_eq!(statuses(http, "a.test", "/", 2).await, [429, 429]);
    // A changed zone starts empty.
    let changed = std::fs::read_to_string(p.config_path())
        .expect("read")
        .replace("rate: 1r/m}\n  ip2", "rate: 2r/m}\n  ip2");
    let mark = p.log_mark();
    p.write_config(&changed).expect("write");
    p.signal("HUP").expect("hup");
    assert!(
        p.wait_for_stderr_after(mark, "configuration reloaded", IO_TIMEOUT)
            .await,
        "{}",
        p.stderr()
    );
    assert_eq!(
        statuses(http, "a.test", "/", 5).await,
        [200, 200, 200, 200, 429]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_nodelay_the_burst_waits_and_the_excess_is_refused_at_once() {
    let app = HttpUpstream::start("app").await;
    let sites = format!(
        "sites:\n  s:\n    hosts: [a.test]\n    routes:\n      - {{path: /, upstream: u, limit_req: [{{zone: ip, burst: 1}}]}}\nupstreams:\n  u: {{active: p, pools: {{p: [\"127.0.0.1:{}\"]}}}}\n",
        app.port()
    );
    // 12 r/m: the one request in excess waits 5 s.
    let (_p, http) = proxy("limit_req_zones:\n  ip: {rate: 12r/m}\n", &sites).await;
    assert_eq!(statuses(http, "a.test", "/", 1).await, [200]);
    let done = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = H1Conn::connect(http).await.expect("connect");
            c.set_timeout(Duration::from_secs(30));
            let s = c.get("/", "a.test").await.expect("answer").status;
            done.lock().expect("lock").push(s);
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let order = done.lock().expect("lock").clone();
    // The delayed request is answered last: the two refused ones did not
    // wait for it.
    assert_eq!(order, [429, 429, 200], "completion order");
    assert_eq!(app.request_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_conn_refuses_beyond_max_and_gives_counts_back_on_every_path() {
    let hold = HoldUpstream::start().await;
    let dead = DeadUpstream::new();
    let sites = format!(
        r#"sites:
  s:
    hosts: [a.test]
    limit_conn: [{{zone: c, max: 2}}]
    routes:
      - {{path: /, upstream: h}}
      - {{path: /dead, upstream: d}}
upstreams:
  h: {{active: p, pools: {{p: ["{}"]}}}}
  d: {{active: p, pools: {{p: ["127.0.0.1:{}"]}}}}
"#,
        hold.addr,
        dead.port()
    );
    let (_p, http) = proxy("limit_conn_zones:\n  c: {key: $remote_addr}\n", &sites).await;
    let held = |path: &'static str| {
        tokio::spawn(async move {
            let mut c = H1Conn::connect(http).await.expect("connect");
            c.set_timeout(Duration::from_secs(30));
            c.get(path, "a.test").await.map(|r| r.status)
        })
    };
    let a = held("/a");
    let b = held("/b");
    assert!(hold.wait_waiting(2).await, "two requests held upstream");
    assert_eq!(statuses(http, "a.test", "/c", 1).await, [429], "the third");
    hold.release.add_permits(1);
    let first = tokio::time::timeout(IO_TIMEOUT, async {
        tokio::select! { r = a => r, r = b => r }
    })
    .await
    .expect("one answered")
    .expect("task")
    .expect("answer");
    assert_eq!(first, 200);
    // One count comes back once that request ends, a moment after its
    // client read the answer: one more is then admitted (and held).
    let deadline = deadline_in(IO_TIMEOUT);
    let c = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the count never came back"
        );
        let c = held("/c");
        let w = hold.waiting.clone();
        let admitted = wait_until_async(deadline, || {
            let finished = c.is_finished();
            let w = w.clone();
            async move { finished || w.load(Ordering::SeqCst) == 2 }
        })
        .await;
        if admitted && !c.is_finished() {
            break c;
        }
        assert_eq!(
            c.await.expect("task").expect("answer"),
            429,
            "refused meanwhile"
        );
    };
    assert_eq!(statuses(http, "a.test", "/d", 1).await, [429]);
    // A client that goes away gives its count back when its request ends.
    c.abort();
    hold.release.add_permits(2);
    assert!(hold.wait_waiting(0).await);
    // Proof that every count came back: with `x` held, a probe is admitted
    // (502 from the dead upstream) only if nothing else is counted. The
    // aborted request ends a moment after its upstream answered: poll.
    let deadline = deadline_in(IO_TIMEOUT);
    let x = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "counts never came back"
        );
        let x = held("/x");
        // Admitted (held upstream) or refused (finished): whichever comes
        // first. A refusal is answered at once; waiting out the whole
        // deadline for an admission that cannot come left no time to retry.
        let w = hold.waiting.clone();
        let admitted = wait_until_async(deadline, || {
            let finished = x.is_finished();
            let w = w.clone();
            async move { finished || w.load(Ordering::SeqCst) == 1 }
        })
        .await;
        if !admitted || x.is_finished() {
            let _ = x.await;
            continue;
        }
        if statuses(http, "a.test", "/dead", 1).await == [502] {
            break x;
        }
        hold.release.add_permits(1);
        let _ = x.await;
    };
    // Errors give their count back too: each 502 leaves room for the next.
    assert_eq!(statuses(http, "a.test", "/dead", 4).await, [502; 4]);
    let y = held("/y");
    assert!(hold.wait_waiting(2).await, "two admitted again");
    assert_eq!(statuses(http, "a.test", "/z", 1).await, [429]);
    hold.release.add_permits(2);
    for t in [x, y] {
        assert_eq!(t.await.expect("task").expect("answer"), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_counts_until_it_closes() {
    let ws = WsUpstream::start("ws").await;
    let sites = format!(
        "sites:\n  s:\n    default: true\n    routes:\n      - {{path: /, upstream: w, limit_conn: [{{zone: c, max: 1}}]}}\nupstreams:\n  w: {{active: p, pools: {{p: [\"127.0.0.1:{}\"]}}}}\n",
        ws.port()
    );
    let (_p, http) = proxy("limit_conn_zones:\n  c: {}\n", &sites).await;
    let url = format!("ws://{http}/chat");
    let mut one = ws_connect(&url, None).await.expect("first websocket");
    one.send_text("hi").await.expect("send");
    assert!(ws.wait_for_open(1, IO_TIMEOUT).await);
    assert!(
        ws_connect(&url, None).await.is_err(),
        "a second one is refused while the first is open"
    );
    drop(one);
    assert!(ws.wait_for_open(0, IO_TIMEOUT).await);
    // The tunnel ends a moment after the upstream saw the close: poll.
    let deadline = deadline_in(IO_TIMEOUT);
    let again = loop {
        if let Ok(c) = ws_connect(&url, None).await {
            break c;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "admitted again once the first closed"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    };
    drop(again);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_forwarded_addresses_cannot_grow_the_table() {
    let app = HttpUpstream::start("app").await;
    let sites = format!(
        "trusted_proxies: [127.0.0.1]\nclient_ip_from: X-Forwarded-For\nsites:\n  s:\n    hosts: [a.test]\n    routes:\n      - {{path: /, upstream: u, limit_req: [{{zone: tiny}}]}}\nupstreams:\n  u: {{active: p, pools: {{p: [\"127.0.0.1:{}\"]}}}}\n",
        app.port()
    );
    // `size: 1`: the smallest table, one set of 8 keys.
    let (_p, http) = proxy("limit_req_zones:\n  tiny: {rate: 1r/m, size: 1}\n", &sites).await;
    let from = |ip: String| async move {
        let mut c = H1Conn::connect(http).await.expect("connect");
        c.request("GET", "/", "a.test", &[("X-Forwarded-For", &ip)], b"")
            .await
            .expect("answer")
            .status
    };
    assert_eq!(from("198.51.100.1".into()).await, 200);
    assert_eq!(from("198.51.100.1".into()).await, 429, "limited");
    for i in 0..7 {
        assert_eq!(from(format!("203.0.113.{i}")).await, 200);
    }
    assert_eq!(
        from("198.51.100.1".into()).await,
        429,
        "7 other keys fit beside it"
    );
    assert_eq!(from("203.0.113.7".into()).await, 200);
    assert_eq!(
        from("198.51.100.1".into()).await,
        200,
        "the 9th key took the oldest slot: the table holds 8 keys, not more"
    );
    for i in 0..500u32 {
        let ip = format!("10.{}.{}.1", i / 256, i % 256);
        assert_eq!(from(ip).await, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_pages_replace_greenlights_answers_and_intercepted_upstream_errors() {
    let app = HttpUpstream::start("app").await;
    let dead = DeadUpstream::new();
    let dir = tempfile::tempdir().expect("dir");
    let page = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p.display().to_string()
    };
    let (p502, p404, p429, p500, pjson) = (
        page("502.html", "<h1>we are upgrading</h1>"),
        page("404.html", "<h1>nothing here</h1>"),
        page("429.html", "<h1>slow down</h1>"),
        page("500.html", "<h1>oops</h1>"),
        page("gone.json", "{\"gone\":true}"),
    );
    let www = dir.path().join("www");
    std::fs::create_dir(&www).expect("www");
    std::fs::write(www.join("here.txt"), "here").expect("file");
    let sites = format!(
        r#"sites:
  s:
    hosts: [a.test]
    error_pages: {{502: "{p502}", 404: "{p404}", 429: "{p429}"}}
    routes:
      - {{path: /, upstream: u}}
      - {{path: /down, upstream: d}}
      - {{path: /static/, files: {{alias: "{www}/"}}}}
      - {{path: /limited, upstream: u, limit_req: [{{zone: z}}]}}
      - path: /app/
        upstream: u
        upstream_path: /
        intercept_errors: true
        error_pages: {{500: "{p500}", 410: {{file: "{pjson}", status: 200}}}}
upstreams:
  u: {{active: p, pools: {{p: ["127.0.0.1:{}"]}}}}
  d: {{active: p, pools: {{p: ["127.0.0.1:{}"]}}}}
"#,
        app.port(),
        dead.port(),
        www = www.display()
    );
    let (mut p, http) = proxy("limit_req_zones:\n  z: {rate: 1r/m}\n", &sites).await;
    let get =
        |path: &'static str| async move { http_get(http, "a.test", path).await.expect("answer") };

    let r = get("/down").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.text(), "<h1>we are upgrading</h1>");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let r = get("/static/missing.txt").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (404, "<h1>nothing here</h1>")
    );
    assert_eq!(get("/static/here.txt").await.text(), "here");
    assert_eq!(get("/limited").await.status, 200);
    let r = get("/limited").await;
    assert_eq!((r.status, r.text().as_str()), (429, "<h1>slow down</h1>"));
    let r = http_get(http, "b.test", "/").await.expect("no site");
    assert_eq!(r.status, 404);
    assert!(
        r.text().contains("no site serves host"),
        "no site: no site's pages"
    );

    // Intercepted: the upstream's 500 gets the page, its 410 the page with 200.
    let r = get("/app/status/500").await;
    assert_eq!((r.status, r.text().as_str()), (500, "<h1>oops</h1>"));
    let r = get("/app/status/410").await;
    assert_eq!((r.status, r.text().as_str()), (200, "{\"gone\":true}"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        get("/app/status/201").await.status,
        201,
        "not listed: as sent"
    );
    // Not intercepting (the site's default): the upstream's own 404 passes.
    let r = get("/status/404").await;
    assert_eq!(r.status, 404);
    assert!(!r.text().contains("nothing here"), "{}", r.text());

    // A reload reads the pages again.
    std::fs::write(dir.path().join("502.html"), "<h1>back soon</h1>").expect("write");
    let mark = p.log_mark();
    p.signal("HUP").expect("hup");
    assert!(
        p.wait_for_stderr_after(mark, "configuration reloaded", IO_TIMEOUT)
            .await,
        "{}",
        p.stderr()
    );
    assert_eq!(get("/down").await.text(), "<h1>back soon</h1>");
    // A page that went missing is refused at reload; the old one serves.
    std::fs::remove_file(dir.path().join("502.html")).expect("rm");
    let mark = p.log_mark();
    p.signal("HUP").expect("hup");
    assert!(
        p.wait_for_stderr_after(mark, "cannot read error page", IO_TIMEOUT)
            .await,
        "{}",
        p.stderr()
    );
    assert_eq!(get("/down").await.text(), "<h1>back soon</h1>");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intercepted_chunked_answer_gets_the_whole_page_on_a_kept_connection() {
    let raw = RawUpstream::start(|target| match target {
        "/empty" => b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n".to_vec(),
        "/chunked" => b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\nETag: \"x\"\r\n\r\n5\r\nerror\r\n0\r\n\r\n".to_vec(),
        _ => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
    })
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let page = dir.path().join("sorry.html");
    std::fs::write(&page, "<p>sorry</p>").expect("write");
    let sites = format!(
        "sites:\n  s:\n    hosts: [a.test]\n    intercept_errors: true\n    error_pages: {{503: \"{p}\", 500: \"{p}\"}}\n    routes:\n      - {{path: /, upstream: r}}\nupstreams:\n  r: {{active: p, pools: {{p: [\"127.0.0.1:{}\"]}}}}\n",
        raw.port(),
        p = page.display()
    );
    let (_p, http) = proxy("", &sites).await;
    let mut c = H1Conn::connect(http).await.expect("connect");
    for _ in 0..2 {
        let r = c.get("/chunked", "a.test").await.expect("answer");
        assert_eq!((r.status, r.text().as_str()), (500, "<p>sorry</p>"));
        assert_eq!(
            r.header("etag"),
            None,
            "the upstream's body headers are gone"
        );
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        // Declared empty: Pingora ends it with its header, so it passes as
        // sent (a known difference from nginx, README).
        let r = c.get("/empty", "a.test").await.expect("answer");
        assert_eq!((r.status, r.text().as_str()), (503, ""));
    }
    assert_eq!(c.get("/ok", "a.test").await.expect("ok").text(), "ok");
}
