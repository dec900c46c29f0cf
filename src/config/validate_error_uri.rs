//! Compiles `error_pages.<status>.uri` (nginx `error_page 404 /404.html`
//! where `/404.html` is not a file but a path a proxied location answers)
//! into a [`Page`] whose target is a path of the site's own routes.
//! `proxy::error_uri` performs the internal redirect.

use super::diag::Diagnostics;
use super::validate::pos;
use crate::plan::error_pages::Page;
use serde_saphyr::Spanned;

/// The page of `uri:` (status left to the caller); `None` after reporting.
pub(super) fn uri_page(u: &Spanned<String>, ds: &mut Diagnostics) -> Option<Page> {
    let uri = u.value.trim();
    let path = uri.split_once('?').map_or(uri, |(p, _)| p);
    let bad = !path.starts_with('/')
        || uri.chars().any(|c| c.is_whitespace() || c.is_control())
        || path.split('/').any(|s| s == "..");
    if bad {
        ds.error(
            pos(u),
            format!("error page uri '{uri}' is not a request path"),
            "write a path this site's routes answer, like `/404.html` (a query may follow: `/error?code=404`)",
        );
        return None;
    }
    Some(Page {
        path: std::path::PathBuf::new(),
        body: bytes::Bytes::new(),
        content_type: http::HeaderValue::from_static("text/html"),
        status: None,
        uri: Some(uri.into()),
    })
}

#[cfg(test)]
mod tests {
    use crate::config::load_str;
    use std::path::Path;

    fn check(pages: &str) -> Result<crate::config::Config, String> {
        let yaml = format!(
            "listeners: {{http: {{address: \"127.0.0.1:8080\"}}}}\nsites:\n  s:\n    hosts: [a.test]\n    error_pages: {pages}\n    routes:\n      - {{path: /, upstream: u}}\nupstreams:\n  u: {{active: p, pools: {{p: [\"127.0.0.1:1\"]}}}}\n"
        );
        load_str(Path::new("g.yaml"), &yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn a_uri_page_compiles_with_its_optional_status() {
        let cfg = check("{404: {uri: /404.html}, 500: {uri: \"/oops?x=1\", status: 200}}")
            .expect("valid");
        let pages = cfg.sites[0].routes[0].plan.error_pages().expect("pages");
        assert_eq!(pages.uri(404), Some(("/404.html", 404)));
        assert_eq!(pages.uri(500), Some(("/oops?x=1", 200)));
        assert!(pages.get(404).is_none());
    }

    #[test]
    fn a_bad_uri_or_both_file_and_uri_are_errors_with_the_fix() {
        let e = check("{404: {uri: 404.html}}").expect_err("relative");
        assert!(
            e.contains("g.yaml:5:30: error page uri '404.html' is not a request path"),
            "{e}"
        );
        assert!(e.contains("like `/404.html`"), "{e}");
        let e = check("{404: {uri: /a/../b}}").expect_err("dots");
        assert!(e.contains("is not a request path"), "{e}");
        let e = check("{404: {uri: /x, file: /etc/hostname}}").expect_err("both");
        assert!(e.contains("has both `file` and `uri`"), "{e}");
    }
}
