//! The YAML file as written: serde structs that mirror `greenlight.yaml` key
//! for key, with source positions kept on every value.
//!
//! Only [`crate::config::validate`] reads these; nothing at request time ever
//! sees them. Unknown keys are rejected (`deny_unknown_fields`) so a typo is an
//! error, not a silently ignored setting. Leaf values that need parsing
//! (addresses, durations, sizes) are kept as text here so that *every* bad
//! value is reported by the validator at once, instead of the first type error
//! stopping the parse.

use indexmap::IndexMap;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

pub use super::file_limits::{
    FileConnZone, FileErrorPage, FileLimitConn, FileLimitReq, FileRateZone,
};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Named listen addresses.
    #[serde(default)]
    pub listeners: IndexMap<String, Spanned<FileListener>>,
    /// Client-facing limits and timeouts.
    pub limits: Option<Spanned<FileLimits>>,
    /// Access log destination and format.
    pub access_log: Option<Spanned<FileAccessLog>>,
    /// Automatic certificates (ACME / Let's Encrypt).
    pub acme: Option<Spanned<FileAcme>>,
    /// The admin API listener.
    pub admin: Option<Spanned<FileAdmin>>,
    /// Where generated certificates live (default `certs`).
    pub certs_dir: Option<Spanned<String>>,
    /// How long a stop or upgrade may wait for in-flight requests.
    pub shutdown_timeout: Option<Spanned<Scalar>>,
    /// Unix socket for the listening-socket hand-off of a binary upgrade.
    pub upgrade_socket: Option<Spanned<String>>,
    /// Peers (CIDRs or addresses) whose client-IP header is believed.
    pub trusted_proxies: Option<Spanned<Vec<Spanned<Scalar>>>>,
    /// The header trusted proxies name the client in.
    pub client_ip_from: Option<Spanned<String>>,
    /// Variables chosen by matching another value (nginx `map`), by name.
    #[serde(default)]
    pub maps: IndexMap<String, Spanned<FileMap>>,
    /// Request-rate zones (nginx `limit_req_zone`), by name.
    #[serde(default)]
    pub limit_req_zones: IndexMap<String, Spanned<FileRateZone>>,
    /// Connection-count zones (nginx `limit_conn_zone`), by name.
    #[serde(default)]
    pub limit_conn_zones: IndexMap<String, Spanned<FileConnZone>>,
    /// Named sites.
    #[serde(default)]
    pub sites: IndexMap<String, Spanned<FileSite>>,
    /// Named upstreams.
    #[serde(default)]
    pub upstreams: IndexMap<String, Spanned<FileUpstream>>,
    /// Fleet mode: several instances coordinated through etcd.
    pub cluster: Option<Spanned<super::file_cluster::FileCluster>>,
}

/// `maps.<name>`: defines `$name`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileMap {
    /// What is matched (a template, e.g. `$request_uri`).
    pub source: Spanned<String>,
    /// Keys (exact, `~re`, `~*re`) to values (templates), in order.
    #[serde(default)]
    pub values: IndexMap<String, Spanned<Scalar>>,
    /// The value when no key matches (default empty).
    pub default: Option<Spanned<Scalar>>,
}

/// `listeners.<name>`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileListener {
    /// `host:port`.
    pub address: Spanned<Scalar>,
    /// Terminate TLS on this listener.
    pub tls: Option<Spanned<bool>>,
    /// Client connections open at once, at most.
    pub max_connections: Option<Spanned<Scalar>>,
    /// Every connection starts with a PROXY protocol (v1 or v2) header.
    pub proxy_protocol: Option<Spanned<bool>>,
}

