//! `import-nginx`: turns an nginx configuration into a greenlight YAML file.
//!
//! What this module owns:
//! - reading nginx configuration text (the main file and everything it
//!   `include`s) and parsing it with file, line and column positions
//!   (errors become [`ImportError::Syntax`]);
//! - converting the directives greenlight has an equivalent for into
//!   greenlight's YAML schema (listeners, sites, upstreams, acme), emitted as
//!   text so that every entry can carry a `# from file:line` comment;
//! - a [`Warning`] for every directive that is not carried over, so nothing is
//!   dropped silently. Messages that start with `note: ` are informational
//!   (the behaviour is built into greenlight or not needed with rustls).
//!
//! What it must not touch: no proxy state, no network, no writing of files,
//! and no I/O besides reading the nginx files named by the main file and its
//! `include` directives. The caller decides where the YAML and the warnings go.
//!
//! No input may make it panic: outside tests, `unwrap`, `expect`, indexing
//! and explicit panics are denied below.

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

mod access;
mod addr;
mod alias;
mod answer;
mod bind;
mod checks;
mod client_auth;
mod compress;
mod convert;
mod directives;
mod emit;
mod emit_route;
mod envsubst;
mod files;
mod finish;
mod headers;
mod include;
mod inherit;
mod limits;
mod location;
mod parse;
mod plain;
mod ratelimit;
mod realip;
mod redirects;
mod server;
mod server_root;
mod site_tls;
mod sites;
mod table;
mod upstream;
mod vars;
mod yaml;

#[cfg(test)]
mod api_tests;
#[cfg(test)]
mod contract_tests;
#[cfg(test)]
mod golden_tests;
#[cfg(test)]
mod robust_tests;
#[cfg(test)]
mod steps_tests;

use std::fmt;
use std::path::{Path, PathBuf};

/// Name of the generator written into the header comment of the YAML.
///
/// The main crate may replace this with a string that includes its version.
pub const GENERATOR: &str = "greenlight import-nginx";

/// Options of an import, mirroring the command-line flags of `import-nginx`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// Like nginx `-p`: relative `include` paths are looked up under this
    /// directory first. Without it, the main file's directory is used.
    /// Source paths in the output are shown relative to this directory.
    pub prefix: Option<PathBuf>,
    /// When set, Let's Encrypt certificates become `tls: acme` and a
    /// top-level `acme:` section with this contact email is emitted.
    pub acme_email: Option<String>,
}

/// The result of a successful import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOutput {
    /// The greenlight configuration, as YAML text with comments.
    pub yaml: String,
    /// Everything that was not converted (and informational notes), in
    /// source order.
    pub warnings: Vec<Warning>,
}

/// A message about one place in the nginx configuration.
///
/// Displays as `file:line: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The nginx file, relative to the prefix (or the main file's directory)
    /// when it lies under it.
    pub file: PathBuf,
    /// 1-based line of the directive the message is about.
    pub line: usize,
    /// What was not converted and what to do about it.
    pub message: String,
}

impl Warning {
    /// True for informational notes (the message starts with `note: `):
    /// behaviour that greenlight has built in or that is not needed.
    pub fn is_note(&self) -> bool {
        self.message.starts_with(NOTE_PREFIX)
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The nginx configuration is not valid nginx syntax.
    #[error("{}:{line}:{col}: {message}", file.display())]
    Syntax {
        /// The file with the error, shown like in [`Warning::file`].
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column (in characters).
        col: usize,
        /// What is wrong.
        message: String,
    },
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file that could not be read.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The configuration parsed, but no server block gave a site with at
    /// least one route.
    #[error("nothing to import: {0}")]
    NothingUsable(String),
}

impl ImportError {
    /// Process exit code for the `import-nginx` command: 1 for syntax and
    /// I/O errors, 2 when nothing usable was found.
    pub fn exit_code(&self) -> i32 {
        match self {
            ImportError::Syntax { .. } | ImportError::Io { .. } => 1,
            ImportError::NothingUsable(_) => 2,
        }
    }
}

/// Reads the nginx configuration at `path` (and its includes) and converts it.
pub fn import(path: &Path, opts: &ImportOptions) -> Result<ImportOutput, ImportError> {
    let text = read_text(path)?;
    run(path, &text, opts)
}

/// Converts nginx configuration text. `source_name` names it in messages;
/// relative includes are resolved under `opts.prefix`, or else relative to
/// the directory of `source_name` (the current directory for a bare name).
pub fn import_str(
    source_name: &str,
    text: &str,
    opts: &ImportOptions,
) -> Result<ImportOutput, ImportError> {
    run(Path::new(source_name), text, opts)
}

fn run(path: &Path, text: &str, opts: &ImportOptions) -> Result<ImportOutput, ImportError> {
    let cfg = include::load(path, text, opts.prefix.as_deref())?;
    convert::convert(&cfg, opts)
}

/// Reads a file as text; bytes that are not UTF-8 are replaced. A file over
/// [`crate::config::MAX_CONFIG_BYTES`] is refused before it is read.
pub(crate) fn read_text(path: &Path) -> Result<String, ImportError> {
    use crate::config::ReadError;
    match crate::config::read_limited(path) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) => Err(ImportError::Io {
            path: path.to_path_buf(),
            source: match e {
                ReadError::Io(source) => source,
                too_large @ ReadError::TooLarge(_) => {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, too_large.to_string())
                }
            },
        }),
    }
}

/// Prefix of informational messages.
pub(crate) const NOTE_PREFIX: &str = "note: ";

/// A message tied to a directive, before file indices become paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Note {
    /// Index into the loaded file table.
    pub file: usize,
    /// 1-based line.
    pub line: usize,
    /// Position of the directive in document order (includes expanded).
    pub seq: usize,
    /// The message.
    pub message: String,
}
