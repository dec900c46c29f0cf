//! Rate and connection limits: nginx's `limit_req` (a leaky bucket per key,
//! with `burst`, `nodelay` and `delay=N`) and `limit_conn` (requests in
//! progress per key), over zones declared once at the top level
//! (`limit_req_zones:`, `limit_conn_zones:`) and referenced by sites and
//! routes.
//!
//! Memory is bounded whatever the number of distinct keys:
//!
//! - a [`RateZone`] is a fixed table of `size` bytes, set-associative
//!   ([`WAYS`] slots per set, the set chosen by a keyed hash of the key).
//!   Each slot holds the key's 64-bit fingerprint and nginx's bucket state
//!   (`excess` in thousandths of a request, the time it was last updated).
//!   A new key takes an empty slot of its set, else the slot whose bucket
//!   is the emptiest now (a bucket that has fully drained is the same as no
//!   entry, so nothing is lost). When every slot of the set still holds
//!   excess, the emptiest is evicted anyway: its key starts again with a
//!   full allowance. That is a choice: nginx answers the error status when
//!   its zone cannot store a new state, which lets a client rotating source
//!   addresses lock every newcomer out; here the rotation only costs the
//!   few keys sharing a set their accumulated excess, and the attacker's own
//!   requests stay limited like anyone's.
//! - a [`ConnZone`] counts requests in progress with `pingora-limits`'
//!   [`Inflight`] (a count-min sketch of 4 × 8192 counters, 256 KiB,
//!   whatever the number of keys). A sketch can only over-count (keys that
//!   share every counter), never under-count, so with very many keys in
//!   progress at once a key may be refused early, never admitted beyond its
//!   limit. Each admitted request holds an RAII [`ConnGuard`] that gives
//!   its count back when dropped, whatever ended the request.
//!
//! Zones live in [`Zones`] inside the config; a reload keeps the state of
//! every zone whose definition did not change ([`Zones::keep_state_of`]).

use super::template::Template;
use super::vars::VarCx;
use pingora_limits::inflight::Inflight;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Slots per set of a [`RateZone`] table.
pub const WAYS: usize = 8;

/// What a request is counted by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LimitKey {
    /// The real client IP (`$remote_addr`, `$binary_remote_addr`): hashed
    /// as an address, nothing rendered.
    ClientIp,
    /// Any template, rendered per request; an empty value is not counted
    /// (as in nginx).
    Template(Template),
}

impl LimitKey {
    /// The key's fingerprint for this request under `hasher`; `None` when
    /// the key is empty (the request is not limited by this zone).
    fn fingerprint(&self, cx: &VarCx<'_>, hasher: &std::hash::RandomState) -> Option<u64> {
        match self {
            LimitKey::ClientIp => Some(hasher.hash_one(cx.client_ip?)),
            LimitKey::Template(t) => {
                let v = t.render(cx);
                (!v.is_empty()).then(|| hasher.hash_one(v.as_str()))
            }
        }
    }

    /// Whether a render needs the connection's variables.
    pub fn needs_connection(&self) -> bool {
        match self {
            LimitKey::ClientIp => true,
            LimitKey::Template(t) => t.needs_connection(),
        }
    }
}

/// What defines a rate zone: two equal definitions share their state
/// across a reload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateDef {
    /// The zone's name.
    pub name: String,
    /// The key as written.
    pub key_text: String,
    /// Thousandths of a request per second (nginx's unit: `10r/s` = 10000,
    /// `30r/m` = 500).
    pub rate: u64,
    /// Table size in bytes.
    pub size: usize,
}

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    /// The key's fingerprint; 0 = empty.
    fp: u64,
    /// Milliseconds since the zone's epoch at the last accepted request.
    last: u64,
    /// Excess in thousandths of a request (nginx's `excess`).
    excess: u64,
}

type Set = [Slot; WAYS];

/// A `limit_req_zones` entry: its key, its rate and a bounded table of
/// buckets.
#[derive(Debug)]
pub struct RateZone {
    /// Definition (name, key, rate, size).
    pub def: RateDef,
    /// What requests are counted by.
    pub key: LimitKey,
    hasher: std::hash::RandomState,
    epoch: Instant,
    sets: Box<[Mutex<Set>]>,
}

/// How many bytes one set of slots takes (the unit of `size`).
pub const SET_BYTES: usize = std::mem::size_of::<Mutex<Set>>();

