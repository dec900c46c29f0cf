//! Giving memory back to the system after a burst of client connections.
//!
//! glibc's allocator keeps what the worker threads free in its arenas for
//! reuse and returns only the free top of each heap to the system; freed
//! blocks in the middle stay resident. After thousands of connections close
//! (idle WebSockets, slow readers) most of their memory is free but the
//! process RSS stays where the peak left it — about 88 MB above the start
//! after 9,000 WebSockets in the issue #12 audit. `malloc_trim(0)` hands the
//! free pages of every arena back (glibc ≥ 2.8 `madvise`s them); nothing that
//! is allocated moves.
//!
//! [`MemoryTrimService`] is the background service that calls it: every
//! [`TRIM_INTERVAL`] it compares the client connections open now with the
//! most that were open at once since its last look (a
//! [`ConnectionWatermark`], so a burst between two looks counts), and trims
//! when at least [`TRIM_AFTER_ENDED`] fewer are open — connections ended, so
//! there is memory to return. With nothing closing it never trims; under
//! churn, at most once an interval. It touches nothing but the allocator.
//!
//! This module is one of the crate's two exceptions to `unsafe_code` (denied in
//! `Cargo.toml`; the other is the SIGHUP constructor in `main.rs`): the single
//! FFI call to glibc. On other targets (musl,
//! macOS) the service only waits for shutdown.

use crate::proxy::connections::ConnectionWatermark;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the service looks at the connection count: a burst's memory
/// is back within this (plus one trim's time) after its last connection ends.
pub const TRIM_INTERVAL: Duration = Duration::from_secs(10);

/// How many fewer connections than at the last look's peak make a trim
/// worth its walk through the heap (a few ms under load); fewer ended
/// connections leave too little to return.
pub const TRIM_AFTER_ENDED: usize = 16;

/// The background service that returns freed heap memory to the system.
pub struct MemoryTrimService {
    connections: Arc<ConnectionWatermark>,
}

impl MemoryTrimService {
    /// A trimmer that watches the client connections counted in
    /// `connections`.
    pub fn new(connections: Arc<ConnectionWatermark>) -> MemoryTrimService {
        MemoryTrimService { connections }
    }
}

#[async_trait]
impl BackgroundService for MemoryTrimService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if !TRIM_SUPPORTED {
            let _ = shutdown.changed().await;
            return;
        }
        let mut tick = tokio::time::interval(TRIM_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let (open, high) = self.connections.take();
            if high - open < TRIM_AFTER_ENDED {
                continue;
            }
            // The call walks every arena under its lock: keep it off the
            // proxy's worker threads.
            let started = Instant::now();
            let returned = tokio::task::spawn_blocking(trim).await.unwrap_or(false);
            log::debug!(
                "memory trim after client connections fell from {high} to {open}: {} in {:?}",
                if returned {
                    "memory returned"
                } else {
                    "nothing to return"
                },
                started.elapsed()
            );
        }
    }
}

/// Whether this build can trim (glibc only).
const TRIM_SUPPORTED: bool = cfg!(all(target_os = "linux", target_env = "gnu"));

/// Returns the free pages of glibc's arenas to the system; true when some
/// memory was returned.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim() -> bool {
    // SAFETY: malloc_trim takes a plain integer (0: keep no padding at the
    // top of the main heap), reads and writes only the allocator's own state
    // under the arenas' locks, and is MT-Safe per the glibc manual; no Rust
    // object refers to the pages it returns, which are free blocks.
    unsafe { libc::malloc_trim(0) != 0 }
}

/// Not glibc: nothing to call.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() -> bool {
    false
}
