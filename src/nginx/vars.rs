//! nginx variables in values the importer carries over: which ones
//! greenlight's templates know (asked of `plan::template`), `set $v value`
//! resolved at import, and the common spellings greenlight has a direct
//! form for (`$uri$is_args$args` → `$request_uri`).

use std::collections::HashMap;

use crate::plan::template::{Scope, Template};

/// Variables set with `set` in the blocks around a value, innermost last.
#[derive(Debug, Clone, Default)]
pub(crate) struct SetVars {
    values: HashMap<String, String>,
    /// Variables an http-level `map` defines (emitted as `maps:`), which
    /// greenlight's templates then know.
    maps: Vec<String>,
}

impl SetVars {
    /// Records `set $name value` (the value already resolved).
    pub fn set(&mut self, name: &str, value: String) {
        self.values.insert(name.to_string(), value);
    }

    /// Records a variable defined by a converted `map`.
    pub fn add_map(&mut self, name: &str) {
        if !self.maps.iter().any(|m| m == name) {
            self.maps.push(name.to_string());
        }
    }

    /// The variables converted maps define, in order.
    pub fn maps(&self) -> Vec<String> {
        self.maps.clone()
    }

    /// True when `set $name …` gave `name` a value here.
    pub fn is_set(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }
}

/// One `$name` or `${name}` reference in a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VarRef {
    /// Byte range of the reference in the value (including `$` and braces).
    pub start: usize,
    /// End of the reference.
    pub end: usize,
    /// The name without `$` and braces.
    pub name: String,
}

/// The variable references in `value`, in order.
pub(crate) fn refs(value: &str) -> Vec<VarRef> {
    let bytes = value.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes.get(i) != Some(&b'$') {
            i += 1;
            continue;
        }
        let start = i;
        if bytes.get(i + 1) == Some(&b'{') {
            if let Some(close) = value.get(i + 2..).and_then(|r| r.find('}')) {
                let name = value.get(i + 2..i + 2 + close).unwrap_or("").to_string();
                out.push(VarRef {
                    start,
                    end: i + 3 + close,
                    name,
                });
                i += 3 + close;
                continue;
            }
            i += 1;
            continue;
        }
        let mut j = i + 1;
        if bytes.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        } else {
            while bytes
                .get(j)
                .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
            {
                j += 1;
            }
        }
        if j > i + 1 {
            out.push(VarRef {
                start,
                end: j,
                name: value.get(i + 1..j).unwrap_or("").to_string(),
            });
        }
        i = j.max(i + 1);
    }
    out
}

/// True when greenlight's templates know `$name`; `captures` are the named
/// groups of the route's regex (numbered ones are always accepted). Asks
/// the template parser itself, so the importer never keeps its own copy of
/// the variable list (which had fallen behind: `$is_args`, `$document_uri`).
pub(crate) fn known(name: &str, captures: &[String]) -> bool {
    let named: Vec<(String, usize)> = captures.iter().cloned().zip(1..).collect();
    let scope = Scope {
        location: &named,
        ..Scope::default()
    };
    Template::parse(&format!("${{{name}}}"), &scope).is_ok()
}

/// A value made ready for a greenlight template: `set` variables replaced
/// by their values, `$uri$is_args$args` by `$request_uri`. Returns the value
/// and the variables greenlight does not know (empty when all are known).
pub(crate) fn resolve(value: &str, set: &SetVars, captures: &[String]) -> (String, Vec<String>) {
    let mut text = String::with_capacity(value.len());
    let mut last = 0;
    for r in refs(value) {
        text.push_str(value.get(last..r.start).unwrap_or(""));
        match set.values.get(&r.name) {
            Some(v) => text.push_str(v),
            None => text.push_str(value.get(r.start..r.end).unwrap_or("")),
        }
        last = r.end;
    }
    text.push_str(value.get(last..).unwrap_or(""));
    // nginx variable names are case-insensitive ($is_Args is $is_args).
    for name in ["is_args", "args", "uri", "request_uri"] {
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for r in refs(&text) {
            if r.name.eq_ignore_ascii_case(name) && r.name != name {
                out.push_str(text.get(last..r.start).unwrap_or(""));
                out.push('$');
                out.push_str(name);
                last = r.end;
            }
        }
        out.push_str(text.get(last..).unwrap_or(""));
        text = out;
    }
    for (from, to) in [
        ("$uri$is_args$args", "$request_uri"),
        ("${uri}${is_args}${args}", "$request_uri"),
    ] {
        text = text.replace(from, to);
    }
    let unknown: Vec<String> = refs(&text)
        .into_iter()
        .map(|r| r.name)
        .filter(|n| !known(n, captures) && !set.maps.contains(n))
        .fold(Vec::new(), |mut acc, n| {
            if !acc.contains(&n) {
                acc.push(n);
            }
            acc
        });
    (text, unknown)
}

/// Names of the named groups of an nginx regex (`(?<name>…)`, `(?P<name>…)`).
pub(crate) fn named_groups(regex: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = regex;
    while let Some(i) = rest.find("(?") {
        let after = rest.get(i + 2..).unwrap_or("");
        let after = after.strip_prefix('P').unwrap_or(after);
        if let Some(body) = after.strip_prefix('<')
            && let Some(end) = body.find('>')
        {
            let name = body.get(..end).unwrap_or("");
            if !name.is_empty() && !name.starts_with(['=', '!']) {
                out.push(name.to_string());
            }
        }
        rest = rest.get(i + 2..).unwrap_or("");
    }
    out
}

/// "'$a', '$b'" for messages.
pub(crate) fn list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("'${n}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_and_known_names() {
        let r: Vec<String> = refs("https://$host${request_uri}x$1$arg_q$")
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(r, ["host", "request_uri", "1", "arg_q"]);
        assert!(known("http_x_api_key", &[]));
        assert!(!known("http_", &[]));
        assert!(!known("proxy_add_x_forwarded_for", &[]));
        assert!(known("slug", &["slug".to_string()]));
        // The plan's names, all of them: `$is_args` and `$document_uri` too.
        assert!(known("is_args", &[]));
        assert!(known("document_uri", &[]));
        assert!(known("0", &[]) && !known("10", &[]));
        assert!(!known("slug", &[]));
    }

    #[test]
    fn set_values_and_spellings_are_resolved() {
        let mut set = SetVars::default();
        set.set("backend", "http://app:8080".to_string());
        let (v, unknown) = resolve("$backend$uri$is_args$args", &set, &[]);
        assert_eq!(v, "http://app:8080$request_uri");
        assert!(unknown.is_empty());
        let (_, unknown) = resolve("$document_root$fastcgi_script_name $host", &set, &[]);
        assert_eq!(unknown, ["document_root", "fastcgi_script_name"]);
    }

    #[test]
    fn named_groups_of_a_regex() {
        assert_eq!(
            named_groups("^/(?<lang>[a-z]+)/(?P<page>.*)$(?=x)"),
            ["lang", "page"]
        );
    }
}
