//! The live deploy dashboard (`GET /` of the admin listener) in a real
//! browser: headless Chromium (see `support::cdp`) against the real
//! greenlight binary with blue/green upstreams. Each step asserts what the
//! page shows (DOM text, the light's state) by polling with a deadline, and
//! saves a screenshot to `target/artifacts/dashboard/NN-step.png`.

use crate::support::cdp::Browser;
use crate::support::*;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;

/// Page load plus a first poll, in a browser on a loaded 2-core machine.
const PAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// The dashboard polls once a second; a change shows within a few polls.
const SHOWS: Duration = Duration::from_secs(15);

const YAML: &str = r#"
listeners:
  http: {address: "127.0.0.1:{HTTP}"}
  https: {address: "127.0.0.1:{HTTPS}", tls: true}
admin: {address: "127.0.0.1:{ADMIN}"TOKEN}
sites:
  app:
    hosts: [app.test]
    default: true
    routes:
      - {path: /, upstream: app}
  secure:
    hosts: [secure.test]
    tls: self_signed
    routes:
      - {path: /, upstream: app}
upstreams:
  app:
    active: blue   # the live pool: `greenlight switch` rewrites this value
    drain_timeout: 300s
    pools:
      blue: ["127.0.0.1:{BLUE}"]
      green: ["127.0.0.1:{GREEN}"]
"#;

fn config(
    blue: u16,
    green: u16,
    token_file: Option<&std::path::Path>,
) -> (String, SocketAddr, SocketAddr) {
    let ports = free_ports(3);
    let yaml = fill_ports(
        YAML,
        &[
            ("HTTP", ports[0]),
            ("ADMIN", ports[1]),
            ("HTTPS", ports[2]),
            ("BLUE", blue),
            ("GREEN", green),
        ],
    )
    .replace(
        "TOKEN",
        &token_file.map_or(String::new(), |t| {
            format!(", token_file: \"{}\"", t.display())
        }),
    );
    (
        yaml,
        ([127, 0, 0, 1], ports[0]).into(),
        ([127, 0, 0, 1], ports[1]).into(),
    )
}

/// What the page shows for upstream `app`: the light, the next step and, per
/// pool row, its cells (pool, state, in flight, WebSockets, drain, servers).
const CARD: &str = r#"(() => {
  const c = document.querySelector('[data-upstream="app"]');
  if (!c) return null;
  const l = c.querySelector('.light');
  const pre = c.querySelector('pre');
  return {
    title: c.querySelector('h2').textContent,
    light: l.dataset.state, pool: l.dataset.pool || null,
    verdict: l.querySelector('.verdict').textContent,
    role: l.getAttribute('role'), live: l.getAttribute('aria-live'),
    next: c.querySelector('.next').textContent,
    command: pre.hidden ? null : pre.textContent,
    rows: Object.fromEntries([...c.querySelectorAll('tr[data-pool]')]
      .map((r) => [r.dataset.pool, [...r.children].map((x) => x.textContent.trim())])),
    conn: document.getElementById('conn').dataset.state,
  };
})()"#;

/// Basic accessibility: names and labels, captions, language, and the
/// WCAG AA contrast ratio (4.5:1) of text on its background for the light,
/// buttons, headings and body text.
const A11Y: &str = r#"(() => {
  const problems = [];
  if (!document.documentElement.lang) problems.push('no lang on <html>');
  for (const b of document.querySelectorAll('button'))
    if (!b.textContent.trim() && !b.getAttribute('aria-label')) problems.push('a button without a name');
  for (const i of document.querySelectorAll('input'))
    if (!i.labels.length) problems.push('input without a label: #' + i.id);
  for (const t of document.querySelectorAll('table'))
    if (!t.querySelector('caption')) problems.push('a table without a caption');
  const rgb = (s) => s.match(/[\d.]+/g).slice(0, 3).map(Number);
  const lum = (c) => { const [r, g, b] = c.map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const bg = (e) => { for (; e; e = e.parentElement) { const c = getComputedStyle(e).backgroundColor;
    if (!/rgba\(.*,\s*0\)$/.test(c) && c !== 'transparent') return rgb(c); } return [255, 255, 255]; };
  for (const e of document.querySelectorAll('.verdict, button, h1, h2, td, th, p, .conn')) {
    if (!e.offsetParent && e.tagName !== 'BUTTON') continue;
    if (e.closest('[hidden]')) continue;
    const [a, b] = [lum(rgb(getComputedStyle(e).color)), lum(bg(e))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) problems.push(`contrast ${ratio.toFixed(2)} < 4.5 for ${e.tagName} "${e.textContent.trim().slice(0, 40)}"`);
  }
  return problems;
})()"#;

