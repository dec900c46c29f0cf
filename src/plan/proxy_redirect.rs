//! `rewrite_location:` (nginx `proxy_redirect`): rules that rewrite the
//! `Location` and `Refresh` headers of the upstream's answers, so an app that
//! spells its own address (`http://127.0.0.1:8000/login`, or `http://` behind
//! a TLS proxy) sends the client somewhere it can reach.
//!
//! Compiled at load by `config::validate_steps`; run by `proxy::redirects`
//! on upstream answers only (greenlight's own redirects are already right).
//! A route without rules has no step, so the request path pays one lookup in
//! an empty step list.
//!
//! Matching follows nginx: rules are tried in order and the first that
//! matches wins. A text `from` (a template: variables allowed) must be a
//! case-sensitive prefix of the value, and that prefix is replaced by `to`;
//! a `~regex` (`~*` case-insensitive) must match the value, and the whole
//! value becomes `to`, where `$1`… and named groups read the match. A
//! rewritten `Location` that is a path is made absolute with the request's
//! scheme, host and port, as nginx's `absolute_redirect` does. In `Refresh`
//! (`5; url=…`) only the URL after `url=` is rewritten.

use super::location::Pattern;
use super::template::Template;
use super::vars::{Match, VarCx};

/// What a rule looks for.
#[derive(Debug)]
pub enum From {
    /// A prefix of the value (rendered per request when it has variables).
    Prefix(Template),
    /// A regex over the value.
    Regex(Pattern),
}

/// One `{from, to}` rule.
#[derive(Debug)]
pub struct Rule {
    /// What it matches.
    pub from: From,
    /// What replaces the match.
    pub to: Template,
}

/// A route's rules, in order (never empty: no rules = no step).
#[derive(Debug)]
pub struct ProxyRedirect {
    /// First match wins.
    pub rules: Box<[Rule]>,
}

/// Which header a value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// `Location`: a path result is made absolute.
    Location,
    /// `Refresh`: rewritten after `url=`, left relative.
    Refresh,
}

impl ProxyRedirect {
    /// The new value of a `field` header, or `None` when no rule matches
    /// (the header then stays as the upstream sent it).
    pub fn rewrite(&self, field: Field, value: &str, cx: &VarCx<'_>) -> Option<String> {
        let start = match field {
            Field::Location => 0,
            Field::Refresh => url_start(value)?,
        };
        let (head, url) = value.split_at(start);
        let new = self.rewrite_url(url, cx)?;
        Some(match field {
            Field::Location => super::answer::absolute(new, cx),
            Field::Refresh => format!("{head}{new}"),
        })
    }

    fn rewrite_url(&self, url: &str, cx: &VarCx<'_>) -> Option<String> {
        for rule in self.rules.iter() {
            match &rule.from {
                From::Prefix(t) => {
                    let rendered;
                    let prefix = match t.as_literal() {
                        Some(p) => p,
                        None => {
                            rendered = t.render(cx);
                            rendered.as_str()
                        }
                    };
                    if let Some(rest) = url.strip_prefix(prefix) {
                        let mut out = rule.to.render(cx);
                        out.push_str(rest);
                        return Some(out);
                    }
                }
                From::Regex(p) => {
                    let re = p.regex();
                    let mut locs = re.capture_locations();
                    if re.captures_read(&mut locs, url).is_some() {
                        let captures = super::Captures::from_locations(locs);
                        let cx = VarCx {
                            last: Some(Match {
                                captures: &captures,
                                subject: url,
                            }),
                            ..*cx
                        };
                        return Some(rule.to.render(&cx));
                    }
                }
            }
        }
        None
    }
}

/// Where the URL of a `Refresh` value starts (after a case-insensitive
/// `url=`), as nginx finds it.
fn url_start(value: &str) -> Option<usize> {
    let lower = value.to_ascii_lowercase();
    lower.find("url=").map(|i| i + 4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::template::Scope;
    use pingora::http::RequestHeader;

    fn rule(from: &str, to: &str) -> Rule {
        let from = if let Some(re) = from.strip_prefix("~*") {
            From::Regex(Pattern::compile(re, true).expect("re"))
        } else if let Some(re) = from.strip_prefix('~') {
            From::Regex(Pattern::compile(re, false).expect("re"))
        } else {
            From::Prefix(Template::parse(from, &Scope::default()).expect("from"))
        };
        let groups: Vec<(String, usize)> = match &from {
            From::Regex(p) => p
                .regex()
                .capture_names()
                .enumerate()
                .filter_map(|(i, n)| n.map(|n| (n.to_string(), i)))
                .collect(),
            From::Prefix(_) => Vec::new(),
        };
        let scope = Scope {
            last: &groups,
            ..Scope::default()
        };
        Rule {
            from,
            to: Template::parse(to, &scope).expect("to"),
        }
    }

    fn req(host: &str) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/one/page?x=1", None).expect("req");
        r.insert_header("host", host).expect("host");
        r
    }

    fn run(rules: Vec<Rule>, field: Field, value: &str, tls: bool) -> Option<String> {
        let r = req("app.test:8443");
        let cx = VarCx {
            tls,
            server_port: Some(if tls { 8443 } else { 80 }),
            ..VarCx::of_request(&r)
        };
        ProxyRedirect {
            rules: rules.into(),
        }
        .rewrite(field, value, &cx)
    }

    #[test]
    fn a_prefix_is_replaced_and_the_first_match_wins() {
        let rules = || {
            vec![
                rule("http://backend:8080/two/", "/one/"),
                rule("http://", "https://"),
            ]
        };
        assert_eq!(
            run(
                rules(),
                Field::Location,
                "http://backend:8080/two/x?y",
                false
            )
            .as_deref(),
            Some("http://app.test/one/x?y"),
            "a path result is made absolute (port 80 left out)"
        );
        assert_eq!(
            run(rules(), Field::Location, "http://app.test/a", true).as_deref(),
            Some("https://app.test/a")
        );
        // Case-sensitive, and a relative Location that no rule matches stays.
        assert_eq!(
            run(rules(), Field::Location, "HTTP://app.test/a", true),
            None
        );
        assert_eq!(run(rules(), Field::Location, "/a", true), None);
    }

    #[test]
    fn variables_work_in_from_and_to() {
        let rules = vec![rule("http://$host/", "$scheme://$host:$server_port/")];
        assert_eq!(
            run(rules, Field::Location, "http://app.test/in", true).as_deref(),
            Some("https://app.test:8443/in")
        );
    }

    #[test]
    fn a_regex_replaces_the_whole_value_with_its_groups() {
        let rules = || {
            vec![
                rule(
                    "~^http://backend(:\\d+)?/(?<rest>.*)$",
                    "https://$host/app/$rest",
                ),
                rule("~*^HTTP://OTHER/(.*)$", "/o/$1"),
            ]
        };
        assert_eq!(
            run(rules(), Field::Location, "http://backend:9/p?q", true).as_deref(),
            Some("https://app.test/app/p?q")
        );
        assert_eq!(
            run(rules(), Field::Location, "http://other/z", true).as_deref(),
            Some("https://app.test:8443/o/z")
        );
        assert_eq!(run(rules(), Field::Location, "http://else/z", true), None);
    }

    #[test]
    fn refresh_is_rewritten_after_url_and_left_relative() {
        let rules = || vec![rule("http://backend/", "/")];
        assert_eq!(
            run(rules(), Field::Refresh, "5; URL=http://backend/next", false).as_deref(),
            Some("5; URL=/next")
        );
        assert_eq!(run(rules(), Field::Refresh, "5", false), None);
    }
}
