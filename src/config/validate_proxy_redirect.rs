//! `rewrite_location:` → `plan::proxy_redirect::ProxyRedirect`: each `from`
//! is a prefix template or a `~regex` (`~*` case-insensitive), each `to` a
//! template that may read the regex's groups. Errors at file:line:col.

use super::diag::{Diagnostics, Pos};
use super::file_proxy_redirect::{FileProxyRedirect, FileRedirectRule};
use super::validate::pos;
use super::validate_steps::{group_names, template};
use crate::plan::location::{Pattern, regex_reason};
use crate::plan::proxy_redirect::{From, ProxyRedirect, Rule};
use crate::plan::template::Scope;
use serde_saphyr::Spanned;
use std::sync::Arc;

/// Compiles `rewrite_location:`; `None` for `off`, an empty list, or errors.
pub(super) fn proxy_redirect(
    f: &Spanned<FileProxyRedirect>,
    scope: &Scope<'_>,
    ds: &mut Diagnostics,
) -> Option<Arc<ProxyRedirect>> {
    let rules = match &f.value {
        FileProxyRedirect::Word(w) if w == "off" => return None,
        FileProxyRedirect::Word(w) => {
            ds.error(
                pos(f),
                format!("rewrite_location '{w}' is not `off` or a list of rules"),
                "write `off`, or a list like `[{from: \"http://\", to: \"https://\"}]`",
            );
            return None;
        }
        FileProxyRedirect::Rules(r) => r,
    };
    let compiled: Vec<Rule> = rules.iter().filter_map(|r| rule(r, scope, ds)).collect();
    if compiled.is_empty() {
        return None;
    }
    Some(Arc::new(ProxyRedirect {
        rules: compiled.into(),
    }))
}

fn rule(r: &Spanned<FileRedirectRule>, scope: &Scope<'_>, ds: &mut Diagnostics) -> Option<Rule> {
    let f = &r.value;
    let at: Pos = pos(r);
    let text = f.from.value.as_str();
    if text.is_empty() {
        ds.error(
            pos(&f.from),
            "an empty `from` would match every value",
            "write the start of the URL to replace, e.g. `from: \"http://127.0.0.1:8000/\"`",
        );
        return None;
    }
    let regex = text
        .strip_prefix("~*")
        .map(|re| (re, true))
        .or_else(|| text.strip_prefix('~').map(|re| (re, false)));
    let (from, groups) = match regex {
        Some((re, nocase)) => match Pattern::compile(re, nocase) {
            Ok(p) => {
                let g = group_names(p.regex());
                (From::Regex(p), g)
            }
            Err(e) => {
                ds.error(
                    pos(&f.from),
                    format!("`from` regex '{re}' does not compile: {}", regex_reason(&e)),
                    "fix the regular expression (Rust regex syntax, as for `rewrite`)",
                );
                return None;
            }
        },
        None => (
            From::Prefix(template(&f.from, at, text, scope, ds)?),
            Vec::new(),
        ),
    };
    let to_scope = Scope {
        last: &groups,
        ..*scope
    };
    let to = template(&f.to, at, &f.to.value, &to_scope, ds)?;
    Some(Rule { from, to })
}

#[cfg(test)]
mod tests {
    use crate::config::load_str;
    use crate::plan::proxy_redirect::From;
    use std::path::Path;

    fn load(site: &str, route: &str) -> Result<crate::config::Config, String> {
        let yaml = format!(
            "listeners: {{http: {{address: \"127.0.0.1:8080\"}}}}\nsites:\n  s:\n    hosts: [a.test]\n{site}    routes:\n      - path: /\n        upstream: u\n{route}upstreams:\n  u: {{active: p, pools: {{p: [\"127.0.0.1:1\"]}}}}\n"
        );
        load_str(Path::new("g.yaml"), &yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn rules_compile_and_a_route_replaces_the_sites() {
        let site = "    rewrite_location: [{from: \"http://\", to: \"https://\"}]\n";
        let cfg = load(site, "").expect("valid");
        let plan = &cfg.sites[0].routes[0].plan;
        assert!(matches!(
            plan.proxy_redirect().expect("inherited").rules[0].from,
            From::Prefix(_)
        ));
        let own = "        rewrite_location:\n          - {from: \"~*^http://b(/.*)$\", to: \"https://$host$1\"}\n";
        let cfg = load(site, own).expect("valid");
        let rules = &cfg.sites[0].routes[0]
            .plan
            .proxy_redirect()
            .expect("own")
            .rules;
        assert_eq!(rules.len(), 1);
        assert!(matches!(rules[0].from, From::Regex(_)));
        let cfg = load(site, "        rewrite_location: off\n").expect("valid");
        assert!(
            cfg.sites[0].routes[0].plan.proxy_redirect().is_none(),
            "off"
        );
        let cfg = load("", "").expect("valid");
        assert!(
            cfg.sites[0].routes[0].plan.proxy_redirect().is_none(),
            "none: no step"
        );
    }

    #[test]
    fn mistakes_are_reported_at_their_place() {
        let e = load("", "        rewrite_location: sometimes\n").expect_err("word");
        assert!(
            e.contains("g.yaml:8:27: rewrite_location 'sometimes' is not `off`"),
            "{e}"
        );
        let e = load("", "        rewrite_location: [{from: \"~(\", to: /}]\n").expect_err("re");
        assert!(
            e.contains("g.yaml:8:35: `from` regex '(' does not compile"),
            "{e}"
        );
        let e = load("", "        rewrite_location: [{from: \"\", to: /}]\n").expect_err("empty");
        assert!(e.contains("an empty `from` would match every value"), "{e}");
        let e = load(
            "",
            "        rewrite_location: [{from: \"http://\", to: \"$hots/\"}]\n",
        )
        .expect_err("var");
        assert!(
            e.contains("unknown variable `$hots`") && e.contains("did you mean `$host`?"),
            "{e}"
        );
        let e = load(
            "",
            "        rewrite_location: [{from: x, to: y, flag: z}]\n",
        )
        .expect_err("key");
        assert!(e.contains("flag"), "{e}");
    }
}
