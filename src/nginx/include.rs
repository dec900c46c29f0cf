//! Expansion of `include` directives: relative names are looked up under
//! the prefix (or the main file's directory), then under the including
//! file's directory; globs are sorted like nginx does; cycles and runaway
//! nesting are errors. Every directive is numbered in document order.

use std::fs;
use std::path::{Path, PathBuf};

use super::parse::{Config, Directive, parse_text};
use super::{ImportError, NOTE_PREFIX, Note};

/// Debian's `/etc/nginx/proxy_params`, used when the file itself is not
/// there: its headers are what many sites rely on (X-Real-IP above all).
const PROXY_PARAMS: &str = "proxy_set_header Host $http_host;\n\
proxy_set_header X-Real-IP $remote_addr;\n\
proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
proxy_set_header X-Forwarded-Proto $scheme;\n";

/// The text of a well-known include that is not on this machine.
fn builtin(pattern: &str) -> Option<&'static str> {
    let name = Path::new(pattern).file_name()?.to_str()?;
    (name == "proxy_params").then_some(PROXY_PARAMS)
}

/// Deepest chain of includes accepted.
const MAX_INCLUDE_DEPTH: usize = 32;
/// Most files read in one import.
const MAX_FILES: usize = 4096;
/// Deepest nesting of blocks across included files.
const MAX_TOTAL_BLOCK_DEPTH: usize = 64;

/// How deep the expansion is: in includes and in blocks.
#[derive(Debug, Clone, Copy)]
struct Depth {
    includes: usize,
    blocks: usize,
}

/// Loads the main configuration text and everything it includes.
pub(crate) fn load(main: &Path, text: &str, prefix: Option<&Path>) -> Result<Config, ImportError> {
    let main_dir = main.parent().map(Path::to_path_buf).unwrap_or_default();
    let base = prefix
        .map(Path::to_path_buf)
        .unwrap_or_else(|| main_dir.clone());
    let mut loader = Loader {
        prefix: prefix.map(Path::to_path_buf),
        main_dir,
        base,
        files: Vec::new(),
        notes: Vec::new(),
        stack: Vec::new(),
        seq: 0,
    };
    let display = loader.display(main);
    loader.files.push(display.clone());
    let raw = parse_text(text, 0).map_err(|e| e.into_import(display))?;
    loader.stack.push(canonical(main));
    let dir = main.parent().map(Path::to_path_buf).unwrap_or_default();
    let directives = loader.expand(
        raw,
        &dir,
        Depth {
            includes: 0,
            blocks: 0,
        },
    )?;
    Ok(Config {
        files: loader.files,
        directives,
        notes: loader.notes,
    })
}

