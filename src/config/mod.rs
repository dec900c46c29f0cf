//! Configuration: YAML file -> validated, typed [`Config`].
//!
//! Data flows one way: text --(serde-saphyr)--> [`file::FileConfig`] (spans
//! kept) --[`validate::validate`]--> [`model::Config`]. Every problem comes
//! back as a [`diag::Diagnostic`] (`file:line:col: what — how to fix`), all of
//! them at once where the file parsed. This module never touches running
//! state; `state` and `reload` decide what to do with a new `Config`.

pub mod diag;
pub mod file;
pub mod model;
pub mod validate;
mod values;

use diag::{Diagnostic, Diagnostics, Origin, Pos};
pub use model::Config;
use std::path::{Path, PathBuf};

/// The embedded default configuration (`config/greenlight.yaml`).
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config/greenlight.yaml");

/// The name the embedded default is reported under.
pub const EMBEDDED_NAME: &str = "config/greenlight.yaml (embedded)";

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read the configuration: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read but has problems; all of them are listed.
    #[error("{}", diag::render(.0).trim_end())]
    Invalid(Vec<Diagnostic>),
}

impl ConfigError {
    /// The problems, one per line as `file:line:col: ...`.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        match self {
            ConfigError::Read { path, source } => vec![Diagnostic {
                origin: Origin::new(path, Pos::default()),
                what: format!("cannot read the configuration: {source}"),
                fix: "check the path and its permissions".into(),
            }],
            ConfigError::Invalid(d) => d.clone(),
        }
    }
}

/// Where a configuration comes from: a file, or the embedded default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// A file on disk, re-read on every reload.
    File(PathBuf),
    /// The embedded default (`greenlight run` without `-c`).
    Embedded,
}

impl ConfigSource {
    /// Reads and validates the configuration.
    pub fn load(&self) -> Result<Config, ConfigError> {
        match self {
            ConfigSource::File(p) => load_file(p),
            ConfigSource::Embedded => load_str(Path::new(EMBEDDED_NAME), EMBEDDED_DEFAULT),
        }
    }

    /// The file to rewrite for runtime changes (`switch`), if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            ConfigSource::File(p) => Some(p),
            ConfigSource::Embedded => None,
        }
    }
}

/// Reads and validates `path`.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    load_str(path, &text)
}

/// Parses and validates `text`, reporting problems against `name`.
pub fn load_str(name: &Path, text: &str) -> Result<Config, ConfigError> {
    let mut ds = Diagnostics::new(name);
    let file: file::FileConfig = match serde_saphyr::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            ds.push(yaml_error(name, &e));
            return Err(ConfigError::Invalid(ds.into_sorted()));
        }
    };
    match validate::validate(file, &mut ds) {
        Some(cfg) if ds.is_empty() => Ok(cfg),
        _ => Err(ConfigError::Invalid(ds.into_sorted())),
    }
}

/// Turns a YAML parse/shape error into a diagnostic with a fix hint.
fn yaml_error(name: &Path, e: &serde_saphyr::Error) -> Diagnostic {
    let plain = e.without_snippet();
    let pos = plain
        .location()
        .map(|l| Pos::from_location(&l))
        .unwrap_or_default();
    let mut what = plain
        .render_with_options(serde_saphyr::render_options! {
            snippets: serde_saphyr::SnippetMode::Off,
        })
        .lines()
        .next()
        .unwrap_or("invalid YAML")
        .to_string();
    // The renderer appends " at line L column C"; we print the position first.
    if let Some(i) = what.find(" at line ") {
        what.truncate(i);
    }
    let fix = if what.contains("unknown field") {
        "remove it or fix its spelling; config/example.yaml lists every key"
    } else if what.contains("missing field") {
        "add it; config/example.yaml shows every key with an example"
    } else {
        "fix the YAML at this position; config/example.yaml shows the expected shape"
    };
    Diagnostic {
        origin: Origin::new(name, pos),
        what,
        fix: fix.into(),
    }
}

#[cfg(test)]
mod tests;
