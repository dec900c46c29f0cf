//! The rate-limit and error-page keys as written: top-level
//! `limit_req_zones` / `limit_conn_zones`, and `limit_req`, `limit_conn`,
//! `error_pages` on sites and routes (serde structs; see [`super::file`] for
//! the conventions). Compiled by `validate_limits` and `validate_steps`.

use super::file::Scalar;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

/// `limit_req_zones.<name>`: nginx `limit_req_zone KEY zone=NAME:SIZE rate=R`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRateZone {
    /// What requests are counted by (a template; default `$remote_addr`).
    pub key: Option<Spanned<String>>,
    /// `10r/s`, `30r/m`.
    pub rate: Spanned<Scalar>,
    /// Memory for the keys' state (default `1m`).
    pub size: Option<Spanned<Scalar>>,
}

/// `limit_conn_zones.<name>`: nginx `limit_conn_zone KEY zone=NAME:SIZE`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConnZone {
    /// What requests are counted by (a template; default `$remote_addr`).
    pub key: Option<Spanned<String>>,
}

/// `limit_req[]`: nginx `limit_req zone=NAME [burst=N] [nodelay | delay=N]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLimitReq {
    /// A `limit_req_zones` name.
    pub zone: Spanned<String>,
    /// Requests in excess of the rate that are still served (default 0).
    pub burst: Option<Spanned<Scalar>>,
    /// Serve the burst at once instead of spacing it at the rate.
    pub nodelay: Option<Spanned<bool>>,
    /// Requests in excess served at once before spacing the rest.
    pub delay: Option<Spanned<Scalar>>,
    /// The answer to a refused request (default 429).
    pub status: Option<Spanned<Scalar>>,
}

/// `limit_conn[]`: nginx `limit_conn NAME N`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLimitConn {
    /// A `limit_conn_zones` name.
    pub zone: Spanned<String>,
    /// Requests in progress per key, at most.
    pub max: Spanned<Scalar>,
    /// The answer to a refused request (default 429).
    pub status: Option<Spanned<Scalar>>,
}

/// `error_pages.<status>`: `FILE`, `{file: FILE, status: CODE}` or
/// `{uri: PATH, status: CODE}`.
#[derive(Debug, Default)]
pub struct FileErrorPage {
    /// The page's file.
    pub file: Option<Spanned<String>>,
    /// The status to answer with instead (nginx `error_page 404 =200`).
    pub status: Option<Spanned<Scalar>>,
    /// A path the site's own routes answer instead of a file (nginx
    /// `error_page 404 /404.html` where a proxied location serves it).
    pub uri: Option<Spanned<String>>,
    /// Keys other than file/status, with their positions.
    pub unknown: Vec<Spanned<String>>,
}

impl<'de> Deserialize<'de> for FileErrorPage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FileErrorPage;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a file path, or a map with `file` and `status`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FileErrorPage, E> {
                Ok(FileErrorPage {
                    file: Some(Spanned::new(
                        v.to_string(),
                        serde_saphyr::Location::UNKNOWN,
                        serde_saphyr::Location::UNKNOWN,
                    )),
                    ..Default::default()
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FileErrorPage, A::Error> {
                let mut out = FileErrorPage::default();
                while let Some(k) = map.next_key::<Spanned<String>>()? {
                    match k.value.as_str() {
                        "file" => out.file = Some(map.next_value()?),
                        "status" => out.status = Some(map.next_value()?),
                        "uri" => out.uri = Some(map.next_value()?),
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                            out.unknown.push(k);
                        }
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_any(V)
    }
}
