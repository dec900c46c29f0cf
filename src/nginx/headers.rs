//! Header steps of a route: `proxy_set_header` → `request_headers`,
//! `add_header` / `proxy_hide_header` / `more_set_headers` →
//! `response_headers`.
//!
//! nginx inherits each of these lists as a whole: a level with its own
//! entries drops every inherited one (see `convert::Level`). greenlight
//! merges site and route steps instead, so the importer computes the list
//! nginx had in force for each location and emits exactly that (`emit.rs`
//! lifts a list every route shares to the site); where a location dropped
//! inherited headers, a note names them.

use super::convert::{Ctx, Headers, Inherit, Target};
use super::directives::{proxy_header_note, shown};
use super::parse::Directive;
use super::vars;

/// A value for a header step, or a warning naming the unknown variables.
fn value(
    ctx: &mut Ctx<'_>,
    d: &Directive,
    raw: &str,
    inh: &Inherit<'_>,
    captures: &[String],
) -> Option<String> {
    let (v, unknown) = vars::resolve(raw, &inh.set_vars, captures);
    if unknown.is_empty() {
        return Some(v);
    }
    if unknown.iter().all(|n| n.starts_with("upstream_cache")) {
        ctx.note(
            d,
            format!(
                "'{}' only reports nginx's cache, and greenlight does not cache, so it is not sent",
                shown(d)
            ),
        );
        return None;
    }
    let what = if d.name == "proxy_set_header" {
        "the upstream no longer receives this header"
    } else {
        "the client no longer receives this header"
    };
    ctx.warn(
        d,
        format!(
            "'{}' uses {}, which greenlight does not know, so {what}",
            shown(d),
            vars::list(&unknown)
        ),
    );
    None
}

fn dropped_note(ctx: &mut Ctx<'_>, level: &super::convert::Level<'_>, what: &str) {
    let (Some(first), false) = (level.list.first(), level.dropped.is_empty()) else {
        return;
    };
    let names: Vec<&str> = level
        .dropped
        .iter()
        .map(|d| d.arg0())
        .filter(|n| !level.list.iter().any(|d| d.arg0().eq_ignore_ascii_case(n)))
        .collect();
    if names.is_empty() {
        return;
    }
    ctx.note(
        first,
        format!(
            "nginx dropped the outer {what} {} here (a block with its own {what} inherits none), and so does the converted route; greenlight itself would merge site and route headers",
            names.join(", ")
        ),
    );
}

/// The request and response header steps nginx had in force for a route.
pub(crate) fn steps(
    ctx: &mut Ctx<'_>,
    inh: &Inherit<'_>,
    target: Option<&Target<'_>>,
    captures: &[String],
) -> (Headers, Headers) {
    let mut req = Headers::default();
    let mut host_set = false;
    // Request headers only matter to a route that proxies.
    let proxied: &[&Directive] = if target.is_some() {
        &inh.proxy_headers.list
    } else {
        &[]
    };
    for d in proxied {
        let [name, raw] = d.args.as_slice() else {
            ctx.warn(
                d,
                "proxy_set_header needs a header name and a value; ignored",
            );
            continue;
        };
        if name.eq_ignore_ascii_case("host") {
            host_set = true;
        }
        if let Some(note) = proxy_header_note(d) {
            ctx.warn(d, note);
            continue;
        }
        if name.eq_ignore_ascii_case("x-forwarded-proto") && raw.eq_ignore_ascii_case("https") {
            ctx.note(
                d,
                format!("'{}' is built in: greenlight sets X-Forwarded-Proto from the listener (https on TLS listeners)", shown(d)),
            );
            continue;
        }
        if raw.is_empty() {
            req.remove.push(name.clone());
            continue;
        }
        if raw == "$ssl_early_data" {
            // Empty unless a request came in TLS 1.3 early data, which
            // greenlight does not accept; nginx sends no header for an
            // empty value.
            ctx.note(
                d,
                format!("'{}' is not needed: greenlight does not accept TLS early data (0-RTT), so $ssl_early_data is always empty and nginx sent no such header either", shown(d)),
            );
            continue;
        }
        if let Some(v) = value(ctx, d, raw, inh, captures) {
            req.set.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            req.set.push((name.clone(), v));
        }
    }
    if target.is_some() {
        dropped_note(ctx, &inh.proxy_headers, "proxy_set_header");
    }
    if let Some(t) = target
        && !host_set
        && !t.proxy_host.is_empty()
    {
        // nginx's default is `proxy_set_header Host $proxy_host`.
        req.set
            .insert(0, ("Host".to_string(), t.proxy_host.clone()));
    }

    let mut resp = Headers::default();
    for d in &inh.hide_headers.list {
        match d.args.as_slice() {
            [name] => resp.remove.push(name.clone()),
            _ => ctx.warn(d, "proxy_hide_header needs one header name; ignored"),
        }
    }
    for d in &inh.add_headers.list {
        let (name, raw, always) = match d.args.as_slice() {
            [n, v] => (n, v, false),
            [n, v, a] if a == "always" => (n, v, true),
            _ => {
                ctx.warn(
                    d,
                    format!("'{}' is not a valid add_header; ignored", shown(d)),
                );
                continue;
            }
        };
        if let Some(v) = value(ctx, d, raw, inh, captures) {
            resp.add.push((name.clone(), v, always));
        }
    }
    dropped_note(ctx, &inh.add_headers, "add_header");
    for d in &inh.more_set {
        if d.args.iter().any(|a| a.starts_with('-')) {
            ctx.warn(
                d,
                format!("'{}' limits the header to some statuses or types (-s/-t), which greenlight does not; not converted", shown(d)),
            );
            continue;
        }
        for a in &d.args {
            let Some((name, raw)) = more_header(a) else {
                ctx.warn(
                    d,
                    format!("more_set_headers '{a}' names no header; ignored"),
                );
                continue;
            };
            if raw.is_empty() {
                resp.remove.push(name.to_string());
            } else if let Some(v) = value(ctx, d, raw, inh, captures) {
                resp.set.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
                resp.set.push((name.to_string(), v));
            }
        }
    }
    (req, resp)
}

/// A `more_set_headers` argument read as headers-more reads it: the name
/// ends at the first `:` or white space, and the value starts after the
/// `:`s and spaces that follow (`"X-A: 1"`, `"X-A 1"` and `"X-A:1"` are
/// the same header). `None` when there is no name.
pub(crate) fn more_header(arg: &str) -> Option<(&str, &str)> {
    let t = arg.trim_start();
    let end = t
        .find(|c: char| c == ':' || c.is_whitespace())
        .unwrap_or(t.len());
    let (name, rest) = t.split_at(end);
    let value = rest.trim_start_matches(|c: char| c == ':' || c.is_whitespace());
    (!name.is_empty()).then_some((name, value.trim_end()))
}

#[cfg(test)]
mod more_header_tests {
    use super::more_header;

    #[test]
    fn names_end_at_a_colon_or_a_space_like_headers_more() {
        assert_eq!(more_header("X-A: 1"), Some(("X-A", "1")));
        assert_eq!(more_header("X-A:1"), Some(("X-A", "1")));
        assert_eq!(
            more_header("X-Up $upstream_addr"),
            Some(("X-Up", "$upstream_addr"))
        );
        assert_eq!(more_header("  Server:"), Some(("Server", "")));
        assert_eq!(more_header("X-A: a b "), Some(("X-A", "a b")));
        assert_eq!(more_header(" : x"), None);
    }
}
