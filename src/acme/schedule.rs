//! When to order: renewal time, backoff after failures, and whether a stored
//! certificate will do. Pure functions of their arguments (no clock reads, no
//! I/O), plus the small UTC date helpers the module needs (formatting for
//! messages, `Retry-After` parsing) so no date crate is pulled in.
//!
//! Data flow: the service asks [`needs_order`] at start, sleeps until
//! [`renew_at`] after a success and [`backoff`] after a failure; `http.rs`
//! parses `Retry-After` with [`parse_retry_after`].

use crate::timefmt::days_from_civil;
use crate::tls::CertInfo;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MINUTE: Duration = Duration::from_secs(60);

/// When to renew a certificate valid from `not_before` to `not_after`: when a
/// third of its lifetime remains, minus a jitter of up to 1% of the lifetime
/// derived from `jitter_seed` (the same seed always gives the same time, and
/// different sites spread out).
pub fn renew_at(not_before: SystemTime, not_after: SystemTime, jitter_seed: u64) -> SystemTime {
    let lifetime = not_after
        .duration_since(not_before)
        .unwrap_or(Duration::ZERO);
    let third_left = third_left(not_before, not_after);
    let max_jitter = lifetime.as_nanos() / 100;
    let jitter_nanos = if max_jitter == 0 {
        0
    } else {
        u128::from(mix(jitter_seed)) % (max_jitter + 1)
    };
    let jitter = Duration::from_nanos(u64::try_from(jitter_nanos).unwrap_or(u64::MAX));
    third_left.checked_sub(jitter).unwrap_or(third_left)
}

/// How long to wait after `failures` consecutive failed attempts: 1 min,
/// 10 min, 100 min, then 24 h; never less than a minute.
pub fn backoff(failures: u32) -> Duration {
    match failures {
        0 | 1 => MINUTE,
        2 => 10 * MINUTE,
        3 => 100 * MINUTE,
        _ => Duration::from_secs(24 * 3600),
    }
}

/// Whether a new order is needed: no stored certificate, a certificate for
/// other names (case, order and duplicates do not matter), or one with at
/// most a third of its lifetime left at `now` (the latest [`renew_at`]).
pub fn needs_order(stored: Option<&CertInfo>, names: &[String], now: SystemTime) -> bool {
    let Some(info) = stored else {
        return true;
    };
    if name_set(&info.dns_names) != name_set(names) {
        return true;
    }
    now >= third_left(info.not_before, info.not_after)
}

/// The moment a third of the lifetime remains (the latest renewal time).
fn third_left(not_before: SystemTime, not_after: SystemTime) -> SystemTime {
    let lifetime = not_after
        .duration_since(not_before)
        .unwrap_or(Duration::ZERO);
    not_after.checked_sub(lifetime / 3).unwrap_or(not_before)
}

/// Names lowercased, without trailing dots, sorted and deduplicated.
pub(crate) fn name_set(names: &[String]) -> Vec<String> {
    let mut v: Vec<String> = names
        .iter()
        .map(|n| n.trim().trim_end_matches('.').to_ascii_lowercase())
        .collect();
    v.sort();
    v.dedup();
    v
}

/// A stable seed for a site's jitter (FNV-1a of its name).
pub(crate) fn seed_for(site: &str) -> u64 {
    site.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// SplitMix64 finalizer: spreads close seeds over the whole range.
fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A UTC time like `2026-11-25 16:54:03 UTC`.
pub(crate) fn fmt_utc(t: SystemTime) -> String {
    crate::timefmt::fmt_utc(t)
}

/// A `Retry-After` value: delay-seconds or an IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), relative to `now`.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<SystemTime> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        // Cap absurd values (a year) so arithmetic cannot overflow.
        return now.checked_add(Duration::from_secs(secs.min(365 * 86_400)));
    }
    parse_imf_fixdate(value)
}

