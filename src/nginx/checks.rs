//! nginx `map` → `maps:`, and `if (CONDITION) { return …; }` → `checks:`
//! (a site's for a server-level `if`, a route's for one in a location).
//!
//! A condition is carried over as written (greenlight reads nginx's syntax)
//! after `set` variables are checked, then compiled with the plan's own
//! parser, so what the importer accepts is exactly what `check` accepts.
//! `if` blocks that do more than one `return` (a `set`, a `rewrite`, a
//! `proxy_pass`) are not conditions greenlight has; they stay warnings.

use super::answer;
use super::convert::{Answer, Ctx};
use super::directives::shown;
use super::parse::Directive;
use super::vars::{self, SetVars};
use crate::plan::check::Condition;
use crate::plan::template::Scope;

/// One `maps:` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MapDef {
    /// The variable it defines, without `$`.
    pub name: String,
    /// The source template.
    pub source: String,
    /// Keys as nginx wrote them (`~re`, `~*re`, exact) and their values.
    pub values: Vec<(String, String)>,
    /// The `default` value.
    pub default: Option<String>,
    /// `file:line` of the `map`.
    pub at: String,
}

/// One `checks:` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckDef {
    /// The condition in nginx syntax.
    pub condition: String,
    /// The `return` it answers with.
    pub answer: Answer,
    /// `file:line` of the `if`.
    pub at: String,
}

/// `map SOURCE $name { … }` at http level: the map, with its name
/// registered in `set` so later values may read it; `None` (with a note or
/// warning) when it is not carried over.
pub(crate) fn map(ctx: &mut Ctx<'_>, d: &Directive, set: &mut SetVars) -> Option<MapDef> {
    let [source, var] = d.args.as_slice() else {
        ctx.warn(
            d,
            format!(
                "'{}' needs a source and a $variable; not converted",
                shown(d)
            ),
        );
        return None;
    };
    let name = var
        .trim_start_matches('$')
        .trim_matches(['{', '}'])
        .to_string();
    if source == "$http_upgrade" && name == "connection_upgrade" {
        ctx.unsupported(d); // the built-in WebSocket note
        return None;
    }
    let lost = |ctx: &mut Ctx<'_>, why: String| {
        ctx.warn(
            d,
            format!("'map {source} ${name}' is not converted: {why}; the values of ${name} it chose are lost wherever it was used"),
        );
    };
    let (src, unknown) = vars::resolve(source, set, &[]);
    if !unknown.is_empty() {
        lost(
            ctx,
            format!(
                "its source uses {}, which greenlight does not know",
                vars::list(&unknown)
            ),
        );
        return None;
    }
    let mut def = MapDef {
        name: name.clone(),
        source: src,
        values: Vec::new(),
        default: None,
        at: ctx.at(d),
    };
    for e in d.children() {
        let key = e.name.as_str();
        match (key, e.args.as_slice()) {
            ("hostnames", []) => {
                lost(
                    ctx,
                    "`hostnames` wildcard keys are not supported (write regex keys)".into(),
                );
                return None;
            }
            ("volatile", []) => {}
            ("include", _) => {
                lost(ctx, "its entries come from an include".into());
                return None;
            }
            (_, [value]) => {
                // A regex key's named groups are the value's to read.
                let groups = if key.starts_with('~') {
                    vars::named_groups(key)
                } else {
                    Vec::new()
                };
                let (v, unknown) = vars::resolve(value, set, &groups);
                if !unknown.is_empty() {
                    lost(
                        ctx,
                        format!(
                            "a value uses {}, which greenlight does not know",
                            vars::list(&unknown)
                        ),
                    );
                    return None;
                }
                if key == "default" {
                    def.default = Some(v);
                } else {
                    def.values.push((key.to_string(), v));
                }
            }
            _ => {
                lost(
                    ctx,
                    format!("the entry '{}' is not a key and a value", shown(e)),
                );
                return None;
            }
        }
    }
    set.add_map(&name);
    Some(def)
}

