//! Compiles rate and connection limits (`limit_req_zones`,
//! `limit_conn_zones`, `limit_req`, `limit_conn`) and `error_pages` /
//! `intercept_errors` into [`crate::plan`] values, every problem at its
//! line and column.
//!
//! Zones are declared once at the top level; sites and routes name them.
//! As in nginx, a route with its own `limit_req` list does not inherit the
//! site's (likewise `limit_conn`), while a route's `error_pages` are merged
//! over the site's, status by status. Error page files are read here, at
//! load: a missing file is a config error, and a reload reads them again.

use super::diag::{Diagnostics, Pos};
use super::file::{
    FileConfig, FileErrorPage, FileLimitConn, FileLimitReq, FileRoute, FileSite, Scalar,
};
use super::validate::pos;
use super::validate_steps::template;
use crate::plan::error_pages::{self, ErrorPages, Page};
use crate::plan::limits::{
    ConnDef, ConnLimit, ConnZone, LimitKey, Limits, RateDef, RateZone, ReqLimit, Zones,
};
use crate::plan::template::Scope;
use crate::plan::{Plan, SitePlan, Step};
use indexmap::IndexMap;
use serde_saphyr::Spanned;
use std::sync::Arc;

/// The default status of a refused request. nginx's is 503; 429 Too Many
/// Requests (RFC 6585) tells clients and monitoring that they were limited,
/// not that the service is down.
pub const DEFAULT_STATUS: u16 = 429;

/// A rate zone's table size when `size` is not given.
const DEFAULT_SIZE: usize = 1 << 20;

/// Largest error page file read into memory.
const MAX_PAGE: u64 = 1 << 20;

/// The zones of `file`, indexed in file order.
pub(super) fn zones(file: &FileConfig, maps: &[String], ds: &mut Diagnostics) -> Zones {
    let mut out = Zones::default();
    for (name, z) in &file.limit_req_zones {
        super::validate::check_name("zone", name, pos(z), ds);
        let key = key(&z.value.key, maps, ds);
        let rate = rate(&z.value.rate, ds);
        let size = match &z.value.size {
            None => Some(DEFAULT_SIZE),
            Some(s) => match super::validate::parse_size(&s.value.0) {
                Some(n) if n > 0 => Some(n as usize),
                _ => {
                    ds.error(
                        pos(s),
                        format!("'{}' is not a size", s.value.0),
                        "write bytes with an optional unit, like nginx's zone size: `1m` (about 40 000 keys), `64k`",
                    );
                    None
                }
            },
        };
        if let (Some((key, key_text)), Some(rate), Some(size)) = (key, rate, size) {
            let def = RateDef {
                name: name.clone(),
                key_text,
                rate,
                size,
            };
            out.rate.push(Arc::new(RateZone::new(def, key)));
        } else {
            // Keeps indexes in file order; the config is refused anyway.
            out.rate.push(Arc::new(RateZone::new(
                RateDef {
                    name: name.clone(),
                    key_text: String::new(),
                    rate: 1,
                    size: 1,
                },
                LimitKey::ClientIp,
            )));
        }
    }
    for (name, z) in &file.limit_conn_zones {
        super::validate::check_name("zone", name, pos(z), ds);
        let (key, key_text) =
            key(&z.value.key, maps, ds).unwrap_or((LimitKey::ClientIp, String::new()));
        let def = ConnDef {
            name: name.clone(),
            key_text,
        };
        out.conn.push(Arc::new(ConnZone::new(def, key)));
    }
    out
}

/// A zone's key: `$remote_addr` / `$binary_remote_addr` (the default) is
/// the client address itself; anything else a template.
fn key(
    k: &Option<Spanned<String>>,
    maps: &[String],
    ds: &mut Diagnostics,
) -> Option<(LimitKey, String)> {
    let Some(k) = k else {
        return Some((LimitKey::ClientIp, "$remote_addr".into()));
    };
    let text = k.value.trim();
    if matches!(
        text,
        "$remote_addr" | "$binary_remote_addr" | "${remote_addr}" | "${binary_remote_addr}"
    ) {
        return Some((LimitKey::ClientIp, text.to_string()));
    }
    // nginx's binary form only saves memory there; here every key is
    // hashed, so it reads as the address.
    let same = text.replace("binary_remote_addr", "remote_addr");
    let scope = Scope {
        maps,
        ..Scope::default()
    };
    let t = template(k, pos(k), &same, &scope, ds)?;
    Some((LimitKey::Template(t), text.to_string()))
}

