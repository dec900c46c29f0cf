//! Environment references in the configuration file: `{$NAME}` and
//! `{$NAME:default}`, replaced in the file's text before it is parsed.
//!
//! Why text, before parsing: a reference can then stand anywhere a value
//! can (a host name, an upstream address, a port inside an address, a
//! header value), the same way Caddy's `{$NAME}` works in a Caddyfile and
//! `envsubst` works on the nginx templates of the official Docker image —
//! which is where `import-nginx` meets them. Every reload reads the
//! environment greenlight was started with (a process cannot see another's
//! changes), so a new value needs a restart or an upgrade.
//!
//! Names are upper case (`[A-Z_][A-Z0-9_]*`), which keeps them apart from
//! greenlight's own lower-case template variables (`$host`, `${uri}`): a
//! `{$host}` is left as written. References in comments (`#` at the start
//! of a line or after a space, outside quotes) are not replaced. A reference
//! to an unset variable without a default is an error at its line and
//! column; so is a value with a line break or other control character,
//! which could change the file's structure instead of one value.
//!
//! Replacing text moves the columns after a reference on its line; the
//! loader maps every position it reports back to the file as written
//! ([`Expanded::raw_pos`]), so errors and the `switch` rewrite of
//! `active:` point at the right place.

use std::borrow::Cow;

use super::diag::Pos;

/// The file's text with its references replaced.
#[derive(Debug)]
pub struct Expanded<'a> {
    /// The text to parse.
    pub text: Cow<'a, str>,
    /// Per replaced reference: its line, the column (in the expanded text)
    /// just after the replacement, and how many columns the expanded text
    /// runs ahead of the file there (negative when the value is longer).
    shifts: Vec<(u32, u32, i64)>,
}

/// A reference that cannot be replaced.
#[derive(Debug, PartialEq, Eq)]
pub struct EnvProblem {
    /// Where the reference starts in the file as written.
    pub pos: Pos,
    /// What is wrong.
    pub what: String,
    /// How to fix it.
    pub fix: String,
}

impl Expanded<'_> {
    /// Maps a position in the expanded text back to the file as written.
    /// Positions inside a replaced value map to the reference's first
    /// column after it.
    pub fn raw_pos(&self, p: Pos) -> Pos {
        let mut delta = 0i64;
        for &(line, after, d) in &self.shifts {
            if line == p.line && after <= p.col {
                delta = d;
            }
        }
        Pos {
            line: p.line,
            col: (i64::from(p.col) + delta).max(1) as u32,
        }
    }
}

/// Replaces every `{$NAME}` / `{$NAME:default}` in `text` using `lookup`.
pub fn expand<'a>(
    text: &'a str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Expanded<'a>, Vec<EnvProblem>> {
    if !text.contains("{$") {
        return Ok(Expanded {
            text: Cow::Borrowed(text),
            shifts: Vec::new(),
        });
    }
    let mut out = String::with_capacity(text.len());
    let mut shifts = Vec::new();
    let mut problems = Vec::new();
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let line_no = n as u32 + 1;
        let code_end = comment_start(line);
        let (code, comment) = line.split_at(code_end);
        let mut rest = code;
        // Columns (1-based, characters) in the file and in the output.
        let mut raw_col = 1u32;
        let mut out_col = 1u32;
        while let Some(at) = rest.find("{$") {
            let before = &rest[..at];
            out.push_str(before);
            let w = before.chars().count() as u32;
            raw_col += w;
            out_col += w;
            let Some((name, default, len)) = reference(&rest[at..]) else {
                out.push_str("{$");
                raw_col += 2;
                out_col += 2;
                rest = &rest[at + 2..];
                continue;
            };
            let written = &rest[at..at + len];
            let value = match (lookup(name), default) {
                (Some(v), _) => Some(v),
                (None, Some(d)) => Some(d.to_string()),
                (None, None) => {
                    problems.push(EnvProblem {
                        pos: Pos { line: line_no, col: raw_col },
                        what: format!("environment variable {name} is not set (referenced as `{written}`)"),
                        fix: format!("set {name} in greenlight's environment, or give a default: `{{${name}:value}}`"),
                    });
                    None
                }
            };
            let value = value.unwrap_or_default();
            if value.chars().any(char::is_control) {
                problems.push(EnvProblem {
                    pos: Pos { line: line_no, col: raw_col },
                    what: format!("environment variable {name} holds a line break or another control character, which could change the file's structure"),
                    fix: format!("give {name} a one-line value"),
                });
            }
            out.push_str(&value);
            raw_col += written.chars().count() as u32;
            out_col += value.chars().count() as u32;
            shifts.push((line_no, out_col, i64::from(raw_col) - i64::from(out_col)));
            rest = &rest[at + len..];
        }
        out.push_str(rest);
        out.push_str(comment);
    }
    if problems.is_empty() {
        Ok(Expanded {
            text: Cow::Owned(out),
            shifts,
        })
    } else {
        Err(problems)
    }
}

