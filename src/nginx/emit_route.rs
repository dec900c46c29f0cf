//! Writes a site's routes and header steps: `path:` with nginx's location
//! modifiers, the terminal (`upstream`, `redirect`, `respond`),
//! `upstream_path`, `rewrite`, `request_buffering`, `max_body_size`, `retry_statuses`, and the
//! `request_headers` / `response_headers` steps, and `checks:` and the
//! top-level `maps:`. Header lists every route
//! of a site shares are written once at site level (response headers only
//! where plain HTTP is served, not redirected: see [`shared`]).

use super::checks::{CheckDef, MapDef};
use super::convert::{Answer, Headers, Model, Route, Site};
use super::files::FilesDef;
use super::yaml::{Out, quoted, scalar};

/// The header steps written at site level (those every route shares), and
/// whether the routes then leave them out.
pub(crate) fn shared(site: &Site<'_>) -> (Option<Headers>, Option<Headers>) {
    fn common<'r>(
        routes: &'r [Route<'_>],
        get: impl Fn(&'r Route<'_>) -> &'r Headers,
    ) -> Option<Headers> {
        let first = get(routes.first()?);
        (!first.is_empty() && routes.iter().all(|r| get(r) == first)).then(|| first.clone())
    }
    // Site-level response headers also go on the plain_http redirect,
    // which nginx answered from another server block (without them).
    let redirects_plain =
        site.tls.is_some() && site.plain_http.as_ref().is_none_or(|p| p.mode != "serve");
    (
        common(&site.routes, |r| &r.req),
        common(&site.routes, |r| &r.resp).filter(|_| !redirects_plain),
    )
}

/// Writes `request_headers:` / `response_headers:` at `indent`.
pub(crate) fn headers(out: &mut Out, indent: usize, key: &str, h: &Headers) {
    if h.is_empty() {
        return;
    }
    out.line(indent, &format!("{key}:"), None);
    if !h.set.is_empty() {
        out.line(indent + 1, "set:", None);
        // A response `set` comes from headers-more, which sets on every
        // status (not only 2xx/3xx, as add_header): `always`.
        let always = key == "response_headers";
        for (n, v) in &h.set {
            let v = if always {
                format!("{{value: {}, always: true}}", quoted(v))
            } else {
                quoted(v)
            };
            out.line(indent + 2, &format!("{}: {v}", scalar(n)), None);
        }
    }
    if !h.add.is_empty() {
        out.line(indent + 1, "add:", None);
        let mut seen: Vec<String> = Vec::new();
        for (n, v, always) in &h.add {
            let lower = n.to_ascii_lowercase();
            if seen.contains(&lower) {
                out.comment(
                    indent + 2,
                    &format!("EDIT: nginx also added {n}: {v} (one value per name here)"),
                );
                continue;
            }
            seen.push(lower);
            if *always {
                out.line(
                    indent + 2,
                    &format!("{}: {{value: {}, always: true}}", scalar(n), quoted(v)),
                    None,
                );
            } else {
                out.line(indent + 2, &format!("{}: {}", scalar(n), quoted(v)), None);
            }
        }
    }
    if !h.remove.is_empty() {
        let names: Vec<String> = h.remove.iter().map(|n| scalar(n)).collect();
        out.line(indent + 1, &format!("remove: [{}]", names.join(", ")), None);
    }
}

/// `redirect: {…}` or `respond: {…}` on one line.
fn answer(a: &Answer) -> String {
    match a {
        Answer::Redirect { to, status } => {
            format!("redirect: {{to: {}, status: {status}}}", quoted(to))
        }
        Answer::Respond {
            status,
            body,
            content_type,
        } => {
            let mut s = format!("respond: {{status: {status}");
            if let Some(b) = body {
                s.push_str(&format!(", body: {}", quoted(b)));
            }
            if let Some(t) = content_type {
                s.push_str(&format!(", content_type: {}", quoted(t)));
            }
            s.push('}');
            s
        }
        Answer::Bytes {
            content_type,
            base64,
        } => format!(
            "respond: {{status: 200, content_type: {content_type}, body_base64: {}}}",
            quoted(base64)
        ),
    }
}

/// `files: {…}` on one line.
fn files(f: &FilesDef) -> String {
    let list = |v: &[String]| v.iter().map(|x| quoted(x)).collect::<Vec<_>>().join(", ");
    let mut s = String::from("files: {");
    match (&f.root, &f.alias) {
        (_, Some(a)) => s.push_str(&format!("alias: {}", quoted(a))),
        (Some(r), None) => s.push_str(&format!("root: {}", quoted(r))),
        (None, None) => {}
    }
    if let Some(i) = &f.index {
        s.push_str(&format!(", index: [{}]", list(i)));
    }
    if let Some(t) = &f.try_files {
        s.push_str(&format!(", try_files: [{}]", list(t)));
    }
    if f.autoindex {
        s.push_str(", autoindex: true");
    }
    if let Some(m) = &f.mp4 {
        let mut opts = Vec::new();
        if let Some(b) = &m.buffer_size {
            opts.push(format!("buffer_size: {}", quoted(b)));
        }
        if let Some(b) = &m.max_buffer_size {
            opts.push(format!("max_buffer_size: {}", quoted(b)));
        }
        if m.start_key_frame {
            opts.push("start_key_frame: true".to_string());
        }
        match opts.is_empty() {
            true => s.push_str(", mp4: true"),
            false => s.push_str(&format!(", mp4: {{{}}}", opts.join(", "))),
        }
    }
    s.push('}');
    s
}

