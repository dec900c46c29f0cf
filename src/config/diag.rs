//! Diagnostics: one problem in a configuration file, said the way an operator
//! can act on it — `file:line:col: what is wrong — how to fix it`.
//!
//! Owns the [`Diagnostic`] type and the [`Diagnostics`] collector that the
//! loader and validator fill. It never decides what is wrong; it only carries
//! and prints it. Positions are 1-based lines and columns (characters), never
//! byte offsets.

use std::fmt;
use std::path::{Path, PathBuf};

/// A position in a configuration file (1-based line and column).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pos {
    /// 1-based line; 0 when unknown.
    pub line: u32,
    /// 1-based column in characters; 0 when unknown.
    pub col: u32,
}

impl Pos {
    /// A position from a YAML parser location.
    pub fn from_location(loc: &serde_saphyr::Location) -> Pos {
        Pos {
            line: loc.line() as u32,
            col: loc.column() as u32,
        }
    }
}

/// Where a configuration item came from: the file and the position in it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    /// The file as the operator named it (or a description for embedded text).
    pub file: PathBuf,
    /// Position within the file.
    pub pos: Pos,
}

impl Origin {
    /// An origin in `file` at `pos`.
    pub fn new(file: &Path, pos: Pos) -> Origin {
        Origin {
            file: file.to_path_buf(),
            pos,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pos.line == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(
                f,
                "{}:{}:{}",
                self.file.display(),
                self.pos.line,
                self.pos.col.max(1)
            )
        }
    }
}

/// One problem: where, what is wrong and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Where the problem is.
    pub origin: Origin,
    /// What is wrong, in one sentence without a trailing period.
    pub what: String,
    /// How to fix it; empty when the message says it all.
    pub fix: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.origin, self.what)?;
        if !self.fix.is_empty() {
            write!(f, " — {}", self.fix)?;
        }
        Ok(())
    }
}

/// Collects every problem of one load, in file order.
#[derive(Debug, Default)]
pub struct Diagnostics {
    file: PathBuf,
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// An empty collector for problems in `file`.
    pub fn new(file: &Path) -> Diagnostics {
        Diagnostics {
            file: file.to_path_buf(),
            items: Vec::new(),
        }
    }

    /// The file the problems are reported against.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// An origin at `pos` in this collector's file.
    pub fn origin(&self, pos: Pos) -> Origin {
        Origin::new(&self.file, pos)
    }

    /// Records a problem at `pos`.
    pub fn error(&mut self, pos: Pos, what: impl Into<String>, fix: impl Into<String>) {
        self.items.push(Diagnostic {
            origin: self.origin(pos),
            what: what.into(),
            fix: fix.into(),
        });
    }

    /// Records an already built diagnostic.
    pub fn push(&mut self, d: Diagnostic) {
        self.items.push(d);
    }

    /// True when no problem was recorded.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The problems sorted by position (stable for equal positions).
    pub fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.items
            .sort_by_key(|d| (d.origin.file.clone(), d.origin.pos.line, d.origin.pos.col));
        self.items
    }
}

/// Renders a list of problems one per line, as `greenlight check` prints them.
pub fn render(diags: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diags {
        out.push_str(&d.to_string());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostic_prints_file_line_col_what_and_fix() {
        let d = Diagnostic {
            origin: Origin::new(Path::new("g.yaml"), Pos { line: 3, col: 7 }),
            what: "unknown upstream 'ap'".into(),
            fix: "define it under `upstreams:` or fix the name".into(),
        };
        assert_eq!(
            d.to_string(),
            "g.yaml:3:7: unknown upstream 'ap' — define it under `upstreams:` or fix the name"
        );
    }

    #[test]
    fn unknown_position_prints_the_file_only() {
        let d = Diagnostic {
            origin: Origin::new(Path::new("g.yaml"), Pos::default()),
            what: "cannot read the file".into(),
            fix: String::new(),
        };
        assert_eq!(d.to_string(), "g.yaml: cannot read the file");
    }

    #[test]
    fn problems_come_out_in_file_order() {
        let mut ds = Diagnostics::new(Path::new("g.yaml"));
        ds.error(Pos { line: 9, col: 1 }, "b", "");
        ds.error(Pos { line: 2, col: 5 }, "a", "");
        let v = ds.into_sorted();
        assert_eq!(v[0].what, "a");
        assert_eq!(v[1].what, "b");
    }
}
