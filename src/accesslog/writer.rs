//! The access log's writer thread: the only place that does access-log I/O.
//!
//! Owns: the destination (stdout or an append-mode file), its `BufWriter`, the
//! reopen on request, flushing, and the rate-limited warnings about dropped
//! entries and write errors. Must not touch: anything on the request path —
//! it only reads the channel and the shared atomics.
//! Data flow: `AccessLog::log` -> bounded channel -> [`run`] formats each
//! entry into a reused `String` and writes it to the `BufWriter`; it flushes
//! when the channel is momentarily empty and at least every [`TICK`] under
//! sustained load. `AccessLog::reopen` sets a flag (checked before every line
//! and every tick) and sends a wake-up; the file is then opened anew at the
//! same path, so lines after the reopen never go to the rotated file.

use super::format::write_line;
use super::{Entry, LogFormat};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

/// Longest time a written line may sit in the buffer under sustained load.
pub(super) const TICK: Duration = Duration::from_millis(100);

/// At most one warning per this long about drops or write errors.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// What goes through the channel.
pub(super) enum Msg {
    /// A line to write (boxed: the channel's slots stay small).
    Line(Box<Entry>),
    /// Nothing to write; look at the flags now.
    Wake,
}

/// State shared between the `AccessLog` handle and the writer.
#[derive(Debug, Default)]
pub(super) struct Shared {
    /// Entries dropped because the channel was full.
    pub dropped: AtomicU64,
    /// Set by `reopen`, cleared by the writer when it reopens.
    pub reopen: AtomicBool,
}

/// Opens `path` for appending, creating it with mode 0640 (before umask).
pub(super) fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

/// Where lines go.
pub(super) struct Sink {
    out: BufWriter<Box<dyn Write + Send>>,
    /// The file's path, for reopening; `None` for stdout (reopen is a no-op).
    path: Option<PathBuf>,
}

impl Sink {
    /// Standard output.
    pub fn stdout() -> Sink {
        Sink::new(Box::new(io::stdout()), None)
    }

    /// An already opened file at `path`.
    pub fn file(file: File, path: PathBuf) -> Sink {
        Sink::new(Box::new(file), Some(path))
    }

    /// Any writer (tests).
    pub fn new(w: Box<dyn Write + Send>, path: Option<PathBuf>) -> Sink {
        Sink {
            out: BufWriter::with_capacity(64 * 1024, w),
            path,
        }
    }
}

/// The writer loop's state.
struct Writer {
    sink: Sink,
    format: LogFormat,
    shared: Arc<Shared>,
    line: String,
    dirty: bool,
    last_tick: Instant,
    write_errors: u64,
    warned_errors: u64,
    warned_dropped: u64,
    last_warn: Option<Instant>,
}

impl Writer {
    fn write(&mut self, e: &Entry) {
        if self.shared.reopen.load(Ordering::Acquire) {
            self.reopen();
        }
        self.line.clear();
        write_line(&mut self.line, e, self.format);
        match self.sink.out.write_all(self.line.as_bytes()) {
            Ok(()) => self.dirty = true,
            Err(_) => self.write_errors += 1,
        }
    }

    fn flush(&mut self) {
        if self.dirty {
            self.dirty = false;
            if self.sink.out.flush().is_err() {
                self.write_errors += 1;
            }
        }
    }

    /// Flush, reopen if asked, warn if due.
    fn tick(&mut self) {
        self.flush();
        if self.shared.reopen.load(Ordering::Acquire) {
            self.reopen();
        }
        self.warn();
        self.last_tick = Instant::now();
    }

    fn reopen(&mut self) {
        self.shared.reopen.store(false, Ordering::Release);
        let Some(path) = self.sink.path.clone() else {
            return;
        };
        // Finish the old file first: buffered lines belong to it.
        self.dirty = true;
        self.flush();
        match open_append(&path) {
            Ok(file) => {
                self.sink = Sink::file(file, path);
                log::info!("access log: reopened {}", self.sink_name());
            }
            Err(e) => log::error!(
                "access log: cannot reopen {}: {e}; still writing to the old file",
                path.display()
            ),
        }
    }

    fn sink_name(&self) -> String {
        self.sink
            .path
            .as_deref()
            .map_or_else(|| "stdout".into(), |p| p.display().to_string())
    }

    fn warn(&mut self) {
        let dropped = self.shared.dropped.load(Ordering::Relaxed);
        let news = dropped > self.warned_dropped || self.write_errors > self.warned_errors;
        if !news || self.last_warn.is_some_and(|t| t.elapsed() < WARN_EVERY) {
            return;
        }
        if dropped > self.warned_dropped {
            log::warn!(
                "access log: {} entries dropped since the last warning ({dropped} in all): \
                 the writer cannot keep up with {}",
                dropped - self.warned_dropped,
                self.sink_name()
            );
        }
        if self.write_errors > self.warned_errors {
            log::warn!(
                "access log: {} failed write(s) to {}",
                self.write_errors - self.warned_errors,
                self.sink_name()
            );
        }
        self.warned_dropped = dropped;
        self.warned_errors = self.write_errors;
        self.last_warn = Some(Instant::now());
    }
}

/// The writer thread's body; returns when every sender is gone and the
/// channel is empty, after a last flush.
pub(super) fn run(rx: Receiver<Msg>, sink: Sink, format: LogFormat, shared: Arc<Shared>) {
    let mut w = Writer {
        sink,
        format,
        shared,
        line: String::with_capacity(512),
        dirty: false,
        last_tick: Instant::now(),
        write_errors: 0,
        warned_errors: 0,
        warned_dropped: 0,
        last_warn: None,
    };
    loop {
        let msg = match rx.try_recv() {
            Ok(m) => Some(m),
            Err(TryRecvError::Empty) => {
                w.tick();
                match rx.recv_timeout(TICK) {
                    Ok(m) => Some(m),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            Err(TryRecvError::Disconnected) => break,
        };
        if let Some(Msg::Line(e)) = msg {
            w.write(&e);
        }
        if w.last_tick.elapsed() >= TICK {
            w.tick();
        }
    }
    w.tick();
}
