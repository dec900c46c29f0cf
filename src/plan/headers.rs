//! Header steps: request headers to the upstream (`request_headers`: set,
//! add, remove — nginx `proxy_set_header`) and response headers to the client
//! (`response_headers`: add, set, remove — nginx `add_header` and
//! `proxy_hide_header`).
//!
//! Names are `HeaderName`s and fixed values `HeaderValue`s parsed at load;
//! only values with variables are rendered per request. Site-level and
//! route-level steps are merged at load ([`RequestHeaderSteps::merge`]): the
//! site's apply first, and a route entry for the same name replaces the
//! site's. nginx instead drops every inherited `add_header` as soon as a
//! location has one of its own; greenlight does not copy that trap.
//!
//! Response headers without `always` are added to the statuses nginx adds
//! them to (2xx success and redirects, [`applies`]); with `always`, to every
//! answer, including the ones greenlight makes itself (404, 502, redirects,
//! fixed answers). An empty rendered value means "no header", as in nginx.

use super::template::{Scope, Segment, Template, TemplateError, Var};
use super::vars::VarCx;
use http::{HeaderName, HeaderValue};
use pingora::Result;
use pingora::http::{RequestHeader, ResponseHeader};

/// A header value: fixed (parsed at load), or a template rendered per request.
#[derive(Clone, Debug)]
pub enum HeaderVal {
    /// No variables: the value as sent.
    Fixed(HeaderValue),
    /// `$remote_addr` alone, the commonest variable header (nginx's
    /// `proxy_set_header X-Real-IP $remote_addr`): written from the client
    /// address without the template machinery, which cost about 1.1k
    /// instructions per request for it (callgrind, BENCHMARKS.md).
    ClientIp,
    /// Rendered for each request.
    Template(Template),
}

impl HeaderVal {
    /// Parses `text` as a header value template.
    pub fn compile(text: &str, scope: &Scope<'_>) -> Result<HeaderVal, TemplateError> {
        let t = Template::parse(text, scope)?;
        if let [Segment::Var(Var::RemoteAddr)] = t.segments() {
            return Ok(HeaderVal::ClientIp);
        }
        match t.as_literal() {
            Some(lit) => HeaderValue::from_str(lit)
                .map(HeaderVal::Fixed)
                .map_err(|_| TemplateError {
                    offset: 0,
                    what: "this is not a valid header value (control characters or line breaks)"
                        .into(),
                }),
            None => Ok(HeaderVal::Template(t)),
        }
    }

    /// The value for this request; `None` when it renders empty (or into
    /// bytes a header cannot carry, which only a variable can produce).
    /// `cx` is called only for a template; `client` only for
    /// [`HeaderVal::ClientIp`].
    pub fn value<'c>(
        &self,
        client: impl FnOnce() -> Option<std::net::IpAddr>,
        cx: impl FnOnce() -> VarCx<'c>,
    ) -> Option<HeaderValue> {
        match self {
            HeaderVal::Fixed(v) => (!v.is_empty()).then(|| v.clone()),
            HeaderVal::ClientIp => client().and_then(super::vars::ip_header_value),
            // Copied once into a value of its exact size: a `String` handed
            // over whole would cost a second allocation in `Bytes` (its
            // capacity is not its length) and a free.
            HeaderVal::Template(t) => t.render_with(&cx(), |s| {
                (!s.is_empty())
                    .then(|| HeaderValue::from_bytes(s.as_bytes()).ok())
                    .flatten()
            }),
        }
    }
}

/// Whether a response header is added to an answer of `status`: always with
/// `always`, else on the statuses nginx's `add_header` uses.
pub fn applies(status: u16, always: bool) -> bool {
    always
        || matches!(
            status,
            200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308
        )
}

/// Header entries to set and add and names to remove, for one direction:
/// [`RequestHeaderSteps`] or [`ResponseHeaderSteps`].
#[derive(Clone, Debug)]
pub struct HeaderSteps<E> {
    /// Replace (or create); an empty rendered value removes the header.
    pub set: Vec<E>,
    /// Append another field.
    pub add: Vec<E>,
    /// Remove (for responses, nginx `proxy_hide_header`).
    pub remove: Vec<HeaderName>,
}

