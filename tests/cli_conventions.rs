//! CLI conventions through the real binary: shell completions that a real
//! bash completes with, man pages in roff, `--help` examples, and
//! `status --watch` — frames one after another into a file, drawn in place
//! on a pseudo-terminal, stopped by `--count` or by Ctrl-C (SIGINT).

use crate::support::*;
use std::io::Read;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs bash's completion function for the words typed so far (the last one
/// being completed) and returns what it offers.
fn bash_complete(script: &std::path::Path, words: &[&str]) -> Vec<String> {
    let cword = words.len() - 1;
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let prog = format!(
        "source '{}'\nCOMP_WORDS=({})\nCOMP_CWORD={cword}\n_greenlight greenlight '{}' '{}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        script.display(),
        quoted.join(" "),
        words[cword],
        words[cword - 1],
    );
    let out = Command::new("bash")
        .args(["--noprofile", "--norc", "-c", &prog])
        .output()
        .expect("bash runs");
    assert!(out.status.success(), "bash: {}", stderr(&out));
    stdout(&out).lines().map(String::from).collect()
}

#[test]
fn bash_completes_subcommands_and_options_from_the_generated_script() {
    let out = run_cli(&["completions", "bash"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let dir = tempfile::tempdir().expect("tmp");
    let script = dir.path().join("greenlight.bash");
    std::fs::write(&script, &out.stdout).expect("write");
    let all = bash_complete(&script, &["greenlight", ""]);
    for sub in [
        "run",
        "check",
        "switch",
        "status",
        "reload",
        "import-nginx",
        "completions",
        "man",
    ] {
        assert!(all.iter().any(|w| w == sub), "{sub} not offered: {all:?}");
    }
    assert_eq!(bash_complete(&script, &["greenlight", "sw"]), ["switch"]);
    let opts = bash_complete(&script, &["greenlight", "status", "--"]);
    for o in ["--watch", "--interval", "--count", "--json", "--admin"] {
        assert!(opts.iter().any(|w| w == o), "{o} not offered: {opts:?}");
    }
    let shells = bash_complete(&script, &["greenlight", "completions", ""]);
    for sh in ["bash", "zsh", "fish"] {
        assert!(shells.iter().any(|w| w == sh), "{sh}: {shells:?}");
    }
    let zsh = stdout(&run_cli(&["completions", "zsh"]));
    assert!(zsh.starts_with("#compdef greenlight"), "{zsh}");
    let fish = stdout(&run_cli(&["completions", "fish"]));
    assert!(fish.contains("complete -c greenlight") && fish.contains("switch"));
    assert_eq!(run_cli(&["completions", "tcsh"]).status.code(), Some(2));
}

#[test]
fn man_pages_are_roff_with_every_command_and_the_examples() {
    let out = run_cli(&["man"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let page = stdout(&out);
    let th = page
        .lines()
        .find(|l| l.starts_with('.') && !l.starts_with(".ie") && !l.starts_with(".el"))
        .expect("a first request");
    assert!(th.starts_with(".TH greenlight 1 "), "{page}");
    for section in [".SH NAME", ".SH SYNOPSIS", ".SH SUBCOMMANDS", ".SH VERSION"] {
        assert!(page.contains(section), "{section} missing\n{page}");
    }
    for sub in ["switch", "status", "import\\-nginx", "completions", "man"] {
        assert!(
            page.contains(&format!("greenlight\\-{sub}(1)")),
            "{sub}\n{page}"
        );
    }

    let dir = tempfile::tempdir().expect("tmp");
    let out = run_cli(&["man", "--dir", &dir.path().display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 9, "{}", stdout(&out));
    let switch = std::fs::read_to_string(dir.path().join("greenlight-switch.1")).expect("page");
    assert!(switch.contains(".TH greenlight-switch 1"), "{switch}");
    // The examples are kept line for line (no-fill), before SEE ALSO.
    let ex = switch.find(".SH EXAMPLES").expect("EXAMPLES");
    assert!(switch[ex..].starts_with(".SH EXAMPLES\n.nf\n"), "{switch}");
    assert!(switch.contains("greenlight switch app green \\-\\-wait \\-\\-timeout 5m"));
    assert!(
        switch
            .find(".SH \"SEE ALSO\"\ngreenlight(1)")
            .is_some_and(|s| s > ex)
    );
    assert!(!switch.contains(".SH EXTRA"), "{switch}");
    let status = std::fs::read_to_string(dir.path().join("greenlight-status.1")).expect("page");
    assert!(status.contains("\\-\\-watch"), "{status}");
    let out = run_cli(&["man", "--dir", "/nonexistent/man1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot write /nonexistent/man1/"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn help_for_switch_and_status_ends_with_examples() {
    let switch = stdout(&run_cli(&["switch", "--help"]));
    let at = switch.find("\nExamples:\n").expect("examples");
    assert!(switch[at..].contains("greenlight switch app green --wait --timeout 5m"));
    let status = stdout(&run_cli(&["status", "--help"]));
    let at = status.find("\nExamples:\n").expect("examples");
    assert!(status[at..].contains("greenlight status --watch"));
    assert!(status.contains("--count <N>"), "{status}");
    // --interval and --count only go with --watch.
    assert_eq!(run_cli(&["status", "--count", "2"]).status.code(), Some(2));
    assert_eq!(
        run_cli(&["status", "--watch", "--count", "0"])
            .status
            .code(),
        Some(2)
    );
    let out = run_cli(&["status", "--watch", "--interval", "10ms"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--interval takes a duration of at least 100ms"));
}

async fn proxy_with_pools() -> (ProxyProcess, SocketAddr, HttpUpstream) {
    let blue = HttpUpstream::start("blue").await;
    let (p, _http, admin) = start_single_upstream(
        "app",
        &format!(
            "    active: blue\n    pools: {{blue: [\"127.0.0.1:{}\"], green: [\"127.0.0.1:{}\"]}}\n",
            blue.port(),
            blue.port()
        ),
    )
    .await;
    (p, admin, blue)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_watch_into_a_file_prints_plain_frames_and_stops_after_count() {
    let (_p, admin, _blue) = proxy_with_pools().await;
    let out = admin_cli(
        admin,
        &["status", "--watch", "--interval", "100ms", "--count", "3"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.contains('\x1b'), "escape codes in a file: {text:?}");
    let headers = text
        .lines()
        .filter(|l| l.starts_with("greenlight status — every 100ms — "))
        .count();
    assert_eq!(headers, 3, "{text}");
    assert_eq!(text.matches("UPSTREAM").count(), 3, "{text}");
    let pool_row = |t: &str, state: &str| {
        t.lines().any(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.get(..3) == Some(&["app", "blue", state][..])
        })
    };
    assert!(pool_row(&text, "active"), "{text}");

    // With --json: one JSON document per line, nothing else.
    let out = admin_cli(
        admin,
        &[
            "status",
            "--watch",
            "--json",
            "--interval",
            "100ms",
            "--count",
            "2",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines: Vec<String> = stdout(&out).lines().map(String::from).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
        assert_eq!(v["upstreams"][0]["name"], "app");
    }
}

#[test]
fn status_watch_keeps_going_while_the_proxy_is_unreachable() {
    let dead = DeadUpstream::new();
    let admin = dead.addr().to_string();
    let out = run_cli(&[
        "status",
        "--watch",
        "--interval",
        "100ms",
        "--count",
        "2",
        "--admin",
        &admin,
    ]);
    // Each frame says why; the exit code is the last frame's.
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(
        text.matches("trying again at the next frame").count(),
        2,
        "{text}"
    );
    assert!(text.contains(&admin), "{text}");
}

/// A child whose stdout is a pseudo-terminal; what it writes is collected
/// by a reader thread.
struct PtyChild {
    child: std::process::Child,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl PtyChild {
    fn spawn(args: &[&str]) -> PtyChild {
        let size = nix::pty::Winsize {
            ws_row: 60,
            ws_col: 200,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&size), None).expect("openpty");
        let child = Command::new(greenlight_bin())
            .args(args)
            .env("TERM", "xterm")
            .stdin(Stdio::null())
            .stdout(Stdio::from(pty.slave))
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let mut master = std::fs::File::from(pty.master);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with EIO once the child exits and the slave is closed.
            while let Ok(n @ 1..) = master.read(&mut buf) {
                sink.lock().expect("lock").extend_from_slice(&buf[..n]);
            }
        });
        PtyChild { child, seen }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().expect("lock")).into_owned()
    }

    /// Waits up to `limit` for the exit status; kills the child after that.
    fn wait(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        wait_until(deadline, || matches!(self.child.try_wait(), Ok(Some(_))));
        match self.child.try_wait() {
            Ok(Some(s)) => Some(s),
            _ => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                None
            }
        }
    }
}

impl Drop for PtyChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_watch_on_a_terminal_redraws_in_place_until_ctrl_c() {
    let (_p, admin, _blue) = proxy_with_pools().await;
    let admin = admin.to_string();
    let args = [
        "status",
        "--watch",
        "--interval",
        "100ms",
        "--admin",
        &admin,
    ];
    let mut watch = PtyChild::spawn(&args);
    // At least two frames: the first clears the screen, the next ones only
    // go home and overwrite.
    let frames = |t: &str| t.matches("greenlight status — every 100ms").count();
    let shown = tokio::task::block_in_place(|| {
        wait_until(deadline_in(Duration::from_secs(10)), || {
            frames(&watch.text()) >= 2
        })
    });
    assert!(shown, "fewer than two frames: {:?}", watch.text());
    let pid = nix::unistd::Pid::from_raw(watch.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let status = tokio::task::block_in_place(|| watch.wait(Duration::from_secs(5)));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "Ctrl-C ends the watch cleanly"
    );
    let text = watch.text();
    assert!(text.starts_with("\x1b[2J\x1b[H"), "{text:?}");
    assert_eq!(
        text.matches("\x1b[2J").count(),
        1,
        "one full clear: {text:?}"
    );
    assert!(text.matches("\x1b[H").count() >= 2, "{text:?}");
    // Every line of a frame ends by clearing what an older, longer line left.
    let row = text
        .split("\r\n")
        .find(|l| l.split_whitespace().take(3).eq(["app", "blue", "active"]))
        .expect("blue's row");
    assert!(row.ends_with("\x1b[K"), "{row:?}");
    assert!(text.trim_end().ends_with("\x1b[J"), "{text:?}");
}
