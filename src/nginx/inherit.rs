//! Settings that nginx inherits from http to server to location level, and
//! the directives converted at every level ([`common`]): body size, upstream
//! timeouts, client limits, header lists, `set` variables, `proxy_ssl_*`,
//! the real-IP module and access logs.

use super::addr;
use super::convert::{Ctx, Setting, Timeouts};
use super::directives;
use super::limits::{self, Scope};
use super::parse::Directive;
use super::vars::{self, SetVars};

/// A directive list nginx inherits as a whole: a level with its own
/// entries drops every inherited one (`proxy_set_header`, `add_header`,
/// `proxy_hide_header`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Level<'a> {
    /// The entries in force.
    pub list: Vec<&'a Directive>,
    /// True once this level has its own entries.
    pub own: bool,
    /// Inherited entries this level dropped by having its own.
    pub dropped: Vec<&'a Directive>,
}

impl<'a> Level<'a> {
    /// Adds an entry of this level.
    pub fn push(&mut self, d: &'a Directive) {
        if !self.own {
            self.dropped = std::mem::take(&mut self.list);
            self.own = true;
        }
        self.list.push(d);
    }

    /// The list as a nested level starts with it.
    pub fn child(&self) -> Self {
        Level {
            list: self.list.clone(),
            own: false,
            dropped: Vec::new(),
        }
    }
}

/// `proxy_ssl_*` settings in force (for `https://` upstreams).
#[derive(Debug, Clone, Default)]
pub(crate) struct SslUp<'a> {
    /// `proxy_ssl_name`.
    pub name: Option<&'a Directive>,
    /// `proxy_ssl_verify`.
    pub verify: Option<&'a Directive>,
    /// `proxy_ssl_trusted_certificate`.
    pub ca: Option<&'a Directive>,
}

/// `set_real_ip_from`, `real_ip_header`, `real_ip_recursive` in force.
#[derive(Debug, Clone, Default)]
pub(crate) struct RealIp<'a> {
    /// The trusted ranges (a level with its own replaces the outer ones).
    pub from: Level<'a>,
    /// `real_ip_header`.
    pub header: Option<&'a Directive>,
    /// `real_ip_recursive`.
    pub recursive: Option<&'a Directive>,
}

/// Settings inherited from http to server to location level.
#[derive(Debug, Clone, Default)]
pub(crate) struct Inherit<'a> {
    /// `client_max_body_size`.
    pub body: Option<Setting<'a, String>>,
    /// `underscores_in_headers`.
    pub underscores: Option<Setting<'a, bool>>,
    /// The upstream timeouts.
    pub timeouts: Timeouts<'a>,
    /// `proxy_set_header`.
    pub proxy_headers: Level<'a>,
    /// `add_header`.
    pub add_headers: Level<'a>,
    /// `proxy_hide_header`.
    pub hide_headers: Level<'a>,
    /// `more_set_headers` (headers-more adds to the inherited ones).
    pub more_set: Vec<&'a Directive>,
    /// `proxy_request_buffering`.
    pub request_buffering: Option<Setting<'a, bool>>,
    /// `proxy_next_upstream`: the statuses retried on the next server.
    pub retry: Option<Setting<'a, Vec<u16>>>,
    /// `set $name value`, resolved.
    pub set_vars: SetVars,
    /// `proxy_ssl_*`.
    pub ssl: SslUp<'a>,
    /// The real-IP module.
    pub real_ip: RealIp<'a>,
    /// `root` in force (files are served from it where nothing else answers).
    pub root: Option<&'a Directive>,
    /// `index` in force.
    pub index: Option<&'a Directive>,
    /// `expires` and `autoindex` in force.
    pub files: super::files::FilesInherit<'a>,
    /// `limit_req`, `limit_conn`, `error_page` and their settings.
    pub rate: super::ratelimit::RateInherit<'a>,
    /// `allow`/`deny`, `auth_basic*`, `auth_request`, `satisfy`.
    pub access: super::access::AccessInh<'a>,
    /// `gzip*`/`brotli*` in force (see `compress.rs`).
    pub gzip: super::compress::GzipIn<'a>,
    /// `proxy_redirect` (a level with its own replaces the outer ones).
    pub redirects: Level<'a>,
}

impl<'a> Inherit<'a> {
    /// The settings a nested block starts with.
    pub fn child(&self) -> Self {
        let mut c = self.clone();
        c.proxy_headers = self.proxy_headers.child();
        c.add_headers = self.add_headers.child();
        c.hide_headers = self.hide_headers.child();
        c.real_ip.from = self.real_ip.from.child();
        c.rate = self.rate.child();
        c.access = self.access.child();
        c.redirects = self.redirects.child();
        c.files = self.files.child();
        c
    }
}

