//! nginx `root`, `alias`, `index` and `try_files` → a route's `files:`.
//!
//! A location without `proxy_pass`, `return` or another content handler
//! serves files in nginx, from the `root` in force (its own or inherited) or
//! its `alias`. It becomes a `files:` route when that directory is known;
//! without one nginx would use its compiled-in default root, which the
//! importer cannot know, so the old warning stands. `try_files` converts
//! when its last entry is a path, `=CODE` or a named location (`@app`),
//! which becomes a route `path: "@app"` of its own (see [`link_named`]).
//! `autoindex on` and `expires` (in force at any level) go with the
//! location's `files:`; `autoindex_*` details are notes (greenlight lists
//! exact sizes, UTC times, HTML); on a location that proxies or answers,
//! `expires` becomes the route's own `expires:`.

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
    /// `try_files` entries, the last one a path, `=CODE` or `@name`.
    pub try_files: Option<Vec<String>>,
    /// `autoindex on`.
    pub autoindex: bool,
    /// `expires` (nginx's value, checked by greenlight's parser).
    pub expires: Option<String>,
    /// `mp4` in the location, with the `mp4_*` settings in force.
    pub mp4: Option<Mp4Def>,
}

/// `mp4` and its settings, as greenlight writes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Mp4Def {
    /// `mp4_buffer_size`.
    pub buffer_size: Option<String>,
    /// `mp4_max_buffer_size`.
    pub max_buffer_size: Option<String>,
    /// `mp4_start_key_frame on`.
    pub start_key_frame: bool,
}

/// `expires` and `autoindex` in force at a level (inherited like `root`).
#[derive(Debug, Clone, Default)]
pub(crate) struct FilesInherit<'a> {
    /// `expires`, its value as greenlight writes it.
    pub expires: Option<(&'a Directive, String)>,
    /// `autoindex on|off`.
    pub autoindex: Option<&'a Directive>,
    /// `charset NAME` in force (`None` also for `charset off`).
    pub charset: Option<String>,
    /// `mp4` of this very location (nginx does not inherit it).
    pub mp4: Option<&'a Directive>,
    /// `mp4_buffer_size`, `mp4_max_buffer_size`, `mp4_start_key_frame` in force.
    pub mp4_settings: Mp4Def,
}

impl FilesInherit<'_> {
    /// The settings a nested block starts with: `mp4` is the location's own.
    pub fn child(&self) -> Self {
        FilesInherit {
            mp4: None,
            ..self.clone()
        }
    }
}

/// Takes `expires`, `charset`, `autoindex` and `autoindex_*` at any level; false for
/// other directives.
pub(crate) fn record<'a>(ctx: &mut Ctx<'a>, d: &'a Directive, inh: &mut FilesInherit<'a>) -> bool {
    match d.name.as_str() {
        "expires" => {
            let value = d.args.join(" ");
            match crate::plan::expires::parse(&value) {
                Ok(_) => inh.expires = Some((d, value)),
                Err(why) => ctx.warn(d, format!("'{}': {why}; not converted", shown(d))),
            }
            true
        }
        "autoindex" => {
            inh.autoindex = Some(d);
            true
        }
        "charset" => {
            match crate::plan::charset::Charset::parse(d.arg0()) {
                Ok(c) => inh.charset = c.map(|c| c.name().to_string()),
                Err(why) => ctx.warn(d, format!("'{}': {why}; not converted", shown(d))),
            }
            true
        }
        "mp4" => {
            inh.mp4 = Some(d);
            true
        }
        "mp4_buffer_size" | "mp4_max_buffer_size" => {
            if crate::config::values::parse_size(d.arg0()).is_none_or(|n| n == 0) {
                ctx.warn(d, format!("'{}': not a size; not converted", shown(d)));
            } else if d.name == "mp4_buffer_size" {
                inh.mp4_settings.buffer_size = Some(d.arg0().to_string());
            } else {
                inh.mp4_settings.max_buffer_size = Some(d.arg0().to_string());
            }
            true
        }
        "mp4_start_key_frame" => {
            inh.mp4_settings.start_key_frame = d.arg0() == "on";
            true
        }
        "autoindex_exact_size" | "autoindex_format" | "autoindex_localtime" => {
            ctx.note(
                d,
                format!("'{}' is not carried over: greenlight's listings (`autoindex: true`) are HTML with exact sizes and UTC times", shown(d)),
            );
            true
        }
        _ => false,
    }
}

/// A files route whose `try_files` falls back to a named location that did
/// not become a route (it was not converted) cannot be checked by
/// greenlight: it is dropped with a warning.
pub(crate) fn link_named(ctx: &mut Ctx<'_>, routes: &mut Vec<super::convert::Route<'_>>) {
    let names: Vec<String> = routes
        .iter()
        .filter(|r| r.path.starts_with('@'))
        .map(|r| r.path.clone())
        .collect();
    routes.retain(|r| {
        let Some(last) = r
            .files
            .as_ref()
            .and_then(|f| f.try_files.as_ref())
            .and_then(|t| t.last())
            .filter(|l| l.starts_with('@'))
        else {
            return true;
        };
        if names.contains(last) {
            return true;
        }
        ctx.warn(
            r.loc,
            format!("try_files falls back to the named location {last}, which was not converted (see its warnings) or does not exist: the files of this location are not served"),
        );
        false
    });
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
    inh: &FilesInherit<'_>,
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
        autoindex: inh.autoindex.is_some_and(|d| d.arg0() == "on"),
        expires: inh
            .expires
            .as_ref()
            .map(|(_, v)| v.clone())
            .filter(|v| v != "off"),
        mp4: inh.mp4.map(|_| inh.mp4_settings.clone()),
    };
    match (alias, root) {
        (Some(a), _) => {
            let dir = dir_of(ctx, a)?;
            if !matches!(
                kind,
                LocKind::Prefix | LocKind::PrefixNoRegex | LocKind::Exact
            ) && !super::alias::regex_alias(ctx, a, &dir, captures, try_files)
            {
                return None;
            }
            def.alias = Some(dir);
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
        if t.args.len() < 2 {
            ctx.warn(
                t,
                format!("'{}' needs at least two entries; not converted", shown(t)),
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
