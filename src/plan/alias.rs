//! `alias` with regex captures on a regex route (nginx `location ~
//! ^/~(.+?)(/.*)?$ { alias /home/$1/public_html$2; }`): the file is the
//! alias itself once the captures are put in, not the alias plus the path.
//!
//! Compiled at load into the directory the result can never leave (the
//! alias's text before its first variable, cut back to its last `/`) and
//! a template of the rest. At request time each variable's value is
//! percent-decoded on its own (the router matched the path as sent; nginx
//! matches the decoded one), and then the whole rest goes through the same
//! segment rules as every other files path (`plan::files`): a segment `..`,
//! a NUL, a backslash, a segment starting with `.` (but `.well-known`) is
//! refused — so a capture of `..`, `%2e%2e` or `..%2f..` never climbs out.
//! `proxy::files` then also refuses a file whose real path (symlinks
//! resolved) is outside that directory.

use super::files::Refused;
use super::template::{Segment, Template, TemplateError, Var};
use super::vars::VarCx;
use percent_encoding::percent_decode_str;
use std::path::PathBuf;

/// A compiled alias template.
#[derive(Debug)]
pub struct AliasTemplate {
    /// Every file is inside this directory (the literal prefix up to its
    /// last `/`).
    pub dir: PathBuf,
    /// What follows `dir`, with the variables.
    rest: Template,
}

impl AliasTemplate {
    /// Compiles `alias` (already parsed as a template); an error when it
    /// reads anything but regex captures or does not start with `/`.
    pub fn new(text: &str, template: &Template) -> Result<AliasTemplate, TemplateError> {
        for s in template.segments() {
            if let Segment::Var(v) = s
                && !matches!(v, Var::Capture(_) | Var::LocationNamed(_))
            {
                return Err(TemplateError {
                    offset: 0,
                    what: format!(
                        "`alias` '{text}' reads a variable other than the route's captures"
                    ),
                });
            }
        }
        let literal = match template.segments().first() {
            Some(Segment::Literal(l)) => l.as_ref(),
            _ => "",
        };
        let Some(cut) = literal.rfind('/').filter(|_| literal.starts_with('/')) else {
            return Err(TemplateError {
                offset: 0,
                what: format!("`alias` '{text}' does not start with an absolute directory"),
            });
        };
        let mut rest = Vec::with_capacity(template.segments().len());
        for (i, s) in template.segments().iter().enumerate() {
            match (i, s) {
                (0, Segment::Literal(l)) if l.len() > cut + 1 => {
                    rest.push(Segment::Literal(l[cut + 1..].into()));
                }
                (0, Segment::Literal(_)) => {}
                (_, s) => rest.push(s.clone()),
            }
        }
        Ok(AliasTemplate {
            dir: PathBuf::from(&literal[..=cut]),
            rest: Template::from_segments(rest),
        })
    }

    /// The file for this request (its captures in `cx`).
    pub fn map(&self, cx: &VarCx<'_>) -> Result<PathBuf, Refused> {
        let mut rest = String::with_capacity(64);
        let mut value = String::new();
        for s in self.rest.segments() {
            match s {
                Segment::Literal(l) => rest.push_str(l),
                Segment::Var(v) => {
                    value.clear();
                    cx.write(v, &mut value);
                    let decoded = percent_decode_str(&value)
                        .decode_utf8()
                        .map_err(|_| Refused)?;
                    rest.push_str(&decoded);
                }
            }
        }
        super::files::push_segments(self.dir.clone(), &rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Captures;
    use crate::plan::template::Scope;
    use crate::plan::vars::Match;
    use pingora::http::RequestHeader;

    /// The alias compiled against `re`'s named groups, mapped for `path`
    /// (which `re` must match).
    fn map(alias: &str, re: &str, path: &str) -> Result<PathBuf, Refused> {
        let re = regex::Regex::new(re).expect("regex");
        let names: Vec<(String, usize)> = re
            .capture_names()
            .enumerate()
            .filter_map(|(i, n)| Some((n?.to_string(), i)))
            .collect();
        let scope = Scope {
            location: &names,
            ..Scope::default()
        };
        let t = Template::parse(alias, &scope).expect("template");
        let a = AliasTemplate::new(alias, &t).expect("alias");
        let mut locs = re.capture_locations();
        re.captures_read(&mut locs, path).expect("the path matches");
        let caps = Captures::from_locations(locs);
        let req = RequestHeader::build("GET", path.as_bytes(), None).expect("req");
        let cx = VarCx {
            location: Some(Match {
                captures: &caps,
                subject: path,
            }),
            ..VarCx::of_request(&req)
        };
        a.map(&cx)
    }

    const USERDIR: &str = r"^/~(.+?)(/.*)?$";

    #[test]
    fn captures_fill_the_alias_like_nginx() {
        let home = "/home/$1/public_html$2";
        let ok = |p: &str, want: &str| assert_eq!(map(home, USERDIR, p), Ok(want.into()), "{p}");
        ok("/~alice/x.html", "/home/alice/public_html/x.html");
        ok("/~alice/", "/home/alice/public_html/");
        ok("/~alice", "/home/alice/public_html");
        ok("/~alice/a%20b/c.txt", "/home/alice/public_html/a b/c.txt");
        let docs = "/srv/docs/$ver/html/$page";
        let re = r"^/docs/(?<ver>v[0-9]+)/(?<page>.*)$";
        assert_eq!(
            map(docs, re, "/docs/v2/intro.html"),
            Ok("/srv/docs/v2/html/intro.html".into())
        );
        // A variable inside a segment: the directory is cut at the last `/`.
        assert_eq!(
            map("/srv/site-$1/$2", r"^/s/(\w+)/(.*)$", "/s/blue/a.css"),
            Ok("/srv/site-blue/a.css".into())
        );
    }

    #[test]
    fn captures_never_leave_the_literal_prefix() {
        let home = "/home/$1/public_html$2";
        for bad in [
            "/~../etc/passwd",
            "/~%2e%2e/etc/passwd",
            "/~%2E%2E/etc/passwd",
            "/~alice/../../etc/passwd",
            "/~alice/..%2f..%2fetc/passwd",
            "/~alice%2f..%2f../etc/passwd",
            "/~..%2f..%2froot/.ssh/id_rsa",
            "/~alice/%2e%2e/%2e%2e/etc/passwd",
            "/~alice/a%00.html",
            "/~alice/..%5c..%5cetc",
            "/~alice\\..\\..\\etc",
            "/~alice/.htpasswd",
            "/~.alice/x",
            "/~alice/%ff%fe",
        ] {
            assert_eq!(map(home, USERDIR, bad), Err(Refused), "{bad}");
        }
        assert_eq!(
            map("/srv/site-$1/$2", r"^/s/([^/]+)/(.*)$", "/s/%2e%2e/x"),
            Ok("/srv/site-../x".into()),
            "`site-..` is a name inside /srv/, not a way up"
        );
    }

    #[test]
    fn only_captures_and_absolute_aliases_compile() {
        let t = |s: &str| Template::parse(s, &Scope::default()).expect("template");
        assert!(AliasTemplate::new("/srv/$host/", &t("/srv/$host/")).is_err());
        assert!(AliasTemplate::new("$1/x", &t("$1/x")).is_err());
        assert!(AliasTemplate::new("srv/$1", &t("srv/$1")).is_err());
        let a = AliasTemplate::new("/srv/$1", &t("/srv/$1")).expect("ok");
        assert_eq!(a.dir, PathBuf::from("/srv/"));
    }
}
