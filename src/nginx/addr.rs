//! Value parsing shared by the converter: listen and upstream addresses,
//! sizes, durations, host names and greenlight entry names.

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

/// Placeholder host that `greenlight check` rejects, so an address the
/// converter could not carry over cannot go unnoticed.
pub(crate) const EDIT_ME: &str = "EDIT-ME";

/// An address that could not be converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadAddr {
    /// The port, when it could be read.
    pub port: Option<u16>,
    /// The part that is wrong, e.g. `X.Y.255.3`.
    pub what: String,
    /// What is wrong with it, e.g. "is not an IP address".
    pub problem: String,
}

impl BadAddr {
    /// Builds a [`BadAddr`].
    pub fn new(port: Option<u16>, what: &str, problem: impl Into<String>) -> Self {
        BadAddr {
            port,
            what: what.to_string(),
            problem: problem.into(),
        }
    }

    /// "'what' problem".
    pub fn reason(&self) -> String {
        format!("'{}' {}", self.what, self.problem)
    }

    /// "'what' from AT problem" (for EDIT comments).
    pub fn reason_at(&self, at: &str) -> String {
        format!("'{}' from {at} {}", self.what, self.problem)
    }

    /// The placeholder to emit instead of the address.
    pub fn placeholder(&self) -> String {
        match self.port {
            Some(p) => format!("{EDIT_ME}:{p}"),
            None => EDIT_ME.to_string(),
        }
    }
}

/// A parsed `listen` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListenAddr {
    /// A socket address, normalized (`0.0.0.0:80`, `[::]:443`).
    Ok(String),
    /// `localhost[:port]`, turned into `127.0.0.1`.
    Localhost(String),
    /// A unix socket path.
    Unix,
    /// Not usable.
    Bad(BadAddr),
}

fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u16>().ok().filter(|p| *p != 0)
}

fn bad_port(host_port: &str) -> BadAddr {
    BadAddr::new(None, host_port, "has no valid port")
}

/// Splits `host:port`, `[v6]:port`, `[v6]` or `host` into host and optional
/// port text. IPv6 hosts are returned without brackets.
fn split_host_port(s: &str) -> Result<(String, Option<&str>), BadAddr> {
    if let Some(rest) = s.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err(BadAddr::new(None, s, "has an unclosed '['"));
        };
        return match after {
            "" => Ok((host.to_string(), None)),
            _ => match after.strip_prefix(':') {
                Some(p) => Ok((host.to_string(), Some(p))),
                None => Err(BadAddr::new(
                    None,
                    s,
                    "has text after ']' that is not ':port'",
                )),
            },
        };
    }
    match s.rsplit_once(':') {
        Some((host, port)) => Ok((host.to_string(), Some(port))),
        None => Ok((s.to_string(), None)),
    }
}

/// Parses the address argument of nginx `listen`.
pub(crate) fn parse_listen(arg: &str) -> ListenAddr {
    if arg.starts_with("unix:") {
        return ListenAddr::Unix;
    }
    if !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_digit()) {
        return match parse_port(arg) {
            Some(p) => ListenAddr::Ok(SocketAddr::from((Ipv4Addr::UNSPECIFIED, p)).to_string()),
            None => ListenAddr::Bad(bad_port(arg)),
        };
    }
    let (host, port) = match split_host_port(arg) {
        Ok(v) => v,
        Err(b) => return ListenAddr::Bad(b),
    };
    let port = match port {
        None => 80,
        Some(p) => match parse_port(p) {
            Some(p) => p,
            None => return ListenAddr::Bad(bad_port(arg)),
        },
    };
    if arg.starts_with('[') {
        return match host.parse::<Ipv6Addr>() {
            Ok(ip) => ListenAddr::Ok(SocketAddr::from((ip, port)).to_string()),
            Err(_) => ListenAddr::Bad(BadAddr::new(Some(port), &host, "is not an IPv6 address")),
        };
    }
    if host == "*" {
        return ListenAddr::Ok(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).to_string());
    }
    if host.eq_ignore_ascii_case("localhost") {
        return ListenAddr::Localhost(SocketAddr::from((Ipv4Addr::LOCALHOST, port)).to_string());
    }
    match host.parse::<Ipv4Addr>() {
        Ok(ip) => ListenAddr::Ok(SocketAddr::from((ip, port)).to_string()),
        Err(_) => ListenAddr::Bad(BadAddr::new(Some(port), &host, "is not an IP address")),
    }
}

