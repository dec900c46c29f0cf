//! nginx `expires`: `Expires` and `Cache-Control` on a route's successful
//! answers, compiled at load from `expires: 30d | 1h30m | -1 | max | epoch |
//! off | "modified +1h"`.
//!
//! Like nginx, only answers with status 200, 201, 204, 206, 301, 302, 303,
//! 304, 307 or 308 get them (files, proxied responses and greenlight's own
//! redirects alike), every `Cache-Control` already there is replaced, and
//! `modified` counts from the answer's `Last-Modified` (an answer without
//! one is left alone). The response header steps run after this one, so
//! a `response_headers.add: {Cache-Control: …}` still adds a field.

use pingora::http::ResponseHeader;
use std::time::{Duration, SystemTime};

/// nginx's `Expires` for `epoch`.
const EPOCH: &str = "Thu, 01 Jan 1970 00:00:01 GMT";
/// nginx's `Expires` for `max`.
const MAX: &str = "Thu, 31 Dec 2037 23:55:55 GMT";
/// nginx's `max-age` for `max` (ten years).
const MAX_AGE: u64 = 315_360_000;

/// A compiled `expires:` (`off` compiles to no step at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expires {
    /// `epoch`: expired long ago, `Cache-Control: no-cache`.
    Epoch,
    /// `max`: the far future, ten years of `max-age`.
    Max,
    /// `N`: N seconds from now; negative is `no-cache`.
    After(i64),
    /// `modified N`: N seconds after the answer's `Last-Modified`.
    Modified(i64),
}

/// Parses an nginx `expires` value; `Ok(None)` for `off`. The error says
/// what is wrong with the value.
pub fn parse(value: &str) -> Result<Option<Expires>, String> {
    let v = value.trim();
    match v {
        "off" => return Ok(None),
        "epoch" => return Ok(Some(Expires::Epoch)),
        "max" => return Ok(Some(Expires::Max)),
        _ => {}
    }
    if v.starts_with('@') {
        return Err(format!("'{v}': a time of day (`@15h30m`) is not supported"));
    }
    if let Some(rest) = v.strip_prefix("modified") {
        let rest = rest.trim();
        if rest.is_empty() {
            return Err("`modified` needs a time after it, e.g. `modified +1h`".into());
        }
        return Ok(Some(Expires::Modified(seconds(rest)?)));
    }
    Ok(Some(Expires::After(seconds(v)?)))
}

/// nginx's time syntax with an optional sign: `30d`, `1h30m`, `-1`, `+2w`;
/// units ms (rounded down), s, m, h, d, w, M (30 days), y (365 days).
fn seconds(text: &str) -> Result<i64, String> {
    let (neg, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let bad = || format!("'{text}' is not a time");
    let mut total: i64 = 0;
    let mut ms: i64 = 0;
    let mut rest = body.trim_start();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = if rest.starts_with("ms") {
            2
        } else {
            rest.chars()
                .next()
                .filter(char::is_ascii_alphabetic)
                .map_or(0, |_| 1)
        };
        let unit = &rest[..unit_len];
        let mul: i64 = match unit {
            "" | "s" => 1,
            "ms" => {
                ms = ms.saturating_add(n);
                0
            }
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            "M" => 30 * 86_400,
            "y" => 365 * 86_400,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(mul)
            .and_then(|x| total.checked_add(x))
            .ok_or_else(bad)?;
        rest = rest[unit_len..].trim_start();
        if unit.is_empty() && !rest.is_empty() {
            return Err(bad());
        }
    }
    let total = total.saturating_add(ms / 1000);
    Ok(if neg { -total } else { total })
}

impl Expires {
    /// Sets `Expires` and `Cache-Control` on `resp` as nginx would at
    /// `now` (statuses nginx leaves alone are left alone).
    pub fn apply(&self, resp: &mut ResponseHeader, now: SystemTime) -> pingora::Result<()> {
        if !matches!(
            resp.status.as_u16(),
            200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308
        ) {
            return Ok(());
        }
        let (expires, cache) = match *self {
            Expires::Epoch => (EPOCH.to_string(), "no-cache".to_string()),
            Expires::Max => (MAX.to_string(), format!("max-age={MAX_AGE}")),
            Expires::After(n) => (date(shift(now, n)), cache_control(n)),
            Expires::Modified(n) => {
                let Some(lm) = resp
                    .headers
                    .get(http::header::LAST_MODIFIED)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| httpdate::parse_http_date(v).ok())
                else {
                    return Ok(());
                };
                let at = shift(lm, n);
                let age = match at.duration_since(now) {
                    Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                    Err(_) => -1,
                };
                (date(at), cache_control(age))
            }
        };
        resp.insert_header(http::header::EXPIRES, expires)?;
        resp.insert_header(http::header::CACHE_CONTROL, cache)?;
        Ok(())
    }
}

