//! `files:` routes: serving a directory (nginx `root`, `alias`, `index`,
//! `try_files`), compiled at load. This file maps a request path onto the
//! file system safely; `proxy::files` opens and sends what it names.
//!
//! Safety, whatever the request: the path is percent-decoded once, then
//! refused (404) when a segment is `..`, when it holds a NUL or a
//! backslash, or when a segment starts with `.` other than `.well-known`
//! (`.git`, `.env`: nginx serves them unless told not to; greenlight does
//! not). `proxy::files` also refuses a file whose real path (symlinks
//! resolved) is outside the directory.

use super::template::Template;
use percent_encoding::percent_decode_str;
use std::path::{Path, PathBuf};

/// Where request paths are looked up.
#[derive(Debug)]
pub enum Base {
    /// nginx `root DIR`: the file is DIR + the whole path.
    Root(PathBuf),
    /// nginx `alias DIR`: the file is DIR + the path after the route's
    /// prefix (prefix routes only).
    Alias {
        /// The directory.
        dir: PathBuf,
        /// Length of the route's literal prefix.
        prefix_len: usize,
        /// The alias was written with a trailing `/`: a `try_files` name
        /// without a leading `/` (`index.html`) is then a file inside it.
        slash: bool,
    },
    /// nginx `alias` with captures on a regex route: the file is the
    /// alias with the captures put in ([`super::alias`]).
    AliasTemplate(Box<super::alias::AliasTemplate>),
}

/// The last entry of `try_files`.
#[derive(Debug)]
pub enum Fallback {
    /// A path served from the same directory when no candidate exists
    /// (`/index.html`: the single-page-app fallback).
    Path(Template),
    /// `=404`: answer this status.
    Status(u16),
    /// `@name`: the request goes on to the site's named route (`path:
    /// "@name"`), whose plan answers it — usually by proxying.
    Named(NamedRoute),
}

/// A named route that a `try_files` falls back to: the name as written,
/// and the route's index in its site, filled once the site's routes are
/// all known (they may come after the files route).
#[derive(Debug)]
pub struct NamedRoute {
    /// `@name`.
    pub name: Box<str>,
    /// The route's file-order index in its site.
    pub route: std::sync::OnceLock<usize>,
}

impl NamedRoute {
    /// An unlinked reference to `name`.
    pub fn new(name: &str) -> NamedRoute {
        NamedRoute {
            name: name.into(),
            route: std::sync::OnceLock::new(),
        }
    }
}

/// nginx `try_files CANDIDATE… LAST`.
#[derive(Debug)]
pub struct TryFiles {
    /// Paths tried in order; one ending in `/` names a directory (its index).
    pub candidates: Box<[Template]>,
    /// What answers when none exists.
    pub fallback: Fallback,
}

/// A compiled `files:` terminal.
#[derive(Debug)]
pub struct Files {
    /// Where files are.
    pub base: Base,
    /// Index file names tried for a path ending in `/` (default `index.html`).
    pub index: Box<[Box<str>]>,
    /// nginx `try_files`, when given.
    pub try_files: Option<TryFiles>,
    /// nginx `autoindex on`: a directory without index file is listed
    /// (else 403).
    pub autoindex: bool,
    /// MP4 pseudo-streaming (`?start=`, `?end=`, nginx `mp4`).
    pub mp4: Option<crate::mp4::Options>,
}

impl Files {
    /// The named route `try_files` falls back to, if it does.
    pub fn named_fallback(&self) -> Option<&NamedRoute> {
        match &self.try_files.as_ref()?.fallback {
            Fallback::Named(n) => Some(n),
            _ => None,
        }
    }
}

/// Why a path was refused (answered 404 without touching the disk).
#[derive(Debug, PartialEq, Eq)]
pub struct Refused;

impl Files {
    /// The directory every served file must be inside.
    pub fn dir(&self) -> &Path {
        match &self.base {
            Base::Root(d) | Base::Alias { dir: d, .. } => d,
            Base::AliasTemplate(a) => &a.dir,
        }
    }

