//! A route's path matcher in nginx `location` syntax, parsed and compiled once
//! at load.
//!
//! `"/p"` is a prefix, `"= /p"` an exact path, `"^~ /p"` a prefix that stops
//! the regex search when it is the longest prefix, `"~ re"` a case-sensitive
//! and `"~* re"` a case-insensitive regular expression (the `regex` crate:
//! linear time, no look-around or back-references). The modifier may also be
//! written without the space (`"=/p"`, `"~*\.php$"`), as nginx allows.
//!
//! This file only knows one location; the order in which a site's locations
//! are tried is [`super::router`]'s. It never touches configuration or
//! requests: `config::validate_match` turns its errors into diagnostics.

use regex::{Regex, RegexBuilder};

/// A compiled regular expression that compares by its source and case mode,
/// so that configuration types holding one stay `Eq`.
#[derive(Clone, Debug)]
pub struct Pattern {
    regex: Regex,
    nocase: bool,
}

impl Pattern {
    /// Compiles `source`; `nocase` matches letters case-insensitively.
    pub fn compile(source: &str, nocase: bool) -> Result<Pattern, regex::Error> {
        let regex = RegexBuilder::new(source).case_insensitive(nocase).build()?;
        Ok(Pattern { regex, nocase })
    }

    /// The compiled expression.
    pub fn regex(&self) -> &Regex {
        &self.regex
    }

    /// The source as written (without the modifier).
    pub fn as_str(&self) -> &str {
        self.regex.as_str()
    }

    /// Whether letters match case-insensitively.
    pub fn nocase(&self) -> bool {
        self.nocase
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.nocase == other.nocase && self.as_str() == other.as_str()
    }
}

impl Eq for Pattern {}

/// One route's path matcher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// `= /p`: the path is exactly `/p`; wins over everything else.
    Exact(String),
    /// `/p`: the path starts with `/p`; the longest such prefix is kept,
    /// but a matching regex location wins over it.
    Prefix(String),
    /// `^~ /p`: a prefix that, when it is the longest matching one, is used
    /// without trying the regex locations.
    PrefixNoRegex(String),
    /// `~ re` / `~* re`: tried in file order after the prefixes; the first
    /// that matches wins and its capture groups become `$1`… and `$name`.
    Regex(Pattern),
    /// `@name`: a named location, never matched by a request path; only a
    /// `files:` route's `try_files` hands requests to it (nginx
    /// `location @name`).
    Named(String),
}

/// Why a `path:` value is not a location (messages name the route path, as
/// `check` prints them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocationError {
    /// The value is empty.
    #[error("route path is empty")]
    Blank,
    /// Nothing follows a modifier (`"="`, `"~* "`).
    #[error("route path has nothing after the modifier '{0}'")]
    Empty(&'static str),
    /// A first word that is none of `=`, `^~`, `~`, `~*`.
    #[error("route path: '{0}' is not a location modifier")]
    UnknownModifier(String),
    /// An exact or prefix path that does not start with `/`.
    #[error("route path '{path}' does not start with '/'")]
    NotAbsolute {
        /// `=`, `^~`, or empty for a plain prefix.
        modifier: &'static str,
        /// The path as written after the modifier.
        path: String,
    },
    /// The regex crate refused the expression (its message, one line).
    #[error("route path regex '{expr}' does not compile: {why}")]
    BadRegex {
        /// The expression as written.
        expr: String,
        /// The regex crate's reason.
        why: String,
    },
}

impl Location {
    /// Parses a route's `path:` value in nginx `location` syntax.
    pub fn parse(written: &str) -> Result<Location, LocationError> {
        let s = written.trim();
        if s.is_empty() {
            return Err(LocationError::Blank);
        }
        // Longer modifiers first: "^~" and "~*" start like "~".
        if let Some(rest) = s.strip_prefix("^~") {
            return absolute(rest, "^~").map(Location::PrefixNoRegex);
        }
        if let Some(rest) = s.strip_prefix("~*") {
            return regex(rest, true);
        }
        if let Some(rest) = s.strip_prefix('~') {
            return regex(rest, false);
        }
        if let Some(rest) = s.strip_prefix('=') {
            return absolute(rest, "=").map(Location::Exact);
        }
        if s.starts_with('/') {
            return Ok(Location::Prefix(s.to_string()));
        }
        if s.len() > 1 && s.starts_with('@') && !s.contains(char::is_whitespace) {
            return Ok(Location::Named(s.to_string()));
        }
        match s.split_once(char::is_whitespace) {
            Some((word, rest)) if !rest.trim().is_empty() => {
                Err(LocationError::UnknownModifier(word.to_string()))
            }
            _ => Err(LocationError::NotAbsolute {
                modifier: "",
                path: s.to_string(),
            }),
        }
    }

    /// Equal for routes that are one location (nginx counts `/p` and
    /// `^~ /p` as the same one): the router shares their entry and
    /// validation allows them only with different `methods`.
    pub fn identity(&self) -> String {
        match self {
            Location::Exact(p) => format!("= {p}"),
            Location::Prefix(p) | Location::PrefixNoRegex(p) => p.clone(),
            Location::Regex(r) => format!("{} {}", if r.nocase() { "~*" } else { "~" }, r.as_str()),
            Location::Named(n) => n.clone(),
        }
    }

