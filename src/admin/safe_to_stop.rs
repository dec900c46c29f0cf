//! The one "safe to stop" rule.
//!
//! `greenlight switch --wait` applies it to the pool it waits for, as read
//! from `GET /api/upstreams`; the admin API applies it to every pool it lists
//! and publishes the answer as the pool's `safe_to_stop` (the dashboard's
//! light). Both read the same JSON through [`verdict`], so the light turns
//! green exactly when `switch --wait` returns — there is no second copy of
//! the rule to drift.

use serde_json::Value;

/// What one look at a pool says to someone waiting to stop it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing is left on the pool: its servers can be stopped.
    Safe(Because),
    /// Still draining (or in a state this build does not know): wait.
    Wait,
    /// The pool takes new requests again (someone switched back): stop
    /// waiting, and do not stop it.
    Active,
}

/// Why a pool is safe to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Because {
    /// The drain ended: nothing in flight, idle upstream connections closed.
    Drained,
    /// Never active since it was loaded: nothing was ever sent to it.
    Idle,
    /// A reload removed the pool and nothing holds it any more, so the API no
    /// longer lists it: no request is in flight on it and its drain (which
    /// closes the idle upstream connections) has ended.
    Removed,
}

impl Verdict {
    /// True for [`Verdict::Safe`].
    pub fn is_safe(self) -> bool {
        matches!(self, Verdict::Safe(_))
    }
}

/// The verdict for `pool`, one entry of a pool list of `GET /api/upstreams`
/// (`None`: the API no longer lists it).
pub fn verdict(pool: Option<&Value>) -> Verdict {
    let Some(p) = pool else {
        return Verdict::Safe(Because::Removed);
    };
    match p["state"].as_str() {
        Some("drained") => Verdict::Safe(Because::Drained),
        Some("idle") => Verdict::Safe(Because::Idle),
        Some("active") => Verdict::Active,
        _ => Verdict::Wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_a_pool_with_nothing_left_is_safe() {
        let v = |state: &str| verdict(Some(&json!({"name": "blue", "state": state})));
        assert_eq!(v("drained"), Verdict::Safe(Because::Drained));
        assert_eq!(v("idle"), Verdict::Safe(Because::Idle));
        assert_eq!(v("draining"), Verdict::Wait);
        assert_eq!(v("active"), Verdict::Active);
        assert_eq!(v("something new"), Verdict::Wait);
        assert_eq!(verdict(None), Verdict::Safe(Because::Removed));
        assert!(!Verdict::Wait.is_safe() && !Verdict::Active.is_safe());
    }
}