impl<E> Default for HeaderSteps<E> {
    fn default() -> Self {
        HeaderSteps {
            set: Vec::new(),
            add: Vec::new(),
            remove: Vec::new(),
        }
    }
}

/// A `set`/`add` entry: what [`HeaderSteps::merge`] compares by.
pub trait HeaderEntry: Clone {
    /// The header it writes.
    fn name(&self) -> &HeaderName;
}

impl HeaderEntry for (HeaderName, HeaderVal) {
    fn name(&self) -> &HeaderName {
        &self.0
    }
}

impl<E: HeaderEntry> HeaderSteps<E> {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }

    /// Site steps, then route steps; a name the route sets or removes drops
    /// the site's entries for it.
    pub fn merge(site: &Self, route: &Self) -> Self {
        let overridden =
            |n: &HeaderName| route.set.iter().any(|r| r.name() == n) || route.remove.contains(n);
        let keep = |list: &[E]| -> Vec<E> {
            list.iter()
                .filter(|e| !overridden(e.name()))
                .cloned()
                .collect()
        };
        let mut out = HeaderSteps {
            set: keep(&site.set),
            add: keep(&site.add),
            remove: site.remove.clone(),
        };
        out.set.extend(route.set.iter().cloned());
        out.add.extend(route.add.iter().cloned());
        out.remove.extend(
            route
                .remove
                .iter()
                .filter(|n| !site.remove.contains(n))
                .cloned(),
        );
        out
    }
}

/// Request headers to the upstream, applied after greenlight's own
/// forwarding headers (so a rule may replace `X-Forwarded-For` or set
/// `X-Real-IP`): remove, then set, then add.
pub type RequestHeaderSteps = HeaderSteps<(HeaderName, HeaderVal)>;

impl RequestHeaderSteps {
    /// Applies the steps to the request going upstream; `cx` is called at
    /// most once, and only if a value has variables other than a lone
    /// `$remote_addr` (which reads `client`).
    pub fn apply<'c>(
        &self,
        req: &mut RequestHeader,
        client: impl Fn() -> Option<std::net::IpAddr>,
        cx: impl Fn() -> VarCx<'c>,
    ) -> Result<()> {
        let once = std::cell::OnceCell::new();
        let cx = || *once.get_or_init(&cx);
        for n in &self.remove {
            req.remove_header(n);
        }
        for (n, v) in &self.set {
            match v.value(&client, cx) {
                Some(v) => req.insert_header(n, v)?,
                None => {
                    req.remove_header(n);
                }
            }
        }
        for (n, v) in &self.add {
            if let Some(v) = v.value(&client, cx) {
                req.append_header(n, v)?;
            }
        }
        Ok(())
    }
}

/// One response header entry.
#[derive(Clone, Debug)]
pub struct ResponseHeaderEntry {
    /// The name.
    pub name: HeaderName,
    /// The value.
    pub value: HeaderVal,
    /// Also on error answers and the ones greenlight makes.
    pub always: bool,
}

impl HeaderEntry for ResponseHeaderEntry {
    fn name(&self) -> &HeaderName {
        &self.name
    }
}

/// Response headers to the client: remove (from the upstream's answer),
/// then set, then add (nginx `add_header`).
pub type ResponseHeaderSteps = HeaderSteps<ResponseHeaderEntry>;

impl ResponseHeaderSteps {
    /// The removed names, shared, for Pingora to leave out as it parses an
    /// HTTP/1 upstream's answer (an insert and a removal saved, ~450
    /// instructions per request). The config never lets a rule remove a
    /// framing or connection field (`validate_steps::MANAGED`), and Pingora
    /// refuses a list that names one. `None` when nothing is removed.
    pub fn hidden_at_parse(&self) -> Option<std::sync::Arc<[HeaderName]>> {
        (!self.remove.is_empty()).then(|| self.remove.as_slice().into())
    }

