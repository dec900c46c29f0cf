//! Configuration: YAML file -> validated, typed [`Config`].
//!
//! Data flows one way: text --(serde-saphyr)--> [`file::FileConfig`] (spans
//! kept) --[`validate::validate`]--> [`model::Config`]. Every problem comes
//! back as a [`diag::Diagnostic`] (`file:line:col: what — how to fix`), all of
//! them at once where the file parsed. This module never touches running
//! state; `state` and `reload` decide what to do with a new `Config`.

pub mod diag;
pub mod env;
pub mod file;
pub mod file_access;
pub mod file_client_auth;
pub mod file_cluster;
pub mod file_compress;
pub mod file_limits;
pub mod file_mp4;
pub mod file_proxy_redirect;
pub mod model;
pub mod validate;
mod validate_access;
mod validate_alias;
mod validate_answer;
mod validate_checks;
mod validate_client_auth;
mod validate_client_ip;
pub mod validate_cluster;
mod validate_compress;
mod validate_error_uri;
mod validate_files;
mod validate_limits;
mod validate_listeners;
mod validate_maps;
pub mod validate_match;
mod validate_proxy_redirect;
mod validate_site;
mod validate_steps;
mod validate_upstream;
pub(crate) mod values;

use diag::{Diagnostic, Diagnostics, Origin, Pos};
pub use model::Config;
use std::path::{Path, PathBuf};

/// The embedded default configuration (`config/greenlight.yaml`).
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config/greenlight.yaml");

/// The name the embedded default is reported under.
pub const EMBEDDED_NAME: &str = "config/greenlight.yaml (embedded)";

/// Largest file greenlight reads as a configuration — its YAML, or an nginx
/// file for `import-nginx`: 16 MiB. Real configurations are a few KB; a
/// bigger file is a mistake (a log, a dump), and parsing one costs several
/// times its size in memory. It is refused before it is read whole.
pub const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;

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
    /// The file is larger than [`MAX_CONFIG_BYTES`]; it was not parsed.
    #[error("{}: {}", path.display(), too_large_text(*size))]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size in bytes (at least this many).
        size: u64,
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
            ConfigError::TooLarge { path, size } => vec![Diagnostic {
                origin: Origin::new(path, Pos::default()),
                what: too_large_text(*size),
                fix: String::new(),
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
    load_str(path, &read_text(path)?)
}

/// Reads the configuration file `path` as UTF-8 text, refusing one over
/// [`MAX_CONFIG_BYTES`] before reading it.
pub fn read_text(path: &Path) -> Result<String, ConfigError> {
    let read = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let bytes = match read_limited(path) {
        Ok(b) => b,
        Err(ReadError::Io(e)) => return Err(read(e)),
        Err(ReadError::TooLarge(size)) => {
            return Err(ConfigError::TooLarge {
                path: path.to_path_buf(),
                size,
            });
        }
    };
    String::from_utf8(bytes)
        .map_err(|e| read(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
}

/// Why [`read_limited`] failed.
#[derive(Debug)]
pub enum ReadError {
    /// Opening or reading failed.
    Io(std::io::Error),
    /// The file has more than [`MAX_CONFIG_BYTES`] (at least this many).
    TooLarge(u64),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::TooLarge(size) => write!(f, "{}", too_large_text(*size)),
        }
    }
}

/// Reads `path` whole unless it is larger than [`MAX_CONFIG_BYTES`]: the
/// size is checked before reading, and the read itself stops one byte past
/// the limit (a pipe or a file that grows has no trustworthy size).
pub fn read_limited(path: &Path) -> Result<Vec<u8>, ReadError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(ReadError::Io)?;
    let size = file.metadata().map_err(ReadError::Io)?.len();
    if size > MAX_CONFIG_BYTES {
        return Err(ReadError::TooLarge(size));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ReadError::TooLarge(bytes.len() as u64));
    }
    Ok(bytes)
}

fn too_large_text(size: u64) -> String {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    format!(
        "the file is {size} bytes ({:.1} MiB), over the {:.0} MiB limit for a configuration; it was not parsed — a configuration is a few KB: check that this is the right file",
        mib(size),
        mib(MAX_CONFIG_BYTES)
    )
}