/// The condition of `if (…)` as one string, parentheses removed, each
/// word as the parser read it (quotes already gone; an empty word, `""`,
/// is written back as `""`).
fn condition_text(i: &Directive) -> String {
    let mut words: Vec<String> = i.args.clone();
    if let Some(first) = words.first_mut() {
        *first = first.strip_prefix('(').unwrap_or(first).to_string();
    }
    if let Some(last) = words.last_mut() {
        *last = last.strip_suffix(')').unwrap_or(last).to_string();
    }
    if words.first().is_some_and(String::is_empty) {
        words.remove(0);
    }
    if words.len() == 4 && words.last().is_some_and(String::is_empty) {
        words.pop();
    }
    let quote = |w: &String| -> String {
        if w.is_empty() {
            "\"\"".to_string()
        } else if w != w.trim() || w.starts_with(['"', '\'']) {
            if w.contains('"') {
                format!("'{w}'")
            } else {
                format!("\"{w}\"")
            }
        } else {
            w.clone()
        }
    };
    match words.as_slice() {
        [subject, op, rest @ ..] if subject.starts_with('$') => {
            let operand = rest.join(" ");
            format!("{subject} {op} {}", quote(&operand))
        }
        _ => words.join(" "),
    }
}

/// `if (CONDITION) { return …; }` as a check. `None` when the block is
/// not that shape (the caller's warning stands); `Some(None)` when it is
/// but the condition or the answer cannot be carried over (warned here).
pub(crate) fn check_if(
    ctx: &mut Ctx<'_>,
    i: &Directive,
    set: &SetVars,
    captures: &[String],
) -> Option<Option<CheckDef>> {
    let [ret] = i.children() else {
        return None;
    };
    if ret.name != "return" || ret.block.is_some() {
        return None;
    }
    Some(convert_if(ctx, i, ret, set, captures))
}

fn convert_if(
    ctx: &mut Ctx<'_>,
    i: &Directive,
    ret: &Directive,
    set: &SetVars,
    captures: &[String],
) -> Option<CheckDef> {
    let text = condition_text(i);
    let subject = text.split_whitespace().next().unwrap_or("");
    if subject.starts_with('-') || subject.starts_with("!-") {
        ctx.warn(
            i,
            format!("'if ({text})' is not converted: file tests (`-f`, `-d`, `-e`, `-x`) need files greenlight does not serve"),
        );
        return None;
    }
    let subject_name = subject.trim_start_matches('$').trim_matches(['{', '}']);
    if set.is_set(subject_name) {
        // `set $x …` earlier: nginx tests the value at request time, which
        // greenlight (resolving `set` at import) cannot.
        ctx.warn(i, super::server::if_warning(i));
        return None;
    }
    let (resolved, unknown) = vars::resolve(&text, set, captures);
    if !unknown.is_empty() {
        ctx.warn(
            i,
            format!(
                "'if ({text})' uses {}, which greenlight does not know; not converted",
                vars::list(&unknown)
            ),
        );
        return None;
    }
    let named: Vec<(String, usize)> = captures.iter().cloned().zip(1..).collect();
    let maps = set.maps();
    let scope = Scope {
        location: &named,
        maps: &maps,
        ..Scope::default()
    };
    let condition = match Condition::parse(&resolved, &scope) {
        Ok(c) => c,
        Err(e) => {
            ctx.warn(i, format!("'if ({text})' is not converted: {}", e.what));
            return None;
        }
    };
    let mut names: Vec<String> = captures.to_vec();
    if let Some(re) = condition.regex() {
        names.extend(re.group_names().into_iter().map(|(n, _)| n));
    }
    let answer = answer::of_return(ctx, ret, set, &names)?;
    Some(CheckDef {
        condition: resolved,
        answer,
        at: ctx.at(i),
    })
}
