//! Compiles `compress:` (site and route) into a [`Compress`], every problem
//! at its line and column. A route's block starts from its site's and
//! overrides the keys it names (as nginx inherits each `gzip_*` directive);
//! `compress: false` turns it off for the route.

use super::diag::Diagnostics;
use super::file::Scalar;
use super::file_compress::{FileCompress, FileWords};
use super::validate::pos;
use super::values::{closest, parse_size};
use crate::plan::compress::{Coding, Compress, TypePattern};
use serde_saphyr::Spanned;

const KEYS: [&str; 5] = [
    "algorithms",
    "types",
    "min_length",
    "level",
    "precompressed",
];

/// The codings a list of words names, each once.
fn codings(list: &[Spanned<String>], what: &str, ds: &mut Diagnostics) -> Box<[Coding]> {
    let mut out: Vec<Coding> = Vec::new();
    for w in list {
        match Coding::from_word(w.value.trim()) {
            Some(c) if out.contains(&c) => ds.error(
                pos(w),
                format!("'{}' is listed twice in `{what}`", w.value),
                "list each coding once, in order of preference",
            ),
            Some(c) => out.push(c),
            None => ds.error(
                pos(w),
                format!("unknown coding '{}' in `{what}`", w.value),
                "write `gzip`, `br` or `zstd`",
            ),
        }
    }
    out.into()
}

/// A level within `lo..=hi`.
fn level(v: &Spanned<Scalar>, name: &str, lo: i64, hi: i64, ds: &mut Diagnostics) -> Option<i64> {
    match v.value.0.trim().parse::<i64>() {
        Ok(n) if (lo..=hi).contains(&n) => Some(n),
        _ => {
            ds.error(
                pos(v),
                format!("'{}' is not a {name} level", v.value.0),
                format!("write a whole number from {lo} to {hi}"),
            );
            None
        }
    }
}

/// The compiled block, over `base` (the site's, or the defaults); `None`
/// for `compress: false`.
pub(super) fn compress(
    f: &Spanned<FileCompress>,
    base: Option<&Compress>,
    ds: &mut Diagnostics,
) -> Option<Compress> {
    let v = &f.value;
    let mut out = base.cloned().unwrap_or_default();
    match v.switch {
        Some(false) => return None,
        Some(true) => return Some(out),
        None => {}
    }
    for u in &v.unknown {
        let fix = match closest(&u.value, KEYS.iter().copied()) {
            Some(k) => format!("did you mean `{k}`?"),
            None => format!("known keys: {}", KEYS.join(", ")),
        };
        ds.error(
            pos(u),
            format!("unknown key '{}' in `compress`", u.value),
            fix,
        );
    }
    if let Some(a) = &v.algorithms {
        out.codings = codings(&a.value, "algorithms", ds);
    }
    if let Some(t) = &v.types {
        let mut types = Vec::new();
        for w in &t.value {
            let s = w.value.trim();
            if s == "*" || (s.contains('/') && !s.starts_with('/') && !s.contains([' ', ';'])) {
                types.push(TypePattern::parse(s));
            } else {
                ds.error(
                    pos(w),
                    format!("'{s}' is not a MIME type"),
                    "write a type like `text/css`, a family like `text/*`, or `*` for every type",
                );
            }
        }
        if t.value.is_empty() {
            ds.error(
                pos(t),
                "`types` is empty",
                "list the types to compress, or write `compress: false`",
            );
        }
        out.types = types.into();
    }
    if let Some(m) = &v.min_length {
        match parse_size(&m.value.0) {
            Some(n) => out.min_length = n,
            None => ds.error(
                pos(m),
                format!("'{}' is not a length", m.value.0),
                "write bytes with an optional unit: `256`, `1k`",
            ),
        }
    }
    if let Some(l) = &v.level {
        for (k, val) in &l.value {
            match Coding::from_word(k) {
                Some(Coding::Gzip) => {
                    if let Some(n) = level(val, "gzip", 1, 9, ds) {
                        out.levels.gzip = n as u32;
                    }
                }
                Some(Coding::Br) => {
                    if let Some(n) = level(val, "brotli", 0, 11, ds) {
                        out.levels.br = n as u32;
                    }
                }
                Some(Coding::Zstd) => {
                    if let Some(n) = level(val, "zstd", 1, 19, ds) {
                        out.levels.zstd = n as i32;
                    }
                }
                None => ds.error(
                    pos(l),
                    format!("unknown coding '{k}' in `level`"),
                    "give levels as `{gzip: 6, br: 5, zstd: 3}`",
                ),
            }
        }
    }
    if let Some(p) = &v.precompressed {
        out.precompressed = match &p.value {
            FileWords::Switch(true) => [Coding::Br, Coding::Zstd, Coding::Gzip].into(),
            FileWords::Switch(false) => Box::new([]),
            FileWords::List(l) => codings(l, "precompressed", ds),
        };
    }
    Some(out)
}