/// True for a DNS host name greenlight can resolve (letters, digits, '-',
/// '_' and dots, no empty labels).
pub(crate) fn is_dns_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Parses an upstream server address (`host:port`, `host`, `[v6]:port`)
/// into greenlight's `host:port` form, using `default_port` when there is no
/// port. Host names are kept (greenlight resolves them at load).
pub(crate) fn parse_upstream_addr(arg: &str, default_port: u16) -> Result<String, BadAddr> {
    if arg.contains('$') {
        return Err(BadAddr::new(
            None,
            arg,
            "uses an nginx variable, which is only known per request",
        ));
    }
    let (host, port) = split_host_port(arg)?;
    let port = match port {
        None => default_port,
        Some(p) => parse_port(p).ok_or_else(|| bad_port(arg))?,
    };
    if arg.starts_with('[') {
        return match host.parse::<Ipv6Addr>() {
            Ok(ip) => Ok(SocketAddr::from((ip, port)).to_string()),
            Err(_) => Err(BadAddr::new(Some(port), &host, "is not an IPv6 address")),
        };
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(SocketAddr::from((ip, port)).to_string());
    }
    if is_dns_name(&host) && !host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Ok(format!("{}:{port}", host.to_ascii_lowercase()));
    }
    Err(BadAddr::new(
        Some(port),
        &host,
        "is neither an IP address nor a host name",
    ))
}

/// Parses an nginx unix socket server (`unix:/run/app.sock`, from an
/// `upstream` block's `server` or a `proxy_pass http://unix:…:`) into
/// greenlight's same form, with the checks `greenlight check` makes (an
/// absolute path that fits a socket address; not that it exists).
pub(crate) fn parse_unix_upstream(arg: &str) -> Result<String, BadAddr> {
    let path = arg.strip_prefix("unix:").unwrap_or(arg);
    match crate::upstream::addr::parse_unix(path) {
        Ok(a) => Ok(a.to_string()),
        Err(crate::upstream::addr::UnixAddrError::NotAbsolute) => Err(BadAddr::new(
            Some(80),
            arg,
            "is not an absolute unix socket path",
        )),
        Err(crate::upstream::addr::UnixAddrError::TooLong) => Err(BadAddr::new(
            Some(80),
            arg,
            "is a unix socket path longer than 107 bytes",
        )),
    }
}

/// Parses an nginx size (`512`, `64k`, `10M`, `1g`) into greenlight's form
/// (lower-case unit).
pub(crate) fn parse_size(s: &str) -> Option<String> {
    let (num, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (s.get(..i)?, Some(c.to_ascii_lowercase())),
        _ => (s, None),
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = num.parse().ok()?;
    match unit {
        None => Some(n.to_string()),
        Some(u @ ('k' | 'm' | 'g')) => Some(format!("{n}{u}")),
        Some(_) => None,
    }
}

/// Parses an nginx time value (`60`, `60s`, `500ms`, `5m`, `1h`, `1h 30m`,
/// also `d`, `w`, `M`, `y`) into milliseconds. A bare number is seconds.
pub(crate) fn parse_duration(s: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest.get(..digits)?.parse().ok()?;
        rest = rest.get(digits..)?;
        let (unit_ms, len) = if rest.starts_with("ms") {
            (1, 2)
        } else {
            match rest.chars().next() {
                None | Some(' ') => (1000, 0),
                Some('s') => (1000, 1),
                Some('m') => (60_000, 1),
                Some('h') => (3_600_000, 1),
                Some('d') => (86_400_000, 1),
                Some('w') => (604_800_000, 1),
                Some('M') => (2_592_000_000, 1),
                Some('y') => (31_536_000_000, 1),
                Some(_) => return None,
            }
        };
        total = total.checked_add(n.checked_mul(unit_ms)?)?;
        rest = rest.get(len..)?.trim_start();
    }
    Some(total)
}

