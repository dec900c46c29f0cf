//! A site's `default:` and `plain_http:` keys.
//!
//! nginx keeps one default server per port, so an imported site may be the
//! catch-all on TLS listeners while plain requests for unknown hosts get
//! another answer (certbot's `return 404` port-80 block): `default: https`
//! and `default: http` say that; `true` stays "every listener".
//!
//! `plain_http: {redirect: 301, to: URL}` is nginx's port-80 block that sends
//! every name to one canonical host (`return 301 https://example.com$request_uri`);
//! the short forms redirect to the request's own URL on https.

use std::sync::Arc;

use serde_saphyr::Spanned;

use super::diag::Diagnostics;
use super::file::{FilePlainHttp, FileSite, Scalar};
use super::model::{PlainHttp, SiteDefault};
use super::validate::pos;
use crate::plan::template::{Scope, Template};

/// Tracks which site took each listener kind's default, to report two.
#[derive(Default)]
pub(super) struct Defaults {
    tls: Option<String>,
    plain: Option<String>,
}

/// `default:` of site `name`, checking no other site took the same listeners.
pub(super) fn site_default(
    name: &str,
    value: &Option<Spanned<Scalar>>,
    seen: &mut Defaults,
    ds: &mut Diagnostics,
) -> SiteDefault {
    let Some(v) = value else {
        return SiteDefault::No;
    };
    let d = match v.value.0.trim() {
        "true" => SiteDefault::All,
        "false" => SiteDefault::No,
        "https" => SiteDefault::Https,
        "http" => SiteDefault::Http,
        other => {
            ds.error(
                pos(v),
                format!("default '{other}' is not known"),
                "use `true` (unknown hosts on every listener), `https` (TLS listeners only) or `http` (plain listeners only)",
            );
            return SiteDefault::No;
        }
    };
    let mut clashes: Vec<(&str, String)> = Vec::new();
    for (kind, tls, slot) in [
        ("TLS", true, &mut seen.tls),
        ("plain", false, &mut seen.plain),
    ] {
        if !d.covers(tls) {
            continue;
        }
        match slot {
            Some(other) => clashes.push((kind, other.clone())),
            None => *slot = Some(name.to_string()),
        }
    }
    let on = match clashes.as_slice() {
        [] => return d,
        [(_, a), (_, b)] if a == b => "every listener".to_string(),
        [(kind, _), ..] => format!("{kind} listeners"),
    };
    let other = &clashes[0].1;
    ds.error(
        pos(v),
        format!("sites '{other}' and '{name}' are both the default site on {on}"),
        "keep one default per kind of listener: `default: true` on one site, or `https` on one and `http` on another",
    );
    d
}

/// `plain_http:` of a site, with the redirect target when one is written.
pub(super) fn plain_http(
    name: &str,
    site: &Spanned<FileSite>,
    ds: &mut Diagnostics,
) -> PlainSetting {
    let fallback = (PlainHttp::Redirect(308), None, None);
    let Some(p) = &site.value.plain_http else {
        return fallback;
    };
    if site.value.tls.is_none() {
        ds.error(
            pos(p),
            format!("plain_http is set but site '{name}' has no `tls:`"),
            "remove plain_http (a plain-HTTP-only site is always served), or add `tls:`",
        );
    }
    match &p.value {
        FilePlainHttp::Mode(m) => match plain_http_mode(m) {
            Some(mode) => (mode, None, None),
            None => {
                ds.error(
                    pos(p),
                    format!("plain_http '{m}' is not known"),
                    "use `redirect` (308), `redirect 301` (or 302, 303, 307, 308), `serve`, `not_found`, `default`, or `{redirect: 301, to: \"https://example.com$request_uri\"}`",
                );
                fallback
            }
        },
        FilePlainHttp::Redirect {
            status,
            to,
            response_headers,
            unknown,
        } => {
            let code = match status {
                None => 308,
                Some(s) => match s.value.0.trim().parse() {
                    Ok(c @ (301 | 302 | 303 | 307 | 308)) => c,
                    _ => {
                        ds.error(
                            pos(s),
                            format!(
                                "plain_http redirect status '{}' is not a redirect",
                                s.value.0
                            ),
                            "use 301, 302, 303, 307 or 308",
                        );
                        308
                    }
                },
            };
            let headers = response_headers
                .as_ref()
                .map(|h| super::validate_steps::response_headers(h, &Scope::default(), ds));
            let t = to.as_ref().and_then(|to| {
                super::validate_steps::template(to, pos(to), &to.value, &Scope::default(), ds)
            });
            for k in unknown {
                ds.error(
                    pos(k),
                    format!("plain_http has no key '{}'", k.value),
                    "a plain_http map takes `redirect:` (the status), `to:` (the URL) and `response_headers:`",
                );
            }
            (PlainHttp::Redirect(code), t.map(Arc::new), headers)
        }
    }
}

/// A site's `plain_http`: the mode, the redirect's own target (`None`: the
/// request's URL on https) and the redirect's own response headers.
pub(super) type PlainSetting = (
    PlainHttp,
    Option<Arc<Template>>,
    Option<crate::plan::headers::ResponseHeaderSteps>,
);

/// `redirect`, `redirect NNN` (a redirect status) or `serve`.
fn plain_http_mode(value: &str) -> Option<PlainHttp> {
    let mut words = value.split_whitespace();
    let mode = match (words.next()?, words.next()) {
        ("serve", None) => PlainHttp::Serve,
        ("not_found", None) => PlainHttp::NotFound,
        ("default", None) => PlainHttp::Default,
        ("redirect", None) => PlainHttp::Redirect(308),
        ("redirect", Some(code)) => match code.parse() {
            Ok(c @ (301 | 302 | 303 | 307 | 308)) => PlainHttp::Redirect(c),
            _ => return None,
        },
        _ => return None,
    };
    words.next().is_none().then_some(mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_takes_a_redirect_status_or_serve() {
        assert_eq!(plain_http_mode("redirect"), Some(PlainHttp::Redirect(308)));
        assert_eq!(
            plain_http_mode("redirect 301"),
            Some(PlainHttp::Redirect(301))
        );
        assert_eq!(plain_http_mode("serve"), Some(PlainHttp::Serve));
        assert_eq!(plain_http_mode("not_found"), Some(PlainHttp::NotFound));
        assert_eq!(plain_http_mode("default"), Some(PlainHttp::Default));
        for bad in ["redirect 200", "redirect 301 x", "serve 301", "proxy", ""] {
            assert_eq!(plain_http_mode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn default_scopes_cover_their_listeners() {
        assert!(SiteDefault::All.covers(true) && SiteDefault::All.covers(false));
        assert!(SiteDefault::Https.covers(true) && !SiteDefault::Https.covers(false));
        assert!(!SiteDefault::Http.covers(true) && SiteDefault::Http.covers(false));
        assert!(!SiteDefault::No.any());
    }
}
