//! greenlight patch: a per-connection budget for frames that make the server
//! work without asking for anything (PING, SETTINGS, PRIORITY, GOAWAY, and
//! WINDOW_UPDATE while no stream is open). Without it a peer can send
//! millions of PINGs or SETTINGS a second and each one is answered
//! (CVE-2019-9512 / CVE-2019-9515 class). Past the budget the connection gets
//! GOAWAY ENHANCE_YOUR_CALM, as the crate already does for reset floods.
//!
//! A token bucket: `burst` tokens to start, refilled at `per_second`, plus one
//! token for each HEADERS or DATA frame this side has sent (real work earns
//! room for the control traffic that goes with it, e.g. a gRPC client's
//! bandwidth-probing PING per round trip while it downloads).

use std::time::Instant;

use crate::frame::Frame;

/// One token in millionths, so that sub-millisecond refills are not lost.
const TOKEN: u64 = 1_000_000;

#[derive(Debug)]
pub(crate) struct ControlFrameBudget {
    burst: u64,
    per_second: u64,
    /// Tokens left, in millionths.
    tokens: u64,
    last_refill: Instant,
    /// The codec's count of HEADERS and DATA frames sent, when last looked at.
    work_seen: u64,
}

impl ControlFrameBudget {
    pub(crate) fn new(burst: u32, per_second: u32) -> Self {
        let burst = u64::from(burst.max(1)) * TOKEN;
        ControlFrameBudget {
            burst,
            per_second: u64::from(per_second),
            tokens: burst,
            last_refill: Instant::now(),
            work_seen: 0,
        }
    }

    /// Whether `frame` is one the budget counts. A WINDOW_UPDATE counts only
    /// while no stream is open (`has_streams` is asked only for those):
    /// while data flows, clients send them in proportion to what they
    /// receive, and the credit for sent DATA would not always cover them.
    pub(crate) fn counts<B>(frame: &Frame<B>, has_streams: impl FnOnce() -> bool) -> bool {
        match frame {
            Frame::Ping(_) | Frame::Settings(_) | Frame::Priority(_) | Frame::GoAway(_) => true,
            Frame::WindowUpdate(_) => !has_streams(),
            _ => false,
        }
    }

    /// Takes one token; false when none is left. `work_sent` is the codec's
    /// running count of HEADERS and DATA frames sent.
    pub(crate) fn spend(&mut self, work_sent: u64) -> bool {
        let earned = work_sent.saturating_sub(self.work_seen);
        self.work_seen = work_sent;
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.last_refill);
        self.last_refill = now;
        let refill = (elapsed.as_micros() as u64).saturating_mul(self.per_second);
        self.tokens = self
            .tokens
            .saturating_add(refill)
            .saturating_add(earned.saturating_mul(TOKEN))
            .min(self.burst);
        if self.tokens < TOKEN {
            return false;
        }
        self.tokens -= TOKEN;
        true
    }
}