/// Formats milliseconds as a greenlight duration with the largest exact unit.
pub(crate) fn format_duration(ms: u64) -> String {
    if ms == 0 {
        "0s".to_string()
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Turns arbitrary text into a greenlight name: `[a-z0-9][a-z0-9_-]*`.
/// Returns an empty string when nothing usable is left.
pub(crate) fn sanitize_name(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed = out.trim_start_matches(['_', '-']).trim_end_matches('-');
    trimmed.to_string()
}

/// Hands out unique names in one namespace: `base`, `base-2`, `base-3`...
#[derive(Debug, Default)]
pub(crate) struct Names {
    used: HashSet<String>,
}

impl Names {
    /// A unique name derived from `base` (or `fallback` when `base` has no
    /// usable characters).
    pub fn alloc(&mut self, base: &str, fallback: &str) -> String {
        let mut base = sanitize_name(base);
        if base.is_empty() {
            base = fallback.to_string();
        }
        let mut candidate = base.clone();
        let mut n = 2u64;
        while self.used.contains(&candidate) {
            candidate = format!("{base}-{n}");
            n += 1;
        }
        self.used.insert(candidate.clone());
        candidate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_forms() {
        let ok = |s: &str| ListenAddr::Ok(s.to_string());
        assert_eq!(parse_listen("80"), ok("0.0.0.0:80"));
        assert_eq!(parse_listen("*:8080"), ok("0.0.0.0:8080"));
        assert_eq!(parse_listen("*"), ok("0.0.0.0:80"));
        assert_eq!(parse_listen("127.0.0.1"), ok("127.0.0.1:80"));
        assert_eq!(parse_listen("10.0.0.1:443"), ok("10.0.0.1:443"));
        assert_eq!(parse_listen("[::]:443"), ok("[::]:443"));
        assert_eq!(parse_listen("[::1]"), ok("[::1]:80"));
        assert_eq!(parse_listen("[2001:DB8::1]:8443"), ok("[2001:db8::1]:8443"));
        assert_eq!(
            parse_listen("localhost:81"),
            ListenAddr::Localhost("127.0.0.1:81".into())
        );
        assert_eq!(parse_listen("unix:/run/x.sock"), ListenAddr::Unix);
        match parse_listen("X.Y.255.3:443") {
            ListenAddr::Bad(b) => {
                assert_eq!(b.placeholder(), "EDIT-ME:443");
                assert_eq!(b.reason(), "'X.Y.255.3' is not an IP address");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_listen("99999"), ListenAddr::Bad(_)));
        assert!(matches!(parse_listen("1.2.3.4:x"), ListenAddr::Bad(_)));
        assert!(matches!(parse_listen("[::1"), ListenAddr::Bad(_)));
        assert!(matches!(parse_listen("[zz]:80"), ListenAddr::Bad(_)));
        assert!(matches!(parse_listen(""), ListenAddr::Bad(_)));
    }

    #[test]
    fn upstream_forms() {
        assert_eq!(
            parse_upstream_addr("localhost:8082", 80).as_deref(),
            Ok("localhost:8082")
        );
        assert_eq!(
            parse_upstream_addr("127.0.0.1", 80).as_deref(),
            Ok("127.0.0.1:80")
        );
        assert_eq!(
            parse_upstream_addr("App.Internal", 443).as_deref(),
            Ok("app.internal:443")
        );
        assert_eq!(
            parse_upstream_addr("[::1]:3000", 80).as_deref(),
            Ok("[::1]:3000")
        );
        assert!(parse_upstream_addr("$backend", 80).is_err());
        assert_eq!(
            parse_unix_upstream("unix:/run/app.sock").as_deref(),
            Ok("unix:/run/app.sock")
        );
        assert!(parse_unix_upstream("unix:app.sock").is_err());
        assert!(parse_upstream_addr("a..b:1", 80).is_err());
        assert!(parse_upstream_addr("1.2.3:80", 80).is_err());
        assert_eq!(
            parse_upstream_addr("bad host:8082", 80).map_err(|b| b.placeholder()),
            Err("EDIT-ME:8082".to_string())
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0").as_deref(), Some("0"));
        assert_eq!(parse_size("512").as_deref(), Some("512"));
        assert_eq!(parse_size("64K").as_deref(), Some("64k"));
        assert_eq!(parse_size("10m").as_deref(), Some("10m"));
        assert_eq!(parse_size("1g").as_deref(), Some("1g"));
        assert_eq!(parse_size("1t"), None);
        assert_eq!(parse_size("m"), None);
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("1.5m"), None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60"), Some(60_000));
        assert_eq!(parse_duration("60s"), Some(60_000));
        assert_eq!(parse_duration("500ms"), Some(500));
        assert_eq!(parse_duration("5m"), Some(300_000));
        assert_eq!(parse_duration("1h 30m"), Some(5_400_000));
        assert_eq!(parse_duration("1d"), Some(86_400_000));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_duration("5q"), None);
        assert_eq!(parse_duration("99999999999999999999y"), None);
        assert_eq!(format_duration(60_000), "1m");
        assert_eq!(format_duration(90_000), "90s");
        assert_eq!(format_duration(86_400_000), "24h");
        assert_eq!(format_duration(1500), "1500ms");
        assert_eq!(format_duration(0), "0s");
    }

    #[test]
    fn names() {
        assert_eq!(sanitize_name("example.com"), "example-com");
        assert_eq!(sanitize_name("*.Example.COM"), "example-com");
        assert_eq!(sanitize_name("my_app"), "my_app");
        assert_eq!(sanitize_name("__x..y--"), "x-y");
        assert_eq!(sanitize_name("..."), "");
        let mut n = Names::default();
        assert_eq!(n.alloc("example.com", "site"), "example-com");
        assert_eq!(n.alloc("example.com", "site"), "example-com-2");
        assert_eq!(n.alloc("example-com-3", "site"), "example-com-3");
        assert_eq!(n.alloc("example.com", "site"), "example-com-4");
        assert_eq!(n.alloc("!!", "site"), "site");
    }
}
