//! Compiles `routes[].files` (nginx `root`/`alias`, `index`, `try_files`)
//! into a [`Files`] terminal, every problem at its line and column.
//!
//! The directory is not required to exist at load: a deploy may create it
//! after greenlight starts (a missing file is a 404 then, as in nginx).

use super::diag::Diagnostics;
use super::file::{FileFiles, Scalar};
use super::file_mp4::{FileMp4, KEYS};
use super::validate::pos;
use super::validate_steps::template;
use super::values::{closest, parse_size};
use crate::plan::files::{Base, Fallback, Files, NamedRoute, TryFiles};
use crate::plan::location::Location;
use crate::plan::template::Scope;
use serde_saphyr::Spanned;
use std::path::PathBuf;

/// The compiled `files:` of a route at `location`; `None` after reporting.
pub(super) fn files(
    f: &Spanned<FileFiles>,
    location: Option<&Location>,
    scope: &Scope<'_>,
    ds: &mut Diagnostics,
) -> Option<Files> {
    let v = &f.value;
    let dir = |d: &Spanned<String>, ds: &mut Diagnostics| {
        let p = PathBuf::from(d.value.trim());
        if p.as_os_str().is_empty() {
            ds.error(
                pos(d),
                "the directory is empty",
                "name the directory files are served from, e.g. `/srv/www`",
            );
            return None;
        }
        Some(p)
    };
    let base = match (&v.root, &v.alias) {
        (Some(r), None) => Base::Root(dir(r, ds)?),
        (None, Some(a)) if matches!(location, Some(Location::Regex(_))) => Base::AliasTemplate(
            Box::new(super::validate_alias::alias_template(v, a, scope, ds)?),
        ),
        (None, Some(a)) => {
            let prefix = match location {
                Some(Location::Prefix(p) | Location::PrefixNoRegex(p) | Location::Exact(p)) => {
                    p.len()
                }
                _ => {
                    ds.error(
                        pos(a),
                        "`alias` needs a prefix or regex route; this route's path is a name",
                        "use `root` (the file is root + the whole path)",
                    );
                    return None;
                }
            };
            Base::Alias {
                dir: dir(a, ds)?,
                prefix_len: prefix,
                slash: a.value.trim().ends_with('/'),
            }
        }
        _ => {
            ds.error(
                pos(f),
                "`files` needs exactly one of `root` and `alias`",
                "`root: /srv/www` serves /srv/www + the path; `alias: /srv/static/` replaces the route's prefix",
            );
            return None;
        }
    };
    let index: Box<[Box<str>]> = match &v.index {
        None => vec!["index.html".into()].into(),
        Some(list) => {
            let mut out = Vec::new();
            for n in &list.value {
                let name = n.value.trim();
                if name.is_empty() || name.contains(['/', '\0']) || name.starts_with('.') {
                    ds.error(
                        pos(n),
                        format!("index '{name}' is not a file name"),
                        "write a name like `index.html`",
                    );
                } else {
                    out.push(name.into());
                }
            }
            out.into()
        }
    };
    let try_files = match &v.try_files {
        None => None,
        Some(list) if list.value.len() < 2 => {
            ds.error(
                pos(list),
                "`try_files` needs candidates and a last entry",
                "e.g. `[\"$uri\", \"$uri/\", /index.html]` or `[\"$uri\", \"=404\"]`",
            );
            return None;
        }
        Some(list) => {
            let (last, candidates) = list.value.split_last()?;
            let mut cs = Vec::new();
            for c in candidates {
                cs.push(template(c, pos(c), c.value.trim(), scope, ds)?);
            }
            let l = last.value.trim();
            let fallback = if let Some(code) = l.strip_prefix('=') {
                match code.parse::<u16>() {
                    Ok(n) if (200..=599).contains(&n) => Fallback::Status(n),
                    _ => {
                        ds.error(
                            pos(last),
                            format!("'{l}' is not a status"),
                            "write `=404` (any status from 200 to 599)",
                        );
                        return None;
                    }
                }
            } else if l.starts_with('@') {
                if l.len() < 2 || l.contains(char::is_whitespace) {
                    ds.error(
                        pos(last),
                        format!("'{l}' is not a route name"),
                        "name a route of this site whose path is `@name`, e.g. `@app`",
                    );
                    return None;
                }
                // Linked to its route once the site's routes are known.
                Fallback::Named(NamedRoute::new(l))
            } else {
                Fallback::Path(template(last, pos(last), l, scope, ds)?)
            };
            Some(TryFiles {
                candidates: cs.into(),
                fallback,
            })
        }
    };
    Some(Files {
        base,
        index,
        try_files,
        autoindex: v.autoindex.as_ref().is_some_and(|a| a.value),
        mp4: v.mp4.as_ref().and_then(|m| mp4(m, ds)),
    })
}

