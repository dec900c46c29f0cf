//! Answers greenlight gives itself: `redirect: {to, status}` (nginx
//! `return 301 URL`) and `respond: {status, body, content_type}` (nginx
//! `return 200 'ok'`, health endpoints, `.well-known` JSON).
//!
//! Both hold templates parsed at load; rendering them is the only work a
//! request does. A `respond` body may also be bytes given as base64
//! (`body_base64:`, decoded at load): nginx's `empty_gif` is the 43-byte
//! GIF written that way, and any small binary answer (a pixel, an icon)
//! fits without a `files:` directory. A relative location is made absolute like nginx does
//! (`absolute_redirect on`): `$scheme://$host`, plus the port the request
//! arrived on unless it is the scheme's default.

use super::template::Template;
use super::vars::VarCx;
use http::HeaderValue;

/// Statuses a `redirect:` may use.
pub const REDIRECT_STATUSES: [u16; 5] = [301, 302, 303, 307, 308];

/// `redirect:`: a status and a location template.
#[derive(Debug)]
pub struct Redirect {
    /// The location (absolute, or a path made absolute).
    pub to: Template,
    /// One of [`REDIRECT_STATUSES`].
    pub status: u16,
}

/// `respond:`: a fixed answer.
#[derive(Debug)]
pub struct Respond {
    /// The status code (200..=599).
    pub status: u16,
    /// The body; `None` for greenlight's short page of the status
    /// (`404 Not Found`), or nothing for 204/304.
    pub body: Option<Body>,
    /// `Content-Type` of the body.
    pub content_type: HeaderValue,
}

/// A `respond` body: text rendered per request, or fixed bytes.
#[derive(Debug)]
pub enum Body {
    /// `body:`, a template.
    Text(Template),
    /// `body_base64:`, decoded at load; sent as it is (a cheap `Bytes`
    /// clone per request, no copy).
    Binary(bytes::Bytes),
}

/// The default `respond.content_type`.
pub const DEFAULT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

impl Respond {
    /// The body for this request.
    pub fn body(&self, cx: &VarCx<'_>) -> bytes::Bytes {
        match &self.body {
            Some(Body::Text(t)) => t.render(cx).into(),
            Some(Body::Binary(b)) => b.clone(),
            None if matches!(self.status, 204 | 304) || self.status < 200 => bytes::Bytes::new(),
            None => format!(
                "{} {}\n",
                self.status,
                http::StatusCode::from_u16(self.status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("")
            )
            .into(),
        }
    }
}

impl Redirect {
    /// The absolute location for this request.
    pub fn location(&self, cx: &VarCx<'_>) -> String {
        absolute(self.to.render(cx), cx)
    }
}

/// `location` made absolute (when it is a path) with the request's scheme,
/// host and non-default port, as nginx's `absolute_redirect` does.
pub fn absolute(location: String, cx: &VarCx<'_>) -> String {
    if !location.starts_with('/') || location.starts_with("//") {
        return location;
    }
    let mut out = String::with_capacity(location.len() + 48);
    out.push_str(if cx.tls { "https://" } else { "http://" });
    cx.write(&super::template::Var::Host, &mut out);
    match (cx.tls, cx.server_port) {
        (_, None) | (false, Some(80)) | (true, Some(443)) => {}
        (_, Some(p)) => {
            out.push(':');
            out.push_str(&p.to_string());
        }
    }
    out.push_str(&location);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::template::Scope;
    use pingora::http::RequestHeader;

    fn t(s: &str) -> Template {
        Template::parse(s, &Scope::default()).expect("template")
    }

    #[test]
    fn relative_locations_get_scheme_host_and_a_non_default_port() {
        let mut req = RequestHeader::build("GET", b"/old?x=1", None).expect("req");
        req.insert_header("Host", "App.test:8080").expect("h");
        let cx = VarCx {
            server_port: Some(8080),
            ..VarCx::of_request(&req)
        };
        let r = Redirect {
            to: t("/new$is_args$args"),
            status: 301,
        };
        assert_eq!(r.location(&cx), "http://app.test:8080/new?x=1");
        let tls = VarCx {
            tls: true,
            server_port: Some(443),
            ..cx
        };
        assert_eq!(r.location(&tls), "https://app.test/new?x=1");
        let r = Redirect {
            to: t("https://$host$request_uri"),
            status: 308,
        };
        assert_eq!(r.location(&cx), "https://app.test/old?x=1");
    }

    #[test]
    fn respond_renders_its_body_or_a_short_status_page() {
        let req = RequestHeader::build("GET", b"/", None).expect("req");
        let cx = VarCx::of_request(&req);
        let mk = |status, body: Option<&str>| Respond {
            status,
            body: body.map(|b| Body::Text(t(b))),
            content_type: HeaderValue::from_static(DEFAULT_CONTENT_TYPE),
        };
        assert_eq!(mk(200, Some("ok $request_method\n")).body(&cx), "ok GET\n");
        assert_eq!(mk(404, None).body(&cx), "404 Not Found\n");
        assert_eq!(mk(204, None).body(&cx), "");
        let gif = Respond {
            status: 200,
            body: Some(Body::Binary(bytes::Bytes::from_static(b"GIF89a\0\xff"))),
            content_type: HeaderValue::from_static("image/gif"),
        };
        assert_eq!(gif.body(&cx), &b"GIF89a\0\xff"[..]);
    }
}
