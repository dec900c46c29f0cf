//! Maps: a variable whose value is chosen by matching another value (nginx
//! `map $request_uri $cache_control { … }`), compiled at load.
//!
//! A map has a source template, exact keys, regex keys in file order and a
//! default. Selection follows nginx: an exact key wins, then the first regex
//! that matches (`~` case-sensitive, `~*` case-insensitive), then the
//! default (empty when there is none). Values are templates; a value chosen
//! by a regex key reads that regex's groups as `$1`…`$9` (and its named
//! groups), as in nginx.
//!
//! A map's source and values may not read another map: that keeps every
//! lookup one level deep, with no cycle to detect at request time.
//! `hostnames` (nginx's `hostnames` parameter) is not offered: a key
//! starting with `*.` or ending with `.*` is refused at load with the regex
//! to write instead.

use super::Captures;
use super::template::Template;
use super::vars::{Match, VarCx};
use std::collections::HashMap;

/// One compiled map.
#[derive(Debug)]
pub struct VarMap {
    /// The variable's name, without `$` (for messages).
    pub name: Box<str>,
    /// What is matched.
    pub source: Template,
    /// Exact keys.
    pub exact: HashMap<Box<str>, Template>,
    /// Regex keys in file order.
    pub regexes: Box<[(regex::Regex, Template)]>,
    /// The value when nothing matches.
    pub default: Option<Template>,
}

impl VarMap {
    /// Appends the value this map chooses for the request in `cx`.
    pub fn write(&self, cx: &VarCx<'_>, out: &mut String) {
        let mut subject = String::new();
        self.source.render_into(cx, &mut subject);
        if let Some(v) = self.exact.get(subject.as_str()) {
            v.render_into(cx, out);
            return;
        }
        for (re, v) in self.regexes.iter() {
            let mut locs = re.capture_locations();
            if re.captures_read(&mut locs, &subject).is_some() {
                let captures = Captures::from_locations(locs);
                let inner = VarCx {
                    last: Some(Match {
                        captures: &captures,
                        subject: &subject,
                    }),
                    ..*cx
                };
                v.render_into(&inner, out);
                return;
            }
        }
        if let Some(d) = &self.default {
            d.render_into(cx, out);
        }
    }
}

/// A key of a map as written: `~re`, `~*re`, `default`, or an exact string
/// (a leading `\` escapes a key that would otherwise be read as one of the
/// others, as in nginx).
#[derive(Debug, PartialEq, Eq)]
pub enum Key<'a> {
    /// `default`.
    Default,
    /// A regex pattern, already made case-insensitive for `~*`.
    Regex(String),
    /// An exact string.
    Exact(&'a str),
}

/// Reads a key as written.
pub fn key(text: &str) -> Key<'_> {
    if text == "default" {
        Key::Default
    } else if let Some(re) = text.strip_prefix("~*") {
        Key::Regex(format!("(?i){re}"))
    } else if let Some(re) = text.strip_prefix('~') {
        Key::Regex(re.to_string())
    } else {
        Key::Exact(text.strip_prefix('\\').unwrap_or(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::template::Scope;
    use pingora::http::RequestHeader;

    fn t(s: &str, last: &[(String, usize)]) -> Template {
        Template::parse(
            s,
            &Scope {
                last,
                ..Scope::default()
            },
        )
        .expect("template")
    }

    fn cache_map() -> VarMap {
        let blog = regex::Regex::new("^/blog/(?<slug>[^/]+)/image$").expect("re");
        let names = vec![("slug".to_string(), 1)];
        VarMap {
            name: "cache".into(),
            source: t("$uri", &[]),
            exact: [("/".into(), t("no-cache", &[]))].into_iter().collect(),
            regexes: vec![
                (blog, t("img-$1-$slug", &names)),
                (
                    regex::Regex::new("(?i)^/STATIC/").expect("re"),
                    t("static", &[]),
                ),
            ]
            .into(),
            default: Some(t("max-age=60", &[])),
        }
    }

    fn value(m: &VarMap, path: &str) -> String {
        let req = RequestHeader::build("GET", path.as_bytes(), None).expect("req");
        let mut out = String::new();
        m.write(&VarCx::of_request(&req), &mut out);
        out
    }

    #[test]
    fn exact_then_regex_in_order_then_default() {
        let m = cache_map();
        assert_eq!(value(&m, "/"), "no-cache");
        assert_eq!(
            value(&m, "/blog/a/image"),
            "img-a-a",
            "groups of the map's regex"
        );
        assert_eq!(
            value(&m, "/static/x.css"),
            "static",
            "case-insensitive regex"
        );
        assert_eq!(value(&m, "/other"), "max-age=60");
    }

    #[test]
    fn no_default_means_empty() {
        let mut m = cache_map();
        m.default = None;
        assert_eq!(value(&m, "/other"), "");
    }

    #[test]
    fn keys_read_like_nginx() {
        assert_eq!(key("default"), Key::Default);
        assert_eq!(key("~^/a"), Key::Regex("^/a".into()));
        assert_eq!(key("~*^/a"), Key::Regex("(?i)^/a".into()));
        assert_eq!(key("\\default"), Key::Exact("default"));
        assert_eq!(key("/x"), Key::Exact("/x"));
    }
}