/// `10r/s` → 10000, `30r/m` → 500 (nginx's thousandths per second).
pub fn parse_rate(text: &str) -> Option<u64> {
    let t = text.trim();
    let (n, scale) = if let Some(n) = t.strip_suffix("r/s") {
        (n, 1)
    } else {
        (t.strip_suffix("r/m")?, 60)
    };
    let n: u64 = n.trim().parse().ok()?;
    (n > 0 && n <= 1_000_000).then(|| (n * 1000 / scale).max(1))
}

fn rate(r: &Spanned<Scalar>, ds: &mut Diagnostics) -> Option<u64> {
    let out = parse_rate(&r.value.0);
    if out.is_none() {
        ds.error(
            pos(r),
            format!("'{}' is not a rate", r.value.0),
            "write requests per second or per minute, like nginx: `10r/s`, `30r/m`",
        );
    }
    out
}

fn count(s: &Spanned<Scalar>, what: &str, ds: &mut Diagnostics) -> Option<u64> {
    match s.value.0.trim().parse::<u64>() {
        Ok(n) if n <= 1_000_000 => Some(n),
        _ => {
            ds.error(
                pos(s),
                format!("{what} '{}' is not a count", s.value.0),
                "write a whole number, like `20`",
            );
            None
        }
    }
}

fn status(s: &Option<Spanned<Scalar>>, ds: &mut Diagnostics) -> Option<u16> {
    let Some(s) = s else {
        return Some(DEFAULT_STATUS);
    };
    match s.value.0.trim().parse::<u16>() {
        Ok(n) if (400..=599).contains(&n) => Some(n),
        _ => {
            ds.error(
                pos(s),
                format!("'{}' is not a status for a refused request", s.value.0),
                "use a status from 400 to 599 (default 429; nginx's default is 503)",
            );
            None
        }
    }
}

/// Index of zone `name` among `names`, or an error naming the closest.
fn zone_index<'a>(
    z: &Spanned<String>,
    names: impl Iterator<Item = &'a String> + Clone,
    section: &str,
    ds: &mut Diagnostics,
) -> Option<usize> {
    let i = names.clone().position(|n| *n == z.value);
    if i.is_none() {
        let fix = match super::values::closest(&z.value, names.map(String::as_str)) {
            Some(c) => format!("did you mean '{c}'? Zones are declared under `{section}:`"),
            None => format!("declare it under `{section}:` at the top level"),
        };
        ds.error(pos(z), format!("unknown zone '{}'", z.value), fix);
    }
    i
}

fn req_limits(
    list: &Spanned<Vec<Spanned<FileLimitReq>>>,
    file: &FileConfig,
    ds: &mut Diagnostics,
) -> Vec<ReqLimit> {
    let mut out = Vec::new();
    for l in &list.value {
        let v = &l.value;
        let zone = zone_index(&v.zone, file.limit_req_zones.keys(), "limit_req_zones", ds);
        let burst = v.burst.as_ref().map_or(Some(0), |b| count(b, "burst", ds));
        let nodelay = v.nodelay.as_ref().is_some_and(|n| n.value);
        let delay = match (&v.delay, nodelay) {
            (None, false) => Some(0),
            (None, true) => Some(u64::MAX),
            (Some(d), false) => count(d, "delay", ds).map(|d| d * 1000),
            (Some(d), true) => {
                ds.error(
                    pos(d),
                    "`delay` and `nodelay: true` together",
                    "keep one: `nodelay` serves the whole burst at once, `delay: N` the first N",
                );
                None
            }
        };
        let st = status(&v.status, ds);
        if let (Some(zone), Some(burst), Some(delay), Some(status)) = (zone, burst, delay, st) {
            out.push(ReqLimit {
                zone,
                burst: burst * 1000,
                delay,
                status,
            });
        }
    }
    out
}