fn parse_imf_fixdate(s: &str) -> Option<SystemTime> {
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    let rest = s.split_once(", ")?.1;
    let parts: Vec<&str> = rest.split(' ').collect();
    if parts.len() != 5 || parts[4] != "GMT" {
        return None;
    }
    let day: u32 = parts[0].parse().ok()?;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = u32::try_from(MONTHS.iter().position(|m| *m == parts[1])? + 1).ok()?;
    let year: i64 = parts[2].parse().ok()?;
    if !(1970..=9999).contains(&year) {
        return None;
    }
    let hms: Vec<u64> = parts[3]
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    if hms.len() != 3 || hms[0] > 23 || hms[1] > 59 || hms[2] > 60 || !(1..=31).contains(&day) {
        return None;
    }
    let days = u64::try_from(days_from_civil(year, month, day)).ok()?;
    let secs = days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2];
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn info(names: &[&str], nb: SystemTime, na: SystemTime) -> CertInfo {
        CertInfo {
            dns_names: names.iter().map(|s| s.to_string()).collect(),
            issuer: "CN=test".into(),
            serial: "01".into(),
            not_before: nb,
            not_after: na,
        }
    }

    #[test]
    fn renewal_is_at_two_thirds_minus_at_most_one_percent() {
        let nb = t(1_700_000_000);
        let na = nb + 90 * DAY;
        let latest = nb + 60 * DAY;
        let earliest = latest - (90 * DAY) / 100;
        for seed in 0..500 {
            let at = renew_at(nb, na, seed);
            assert!(at <= latest && at >= earliest, "seed {seed}: {at:?}");
        }
        assert_eq!(renew_at(nb, na, 42), renew_at(nb, na, 42), "deterministic");
        assert_ne!(renew_at(nb, na, 1), renew_at(nb, na, 2), "seeds spread");
    }

    #[test]
    fn renewal_of_degenerate_certificates_does_not_panic() {
        let nb = t(1_700_000_000);
        assert_eq!(renew_at(nb, nb, 7), nb, "zero lifetime");
        assert_eq!(renew_at(nb + DAY, nb, 7), nb, "not_after before not_before");
        assert_eq!(renew_at(UNIX_EPOCH, UNIX_EPOCH, u64::MAX), UNIX_EPOCH);
    }

    #[test]
    fn backoff_grows_then_caps_at_a_day() {
        assert_eq!(backoff(0), Duration::from_secs(60));
        assert_eq!(backoff(1), Duration::from_secs(60));
        assert_eq!(backoff(2), Duration::from_secs(600));
        assert_eq!(backoff(3), Duration::from_secs(6000));
        assert_eq!(backoff(4), DAY);
        assert_eq!(backoff(u32::MAX), DAY);
    }

    #[test]
    fn an_order_is_needed_when_missing_renamed_or_due() {
        let nb = t(1_700_000_000);
        let na = nb + 90 * DAY;
        let names = vec!["b.test".to_string(), "A.test".to_string()];
        let c = info(&["a.test", "b.test"], nb, na);
        assert!(needs_order(None, &names, nb));
        assert!(
            !needs_order(Some(&c), &names, nb + DAY),
            "fresh, same names"
        );
        let other = vec!["a.test".to_string()];
        assert!(needs_order(Some(&c), &other, nb + DAY), "names differ");
        assert!(!needs_order(Some(&c), &names, nb + 59 * DAY));
        assert!(needs_order(Some(&c), &names, nb + 60 * DAY), "a third left");
        assert!(needs_order(Some(&c), &names, na + DAY), "expired");
    }

    #[test]
    fn dates_format_and_parse_in_utc() {
        assert_eq!(fmt_utc(UNIX_EPOCH), "1970-01-01 00:00:00 UTC");
        assert_eq!(fmt_utc(t(1_764_089_643)), "2025-11-25 16:54:03 UTC");
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", t(0)),
            Some(t(784_111_777))
        );
        assert_eq!(parse_retry_after(" 120 ", t(1000)), Some(t(1120)));
        assert_eq!(parse_retry_after("soon", t(0)), None);
        assert_eq!(
            parse_retry_after("Sun, 06 Foo 1994 08:49:37 GMT", t(0)),
            None
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 28:49:37 GMT", t(0)),
            None
        );
    }
}