/// `limits`: what one client may cost.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLimits {
    /// Longest request target (414 beyond).
    pub max_uri_length: Option<Spanned<Scalar>>,
    /// Total size of the request header fields (431 beyond).
    pub max_header_size: Option<Spanned<Scalar>>,
    /// Number of request header fields (431 beyond).
    pub max_headers: Option<Spanned<Scalar>>,
    /// How long a new connection has to send a complete request header.
    pub header_timeout: Option<Spanned<Scalar>>,
    /// How long an idle keep-alive connection is kept.
    pub keepalive_timeout: Option<Spanned<Scalar>>,
    /// Requests served on one HTTP/1.1 connection before it is closed.
    pub keepalive_requests: Option<Spanned<Scalar>>,
    /// Longest pause while reading a request body (408).
    pub body_timeout: Option<Spanned<Scalar>>,
    /// Request body bytes kept in memory while buffering; the rest goes to a temp file.
    pub body_buffer_size: Option<Spanned<Scalar>>,
    /// Longest time a client may accept no response byte before it is closed.
    pub send_timeout: Option<Spanned<Scalar>>,
    /// Close WebSockets idle this long in both directions (`off` by default).
    pub websocket_idle_timeout: Option<Spanned<Scalar>>,
    /// HTTP/2 streams a client may have open on one connection.
    pub h2_max_concurrent_streams: Option<Spanned<Scalar>>,
}

/// `acme`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAcme {
    /// Contact e-mail (optional: an account may have no contact).
    pub email: Option<Spanned<String>>,
    /// `letsencrypt`, `letsencrypt-staging`, or a directory URL.
    pub directory: Option<Spanned<String>>,
    /// PEM root to trust for the directory (private CAs, tests).
    pub ca_root: Option<Spanned<String>>,
    /// Account and certificate storage.
    pub storage: Option<Spanned<String>>,
    /// `http-01` or `tls-alpn-01`.
    pub challenge: Option<Spanned<String>>,
}

/// `access_log`: `off`, `stdout`, a path, or `{path, format}`.
#[derive(Debug, Default)]
pub struct FileAccessLog {
    /// `stdout`, `off`, or a file path.
    pub path: Option<Spanned<String>>,
    /// `combined` or `json`.
    pub format: Option<Spanned<String>>,
    /// Keys other than path/format, with their positions.
    pub unknown: Vec<Spanned<String>>,
}