    /// The file system path for this request: [`Files::map`] of `uri`, or
    /// the alias template filled with the route's captures.
    pub fn map_request(&self, uri: &str, cx: &super::vars::VarCx<'_>) -> Result<PathBuf, Refused> {
        match &self.base {
            Base::AliasTemplate(a) => a.map(cx),
            _ => self.map(uri),
        }
    }

    /// The file system path for request path `path` (raw, percent-encoded).
    ///
    /// A `try_files` name without a leading `/` is, in nginx, glued to the
    /// directory as written: under an alias ending in `/` a file inside it
    /// (`index.html` next to the app), else (a root, whose trailing `/`
    /// nginx drops, or an alias without one) a sibling of the directory,
    /// which greenlight never serves.
    pub fn map(&self, path: &str) -> Result<PathBuf, Refused> {
        let relative = !path.starts_with('/');
        let rest = match &self.base {
            Base::Alias { slash: true, .. } if relative => path,
            Base::Root(_) | Base::Alias { .. } if relative => return Err(Refused),
            Base::Root(_) => path,
            Base::Alias { prefix_len, .. } => path.get(*prefix_len..).unwrap_or(""),
            // Its path comes from the captures (`map_request`); a request
            // path alone names no file there.
            Base::AliasTemplate(_) => return Err(Refused),
        };
        let decoded = percent_decode_str(rest)
            .decode_utf8()
            .map_err(|_| Refused)?;
        push_segments(self.dir().to_path_buf(), &decoded)
    }
}

/// `dir` with the segments of `decoded` (a decoded path) pushed on, or
/// [`Refused`] for a NUL, a backslash, a `..` segment or a hidden one: the
/// one check every files path goes through (`root`, `alias`, alias
/// templates).
pub(super) fn push_segments(mut out: PathBuf, decoded: &str) -> Result<PathBuf, Refused> {
    if decoded.contains(['\0', '\\']) {
        return Err(Refused);
    }
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => return Err(Refused),
            s if s.starts_with('.') && s != ".well-known" => return Err(Refused),
            s => out.push(s),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> Files {
        Files {
            base: Base::Root("/srv/www".into()),
            index: vec!["index.html".into()].into(),
            try_files: None,
            autoindex: false,
            mp4: None,
        }
    }

    #[test]
    fn root_and_alias_map_like_nginx() {
        assert_eq!(root().map("/a/b.css"), Ok("/srv/www/a/b.css".into()));
        assert_eq!(root().map("/a%20b/c"), Ok("/srv/www/a b/c".into()));
        let alias = Files {
            base: Base::Alias {
                dir: "/srv/static/".into(),
                prefix_len: "/static/".len(),
                slash: true,
            },
            ..root()
        };
        assert_eq!(
            alias.map("/static/img/x.png"),
            Ok("/srv/static/img/x.png".into())
        );
        // A try_files name without `/`: inside an alias written with a
        // trailing `/`; nginx's sibling of the directory otherwise (refused).
        assert_eq!(alias.map("index.html"), Ok("/srv/static/index.html".into()));
        assert_eq!(alias.map("../x"), Err(Refused));
        let bare = Files {
            base: Base::Alias {
                dir: "/srv/static".into(),
                prefix_len: "/static".len(),
                slash: false,
            },
            ..root()
        };
        assert_eq!(bare.map("index.html"), Err(Refused));
        assert_eq!(root().map("index.html"), Err(Refused));
        assert_eq!(
            root().map("/.well-known/security.txt"),
            Ok("/srv/www/.well-known/security.txt".into())
        );
    }

    #[test]
    fn traversal_and_hidden_files_are_refused() {
        for bad in [
            "/../etc/passwd",
            "/a/../../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/%2E%2E%2fetc%2fpasswd",
            "/a%2f..%2f..%2fetc/passwd",
            "/a/%00.html",
            "/a\\..\\b",
            "/a%5c..%5cb",
            "/.git/config",
            "/.env",
            "/a/.htpasswd",
            "/%ff%fe",
        ] {
            assert_eq!(root().map(bad), Err(Refused), "{bad}");
        }
    }
}