fn cache_control(age: i64) -> String {
    if age < 0 {
        "no-cache".to_string()
    } else {
        format!("max-age={age}")
    }
}

fn shift(t: SystemTime, secs: i64) -> SystemTime {
    let d = Duration::from_secs(secs.unsigned_abs());
    let shifted = if secs < 0 {
        t.checked_sub(d)
    } else {
        t.checked_add(d)
    };
    shifted.unwrap_or(t)
}

fn date(t: SystemTime) -> String {
    // Before 1970 (a large negative `expires`): the epoch, as an HTTP date
    // cannot say earlier and means "expired" all the same.
    httpdate::fmt_http_date(t.max(SystemTime::UNIX_EPOCH))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16) -> ResponseHeader {
        ResponseHeader::build(status, None).expect("header")
    }

    fn get(r: &ResponseHeader, name: &str) -> Option<String> {
        r.headers
            .get(name)
            .map(|v| v.to_str().unwrap_or_default().to_string())
    }

    #[test]
    fn nginx_values_parse() {
        assert_eq!(parse("off"), Ok(None));
        assert_eq!(parse("epoch"), Ok(Some(Expires::Epoch)));
        assert_eq!(parse("max"), Ok(Some(Expires::Max)));
        assert_eq!(parse("30d"), Ok(Some(Expires::After(30 * 86_400))));
        assert_eq!(parse("1h30m"), Ok(Some(Expires::After(5400))));
        assert_eq!(parse("1h 30m"), Ok(Some(Expires::After(5400))));
        assert_eq!(parse("-1"), Ok(Some(Expires::After(-1))));
        assert_eq!(parse("3600"), Ok(Some(Expires::After(3600))));
        assert_eq!(parse("1y"), Ok(Some(Expires::After(365 * 86_400))));
        assert_eq!(parse("1500ms"), Ok(Some(Expires::After(1))));
        assert_eq!(parse("modified +1h"), Ok(Some(Expires::Modified(3600))));
        for bad in ["", "soon", "1x", "5 5", "modified", "@15h", "h", "-"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn headers_are_nginx_s_and_only_on_its_statuses() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut r = resp(200);
        r.insert_header("cache-control", "private").expect("h");
        r.append_header("cache-control", "no-store").expect("h");
        Expires::After(3600).apply(&mut r, now).expect("apply");
        assert_eq!(get(&r, "cache-control").as_deref(), Some("max-age=3600"));
        assert_eq!(r.headers.get_all("cache-control").iter().count(), 1);
        assert_eq!(
            get(&r, "expires").as_deref(),
            Some("Fri, 15 Jan 2027 09:00:00 GMT")
        );
        let mut r = resp(404);
        Expires::After(3600).apply(&mut r, now).expect("apply");
        assert_eq!(get(&r, "expires"), None, "a 404 gets nothing");
        let mut r = resp(304);
        Expires::After(-1).apply(&mut r, now).expect("apply");
        assert_eq!(get(&r, "cache-control").as_deref(), Some("no-cache"));
        assert_eq!(
            get(&r, "expires").as_deref(),
            Some("Fri, 15 Jan 2027 07:59:59 GMT")
        );
        let mut r = resp(200);
        Expires::Epoch.apply(&mut r, now).expect("apply");
        assert_eq!(get(&r, "expires").as_deref(), Some(EPOCH));
        assert_eq!(get(&r, "cache-control").as_deref(), Some("no-cache"));
        let mut r = resp(301);
        Expires::Max.apply(&mut r, now).expect("apply");
        assert_eq!(get(&r, "expires").as_deref(), Some(MAX));
        assert_eq!(
            get(&r, "cache-control").as_deref(),
            Some("max-age=315360000")
        );
    }

    #[test]
    fn modified_counts_from_last_modified() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut r = resp(200);
        r.insert_header(
            "last-modified",
            httpdate::fmt_http_date(now - Duration::from_secs(600)),
        )
        .expect("h");
        Expires::Modified(3600).apply(&mut r, now).expect("apply");
        assert_eq!(get(&r, "cache-control").as_deref(), Some("max-age=3000"));
        let mut r = resp(200);
        r.insert_header(
            "last-modified",
            httpdate::fmt_http_date(now - Duration::from_secs(7200)),
        )
        .expect("h");
        Expires::Modified(3600).apply(&mut r, now).expect("apply");
        assert_eq!(get(&r, "cache-control").as_deref(), Some("no-cache"));
        let mut r = resp(200);
        Expires::Modified(3600).apply(&mut r, now).expect("apply");
        assert_eq!(get(&r, "expires"), None, "no Last-Modified: left alone");
    }
}