impl<'de> Deserialize<'de> for FileAccessLog {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FileAccessLog;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`off`, `stdout`, a file path, or a map with `path` and `format`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FileAccessLog, E> {
                Ok(FileAccessLog {
                    path: Some(Spanned::new(
                        v.to_string(),
                        serde_saphyr::Location::UNKNOWN,
                        serde_saphyr::Location::UNKNOWN,
                    )),
                    ..Default::default()
                })
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<FileAccessLog, E> {
                // YAML 1.1 habits: `access_log: off` may arrive as false.
                self.visit_str(if v { "stdout" } else { "off" })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FileAccessLog, A::Error> {
                let mut out = FileAccessLog::default();
                while let Some(k) = map.next_key::<Spanned<String>>()? {
                    match k.value.as_str() {
                        "path" => out.path = Some(map.next_value()?),
                        "format" => out.format = Some(map.next_value()?),
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

/// `admin`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAdmin {
    /// `host:port` of the admin API.
    pub address: Option<Spanned<Scalar>>,
    /// File holding the bearer token.
    pub token_file: Option<Spanned<String>>,
    /// Extra `host[:port]` names the API answers to (DNS-rebinding guard).
    pub allowed_hosts: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `sites.<name>`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSite {
    /// Host names, wildcards (`*.a.com`, `www.a.*`) and `~regex` names; may be
    /// absent or empty on the default site.
    pub hosts: Option<Spanned<Vec<Spanned<String>>>>,
    /// Serve unknown hosts: `true` (on every listener), `https` (TLS
    /// listeners only) or `http` (plain listeners only).
    pub default: Option<Spanned<Scalar>>,
    /// The listeners (by name) whose requests this site takes; absent =
    /// every listener.
    pub listeners: Option<Spanned<Vec<Spanned<String>>>>,
    /// Certificate source.
    pub tls: Option<Spanned<FileTls>>,
    /// Client certificates (mutual TLS): `{ca, verify, depth}`.
    pub client_auth: Option<Spanned<super::file_client_auth::FileClientAuth>>,
    /// `redirect [NNN]`, `serve`, or `{redirect: NNN, to: TEMPLATE}`.
    pub plain_http: Option<Spanned<FilePlainHttp>>,
    /// Request body limit.
    pub max_body_size: Option<Spanned<Scalar>>,
    /// This site's HTTP/1.1 keep-alive wait (`0`: close after each answer).
    pub keepalive_timeout: Option<Spanned<Scalar>>,
    /// Pass request headers whose names contain `_` (nginx's directive).
    pub underscores_in_headers: Option<Spanned<bool>>,
    /// `on`/`off`: read request bodies whole before connecting (routes may override).
    /// Upstream answers retried on the next server (nginx
    /// `proxy_next_upstream http_502 …`); routes may override it.
    pub retry_statuses: Option<Spanned<Vec<Spanned<u16>>>>,
    pub request_buffering: Option<Spanned<Scalar>>,
    /// This site's own `trusted_proxies` (instead of the top level's).
    pub trusted_proxies: Option<Spanned<Vec<Spanned<Scalar>>>>,
    /// This site's own `client_ip_from` (instead of the top level's).
    pub client_ip_from: Option<Spanned<String>>,
    /// Request headers to the upstream, for every route (routes merge theirs on top).
    pub request_headers: Option<Spanned<FileRequestHeaders>>,
    /// Response headers to the client, for every route and the site's own answers.
    pub response_headers: Option<Spanned<FileResponseHeaders>>,
    /// Checks every route runs first (before its own).
    pub checks: Option<Spanned<Vec<Spanned<FileCheck>>>>,
    /// Request-rate limits of every route without its own (nginx `limit_req`).
    pub limit_req: Option<Spanned<Vec<Spanned<FileLimitReq>>>>,
    /// Connection limits of every route without its own (nginx `limit_conn`).
    pub limit_conn: Option<Spanned<Vec<Spanned<FileLimitConn>>>>,
    /// Pages for error answers, by status (nginx `error_page`).
    pub error_pages: Option<Spanned<IndexMap<String, Spanned<FileErrorPage>>>>,
    /// Also replace the upstream's error answers (nginx `proxy_intercept_errors`).
    pub intercept_errors: Option<Spanned<bool>>,
    /// Access control for every route (a route's own keys replace these).
    pub access: Option<Spanned<super::file_access::FileAccess>>,
    /// Response compression for every route (routes override keys).
    pub compress: Option<Spanned<super::file_compress::FileCompress>>,
    /// The upstream's `Location`/`Refresh` rewritten (routes with their own replace it).
    pub rewrite_location: Option<Spanned<super::file_proxy_redirect::FileProxyRedirect>>,
    /// Routes in file order (the order regex locations are tried in).
    pub routes: Spanned<Vec<Spanned<FileRoute>>>,
}

/// `sites.<name>.tls`: a word (`self_signed`, `acme`) or a `{cert, key}` map.
#[derive(Debug)]
pub enum FileTls {
    /// `tls: self_signed` or `tls: acme` (or anything else, reported by validate).
    Mode(String),
    /// `tls: {cert: PATH, key: PATH}`, or `tls: {acme: [NAME, ...]}`.
    Files {
        /// Certificate chain PEM path.
        cert: Option<Spanned<String>>,
        /// Private key PEM path.
        key: Option<Spanned<String>>,
        /// ACME with these names instead of the site's hosts (boxed: the
        /// rare form should not grow every site's `tls`).
        acme: Option<Box<Spanned<Vec<Spanned<String>>>>>,
        /// Keys other than cert/key, with their positions.
        unknown: Vec<Spanned<String>>,
    },
}

impl FileTls {
    /// `tls: acme` or `tls: {acme: [names]}`.
    pub fn is_acme(&self) -> bool {
        match self {
            FileTls::Mode(m) => m == "acme",
            FileTls::Files { acme, .. } => acme.is_some(),
        }
    }
}

impl<'de> Deserialize<'de> for FileTls {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TlsVisitor;
        impl<'de> Visitor<'de> for TlsVisitor {
            type Value = FileTls;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "`self_signed`, `acme`, a map with `cert` and `key`, or `{acme: [names]}`",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FileTls, E> {
                Ok(FileTls::Mode(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<FileTls, E> {
                Ok(FileTls::Mode(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FileTls, A::Error> {
                let (mut cert, mut key, mut unknown) = (None, None, Vec::new());
                let mut acme = None;
                while let Some(k) = map.next_key::<Spanned<String>>()? {
                    match k.value.as_str() {
                        "cert" => cert = Some(map.next_value()?),
                        "key" => key = Some(map.next_value()?),
                        "acme" => acme = Some(map.next_value()?),
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                            unknown.push(k);
                        }
                    }
                }
                Ok(FileTls::Files {
                    cert,
                    key,
                    acme,
                    unknown,
                })
            }
        }
        d.deserialize_any(TlsVisitor)
    }
}

/// `sites.<name>.routes[]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRoute {
    /// nginx `location` syntax: `/p`, `= /p`, `^~ /p`, `~ re`, `~* re`.
    pub path: Spanned<String>,
    /// Request methods this route takes (`[OPTIONS]`); absent = every
    /// method. Routes of one location choose by method.
    pub methods: Option<Spanned<Vec<Spanned<String>>>>,
    /// `http` or `https`: the route takes only requests that arrived that
    /// way (certbot's webroot on plain HTTP next to a TLS site's redirect).
    pub scheme: Option<Spanned<String>>,
    /// Upstream name (one of `upstream`, `redirect`, `respond`).
    pub upstream: Option<Spanned<String>>,
    /// `on`/`off`: overrides the site's `request_buffering`.
    pub request_buffering: Option<Spanned<Scalar>>,
    /// Overrides the site's `max_body_size` (nginx `client_max_body_size`
    /// in a location).
    pub max_body_size: Option<Spanned<Scalar>>,
    /// Overrides the site's `retry_statuses`.
    pub retry_statuses: Option<Spanned<Vec<Spanned<u16>>>>,
    /// Replaces the matched prefix in the path sent upstream.
    pub upstream_path: Option<Spanned<String>>,
    /// Conditions that answer the request (nginx `if … return`), run before the rewrites.
    pub checks: Option<Spanned<Vec<Spanned<FileCheck>>>>,
    /// Regex rewrites of the path, in order.
    pub rewrite: Option<Spanned<Vec<Spanned<FileRewrite>>>>,
    /// Answer with a redirect instead of proxying.
    pub redirect: Option<Spanned<FileRedirect>>,
    /// Answer with a fixed response instead of proxying.
    pub respond: Option<Spanned<FileRespond>>,
    /// Serve files from a directory instead of proxying.
    pub files: Option<Spanned<FileFiles>>,
    /// Access control (each key replaces the site's).
    pub access: Option<Spanned<super::file_access::FileAccess>>,
    /// Request headers to the upstream (merged over the site's).
    pub request_headers: Option<Spanned<FileRequestHeaders>>,
    /// Response headers to the client (merged over the site's).
    pub response_headers: Option<Spanned<FileResponseHeaders>>,
    /// `Expires`/`Cache-Control` on successful answers (nginx `expires`).
    pub expires: Option<Spanned<Scalar>>,
    /// `charset=` added to text answers that name none (nginx `charset`).
    pub charset: Option<Spanned<String>>,
    /// Request-rate limits (replace the site's, as in nginx).
    pub limit_req: Option<Spanned<Vec<Spanned<FileLimitReq>>>>,
    /// Connection limits (replace the site's, as in nginx).
    pub limit_conn: Option<Spanned<Vec<Spanned<FileLimitConn>>>>,
    /// Pages for error answers (merged over the site's).
    pub error_pages: Option<Spanned<IndexMap<String, Spanned<FileErrorPage>>>>,
    /// Also replace the upstream's error answers (overrides the site's).
    pub intercept_errors: Option<Spanned<bool>>,
    /// Response compression (over the site's), precompressed siblings.
    pub compress: Option<Spanned<super::file_compress::FileCompress>>,
    /// The upstream's `Location`/`Refresh` rewritten (replaces the site's).
    pub rewrite_location: Option<Spanned<super::file_proxy_redirect::FileProxyRedirect>>,
}

/// `request_headers`: headers of the request sent upstream.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRequestHeaders {
    /// Replace or create (`""` removes).
    pub set: Option<Spanned<IndexMap<String, Spanned<Scalar>>>>,
    /// Append another field.
    pub add: Option<Spanned<IndexMap<String, Spanned<Scalar>>>>,
    /// Remove.
    pub remove: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `response_headers`: headers of the response sent to the client.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileResponseHeaders {
    /// Append a field (nginx `add_header`).
    pub add: Option<Spanned<IndexMap<String, Spanned<FileHeaderValue>>>>,
    /// Replace or create.
    pub set: Option<Spanned<IndexMap<String, Spanned<FileHeaderValue>>>>,
    /// Remove from the upstream's response (nginx `proxy_hide_header`).
    pub remove: Option<Spanned<Vec<Spanned<String>>>>,
}

/// A response header value: `VALUE` or `{value: VALUE, always: true}`.
#[derive(Debug, Default)]
pub struct FileHeaderValue {
    /// The value (a template).
    pub value: Option<Spanned<Scalar>>,
    /// Also on error answers and answers greenlight makes.
    pub always: Option<Spanned<bool>>,
    /// Keys other than value/always, with their positions.
    pub unknown: Vec<Spanned<String>>,
}

impl<'de> Deserialize<'de> for FileHeaderValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FileHeaderValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a header value, or a map with `value` and `always`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FileHeaderValue, E> {
                Ok(FileHeaderValue {
                    value: Some(Spanned::new(
                        Scalar(v.to_string()),
                        serde_saphyr::Location::UNKNOWN,
                        serde_saphyr::Location::UNKNOWN,
                    )),
                    ..Default::default()
                })
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<FileHeaderValue, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<FileHeaderValue, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<FileHeaderValue, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<FileHeaderValue, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FileHeaderValue, A::Error> {
                let mut out = FileHeaderValue::default();
                while let Some(k) = map.next_key::<Spanned<String>>()? {
                    match k.value.as_str() {
                        "value" => out.value = Some(map.next_value()?),
                        "always" => out.always = Some(map.next_value()?),
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

/// `routes[].rewrite[]`: one regex rewrite.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRewrite {
    /// Regex matched against the path.
    pub from: Spanned<String>,
    /// The new path (a template; `$1` etc. are `from`'s groups).
    pub to: Spanned<String>,
    /// `break` (default), `last`, `redirect` or `permanent`.
    pub flag: Option<Spanned<String>>,
}

/// `routes[].files`: nginx `root`/`alias`, `index`, `try_files`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileFiles {
    /// The file is this directory + the request path (nginx `root`).
    pub root: Option<Spanned<String>>,
    /// The file is this directory + the path after the route's prefix (nginx `alias`).
    pub alias: Option<Spanned<String>>,
    /// Index file names for a path ending in `/` (default `[index.html]`).
    pub index: Option<Spanned<Vec<Spanned<String>>>>,
    /// Candidates in order, then a fallback path, `=CODE` or `@route` (nginx `try_files`).
    pub try_files: Option<Spanned<Vec<Spanned<String>>>>,
    /// List a directory without index file (nginx `autoindex on`).
    pub autoindex: Option<Spanned<bool>>,
    /// MP4 pseudo-streaming, `?start=`/`?end=` (nginx `mp4`).
    pub mp4: Option<Spanned<super::file_mp4::FileMp4>>,
}

/// `checks[]`: a condition and the answer it gives.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCheck {
    /// The condition, nginx `if` syntax: `$var`, `$var = text`, `$var ~ re`...
    #[serde(rename = "if")]
    pub condition: Spanned<String>,
    /// Answer with a redirect when it holds.
    pub redirect: Option<Spanned<FileRedirect>>,
    /// Answer with a fixed response when it holds.
    pub respond: Option<Spanned<FileRespond>>,
}

/// `routes[].redirect`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRedirect {
    /// The location (a template).
    pub to: Spanned<String>,
    /// 301, 302 (default), 303, 307 or 308.
    pub status: Option<Spanned<Scalar>>,
}

/// `routes[].respond`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRespond {
    /// Status code (default 200).
    pub status: Option<Spanned<Scalar>>,
    /// Body (a template).
    pub body: Option<Spanned<Scalar>>,
    /// Body bytes in base64 (instead of `body`): a binary answer.
    pub body_base64: Option<Spanned<String>>,
    /// `Content-Type` (default `text/plain; charset=utf-8`).
    pub content_type: Option<Spanned<String>>,
}

/// `upstreams.<name>`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileUpstream {
    /// The pool that takes new requests.
    pub active: Spanned<String>,
    /// Named pools of servers: `host:port` or `{address, weight, backup}`.
    pub pools: Spanned<IndexMap<String, Spanned<Vec<Spanned<FileServer>>>>>,
    /// Drain deadline.
    pub drain_timeout: Option<Spanned<Scalar>>,
    /// TCP connect timeout.
    pub connect_timeout: Option<Spanned<Scalar>>,
    /// Upstream read idle timeout.
    pub read_timeout: Option<Spanned<Scalar>>,
    /// Upstream write idle timeout.
    pub write_timeout: Option<Spanned<Scalar>>,
    /// Active health checks.
    pub health: Option<Spanned<FileHealth>>,
    /// Passive health: consecutive failures that mark a server down (nginx `max_fails`).
    pub max_fails: Option<Spanned<Scalar>>,
    /// Passive health: how long a failed server stays down (nginx `fail_timeout`).
    pub fail_timeout: Option<Spanned<Scalar>>,
    /// `round_robin`, `least_conn`, `ip_hash`, or `{hash: TEMPLATE}`.
    pub balance: Option<Spanned<FileBalance>>,
    /// HTTPS to the servers.
    pub tls: Option<Spanned<bool>>,
    /// TLS server name for every server (default: each server's host).
    pub sni: Option<Spanned<String>>,
    /// PEM file of the CA certificates to trust (default: system roots).
    pub ca: Option<Spanned<String>>,
    /// `false` turns certificate checks off.
    pub verify: Option<Spanned<bool>>,
    /// Offer HTTP/2 by ALPN.
    pub http2: Option<Spanned<bool>>,
}

/// One server of a pool: `host:port`, or a map with `address`, `weight`,
/// `backup`, `max_fails`, `fail_timeout`.
#[derive(Debug, Default)]
pub struct FileServer {
    /// `host:port` (in the map form: `None` when `address` is missing).
    pub address: Option<Spanned<Scalar>>,
    /// Relative share of requests.
    pub weight: Option<Spanned<Scalar>>,
    /// Only while every primary is down.
    pub backup: Option<Spanned<bool>>,
    /// Overrides the upstream's `max_fails` for this server.
    pub max_fails: Option<Spanned<Scalar>>,
    /// Overrides the upstream's `fail_timeout` for this server.
    pub fail_timeout: Option<Spanned<Scalar>>,
    /// Keys other than these, with their positions.
    pub unknown: Vec<Spanned<String>>,
}

impl<'de> Deserialize<'de> for FileServer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FileServer;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`host:port` or a map with `address`, `weight`, `backup`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FileServer, E> {
                Ok(FileServer {
                    address: Some(Spanned::new(
                        Scalar(v.to_string()),
                        serde_saphyr::Location::UNKNOWN,
                        serde_saphyr::Location::UNKNOWN,
                    )),
                    ..Default::default()
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FileServer, A::Error> {
                let mut out = FileServer::default();
                while let Some(k) = map.next_key::<Spanned<String>>()? {
                    match k.value.as_str() {
                        "address" => out.address = Some(map.next_value()?),
                        "weight" => out.weight = Some(map.next_value()?),
                        "backup" => out.backup = Some(map.next_value()?),
                        "max_fails" => out.max_fails = Some(map.next_value()?),
                        "fail_timeout" => out.fail_timeout = Some(map.next_value()?),
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

/// `upstreams.<name>.balance`: a method name, or `{hash: TEMPLATE}`.
#[derive(Debug)]
pub enum FileBalance {
    /// `round_robin`, `least_conn`, `ip_hash` (or anything else, reported by validate).
    Method(String),
    /// `{hash: "$request_uri"}`; `None` when the map has no `hash` key.
    Hash(Option<Spanned<String>>, Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for FileBalance {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FileBalance;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`round_robin`, `least_conn`, `ip_hash`, or `{hash: TEMPLATE}`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FileBalance, E> {
                Ok(FileBalance::Method(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FileBalance, A::Error> {
                let (mut hash, mut unknown) = (None, Vec::new());
                while let Some(k) = map.next_key::<Spanned<String>>()? {
                    if k.value == "hash" {
                        hash = Some(map.next_value()?);
                    } else {
                        map.next_value::<de::IgnoredAny>()?;
                        unknown.push(k);
                    }
                }
                Ok(FileBalance::Hash(hash, unknown))
            }
        }
        d.deserialize_any(V)
    }
}

/// `sites.<name>.plain_http`.
#[derive(Debug)]
pub enum FilePlainHttp {
    /// `redirect`, `redirect NNN` or `serve` (anything else, reported by validate).
    Mode(String),
    /// `{redirect: NNN, to: TEMPLATE}`: a redirect to another URL than the
    /// request's own https one; keys the map does not know are kept for the report.
    Redirect {
        /// The status (`redirect:`); `None` = 308.
        status: Option<Spanned<Scalar>>,
        /// The target (`to:`); `None`: the request's own URL on https.
        to: Option<Spanned<String>>,
        /// Headers of the redirect answer only (`response_headers:`).
        response_headers: Option<Box<Spanned<FileResponseHeaders>>>,
        /// Unknown keys.
        unknown: Vec<Spanned<String>>,
    },
}

impl<'de> Deserialize<'de> for FilePlainHttp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FilePlainHttp;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`redirect`, `redirect 301`, `serve`, or `{redirect: 301, to: URL}`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FilePlainHttp, E> {
                Ok(FilePlainHttp::Mode(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FilePlainHttp, A::Error> {
                let (mut status, mut to, mut unknown) = (None, None, Vec::new());
                let mut response_headers = None;
                while let Some(k) = map.next_key::<Spanned<String>>()? {
                    match k.value.as_str() {
                        "redirect" => status = Some(map.next_value()?),
                        "to" => to = Some(map.next_value()?),
                        "response_headers" => response_headers = Some(map.next_value()?),
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                            unknown.push(k);
                        }
                    }
                }
                Ok(FilePlainHttp::Redirect {
                    status,
                    to,
                    response_headers,
                    unknown,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// `upstreams.<name>.health`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHealth {
    /// Path to request (GET).
    pub path: Spanned<String>,
    /// Time between checks of one server.
    pub interval: Option<Spanned<Scalar>>,
    /// Time a check may take.
    pub timeout: Option<Spanned<Scalar>>,
    /// Successes in a row that mark a down server up.
    pub healthy_after: Option<Spanned<Scalar>>,
    /// Failures in a row that mark an up server down.
    pub unhealthy_after: Option<Spanned<Scalar>>,
    /// Expected status: `2xx`, `200`, or `200-399`.
    pub expect_status: Option<Spanned<Scalar>>,
}

/// Any YAML scalar kept as its text (`30s`, `10m`, `0`, `127.0.0.1:80`), so the
/// validator can explain a bad value instead of the parser stopping at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a single value (text or number)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(ScalarVisitor)
    }
}
