//! Tests of the access log as a whole: files, reopen, back-pressure.
//! (Line formats are tested in `format`, request ids in `entry`.)

use super::*;
use std::io::Write;
use std::path::Path;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

fn entry(path: &str) -> Entry {
    Entry {
        time: SystemTime::now(),
        method: "GET".into(),
        path: path.into(),
        status: 200,
        request_id: request_id(),
        ..Entry::default()
    }
}

/// Polls `cond` until it holds or 10 s pass.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

#[test]
fn a_file_receives_lines_with_mode_0640_or_stricter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("access.log");
    let log = AccessLog::new(LogDest::File(path.clone()), LogFormat::Combined).expect("open");
    log.log(entry("/one"));
    log.log(entry("/two"));
    wait_for("two lines", || read(&path).lines().count() == 2);
    let text = read(&path);
    assert!(text.contains("\"GET /one HTTP/1.1\" 200 0"), "{text}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path)
        .expect("metadata")
        .permissions()
        .mode();
    assert_eq!(mode & !0o640 & 0o777, 0, "mode {mode:o}");
    drop(log);
    assert_eq!(read(&path).lines().count(), 2);
}

#[test]
fn reopen_after_rename_writes_to_a_fresh_file_at_the_same_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("access.log");
    let rotated = dir.path().join("access.log.1");
    let log = AccessLog::new(LogDest::File(path.clone()), LogFormat::Json).expect("open");
    log.log(entry("/before"));
    wait_for("the first line", || read(&path).contains("/before"));
    std::fs::rename(&path, &rotated).expect("rename");
    log.reopen();
    log.log(entry("/after"));
    wait_for("a new file with the second line", || {
        read(&path).contains("/after")
    });
    drop(log);
    let old = read(&rotated);
    let new = read(&path);
    assert!(old.contains("/before") && !old.contains("/after"), "{old}");
    assert_eq!(new.lines().count(), 1, "{new}");
    let v: serde_json::Value = serde_json::from_str(new.trim_end()).expect("json");
    assert_eq!(v["path"], "/after");
}

#[test]
fn a_missing_directory_fails_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("no/such/dir/access.log");
    let err = AccessLog::new(LogDest::File(path), LogFormat::Combined).expect_err("must fail");
    assert!(matches!(err, AccessLogError::Open { .. }), "{err}");
}

/// A sink whose writes block until released, counting the lines it got.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<GateState>, Condvar)>);

#[derive(Default)]
struct GateState {
    open: bool,
    blocked: bool,
    lines: usize,
}

impl Gate {
    fn state(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.0.0.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn release(&self) {
        self.state().open = true;
        self.0.1.notify_all();
    }
}

impl Write for Gate {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let (lock, cv) = &*self.0;
        let mut s = lock.lock().unwrap_or_else(|p| p.into_inner());
        s.blocked = true;
        cv.notify_all();
        while !s.open {
            s = cv.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        s.lines += buf.iter().filter(|b| **b == b'\n').count();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_stalled_writer_makes_log_drop_instead_of_block() {
    let gate = Gate::default();
    let log = AccessLog::start(
        Sink::new(Box::new(gate.clone()), None),
        LogFormat::Combined,
        DEFAULT_CAPACITY,
    )
    .expect("start");
    // The first line is flushed as soon as the channel is empty: the writer
    // is then stuck inside `write` and takes nothing more from the channel.
    log.log(entry("/first"));
    wait_for("the writer to block", || gate.state().blocked);
    let started = Instant::now();
    for i in 0..100_000u32 {
        log.log(entry(if i % 2 == 0 { "/a" } else { "/b" }));
    }
    let took = started.elapsed();
    assert_eq!(log.dropped(), 100_000 - DEFAULT_CAPACITY as u64);
    eprintln!("100k log() calls into a stalled writer took {took:?}");
    gate.release();
    drop(log);
    assert_eq!(gate.state().lines, 1 + DEFAULT_CAPACITY);
}

#[test]
fn reopen_on_stdout_is_harmless() {
    let log = AccessLog::with_capacity(LogDest::Stdout, LogFormat::Json, 4).expect("stdout");
    log.reopen();
    log.reopen();
    assert_eq!(log.dropped(), 0);
}
