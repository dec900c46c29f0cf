//! Path rewriting: `upstream_path` (nginx `proxy_pass http://up/new/`, the
//! matched prefix replaced) and `rewrite:` rules (nginx `rewrite`).
//!
//! Rules run in order on the current path (no query). The first rule whose
//! `from` matches ends the list, by its flag (nginx semantics):
//! - `break`: the new path goes to the upstream; no more rules;
//! - `last`: no more rules; routes are matched again with the new path (at
//!   most [`MAX_LAST`] times, then 500, like nginx's 10 cycles);
//! - `redirect` / `permanent`: answer 302 / 301 with the new location (made
//!   absolute like nginx). A `to` that starts with `http://`, `https://` or
//!   `$scheme` always redirects.
//!
//! Query string: kept unless `to` has a `?`. Then, as in nginx, the new
//! arguments come first and the request's own follow after `&`; a `to`
//! ending in `?` drops the request's arguments.
//!
//! `upstream_path` replaces the route's matched prefix in the path sent
//! upstream ("/" strips it). As in nginx, it is ignored when a `break` rule
//! of the same route changed the path: the rewritten path is sent whole.

use super::Captures;
use super::template::{Segment, Template, Var};
use super::vars::{Match, VarCx};
use regex::Regex;

/// How many times `last` may send a request back to route matching.
pub const MAX_LAST: usize = 10;

/// What a matching rule does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flag {
    /// Use the new path for this route's upstream.
    Break,
    /// Match routes again with the new path.
    Last,
    /// Answer 302 with the new location.
    Redirect,
    /// Answer 301 with the new location.
    Permanent,
}

/// One `rewrite:` rule.
#[derive(Debug)]
pub struct Rule {
    /// Matched against the current path.
    pub from: Regex,
    /// `from` when it is a literal prefix and then the rest of the path as
    /// group 1 (the most common nginx rewrite, `^/old/(.*)$`): matched with
    /// `starts_with`, without the regex engine or its slots.
    pub prefix_rest: Option<PrefixRest>,
    /// `to` reads a variable of the connection or the site
    /// ([`Template::needs_connection`]).
    pub needs_connection: bool,
    /// The new path (the part of `to` before its first `?`).
    pub to_path: Template,
    /// `to_path` is text and this rule's own captures only (`/$1`, the
    /// common case): written straight into the new path
    /// ([`PathText::push_str`]), without the variable lookup or the
    /// thread's render buffer (about 150 instructions per request).
    pub own_captures_only: bool,
    /// The new arguments (after the `?`), if `to` has one.
    pub to_args: Option<Template>,
    /// The request's arguments are kept (after the new ones); false when
    /// `to` ends in `?`.
    pub keep_args: bool,
    /// What happens when `from` matches.
    pub flag: Flag,
}

impl Rule {
    /// Builds a rule from its parsed parts; `to` is split at its first
    /// literal `?`. A `to` starting with `http://`, `https://` or `$scheme`
    /// turns `break`/`last` into `redirect` (nginx does the same).
    pub fn new(from: Regex, to: Template, flag: Flag) -> Rule {
        let (path, args, keep_args) = split_args(&to);
        let absolute = match to.segments().first() {
            Some(Segment::Literal(l)) => l.starts_with("http://") || l.starts_with("https://"),
            Some(Segment::Var(Var::Scheme)) => true,
            _ => false,
        };
        let flag = match flag {
            Flag::Break | Flag::Last if absolute => Flag::Redirect,
            f => f,
        };
        Rule {
            needs_connection: path.needs_connection()
                || args.as_ref().is_some_and(Template::needs_connection),
            prefix_rest: PrefixRest::of(from.as_str()),
            from,
            own_captures_only: path.segments().iter().all(|s| {
                matches!(
                    s,
                    Segment::Literal(_) | Segment::Var(Var::Capture(_) | Var::LastNamed(_))
                )
            }),
            to_path: path,
            to_args: args,
            keep_args,
            flag,
        }
    }
}

