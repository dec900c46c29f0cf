//! The `access:` key of a site or route as written (serde structs; see
//! [`super::file`] for the conventions). Compiled by
//! [`super::validate_access`].

use super::file::Scalar;
use indexmap::IndexMap;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;
use std::marker::PhantomData;

/// `access:` of a site or route. Each key a route writes replaces the
/// site's (nginx inherits each directive only when the inner level has none).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAccess {
    /// `[{allow: CIDR}, {deny: all}, …]` in order: the first match decides.
    pub ip: Option<Spanned<Vec<Spanned<FileIpRule>>>>,
    /// `{realm, users_file}`, or `off`.
    pub basic_auth: Option<Spanned<FileOr<FileBasicAuth>>>,
    /// `{upstream, path} | {url}` with `copy_headers` etc., or `off`.
    pub forward_auth: Option<Spanned<FileOr<FileForwardAuth>>>,
    /// `all` (default) or `any`.
    pub satisfy: Option<Spanned<String>>,
}

/// One `ip` rule: a one-key map, `allow: NET` or `deny: NET`.
pub type FileIpRule = IndexMap<String, Spanned<Scalar>>;

/// `access.basic_auth`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileBasicAuth {
    /// The realm the browser shows (nginx `auth_basic "…"`).
    pub realm: Option<Spanned<String>>,
    /// htpasswd file (nginx `auth_basic_user_file`).
    pub users_file: Spanned<String>,
}

/// `access.forward_auth`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileForwardAuth {
    /// One of the config's upstreams.
    pub upstream: Option<Spanned<String>>,
    /// The path asked of `upstream` (default `/`).
    pub path: Option<Spanned<String>>,
    /// Or a URL: `http://127.0.0.1:9091/api/verify`.
    pub url: Option<Spanned<String>>,
    /// Client headers sent along (default: all).
    pub request_headers: Option<Spanned<Vec<Spanned<String>>>>,
    /// Headers of a 2xx answer set on the request to the upstream.
    pub copy_headers: Option<Spanned<Vec<Spanned<String>>>>,
    /// How long the subrequest may take (default 5s).
    pub timeout: Option<Spanned<Scalar>>,
}

/// A map of settings, or a word (`off`) that turns an inherited one off.
#[derive(Debug)]
pub enum FileOr<T> {
    /// The map.
    Map(T),
    /// A word (`off`; anything else is reported by validate).
    Word(String),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for FileOr<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = FileOr<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of settings, or `off`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FileOr<T>, E> {
                Ok(FileOr::Word(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<FileOr<T>, E> {
                // YAML 1.1 habits: `off` may arrive as false.
                Ok(FileOr::Word(if v { "on" } else { "off" }.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FileOr<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(FileOr::Map)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}