impl RateZone {
    /// A zone with an empty table of about `def.size` bytes (one set at
    /// least). The table is zeroed memory: pages are only touched as keys
    /// arrive.
    pub fn new(def: RateDef, key: LimitKey) -> RateZone {
        let n = (def.size / SET_BYTES).max(1);
        RateZone {
            sets: (0..n).map(|_| Mutex::new(Set::default())).collect(),
            def,
            key,
            hasher: std::hash::RandomState::new(),
            epoch: Instant::now(),
        }
    }

    /// How many keys the table holds at most.
    pub fn capacity(&self) -> usize {
        self.sets.len() * WAYS
    }

    /// How many keys the table holds now (walks the table: tests and
    /// the admin view, not the request path).
    pub fn len(&self) -> usize {
        self.sets
            .iter()
            .map(|s| lock(s).iter().filter(|x| x.fp != 0).count())
            .sum()
    }

    /// Whether the table holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn now_ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// The excess of `fp`'s bucket with this request counted, if it is at
    /// most `burst` (thousandths); `None` = refused. With `commit` the new
    /// state is stored (a refused request changes nothing, as in nginx).
    /// nginx's algorithm: `excess = max(excess - rate × elapsed, 0) + 1`,
    /// a new key starting at 0.
    pub fn account(&self, fp: u64, now: Instant, burst: u64, commit: bool) -> Option<u64> {
        let fp = fp | 1; // 0 marks an empty slot
        let now = self.now_ms(now);
        let set = &self.sets[(fp >> 32) as usize % self.sets.len()];
        let mut set = lock(set);
        let drained = |s: &Slot| {
            s.excess
                .saturating_sub(self.def.rate * now.saturating_sub(s.last) / 1000)
        };
        if let Some(slot) = set.iter_mut().find(|s| s.fp == fp) {
            let excess = drained(slot) + 1000;
            if excess > burst {
                return None;
            }
            if commit {
                slot.excess = excess;
                slot.last = now;
            }
            return Some(excess);
        }
        if commit {
            // An empty slot, else the emptiest bucket (the oldest of equals).
            let victim = set
                .iter_mut()
                .min_by_key(|s| (s.fp != 0, drained(s), s.last))
                .expect("a set has slots");
            *victim = Slot {
                fp,
                last: now,
                excess: 0,
            };
        }
        Some(0)
    }

    /// The fingerprint of this request's key, `None` for an empty key.
    pub fn fingerprint(&self, cx: &VarCx<'_>) -> Option<u64> {
        self.key.fingerprint(cx, &self.hasher)
    }
}

/// What defines a connection zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnDef {
    /// The zone's name.
    pub name: String,
    /// The key as written.
    pub key_text: String,
}

/// A `limit_conn_zones` entry: its key and a fixed-size sketch of the
/// requests in progress per key.
pub struct ConnZone {
    /// Definition (name, key).
    pub def: ConnDef,
    /// What requests are counted by.
    pub key: LimitKey,
    hasher: std::hash::RandomState,
    inflight: Inflight,
}

impl std::fmt::Debug for ConnZone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnZone").field("def", &self.def).finish()
    }
}

/// One request counted in a [`ConnZone`] until dropped.
pub struct ConnGuard(#[allow(dead_code)] pingora_limits::inflight::Guard);

impl ConnZone {
    /// An empty zone.
    pub fn new(def: ConnDef, key: LimitKey) -> ConnZone {
        ConnZone {
            def,
            key,
            hasher: std::hash::RandomState::new(),
            inflight: Inflight::new(),
        }
    }

    /// Counts one more request of `fp` if that keeps it at most `max`; the
    /// guard gives it back when dropped. `None` = refused (not counted).
    pub fn enter(&self, fp: u64, max: u32) -> Option<ConnGuard> {
        let (guard, n) = self.inflight.incr(fp, 1);
        (n <= max as isize).then_some(ConnGuard(guard))
    }

    /// The fingerprint of this request's key, `None` for an empty key.
    pub fn fingerprint(&self, cx: &VarCx<'_>) -> Option<u64> {
        self.key.fingerprint(cx, &self.hasher)
    }

    /// The estimated number of requests in progress for `fp`.
    pub fn count(&self, fp: u64) -> isize {
        self.inflight.incr(fp, 0).1
    }
}

/// Every zone of a config, by index (plans refer to them by index).
#[derive(Clone, Debug, Default)]
pub struct Zones {
    /// `limit_req_zones`, in file order.
    pub rate: Vec<Arc<RateZone>>,
    /// `limit_conn_zones`, in file order.
    pub conn: Vec<Arc<ConnZone>>,
}

impl Zones {
    /// Takes over the state of each zone of `old` whose definition is the
    /// same (name, key, rate, size): a reload does not reset the buckets
    /// and counts of clients. A changed zone starts empty.
    pub fn keep_state_of(&mut self, old: &Zones) {
        for z in &mut self.rate {
            if let Some(o) = old.rate.iter().find(|o| o.def == z.def) {
                *z = o.clone();
            }
        }
        for z in &mut self.conn {
            if let Some(o) = old.conn.iter().find(|o| o.def == z.def) {
                *z = o.clone();
            }
        }
    }
}

/// A route's `limit_req` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReqLimit {
    /// Index into [`Zones::rate`].
    pub zone: usize,
    /// Excess allowed, in thousandths of a request (`burst` × 1000).
    pub burst: u64,
    /// Excess served without delay, in thousandths (`delay=N` × 1000;
    /// `u64::MAX` for `nodelay`, 0 by default: every excess request waits).
    pub delay: u64,
    /// The answer to a refused request.
    pub status: u16,
}

