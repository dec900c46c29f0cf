//! Compiles `files.alias` on a regex route (nginx `alias` with captures in
//! a regex location) into a [`AliasTemplate`], every problem at its line
//! and column. Prefix routes keep the plain `alias` of `validate_files`.

use super::diag::Diagnostics;
use super::file::FileFiles;
use super::validate::pos;
use super::validate_steps::template;
use crate::plan::alias::AliasTemplate;
use crate::plan::template::Scope;
use serde_saphyr::Spanned;

/// The alias template of a regex route's `files:`; `None` after reporting.
pub(super) fn alias_template(
    f: &FileFiles,
    a: &Spanned<String>,
    scope: &Scope<'_>,
    ds: &mut Diagnostics,
) -> Option<AliasTemplate> {
    if let Some(tf) = &f.try_files {
        // nginx's own `try_files` with a regex `alias` is a known trap
        // (the candidates are appended to the substituted alias); not
        // carried over rather than guessed.
        ds.error(
            pos(tf),
            "`try_files` cannot go with an `alias` on a regex route",
            "drop `try_files`, or use `root` with `try_files` on this route",
        );
        return None;
    }
    let text = a.value.trim();
    let t = template(a, pos(a), text, scope, ds)?;
    match AliasTemplate::new(text, &t) {
        Ok(alias) => Some(alias),
        Err(e) => {
            ds.error(
                pos(a),
                e.what,
                "write an absolute directory, then the route's captures: `/home/$1/public_html$2`, `/srv/docs/$ver/$page`",
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::load_str;
    use crate::plan::Terminal;
    use crate::plan::files::Base;
    use std::path::Path;

    fn check(route: &str) -> Result<crate::config::Config, String> {
        let yaml = format!(
            "listeners: {{http: {{address: \"127.0.0.1:8080\"}}}}\nsites:\n  s:\n    hosts: [a.test]\n    routes:\n      - {route}\n"
        );
        load_str(Path::new("g.yaml"), &yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn a_regex_route_takes_an_alias_with_its_captures() {
        let cfg = check(r#"{path: "~ ^/~(?<user>\\w+)(/.*)?$", files: {alias: "/home/$user/public_html$2", index: [home.html]}}"#)
            .expect("valid");
        let Terminal::Files(f) = &cfg.sites[0].routes[0].plan.terminal else {
            panic!("files");
        };
        assert!(matches!(&f.base, Base::AliasTemplate(a) if a.dir == Path::new("/home/")));
        assert_eq!(&*f.index, &["home.html".into()] as &[Box<str>]);
    }

    #[test]
    fn other_variables_relative_aliases_and_try_files_are_errors_with_the_fix() {
        let e =
            check(r#"{path: "~ ^/u/(.*)$", files: {alias: "/srv/$host/$1"}}"#).expect_err("host");
        assert!(e.contains("g.yaml:6:46: `alias` '/srv/$host/$1' reads a variable other than the route's captures"), "{e}");
        assert!(e.contains("/home/$1/public_html$2"), "{e}");
        let e = check(r#"{path: "~ ^/u/(.*)$", files: {alias: "$1"}}"#).expect_err("relative");
        assert!(
            e.contains("does not start with an absolute directory"),
            "{e}"
        );
        let e =
            check(r#"{path: "~ ^/u/(.*)$", files: {alias: "/srv/$nope"}}"#).expect_err("unknown");
        assert!(e.contains("g.yaml:6:"), "{e}");
        let e = check(
            r#"{path: "~ ^/u/(.*)$", files: {alias: "/srv/$1", try_files: ["$uri", "=404"]}}"#,
        )
        .expect_err("try_files");
        assert!(
            e.contains("`try_files` cannot go with an `alias` on a regex route"),
            "{e}"
        );
    }
}