/// A regex of the shape `^LITERAL(.*)$` or `^LITERAL(.*)`, recognised from
/// its source at load, where LITERAL is plain ASCII text (`\\` escapes of
/// punctuation allowed). It matches what the regex matches, with the same
/// spans: the subject starts with LITERAL and `.` takes every character but
/// `\n` (so with `$` there must be no line break after LITERAL; without it,
/// group 1 ends at the first one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefixRest {
    /// The literal text after `^`.
    prefix: Box<str>,
    /// The pattern ends in `$`.
    to_end: bool,
}

impl PrefixRest {
    /// The fast form of regex source `src`, when it has this shape.
    pub fn of(src: &str) -> Option<PrefixRest> {
        let body = src.strip_prefix('^')?;
        let (lit, to_end) = match body.strip_suffix("(.*)$") {
            Some(l) => (l, true),
            None => (body.strip_suffix("(.*)")?, false),
        };
        let mut prefix = String::with_capacity(lit.len());
        let mut chars = lit.chars();
        while let Some(c) = chars.next() {
            match c {
                // An escaped ASCII punctuation character is itself, except
                // `\\<` and `\\>` (word boundaries).
                '\\' => match chars.next() {
                    Some(e) if e.is_ascii_punctuation() && e != '<' && e != '>' => prefix.push(e),
                    _ => return None,
                },
                c if c.is_ascii_alphanumeric() => prefix.push(c),
                '/' | '-' | '_' | '~' | '%' | '=' | ',' | ';' | ':' | '@' | '!' | '&' | '\''
                | '"' | '<' | '>' | '#' | '`' => prefix.push(c),
                // Anything else may mean something to the regex.
                _ => return None,
            }
        }
        Some(PrefixRest {
            prefix: prefix.into(),
            to_end,
        })
    }

    /// The captures of a match on `subject`, if it matches.
    pub fn captures(&self, subject: &str) -> Option<Captures> {
        let rest = subject.strip_prefix(&*self.prefix)?;
        let start = self.prefix.len();
        // A byte search: `find(char)` goes through the generic searcher.
        let end = match rest.bytes().position(|b| b == b'\n') {
            None => subject.len(),
            Some(_) if self.to_end => return None,
            Some(nl) => start + nl,
        };
        Some(Captures::rest(start, end))
    }
}

/// Splits a template at its first literal `?`: (path, args, keep the
/// request's args).
fn split_args(t: &Template) -> (Template, Option<Template>, bool) {
    use super::template::Segment;
    let segs = t.segments();
    let Some((i, at)) = segs.iter().enumerate().find_map(|(i, s)| match s {
        Segment::Literal(l) => l.find('?').map(|at| (i, at)),
        Segment::Var(_) => None,
    }) else {
        return (t.clone(), None, true);
    };
    let Segment::Literal(l) = &segs[i] else {
        unreachable!("found in a literal")
    };
    let mut path: Vec<Segment> = segs[..i].to_vec();
    if at > 0 {
        path.push(Segment::Literal(l[..at].into()));
    }
    let mut args: Vec<Segment> = Vec::new();
    if at + 1 < l.len() {
        args.push(Segment::Literal(l[at + 1..].into()));
    }
    args.extend(segs[i + 1..].iter().cloned());
    // nginx: a `?` at the very end means "drop the request's arguments".
    let keep = !args.is_empty();
    let args = (!args.is_empty()).then(|| Template::from_segments(args));
    (Template::from_segments(path), args, keep)
}

/// Prefix replacement for the path sent upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamPath {
    /// Length of the route's matched prefix, in bytes.
    pub prefix_len: usize,
    /// What replaces it.
    pub replace: Box<str>,
}

