//! nginx `gzip*` and ngx_brotli's `brotli*` → `compress:`.
//!
//! nginx inherits each directive on its own from http to server to
//! location ([`GzipIn`] rides in `Inherit`); each route gets the block in
//! force where it was converted, and a block every route shares is written
//! once at site level. What greenlight does differently is said in a note:
//! `Vary` is always sent (`gzip_vary`), proxied answers are compressed
//! whatever the request's `Via` (`gzip_proxied`), MSIE 6 is gone
//! (`gzip_disable`). nginx's `gzip_types` always includes `text/html`;
//! greenlight's `types` is the whole list, so it is written out.

use super::convert::{Ctx, Route, Site};
use super::directives::shown;
use super::parse::Directive;
use super::yaml::{Out, scalar};

/// The `gzip*`/`brotli*` directives in force at a level.
#[derive(Debug, Clone, Default)]
pub(crate) struct GzipIn<'a> {
    gzip: Option<&'a Directive>,
    gzip_types: Option<&'a Directive>,
    gzip_min_length: Option<&'a Directive>,
    gzip_comp_level: Option<&'a Directive>,
    gzip_static: Option<&'a Directive>,
    brotli: Option<&'a Directive>,
    brotli_types: Option<&'a Directive>,
    brotli_min_length: Option<&'a Directive>,
    brotli_comp_level: Option<&'a Directive>,
    brotli_static: Option<&'a Directive>,
}

/// One route's (or site's) `compress:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CompressDef {
    /// Codings made on the fly (`br` before `gzip`, as ngx_brotli does).
    pub algorithms: Vec<&'static str>,
    /// The MIME types (nginx's `text/html` included), or `*`.
    pub types: Vec<String>,
    /// `gzip_min_length` when not nginx's 20.
    pub min_length: Option<u64>,
    /// `gzip_comp_level` when not 1.
    pub gzip_level: Option<u32>,
    /// `brotli_comp_level` when not 6.
    pub br_level: Option<u32>,
    /// Siblings served (`brotli_static`, `gzip_static`).
    pub precompressed: Vec<&'static str>,
}

/// Records `d` when it is one of the directives converted here; false
/// otherwise (the table's note or warning applies).
pub(crate) fn record<'a>(ctx: &mut Ctx<'a>, d: &'a Directive, g: &mut GzipIn<'a>) -> bool {
    let slot = match d.name.as_str() {
        "gzip" => &mut g.gzip,
        "gzip_types" => &mut g.gzip_types,
        "gzip_min_length" => &mut g.gzip_min_length,
        "gzip_comp_level" => &mut g.gzip_comp_level,
        "gzip_static" => &mut g.gzip_static,
        "brotli" => &mut g.brotli,
        "brotli_types" => &mut g.brotli_types,
        "brotli_min_length" => &mut g.brotli_min_length,
        "brotli_comp_level" => &mut g.brotli_comp_level,
        "brotli_static" => &mut g.brotli_static,
        _ => return false,
    };
    if d.args.is_empty() {
        ctx.warn(d, format!("'{}' needs a value; ignored", shown(d)));
        return true;
    }
    if d.name.ends_with("_static") && d.arg0() == "always" {
        ctx.warn(
            d,
            format!("'{}': greenlight serves a precompressed sibling only to clients that accept its coding (nginx's `on`), never to others", shown(d)),
        );
    }
    *slot = Some(d);
    true
}

fn on(d: Option<&Directive>) -> bool {
    d.is_some_and(|d| matches!(d.arg0(), "on" | "always"))
}

fn number(ctx: &mut Ctx<'_>, d: Option<&Directive>, lo: u64, hi: u64) -> Option<u64> {
    let d = d?;
    match d.arg0().parse::<u64>() {
        Ok(n) if (lo..=hi).contains(&n) => Some(n),
        _ => {
            ctx.warn(
                d,
                format!(
                    "'{}' is not a number from {lo} to {hi}; the default is used",
                    shown(d)
                ),
            );
            None
        }
    }
}

fn size(ctx: &mut Ctx<'_>, d: Option<&Directive>) -> Option<u64> {
    let d = d?;
    let v = super::addr::parse_size(d.arg0()).and_then(|s| {
        let (n, mult) = match s.as_bytes().last() {
            Some(b'k') => (&s[..s.len() - 1], 1 << 10),
            Some(b'm') => (&s[..s.len() - 1], 1 << 20),
            Some(b'g') => (&s[..s.len() - 1], 1 << 30),
            _ => (s.as_str(), 1),
        };
        n.parse::<u64>().ok()?.checked_mul(mult)
    });
    if v.is_none() {
        ctx.warn(
            d,
            format!("'{}' is not a length; the default is used", shown(d)),
        );
    }
    v
}