/// `(name, default, length in bytes)` of the reference `s` starts with, or
/// `None` when it is not one (`{$host}`, `{$ X}`, no closing brace).
fn reference(s: &str) -> Option<(&str, Option<&str>, usize)> {
    let body = s.strip_prefix("{$")?;
    let close = body.find(['}', '\n'])?;
    if !body[close..].starts_with('}') {
        return None;
    }
    let inner = &body[..close];
    let (name, default) = match inner.split_once(':') {
        Some((n, d)) => (n, Some(d)),
        None => (inner, None),
    };
    is_name(name).then_some((name, default, 2 + close + 1))
}

/// An environment variable name greenlight reads: `[A-Z_][A-Z0-9_]*` (upper
/// case keeps it apart from template variables; the importer uses the same
/// rule to tell an envsubst reference from an nginx variable).
pub fn is_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_uppercase() || b == b'_')
        && bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// Byte offset where a YAML comment starts on `line` (its length if none):
/// a `#` at the start or after whitespace, outside a quoted scalar. A quote
/// only opens a scalar where one can start (line start, after whitespace,
/// `:`, `,`, `[`, `{`), so an apostrophe inside a word is text.
fn comment_start(line: &str) -> usize {
    let mut quote: Option<char> = None;
    let mut prev: Option<char> = None;
    let mut chars = line.char_indices();
    while let Some((i, c)) = chars.next() {
        match quote {
            Some('"') if c == '\\' => {
                chars.next();
            }
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => {
                let at_start = prev.is_none_or(|p| p.is_whitespace() || ":,[{".contains(p));
                if (c == '"' || c == '\'') && at_start {
                    quote = Some(c);
                } else if c == '#' && prev.is_none_or(char::is_whitespace) {
                    return i;
                }
            }
        }
        prev = Some(c);
    }
    line.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "APP" => Some("app.internal:3000".into()),
            "DOMAIN" => Some("example.org".into()),
            "LONG" => Some("a-much-longer-value.example.org".into()),
            "BAD" => Some("x\ny: 1".into()),
            _ => None,
        }
    }

    #[test]
    fn references_are_replaced_defaults_used_and_others_left() {
        let text = "a: {$APP}\nb: [\"{$DOMAIN}\", \"www.{$DOMAIN}\"]\nc: {$PORT:8080}\nd: '{$host} {$ X} {$lower}'\n# {$UNSET} in a comment\ne: x # {$UNSET}\n";
        let e = expand(text, env).expect("expands");
        assert_eq!(
            e.text,
            "a: app.internal:3000\nb: [\"example.org\", \"www.example.org\"]\nc: 8080\nd: '{$host} {$ X} {$lower}'\n# {$UNSET} in a comment\ne: x # {$UNSET}\n"
        );
        // Text without references is not copied.
        assert!(matches!(
            expand("a: 1\n", env).unwrap().text,
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn an_unset_reference_or_a_multi_line_value_is_an_error_at_its_column() {
        let p = expand("a: 1\nb: x{$NOPE}\nc: {$BAD}\nd: '#' {$NOPE2}\n", env).unwrap_err();
        assert_eq!(p.len(), 3, "{p:?}");
        assert_eq!(p[0].pos, Pos { line: 2, col: 5 });
        assert!(p[0].what.contains("NOPE is not set"), "{p:?}");
        assert!(p[0].fix.contains("{$NOPE:value}"), "{p:?}");
        assert_eq!(p[1].pos, Pos { line: 3, col: 4 });
        assert!(p[1].what.contains("line break"), "{p:?}");
        // A quoted '#' is not a comment.
        assert_eq!(p[2].pos, Pos { line: 4, col: 8 });
    }

    #[test]
    fn positions_after_a_replacement_map_back_to_the_file() {
        // `{$DOMAIN}` (9 columns) becomes `example.org` (11); `{$LONG}` (7) 31.
        let text = "x: {$DOMAIN} y: 1\nz: {$LONG}, w: 2\nplain: 3\n";
        let e = expand(text, env).expect("expands");
        let lines: Vec<&str> = e.text.lines().collect();
        let col = |line: &str, needle: &str| line.find(needle).unwrap() as u32 + 1;
        let y = e.raw_pos(Pos {
            line: 1,
            col: col(lines[0], "y:"),
        });
        assert_eq!(
            y,
            Pos {
                line: 1,
                col: col("x: {$DOMAIN} y: 1", "y:")
            }
        );
        let w = e.raw_pos(Pos {
            line: 2,
            col: col(lines[1], "w:"),
        });
        assert_eq!(
            w,
            Pos {
                line: 2,
                col: col("z: {$LONG}, w: 2", "w:")
            }
        );
        // Before a replacement, and on other lines, nothing moves.
        assert_eq!(e.raw_pos(Pos { line: 1, col: 1 }), Pos { line: 1, col: 1 });
        assert_eq!(e.raw_pos(Pos { line: 3, col: 5 }), Pos { line: 3, col: 5 });
    }
}