/// A route's `limit_conn` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnLimit {
    /// Index into [`Zones::conn`].
    pub zone: usize,
    /// Requests in progress per key, at most.
    pub max: u32,
    /// The answer to a refused request.
    pub status: u16,
}

/// The limits step of a route: every entry applies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// `limit_req` entries.
    pub req: Box<[ReqLimit]>,
    /// `limit_conn` entries.
    pub conn: Box<[ConnLimit]>,
}

/// What the limits say about one request.
pub enum Verdict {
    /// Go on, after waiting `delay` (zero for most), holding `guards`
    /// until the request ends.
    Pass {
        /// How long nginx's leaky bucket holds the request back.
        delay: Duration,
        /// One per `limit_conn` entry that counted the request.
        guards: Vec<ConnGuard>,
    },
    /// Refused with this status.
    Refuse(u16),
}

impl Limits {
    /// Whether the step limits nothing.
    pub fn is_empty(&self) -> bool {
        self.req.is_empty() && self.conn.is_empty()
    }

    /// Whether a key needs the connection's variables.
    pub fn needs_connection(&self, zones: &Zones) -> bool {
        self.req
            .iter()
            .any(|r| zones.rate[r.zone].key.needs_connection())
            || self
                .conn
                .iter()
                .any(|c| zones.conn[c.zone].key.needs_connection())
    }

