//! Checks: `checks: [{if: CONDITION, redirect | respond}]`, nginx's
//! `if (CONDITION) { return …; }`, compiled at load.
//!
//! A condition is written as in nginx: `$var` (true unless empty or `0`),
//! `$var = text`, `$var != text`, `$var ~ regex`, `$var ~* regex` (case-
//! insensitive), `$var !~ regex`, `$var !~* regex`. The left side is one
//! variable (any template greenlight knows, maps included); `text` may hold
//! variables too, and may be quoted (`""` is the empty string). A regex that
//! matches lends its groups to the answer's templates as `$1`…`$9`.
//!
//! A route's checks run in order before its rewrites; the first whose
//! condition holds answers the request. nginx's file tests (`-f`, `-d`,
//! `-e`, `-x`) need files to serve and are refused with that reason.

use super::Captures;
use super::template::{Scope, Template, TemplateError};
use super::vars::{Match, VarCx};

/// What a condition compares the subject with.
#[derive(Debug)]
pub enum Test {
    /// `$var`: not empty and not `0`.
    NonEmpty,
    /// `= text`.
    Equal(Template),
    /// `!= text`.
    NotEqual(Template),
    /// `~ re` / `~* re`.
    Matches(super::pattern::Pattern),
    /// `!~ re` / `!~* re`.
    NotMatches(super::pattern::Pattern),
}

/// A compiled condition.
#[derive(Debug)]
pub struct Condition {
    /// The variable tested.
    pub subject: Template,
    /// The test.
    pub test: Test,
}

/// The parts of a condition as written, before compiling.
#[derive(Debug, PartialEq, Eq)]
pub struct Parts<'a> {
    /// The left side (`$var`).
    pub subject: &'a str,
    /// `=`, `!=`, `~`, `~*`, `!~`, `!~*`; `None` for a bare variable.
    pub op: Option<&'a str>,
    /// The right side, unquoted.
    pub operand: &'a str,
    /// Byte offset of the right side in the text (for error columns).
    pub operand_at: usize,
}

/// Why a condition was refused, with the byte offset of the problem.
pub type ConditionError = TemplateError;

/// Splits `text` into subject, operator and operand.
pub fn split(text: &str) -> Result<Parts<'_>, ConditionError> {
    let lead = text.len() - text.trim_start().len();
    let t = text.trim();
    let err = |offset: usize, what: &str| ConditionError {
        offset,
        what: what.to_string(),
    };
    if t.is_empty() {
        return Err(err(0, "the condition is empty"));
    }
    if t.starts_with('-') || t.starts_with("!-") {
        return Err(err(
            lead,
            "file tests (`-f`, `-d`, `-e`, `-x`) are not supported: a condition never looks at the disk (a `files:` route with `try_files` does)",
        ));
    }
    if !t.starts_with('$') {
        return Err(err(lead, "a condition starts with the variable it tests"));
    }
    let end = t.find(char::is_whitespace).unwrap_or(t.len());
    let subject = &t[..end];
    let rest = t[end..].trim_start();
    if rest.is_empty() {
        return Ok(Parts {
            subject,
            op: None,
            operand: "",
            operand_at: lead + t.len(),
        });
    }
    let op_at = lead + (t.len() - rest.len());
    let op_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let op = &rest[..op_end];
    if !matches!(op, "=" | "!=" | "~" | "~*" | "!~" | "!~*") {
        return Err(err(
            op_at,
            "unknown operator: use `=`, `!=`, `~`, `~*`, `!~` or `!~*`",
        ));
    }
    let operand_raw = rest[op_end..].trim_start();
    let mut operand_at = lead + (t.len() - operand_raw.len());
    let mut operand = operand_raw;
    for q in ['"', '\''] {
        if operand.len() >= 2 && operand.starts_with(q) && operand.ends_with(q) {
            operand = &operand[1..operand.len() - 1];
            operand_at += 1;
        }
    }
    if operand_raw.is_empty() && op != "=" && op != "!=" {
        return Err(err(op_at, "the operator has nothing to compare with"));
    }
    Ok(Parts {
        subject,
        op: Some(op),
        operand,
        operand_at,
    })
}

impl Condition {
    /// Compiles `text`; variables resolve in `scope`.
    pub fn parse(text: &str, scope: &Scope<'_>) -> Result<Condition, ConditionError> {
        let p = split(text)?;
        let subject_at = text.find('$').unwrap_or(0);
        let subject = Template::parse(p.subject, scope).map_err(|e| ConditionError {
            offset: subject_at + e.offset,
            what: e.what,
        })?;
        let regex = |insensitive: bool| {
            let pattern = if insensitive {
                format!("(?i){}", p.operand)
            } else {
                p.operand.to_string()
            };
            super::pattern::Pattern::new(&pattern).map_err(|why| ConditionError {
                offset: p.operand_at,
                what: format!(
                    "not a valid regex: {}",
                    why.lines().last().unwrap_or("").trim()
                ),
            })
        };
        let text_of = || {
            Template::parse(p.operand, scope).map_err(|e| ConditionError {
                offset: p.operand_at + e.offset,
                what: e.what,
            })
        };
        let test = match p.op {
            None => Test::NonEmpty,
            Some("=") => Test::Equal(text_of()?),
            Some("!=") => Test::NotEqual(text_of()?),
            Some("~") => Test::Matches(regex(false)?),
            Some("~*") => Test::Matches(regex(true)?),
            Some("!~") => Test::NotMatches(regex(false)?),
            _ => Test::NotMatches(regex(true)?),
        };
        Ok(Condition { subject, test })
    }

