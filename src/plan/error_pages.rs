//! Error pages (nginx `error_page`): the body greenlight sends, by status,
//! instead of its short plain-text page — for every answer it makes itself
//! (upstream down or refused 502, timeout 504, no healthy server 503, a
//! files route's 404, a limit's 429, access answers, `respond:`), and, with
//! `intercept_errors` (nginx `proxy_intercept_errors on`), for the
//! upstream's own answers with a listed status.
//!
//! The files are read at load (a missing file is a config error; a reload
//! reads them again), so sending a page is a copy of shared bytes. A page
//! keeps the status it replaces unless it names another (nginx
//! `error_page 404 =200 /x`).

use bytes::Bytes;
use http::HeaderValue;
use std::path::PathBuf;

/// One page.
#[derive(Clone, Debug)]
pub struct Page {
    /// The file it was read from.
    pub path: PathBuf,
    /// The file's bytes.
    pub body: Bytes,
    /// `Content-Type`, from the file's extension.
    pub content_type: HeaderValue,
    /// The status to answer with instead of the original (nginx's `=CODE`).
    pub status: Option<u16>,
    /// `uri:` instead of a file: the path (and maybe `?query`) the site's
    /// routes answer, nginx's internal redirect (`body` is then empty;
    /// see `proxy::error_uri`).
    pub uri: Option<Box<str>>,
}

/// A site's or route's pages (a route's merged over its site's).
#[derive(Clone, Debug, Default)]
pub struct ErrorPages {
    /// Status → page, sorted by status.
    pages: Vec<(u16, Page)>,
    /// Also replace the upstream's answers with these statuses.
    pub intercept: bool,
}

impl ErrorPages {
    /// Pages from `(status, page)` pairs; a later pair replaces an earlier
    /// one of the same status.
    pub fn new(pairs: impl IntoIterator<Item = (u16, Page)>, intercept: bool) -> ErrorPages {
        let mut pages: Vec<(u16, Page)> = Vec::new();
        for (s, p) in pairs {
            match pages.iter_mut().find(|(k, _)| *k == s) {
                Some(slot) => slot.1 = p,
                None => pages.push((s, p)),
            }
        }
        pages.sort_by_key(|(s, _)| *s);
        ErrorPages { pages, intercept }
    }

    /// The file page for `status`, if one is configured.
    pub fn get(&self, status: u16) -> Option<&Page> {
        self.any(status).filter(|p| p.uri.is_none())
    }

    /// The `uri:` page for `status`, if one is configured: the path and
    /// the status to answer with (nginx's `=CODE`, else `status`).
    pub fn uri(&self, status: u16) -> Option<(&str, u16)> {
        let p = self.any(status)?;
        Some((p.uri.as_deref()?, p.status.unwrap_or(status)))
    }

    fn any(&self, status: u16) -> Option<&Page> {
        self.pages
            .binary_search_by_key(&status, |(s, _)| *s)
            .ok()
            .map(|i| &self.pages[i].1)
    }

    /// Whether no page is configured.
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// The pages, by status.
    pub fn iter(&self) -> impl Iterator<Item = (u16, &Page)> {
        self.pages.iter().map(|(s, p)| (*s, p))
    }

    /// `self` (a site's) with `own` (a route's) on top: the route's page
    /// of a status wins; the route's `intercept` if it set one.
    pub fn merge(&self, own: &ErrorPages, intercept: Option<bool>) -> ErrorPages {
        ErrorPages::new(
            self.iter().chain(own.iter()).map(|(s, p)| (s, p.clone())),
            intercept.unwrap_or(self.intercept),
        )
    }
}

/// The `Content-Type` of a page file, by its extension (`text/html` for
/// `.html`; text types get `charset=utf-8`).
pub fn content_type(path: &std::path::Path) -> HeaderValue {
    let mime = mime_guess::from_path(path).first_or(mime_guess::mime::TEXT_HTML);
    let text = if mime.type_() == mime_guess::mime::TEXT && mime.get_param("charset").is_none() {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    };
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("text/html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(body: &'static str) -> Page {
        Page {
            path: PathBuf::from(body),
            body: Bytes::from_static(body.as_bytes()),
            content_type: HeaderValue::from_static("text/html"),
            status: None,
            uri: None,
        }
    }

    #[test]
    fn a_route_page_replaces_the_sites_page_of_its_status() {
        let site = ErrorPages::new([(502, page("s502")), (404, page("s404"))], true);
        let route = ErrorPages::new([(404, page("r404"))], false);
        let m = site.merge(&route, None);
        assert_eq!(m.get(404).map(|p| &p.body[..]), Some(&b"r404"[..]));
        assert_eq!(m.get(502).map(|p| &p.body[..]), Some(&b"s502"[..]));
        assert!(m.get(500).is_none());
        assert!(m.intercept, "the site's intercept when the route sets none");
        assert!(!site.merge(&route, Some(false)).intercept);
    }

    #[test]
    fn uri_pages_are_apart_from_file_pages_and_merge_the_same_way() {
        let uri = |u: &str, status| Page {
            uri: Some(u.into()),
            status,
            ..page("")
        };
        let site = ErrorPages::new(
            [
                (404, uri("/404.html", None)),
                (500, uri("/oops", Some(200))),
            ],
            false,
        );
        assert_eq!(site.uri(404), Some(("/404.html", 404)));
        assert_eq!(site.uri(500), Some(("/oops", 200)), "nginx's =200");
        assert!(site.get(404).is_none(), "no file page to send");
        let m = site.merge(&ErrorPages::new([(404, page("r404"))], false), None);
        assert!(m.uri(404).is_none(), "the route's file page wins");
        assert!(m.get(404).is_some());
    }

    #[test]
    fn content_types_come_from_the_extension() {
        let ct = |p: &str| content_type(std::path::Path::new(p));
        assert_eq!(ct("/e/50x.html"), "text/html; charset=utf-8");
        assert_eq!(ct("/e/x.json"), "application/json");
        assert_eq!(ct("/e/x.txt"), "text/plain; charset=utf-8");
        assert_eq!(ct("/e/noext"), "text/html; charset=utf-8");
    }
}
