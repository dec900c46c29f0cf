//! `greenlight status --watch`: the status, again every `--interval`, until
//! Ctrl-C (or `--count` frames) — what an operator keeps open during a
//! deploy to see the old pool drain.
//!
//! On a terminal each frame is drawn over the last one, like `watch(1)`: the
//! first clears the screen (`ESC[2J`), every frame starts at the top-left
//! (`ESC[H`), clears what is left of each line it writes (`ESC[K`) and what
//! is below it (`ESC[J`), so nothing flickers and a shorter frame leaves no
//! stale lines. A frame is cut to the terminal's size (lines to its width,
//! the last line saying how many rows did not fit), since one that scrolled
//! would push a copy of itself into the scrollback at every redraw. When stdout is not a terminal (a file, a pipe, `TERM=dumb`)
//! no escape code is written: frames follow one another, each under a
//! header line, or as one JSON document per line with `--json`, so a log or
//! `jq` reads them.
//!
//! SIGINT and SIGTERM end the wait between frames at once (a thread turns
//! them into a channel message) and the command exits with the last frame's
//! code, leaving the last frame on screen and the cursor below it. Errors
//! reaching the admin API are shown as a frame, and the next frame tries
//! again: a proxy that restarts mid-deploy does not end the watch.
//!
//! Owns: the loop, the frame layout and the terminal codes; the status
//! itself is [`crate::cli_admin::render_status`].

use crate::admin::client::AdminClient;
use crate::cli::AdminArgs;
use crate::config::validate::parse_duration;
use std::io::{IsTerminal, Write};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

/// `--interval` when not given.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);

/// The shortest `--interval`: the API is not to be polled in a busy loop.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// Clears the screen, cursor to the top-left (the first frame).
const CLEAR: &str = "\x1b[2J\x1b[H";
/// Cursor to the top-left (every later frame).
const HOME: &str = "\x1b[H";
/// Clears from the cursor to the end of the line.
const CLEAR_LINE: &str = "\x1b[K";
/// Clears from the cursor to the end of the screen.
const CLEAR_BELOW: &str = "\x1b[J";

/// How frames are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A terminal: each frame redrawn in place, cut to `(columns, rows)`
    /// when the size is known.
    Redraw(Option<(usize, usize)>),
    /// A file or pipe: frames one after another, no escape codes.
    Append,
}

impl Mode {
    /// [`Mode::Redraw`] when stdout is a terminal that understands ANSI
    /// codes (`TERM` is not `dumb`), else [`Mode::Append`]. Called per frame,
    /// so a resized terminal gets frames of its new size.
    pub fn detect() -> Mode {
        let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
        let stdout = std::io::stdout();
        if !stdout.is_terminal() || dumb {
            return Mode::Append;
        }
        let size = terminal_size::terminal_size_of(&stdout)
            .map(|(w, h)| (usize::from(w.0), usize::from(h.0)))
            .filter(|&(w, h)| w > 0 && h > 1);
        Mode::Redraw(size)
    }
}

/// One frame as written to stdout. `first` is whether it is the first one
/// (only that one clears the whole screen). `body` ends with a newline.
pub fn frame(mode: Mode, first: bool, header: &str, body: &str) -> String {
    let size = match mode {
        Mode::Append => return format!("{header}\n{body}\n"),
        Mode::Redraw(size) => size,
    };
    let mut lines: Vec<&str> = std::iter::once(header)
        .chain(["" /* gap */])
        .chain(body.lines())
        .collect();
    let mut cut = None;
    // The last row stays free: writing its newline would scroll.
    if let Some((_, rows)) = size
        && lines.len() > rows - 1
    {
        let keep = rows.saturating_sub(2);
        cut = Some(format!(
            "… {} more line(s) below: enlarge the terminal, or run without --watch",
            lines.len() - keep
        ));
        lines.truncate(keep);
    }
    let mut out = String::from(if first { CLEAR } else { HOME });
    for line in lines.iter().copied().chain(cut.as_deref()) {
        match size {
            // A line wider than the terminal would wrap onto the next row.
            Some((cols, _)) => out.extend(line.chars().take(cols)),
            None => out.push_str(line),
        }
        out.push_str(CLEAR_LINE);
        out.push('\n');
    }
    out.push_str(CLEAR_BELOW);
    out
}

