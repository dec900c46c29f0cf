//! Compiles `maps:` (nginx `map`) into [`VarMap`]s and the list of names
//! every other template may read, reporting bad names, keys and templates at
//! their line and column.

use super::diag::Diagnostics;
use super::file::FileConfig;
use super::validate::pos;
use super::validate_steps::template;
use crate::plan::map::{Key, VarMap, key};
use crate::plan::template::{Scope, Segment, Template, Var};
use serde_saphyr::Spanned;
use std::collections::HashMap;

/// The compiled maps and their names (the `$name`s templates may use), both
/// in file order. A map with a problem is reported and left out of neither
/// list, so its uses are not reported again as unknown variables.
pub(super) fn validate_maps(file: &FileConfig, ds: &mut Diagnostics) -> (Vec<String>, Vec<VarMap>) {
    let names: Vec<String> = file.maps.keys().cloned().collect();
    let mut maps = Vec::new();
    for (name, m) in &file.maps {
        let at = pos(m);
        let ok_name = !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !name.bytes().all(|b| b.is_ascii_digit());
        if !ok_name {
            ds.error(
                at,
                format!("map name '{name}' is not a variable name"),
                "use letters, digits and `_` (the map defines `$name`), e.g. `cache_control`",
            );
            continue;
        }
        if Template::parse(&format!("${{{name}}}"), &Scope::default()).is_ok() {
            ds.error(
                at,
                format!("map name '{name}' is a variable greenlight already has (`${name}`)"),
                "choose another name for the map's variable",
            );
            continue;
        }
        let f = &m.value;
        // A map reads no other map: one level, no cycle at request time.
        let plain = Scope::default();
        let source = map_template(&f.source, &f.source.value, &plain, &names, name, ds);
        let mut exact = HashMap::new();
        let mut regexes = Vec::new();
        let mut default = f
            .default
            .as_ref()
            .and_then(|d| map_template(d, &d.value.0, &plain, &names, name, ds));
        for (k, v) in &f.values {
            match key(k) {
                Key::Default => default = map_template(v, &v.value.0, &plain, &names, name, ds),
                Key::Exact(text) => {
                    if text.starts_with("*.") || text.ends_with(".*") {
                        ds.error(
                            pos(v),
                            format!("map key '{k}' of '{name}' is a host wildcard"),
                            "write it as a regex key, e.g. `~^(.+\\.)?example\\.com$`",
                        );
                    }
                    if let Some(t) = map_template(v, &v.value.0, &plain, &names, name, ds) {
                        exact.insert(text.into(), t);
                    }
                }
                Key::Regex(re) => match regex::Regex::new(&re) {
                    Ok(re) => {
                        let groups = super::validate_steps::group_names(&re);
                        let scope = Scope {
                            last: &groups,
                            ..Scope::default()
                        };
                        if let Some(t) = map_template(v, &v.value.0, &scope, &names, name, ds) {
                            regexes.push((re, t));
                        }
                    }
                    Err(e) => {
                        let why = e.to_string();
                        let last = why.lines().last().unwrap_or("").trim().to_string();
                        ds.error(
                            pos(v),
                            format!("map key '{k}' of '{name}' is not a valid regex: {last}"),
                            "fix the pattern (Rust regex syntax, close to PCRE without look-around)",
                        );
                    }
                },
            }
        }
        if let Some(source) = source {
            maps.push(VarMap {
                name: name.as_str().into(),
                source,
                exact,
                regexes: regexes.into(),
                default,
            });
        }
    }
    if maps.len() != names.len() {
        // Indexes must line up with `names`; the config is refused anyway.
        return (names, Vec::new());
    }
    (names, maps)
}

/// Whether `text` parses once map names are known and then reads one.
fn reads_a_map(text: &str, scope: &Scope<'_>, names: &[String]) -> bool {
    let with_maps = Scope {
        maps: names,
        ..*scope
    };
    Template::parse(text, &with_maps).is_ok_and(|t| {
        t.segments()
            .iter()
            .any(|s| matches!(s, Segment::Var(Var::Map(_))))
    })
}

/// A template of map `map`, refused when it reads another map.
fn map_template<T>(
    s: &Spanned<T>,
    text: &str,
    scope: &Scope<'_>,
    names: &[String],
    map: &str,
    ds: &mut Diagnostics,
) -> Option<Template> {
    if reads_a_map(text, scope, names) {
        ds.error(
            pos(s),
            format!("'{text}' in map '{map}' reads another map"),
            "a map's source and values may use any variable but another map's; choose from the source of that map instead",
        );
        return None;
    }
    template(s, pos(s), text, scope, ds)
}
