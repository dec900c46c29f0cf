//! `return` → `redirect:` / `respond:`, `empty_gif` → a `respond:` with
//! the GIF's bytes, and `rewrite` → `rewrite:` rules, with the variables in
//! their values checked (see `vars.rs`).

use super::convert::{Answer, Ctx, Rewrite};
use super::directives::shown;
use super::parse::Directive;
use super::vars::{self, SetVars};

/// Status codes greenlight redirects with.
const REDIRECTS: &[u16] = &[301, 302, 303, 307, 308];

/// nginx's `empty_gif` answer: a 1x1 transparent GIF89a (43 bytes: a
/// black-and-white colour table, a graphic control extension marking
/// colour 1 transparent, one LZW-coded pixel of it), base64 — the bytes
/// real nginx sends, which the parity harness compares.
pub(crate) const EMPTY_GIF_BASE64: &str =
    "R0lGODlhAQABAIABAAAAAP///yH5BAEAAAEALAAAAAABAAEAAAICTAEAOw==";

/// The route answer of a location with `empty_gif`.
pub(crate) fn empty_gif() -> Answer {
    Answer::Bytes {
        content_type: "image/gif",
        base64: EMPTY_GIF_BASE64,
    }
}

fn is_url(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    l.starts_with("http://") || l.starts_with("https://") || l.starts_with("$scheme")
}

/// A value ready for a template, or a warning naming what greenlight does
/// not know.
fn template(
    ctx: &mut Ctx<'_>,
    d: &Directive,
    value: &str,
    set: &SetVars,
    captures: &[String],
) -> Option<String> {
    let (v, unknown) = vars::resolve(value, set, captures);
    if unknown.is_empty() {
        return Some(v);
    }
    ctx.warn(
        d,
        format!(
            "'{}' uses {}, which greenlight does not know (it knows {}); not converted",
            shown(d),
            vars::list(&unknown),
            crate::plan::template::KNOWN
        ),
    );
    None
}

/// `return CODE [TEXT|URL]` or `return URL`.
pub(crate) fn of_return(
    ctx: &mut Ctx<'_>,
    r: &Directive,
    set: &SetVars,
    captures: &[String],
) -> Option<Answer> {
    let (code, rest) = match r.args.as_slice() {
        [url] if is_url(url) => (302, Some(url.as_str())),
        [code] => (code.parse::<u16>().ok()?, None),
        [code, text] => (code.parse::<u16>().ok()?, Some(text.as_str())),
        _ => {
            ctx.warn(
                r,
                format!("'{}' is not a valid return; not converted", shown(r)),
            );
            return None;
        }
    };
    if !(100..=599).contains(&code) && code != 444 {
        ctx.warn(
            r,
            format!(
                "'{}': {code} is not an HTTP status; not converted",
                shown(r)
            ),
        );
        return None;
    }
    if REDIRECTS.contains(&code) {
        let Some(url) = rest else {
            return Some(Answer::Respond {
                status: code,
                body: None,
                content_type: None,
            });
        };
        let to = template(ctx, r, url, set, captures)?;
        return Some(Answer::Redirect { to, status: code });
    }
    if code == 444 {
        ctx.note(
            r,
            "'return 444' closes the connection without an answer in nginx; greenlight answers 404 with an empty body instead",
        );
        return Some(Answer::Respond {
            status: 404,
            body: None,
            content_type: None,
        });
    }
    let body = match rest {
        Some(text) => Some(template(ctx, r, text, set, captures)?),
        None => None,
    };
    Some(Answer::Respond {
        status: code,
        body,
        content_type: None,
    })
}

/// `rewrite REGEX REPLACEMENT [FLAG]`.
pub(crate) fn of_rewrite(
    ctx: &mut Ctx<'_>,
    d: &Directive,
    set: &SetVars,
    captures: &[String],
) -> Option<Rewrite> {
    let (from, to, flag) = match d.args.as_slice() {
        [f, t] => (f, t, None),
        [f, t, flag] => (f, t, Some(flag.as_str())),
        _ => {
            ctx.warn(
                d,
                format!("'{}' is not a valid rewrite; not converted", shown(d)),
            );
            return None;
        }
    };
    let flag = match flag {
        Some(f @ ("last" | "break" | "redirect" | "permanent")) => f,
        Some(other) => {
            ctx.warn(
                d,
                format!("rewrite flag '{other}' is not an nginx flag (last, break, redirect, permanent); not converted"),
            );
            return None;
        }
        None => "",
    };
    let flag: &'static str = match flag {
        "permanent" => "permanent",
        "redirect" => "redirect",
        _ if is_url(to) => "redirect",
        "break" => "break",
        _ => "last",
    };
    let mut names = captures.to_vec();
    names.extend(vars::named_groups(from));
    let to = template(ctx, d, to, set, &names)?;
    // nginx does not expand variables in the regex: `$` is an anchor there.
    Some(Rewrite {
        from: from.clone(),
        to,
        flag,
        at: ctx.at(d),
    })
}

/// nginx goes on to the next `rewrite` after one without a flag;
/// greenlight stops at the first rule that matches (`last`). That differs
/// only when a later rule matches what this one wrote: for a fixed target
/// (no variables) that is decided here, and nothing is said when no later
/// regex matches it; otherwise a warning names the rule.
pub(crate) fn flagless_rewrites(ctx: &mut Ctx<'_>, list: &[&Directive]) {
    let n = list.len();
    for (i, d) in list.iter().enumerate() {
        let to = d.args.get(1).map_or("", |s| s.as_str());
        if d.args.len() != 2 || i + 1 >= n || is_url(to) {
            continue;
        }
        // nginx matches the later rules against the path, not the query.
        let path = to.split('?').next().unwrap_or(to);
        let fixed = !to.contains('$');
        let later_may_match = !fixed
            || list.iter().skip(i + 1).any(|l| {
                l.args
                    .first()
                    .is_none_or(|re| regex::Regex::new(re).map_or(true, |re| re.is_match(path)))
            });
        if later_may_match {
            ctx.warn(
                d,
                format!("'{}' has no flag: nginx then applied the following rewrites too, greenlight stops at the first rule that matches (flag last); check that no later rule should also apply", shown(d)),
            );
        }
    }
}

/// `s` with the regex metacharacters escaped.
pub(crate) fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::regex_escape;

    #[test]
    fn escapes_regex_metacharacters() {
        assert_eq!(regex_escape("/a.b/(c)"), "/a\\.b/\\(c\\)");
    }
}
