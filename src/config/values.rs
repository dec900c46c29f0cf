//! Scalar values of the config file: durations, sizes, status ranges, and
//! the "did you mean" suggestion. Pure functions (the `*_field` helpers also
//! report a bad value, positioned, and fall back to the default so that
//! validation goes on). Host patterns and route paths: `validate_match`.

use super::diag::Diagnostics;
use super::file::Scalar;
use super::validate::pos;
use serde_saphyr::Spanned;
use std::time::Duration;

/// A duration field: `default` when absent; a bad value is reported and the
/// default used, so validation goes on. Zero is refused unless `allow_zero`.
pub(super) fn duration_field(
    v: &Option<Spanned<Scalar>>,
    default: Duration,
    allow_zero: bool,
    ds: &mut Diagnostics,
) -> Duration {
    let Some(s) = v else { return default };
    match parse_duration(&s.value.0) {
        Some(d) if allow_zero || !d.is_zero() => d,
        _ => {
            let what = if allow_zero {
                "a duration"
            } else {
                "a duration above zero"
            };
            ds.error(
                pos(s),
                format!("'{}' is not {what}", s.value.0),
                "write a number with a unit: `500ms`, `30s`, `5m`, `1h`",
            );
            default
        }
    }
}

/// A whole-number field of at least `min`; see [`duration_field`].
pub(super) fn count_field(
    v: &Option<Spanned<Scalar>>,
    default: u32,
    min: u32,
    ds: &mut Diagnostics,
) -> u32 {
    let Some(s) = v else { return default };
    match s.value.0.trim().parse::<u32>() {
        Ok(n) if n >= min => n,
        _ => {
            ds.error(
                pos(s),
                format!("'{}' is not a whole number of at least {min}", s.value.0),
                "write a number like `3`",
            );
            default
        }
    }
}

/// An `on`/`off` switch (`true`/`false` too); see [`duration_field`].
pub(super) fn switch_field(
    v: &Option<Spanned<Scalar>>,
    default: bool,
    ds: &mut Diagnostics,
) -> bool {
    let Some(s) = v else { return default };
    match s.value.0.trim() {
        "on" | "true" => true,
        "off" | "false" => false,
        other => {
            ds.error(
                pos(s),
                format!("'{other}' is not `on` or `off`"),
                "write `on` or `off`",
            );
            default
        }
    }
}

/// A size field above zero; see [`duration_field`].
pub(super) fn size_field(
    v: &Option<Spanned<Scalar>>,
    default: usize,
    ds: &mut Diagnostics,
) -> usize {
    let Some(s) = v else { return default };
    match parse_size(&s.value.0) {
        Some(n) if n > 0 => n as usize,
        _ => {
            ds.error(
                pos(s),
                format!("'{}' is not a size above zero", s.value.0),
                "write bytes with an optional unit: `512`, `8k`, `1m`",
            );
            default
        }
    }
}

/// Parses `2xx`, `200`, or `200-399` into an inclusive range.
pub fn parse_status_range(s: &str) -> Option<(u16, u16)> {
    let s = s.trim().to_ascii_lowercase();
    let ok = |c: u16| (100..=599).contains(&c);
    if let Some(d) = s.strip_suffix("xx") {
        let d: u16 = d.parse().ok()?;
        return (1..=5).contains(&d).then_some((d * 100, d * 100 + 99));
    }
    if let Some((a, b)) = s.split_once('-') {
        let (a, b): (u16, u16) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
        return (ok(a) && ok(b) && a <= b).then_some((a, b));
    }
    let c: u16 = s.parse().ok()?;
    ok(c).then_some((c, c))
}

/// Parses `500ms`, `30s`, `5m`, `1h` (also `1d`); a bare `0` is zero.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let ms = match unit {
        "ms" => n,
        "s" => n.checked_mul(1000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        "d" => n.checked_mul(86_400_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

/// Parses `512`, `64k`, `10m`, `1g` (powers of 1024, case-insensitive, an
/// optional trailing `b`).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_suffix('b').unwrap_or(&s);
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// The known name closest to `typo` (edit distance at most 2), for "did you mean".
pub(super) fn closest<'a>(typo: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    known
        .map(|k| (edit_distance(typo, k), k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Splits `host[:port]` (IPv6 in brackets), lowercasing the host; `None`
/// when it is not an authority (userinfo, path, empty host, bad port).
pub fn split_authority(a: &str) -> Option<(String, Option<u16>)> {
    let a = a.trim();
    if a.is_empty() || a.contains(['/', '@', '?', '#', ' ']) {
        return None;
    }
    let (host, port) = if let Some(rest) = a.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (format!("[{inside}]"), port)
    } else {
        match a.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h.to_string(), Some(p)),
            Some(_) => return None,
            None => (a.to_string(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) => Some(p.parse::<u16>().ok()?),
    };
    Some((host.to_ascii_lowercase(), port))
}

/// Normalises an `admin.allowed_hosts` entry to `host:port` (lowercase;
/// `admin_port` when the entry has none), or says what is wrong with it.
pub fn normalize_allowed_host(entry: &str, admin_port: u16) -> Result<String, String> {
    let e = entry.trim();
    if e.contains("://") {
        return Err(format!("'{e}' has a scheme"));
    }
    let (host, port) = split_authority(e).ok_or_else(|| format!("'{e}' is not a host[:port]"))?;
    Ok(format!("{host}:{}", port.unwrap_or(admin_port)))
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("30"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("3x"), None);
        assert_eq!(parse_duration("99999999999999999999h"), None);
    }

    #[test]
    fn sizes_parse_like_nginx() {
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("64k"), Some(65536));
        assert_eq!(parse_size("10M"), Some(10 << 20));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("10mb"), Some(10 << 20));
        assert_eq!(parse_size("ten"), None);
        assert_eq!(parse_size("1t"), None);
    }

    #[test]
    fn status_ranges_parse() {
        assert_eq!(parse_status_range("2xx"), Some((200, 299)));
        assert_eq!(parse_status_range("204"), Some((204, 204)));
        assert_eq!(parse_status_range("200-399"), Some((200, 399)));
        assert_eq!(parse_status_range("6xx"), None);
        assert_eq!(parse_status_range("399-200"), None);
        assert_eq!(parse_status_range("ok"), None);
    }

    #[test]
    fn closest_suggests_a_near_name_only() {
        let names = ["app", "api", "static"];
        assert_eq!(closest("ap", names.iter().copied()), Some("app"));
        assert_eq!(closest("database", names.iter().copied()), None);
    }
}