/// Writes `checks:` (a site's or a route's) at `indent`, if there are any.
pub(crate) fn checks(out: &mut Out, indent: usize, list: &[CheckDef]) {
    if list.is_empty() {
        return;
    }
    out.line(indent, "checks:", None);
    for c in list {
        out.line(
            indent + 1,
            &format!("- if: {}", quoted(&c.condition)),
            Some(&format!("from the if at {}", c.at)),
        );
        out.line(indent + 2, &answer(&c.answer), None);
    }
}

/// Writes `maps:` at the top level, if there are any.
pub(crate) fn maps(out: &mut Out, list: &[MapDef]) {
    if list.is_empty() {
        return;
    }
    out.line(0, "maps:", None);
    for m in list {
        out.line(
            1,
            &format!("{}:", scalar(&m.name)),
            Some(&format!("from {}", m.at)),
        );
        out.line(2, &format!("source: {}", quoted(&m.source)), None);
        if let Some(d) = &m.default {
            out.line(2, &format!("default: {}", quoted(d)), None);
        }
        if !m.values.is_empty() {
            out.line(2, "values:", None);
            for (k, v) in &m.values {
                out.line(3, &format!("{}: {}", quoted(k), quoted(v)), None);
            }
        }
    }
    out.blank();
}

/// Writes one route (the list item) at indent 3.
pub(crate) fn route(
    out: &mut Out,
    m: &Model<'_>,
    r: &Route<'_>,
    comment: &str,
    site_headers: &(Option<Headers>, Option<Headers>),
) {
    out.line(3, &format!("- path: {}", scalar(&r.path)), Some(comment));
    if let Some(m) = &r.methods {
        out.line(4, &format!("methods: [{}]", m.join(", ")), None);
    }
    if r.plain_only {
        out.line(4, "scheme: http", None);
    }
    checks(out, 4, &r.checks);
    if let Some(a) = &r.access {
        super::access::emit(out, 4, a);
    }
    if let Some(f) = &r.files {
        out.line(4, &files(f), None);
        if let Some(e) = &f.expires {
            out.line(4, &format!("expires: {}", quoted(e)), None);
        }
    }
    if let Some(e) = &r.expires {
        out.line(4, &format!("expires: {}", quoted(e)), None);
    }
    if let Some(c) = &r.charset {
        out.line(4, &format!("charset: {}", quoted(c)), None);
    }
    match (&r.target, &r.answer) {
        (_, Some(a)) => out.line(4, &answer(a), None),
        (Some(_), None) => {
            let up = m
                .upstreams
                .get(r.upstream)
                .map(|u| u.name.as_str())
                .unwrap_or("");
            out.line(4, &format!("upstream: {}", scalar(up)), None);
        }
        (None, None) => {}
    }
    if let Some(p) = &r.upstream_path {
        out.line(4, &format!("upstream_path: {}", quoted(p)), None);
    }
    if let Some(t) = r.target.as_ref().filter(|t| !t.redirects.is_empty()) {
        out.line(4, "rewrite_location:", None);
        for w in &t.redirects {
            out.line(
                5,
                &format!("- {{from: {}, to: {}}}", quoted(&w.from), quoted(&w.to)),
                Some(&w.comment),
            );
        }
    }
    if !r.rewrites.is_empty() {
        out.line(4, "rewrite:", None);
        for w in &r.rewrites {
            out.line(
                5,
                &format!(
                    "- {{from: {}, to: {}, flag: {}}}",
                    quoted(&w.from),
                    quoted(&w.to),
                    w.flag
                ),
                Some(&format!("from {}", w.at)),
            );
        }
    }
    if let Some(b) = r.request_buffering {
        out.line(
            4,
            &format!("request_buffering: {}", if b { "on" } else { "off" }),
            None,
        );
    }
    if let Some((size, at)) = &r.max_body_size {
        out.line(
            4,
            &format!("max_body_size: {size}"),
            Some(&format!("from {at}")),
        );
    }
    if let Some((statuses, at)) = &r.retry {
        let list: Vec<String> = statuses.iter().map(u16::to_string).collect();
        out.line(
            4,
            &format!("retry_statuses: [{}]", list.join(", ")),
            Some(&format!("from {at}")),
        );
    }
    if site_headers.0.is_none() {
        headers(out, 4, "request_headers", &r.req);
    }
    if site_headers.1.is_none() {
        headers(out, 4, "response_headers", &r.resp);
    }
    super::ratelimit::route(out, &m.rate, r);
}
