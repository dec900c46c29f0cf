// Copyright 2026 Cloudflare, Inc.
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
// http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

//! greenlight patch: the keep-alive pool of idle upstream streams of a
//! [`TransportConnector`](super::TransportConnector), without a task per
//! idle connection.
//!
//! Pingora 0.9.1 wrapped each released stream in an `Arc<Mutex<_>>`, put it in
//! a `pingora_pool::ConnectionPool` (an LRU node with an `Arc<Notify>` and a
//! oneshot channel) and spawned an `idle_poll` task that read from it until it
//! was reused, evicted, closed by the server or timed out; the next request
//! then waited for that task to let go of the lock. That was a spawn, several
//! allocations and a task switch per proxied request.
//!
//! This pool keeps the idle streams themselves, the way nginx's upstream
//! keepalive cache and HAProxy's idle connection lists do, and checks them
//! where they are used:
//!
//! - taking a stream checks it without blocking (the reactor's readiness, a
//!   read only when it says readable): a stream the server closed or sent
//!   bytes on is dropped and the next one (most recently used first) is tried;
//!   so is one idle for longer than its idle timeout;
//! - a sweeper task, running only while the pool holds anything, does the
//!   same check on every idle stream once per [`SWEEP_PERIOD`], so that
//!   sockets the servers closed (or that timed out) are let go even when no
//!   request comes;
//! - the pool holds at most `size` streams in all; releasing one more drops the
//!   least recently released one (Pingora's global LRU limit).
//!
//! Connections are keyed by the peer's `reuse_hash` as before.

use super::PoolCallback;
use crate::protocols::Stream;
use log::debug;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How often the sweeper checks the idle streams while there are any.
pub(crate) const SWEEP_PERIOD: Duration = Duration::from_secs(1);

/// One idle stream.
struct Idle {
    stream: Stream,
    /// Release order, for the global least-recently-released limit.
    seq: u64,
    /// When it became idle; only read when it expires or a callback wants
    /// the idle time, so only taken then (a clock read per request is not
    /// free).
    since: Option<Instant>,
    timeout: Option<Duration>,
}

impl Idle {
    fn expired(&self, now: &mut Option<Instant>) -> bool {
        match (self.timeout, self.since) {
            (Some(t), Some(since)) => {
                now.get_or_insert_with(Instant::now).duration_since(since) >= t
            }
            _ => false,
        }
    }
}

/// Keys are already `reuse_hash` values: hashing them again buys nothing.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Default)]
struct Inner {
    /// Per key, least recently released first.
    by_key: HashMap<u64, VecDeque<Idle>, BuildHasherDefault<KeyHasher>>,
    len: usize,
    seq: u64,
    /// A sweeper task is running.
    sweeping: bool,
}

/// The idle streams of one connector.
pub(crate) struct IdlePool {
    inner: Mutex<Inner>,
    size: usize,
    callback: Option<PoolCallback>,
    unexpected_data: Arc<AtomicU64>,
}

impl IdlePool {
    /// A pool of at most `size` idle streams in all.
    pub(crate) fn new(
        size: usize,
        callback: Option<PoolCallback>,
        unexpected_data: Arc<AtomicU64>,
    ) -> Self {
        IdlePool {
            inner: Mutex::default(),
            size,
            callback,
            unexpected_data,
        }
    }

    /// Keeps `stream` (already checked by the caller) under `key`.
    pub(crate) fn put(self: &Arc<Self>, key: u64, stream: Stream, timeout: Option<Duration>) {
        if self.size == 0 {
            return;
        }
        let since = (timeout.is_some() || self.callback.is_some()).then(Instant::now);
        let mut evicted = None;
        let start_sweeper = {
            let mut inner = self.inner.lock();
            inner.seq += 1;
            let seq = inner.seq;
            inner.by_key.entry(key).or_default().push_back(Idle {
                stream,
                seq,
                since,
                timeout,
            });
            inner.len += 1;
            if inner.len > self.size {
                evicted = inner.pop_oldest();
            }
            !std::mem::replace(&mut inner.sweeping, true)
        };
        if let Some(idle) = evicted {
            debug!("idle upstream pool full, evicting its oldest stream");
            if let (Some(callback), Some(since)) = (&self.callback, idle.since) {
                callback(since.elapsed());
            }
        }
        if start_sweeper {
            let pool = Arc::downgrade(self);
            pingora_runtime::current_handle().spawn(sweep(pool));
        }
    }

    /// Takes the most recently released usable stream under `key`;
    /// `usable` checks one without blocking. Unusable ones are dropped.
    pub(crate) fn take(
        &self,
        key: u64,
        mut usable: impl FnMut(&mut Stream) -> bool,
    ) -> Option<Stream> {
        let mut now = None;
        loop {
            let mut idle = {
                let mut inner = self.inner.lock();
                let idle = inner.by_key.get_mut(&key)?.pop_back()?;
                inner.len -= 1;
                idle
            };
            if !idle.expired(&mut now) && usable(&mut idle.stream) {
                return Some(idle.stream);
            }
            debug!("idle upstream stream closed, broken or timed out: dropped");
        }
    }

    /// Drops the idle streams that are closed, have unexpected data or timed
    /// out; returns false (and stops being `sweeping`) once the pool is empty.
    fn sweep_once(&self) -> bool {
        let mut now = None;
        let mut dropped = Vec::new();
        let unexpected_data = &self.unexpected_data;
        let mut inner = self.inner.lock();
        inner.by_key.retain(|_, idle| {
            let mut i = 0;
            while i < idle.len() {
                let keep = !idle[i].expired(&mut now)
                    && super::test_reusable_stream(&mut idle[i].stream, unexpected_data);
                if keep {
                    i += 1;
                } else if let Some(gone) = idle.remove(i) {
                    dropped.push(gone);
                }
            }
            !idle.is_empty()
        });
        inner.len -= dropped.len();
        let busy = inner.len > 0;
        if !busy {
            inner.sweeping = false;
        }
        drop(inner);
        // Dropped outside the lock: closing a TLS stream does some work.
        drop(dropped);
        busy
    }

    /// Streams held (tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().len
    }
}

impl Inner {
    /// Removes the least recently released stream of all keys.
    fn pop_oldest(&mut self) -> Option<Idle> {
        let key = self
            .by_key
            .iter()
            .filter_map(|(k, q)| q.front().map(|i| (i.seq, *k)))
            .min()?
            .1;
        let idle = self.by_key.get_mut(&key)?.pop_front()?;
        self.len -= 1;
        Some(idle)
    }
}

/// The sweeper: runs while the pool holds streams and the pool exists.
async fn sweep(pool: Weak<IdlePool>) {
    loop {
        pingora_timeout::sleep(SWEEP_PERIOD).await;
        match pool.upgrade() {
            Some(pool) if pool.sweep_once() => {}
            _ => return,
        }
    }
}