/// Reports a route-level `precompressed` on a route that does not serve files.
pub(super) fn check_route(f: &Spanned<FileCompress>, serves_files: bool, ds: &mut Diagnostics) {
    if let (Some(p), false) = (&f.value.precompressed, serves_files) {
        ds.error(
            pos(p),
            "`precompressed` only applies to a route with `files`",
            "remove it, or move it to the `files` route whose siblings it serves",
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::plan::compress::{Coding, Compress, TypePattern};
    use crate::plan::{Plan, Step};

    fn load(yaml: &str) -> Result<crate::config::Config, String> {
        let text = format!(
            "listeners:\n  http: {{address: \"127.0.0.1:8080\"}}\nupstreams:\n  app:\n    active: a\n    pools:\n      a: [\"127.0.0.1:9\"]\nsites:\n  s:\n    hosts: [a.test]\n{yaml}"
        );
        crate::config::load_str(std::path::Path::new("g.yaml"), &text).map_err(|e| e.to_string())
    }

    fn compress_of(p: &Plan) -> Option<&Compress> {
        p.steps().iter().find_map(|s| match s {
            Step::Compress(c) => Some(c),
            _ => None,
        })
    }

    #[test]
    fn routes_inherit_the_site_block_and_override_keys() {
        let cfg = load(
            "    compress: {types: [text/html, 'application/*'], level: {gzip: 6}}\n    routes:\n      - {path: /a, upstream: app}\n      - {path: /b, upstream: app, compress: {min_length: 1k}}\n      - {path: /c, upstream: app, compress: false}\n      - {path: /d, files: {root: /srv}, compress: {precompressed: [gzip], algorithms: []}}\n",
        )
        .expect("loads");
        let routes = &cfg.sites[0].routes;
        let a = compress_of(&routes[0].plan).expect("inherited");
        assert_eq!(a.levels.gzip, 6);
        assert_eq!(a.codings.as_ref(), Coding::ALL);
        assert_eq!(a.types[1], TypePattern::Prefix("application/".into()));
        let b = compress_of(&routes[1].plan).expect("own");
        assert_eq!((b.min_length, b.levels.gzip), (1024, 6));
        assert!(compress_of(&routes[2].plan).is_none(), "turned off");
        let d = compress_of(&routes[3].plan).expect("siblings");
        assert!(d.codings.is_empty());
        assert_eq!(d.precompressed.as_ref(), [Coding::Gzip]);
    }

    #[test]
    fn a_site_without_compress_adds_no_step() {
        let cfg = load("    routes:\n      - {path: /, upstream: app}\n").expect("loads");
        assert!(cfg.sites[0].routes[0].plan.steps().is_empty());
    }

    #[test]
    fn every_mistake_is_reported_at_its_place() {
        let err = load(
            "    routes:\n      - path: /\n        upstream: app\n        compress:\n          algorithms: [gzip, deflate, gzip]\n          types: [html]\n          min_length: lots\n          level: {gzip: 12, lz4: 1}\n          precompressed: true\n          typos: 1\n",
        )
        .expect_err("bad");
        for want in [
            "g.yaml:15:30: unknown coding 'deflate' in `algorithms`",
            "g.yaml:15:39: 'gzip' is listed twice in `algorithms`",
            "g.yaml:16:19: 'html' is not a MIME type",
            "g.yaml:17:23: 'lots' is not a length",
            "g.yaml:18:25: '12' is not a gzip level",
            "unknown coding 'lz4' in `level`",
            "g.yaml:19:26: `precompressed` only applies to a route with `files`",
            "g.yaml:20:11: unknown key 'typos' in `compress`",
        ] {
            assert!(err.contains(want), "missing {want:?} in:\n{err}");
        }
    }
}