async fn api(
    admin: SocketAddr,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: &str,
) -> Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    let mut c = H1Conn::connect(admin).await.expect("admin connect");
    c.request(method, path, &admin.to_string(), &headers, body.as_bytes())
        .await
        .expect("admin answer")
}

async fn pool(admin: SocketAddr, token: Option<&str>, name: &str) -> Value {
    let r = api(admin, token, "GET", "/api/upstreams", "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["upstreams"][0]["pools"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == name))
        .cloned()
        .expect("pool in the API")
}

/// Presses Tab until `selector` has the focus (at most 30 times).
async fn tab_to(b: &mut Browser, selector: &str) {
    let check = format!("document.activeElement === document.querySelector({selector:?})");
    for _ in 0..30 {
        if b.eval(&check).await == true {
            return;
        }
        b.press("Tab").await;
    }
    panic!("{selector} cannot be reached with the Tab key");
}

/// Waits until the page's `#announce` line says `needle`.
async fn announced(b: &mut Browser, needle: &str) -> String {
    let v = b
        .wait_for(
            &format!("the page to announce {needle:?}"),
            "document.getElementById('announce').textContent",
            SHOWS,
            |v| v.as_str().is_some_and(|t| t.contains(needle)),
        )
        .await;
    v.as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_follows_a_deploy_and_turns_green_when_blue_is_safe_to_stop() {
    // First, so that a missing Chromium fails with its one line.
    let mut b = Browser::launch(1280, 900).await;
    let blue = WsUpstream::start("blue").await;
    let green = WsUpstream::start("green").await;
    let (yaml, http, admin) = config(blue.port(), green.port(), None);
    let proxy = ProxyProcess::start_ready(&yaml, &[http, admin])
        .await
        .expect("greenlight starts");
    b.navigate(&format!("http://{admin}/"), PAGE_TIMEOUT).await;

    // 1. Before the switch: blue serves, green idles, no drain, the next
    //    command is the switch.
    let c = b
        .wait_for("upstream app before the switch", CARD, PAGE_TIMEOUT, |v| {
            v["conn"] == "live" && v["rows"]["blue"][1] == "active"
        })
        .await;
    assert_eq!(c["light"], "none", "{c:#}");
    assert_eq!(c["verdict"], "No drain in progress");
    // Not in fleet mode: no fleet section.
    assert_eq!(
        b.eval("document.getElementById('fleet').hidden").await,
        true
    );
    assert_eq!(c["rows"]["green"][1], "idle");
    assert!(
        c["rows"]["blue"][5].as_str().unwrap().contains("up"),
        "{c:#}"
    );
    let config_path = proxy.config_path().display().to_string();
    assert_eq!(
        c["command"],
        format!("greenlight switch app green --wait -c {config_path}")
    );
    assert_eq!(
        (c["role"].as_str(), c["live"].as_str()),
        (Some("status"), Some("polite"))
    );
    let certs = b
        .eval("document.querySelector('#certs tbody tr').textContent")
        .await;
    let certs = certs.as_str().unwrap_or_default();
    assert!(
        certs.contains("secure")
            && certs.contains("secure.test")
            && certs.contains("not ACME (self_signed)"),
        "{certs}"
    );
    let sites = b.eval("document.getElementById('sites').textContent").await;
    assert!(
        sites.as_str().unwrap().contains("app.test · default"),
        "{sites}"
    );
    let a11y = b.eval(A11Y).await;
    assert_eq!(a11y, serde_json::json!([]), "accessibility problems");
    b.screenshot("01-before-switch.png").await;

    // A client holds a WebSocket on blue; the page counts it.
    let mut ws = ws_connect(&format!("ws://app.test:{}/ws", http.port()), None)
        .await
        .expect("WebSocket through greenlight");
    assert_eq!(ws.recv_text().await.expect("hello"), "hello from blue");
    b.wait_for("blue's open WebSocket", CARD, SHOWS, |v| {
        v["rows"]["blue"][3] == "1"
    })
    .await;

    // 2. Switch from the keyboard: Tab to the button, Enter opens the
    //    confirmation (focus on Cancel), Tab to confirm, Enter.
    tab_to(&mut b, "button[data-switch=\"green\"]").await;
    b.press("Enter").await;
    let dialog = b
        .wait_for(
            "the confirmation dialog",
            "document.getElementById('confirm').open && document.getElementById('confirm').textContent",
            SHOWS,
            |v| v.is_string(),
        )
        .await;
    assert!(
        dialog.as_str().unwrap().contains("Switch app to green?"),
        "{dialog}"
    );
    assert_eq!(
        pool(admin, None, "blue").await["state"],
        "active",
        "nothing happens before the confirmation"
    );
    assert_eq!(b.eval("document.activeElement.id").await, "confirm-no");
    b.press("Tab").await;
    b.press("Enter").await;
    announced(&mut b, "Done: switch app to green").await;
    let c = b
        .wait_for("blue draining with its WebSocket", CARD, SHOWS, |v| {
            v["rows"]["blue"][1] == "draining"
        })
        .await;
    assert_eq!(c["light"], "wait", "{c:#}");
    assert_eq!(c["pool"], "blue");
    assert_eq!(c["verdict"], "Not safe to stop pool blue yet");
    assert_eq!(
        c["rows"]["blue"][3], "1",
        "the WebSocket is still open: {c:#}"
    );
    assert!(
        c["rows"]["blue"][4].as_str().unwrap().contains("s left"),
        "{c:#}"
    );
    assert!(
        c["next"].as_str().unwrap().contains("1 WebSocket(s) open"),
        "{c:#}"
    );
    assert!(
        c["command"].is_null(),
        "nothing to run while draining: {c:#}"
    );
    assert_eq!(c["rows"]["green"][1], "active");
    assert!(c["title"].as_str().unwrap().contains("active pool: green"));
    let p = pool(admin, None, "blue").await;
    assert_eq!(
        (p["state"].as_str(), p["safe_to_stop"].as_bool()),
        (Some("draining"), Some(false))
    );
    b.screenshot("02-draining.png").await;

    // The WebSocket still works on blue; then the client leaves.
    ws.send_text("still here").await.expect("send");
    assert_eq!(ws.recv_text().await.expect("echo"), "still here");
    ws.close(1000).await.expect("close");

    // 3. Drained: the light turns green, with the next command.
    let c = b
        .wait_for("the light turning green", CARD, SHOWS, |v| {
            v["light"] == "safe"
        })
        .await;
    assert_eq!(c["verdict"], "Pool blue is safe to stop");
    assert_eq!(c["rows"]["blue"][1], "drained", "{c:#}");
    assert_eq!(c["rows"]["blue"][3], "0");
    assert_eq!(
        c["command"],
        format!("greenlight switch app blue --wait -c {config_path}")
    );
    let p = pool(admin, None, "blue").await;
    assert_eq!(
        (p["state"].as_str(), p["safe_to_stop"].as_bool()),
        (Some("drained"), Some(true))
    );
    b.screenshot("03-drained.png").await;

    // 4. A reload of a broken file is rejected; the page lists the problem
    //    with its position.
    let text = std::fs::read_to_string(proxy.config_path()).expect("config");
    let line = 1 + text
        .lines()
        .position(|l| l.contains("drain_timeout"))
        .expect("drain_timeout line");
    proxy
        .write_config(&text.replace("drain_timeout: 300s", "drain_timeout: soon"))
        .expect("write");
    b.click("#reload").await;
    b.wait_for(
        "the reload confirmation",
        "document.getElementById('confirm').open",
        SHOWS,
        |v| *v == true,
    )
    .await;
    b.click("#confirm-yes").await;
    announced(&mut b, "Refused: reload").await;
    let position = format!("config.yaml:{line}:");
    let first = b
        .wait_for(
            "the rejected reload with its position",
            "document.querySelector('#reloads li') && document.querySelector('#reloads li').textContent",
            SHOWS,
            |v| v.as_str().is_some_and(|t| t.contains("REJECTED")),
        )
        .await;
    let first = first.as_str().unwrap();
    assert!(
        first.contains(&position) && first.contains("'soon' is not a duration"),
        "{first}"
    );
    let banner = b.eval("document.getElementById('rejected').hidden ? null : document.getElementById('rejected').textContent").await;
    assert!(
        banner.as_str().is_some_and(|t| t.contains("rejected")),
        "{banner}"
    );
    b.screenshot("04-reload-rejected.png").await;

    // 5. On a phone: one column, nothing wider than the screen.
    b.viewport(390, 844, true).await;
    // Wide tables scroll inside their own box; nothing else may stick out.
    b.wait_for(
        "a page as narrow as the phone",
        "({width: document.documentElement.scrollWidth, wider: [...document.querySelectorAll('body *')]
            .filter((e) => !e.closest('.scroll') && e.getBoundingClientRect().right > innerWidth + 0.5)
            .map((e) => e.tagName + '.' + e.className)})",
        SHOWS,
        |v| v["width"].as_u64().is_some_and(|w| w <= 390),
    )
    .await;
    b.screenshot("05-phone.png").await;
    assert_eq!(
        b.eval(A11Y).await,
        serde_json::json!([]),
        "accessibility problems"
    );

    let errors = std::mem::take(&mut b.errors);
    b.close().await;
    assert!(errors.is_empty(), "the page had errors: {errors:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_protected_dashboard_asks_for_the_token_and_its_buttons_need_it() {
    const TOKEN: &str = "dashboard-test-token-5d1c";
    let mut b = Browser::launch(1280, 900).await;
    let blue = HttpUpstream::start("blue").await;
    let green = HttpUpstream::start("green").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("admin.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("token file");
    let (yaml, http, admin) = config(blue.port(), green.port(), Some(&token_file));
    let _proxy = ProxyProcess::start_ready(&yaml, &[http, admin])
        .await
        .expect("greenlight starts");
    b.navigate(&format!("http://{admin}/"), PAGE_TIMEOUT).await;

    // The page loads without the token, then asks for it.
    let why = b
        .wait_for(
            "the token form",
            "!document.getElementById('token-panel').hidden && document.getElementById('token-why').textContent",
            PAGE_TIMEOUT,
            |v| v.is_string(),
        )
        .await;
    assert!(
        why.as_str().unwrap().contains("needs its bearer token"),
        "{why}"
    );
    assert_eq!(b.eval("document.activeElement.id").await, "token");
    assert_eq!(b.eval(CARD).await, Value::Null, "no data without the token");
    b.screenshot("11-token-asked.png").await;

    // Reload without the token: refused, and nothing was reloaded.
    b.click("#reload").await;
    b.click("#confirm-yes").await;
    let said = announced(&mut b, "Refused: reload").await;
    assert!(said.contains("bearer token"), "{said}");
    let s = api(admin, Some(TOKEN), "GET", "/api/status", "")
        .await
        .json();
    assert_eq!(s["reloads"], serde_json::json!([]), "{s:#}");

    // A wrong token is refused; the right one shows the dashboard.
    b.click("#token").await;
    b.type_text("not-the-token").await;
    b.press("Enter").await;
    b.wait_for(
        "the wrong token refused",
        "document.getElementById('token-why').textContent",
        SHOWS,
        |v| v.as_str().is_some_and(|t| t.contains("refused the token")),
    )
    .await;
    b.click("#token").await;
    b.type_text(TOKEN).await;
    b.press("Enter").await;
    let c = b
        .wait_for("the dashboard with the token", CARD, SHOWS, |v| {
            v["conn"] == "live"
        })
        .await;
    assert_eq!(c["rows"]["blue"][1], "active", "{c:#}");
    assert_eq!(
        b.eval("document.getElementById('token-panel').hidden")
            .await,
        true
    );

    // Forget the token: the switch button is refused.
    b.click("#forget").await;
    b.wait_for(
        "the token form again",
        "!document.getElementById('token-panel').hidden",
        SHOWS,
        |v| *v == true,
    )
    .await;
    b.click("button[data-switch=\"green\"]").await;
    b.click("#confirm-yes").await;
    let said = announced(&mut b, "Refused: switch app to green").await;
    assert!(said.contains("bearer token"), "{said}");
    assert_eq!(pool(admin, Some(TOKEN), "blue").await["state"], "active");
    b.screenshot("12-token-refused.png").await;

    // With the token again, the same button switches.
    b.click("#token").await;
    b.type_text(TOKEN).await;
    b.press("Enter").await;
    b.wait_for("the dashboard live again", CARD, SHOWS, |v| {
        v["conn"] == "live"
    })
    .await;
    b.click("button[data-switch=\"green\"]").await;
    b.click("#confirm-yes").await;
    announced(&mut b, "Done: switch app to green").await;
    let c = b
        .wait_for("green active, blue safe to stop", CARD, SHOWS, |v| {
            v["rows"]["green"][1] == "active" && v["light"] == "safe"
        })
        .await;
    assert_eq!(c["verdict"], "Pool blue is safe to stop", "{c:#}");
    assert_eq!(pool(admin, Some(TOKEN), "green").await["state"], "active");
    b.screenshot("13-token-switched.png").await;

    let errors = std::mem::take(&mut b.errors);
    b.close().await;
    assert!(errors.is_empty(), "the page had errors: {errors:#?}");
}