    /// The location as it would be written in a route's `path:`.
    pub fn as_written(&self) -> String {
        match self {
            Location::Exact(p) => format!("= {p}"),
            Location::Prefix(p) => p.clone(),
            Location::PrefixNoRegex(p) => format!("^~ {p}"),
            Location::Regex(r) if r.nocase() => format!("~* {}", r.as_str()),
            Location::Regex(r) => format!("~ {}", r.as_str()),
            Location::Named(n) => n.clone(),
        }
    }

    /// The regex of a regex location.
    pub fn pattern(&self) -> Option<&Pattern> {
        match self {
            Location::Regex(r) => Some(r),
            _ => None,
        }
    }

    /// Number of capture groups including group 0 (the whole match); 1 for
    /// every location that is not a regex (it "captures" the whole path).
    pub fn captures_len(&self) -> usize {
        self.pattern().map_or(1, |p| p.regex().captures_len())
    }

    /// The group index of the named capture `name` (`(?<name>…)`), resolved
    /// here once so templates refer to captures by number at request time.
    pub fn capture_index(&self, name: &str) -> Option<usize> {
        self.pattern()?
            .regex()
            .capture_names()
            .position(|n| n == Some(name))
    }
}

fn absolute(rest: &str, modifier: &'static str) -> Result<String, LocationError> {
    let p = rest.trim_start();
    if p.is_empty() {
        return Err(LocationError::Empty(modifier));
    }
    if !p.starts_with('/') {
        return Err(LocationError::NotAbsolute {
            modifier,
            path: p.to_string(),
        });
    }
    Ok(p.to_string())
}

fn regex(rest: &str, nocase: bool) -> Result<Location, LocationError> {
    let source = rest.trim_start();
    if source.is_empty() {
        return Err(LocationError::Empty(if nocase { "~*" } else { "~" }));
    }
    Pattern::compile(source, nocase)
        .map(Location::Regex)
        .map_err(|e| LocationError::BadRegex {
            expr: source.to_string(),
            why: regex_reason(&e),
        })
}

/// The regex crate's message without its ASCII-art pointer: the last line
/// that says what is wrong.
pub fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: ").map(str::to_string))
        .unwrap_or_else(|| text.lines().last().unwrap_or_default().trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Location {
        Location::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn every_nginx_modifier_parses_with_or_without_a_space() {
        assert_eq!(p("/api/"), Location::Prefix("/api/".into()));
        assert_eq!(p("= /healthz"), Location::Exact("/healthz".into()));
        assert_eq!(p("=/healthz"), Location::Exact("/healthz".into()));
        assert_eq!(p("^~ /static/"), Location::PrefixNoRegex("/static/".into()));
        assert_eq!(p("^~/static/"), Location::PrefixNoRegex("/static/".into()));
        let re = p("~ \\.php$");
        assert_eq!(re.as_written(), "~ \\.php$");
        assert!(!re.pattern().expect("regex").nocase());
        let re = p("~*\\.(png|jpg)$");
        assert_eq!(re.as_written(), "~* \\.(png|jpg)$");
        assert!(re.pattern().expect("regex").nocase());
        assert_eq!(p("@app"), Location::Named("@app".into()));
        assert_eq!(p("@app").as_written(), "@app");
    }

    #[test]
    fn case_modes_differ_and_compare_by_mode_and_source() {
        let cs = p("~ ^/Img/");
        let ci = p("~* ^/Img/");
        assert_ne!(cs, ci);
        assert_eq!(ci, p("~*^/Img/"));
        let m = |l: &Location, s| l.pattern().expect("regex").regex().is_match(s);
        assert!(m(&cs, "/Img/a") && !m(&cs, "/img/a"));
        assert!(m(&ci, "/Img/a") && m(&ci, "/IMG/a") && m(&ci, "/img/a"));
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        let e = |s| Location::parse(s).expect_err(s);
        assert_eq!(e("="), LocationError::Empty("="));
        assert_eq!(e("~* "), LocationError::Empty("~*"));
        assert_eq!(e("~"), LocationError::Empty("~"));
        assert_eq!(e("^~"), LocationError::Empty("^~"));
        assert_eq!(e(" "), LocationError::Blank);
        assert_eq!(
            e("@fallback /x"),
            LocationError::UnknownModifier("@fallback".into())
        );
        assert_eq!(e("!~ /x"), LocationError::UnknownModifier("!~".into()));
        let not_abs = |modifier, path: &str| LocationError::NotAbsolute {
            modifier,
            path: path.into(),
        };
        assert_eq!(e("api/"), not_abs("", "api/"));
        assert_eq!(e("= api"), not_abs("=", "api"));
        assert_eq!(e("^~api"), not_abs("^~", "api"));
        match e("~ ^/(unclosed") {
            LocationError::BadRegex { expr, why } => {
                assert_eq!(expr, "^/(unclosed");
                assert!(why.contains("unclosed group"), "{why}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn named_captures_resolve_to_their_group_index() {
        let l = p("~ ^/u/(?<user>[^/]+)/(\\d+)$");
        assert_eq!(l.captures_len(), 3);
        assert_eq!(l.capture_index("user"), Some(1));
        assert_eq!(l.capture_index("nope"), None);
        assert_eq!(p("/x").capture_index("user"), None);
        assert_eq!(p("/x").captures_len(), 1);
    }
}