fn conn_limits(
    list: &Spanned<Vec<Spanned<FileLimitConn>>>,
    file: &FileConfig,
    ds: &mut Diagnostics,
) -> Vec<ConnLimit> {
    let mut out = Vec::new();
    for l in &list.value {
        let v = &l.value;
        let zone = zone_index(
            &v.zone,
            file.limit_conn_zones.keys(),
            "limit_conn_zones",
            ds,
        );
        let max = match count(&v.max, "max", ds) {
            Some(0) => {
                ds.error(
                    pos(&v.max),
                    "`max: 0` refuses every request",
                    "allow at least 1 request in progress per key",
                );
                None
            }
            n => n.map(|n| n as u32),
        };
        let st = status(&v.status, ds);
        if let (Some(zone), Some(max), Some(status)) = (zone, max, st) {
            out.push(ConnLimit { zone, max, status });
        }
    }
    out
}

type FilePages = Option<Spanned<IndexMap<String, Spanned<FileErrorPage>>>>;

fn pages(map: &FilePages, intercept: bool, ds: &mut Diagnostics) -> ErrorPages {
    let Some(map) = map else {
        return ErrorPages::new([], intercept);
    };
    let mut out = Vec::new();
    for (code, p) in &map.value {
        let at = pos(p);
        let code = match code.trim().parse::<u16>() {
            Ok(n) if (300..=599).contains(&n) => Some(n),
            _ => {
                ds.error(
                    at,
                    format!("'{code}' is not an error status"),
                    "key each page by a status from 300 to 599, like `404: /srv/errors/404.html`",
                );
                None
            }
        };
        for u in &p.value.unknown {
            ds.error(
                pos(u),
                format!("unknown key '{}' in an error page", u.value),
                "write `FILE` or `{file: FILE, status: CODE}`",
            );
        }
        let new_status = match &p.value.status {
            None => Some(None),
            Some(s) => match s.value.0.trim().parse::<u16>() {
                Ok(n) if (200..=599).contains(&n) => Some(Some(n)),
                _ => {
                    ds.error(
                        pos(s),
                        format!("'{}' is not a status", s.value.0),
                        "use a status from 200 to 599 (nginx's `=200`)",
                    );
                    None
                }
            },
        };
        let f = match (&p.value.file, &p.value.uri) {
            (Some(f), None) => f,
            (None, Some(u)) => {
                let page = super::validate_error_uri::uri_page(u, ds);
                if let (Some(code), Some(status), Some(page)) = (code, new_status, page) {
                    out.push((code, Page { status, ..page }));
                }
                continue;
            }
            (Some(_), Some(_)) => {
                ds.error(
                    at,
                    "the error page has both `file` and `uri`",
                    "keep `file` for a page read at load, or `uri` for a path this site's routes answer",
                );
                continue;
            }
            (None, None) => {
                ds.error(
                    at,
                    "the error page has no `file`",
                    "add `file: PATH` (or `uri: /PATH` for a page this site's routes answer)",
                );
                continue;
            }
        };
        let fat = if pos(f).line == 0 { at } else { pos(f) };
        let page = read_page(f.value.trim(), fat, ds);
        if let (Some(code), Some(status), Some((path, body))) = (code, new_status, page) {
            out.push((
                code,
                Page {
                    content_type: error_pages::content_type(&path),
                    path,
                    body,
                    status,
                    uri: None,
                },
            ));
        }
    }
    ErrorPages::new(out, intercept)
}