/// `greenlight status --watch [--interval D] [--count N] [--json]`.
pub fn watch(args: &AdminArgs, json: bool, interval: Option<&str>, count: Option<u64>) -> i32 {
    let every = match interval.map(parse_duration) {
        None => DEFAULT_INTERVAL,
        Some(Some(d)) if d >= MIN_INTERVAL => d,
        Some(_) => {
            eprintln!(
                "greenlight: --interval takes a duration of at least {}ms, like 500ms or 2s",
                MIN_INTERVAL.as_millis()
            );
            return 1;
        }
    };
    let client = match crate::cli_admin::client(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("greenlight: {e}");
            return 1;
        }
    };
    let stop = match stop_signals() {
        Ok(rx) => rx,
        Err(e) => {
            eprintln!("greenlight: cannot catch Ctrl-C: {e}");
            return 1;
        }
    };
    let mut n: u64 = 0;
    loop {
        n += 1;
        let mode = Mode::detect();
        let (text, code) = status_text(&client, json, mode);
        let out = if json && mode == Mode::Append {
            // One JSON document per line, nothing else: `| jq` reads it.
            text
        } else {
            let header = format!(
                "greenlight status — every {} — {} — Ctrl-C to stop",
                human(every),
                crate::timefmt::fmt_utc(SystemTime::now())
            );
            frame(mode, n == 1, &header, &text)
        };
        let mut stdout = std::io::stdout().lock();
        if stdout
            .write_all(out.as_bytes())
            .and_then(|()| stdout.flush())
            .is_err()
        {
            // The reader went away (`| head`): nothing more to show.
            return code;
        }
        drop(stdout);
        if count.is_some_and(|c| n >= c) {
            return code;
        }
        match stop.recv_timeout(every) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => return code,
        }
    }
}

/// The status as text (tables, or JSON), and the exit code it stands for:
/// an unreachable or refusing API is a frame too, with code 1.
fn status_text(client: &AdminClient, json: bool, mode: Mode) -> (String, i32) {
    let unreachable = |msg: String| {
        let text = if json && mode == Mode::Append {
            format!("{}\n", serde_json::json!({ "error": msg }))
        } else {
            format!("greenlight: {msg}\n(trying again at the next frame)\n")
        };
        (text, 1)
    };
    match crate::cli_admin::status_body(client) {
        Ok((200, body)) if json && mode == Mode::Append => (format!("{body}\n"), 0),
        Ok((200, body)) if json => (
            format!(
                "{}\n",
                serde_json::to_string_pretty(&body).unwrap_or_default()
            ),
            0,
        ),
        Ok((200, body)) => (crate::cli_admin::render_status(&body), 0),
        Ok((status, body)) => unreachable(format!(
            "{} (HTTP {status})",
            body["error"].as_str().unwrap_or("request failed")
        )),
        Err(e) => unreachable(e.to_string()),
    }
}

/// A channel that receives a message when SIGINT or SIGTERM arrives.
fn stop_signals() -> std::io::Result<mpsc::Receiver<()>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("watch-signals".into())
        .spawn(move || {
            if signals.forever().next().is_some() {
                let _ = tx.send(());
            }
        })?;
    Ok(rx)
}

/// `2s`, `500ms`, `1.5s` for the header.
fn human(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminal_frame_redraws_in_place_and_a_file_frame_has_no_codes() {
        let body = "UPSTREAM  POOL\napp       blue\n";
        let first = frame(Mode::Redraw(None), true, "head", body);
        assert!(first.starts_with("\x1b[2J\x1b[H"), "{first:?}");
        assert_eq!(
            first,
            "\x1b[2J\x1b[Hhead\x1b[K\n\x1b[K\nUPSTREAM  POOL\x1b[K\napp       blue\x1b[K\n\x1b[J"
        );
        let next = frame(Mode::Redraw(Some((80, 24))), false, "head", body);
        assert!(next.starts_with("\x1b[Hhead") && next.ends_with("\x1b[J"));
        let plain = frame(Mode::Append, true, "head", body);
        assert_eq!(plain, "head\nUPSTREAM  POOL\napp       blue\n\n");
        assert!(!plain.contains('\x1b'));
    }

    #[test]
    fn a_frame_is_cut_to_the_terminal_so_redrawing_never_scrolls() {
        let body: String = (1..=30)
            .map(|i| format!("row {i} {}\n", "x".repeat(50)))
            .collect();
        let f = frame(Mode::Redraw(Some((20, 10))), false, "head", &body);
        let lines: Vec<&str> = f.split('\n').collect();
        // 9 rows written (the 10th stays free), then the clear-below code.
        assert_eq!(lines.len(), 10, "{f:?}");
        assert_eq!(lines[0], "\x1b[Hhead\x1b[K");
        assert_eq!(lines[2], "row 1 xxxxxxxxxxxxxx\x1b[K", "cut to 20 columns");
        assert_eq!(lines[7], "row 6 xxxxxxxxxxxxxx\x1b[K");
        assert!(lines[8].starts_with("… 24 more line(s) be"), "{f:?}");
        assert_eq!(lines[9], "\x1b[J");
        // A frame that fits is not touched.
        let small = frame(Mode::Redraw(Some((80, 24))), false, "head", "a\nb\n");
        assert_eq!(small, "\x1b[Hhead\x1b[K\n\x1b[K\na\x1b[K\nb\x1b[K\n\x1b[J");
    }

    #[test]
    fn intervals_read_as_people_write_them() {
        assert_eq!(human(Duration::from_secs(2)), "2s");
        assert_eq!(human(Duration::from_millis(500)), "500ms");
        assert_eq!(human(Duration::from_millis(1500)), "1.5s");
    }
}