    /// Applies the steps to a response of status `resp.status`; `cx` is
    /// called at most once, and only if a value has variables other than a
    /// lone `$remote_addr` (which reads `client`).
    pub fn apply<'c>(
        &self,
        resp: &mut ResponseHeader,
        client: impl Fn() -> Option<std::net::IpAddr>,
        cx: impl Fn() -> VarCx<'c>,
    ) -> Result<()> {
        let once = std::cell::OnceCell::new();
        let cx = || *once.get_or_init(&cx);
        let status = resp.status.as_u16();
        for n in &self.remove {
            resp.remove_header(n);
        }
        for h in self.set.iter().filter(|h| applies(status, h.always)) {
            match h.value.value(&client, cx) {
                Some(v) => resp.insert_header(&h.name, v)?,
                None => {
                    resp.remove_header(&h.name);
                }
            }
        }
        for h in self.add.iter().filter(|h| applies(status, h.always)) {
            if let Some(v) = h.value.value(&client, cx) {
                resp.append_header(&h.name, v)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn val(t: &str) -> HeaderVal {
        HeaderVal::compile(t, &Scope::default()).expect("value")
    }
    fn name(n: &str) -> HeaderName {
        HeaderName::from_bytes(n.as_bytes()).expect("name")
    }
    fn get<'a>(h: &'a http::HeaderMap, n: &str) -> Vec<&'a str> {
        h.get_all(n)
            .iter()
            .map(|v| v.to_str().expect("text"))
            .collect()
    }

    #[test]
    fn fixed_values_are_parsed_once_and_bad_ones_refused() {
        assert!(matches!(val("DENY"), HeaderVal::Fixed(_)));
        assert!(matches!(val("$host"), HeaderVal::Template(_)));
        assert!(HeaderVal::compile("a\nb", &Scope::default()).is_err());
    }

    #[test]
    fn request_steps_remove_then_set_then_add_and_empty_removes() {
        let steps = RequestHeaderSteps {
            set: vec![
                (name("host"), val("$host:$server_port")),
                (name("x-empty"), val("")),
            ],
            add: vec![(name("x-trace"), val("gl"))],
            remove: vec![name("x-debug")],
        };
        let mut r = RequestHeader::build("GET", b"/", None).expect("req");
        for (k, v) in [
            ("Host", "app.test"),
            ("X-Debug", "1"),
            ("X-Empty", "x"),
            ("X-Trace", "client"),
        ] {
            r.append_header(k, v).expect("h");
        }
        let seen = r.clone();
        let cx = VarCx {
            server_port: Some(8080),
            ..VarCx::of_request(&seen)
        };
        steps.apply(&mut r, || None, || cx).expect("apply");
        assert_eq!(get(&r.headers, "host"), ["app.test:8080"]);
        assert!(get(&r.headers, "x-debug").is_empty());
        assert!(get(&r.headers, "x-empty").is_empty());
        assert_eq!(get(&r.headers, "x-trace"), ["client", "gl"]);
    }

    #[test]
    fn response_headers_without_always_skip_errors() {
        let h = |n: &str, v: &str, always| ResponseHeaderEntry {
            name: name(n),
            value: val(v),
            always,
        };
        let steps = ResponseHeaderSteps {
            add: vec![h("strict-transport-security", "max-age=1", false)],
            set: vec![h("x-frame-options", "DENY", true)],
            remove: vec![name("x-powered-by")],
        };
        let req = RequestHeader::build("GET", b"/", None).expect("req");
        let cx = VarCx::of_request(&req);
        for (status, hsts) in [(200, true), (304, true), (404, false), (502, false)] {
            let mut resp = ResponseHeader::build(status, None).expect("resp");
            resp.append_header("X-Powered-By", "php").expect("h");
            resp.append_header("X-Frame-Options", "SAMEORIGIN")
                .expect("h");
            steps.apply(&mut resp, || None, || cx).expect("apply");
            assert_eq!(
                !get(&resp.headers, "strict-transport-security").is_empty(),
                hsts,
                "{status}"
            );
            assert_eq!(get(&resp.headers, "x-frame-options"), ["DENY"], "{status}");
            assert!(get(&resp.headers, "x-powered-by").is_empty());
        }
    }

    #[test]
    fn variables_are_gathered_once_and_only_for_templates() {
        let fixed = ResponseHeaderSteps {
            add: vec![ResponseHeaderEntry {
                name: name("strict-transport-security"),
                value: val("max-age=1"),
                always: false,
            }],
            ..ResponseHeaderSteps::default()
        };
        let mut resp = ResponseHeader::build(200, None).expect("resp");
        fixed
            .apply(
                &mut resp,
                || panic!("no template: no address"),
                || panic!("no template: no variables"),
            )
            .expect("apply");
        assert_eq!(
            get(&resp.headers, "strict-transport-security"),
            ["max-age=1"]
        );

        let steps = RequestHeaderSteps {
            set: vec![
                (name("x-real-ip"), val("$remote_addr")),
                (name("x-port"), val("$server_port")),
            ],
            add: vec![(name("x-via"), val("gl $remote_addr"))],
            remove: Vec::new(),
        };
        let seen = RequestHeader::build("GET", b"/", None).expect("req");
        let calls = std::cell::Cell::new(0);
        let mut r = RequestHeader::build("GET", b"/", None).expect("req");
        let ip_reads = std::cell::Cell::new(0);
        let client = || {
            ip_reads.set(ip_reads.get() + 1);
            "192.0.2.7".parse().ok()
        };
        steps
            .apply(&mut r, client, || {
                calls.set(calls.get() + 1);
                VarCx {
                    client_ip: "192.0.2.7".parse().ok(),
                    server_port: Some(8443),
                    ..VarCx::of_request(&seen)
                }
            })
            .expect("apply");
        // `$remote_addr` alone reads the address, not the variables.
        assert!(matches!(val("$remote_addr"), HeaderVal::ClientIp));
        assert!(matches!(val("${remote_addr}"), HeaderVal::ClientIp));
        assert_eq!((calls.get(), ip_reads.get()), (1, 1));
        assert_eq!(get(&r.headers, "x-real-ip"), ["192.0.2.7"]);
        assert_eq!(get(&r.headers, "x-port"), ["8443"]);
        assert_eq!(get(&r.headers, "x-via"), ["gl 192.0.2.7"]);
        // HTTP/1: the names go out in the header's style, title case here
        // (vendor/pingora-http/src/case_forms.rs).
        let mut wire = Vec::new();
        r.header_to_h1_wire(&mut wire);
        let wire = String::from_utf8(wire).expect("text");
        assert!(wire.contains("X-Real-Ip: 192.0.2.7\r\n"), "{wire}");
    }

    #[test]
    fn route_entries_replace_the_sites_for_the_same_name() {
        let site = RequestHeaderSteps {
            set: vec![(name("host"), val("a")), (name("x-a"), val("1"))],
            add: vec![(name("x-b"), val("1"))],
            remove: vec![name("x-c")],
        };
        let route = RequestHeaderSteps {
            set: vec![(name("host"), val("b"))],
            add: vec![(name("x-d"), val("1"))],
            remove: vec![name("x-b"), name("x-c")],
        };
        let m = RequestHeaderSteps::merge(&site, &route);
        let names = |v: &[(HeaderName, HeaderVal)]| -> Vec<String> {
            v.iter().map(|(n, _)| n.to_string()).collect()
        };
        assert_eq!(names(&m.set), ["x-a", "host"]);
        assert!(matches!(&m.set[1].1, HeaderVal::Fixed(v) if v == "b"));
        assert_eq!(names(&m.add), ["x-d"]);
        assert_eq!(m.remove, [name("x-c"), name("x-b")]);
    }
}
