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

pub mod access;
pub mod alias;
pub mod answer;
pub mod charset;
pub mod check;
pub mod client_ip;
pub mod compress;
pub mod error_pages;
pub mod expires;
pub mod files;
pub mod headers;
pub mod htpasswd;
pub mod limits;
pub mod location;
pub mod map;
pub mod pattern;
pub mod proxy_redirect;
pub mod retry;
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
#[derive(Clone, Debug)]
pub struct Captures(Spans);

/// Where the spans are kept.
#[derive(Clone, Debug)]
enum Spans {
    /// Listed (tests, and the default: no groups).
    List(Vec<Option<(usize, usize)>>),
    /// The regex's own slots, as a search filled them: read in place, not
    /// copied into a list (one allocation less per match; BENCHMARKS.md).
    Regex(regex::CaptureLocations),
    /// A prefix-and-rest match (`^/app/(.*)$`, see `rewrite::PrefixRest`):
    /// group 0 is `0..end`, group 1 is `start..end`. No allocation.
    Rest {
        /// Where group 1 starts (the prefix's length).
        start: usize,
        /// Where both groups end.
        end: usize,
    },
}

impl Default for Captures {
    fn default() -> Self {
        Captures(Spans::List(Vec::new()))
    }
}

impl PartialEq for Captures {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && (0..self.len()).all(|i| self.span(i) == other.span(i))
    }
}

impl Eq for Captures {}

impl Captures {
    /// Captures with these spans.
    pub fn from_spans(spans: Vec<Option<(usize, usize)>>) -> Captures {
        Captures(Spans::List(spans))
    }

    /// The captures a `captures_read` of a regex left in `locs`.
    pub fn from_locations(locs: regex::CaptureLocations) -> Captures {
        Captures(Spans::Regex(locs))
    }

    /// A whole match `0..end` whose group 1 is `start..end`.
    pub fn rest(start: usize, end: usize) -> Captures {
        Captures(Spans::Rest { start, end })
    }

    /// How many groups, the whole match included.
    pub fn len(&self) -> usize {
        match &self.0 {
            Spans::List(l) => l.len(),
            Spans::Regex(r) => r.len(),
            Spans::Rest { .. } => 2,
        }
    }

    /// True when there is no group at all (not even the whole match).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The span of group `i`.
    pub fn span(&self, i: usize) -> Option<(usize, usize)> {
        match &self.0 {
            Spans::List(l) => *l.get(i)?,
            Spans::Regex(r) => r.get(i),
            Spans::Rest { start, end } => match i {
                0 => Some((0, *end)),
                1 => Some((*start, *end)),
                _ => None,
            },
        }
    }

    /// Every span, in group order.
    pub fn spans(&self) -> Vec<Option<(usize, usize)>> {
        (0..self.len()).map(|i| self.span(i)).collect()
    }

    /// The text of group `i` within `subject` (the path that was matched);
    /// `None` for a group that did not match or does not exist.
    pub fn get<'s>(&self, i: usize, subject: &'s str) -> Option<&'s str> {
        let (start, end) = self.span(i)?;
        subject.get(start..end)
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
    /// `expires:`: `Expires` and `Cache-Control` on successful answers.
    Expires(expires::Expires),
    /// `charset:`: the charset named on text answers that name none.
    Charset(charset::Charset),
    /// `limit_req` / `limit_conn`: run after the rewrites, before the terminal.
    Limits(limits::Limits),
    /// `error_pages`: bodies for error answers (the site's merged in).
    ErrorPages(std::sync::Arc<error_pages::ErrorPages>),
    /// `access:`: IP rules, basic auth, forward auth (after the rewrites).
    Access(access::Access),
    /// `compress:`: responses compressed on the way out, precompressed siblings.
    Compress(compress::Compress),
    /// `rewrite_location:`: the upstream's `Location`/`Refresh` rewritten.
    ProxyRedirect(std::sync::Arc<proxy_redirect::ProxyRedirect>),
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
    /// Private: `slots` indexes it ([`Plan::new`], [`Plan::steps`]).
    steps: Box<[Step]>,
    /// What answers the request.
    pub terminal: Terminal,
    /// Per kind of step ([`Step::kind`]), its index in `steps` (`u8::MAX`:
    /// none): the hooks ask for a kind about a dozen times per request, and
    /// a search of the steps each time cost more than the lookup.
    slots: [u8; STEP_KINDS],
    /// The response fields the route removes that an HTTP/1 upstream's
    /// answer is read without ([`headers::ResponseHeaderSteps::hidden_at_parse`]).
    hidden: Option<std::sync::Arc<[http::HeaderName]>>,
}

