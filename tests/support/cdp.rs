//! A real browser for the dashboard test: headless Chromium driven over the
//! Chrome DevTools Protocol.
//!
//! [`Browser::launch`] starts Debian's `chromium` (or `$CHROMIUM`) with a
//! temporary profile, DevTools on a loopback port chosen by Chromium, and no
//! network of its own (no background services, host names resolve to
//! nothing: the test uses IP literals on loopback). The protocol is spoken by
//! hand — one WebSocket (tokio-tungstenite) carrying JSON commands
//! (serde_json), both already dev-dependencies — because the test needs a
//! dozen commands; the CDP crates (chromiumoxide, headless_chrome) bring
//! bindings generated for the whole protocol and their own dependency trees
//! for nothing more.
//!
//! Clicks and keys go through `Input.dispatch*Event`, as a user's would: a
//! modal dialog or a disabled button stops them like it stops a person.
//! Exceptions thrown by the page and console errors (a Content-Security-Policy
//! violation is one) are collected in [`Browser::errors`].

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long Chromium may take to start (a cold start on a loaded 2-core
/// machine takes seconds).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long one protocol command may take (a full-page screenshot included).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The Chromium binary: `$CHROMIUM`, else `chromium` on `PATH`. Missing, the
/// test fails with one line naming the program and `./test.sh`.
pub fn chromium_path() -> PathBuf {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "$CHROMIUM={} is not a file: point it at a Chromium binary, or unset it and run ./test.sh (installs Debian's chromium)",
            p.display()
        );
        return p;
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("chromium"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "chromium not found: the dashboard test needs Debian's chromium (or $CHROMIUM) — run ./test.sh, which installs it"
            )
        })
}