    /// Checks every entry, as nginx does: all `limit_req` entries are
    /// checked first and counted only if none refuses (the first refusal's
    /// status answers); the delay is the longest any entry asks for; then
    /// `limit_conn` entries, in order.
    pub fn check(&self, zones: &Zones, cx: &VarCx<'_>, now: Instant) -> Verdict {
        let mut fps = [None; 8];
        let mut many = Vec::new();
        for (i, r) in self.req.iter().enumerate() {
            let zone = &zones.rate[r.zone];
            let Some(fp) = zone.fingerprint(cx) else {
                continue;
            };
            if zone.account(fp, now, r.burst, false).is_none() {
                return Verdict::Refuse(r.status);
            }
            match fps.get_mut(i) {
                Some(f) => *f = Some(fp),
                None => many.push((i, fp)),
            }
        }
        let mut delay = Duration::ZERO;
        for (i, r) in self.req.iter().enumerate() {
            let fp = fps
                .get(i)
                .copied()
                .flatten()
                .or_else(|| many.iter().find(|(j, _)| *j == i).map(|(_, f)| *f));
            let Some(fp) = fp else { continue };
            let zone = &zones.rate[r.zone];
            // Refused only if another request took the room in between.
            let Some(excess) = zone.account(fp, now, r.burst, true) else {
                return Verdict::Refuse(r.status);
            };
            if excess > r.delay && zone.def.rate > 0 {
                let ms = (excess - r.delay) * 1000 / zone.def.rate;
                delay = delay.max(Duration::from_millis(ms));
            }
        }
        let mut guards = Vec::new();
        for c in self.conn.iter() {
            let zone = &zones.conn[c.zone];
            let Some(fp) = zone.fingerprint(cx) else {
                continue;
            };
            match zone.enter(fp, c.max) {
                Some(g) => guards.push(g),
                None => return Verdict::Refuse(c.status),
            }
        }
        Verdict::Pass { delay, guards }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding a set leaves plain numbers: still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(rate: u64, size: usize) -> RateZone {
        RateZone::new(
            RateDef {
                name: "z".into(),
                key_text: "$remote_addr".into(),
                rate,
                size,
            },
            LimitKey::ClientIp,
        )
    }

    #[test]
    fn a_burst_lets_exactly_burst_plus_one_through() {
        let z = zone(1000, 1 << 16);
        let now = Instant::now();
        let passed = (0..10)
            .filter(|_| z.account(42, now, 3000, true).is_some())
            .count();
        assert_eq!(passed, 4, "burst 3: the first request and 3 in excess");
        assert!(z.account(7, now, 3000, true).is_some(), "another key");
        // A refused request did not add to the excess: one second later
        // (1 r/s) exactly one more fits.
        let later = now + Duration::from_secs(1);
        assert!(z.account(42, later, 3000, true).is_some());
        assert!(z.account(42, later, 3000, true).is_none());
    }

    #[test]
    fn a_check_without_commit_changes_nothing() {
        let z = zone(1000, 1 << 16);
        let now = Instant::now();
        for _ in 0..5 {
            assert_eq!(z.account(1, now, 0, false), Some(0));
        }
        assert!(z.is_empty());
        assert_eq!(z.account(1, now, 0, true), Some(0));
        assert_eq!(z.account(1, now, 0, false), None, "burst 0: one per second");
    }

    #[test]
    fn the_table_never_grows_past_its_size_and_evicts_the_emptiest_bucket() {
        let z = zone(1000, SET_BYTES); // one set
        assert_eq!(z.capacity(), WAYS);
        let now = Instant::now();
        // A client in excess, then many rotating keys at one request each.
        assert!(z.account(99, now, 5000, true).is_some());
        assert!(z.account(99, now, 5000, true).is_some());
        for k in 0..10_000u64 {
            assert!(z.account((k + 1000) << 1, now, 5000, true).is_some());
            assert!(z.len() <= WAYS);
        }
        assert_eq!(z.len(), WAYS);
        // The client with excess kept its bucket: newcomers (excess 0)
        // replaced each other.
        assert_eq!(z.account(99, now, 5000, false), Some(2000));
        let big = zone(1000, 100 * SET_BYTES);
        for k in 0..100_000u64 {
            big.account(k.wrapping_mul(0x9E37_79B9_7F4A_7C15), now, 0, true);
        }
        assert!(big.len() <= big.capacity() && big.capacity() == 100 * WAYS);
    }

    #[test]
    fn delay_follows_nginx() {
        let zones = Zones {
            rate: vec![Arc::new(zone(2000, 1 << 12))],
            conn: Vec::new(),
        };
        let limits = |delay| Limits {
            req: vec![ReqLimit {
                zone: 0,
                burst: 4000,
                delay,
                status: 429,
            }]
            .into(),
            conn: Box::new([]),
        };
        let req = pingora::http::RequestHeader::build("GET", b"/", None).expect("request");
        let cx = VarCx {
            client_ip: Some("192.0.2.1".parse().expect("ip")),
            ..VarCx::of_request(&req)
        };
        let now = Instant::now();
        let delays: Vec<Option<u64>> = (0..6)
            .map(|_| match limits(1000).check(&zones, &cx, now) {
                Verdict::Pass { delay, .. } => Some(delay.as_millis() as u64),
                Verdict::Refuse(s) => {
                    assert_eq!(s, 429);
                    None
                }
            })
            .collect();
        // 2 r/s, burst 4, delay=1: excess 0 and 1 go at once, then 500 ms
        // per request in excess beyond the first.
        assert_eq!(
            delays,
            [Some(0), Some(0), Some(500), Some(1000), Some(1500), None]
        );
    }

    #[test]
    fn connection_counts_come_back_when_guards_drop() {
        let z = ConnZone::new(
            ConnDef {
                name: "c".into(),
                key_text: "$remote_addr".into(),
            },
            LimitKey::ClientIp,
        );
        let a = z.enter(5, 2).expect("first");
        let b = z.enter(5, 2).expect("second");
        assert!(z.enter(5, 2).is_none(), "third refused");
        assert!(z.enter(6, 2).is_some(), "another key");
        drop(a);
        let c = z.enter(5, 2).expect("room again");
        assert_eq!(z.count(5), 2);
        drop((b, c));
        assert_eq!(z.count(5), 0);
    }

    #[test]
    fn a_reload_keeps_the_state_of_unchanged_zones_only() {
        let old = Zones {
            rate: vec![Arc::new(zone(1000, 4096)), Arc::new(zone(5, 4096))],
            conn: Vec::new(),
        };
        let mut next = Zones {
            rate: vec![Arc::new(zone(1000, 4096)), Arc::new(zone(6, 4096))],
            conn: Vec::new(),
        };
        next.keep_state_of(&old);
        assert!(Arc::ptr_eq(&next.rate[0], &old.rate[0]));
        assert!(!Arc::ptr_eq(&next.rate[1], &old.rate[1]), "rate changed");
    }
}
