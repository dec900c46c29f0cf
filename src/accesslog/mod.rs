//! The access log: one line per request, written off the request path.
//!
//! Owns: [`AccessLog`] (the handle requests log through), its destination and
//! format choices, and the dedicated writer thread (see `writer`). Must not
//! touch: signals (the caller wires SIGUSR1 to [`AccessLog::reopen`]), metrics,
//! the process logger's configuration, or anything in the request context.
//!
//! Data flow: the proxy's `logging` hook builds an [`Entry`] and calls
//! [`AccessLog::log`], which only moves it into a bounded channel
//! ([`DEFAULT_CAPACITY`] entries) with `try_send` — no lock held across I/O,
//! no formatting, no syscall. If the channel is full the entry is dropped and
//! counted ([`AccessLog::dropped`]); the writer thread warns about drops at
//! most once a minute. The writer formats (`format`: nginx `combined` or JSON)
//! into a `BufWriter` and flushes when the channel is momentarily empty or at
//! least every 100 ms. [`AccessLog::reopen`] only sets a flag and wakes the
//! writer (an atomic store plus a `try_send`), so it is safe from any task.
//! Dropping the last handle lets the writer drain the channel, flush, and
//! exit; the drop waits for that.

mod entry;
mod format;
mod writer;

pub use entry::{Entry, WebSocketStats, request_id, request_id_value};

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::thread::JoinHandle;
use writer::{Msg, Shared, Sink};

/// Entries the channel holds before new ones are dropped.
pub const DEFAULT_CAPACITY: usize = 64 * 1024;

/// Where the lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogDest {
    /// Standard output.
    Stdout,
    /// A file, appended to and created with mode 0640; reopened on
    /// [`AccessLog::reopen`] (logrotate's move-then-signal convention).
    File(PathBuf),
}

/// How a line looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// nginx's `combined` format, time in UTC, nginx's escaping.
    Combined,
    /// One JSON object per line with every [`Entry`] field.
    Json,
}

/// Starting the access log failed.
#[derive(Debug, thiserror::Error)]
pub enum AccessLogError {
    /// The file could not be opened for appending.
    #[error("cannot open access log {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The writer thread could not be started.
    #[error("cannot start the access log writer thread: {0}")]
    Spawn(#[source] io::Error),
}

/// A running access log. Share it as `Arc<AccessLog>`; every method takes
/// `&self` and none blocks.
#[derive(Debug)]
pub struct AccessLog {
    tx: Option<SyncSender<Msg>>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl AccessLog {
    /// Opens `dest` (a file is opened here, so a bad path fails at start) and
    /// starts the writer thread, with a [`DEFAULT_CAPACITY`]-entry channel.
    ///
    /// # Errors
    /// [`AccessLogError::Open`] if the file cannot be opened for appending,
    /// [`AccessLogError::Spawn`] if the thread cannot be started.
    pub fn new(dest: LogDest, format: LogFormat) -> Result<AccessLog, AccessLogError> {
        AccessLog::with_capacity(dest, format, DEFAULT_CAPACITY)
    }

    /// As [`AccessLog::new`] with a channel of `capacity` entries (at least 1).
    ///
    /// # Errors
    /// As [`AccessLog::new`].
    pub fn with_capacity(
        dest: LogDest,
        format: LogFormat,
        capacity: usize,
    ) -> Result<AccessLog, AccessLogError> {
        let sink = match dest {
            LogDest::Stdout => Sink::stdout(),
            LogDest::File(path) => match writer::open_append(&path) {
                Ok(file) => Sink::file(file, path),
                Err(source) => return Err(AccessLogError::Open { path, source }),
            },
        };
        AccessLog::start(sink, format, capacity)
    }

    fn start(sink: Sink, format: LogFormat, capacity: usize) -> Result<AccessLog, AccessLogError> {
        let (tx, rx) = mpsc::sync_channel(capacity.max(1));
        let shared = Arc::new(Shared::default());
        let for_writer = shared.clone();
        let thread = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || writer::run(rx, sink, format, for_writer))
            .map_err(AccessLogError::Spawn)?;
        Ok(AccessLog {
            tx: Some(tx),
            shared,
            thread: Some(thread),
        })
    }

    /// Queues one line. Never blocks and does no I/O: if the writer is behind
    /// and the channel is full, the entry is dropped and counted.
    pub fn log(&self, entry: Entry) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(Msg::Line(Box::new(entry))) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Asks the writer to reopen the file at its path (after logrotate moved
    /// it); lines logged after this call go to the new file. A no-op for
    /// stdout. Only an atomic store and a non-blocking send: safe to call
    /// from a signal-handling task.
    pub fn reopen(&self) {
        self.shared.reopen.store(true, Ordering::Release);
        if let Some(tx) = &self.tx {
            // A full channel means the writer is busy and will see the flag
            // before its next line anyway.
            let _ = tx.try_send(Msg::Wake);
        }
    }

    /// Entries dropped so far because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for AccessLog {
    /// Closes the channel and waits for the writer to write what is queued.
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests;
