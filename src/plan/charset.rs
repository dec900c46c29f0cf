//! nginx `charset`: names the character set of text answers that name none.
//!
//! nginx adds `; charset=NAME` to the `Content-Type` of an answer whose type
//! is one of `charset_types` (by default `text/html`, `text/xml`,
//! `text/plain`, `text/vnd.wap.wml`, `application/javascript`,
//! `application/rss+xml`) when that answer carries no charset yet — proxied,
//! files and greenlight's own answers alike. It only labels: no body is
//! converted (nginx's `source_charset` recoding is not offered), which is
//! what `charset utf-8` is used for in practice.

use pingora::http::ResponseHeader;

/// nginx's default `charset_types`.
const TYPES: [&str; 6] = [
    "text/html",
    "text/xml",
    "text/plain",
    "text/vnd.wap.wml",
    "application/javascript",
    "application/rss+xml",
];

/// A route's `charset:` (never `off`: that compiles to no step).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Charset {
    name: Box<str>,
}

impl Charset {
    /// `utf-8`, `koi8-r`…; `off` is `Ok(None)`. A name is an RFC 9110
    /// token, as a `charset=` parameter must be.
    pub fn parse(text: &str) -> Result<Option<Charset>, String> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if t.is_empty() || !t.bytes().all(token) {
            return Err(format!("'{text}' is not a charset name"));
        }
        Ok(Some(Charset { name: t.into() }))
    }

    /// The name as written.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Labels `resp` when its type is a text type without a charset.
    pub fn apply(&self, resp: &mut ResponseHeader) -> pingora::Result<()> {
        let labelled = resp
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|ct| self.label(ct));
        if let Some(v) = labelled {
            resp.insert_header(http::header::CONTENT_TYPE, v)?;
        }
        Ok(())
    }

    /// `ct` with `; charset=NAME` added, or `None` when it is not one of the
    /// types or already names a charset.
    fn label(&self, ct: &str) -> Option<String> {
        let mut parts = ct.split(';');
        let mime = parts.next()?.trim();
        if !TYPES.iter().any(|t| t.eq_ignore_ascii_case(mime)) {
            return None;
        }
        let named = parts.any(|p| {
            p.trim()
                .get(..8)
                .is_some_and(|k| k.eq_ignore_ascii_case("charset="))
        });
        (!named).then(|| format!("{}; charset={}", ct.trim_end(), self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf8() -> Charset {
        Charset::parse("utf-8").expect("valid").expect("on")
    }

    #[test]
    fn text_types_without_a_charset_are_labelled() {
        let c = utf8();
        assert_eq!(
            c.label("text/html").as_deref(),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(
            c.label("Application/JavaScript").as_deref(),
            Some("Application/JavaScript; charset=utf-8")
        );
        assert_eq!(c.label("text/plain; charset=latin1"), None, "already named");
        assert_eq!(c.label("text/html;Charset=UTF-8"), None);
        assert_eq!(c.label("application/json"), None, "not a charset type");
        assert_eq!(c.label("image/png"), None);
    }

    #[test]
    fn off_and_bad_names() {
        assert_eq!(Charset::parse("off"), Ok(None));
        assert!(Charset::parse("utf 8").is_err());
        assert!(Charset::parse("").is_err());
        assert_eq!(utf8().name(), "utf-8");
    }

    #[test]
    fn apply_sets_the_header() {
        let mut resp = ResponseHeader::build(200, None).expect("resp");
        resp.insert_header("content-type", "text/html").expect("ct");
        utf8().apply(&mut resp).expect("apply");
        assert_eq!(
            resp.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("text/html; charset=utf-8")
        );
    }
}