fn read_page(
    path: &str,
    at: Pos,
    ds: &mut Diagnostics,
) -> Option<(std::path::PathBuf, bytes::Bytes)> {
    let p = std::path::PathBuf::from(path);
    if path.is_empty() {
        ds.error(
            at,
            "the error page path is empty",
            "name a file, like `/srv/errors/50x.html`",
        );
        return None;
    }
    let read = std::fs::metadata(&p).and_then(|m| {
        if !m.is_file() {
            return Err(std::io::Error::other("not a regular file"));
        }
        if m.len() > MAX_PAGE {
            return Err(std::io::Error::other(format!(
                "{} bytes; pages are kept in memory, at most {MAX_PAGE}",
                m.len()
            )));
        }
        std::fs::read(&p)
    });
    match read {
        Ok(b) => Some((p, b.into())),
        Err(e) => {
            ds.error(
                at,
                format!("cannot read error page '{path}': {e}"),
                "create the file, or fix the path (read at load and on every reload)",
            );
            None
        }
    }
}

/// What a site gives its routes: its limits and its error pages.
pub(super) struct SiteLimits {
    req: Vec<ReqLimit>,
    conn: Vec<ConnLimit>,
    pages: ErrorPages,
}

impl SiteLimits {
    /// The site's own `limit_req`, `limit_conn` and `error_pages`.
    pub(super) fn new(site: &FileSite, file: &FileConfig, ds: &mut Diagnostics) -> SiteLimits {
        SiteLimits {
            req: site
                .limit_req
                .as_ref()
                .map(|l| req_limits(l, file, ds))
                .unwrap_or_default(),
            conn: site
                .limit_conn
                .as_ref()
                .map(|l| conn_limits(l, file, ds))
                .unwrap_or_default(),
            pages: pages(
                &site.error_pages,
                site.intercept_errors.as_ref().is_some_and(|b| b.value),
                ds,
            ),
        }
    }

    /// `plan` (the site's own) with the site's error pages.
    pub(super) fn site_plan(&self, plan: Arc<SitePlan>) -> Arc<SitePlan> {
        if self.pages.is_empty() {
            return plan;
        }
        let Ok(mut p) = Arc::try_unwrap(plan) else {
            unreachable!("a site plan is only shared once built");
        };
        p.error_pages = Some(Arc::new(self.pages.clone()));
        Arc::new(p)
    }