/// The block in force, or `None` when nothing compresses.
pub(crate) fn def(ctx: &mut Ctx<'_>, g: &GzipIn<'_>, serves_files: bool) -> Option<CompressDef> {
    let mut algorithms = Vec::new();
    if on(g.brotli) {
        algorithms.push("br");
    }
    if on(g.gzip) {
        algorithms.push("gzip");
    }
    let mut precompressed = Vec::new();
    if serves_files && on(g.brotli_static) {
        precompressed.push("br");
    }
    if serves_files && on(g.gzip_static) {
        precompressed.push("gzip");
    }
    if algorithms.is_empty() && precompressed.is_empty() {
        return None;
    }
    // nginx: text/html always, plus each module's list (`*` = every type).
    let mut types = vec!["text/html".to_string()];
    let lists = [(on(g.gzip), g.gzip_types), (on(g.brotli), g.brotli_types)];
    for d in lists.iter().filter(|(on, _)| *on).filter_map(|(_, d)| *d) {
        for t in &d.args {
            let t = t.to_ascii_lowercase();
            if !types.contains(&t) {
                types.push(t);
            }
        }
    }
    if types.iter().any(|t| t == "*") {
        types = vec!["*".to_string()];
    }
    let min = match (on(g.gzip), on(g.brotli)) {
        (true, _) => size(ctx, g.gzip_min_length),
        (false, true) => size(ctx, g.brotli_min_length),
        _ => None,
    };
    Some(CompressDef {
        algorithms,
        types,
        min_length: min.filter(|n| *n != 20),
        gzip_level: number(ctx, g.gzip_comp_level, 1, 9)
            .map(|n| n as u32)
            .filter(|n| *n != 1),
        br_level: number(ctx, g.brotli_comp_level, 0, 11)
            .map(|n| n as u32)
            .filter(|n| *n != 6),
        precompressed,
    })
}

/// `compress: {…}` on one line.
fn line(c: &CompressDef) -> String {
    let types: Vec<String> = c.types.iter().map(|t| scalar(t)).collect();
    let mut s = format!(
        "compress: {{algorithms: [{}], types: [{}]",
        c.algorithms.join(", "),
        types.join(", ")
    );
    if let Some(n) = c.min_length {
        s.push_str(&format!(", min_length: {n}"));
    }
    let mut levels = Vec::new();
    if let Some(n) = c.gzip_level {
        levels.push(format!("gzip: {n}"));
    }
    if let Some(n) = c.br_level {
        levels.push(format!("br: {n}"));
    }
    if !levels.is_empty() {
        s.push_str(&format!(", level: {{{}}}", levels.join(", ")));
    }
    if !c.precompressed.is_empty() {
        s.push_str(&format!(
            ", precompressed: [{}]",
            c.precompressed.join(", ")
        ));
    }
    s.push('}');
    s
}

/// Whether a route sends answers that may be compressed (a redirect or a
/// fixed answer never is: the block does not matter to it).
fn sends_content(r: &Route<'_>) -> bool {
    r.target.is_some() || r.files.is_some()
}

/// The block every route that sends content shares, written at site level.
pub(crate) fn shared(site: &Site<'_>) -> Option<CompressDef> {
    let mut routes = site.routes.iter().filter(|r| sends_content(r));
    let first = routes.next()?.compress.clone()?;
    routes
        .all(|r| r.compress.as_ref() == Some(&first))
        .then_some(first)
}

/// Writes the site's shared block at indent 2.
pub(crate) fn site(out: &mut Out, shared: Option<&CompressDef>) {
    if let Some(c) = shared {
        out.line(2, &line(c), None);
    }
}

/// Writes a route's own block at indent 4 (after the rest of the route),
/// unless the site carries it.
pub(crate) fn route(out: &mut Out, r: &Route<'_>, shared: Option<&CompressDef>) {
    if shared.is_some() || !sends_content(r) {
        return;
    }
    if let Some(c) = &r.compress {
        out.line(4, &line(c), None);
    }
}

#[cfg(test)]
mod tests {
    use crate::nginx::{ImportOptions, import_str};

    fn yaml(conf: &str) -> (String, Vec<String>) {
        let r = import_str("x.conf", conf, &ImportOptions::default()).expect("imports");
        (
            r.yaml,
            r.warnings.iter().map(|w| w.message.clone()).collect(),
        )
    }

    #[test]
    fn gzip_directives_become_compress_with_nginx_defaults_written_out() {
        let (y, w) = yaml(
            "http { gzip on; gzip_types text/css application/json; gzip_comp_level 6; gzip_min_length 256; gzip_vary on; gzip_proxied any;\n server { listen 80; server_name a.test; location / { proxy_pass http://127.0.0.1:3000; } location /api/ { gzip off; proxy_pass http://127.0.0.1:3000; } } }",
        );
        assert!(
            y.contains("compress: {algorithms: [gzip], types: [text/html, text/css, application/json], min_length: 256, level: {gzip: 6}}"),
            "{y}"
        );
        assert_eq!(y.matches("compress:").count(), 1, "only the / route: {y}");
        assert!(w.iter().any(|m| m.contains("gzip_vary")), "{w:?}");
        assert!(
            w.iter()
                .any(|m| m.contains("gzip_proxied") && m.contains("Via")),
            "{w:?}"
        );
    }

    #[test]
    fn static_siblings_and_brotli_convert_on_files_routes() {
        let (y, w) = yaml(
            "server { listen 80; server_name a.test; root /srv/www; gzip_static on; brotli on; brotli_static on; brotli_types *; brotli_comp_level 4; location / { try_files $uri /index.html; } }",
        );
        assert!(
            y.contains("compress: {algorithms: [br], types: [\"*\"], level: {br: 4}, precompressed: [br, gzip]}"),
            "{y}\n{w:?}"
        );
    }
}