/// Parses and validates `text`, reporting problems against `name`.
pub fn load_str(name: &Path, text: &str) -> Result<Config, ConfigError> {
    load_str_env(name, text, |n| std::env::var(n).ok())
}

/// [`load_str`] with `{$NAME}` references read through `lookup` instead of
/// the process environment (tests, and anything that must not depend on it).
pub fn load_str_env(
    name: &Path,
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut ds = Diagnostics::new(name);
    let expanded = match env::expand(text, lookup) {
        Ok(e) => e,
        Err(problems) => {
            for p in problems {
                ds.error(p.pos, p.what, p.fix);
            }
            return Err(ConfigError::Invalid(ds.into_sorted()));
        }
    };
    // Positions come from the expanded text: report them in the file's.
    let to_raw = |mut list: Vec<Diagnostic>| {
        for d in &mut list {
            d.origin.pos = expanded.raw_pos(d.origin.pos);
        }
        list
    };
    let file: file::FileConfig = match serde_saphyr::from_str(&expanded.text) {
        Ok(f) => f,
        Err(e) => {
            ds.push(yaml_error(name, &e));
            return Err(ConfigError::Invalid(to_raw(ds.into_sorted())));
        }
    };
    match validate::validate(file, &mut ds) {
        Some(mut cfg) if ds.is_empty() => {
            for u in &mut cfg.upstreams {
                u.active_origin.pos = expanded.raw_pos(u.active_origin.pos);
            }
            Ok(cfg)
        }
        _ => Err(ConfigError::Invalid(to_raw(ds.into_sorted()))),
    }
}

/// Turns a YAML parse/shape error into a diagnostic with a fix hint.
fn yaml_error(name: &Path, e: &serde_saphyr::Error) -> Diagnostic {
    if let Some(breach) = budget_breach(e) {
        return budget_diagnostic(name, e, breach);
    }
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

/// The parser's safety budget that `e` reports as breached, if any.
fn budget_breach(e: &serde_saphyr::Error) -> Option<&serde_saphyr::budget::BudgetBreach> {
    match e {
        serde_saphyr::Error::Budget { breach, .. } => Some(breach),
        serde_saphyr::Error::WithSnippet { error, .. }
        | serde_saphyr::Error::AliasError { error, .. } => budget_breach(error),
        _ => None,
    }
}

/// serde-saphyr stops at fixed budgets (defaults of `serde_saphyr::Budget`:
/// 250,000 nodes, 1,000,000 events, nesting depth 64, 1,024 documents, 50,000
/// anchors or aliases, 10,000 merge keys, 64 MiB of scalars or comments) and
/// would print the breach as a debug dump; some of them can be reached
/// under [`MAX_CONFIG_BYTES`]. Say which in words.
fn budget_diagnostic(
    name: &Path,
    e: &serde_saphyr::Error,
    breach: &serde_saphyr::budget::BudgetBreach,
) -> Diagnostic {
    use serde_saphyr::budget::BudgetBreach as B;
    let what = match breach {
        B::Nodes { .. } | B::Events { .. } => {
            "the file holds too many YAML values (over 250,000) to be a configuration".into()
        }
        B::Depth { depth } => format!("the YAML is nested {depth} levels deep (the limit is 64)"),
        B::Documents { .. } => "the file holds too many YAML documents (`---`)".into(),
        B::Aliases { .. }
        | B::Anchors { .. }
        | B::AliasAnchorRatio { .. }
        | B::MergeKeys { .. }
        | B::RecordedAnchorEvents { .. } => {
            "the file uses too many YAML anchors, aliases or merge keys (`&a`, `*a`, `<<`)".into()
        }
        B::ScalarBytes { .. } | B::InputBytes { .. } => {
            "the file holds too much text to be a configuration".into()
        }
        _ => "the YAML is too large or too complex to be a configuration".to_string(),
    };
    let pos = e
        .without_snippet()
        .location()
        .map(|l| Pos::from_location(&l))
        .unwrap_or_default();
    Diagnostic {
        origin: Origin::new(name, pos),
        what,
        fix: "parsing stopped here; a configuration is a few KB: check that this is the right file"
            .into(),
    }
}

#[cfg(test)]
mod tests;