/// `files.mp4`: nginx's defaults, changed by the map form.
fn mp4(m: &Spanned<FileMp4>, ds: &mut Diagnostics) -> Option<crate::mp4::Options> {
    let v = &m.value;
    if v.switch == Some(false) {
        return None;
    }
    let mut out = crate::mp4::Options::default();
    for u in &v.unknown {
        let fix = match closest(&u.value, KEYS.iter().copied()) {
            Some(k) => format!("did you mean `{k}`?"),
            None => format!("known keys: {}", KEYS.join(", ")),
        };
        ds.error(pos(u), format!("unknown key '{}' in `mp4`", u.value), fix);
    }
    let size = |s: &Option<Spanned<Scalar>>, into: &mut u64, ds: &mut Diagnostics| {
        let Some(s) = s else { return };
        match parse_size(&s.value.0) {
            Some(n) if n > 0 => *into = n,
            _ => ds.error(
                pos(s),
                format!("'{}' is not a size", s.value.0),
                "write bytes with an optional unit: `512k`, `10m`",
            ),
        }
    };
    size(&v.buffer_size, &mut out.buffer_size, ds);
    size(&v.max_buffer_size, &mut out.max_buffer_size, ds);
    if let Some(k) = &v.start_key_frame {
        out.start_key_frame = k.value;
    }
    Some(out)
}

/// Links every `try_files … @name` of a site's files routes to the route
/// whose path is `@name`, reporting a name no route has. `file_routes` are
/// the site's routes as written (for positions), `routes` as compiled.
pub(super) fn link_named(
    file_routes: &[Spanned<super::file::FileRoute>],
    routes: &[crate::config::model::RouteConfig],
    ds: &mut Diagnostics,
) {
    for rc in routes {
        let crate::plan::Terminal::Files(f) = &rc.plan.terminal else {
            continue;
        };
        let Some(named) = f.named_fallback() else {
            continue;
        };
        let target = routes
            .iter()
            .position(|r| matches!(&r.location, Location::Named(n) if **n == *named.name));
        match target {
            Some(i) => {
                let _ = named.route.set(i);
            }
            None => {
                let at = file_routes
                    .iter()
                    .filter_map(|r| r.value.files.as_ref()?.value.try_files.as_ref())
                    .filter_map(|t| t.value.last())
                    .find(|l| l.value.trim() == &*named.name)
                    .map(pos)
                    .unwrap_or_default();
                let names: Vec<String> = routes
                    .iter()
                    .filter_map(|r| match &r.location {
                        Location::Named(n) => Some(n.clone()),
                        _ => None,
                    })
                    .collect();
                let fix = if names.is_empty() {
                    format!(
                        "add a route `- path: \"{}\"` with the `upstream` that takes what is not a file",
                        named.name
                    )
                } else {
                    format!("the site's named routes are {}", names.join(", "))
                };
                ds.error(
                    at,
                    format!("no route of this site is named '{}'", named.name),
                    fix,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::load_str;
    use crate::plan::Terminal;
    use std::path::Path;

    fn check(routes: &str) -> Result<crate::config::Config, String> {
        let yaml = format!(
            "listeners: {{http: {{address: \"127.0.0.1:8080\"}}}}\nsites:\n  s:\n    hosts: [a.test]\n    routes:\n{routes}upstreams:\n  u: {{active: p, pools: {{p: [\"127.0.0.1:1\"]}}}}\n"
        );
        load_str(Path::new("g.yaml"), &yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn a_named_fallback_links_to_its_route_wherever_it_is() {
        let cfg = check(concat!(
            "      - {path: /, files: {root: /srv, try_files: [\"$uri\", \"@app\"]}}\n",
            "      - {path: /x, upstream: u}\n",
            "      - {path: \"@app\", upstream: u, expires: 1h}\n",
        ))
        .expect("valid");
        let Terminal::Files(f) = &cfg.sites[0].routes[0].plan.terminal else {
            panic!("files route");
        };
        let named = f.named_fallback().expect("named fallback");
        assert_eq!(named.route.get(), Some(&2));
        assert!(cfg.sites[0].routes[2].plan.expires().is_some());
    }

    #[test]
    fn an_unknown_name_and_bad_values_are_reported_at_their_place() {
        let e = check(concat!(
            "      - {path: /, files: {root: /srv, try_files: [\"$uri\", \"@gone\"]}}\n",
            "      - {path: \"@app\", upstream: u}\n",
            "      - {path: /b, files: {root: /srv, try_files: [\"$uri\", \"@\"]}, expires: soon}\n",
            "      - {path: \"@bad name\", upstream: u}\n",
        ))
        .expect_err("invalid");
        for want in [
            "g.yaml:6:59: no route of this site is named '@gone' — the site's named routes are @app",
            "'@' is not a route name",
            "g.yaml:8:76: 'soon' is not a time — write `30d`",
            "route path: '@bad' is not a location modifier",
        ] {
            assert!(e.contains(want), "{want} in:\n{e}");
        }
    }
}
