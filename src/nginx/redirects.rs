//! nginx `proxy_redirect` → a route's `rewrite_location:` (see
//! `plan::proxy_redirect` for what greenlight does with it).
//!
//! nginx inherits the directives as a list (a level with its own replaces the
//! outer ones; `off` empties the list), and with no directive at all it
//! behaves as `proxy_redirect default`: the `proxy_pass` URL as written is
//! replaced by the location's prefix (a `proxy_pass` without URI: its URL
//! plus `/` by `/`). greenlight's upstreams have no URL, so the importer
//! writes that rule out. The implicit default is written only where the
//! route sends the `proxy_pass` host as `Host` (no `proxy_set_header Host`):
//! that is when the app builds its redirects from that host, and when
//! nginx's rewrite changes anything in practice.

use super::convert::Ctx;
use super::directives::shown;
use super::inherit::{Inherit, Level};
use super::parse::Directive;
use super::vars;

/// One rule of `rewrite_location:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RedirectRule {
    /// Prefix template or `~regex`.
    pub from: String,
    /// Replacement template.
    pub to: String,
    /// Where it came from, for the YAML comment.
    pub comment: String,
}

/// Records a `proxy_redirect` of any level; false for other directives.
pub(crate) fn record<'a>(d: &'a Directive, level: &mut Level<'a>) -> bool {
    if d.name != "proxy_redirect" {
        return false;
    }
    level.push(d);
    true
}

/// The `proxy_pass` a location's rules derive from.
pub(crate) struct PassUrl<'a> {
    /// The `proxy_pass` argument (its `set` variables resolved).
    pub url: &'a str,
    /// True when it had variables nginx resolves per request.
    pub variable: bool,
    /// True when it has a URI part (`http://b/two/`).
    pub has_uri: bool,
    /// The location's prefix (empty for a regex or named location).
    pub location: &'a str,
}

/// The rules in force for a location proxied to `pass`; `host_set` says
/// whether a `proxy_set_header Host` is in force.
pub(crate) fn rules(
    ctx: &mut Ctx<'_>,
    inh: &Inherit<'_>,
    pass: &PassUrl<'_>,
    host_set: bool,
) -> Vec<RedirectRule> {
    if inh.redirects.list.is_empty() {
        if host_set || pass.variable {
            return Vec::new();
        }
        return default_rule(
            pass,
            "nginx's implicit `proxy_redirect default`".to_string(),
        )
        .into_iter()
        .collect();
    }
    let mut out = Vec::new();
    for d in &inh.redirects.list {
        let at = ctx.at(d);
        match d.args.as_slice() {
            [off] if off == "off" => {
                out.clear();
                ctx.note(d, "'proxy_redirect off': the upstream's Location and Refresh pass unchanged (greenlight's default)");
            }
            [default] if default == "default" => {
                if pass.variable {
                    ctx.warn(d, "'proxy_redirect default' with a `proxy_pass` that has variables (nginx refuses it); not converted");
                    continue;
                }
                out.extend(default_rule(
                    pass,
                    format!("from {at} (`default`: the proxy_pass URL → the location)"),
                ));
            }
            [from, to] => {
                if let Some(r) = explicit(ctx, d, from, to, inh, at) {
                    out.push(r);
                }
            }
            _ => ctx.warn(
                d,
                format!(
                    "'{}' is not `off`, `default` or `FROM TO`; not converted",
                    shown(d)
                ),
            ),
        }
    }
    out
}

fn default_rule(pass: &PassUrl<'_>, comment: String) -> Option<RedirectRule> {
    let (from, to) = if pass.has_uri && !pass.location.is_empty() {
        (pass.url.to_string(), pass.location.to_string())
    } else if pass.has_uri {
        return None;
    } else {
        (format!("{}/", pass.url), "/".to_string())
    };
    Some(RedirectRule { from, to, comment })
}

fn explicit(
    ctx: &mut Ctx<'_>,
    d: &Directive,
    from: &str,
    to: &str,
    inh: &Inherit<'_>,
    at: String,
) -> Option<RedirectRule> {
    // A regex is not a template in nginx either: `$` is its end anchor.
    let (from, mut unknown) = if from.starts_with('~') {
        (from.to_string(), Vec::new())
    } else {
        vars::resolve(from, &inh.set_vars, &[])
    };
    let (to, more) = vars::resolve(to, &inh.set_vars, &[]);
    unknown.extend(more);
    if !unknown.is_empty() {
        ctx.warn(
            d,
            format!(
                "'{}' uses {}, which greenlight does not know; not converted",
                shown(d),
                vars::list(&unknown)
            ),
        );
        return None;
    }
    Some(RedirectRule {
        from,
        to,
        comment: format!("from {at}"),
    })
}
