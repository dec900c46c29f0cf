//! nginx `root`, `alias`, `index` and `try_files` → a route's `files:`.
//!
//! A location without `proxy_pass`, `return` or another content handler
//! serves files in nginx, from the `root` in force (its own or inherited) or
//! its `alias`. It becomes a `files:` route when that directory is known;
//! without one nginx would use its compiled-in default root, which the
//! importer cannot know, so the old warning stands. `try_files` converts
//! when its last entry is a path or `=CODE`; a named location (`@app`) has
//! no greenlight form and stays a warning.

use super::convert::Ctx;
use super::directives::shown;
use super::location::LocKind;
use super::parse::Directive;
use super::vars::{self, SetVars};

/// One route's `files:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FilesDef {
    /// `root` (the file is root + the path).
    pub root: Option<String>,
    /// `alias` (the file is alias + the path after the prefix).
    pub alias: Option<String>,
    /// `index` names, when nginx's default (`index.html`) was changed.
    pub index: Option<Vec<String>>,
    /// `try_files` entries, the last one a path or `=CODE`.
    pub try_files: Option<Vec<String>>,
}

/// The `files:` of a location that serves files, or `None` with a warning
/// where it cannot be converted.
#[allow(clippy::too_many_arguments)]
pub(crate) fn files_of(
    ctx: &mut Ctx<'_>,
    kind: LocKind,
    root: Option<&Directive>,
    alias: Option<&Directive>,
    index: Option<&Directive>,
    try_files: Option<&Directive>,
    set: &SetVars,
    captures: &[String],
) -> Option<FilesDef> {
    let dir_of = |ctx: &mut Ctx<'_>, d: &Directive| -> Option<String> {
        let (v, unknown) = vars::resolve(d.arg0(), set, captures);
        if !unknown.is_empty() || d.args.len() != 1 {
            ctx.warn(
                d,
                format!("'{}' names its directory with {}, which greenlight does not know; the files of this location are not served", shown(d), vars::list(&unknown)),
            );
            return None;
        }
        Some(v)
    };
    let mut def = FilesDef {
        root: None,
        alias: None,
        index: None,
        try_files: None,
    };
    match (alias, root) {
        (Some(a), _) => {
            if !matches!(
                kind,
                LocKind::Prefix | LocKind::PrefixNoRegex | LocKind::Exact
            ) {
                ctx.warn(
                    a,
                    format!("'{}' in a regex location is not supported (greenlight's alias replaces a literal prefix); the files of this location are not served", shown(a)),
                );
                return None;
            }
            def.alias = Some(dir_of(ctx, a)?);
        }
        (None, Some(r)) => def.root = Some(dir_of(ctx, r)?),
        (None, None) => return None,
    }
    if let Some(i) = index {
        let names: Vec<String> = i.args.clone();
        if let Some(bad) = names
            .iter()
            .find(|n| n.contains(['/', '$']) || n.starts_with('.'))
        {
            ctx.warn(
                i,
                format!("index '{bad}' is not a plain file name; greenlight's index takes names in the same directory, so nginx's default index.html is used here"),
            );
        } else if names != ["index.html"] {
            def.index = Some(names);
        }
    }
    if let Some(t) = try_files {
        let last = t.args.last().map(String::as_str).unwrap_or("");
        if t.args.len() < 2 {
            ctx.warn(
                t,
                format!("'{}' needs at least two entries; not converted", shown(t)),
            );
            return None;
        }
        if last.starts_with('@') {
            ctx.warn(
                t,
                format!("'{}' falls back to the named location {last}, which greenlight has no form for: the files of this location are not served; give the app's paths a route of their own with an upstream", shown(t)),
            );
            return None;
        }
        let mut out = Vec::new();
        for a in &t.args {
            let (v, unknown) = vars::resolve(a, set, captures);
            if !unknown.is_empty() {
                ctx.warn(
                    t,
                    format!("'{}' uses {}, which greenlight does not know; the files of this location are not served", shown(t), vars::list(&unknown)),
                );
                return None;
            }
            out.push(v);
        }
        def.try_files = Some(out);
    }
    Some(def)
}
