//! Route plans: what `validate` compiles a site's routes into and the proxy
//! hooks only execute (see ARCHITECTURE.md, "Routes are compiled plans").
//!
//! Layers point down: `config` and `state` build what lives here, `proxy`
//! runs it; nothing here reaches into `proxy`. [`location`] is one route's
//! path matcher, [`router`] picks the site and route of a request in nginx's
//! order and hands back the regex [`Captures`] that later steps read;
//! [`client_ip`] finds the real client address behind trusted proxies.
//!
//! A [`Plan`] is an ordered list of [`Step`]s (rewrites, request headers,
//! response headers) and one [`Terminal`] (proxy to an upstream, or an answer
//! greenlight makes itself: [`answer::Redirect`], [`answer::Respond`]).
//! Everything a request would otherwise parse — templates ([`template`]),
//! regexes, header names and values — is parsed at load; at request time
//! the hooks only run what the plan holds.

pub mod answer;
pub mod check;
pub mod client_ip;
pub mod files;
pub mod headers;
pub mod location;
pub mod map;
pub mod rewrite;
pub mod router;
pub mod template;
pub mod vars;

/// Capture spans of the regex location that matched, over the request path
/// it was matched against (byte offsets) — or of a rewrite's `from` over the
/// path it rewrote. Index 0 is the whole match, 1… the
/// groups in order; a named group is referred to by its index, which
/// [`location::Location::capture_index`] resolves at load. A group that did
/// not take part in the match is `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Captures {
    /// `(start, end)` per group, `None` when the group did not match.
    pub spans: Vec<Option<(usize, usize)>>,
}

impl Captures {
    /// The text of group `i` within `subject` (the path that was matched);
    /// `None` for a group that did not match or does not exist.
    pub fn get<'s>(&self, i: usize, subject: &'s str) -> Option<&'s str> {
        let (start, end) = (*self.spans.get(i)?)?;
        subject.get(start..end)
    }

    /// The spans of a `regex` match.
    pub fn from_regex(c: &regex::Captures<'_>) -> Captures {
        Captures {
            spans: c.iter().map(|m| m.map(|m| (m.start(), m.end()))).collect(),
        }
    }
}

/// One step of a route's plan, run in order before the terminal (rewrites)
/// or on the way to the upstream and back (headers).
#[derive(Debug)]
pub enum Step {
    /// `checks:`: conditions that answer the request (nginx `if … return`),
    /// run before the rewrites.
    Checks(check::Checks),
    /// `upstream_path` and `rewrite:` rules on the request path.
    Rewrite(rewrite::Rewrites),
    /// Headers set, added and removed on the request to the upstream.
    RequestHeaders(headers::RequestHeaderSteps),
    /// Headers added, set and removed on the response to the client.
    ResponseHeaders(headers::ResponseHeaderSteps),
}

/// What answers a request once the steps ran: exactly one per route.
#[derive(Debug)]
pub enum Terminal {
    /// Proxy to the route's upstream (`Route::upstream`, known to exist).
    Proxy,
    /// Answer with a redirect to a rendered location.
    Redirect(answer::Redirect),
    /// Answer with a fixed status and a rendered body.
    Respond(answer::Respond),
    /// Serve a file from a directory.
    Files(files::Files),
}

/// A route's compiled plan: steps in order, then one terminal.
#[derive(Debug)]
pub struct Plan {
    /// Steps in execution order; empty for a route with no rules (the
    /// common case, which then costs one `is_empty` check per hook).
    pub steps: Box<[Step]>,
    /// What answers the request.
    pub terminal: Terminal,
}

impl Plan {
    /// The checks, if any.
    pub fn checks(&self) -> Option<&check::Checks> {
        self.steps.iter().find_map(|s| match s {
            Step::Checks(c) => Some(c),
            _ => None,
        })
    }

    /// The rewrite step, if any.
    pub fn rewrites(&self) -> Option<&rewrite::Rewrites> {
        self.steps.iter().find_map(|s| match s {
            Step::Rewrite(r) => Some(r),
            _ => None,
        })
    }

    /// The request header step, if any.
    pub fn request_headers(&self) -> Option<&headers::RequestHeaderSteps> {
        self.steps.iter().find_map(|s| match s {
            Step::RequestHeaders(h) => Some(h),
            _ => None,
        })
    }

    /// The response header step, if any.
    pub fn response_headers(&self) -> Option<&headers::ResponseHeaderSteps> {
        self.steps.iter().find_map(|s| match s {
            Step::ResponseHeaders(h) => Some(h),
            _ => None,
        })
    }
}

/// A site's own steps: the response headers of answers made for the site
/// before (or without) a route — 404 for an unknown path, the https redirect.
/// Route plans already hold these merged with their own.
#[derive(Debug, Default)]
pub struct SitePlan {
    /// The site-level `response_headers`, if any.
    pub response_headers: Option<headers::ResponseHeaderSteps>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_read_their_spans_from_the_subject() {
        let c = Captures {
            spans: vec![Some((0, 8)), Some((3, 8)), None],
        };
        assert_eq!(c.get(0, "/u/alice"), Some("/u/alice"));
        assert_eq!(c.get(1, "/u/alice"), Some("alice"));
        assert_eq!(c.get(2, "/u/alice"), None, "group did not take part");
        assert_eq!(c.get(3, "/u/alice"), None, "no such group");
        assert_eq!(c.get(1, "/u"), None, "span outside a shorter subject");
    }
}