    /// `plan` (route `r`'s) with its limits and error pages.
    pub(super) fn route_plan(
        &self,
        plan: Arc<Plan>,
        r: &FileRoute,
        file: &FileConfig,
        ds: &mut Diagnostics,
    ) -> Arc<Plan> {
        let req = match &r.limit_req {
            Some(l) => req_limits(l, file, ds),
            None => self.req.clone(),
        };
        let conn = match &r.limit_conn {
            Some(l) => conn_limits(l, file, ds),
            None => self.conn.clone(),
        };
        let own = pages(&r.error_pages, false, ds);
        let pages = self
            .pages
            .merge(&own, r.intercept_errors.as_ref().map(|b| b.value));
        if req.is_empty() && conn.is_empty() && pages.is_empty() {
            return plan;
        }
        let Ok(p) = Arc::try_unwrap(plan) else {
            unreachable!("a route plan is only shared once built");
        };
        let (mut steps, terminal) = p.into_parts();
        if !req.is_empty() || !conn.is_empty() {
            steps.push(Step::Limits(Limits {
                req: req.into(),
                conn: conn.into(),
            }));
        }
        if !pages.is_empty() {
            steps.push(Step::ErrorPages(Arc::new(pages)));
        }
        Arc::new(Plan::new(steps, terminal))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::load_str;
    use crate::plan::Step;
    use std::path::Path;

    fn check(top: &str, site: &str, route: &str) -> Result<crate::config::Config, String> {
        let yaml = format!(
            "listeners: {{http: {{address: \"127.0.0.1:8080\"}}}}\n{top}sites:\n  s:\n    hosts: [a.test]\n{site}    routes:\n      - path: /\n        upstream: u\n{route}upstreams:\n  u: {{active: p, pools: {{p: [\"127.0.0.1:1\"]}}}}\n"
        );
        load_str(Path::new("g.yaml"), &yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn rates_read_like_nginx() {
        assert_eq!(super::parse_rate("10r/s"), Some(10_000));
        assert_eq!(super::parse_rate("30r/m"), Some(500));
        assert_eq!(super::parse_rate("1r/m"), Some(16));
        assert_eq!(super::parse_rate("0r/s"), None);
        assert_eq!(super::parse_rate("10/s"), None);
    }

    #[test]
    fn routes_take_the_sites_limits_unless_they_have_their_own() {
        let cfg = check(
            "limit_req_zones: {ip: {rate: 10r/s}, k: {key: \"$http_x_key\", rate: 1r/m, size: 4k}}\nlimit_conn_zones: {c: {}}\n",
            "    limit_req: [{zone: ip, burst: 5, nodelay: true}]\n    limit_conn: [{zone: c, max: 2, status: 503}]\n",
            "        limit_req: [{zone: k, delay: 2}, {zone: ip}]\n",
        )
        .expect("valid");
        assert_eq!(cfg.zones.rate.len(), 2);
        assert_eq!(cfg.zones.rate[1].def.rate, 16);
        let l = cfg.sites[0].routes[0].plan.limits().expect("limits");
        assert_eq!(l.req.len(), 2, "the route's own list replaces the site's");
        assert_eq!(
            (l.req[0].zone, l.req[0].delay, l.req[0].status),
            (1, 2000, 429)
        );
        assert_eq!(l.conn.len(), 1, "no limit_conn of its own: the site's");
        assert_eq!((l.conn[0].max, l.conn[0].status), (2, 503));
        assert!(
            cfg.sites[0].routes[0]
                .plan
                .steps()
                .iter()
                .any(|s| matches!(s, Step::Limits(_)))
        );
    }

    #[test]
    fn bad_zones_and_references_are_reported_together() {
        let e = check(
            "limit_req_zones: {ip: {rate: 10r/h, size: big}}\n",
            "",
            "        limit_req: [{zone: iq, burst: x, nodelay: true, delay: 1, status: 200}]\n        limit_conn: [{zone: c, max: 0}]\n",
        )
        .expect_err("invalid");
        for want in [
            "'10r/h' is not a rate",
            "'big' is not a size",
            "unknown zone 'iq'",
            "did you mean 'ip'?",
            "burst 'x' is not a count",
            "`delay` and `nodelay: true` together",
            "'200' is not a status for a refused request",
            "unknown zone 'c'",
            "`max: 0` refuses every request",
        ] {
            assert!(e.contains(want), "{want}: {e}");
        }
        assert!(e.contains("g.yaml:2:30: '10r/h' is not a rate"), "{e}");
    }

    #[test]
    fn error_pages_are_read_at_load_and_a_missing_one_is_an_error_at_its_line() {
        let dir = tempfile::tempdir().expect("dir");
        let page = dir.path().join("50x.html");
        std::fs::write(&page, "<h1>down</h1>").expect("write");
        let p = page.display();
        let cfg = check(
            "",
            &format!("    error_pages: {{502: {p}, 504: {{file: {p}, status: 200}}}}\n    intercept_errors: true\n"),
            &format!("        error_pages: {{404: {p}}}\n"),
        )
        .expect("valid");
        let pages = cfg.sites[0].routes[0].plan.error_pages().expect("pages");
        assert_eq!(&pages.get(502).expect("502").body[..], b"<h1>down</h1>");
        assert_eq!(pages.get(504).expect("504").status, Some(200));
        assert!(pages.get(404).is_some() && pages.intercept);
        assert_eq!(
            pages.get(502).expect("502").content_type,
            "text/html; charset=utf-8"
        );
        assert!(cfg.sites[0].plan.error_pages.is_some());
        let e = check(
            "",
            "    error_pages: {502: /nonexistent/x.html, 99: /tmp}\n",
            "",
        )
        .expect_err("missing");
        assert!(
            e.contains("g.yaml:5:24: cannot read error page '/nonexistent/x.html'"),
            "{e}"
        );
        assert!(e.contains("'99' is not an error status"), "{e}");
    }
}