impl UpstreamPath {
    /// `path` with its first `prefix_len` bytes replaced.
    pub fn apply(&self, path: &str) -> String {
        let rest = path.get(self.prefix_len..).unwrap_or("");
        let mut out = String::with_capacity(self.replace.len() + rest.len());
        out.push_str(&self.replace);
        out.push_str(rest);
        out
    }
}

/// A route's path rewriting: its rules, then its `upstream_path`.
#[derive(Debug, Default)]
pub struct Rewrites {
    /// `rewrite:` rules in order.
    pub rules: Box<[Rule]>,
    /// `upstream_path`, if set.
    pub upstream_path: Option<UpstreamPath>,
}

/// The request's path and query as rewriting changes them, with the last
/// rewrite match (its captures stay readable by later templates, `$1`).
///
/// Until a rule rewrites it, the path is the request's own, read from the
/// request rather than copied (`None` in `path` and in `last`'s subject).
#[derive(Clone, Debug, Default)]
pub struct PathState {
    /// The current path; `None` while it is the request's own.
    pub path: Option<PathText>,
    /// The current query string (without `?`).
    pub args: Option<String>,
    /// The last rule match and the path it matched (`None`: the request's).
    pub last: Option<(Captures, Option<PathText>)>,
}

/// A rewritten path, kept in place up to [`INLINE_PATH`] bytes (nearly
/// every path) and on the heap beyond: a rewrite then allocates nothing of
/// its own (its `String` and that string's free cost about 250 instructions
/// per request, callgrind, BENCHMARKS.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathText {
    /// Up to [`INLINE_PATH`] bytes.
    Inline(arrayvec::ArrayString<INLINE_PATH>),
    /// Longer.
    Heap(String),
}

/// The longest path kept in place.
pub const INLINE_PATH: usize = 64;

impl PathText {
    /// The path.
    pub fn as_str(&self) -> &str {
        match self {
            PathText::Inline(a) => a.as_str(),
            PathText::Heap(s) => s,
        }
    }

    /// Appends `s`, moving to the heap when it no longer fits in place.
    pub fn push_str(&mut self, s: &str) {
        match self {
            PathText::Inline(a) => {
                if a.try_push_str(s).is_err() {
                    let mut heap = String::with_capacity(a.len() + s.len());
                    heap.push_str(a);
                    heap.push_str(s);
                    *self = PathText::Heap(heap);
                }
            }
            PathText::Heap(h) => h.push_str(s),
        }
    }
}

impl Default for PathText {
    fn default() -> PathText {
        PathText::Inline(arrayvec::ArrayString::new())
    }
}

impl std::ops::Deref for PathText {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for PathText {
    fn from(s: &str) -> PathText {
        match arrayvec::ArrayString::from(s) {
            Ok(a) => PathText::Inline(a),
            Err(_) => PathText::Heap(s.to_string()),
        }
    }
}

impl PathState {
    /// The current path; `request` is the request's own path.
    pub fn path<'a>(&'a self, request: &'a str) -> &'a str {
        self.path.as_deref().unwrap_or(request)
    }

    /// The last match and the path it matched; `request` as in [`Self::path`].
    pub fn last<'a>(&'a self, request: &'a str) -> Option<Match<'a>> {
        self.last.as_ref().map(|(c, s)| Match {
            captures: c,
            subject: s.as_deref().unwrap_or(request),
        })
    }
}

/// What the request does after the rules ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// No rule matched.
    Continue,
    /// A `break` rule rewrote the path.
    Break,
    /// A `last` rule rewrote the path: match routes again.
    Last,
    /// Answer a redirect.
    Redirect {
        /// 301 or 302.
        status: u16,
        /// The location as rendered (maybe relative).
        location: String,
    },
}

impl Rewrites {
    /// Whether a rule's `to` reads a variable of the connection or the
    /// site; if none does, the rules run with the request's variables alone.
    pub fn needs_connection(&self) -> bool {
        self.rules.iter().any(|r| r.needs_connection)
    }