    /// The regex whose groups the answer may read, if any.
    pub fn regex(&self) -> Option<&super::pattern::Pattern> {
        match &self.test {
            Test::Matches(re) => Some(re),
            _ => None,
        }
    }

    /// Whether the condition holds for `cx`; a matching regex's groups and
    /// subject are returned so the answer can read them.
    pub fn eval(&self, cx: &VarCx<'_>) -> Option<(Option<Captures>, String)> {
        let mut s = String::new();
        self.subject.render_into(cx, &mut s);
        let holds = match &self.test {
            Test::NonEmpty => !s.is_empty() && s != "0",
            Test::Equal(t) => t.render(cx) == s,
            Test::NotEqual(t) => t.render(cx) != s,
            Test::Matches(re) => {
                let captures = re.captures(&s)?;
                return Some((Some(captures), s));
            }
            Test::NotMatches(re) => !re.is_match(&s),
        };
        holds.then_some((None, s))
    }
}

/// What a check answers with.
#[derive(Debug)]
pub enum CheckAnswer {
    /// `redirect: {to, status}`.
    Redirect(super::answer::Redirect),
    /// `respond: {status, body, content_type}`.
    Respond(super::answer::Respond),
}

/// One check: a condition and its answer.
#[derive(Debug)]
pub struct Check {
    /// When it answers.
    pub condition: Condition,
    /// How.
    pub answer: CheckAnswer,
}

/// A route's checks, in order (the site's first).
#[derive(Debug, Default, Clone)]
pub struct Checks {
    /// Shared with the site's other routes where they come from the site.
    pub list: Box<[std::sync::Arc<Check>]>,
}

impl Checks {
    /// The first check whose condition holds, with the variables its
    /// answer renders with (its regex's groups as the last match).
    pub fn first<'c>(&'c self, cx: &VarCx<'_>) -> Option<(&'c Check, Option<Captures>, String)> {
        self.list.iter().find_map(|c| {
            let (caps, subject) = c.condition.eval(cx)?;
            Some((c.as_ref(), caps, subject))
        })
    }
}

/// `cx` with a check's regex match as the last match.
pub fn with_match<'a>(
    cx: &VarCx<'a>,
    captures: Option<&'a Captures>,
    subject: &'a str,
) -> VarCx<'a> {
    match captures {
        Some(captures) => VarCx {
            last: Some(Match { captures, subject }),
            ..*cx
        },
        None => *cx,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora::http::RequestHeader;

    fn cond(t: &str) -> Condition {
        Condition::parse(t, &Scope::default()).expect("condition")
    }

    fn holds(c: &Condition, headers: &[(&str, &str)]) -> bool {
        let mut req = RequestHeader::build("GET", b"/p?a=1", None).expect("req");
        for (k, v) in headers {
            req.insert_header(k.to_string(), *v).expect("header");
        }
        c.eval(&VarCx::of_request(&req)).is_some()
    }

    #[test]
    fn operators_behave_like_nginx() {
        let eq = cond("$http_x_forwarded_proto = http");
        assert!(holds(&eq, &[("x-forwarded-proto", "http")]));
        assert!(!holds(&eq, &[("x-forwarded-proto", "https")]));
        let ne = cond("$http_x_forwarded_proto != 'https'");
        assert!(holds(&ne, &[]));
        assert!(!holds(&ne, &[("x-forwarded-proto", "https")]));
        let empty = cond("$http_authorization = \"\"");
        assert!(holds(&empty, &[]));
        assert!(!holds(&empty, &[("authorization", "Bearer x")]));
        let bare = cond("$http_x_flag");
        assert!(!holds(&bare, &[]));
        assert!(!holds(&bare, &[("x-flag", "0")]), "`0` is false");
        assert!(holds(&bare, &[("x-flag", "yes")]));
        let re = cond("$http_user_agent ~* bot");
        assert!(holds(&re, &[("user-agent", "GoogleBOT/2")]));
        assert!(!holds(
            &cond("$http_user_agent ~ bot"),
            &[("user-agent", "BOT")]
        ));
        assert!(holds(
            &cond("$http_user_agent !~ ^curl"),
            &[("user-agent", "wget")]
        ));
        assert!(!holds(&cond("$args !~* A=1"), &[]));
    }

    #[test]
    fn a_regex_lends_its_groups() {
        let c = cond("$http_host ~ ^(www)\\.(.+)$");
        let mut req = RequestHeader::build("GET", b"/", None).expect("req");
        req.insert_header("host", "www.example.org").expect("host");
        let (caps, subject) = c.eval(&VarCx::of_request(&req)).expect("holds");
        let caps = caps.expect("groups");
        assert_eq!(caps.get(2, &subject), Some("example.org"));
    }

    #[test]
    fn bad_conditions_say_where_and_why() {
        let e = |t: &str| Condition::parse(t, &Scope::default()).expect_err(t);
        assert!(e("-f $request_filename").what.contains("file tests"));
        assert!(e("$a == b").what.contains("unknown operator"));
        assert_eq!(e("$uri =~ x").offset, 5);
        assert!(e("host = x").what.contains("starts with the variable"));
        assert!(e("$nope = x").what.contains("unknown variable"));
        let bad_re = e("$uri ~ (");
        assert_eq!(bad_re.offset, 7);
        assert!(bad_re.what.contains("regex"));
        assert!(e("$uri ~").what.contains("nothing to compare"));
    }

    #[test]
    fn split_unquotes_and_points_at_the_operand() {
        let p = split(" $a != \"x y\"").expect("ok");
        assert_eq!(p.subject, "$a");
        assert_eq!(p.op, Some("!="));
        assert_eq!(p.operand, "x y");
        assert_eq!(p.operand_at, 8);
    }
}