fn canonical(path: &Path) -> PathBuf {
    fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

struct Loader {
    prefix: Option<PathBuf>,
    main_dir: PathBuf,
    base: PathBuf,
    files: Vec<PathBuf>,
    notes: Vec<Note>,
    stack: Vec<PathBuf>,
    seq: usize,
}

impl Loader {
    fn display(&self, path: &Path) -> PathBuf {
        match path.strip_prefix(&self.base) {
            Ok(rel) if !rel.as_os_str().is_empty() => rel.to_path_buf(),
            _ => path.to_path_buf(),
        }
    }

    fn next_seq(&mut self) -> usize {
        self.seq += 1;
        self.seq
    }

    fn note(&mut self, d: &Directive, seq: usize, message: String) {
        self.notes.push(Note {
            file: d.file,
            line: d.line,
            seq,
            message,
        });
    }

    fn syntax(&self, d: &Directive, message: String) -> ImportError {
        ImportError::Syntax {
            file: self.files.get(d.file).cloned().unwrap_or_default(),
            line: d.line,
            col: d.col,
            message,
        }
    }

    /// Numbers directives in document order and replaces each `include`
    /// with the directives of the files it names.
    fn expand(
        &mut self,
        raw: Vec<Directive>,
        dir: &Path,
        depth: Depth,
    ) -> Result<Vec<Directive>, ImportError> {
        let mut out = Vec::with_capacity(raw.len());
        for mut d in raw {
            if d.name == "include" && d.block.is_none() {
                let seq = self.next_seq();
                let pattern = match d.args.as_slice() {
                    [p] => p.clone(),
                    _ => {
                        self.note(
                            &d,
                            seq,
                            "directive 'include' needs exactly one file name or pattern; ignored"
                                .to_string(),
                        );
                        continue;
                    }
                };
                let found = self.resolve(&pattern, dir, &d, seq);
                if found.is_empty()
                    && let Some(text) = builtin(&pattern)
                {
                    let file = self.files.len();
                    self.files
                        .push(PathBuf::from(format!("{pattern} (Debian's, built in)")));
                    let raw = parse_text(text, file)
                        .map_err(|e| e.into_import(PathBuf::from(&pattern)))?;
                    out.extend(self.expand(raw, dir, depth)?);
                }
                for path in found {
                    out.extend(self.include_file(&path, &d, depth)?);
                }
            } else {
                d.seq = self.next_seq();
                if let Some(children) = d.block.take() {
                    if depth.blocks >= MAX_TOTAL_BLOCK_DEPTH {
                        return Err(self.syntax(
                            &d,
                            format!("blocks nested too deeply through includes (more than {MAX_TOTAL_BLOCK_DEPTH} levels)"),
                        ));
                    }
                    let inner = Depth {
                        blocks: depth.blocks + 1,
                        ..depth
                    };
                    d.block = Some(self.expand(children, dir, inner)?);
                }
                out.push(d);
            }
        }
        Ok(out)
    }

    fn include_file(
        &mut self,
        path: &Path,
        from: &Directive,
        depth: Depth,
    ) -> Result<Vec<Directive>, ImportError> {
        if depth.includes >= MAX_INCLUDE_DEPTH {
            return Err(self.syntax(
                from,
                format!("includes nested too deeply (more than {MAX_INCLUDE_DEPTH} levels)"),
            ));
        }
        let display = self.display(path);
        let key = canonical(path);
        if self.stack.contains(&key) {
            return Err(self.syntax(
                from,
                format!(
                    "include cycle: '{}' is already being read (it includes itself, directly or through other files)",
                    display.display()
                ),
            ));
        }
        if self.files.len() >= MAX_FILES {
            return Err(self.syntax(
                from,
                format!("too many included files (more than {MAX_FILES})"),
            ));
        }
        let text = super::read_text(path)?;
        let file = self.files.len();
        self.files.push(display.clone());
        let raw = parse_text(&text, file).map_err(|e| e.into_import(display))?;
        self.stack.push(key);
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let inner = Depth {
            includes: depth.includes + 1,
            ..depth
        };
        let result = self.expand(raw, &dir, inner);
        self.stack.pop();
        result
    }

    /// Finds the files an `include` names. Relative names are looked up under
    /// the prefix (or the main file's directory), then under the including
    /// file's directory.
    fn resolve(&mut self, pattern: &str, dir: &Path, d: &Directive, seq: usize) -> Vec<PathBuf> {
        let bases: Vec<PathBuf> = if Path::new(pattern).is_absolute() {
            vec![PathBuf::new()]
        } else {
            let first = self.prefix.clone().unwrap_or_else(|| self.main_dir.clone());
            let mut v = vec![first];
            if !v.iter().any(|b| b == dir) {
                v.push(dir.to_path_buf());
            }
            v
        };
        let is_glob = pattern.contains(['*', '?', '[']);
        for base in &bases {
            if is_glob {
                match glob_files(base, pattern) {
                    Ok(found) if !found.is_empty() => return found,
                    Ok(_) => {}
                    Err(msg) => {
                        self.note(
                            d,
                            seq,
                            format!("include pattern '{pattern}' is not a valid glob ({msg}); nothing was included"),
                        );
                        return Vec::new();
                    }
                }
            } else {
                let full = base.join(pattern);
                if full.is_file() {
                    return vec![full];
                }
            }
        }
        let message = if is_glob {
            format!(
                "{NOTE_PREFIX}include '{pattern}' matched no files; nothing was included (nginx accepts this too)"
            )
        } else if builtin(pattern).is_some() {
            return Vec::new();
        } else if pattern.ends_with("options-ssl-nginx.conf") {
            format!(
                "{NOTE_PREFIX}include '{pattern}' was not found: certbot's file holds only TLS session, protocol and cipher settings, which rustls does not need"
            )
        } else if pattern.ends_with("mime.types") {
            format!(
                "{NOTE_PREFIX}include '{pattern}' was not found: it only maps file names to types for files nginx serves itself; greenlight passes the upstream's Content-Type through"
            )
        } else {
            format!(
                "include '{pattern}' was not found, so its directives were not converted (relative includes are looked up under the prefix or the main file's directory, then the including file's directory); convert it with --prefix pointing at the nginx directory"
            )
        };
        self.note(d, seq, message);
        Vec::new()
    }
}

fn glob_files(base: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    let full = if base.as_os_str().is_empty() {
        pattern.to_string()
    } else {
        let escaped = glob::Pattern::escape(&base.to_string_lossy());
        format!("{}{}{}", escaped, std::path::MAIN_SEPARATOR, pattern)
    };
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let paths = glob::glob_with(&full, options).map_err(|e| e.msg.to_string())?;
    let mut found: Vec<PathBuf> = paths
        .filter_map(Result::ok)
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    Ok(found)
}