/// Where the dashboard test keeps its screenshots: `target/artifacts/dashboard`
/// (CI keeps `target/artifacts/`).
pub fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("artifacts").join("dashboard");
    std::fs::create_dir_all(&dir).expect("create target/artifacts/dashboard");
    dir
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One headless Chromium with one page (tab) attached.
pub struct Browser {
    /// Killed with its whole process group on drop (renderers included).
    child: tokio::process::Child,
    ws: Socket,
    session: String,
    next_id: u64,
    /// The last lines Chromium wrote on stderr, for failure messages.
    stderr: Arc<Mutex<VecDeque<String>>>,
    /// Uncaught exceptions and console errors of the page, in order.
    pub errors: Vec<String>,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium and opens a blank page of `width` x `height` CSS pixels.
    pub async fn launch(width: u32, height: u32) -> Browser {
        let bin = chromium_path();
        let profile = tempfile::Builder::new()
            .prefix("greenlight-chromium-")
            .tempdir()
            .expect("temp profile");
        let mut cmd = tokio::process::Command::new(&bin);
        cmd.arg("--headless=new")
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args([
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-default-apps",
                "--disable-extensions",
                "--disable-sync",
                "--disable-breakpad",
                "--disable-gpu",
                "--no-pings",
                "--password-store=basic",
                "--use-mock-keychain",
                "--mute-audio",
                // Every name resolves to nothing but 127.0.0.1 (the rules
                // apply to IP literals too): the browser reaches only loopback.
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            ]);
        // Chromium refuses to run as root with its sandbox; the test machine
        // and CI run as root, a developer usually does not.
        let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        if root {
            cmd.arg("--no-sandbox");
        }
        cmd.arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let mut lines = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
        let url = tokio::time::timeout(START_TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                keep(&stderr, &line);
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return Some(url.trim().to_string());
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| {
            panic!(
                "{} did not report its DevTools address within {START_TIMEOUT:?}; its stderr:\n{}",
                bin.display(),
                tail(&stderr)
            )
        });
        // Keep reading stderr, or Chromium blocks once the pipe is full.
        let sink = stderr.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                keep(&sink, &line);
            }
        });
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap_or_else(|e| panic!("cannot open the DevTools socket {url}: {e}"));
        let mut b = Browser {
            child,
            ws,
            session: String::new(),
            next_id: 0,
            stderr,
            errors: Vec::new(),
            _profile: profile,
        };
        let target = b
            .call("Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let attached = b
            .call(
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        b.session = attached["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            b.call(domain, json!({})).await;
        }
        b.viewport(width, height, false).await;
        b
    }

    /// Sends one command (to the page's session once attached) and returns
    /// its result; events read meanwhile are checked for page errors.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() && !method.starts_with("Target.") {
            msg["sessionId"] = json!(self.session);
        }
        let deadline = Instant::now() + CALL_TIMEOUT;
        let sent =
            tokio::time::timeout(CALL_TIMEOUT, self.ws.send(Message::text(msg.to_string()))).await;
        assert!(
            matches!(sent, Ok(Ok(()))),
            "DevTools: cannot send {method}: {sent:?}"
        );
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let next = tokio::time::timeout(left, self.ws.next()).await;
            let text = match next {
                Ok(Some(Ok(Message::Text(t)))) => t,
                Ok(Some(Ok(_))) => continue,
                other => panic!(
                    "DevTools: no answer to {method} ({other:?}); chromium's stderr:\n{}",
                    tail(&self.stderr)
                ),
            };
            let v: Value = serde_json::from_str(&text).expect("DevTools sends JSON");
            if v["id"] == id {
                if let Some(e) = v.get("error") {
                    panic!("DevTools: {method} failed: {e}");
                }
                return v["result"].clone();
            }
            self.note_event(&v);
        }
    }

    fn note_event(&mut self, v: &Value) {
        let p = &v["params"];
        match v["method"].as_str() {
            Some("Runtime.exceptionThrown") => {
                let d = &p["exceptionDetails"];
                self.errors.push(format!(
                    "exception: {} {}",
                    d["text"].as_str().unwrap_or(""),
                    d["exception"]["description"].as_str().unwrap_or("")
                ));
            }
            Some("Runtime.consoleAPICalled") if p["type"] == "error" => {
                self.errors.push(format!("console.error: {}", p["args"]));
            }
            // Failed loads (the 401s the token test provokes) are expected;
            // anything else — a CSP violation, a script error — is not.
            Some("Log.entryAdded")
                if p["entry"]["level"] == "error" && p["entry"]["source"] != "network" =>
            {
                self.errors.push(format!(
                    "{}: {}",
                    p["entry"]["source"].as_str().unwrap_or("log"),
                    p["entry"]["text"].as_str().unwrap_or("")
                ));
            }
            _ => {}
        }
    }

    /// Opens `url` in the page and waits until it is loaded.
    pub async fn navigate(&mut self, url: &str, timeout: Duration) {
        let r = self.call("Page.navigate", json!({"url": url})).await;
        assert!(r.get("errorText").is_none(), "navigate to {url}: {r}");
        let href = serde_json::to_string(url).expect("string");
        self.wait_for(
            &format!("{url} to load"),
            &format!("location.href === {href} && document.readyState === 'complete'"),
            timeout,
            |v| *v == true,
        )
        .await;
    }

    /// Evaluates `expr` in the page (awaiting a promise) and returns its
    /// value as JSON.
    pub async fn eval(&mut self, expr: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        if let Some(e) = r.get("exceptionDetails") {
            panic!("script failed: {expr}\n{e}");
        }
        r["result"]["value"].clone()
    }

    /// Evaluates `expr` until `ok` accepts its value or `timeout` passes
    /// (then fails with `what` and the last value).
    pub async fn wait_for(
        &mut self,
        what: &str,
        expr: &str,
        timeout: Duration,
        ok: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.eval(expr).await;
            if ok(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; the page shows: {v:#}"
            );
            tokio::time::sleep(super::POLL_INTERVAL * 5).await;
        }
    }

    /// Clicks the middle of the first element matching `selector`, with the
    /// mouse, after scrolling it into view.
    pub async fn click(&mut self, selector: &str) {
        let sel = serde_json::to_string(selector).expect("string");
        let r = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({sel}); if (!e) return null;
                   e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect();
                   return {{x: r.x + r.width / 2, y: r.y + r.height / 2}}; }})()"
            ))
            .await;
        assert!(
            !r.is_null(),
            "nothing to click: no element matches {selector}"
        );
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": r["x"], "y": r["y"], "button": "left", "clickCount": 1}),
            )
            .await;
        }
    }

    /// Types `text` into whatever has the keyboard focus.
    pub async fn type_text(&mut self, text: &str) {
        self.call("Input.insertText", json!({"text": text})).await;
    }

    /// Presses and releases one key (`Enter`, `Tab`, `Escape`).
    pub async fn press(&mut self, key: &str) {
        let (code, text) = match key {
            "Enter" => (13, "\r"),
            "Tab" => (9, ""),
            "Escape" => (27, ""),
            other => panic!("press: no key code for {other}"),
        };
        let down = if text.is_empty() {
            "rawKeyDown"
        } else {
            "keyDown"
        };
        for kind in [down, "keyUp"] {
            let mut ev =
                json!({"type": kind, "key": key, "code": key, "windowsVirtualKeyCode": code});
            if kind == "keyDown" {
                ev["text"] = json!(text);
            }
            self.call("Input.dispatchKeyEvent", ev).await;
        }
    }

    /// Sets the viewport to `width` x `height` CSS pixels; `mobile` emulates
    /// a phone (meta viewport honoured, overlay scrollbars).
    pub async fn viewport(&mut self, width: u32, height: u32, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        )
        .await;
    }

    /// Saves a PNG of the whole page (not just the viewport) as
    /// `target/artifacts/dashboard/<name>`; returns its path.
    pub async fn screenshot(&mut self, name: &str) -> PathBuf {
        let m = self.call("Page.getLayoutMetrics", json!({})).await;
        let size = &m["cssContentSize"];
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true,
                       "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}}),
            )
            .await;
        use base64::Engine;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("base64 PNG");
        let path = artifacts_dir().join(name);
        std::fs::write(&path, png).expect("write the screenshot");
        path
    }

    /// Closes Chromium and waits for it to exit.
    pub async fn close(mut self) {
        let id = self.next_id + 1;
        let msg = json!({"id": id, "method": "Browser.close", "params": {}});
        let _ = self.ws.send(Message::text(msg.to_string())).await;
        let _ = tokio::time::timeout(CALL_TIMEOUT, self.child.wait()).await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Chromium's renderers and zygote are in the group it leads.
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn keep(buf: &Mutex<VecDeque<String>>, line: &str) {
    let mut b = buf.lock().unwrap_or_else(|p| p.into_inner());
    if b.len() == 40 {
        b.pop_front();
    }
    b.push_back(line.to_string());
}

fn tail(buf: &Mutex<VecDeque<String>>) -> String {
    let b = buf.lock().unwrap_or_else(|p| p.into_inner());
    b.iter().cloned().collect::<Vec<_>>().join("\n")
}