/// The kinds of [`Step`], their accessors on [`Plan`] and its slot table,
/// from one list: a kind's slot is its place in the list.
macro_rules! step_kinds {
    ($($variant:ident => $(#[$doc:meta])* $name:ident -> $ty:ty, $val:ident => $out:expr;)*) => {
        /// A kind of [`Step`]; its number is its slot in [`Plan::slots`].
        #[derive(Clone, Copy)]
        enum Kind {
            $($variant,)*
        }

        /// How many kinds of [`Step`] there are.
        const STEP_KINDS: usize = [$(Kind::$variant),*].len();

        impl Step {
            /// This step's kind.
            fn kind(&self) -> Kind {
                match self {
                    $(Step::$variant(_) => Kind::$variant,)*
                }
            }
        }

        impl Plan {
            $(
                $(#[$doc])*
                pub fn $name(&self) -> Option<$ty> {
                    match self.step(Kind::$variant)? {
                        Step::$variant($val) => Some($out),
                        _ => None,
                    }
                }
            )*
        }
    };
}

step_kinds! {
    Checks => /// The checks, if any.
        checks -> &check::Checks, c => c;
    Rewrite => /// The rewrite step, if any.
        rewrites -> &rewrite::Rewrites, r => r;
    RequestHeaders => /// The request header step, if any.
        request_headers -> &headers::RequestHeaderSteps, h => h;
    ResponseHeaders => /// The response header step, if any.
        response_headers -> &headers::ResponseHeaderSteps, h => h;
    Expires => /// The `expires` step, if any.
        expires -> expires::Expires, e => *e;
    Charset => /// The `charset` step, if any.
        charset -> &charset::Charset, c => c;
    Limits => /// The limits step, if any.
        limits -> &limits::Limits, l => l;
    ErrorPages => /// The error pages, if any.
        error_pages -> &std::sync::Arc<error_pages::ErrorPages>, p => p;
    Access => /// The access control step, if any.
        access -> &access::Access, a => a;
    Compress => /// The compression step, if any.
        compress -> &compress::Compress, c => c;
    ProxyRedirect => /// The `rewrite_location` rules, if any.
        proxy_redirect -> &std::sync::Arc<proxy_redirect::ProxyRedirect>, r => r;
}

impl Plan {
    /// A plan of `steps` in this order, then `terminal`.
    pub fn new(steps: Vec<Step>, terminal: Terminal) -> Plan {
        let mut slots = [u8::MAX; STEP_KINDS];
        for (i, step) in steps.iter().enumerate().rev() {
            if let (Some(slot), Ok(i)) = (slots.get_mut(step.kind() as usize), u8::try_from(i)) {
                *slot = i;
            }
        }
        let mut plan = Plan {
            steps: steps.into(),
            terminal,
            slots,
            hidden: None,
        };
        plan.hidden = plan
            .response_headers()
            .and_then(headers::ResponseHeaderSteps::hidden_at_parse);
        plan
    }

    /// The response fields an HTTP/1 upstream's answer is read without
    /// (removed by the route, and neither framing nor connection fields).
    pub fn hidden(&self) -> Option<&std::sync::Arc<[http::HeaderName]>> {
        self.hidden.as_ref()
    }

    /// The steps in execution order.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The plan's parts, to build another.
    pub fn into_parts(self) -> (Vec<Step>, Terminal) {
        (self.steps.into_vec(), self.terminal)
    }

    /// The step of kind `kind`, if the plan has one.
    #[inline]
    fn step(&self, kind: Kind) -> Option<&Step> {
        match *self.slots.get(kind as usize)? {
            u8::MAX => None,
            i => self.steps.get(usize::from(i)),
        }
    }
}

/// A site's own steps: the response headers of answers made for the site
/// before (or without) a route — 404 for an unknown path, the https redirect.
/// Route plans already hold these merged with their own.
#[derive(Debug, Default)]
pub struct SitePlan {
    /// The site-level `response_headers`, if any.
    pub response_headers: Option<headers::ResponseHeaderSteps>,
    /// The site-level `error_pages`, if any.
    pub error_pages: Option<std::sync::Arc<error_pages::ErrorPages>>,
    /// `plain_http: {response_headers}`: on the plain-HTTP redirect only,
    /// after the site's own.
    pub plain_redirect_headers: Option<headers::ResponseHeaderSteps>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_finds_each_kind_of_step_and_the_first_of_two() {
        let cs = |n: &str| Step::Charset(charset::Charset::parse(n).expect("ok").expect("on"));
        let headers = Step::RequestHeaders(headers::RequestHeaderSteps::default());
        let p = Plan::new(vec![cs("utf-8"), headers, cs("koi8-r")], Terminal::Proxy);
        assert!(p.request_headers().is_some());
        assert_eq!(
            p.charset(),
            charset::Charset::parse("utf-8").expect("ok").as_ref()
        );
        for none in [
            p.checks().is_some(),
            p.rewrites().is_some(),
            p.response_headers().is_some(),
            p.expires().is_some(),
            p.limits().is_some(),
            p.error_pages().is_some(),
            p.access().is_some(),
            p.compress().is_some(),
            p.proxy_redirect().is_some(),
        ] {
            assert!(!none);
        }
        let empty = Plan::new(Vec::new(), Terminal::Proxy);
        assert!(empty.charset().is_none() && empty.steps().is_empty());
    }

    #[test]
    fn captures_read_their_spans_from_the_subject() {
        let c = Captures::from_spans(vec![Some((0, 8)), Some((3, 8)), None]);
        assert_eq!(c.get(0, "/u/alice"), Some("/u/alice"));
        assert_eq!(c.get(1, "/u/alice"), Some("alice"));
        assert_eq!(c.get(2, "/u/alice"), None, "group did not take part");
        assert_eq!(c.get(3, "/u/alice"), None, "no such group");
        assert_eq!(c.get(1, "/u"), None, "span outside a shorter subject");
        let re = regex::Regex::new("^/u/(?<name>[a-z]+)(/x)?$").expect("regex");
        let mut locs = re.capture_locations();
        assert!(re.captures_read(&mut locs, "/u/alice").is_some());
        let kept = Captures::from_locations(locs);
        assert_eq!(kept, c, "the regex's own slots read as the same spans");
        assert_eq!(kept.get(1, "/u/alice"), Some("alice"));
        assert_eq!(kept.get(2, "/u/alice"), None);
        assert_eq!(kept.clone().spans(), c.spans());
    }
}
