//! Validation of what a request is matched on: a site's `hosts:` (nginx
//! `server_name` forms) and each route's `path:` (nginx `location` syntax).
//!
//! Called by [`super::validate`] for every site; it compiles the patterns
//! (regexes once, here, never per request) into the model's
//! [`HostPattern`]s and [`Location`]s and reports every problem at the
//! value's line and column with the fix. It decides nothing about order:
//! that is `plan::router`'s.

use super::diag::Diagnostics;
use super::file::FileSite;
use super::model::HostPattern;
use super::validate::pos;
use crate::plan::location::{Location, LocationError, Pattern, regex_reason};
use serde_saphyr::Spanned;
use std::collections::HashMap;

/// Why a `hosts:` entry is not a host pattern: what is wrong, how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostError {
    /// What is wrong.
    pub what: String,
    /// How to fix it.
    pub fix: String,
}

const HOST_FORMS: &str =
    "write a name like `example.com`, `*.example.com`, `www.example.*` or `~^regex$`";

/// Parses a host pattern: a DNS name (lowercased, trailing dot dropped), a
/// leading wildcard `*.example.com`, a trailing wildcard `www.example.*`, or
/// `~regex` (case-insensitive, over the lowercased host without port).
pub fn parse_host_pattern(written: &str) -> Result<HostPattern, HostError> {
    let err = |what: String, fix: &str| HostError {
        what,
        fix: fix.to_string(),
    };
    let s = written.trim();
    if let Some(source) = s.strip_prefix('~') {
        if source.is_empty() {
            return Err(err(
                "nothing follows '~' in a regex host name".into(),
                "write the expression after '~', e.g. `~^(www\\.)?example\\.(com|net)$`",
            ));
        }
        return Pattern::compile(source, true)
            .map(HostPattern::Regex)
            .map_err(|e| {
                err(
                    format!(
                        "the host regex '{source}' does not compile: {}",
                        regex_reason(&e)
                    ),
                    "fix the expression (regex crate syntax: no look-around, no back-references)",
                )
            });
    }
    let s = s.trim_end_matches('.').to_ascii_lowercase();
    let (form, name) = if let Some(rest) = s.strip_prefix("*.") {
        (Form::Leading, rest)
    } else if let Some(rest) = s.strip_suffix(".*") {
        (Form::Trailing, rest)
    } else {
        (Form::Exact, s.as_str())
    };
    if name.contains('*') {
        return Err(err(
            format!("'{written}' has a '*' that is not a whole first or last label"),
            "a '*' stands for whole labels at the start (`*.example.com`) or the end (`www.example.*`); use a `~regex` name for anything else",
        ));
    }
    if form == Form::Exact && s.starts_with('.') && s.len() > 1 {
        return Err(err(
            format!("'{written}' is nginx's `.name` form, which greenlight does not take"),
            &format!("list both `{0}` and `*.{0}`", s.trim_start_matches('.')),
        ));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(err(
            format!("'{written}' is not a host name or wildcard"),
            HOST_FORMS,
        ));
    }
    Ok(match form {
        Form::Exact => HostPattern::Exact(name.to_string()),
        Form::Leading => HostPattern::Wildcard(format!(".{name}")),
        Form::Trailing => HostPattern::TrailingWildcard(format!("{name}.")),
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    Exact,
    Leading,
    Trailing,
}

/// The site's host patterns. A site without hosts is an error unless it is
/// the default site (nginx's catch-all server). `owners` finds patterns that
/// two sites claim.
pub(super) fn site_hosts(
    name: &str,
    site: &Spanned<FileSite>,
    default: bool,
    owners: &mut HashMap<String, String>,
    ds: &mut Diagnostics,
) -> Vec<HostPattern> {
    let list = site.value.hosts.as_ref();
    if list.is_none_or(|l| l.value.is_empty()) && !default {
        ds.error(
            list.map(pos).unwrap_or(pos(site)),
            format!("site '{name}' has no hosts"),
            "list at least one host name, or make it the catch-all site with `default: true`",
        );
    }
    let mut hosts = Vec::new();
    for h in list.iter().flat_map(|l| &l.value) {
        let p = match parse_host_pattern(&h.value) {
            Ok(p) => p,
            Err(e) => {
                ds.error(pos(h), e.what, e.fix);
                continue;
            }
        };
        // The written form is canonical (lowercase, no trailing dot) and tells
        // the forms apart: it is the key.
        if let Some(other) = owners.insert(p.as_written(), name.to_string()) {
            ds.error(
                pos(h),
                format!(
                    "host '{}' is listed by sites '{other}' and '{name}'",
                    h.value
                ),
                "each host belongs to one site",
            );
        }
        hosts.push(p);
    }
    hosts
}

/// A `tls: acme` site needs names a certificate can carry, and not wildcards
/// (the DNS-01 challenge, which greenlight does not do).
pub(super) fn acme_hosts(name: &str, site: &Spanned<FileSite>, ds: &mut Diagnostics) {
    // `tls: {acme: [names]}` names the certificate itself (a catch-all
    // site has no hosts to take them from).
    let own = match site.value.tls.as_ref().map(|t| &t.value) {
        Some(crate::config::file::FileTls::Files { acme: Some(a), .. }) => Some(&**a),
        _ => None,
    };
    let list = own.or(site.value.hosts.as_ref());
    let mut exact = 0;
    for h in list.iter().flat_map(|l| &l.value) {
        match parse_host_pattern(&h.value) {
            Ok(HostPattern::Exact(_)) => exact += 1,
            Ok(HostPattern::Wildcard(_)) => ds.error(
                pos(h),
                format!("'{}' is a wildcard: ACME needs the DNS-01 challenge for wildcards, which greenlight does not do", h.value),
                "list the exact host names, or use `tls: {cert, key}` with a wildcard certificate",
            ),
            Ok(_) => ds.error(
                pos(h),
                format!("'{}' is a routing pattern: no certificate can name it", h.value),
                "list the exact host names the certificate should carry (the pattern may stay in a site without `tls: acme`)",
            ),
            Err(e) if own.is_some() => ds.error(pos(h), e.what, e.fix),
            Err(_) => {}
        }
    }
    if exact == 0 && list.is_none_or(|l| l.value.is_empty()) {
        ds.error(
            site.value.tls.as_ref().map(pos).unwrap_or(pos(site)),
            format!(
                "site '{name}' uses `tls: acme` but has no host name to order a certificate for"
            ),
            "list the site's host names under `hosts:`",
        );
    }
}

/// Routes seen so far in one site, for duplicates: per location, each
/// route's path as written and its methods (`None` = every method).
#[derive(Default)]
pub(super) struct SeenRoutes(HashMap<String, Vec<SeenRoute>>);

/// A route's path as written and its methods (`None` = every method).
type SeenRoute = (String, Option<Vec<String>>);

/// A route's `scheme:` (`http` or `https`). `https` on a site without TLS
/// would never be chosen, so it is an error there.
pub(super) fn route_scheme(
    value: &Option<Spanned<String>>,
    site_tls: bool,
    ds: &mut Diagnostics,
) -> crate::config::model::RouteScheme {
    use crate::config::model::RouteScheme;
    let Some(v) = value else {
        return RouteScheme::Any;
    };
    match v.value.as_str() {
        "http" => RouteScheme::Http,
        "https" if site_tls => RouteScheme::Https,
        "https" => {
            ds.error(
                pos(v),
                "route `scheme: https` on a site without TLS is never chosen",
                "give the site `tls:`, or remove `scheme`",
            );
            RouteScheme::Any
        }
        other => {
            ds.error(
                pos(v),
                format!("route scheme '{other}' is not `http` or `https`"),
                "write `scheme: http` (plain-HTTP requests only) or `scheme: https` (TLS only), or leave it out to take both",
            );
            RouteScheme::Any
        }
    }
}

/// A route's `methods:`, checked: HTTP method tokens in upper case (methods
/// are case-sensitive, RFC 9110 section 9.1), at least one.
pub(super) fn route_methods(
    list: &Option<Spanned<Vec<Spanned<String>>>>,
    ds: &mut Diagnostics,
) -> Option<Vec<http::Method>> {
    let list = list.as_ref()?;
    if list.value.is_empty() {
        ds.error(
            pos(list),
            "route methods list is empty",
            "name the methods, e.g. `methods: [OPTIONS]`, or leave `methods` out to take every method",
        );
        return None;
    }
    let mut out = Vec::new();
    for m in &list.value {
        let upper = m.value.to_ascii_uppercase();
        match http::Method::from_bytes(m.value.as_bytes()) {
            Ok(method) if upper == m.value => {
                if !out.contains(&method) {
                    out.push(method);
                }
            }
            _ => ds.error(
                pos(m),
                format!("'{}' is not an HTTP method", m.value),
                if upper != m.value && http::Method::from_bytes(upper.as_bytes()).is_ok() {
                    format!("methods are case-sensitive: write `{upper}`")
                } else {
                    "write a method token such as GET, POST or OPTIONS".to_string()
                },
            ),
        }
    }
    Some(out)
}

/// Compiles one route's `path:`; reports a bad value or a duplicate within
/// the site and returns `None` for a bad value.
pub(super) fn route_location(
    site: &str,
    route: &Spanned<super::file::FileRoute>,
    seen: &mut SeenRoutes,
    ds: &mut Diagnostics,
) -> Option<Location> {
    let path = &route.value.path;
    let methods: Option<Vec<String>> = route
        .value
        .methods
        .as_ref()
        .map(|l| l.value.iter().map(|m| m.value.clone()).collect());
    let location = match Location::parse(&path.value) {
        Ok(l) => l,
        Err(e) => {
            let fix = match &e {
                LocationError::Blank | LocationError::Empty(_) => {
                    "write a path after the modifier, e.g. `= /healthz` or `~* \\.php$`".to_string()
                }
                LocationError::UnknownModifier(m) if m.starts_with('@') => {
                    "a named route's path is the name alone, e.g. `@app` (reached through a files route's `try_files`)".to_string()
                }
                LocationError::UnknownModifier(_) => {
                    "use `= /p` (exact), `/p` (prefix), `^~ /p` (prefix, no regex search), `~ re` (regex) or `~* re` (case-insensitive regex)".to_string()
                }
                LocationError::NotAbsolute { modifier: "", path } => {
                    format!("write `/{}`", path.trim_start_matches('/'))
                }
                LocationError::NotAbsolute { modifier, path } => {
                    format!("write `{modifier} /{}`", path.trim_start_matches('/'))
                }
                LocationError::BadRegex { .. } => {
                    "fix the expression (regex crate syntax: no look-around, no back-references)"
                        .to_string()
                }
            };
            ds.error(pos(path), e.to_string(), fix);
            return None;
        }
    };
    let slot = location.identity();
    let now = location.as_written();
    let earlier = seen.0.entry(slot).or_default();
    // Routes of one location may split it by method: at most one takes
    // every method, and no method is named twice.
    let clash = earlier.iter().find(|(_, m)| match (m, &methods) {
        (None, None) => true,
        (Some(a), Some(b)) => a.iter().any(|x| b.contains(x)),
        _ => false,
    });
    if let Some((first, _)) = clash {
        let what = if *first == now {
            format!("route path '{now}' appears twice in site '{site}'")
        } else {
            format!("route paths '{first}' and '{now}' in site '{site}' are the same location")
        };
        let fix = if methods.is_some() {
            "routes of one location must name different methods: the second is never chosen for a method both name"
        } else {
            "keep one route per location (or split it by `methods:`): the second is never chosen"
        };
        ds.error(pos(path), what, fix);
    } else {
        earlier.push((now, methods));
    }
    Some(location)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(s: &str) -> HostPattern {
        parse_host_pattern(s).unwrap_or_else(|e| panic!("{s}: {e:?}"))
    }

    #[test]
    fn host_patterns_take_the_nginx_server_name_forms() {
        assert_eq!(
            host("Example.COM."),
            HostPattern::Exact("example.com".into())
        );
        assert_eq!(
            host("*.example.com"),
            HostPattern::Wildcard(".example.com".into())
        );
        assert_eq!(
            host("www.example.*"),
            HostPattern::TrailingWildcard("www.example.".into())
        );
        let HostPattern::Regex(r) = host("~^(?<sub>[a-z]+)\\.example\\.net$") else {
            panic!("a regex");
        };
        assert!(r.nocase(), "host regexes ignore case, like nginx's");
        assert!(r.regex().is_match("a.example.net"));
        assert_eq!(host("127.0.0.1"), HostPattern::Exact("127.0.0.1".into()));
    }

    #[test]
    fn bad_host_patterns_say_what_and_how() {
        let e = |s| parse_host_pattern(s).expect_err(s);
        for bad in ["a..b", "exa mple.com", "-bad.com", ".*", "~"] {
            assert!(
                e(bad).what.contains("not a host name") || bad == "~",
                "{bad}: {:?}",
                e(bad)
            );
        }
        for bad in ["*example.com", "a.*.com", "*.example.*", "*", "*."] {
            assert!(e(bad).what.contains("'*'"), "{bad}: {:?}", e(bad));
        }
        assert!(
            e(".example.com")
                .fix
                .contains("`example.com` and `*.example.com`")
        );
        assert!(e("~").what.contains("nothing follows '~'"));
        let bad = e("~^(unclosed");
        assert!(bad.what.contains("does not compile"), "{bad:?}");
        assert!(!bad.what.contains('\n'), "one line: {bad:?}");
    }
}