/// Handles the directives that are converted at every level (body size,
/// upstream timeouts, client limits). Returns false when `d` is not one of them.
pub(crate) fn common<'a>(ctx: &mut Ctx<'a>, d: &'a Directive, inh: &mut Inherit<'a>) -> bool {
    if limits::record(ctx, d)
        || super::ratelimit::record(ctx, d, &mut inh.rate)
        || super::access::record(d, &mut inh.access)
        || super::compress::record(ctx, d, &mut inh.gzip)
        || super::redirects::record(d, &mut inh.redirects)
    {
        return true;
    }
    if super::files::record(ctx, d, &mut inh.files) {
        return true;
    }
    let name = d.name.as_str();
    match name {
        "client_max_body_size" => {
            match d.args.as_slice() {
                [v] => match addr::parse_size(v) {
                    Some(value) => inh.body = Some(Setting { value, d }),
                    None => ctx.warn(
                        d,
                        format!("client_max_body_size '{v}' is not a size (like 512, 64k, 10m, 1g); ignored"),
                    ),
                },
                _ => ctx.warn(d, "client_max_body_size needs exactly one value; ignored"),
            }
            true
        }
        "underscores_in_headers" => {
            match d.args.as_slice() {
                [v] if v == "on" || v == "off" => {
                    inh.underscores = Some(Setting {
                        value: v == "on",
                        d,
                    });
                }
                _ => ctx.warn(d, "underscores_in_headers needs `on` or `off`; ignored"),
            }
            true
        }
        "proxy_connect_timeout" | "proxy_read_timeout" | "proxy_send_timeout" => {
            let value = match d.args.as_slice() {
                [v] => addr::parse_duration(v),
                _ => None,
            };
            match value {
                Some(value) => {
                    let s = Some(Setting { value, d });
                    match name {
                        "proxy_connect_timeout" => inh.timeouts.connect = s,
                        "proxy_read_timeout" => inh.timeouts.read = s,
                        _ => inh.timeouts.write = s,
                    }
                }
                None => ctx.warn(
                    d,
                    format!(
                        "{name} '{}' is not a time (like 500ms, 30s, 5m, 1h); ignored",
                        d.args.join(" ")
                    ),
                ),
            }
            true
        }
        "proxy_set_header" => {
            inh.proxy_headers.push(d);
            true
        }
        "access_log" => {
            if d.arg0() == "off" && ctx.scope == Scope::Http {
                ctx.access_log_off = Some(d);
            } else if d.arg0() == "off" {
                ctx.note(d, "'access_log off' for one server or location is not carried over: greenlight's access log (one for every site, `access_log:`) records these requests too");
            } else {
                ctx.note(d, format!("'{}': greenlight writes one access log for every site (`access_log:`, stdout by default, or a file) in nginx's combined format; this file and format are not separate", directives::shown(d)));
            }
            true
        }
        "add_header" => {
            inh.add_headers.push(d);
            true
        }
        "proxy_hide_header" => {
            inh.hide_headers.push(d);
            true
        }
        "more_set_headers" => {
            inh.more_set.push(d);
            true
        }
        "root" => {
            inh.root = Some(d);
            true
        }
        "index" => {
            inh.index = Some(d);
            true
        }
        "proxy_next_upstream" => {
            inh.retry = next_upstream(ctx, d).map(|value| Setting { value, d });
            true
        }
        "proxy_request_buffering" => {
            match d.args.as_slice() {
                [v] if v == "on" || v == "off" => {
                    inh.request_buffering = Some(Setting {
                        value: v == "on",
                        d,
                    });
                }
                _ => ctx.warn(d, "proxy_request_buffering needs `on` or `off`; ignored"),
            }
            true
        }
        "set" => {
            match d.args.as_slice() {
                [var, value] if var.starts_with('$') => {
                    let name = var.trim_start_matches('$').trim_matches(['{', '}']);
                    let (v, _) = vars::resolve(value, &inh.set_vars, &[]);
                    inh.set_vars.set(name, v);
                }
                _ => ctx.warn(d, "set needs a $variable and a value; ignored"),
            }
            true
        }
        "proxy_ssl_name" => {
            inh.ssl.name = Some(d);
            true
        }
        "proxy_ssl_verify" => {
            inh.ssl.verify = Some(d);
            true
        }
        "proxy_ssl_trusted_certificate" => {
            inh.ssl.ca = Some(d);
            true
        }
        "proxy_ssl_server_name" => {
            let why = if d.arg0() == "off" {
                "greenlight sends the upstream's host name (or `sni:`) in TLS handshakes; nginx sent none with 'off', which only matters to an upstream that rejects SNI"
            } else {
                "greenlight sends the upstream's host name (or `sni:`) in TLS handshakes"
            };
            ctx.note(d, format!("'{}' is built in: {why}", directives::shown(d)));
            true
        }
        "set_real_ip_from" => {
            inh.real_ip.from.push(d);
            true
        }
        "real_ip_header" => {
            inh.real_ip.header = Some(d);
            true
        }
        "real_ip_recursive" => {
            inh.real_ip.recursive = Some(d);
            true
        }
        _ => false,
    }
}

/// The statuses of a `proxy_next_upstream` (its `http_NNN` conditions);
/// the other conditions are notes or warnings for what greenlight does
/// instead. `None` when the directive could not be read.
fn next_upstream<'a>(ctx: &mut Ctx<'a>, d: &'a Directive) -> Option<Vec<u16>> {
    let mut statuses = Vec::new();
    let mut built_in = Vec::new();
    for a in &d.args {
        match a.as_str() {
            "error" | "timeout" | "invalid_header" => built_in.push(a.as_str()),
            "off" => built_in.push("off"),
            "non_idempotent" => ctx.warn(
                d,
                "proxy_next_upstream non_idempotent is not carried over: greenlight never retries a POST, PATCH or a request with a body on another server",
            ),
            other => match other
                .strip_prefix("http_")
                .and_then(|n| n.parse::<u16>().ok())
                .filter(|n| crate::plan::retry::RETRYABLE.contains(n))
            {
                Some(n) => statuses.push(n),
                None => {
                    ctx.warn(
                        d,
                        format!("proxy_next_upstream '{other}' is not an nginx condition; the directive was ignored"),
                    );
                    return None;
                }
            },
        }
    }
    if !built_in.is_empty() {
        ctx.note(
            d,
            format!("proxy_next_upstream {}: greenlight always tries the next server when connecting fails or times out (nginx's default), and answers 502/504 when a server fails after the request was sent; {}", built_in.join(" "), if statuses.is_empty() { "no answer status is retried" } else { "the http_ statuses become `retry_statuses`" }),
        );
    }
    Some(statuses)
}
