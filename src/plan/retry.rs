//! `retry_statuses`: the upstream answers that send a request on to the
//! next server of the pool instead of to the client (nginx
//! `proxy_next_upstream http_502 http_503 …`).
//!
//! Compiled into a bit set at load, so the check on each upstream answer is
//! one mask test. Only the statuses nginx can retry on are accepted; which
//! requests may be retried at all is decided in `proxy::retry`.

/// The statuses a route may retry on, in the order of the bits.
pub const RETRYABLE: [u16; 7] = [500, 502, 503, 504, 403, 404, 429];

/// A set of [`RETRYABLE`] statuses; empty by default (nginx's default
/// retries only failed connections, as greenlight always does).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetryStatuses(u8);

impl RetryStatuses {
    /// The set of `statuses`, or the first one that cannot be retried on.
    pub fn from_statuses(statuses: &[u16]) -> Result<RetryStatuses, u16> {
        let mut bits = 0u8;
        for s in statuses {
            let i = RETRYABLE.iter().position(|r| r == s).ok_or(*s)?;
            bits |= 1 << i;
        }
        Ok(RetryStatuses(bits))
    }

    /// True when an answer with `status` is retried.
    pub fn contains(self, status: u16) -> bool {
        RETRYABLE
            .iter()
            .position(|r| *r == status)
            .is_some_and(|i| self.0 & (1 << i) != 0)
    }

    /// True when no status is retried (the common case).
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The statuses in the set, in [`RETRYABLE`] order.
    pub fn statuses(self) -> Vec<u16> {
        RETRYABLE
            .iter()
            .enumerate()
            .filter(|(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, s)| *s)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_holds_exactly_its_statuses_and_refuses_others() {
        let s = RetryStatuses::from_statuses(&[502, 504, 429]).expect("retryable");
        assert!(s.contains(502) && s.contains(504) && s.contains(429));
        assert!(!s.contains(500) && !s.contains(503) && !s.contains(200));
        assert_eq!(s.statuses(), vec![502, 504, 429]);
        assert!(!s.is_empty());
        assert!(RetryStatuses::default().is_empty());
        assert!(!RetryStatuses::default().contains(502));
        assert_eq!(RetryStatuses::from_statuses(&[502, 501]), Err(501));
    }
}