    /// True when neither rules nor `upstream_path` are set.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.upstream_path.is_none()
    }

    /// Runs the rules on `st`; `cx` gives every other variable (its `uri`,
    /// `args` and `last` are replaced by the state's).
    pub fn run(&self, st: &mut PathState, cx: &VarCx<'_>) -> Outcome {
        let request_path = cx.req.uri.path();
        for rule in self.rules.iter() {
            let current = st.path(request_path);
            let caps = match &rule.prefix_rest {
                Some(fast) => match fast.captures(current) {
                    Some(c) => c,
                    None => continue,
                },
                None => {
                    // The regex's own slots are kept as the match's
                    // captures (no `regex::Captures`, no list copied out).
                    let mut locs = rule.from.capture_locations();
                    if rule.from.captures_read(&mut locs, current).is_none() {
                        continue;
                    }
                    Captures::from_locations(locs)
                }
            };
            // `None`: the request's arguments stay as they are (not copied).
            let (new_path, new_args) = {
                // Made only for a `to` that reads other variables.
                let cx = || VarCx {
                    uri: current,
                    args: st.args.as_deref(),
                    last: Some(Match {
                        captures: &caps,
                        subject: current,
                    }),
                    ..*cx
                };
                let path = if rule.own_captures_only {
                    let mut path = PathText::default();
                    for s in rule.to_path.segments() {
                        path.push_str(match s {
                            Segment::Literal(l) => l,
                            Segment::Var(Var::Capture(i) | Var::LastNamed(i)) => {
                                caps.get(usize::from(*i), current).unwrap_or("")
                            }
                            Segment::Var(_) => "",
                        });
                    }
                    path
                } else {
                    rule.to_path.render_with(&cx(), |s| PathText::from(s))
                };
                let args = match (&rule.to_args, rule.keep_args, st.args.as_deref()) {
                    (None, true, _) => None,
                    (None, false, _) => Some(None),
                    (Some(t), keep, a) => {
                        let mut s = t.render(&cx());
                        if let (true, Some(a)) = (keep, a.filter(|a| !a.is_empty())) {
                            s.push('&');
                            s.push_str(a);
                        }
                        Some(Some(s))
                    }
                };
                (path, args)
            };
            let old = st.path.replace(new_path);
            if let Some(a) = new_args {
                st.args = a;
            }
            st.last = Some((caps, old));
            return match rule.flag {
                Flag::Break => Outcome::Break,
                Flag::Last => Outcome::Last,
                Flag::Redirect | Flag::Permanent => {
                    let mut location = st.path(request_path).to_string();
                    if let Some(a) = st.args.as_deref().filter(|a| !a.is_empty()) {
                        location.push('?');
                        location.push_str(a);
                    }
                    Outcome::Redirect {
                        status: if rule.flag == Flag::Permanent {
                            301
                        } else {
                            302
                        },
                        location,
                    }
                }
            };
        }
        Outcome::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::template::Scope;
    use pingora::http::RequestHeader;

    fn rule(from: &str, to: &str, flag: Flag) -> Rule {
        let re = Regex::new(from).expect("regex");
        let names: Vec<(String, usize)> = re
            .capture_names()
            .enumerate()
            .filter_map(|(i, n)| Some((n?.to_string(), i)))
            .collect();
        let scope = Scope {
            last: &names,
            ..Scope::default()
        };
        Rule::new(re, Template::parse(to, &scope).expect("to"), flag)
    }

    fn run(rules: Vec<Rule>, target: &str) -> (Outcome, PathState) {
        let req = RequestHeader::build("GET", target.as_bytes(), None).expect("req");
        let cx = VarCx {
            server_name: "site.test",
            ..VarCx::of_request(&req)
        };
        let mut st = PathState {
            path: None,
            args: req.uri.query().map(str::to_string),
            last: None,
        };
        let rw = Rewrites {
            rules: rules.into(),
            upstream_path: None,
        };
        let out = rw.run(&mut st, &cx);
        (out, st)
    }

    #[test]
    fn a_to_of_text_and_own_captures_is_written_straight_and_agrees_with_the_render() {
        let long = "x".repeat(70);
        let cases = [
            ("^/app/(.*)$", "/$1", "/app/index", "/index"),
            (
                "^/a/(?<x>[^/]*)/(.*)$",
                "/b/$x/$2/$1",
                "/a/k/l/m",
                "/b/k/l/m/k",
            ),
            ("^/(a)(z)?$", "/$2-$1-$9", "/a", "/-a-"),
            ("^/(.*)$", "/$1", &format!("/{long}"), &format!("/{long}")),
            (
                "^/(.*)$",
                &format!("/{long}/$1"),
                "/p",
                &format!("/{long}/p"),
            ),
        ];
        for (from, to, path, want) in cases {
            let r = rule(from, to, Flag::Break);
            assert!(r.own_captures_only, "{to}");
            let (_, st) = run(vec![r], path);
            assert_eq!(st.path.as_deref(), Some(want), "{from} -> {to} on {path}");
            // The general render (a variable read first) gives the same.
            let general = format!("$is_args{to}");
            let r = rule(from, &general, Flag::Break);
            assert!(!r.own_captures_only);
            let (_, st) = run(vec![r], path);
            assert_eq!(
                st.path.as_deref(),
                Some(want),
                "{from} -> {general} on {path}"
            );
        }
    }

    #[test]
    fn the_first_matching_rule_rewrites_with_its_captures() {
        let (out, st) = run(
            vec![
                rule("^/nope/(.*)$", "/x/$1", Flag::Break),
                rule("^/old/(?<rest>.*)$", "/new/$rest", Flag::Break),
                rule("^/new/(.*)$", "/never/$1", Flag::Break),
            ],
            "/old/a/b?q=1",
        );
        assert_eq!(out, Outcome::Break);
        assert_eq!(st.path.as_deref(), Some("/new/a/b"));
        assert_eq!(st.args.as_deref(), Some("q=1"), "query kept");
        let m = st.last("/old/a/b").expect("match kept");
        assert_eq!(m.captures.get(1, m.subject), Some("a/b"));
        assert_eq!(
            st.last,
            Some((m.captures.clone(), None)),
            "request path not copied"
        );
        let (out, st) = run(vec![rule("^/x$", "/y", Flag::Last)], "/nomatch");
        assert_eq!(out, Outcome::Continue);
        assert_eq!(st.path, None, "unchanged: still the request's");
    }

    #[test]
    fn arguments_in_to_come_first_and_a_trailing_question_mark_drops_the_old() {
        let (_, st) = run(vec![rule("^/a$", "/b?x=1", Flag::Last)], "/a?q=2");
        assert_eq!(
            (st.path.as_deref().unwrap_or(""), st.args.as_deref()),
            ("/b", Some("x=1&q=2"))
        );
        let (_, st) = run(vec![rule("^/a$", "/b?", Flag::Break)], "/a?q=2");
        assert_eq!(
            (st.path.as_deref().unwrap_or(""), st.args.as_deref()),
            ("/b", None)
        );
        let (_, st) = run(vec![rule("^/a$", "/b?x=$arg_q", Flag::Break)], "/a");
        assert_eq!(
            (st.path.as_deref().unwrap_or(""), st.args.as_deref()),
            ("/b", Some("x="))
        );
    }

    #[test]
    fn redirect_flags_and_absolute_targets_answer_with_a_location() {
        let (out, _) = run(vec![rule("^/a/(.*)", "/b/$1", Flag::Permanent)], "/a/c?q=1");
        assert_eq!(
            out,
            Outcome::Redirect {
                status: 301,
                location: "/b/c?q=1".into()
            }
        );
        let (out, _) = run(
            vec![rule("^/(.*)", "https://$host/$1?", Flag::Break)],
            "/p?q=1",
        );
        assert_eq!(
            out,
            Outcome::Redirect {
                status: 302,
                location: "https://site.test/p".into()
            }
        );
    }

    #[test]
    fn prefix_rest_patterns_are_recognised_only_when_plain() {
        let p = |src: &str| PrefixRest::of(src).map(|f| (f.prefix.to_string(), f.to_end));
        assert_eq!(p("^/app/(.*)$"), Some(("/app/".into(), true)));
        assert_eq!(p("^/app/(.*)"), Some(("/app/".into(), false)));
        assert_eq!(p("^\\/old\\.v1/(.*)$"), Some(("/old.v1/".into(), true)));
        assert_eq!(p("^(.*)$"), Some(("".into(), true)));
        for no in [
            "/app/(.*)$",
            "^/app/(.+)$",
            "^/app/(.*)/$",
            "^/a.p/(.*)$",
            "^/app/?(.*)$",
            "^/(app|api)/(.*)$",
            "(?i)^/app/(.*)$",
            "^/app/(?<rest>.*)$",
            "^/\\d+/(.*)$",
            "^/caf\u{e9}/(.*)$",
            "^/a b/(.*)$",
            "^/app\\",
            "^/app\\>(.*)$",
            "^\\</app/(.*)$",
        ] {
            assert_eq!(p(no), None, "{no}");
        }
    }

    #[test]
    fn prefix_rest_matches_exactly_what_the_regex_matches() {
        let sources = [
            "^/app/(.*)$",
            "^/app/(.*)",
            "^/app(.*)$",
            "^\\/x\\.y/(.*)$",
            "^(.*)$",
            "^(.*)",
            "^/(.*)$",
            "^/a<b>/(.*)$",
        ];
        let subjects = [
            "/app/index",
            "/app/",
            "/app",
            "/apple",
            "/ap",
            "",
            "/",
            "/x.y/z",
            "/xzy/z",
            "/app/a\nb",
            "/app/\n",
            "\n/app/",
            "/app/caf\u{e9}/\u{1F600}",
            "/APP/index",
            "/a<b>/c",
        ];
        for src in sources {
            let re = Regex::new(src).expect("regex");
            let fast = PrefixRest::of(src).expect("plain pattern");
            for subject in subjects {
                let want = re.captures(subject).map(|c| {
                    Captures::from_spans(
                        c.iter().map(|m| m.map(|m| (m.start(), m.end()))).collect(),
                    )
                });
                assert_eq!(fast.captures(subject), want, "{src} on {subject:?}");
            }
        }
    }

    #[test]
    fn rules_know_whether_they_read_connection_variables() {
        let rw = |to: &str| Rewrites {
            rules: vec![rule("^/(.*)$", to, Flag::Break)].into(),
            upstream_path: None,
        };
        for to in [
            "/$1",
            "/x/$uri?$args",
            "/$arg_a$http_x_a$cookie_c$request_method",
        ] {
            assert!(!rw(to).needs_connection(), "{to}");
        }
        for to in [
            "/$remote_addr",
            "/$host",
            "$scheme://a/",
            "/$server_port",
            "/?s=$server_name",
        ] {
            assert!(rw(to).needs_connection(), "{to}");
        }
    }

    #[test]
    fn upstream_path_replaces_the_matched_prefix() {
        let up = |prefix: &str, replace: &str, path: &str| {
            UpstreamPath {
                prefix_len: prefix.len(),
                replace: replace.into(),
            }
            .apply(path)
        };
        assert_eq!(up("/api/", "/v1/", "/api/users"), "/v1/users");
        assert_eq!(up("/api/", "/", "/api/users"), "/users");
        assert_eq!(up("/api/", "/", "/api/"), "/");
        assert_eq!(up("/api", "/", "/api/x"), "//x", "nginx gives the same");
        assert_eq!(up("/exact", "/other", "/exact"), "/other");
    }
}
