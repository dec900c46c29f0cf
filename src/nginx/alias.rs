//! `alias` in a regex location (`location ~ ^/~(.+?)(/.*)?$ { alias
//! /home/$1/public_html$2; }`): whether it converts to a regex route's
//! `files: {alias: TEMPLATE}` (see `plan::alias`), with a warning naming
//! what does not.

use super::convert::Ctx;
use super::directives::shown;
use super::parse::Directive;

/// True when the regex location's `alias` (already resolved to `dir`)
/// converts: an absolute path whose variables are all the location's
/// captures (`$1`…, named groups in `captures`), and no `try_files`
/// beside it. Else a warning and false.
pub(crate) fn regex_alias(
    ctx: &mut Ctx<'_>,
    a: &Directive,
    dir: &str,
    captures: &[String],
    try_files: Option<&Directive>,
) -> bool {
    let others = other_vars(dir, captures);
    let why = if !dir.starts_with('/') {
        "its directory is not absolute".to_string()
    } else if !others.is_empty() {
        format!(
            "it reads {}, and greenlight fills a regex route's alias with the location's captures only",
            others.join(", ")
        )
    } else if try_files.is_some() {
        // nginx appends try_files' candidates to the substituted alias, a
        // well-known trap; not guessed at.
        "`try_files` beside it is not supported (greenlight refuses the pair)".to_string()
    } else {
        return true;
    };
    ctx.warn(
        a,
        format!(
            "'{}' in a regex location is not converted: {why}; the files of this location are not served",
            shown(a)
        ),
    );
    false
}

/// The `$variables` of template `t` that are not regex captures.
fn other_vars(t: &str, captures: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        let braced = rest.starts_with('{');
        let body = rest.trim_start_matches('{');
        let len = if body.starts_with(|c: char| c.is_ascii_digit()) {
            1
        } else {
            body.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(body.len())
        };
        let name = &body[..len];
        let capture =
            name.chars().all(|c| c.is_ascii_digit()) || captures.iter().any(|c| c == name);
        if !capture {
            out.push(format!("${name}"));
        }
        rest = &body[len + usize::from(braced)..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::other_vars;

    #[test]
    fn only_captures_count_as_captures() {
        let caps = ["user".to_string()];
        assert!(other_vars("/home/$1/public_html$2", &caps).is_empty());
        assert!(other_vars("/home/${user}/x/$user", &caps).is_empty());
        assert_eq!(other_vars("/srv/$host/$1", &caps), ["$host"]);
        assert_eq!(other_vars("/srv/${host}x", &caps), ["$host"]);
    }
}
