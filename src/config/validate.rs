//! The one door between the YAML file and the typed model: [`validate`] turns
//! a [`FileConfig`] into a [`Config`], filling defaults, parsing values and
//! resolving cross-references, and collects **every** problem it finds.
//!
//! It does no I/O except resolving upstream host names (at load time, never per
//! request). Certificate files are checked separately by [`crate::tls`], so
//! that `check` and a reload share one code path for them.

use crate::config::diag::{Diagnostics, Pos};
use crate::config::file::{FileConfig, FileTls, Scalar};
use crate::config::model::*;
use crate::plan::retry::{RETRYABLE, RetryStatuses};
use serde_saphyr::Spanned;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use super::validate_match::parse_host_pattern;
use super::validate_steps;
use super::values::{count_field, duration_field, size_field, switch_field};
pub use super::values::{
    normalize_allowed_host, parse_duration, parse_size, parse_status_range, split_authority,
};

pub(super) fn pos<T>(s: &Spanned<T>) -> Pos {
    Pos::from_location(&s.referenced)
}

/// Validates a parsed file; `Err` carries every problem, sorted by position.
pub fn validate(file: FileConfig, ds: &mut Diagnostics) -> Option<Config> {
    let listeners = validate_listeners(&file, ds);
    let admin = validate_admin(&file, ds);
    let upstreams: Vec<UpstreamConfig> = file
        .upstreams
        .iter()
        .filter_map(|(name, u)| super::validate_upstream::validate_upstream(name, u, ds))
        .collect();
    let known: HashSet<&str> = file.upstreams.keys().map(String::as_str).collect();
    let (map_names, maps) = super::validate_maps::validate_maps(&file, ds);
    let zones = super::validate_limits::zones(&file, &map_names, ds);
    let mut sites = validate_sites(&file, &known, &listeners, &map_names, ds);
    let client_ip = super::validate_client_ip::validate(&file, &mut sites, ds);
    let certs_dir = file
        .certs_dir
        .as_ref()
        .map(|c| PathBuf::from(&c.value))
        .unwrap_or_else(|| PathBuf::from(defaults::CERTS_DIR));
    let limits = validate_limits(&file, ds);
    let access_log = validate_access_log(&file, ds);
    let acme = file.acme.as_ref().map(|a| validate_acme(a, &certs_dir, ds));
    let uses_acme = file
        .sites
        .values()
        .any(|s| s.value.tls.as_ref().is_some_and(|t| t.value.is_acme()));
    if let (Some(a), Some(f), true) = (&acme, &file.acme, uses_acme) {
        // The CA validates on the plain listener (HTTP-01) or a TLS one
        // (TLS-ALPN-01): without one, no order could ever succeed.
        let at = f.value.challenge.as_ref().map(pos).unwrap_or(pos(f));
        match a.challenge {
            crate::acme::ChallengeKind::Http01 if !listeners.iter().any(|l| !l.tls) => ds.error(
                at,
                "challenge http-01 needs a plain (non-TLS) listener, the CA connects to port 80",
                "add a plain listener on port 80, or use `challenge: tls-alpn-01`",
            ),
            crate::acme::ChallengeKind::TlsAlpn01 if !listeners.iter().any(|l| l.tls) => ds.error(
                at,
                "challenge tls-alpn-01 needs a TLS listener, the CA connects to port 443",
                "add a listener with `tls: true` on port 443, or use `challenge: http-01`",
            ),
            _ => {}
        }
    }
    for (name, site) in &file.sites {
        let Some(t) = &site.value.tls else { continue };
        if !t.value.is_acme() {
            continue;
        }
        if file.acme.is_none() {
            ds.error(
                pos(t),
                format!("site '{name}' uses `tls: acme` but there is no `acme:` section"),
                "add `acme: {email: you@example.com}` at the top level",
            );
        }
        super::validate_match::acme_hosts(name, site, ds);
    }
    let shutdown_timeout =
        duration_field(&file.shutdown_timeout, defaults::SHUTDOWN_TIMEOUT, true, ds);
    let upgrade_socket = file
        .upgrade_socket
        .as_ref()
        .map(|s| PathBuf::from(&s.value))
        .unwrap_or_else(|| PathBuf::from(defaults::UPGRADE_SOCKET));
    let cluster = file
        .cluster
        .as_ref()
        .and_then(|c| super::validate_cluster::validate(c, ds));
    if !ds.is_empty() {
        return None;
    }
    Some(Config {
        source: ds.file().to_path_buf(),
        listeners,
        admin: admin?,
        limits,
        access_log,
        acme,
        certs_dir,
        shutdown_timeout,
        upgrade_socket,
        client_ip,
        sites,
        upstreams,
        maps: maps.into(),
        zones,
        cluster,
    })
}

fn validate_acme(
    a: &Spanned<crate::config::file::FileAcme>,
    certs_dir: &std::path::Path,
    ds: &mut Diagnostics,
) -> crate::acme::AcmeConfig {
    use crate::acme::{ChallengeKind, LETSENCRYPT, LETSENCRYPT_STAGING};
    let f = &a.value;
    // Without an address the account has no contact: Let's Encrypt allows
    // that (so does Caddy), it only means nobody hears about problems.
    let email = f
        .email
        .as_ref()
        .map_or(String::new(), |e| e.value.trim().to_string());
    let email_ok = email.is_empty()
        || email.split_once('@').is_some_and(|(user, domain)| {
            !user.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        }) && !email.chars().any(|c| c.is_whitespace() || c == ',');
    if let (false, Some(at)) = (email_ok, &f.email) {
        ds.error(
            pos(at),
            format!("'{email}' is not an e-mail address"),
            "give the address Let's Encrypt may write to about expiring certificates, or leave `email` out",
        );
    }
    let directory = match f.directory.as_ref().map(|d| d.value.trim()) {
        None | Some("letsencrypt") => LETSENCRYPT.to_string(),
        Some("letsencrypt-staging") => LETSENCRYPT_STAGING.to_string(),
        Some(url) if url.starts_with("https://") && url.len() > "https://".len() => url.to_string(),
        Some(other) => {
            let at = f.directory.as_ref().map(pos).unwrap_or_default();
            ds.error(
                at,
                format!("ACME directory '{other}' is not `letsencrypt`, `letsencrypt-staging` or an https:// URL"),
                "start with `letsencrypt-staging` while testing, then `letsencrypt`",
            );
            LETSENCRYPT.to_string()
        }
    };
    let ca_root = f.ca_root.as_ref().map(|c| {
        let p = PathBuf::from(&c.value);
        if let Err(e) = std::fs::metadata(&p) {
            ds.error(
                pos(c),
                format!("cannot read ACME CA root {}: {e}", p.display()),
                "give a PEM file with the CA's root certificate",
            );
        }
        p
    });
    let storage = f
        .storage
        .as_ref()
        .map(|s| PathBuf::from(&s.value))
        .unwrap_or_else(|| certs_dir.join("acme"));
    if let Some(problem) = not_writable(&storage) {
        let at = f.storage.as_ref().map(pos).unwrap_or(pos(a));
        ds.error(
            at,
            format!("ACME storage {}: {problem}", storage.display()),
            "make the directory (or its parent) writable by greenlight's user",
        );
    }
    let challenge = match f.challenge.as_ref().map(|c| c.value.as_str()) {
        None | Some("http-01") => ChallengeKind::Http01,
        Some("tls-alpn-01") => ChallengeKind::TlsAlpn01,
        Some(other) => {
            let at = f.challenge.as_ref().map(pos).unwrap_or_default();
            ds.error(at, format!("challenge '{other}' is not known"), "use `http-01` (needs a plain listener on port 80) or `tls-alpn-01` (port 443 only)");
            ChallengeKind::Http01
        }
    };
    crate::acme::AcmeConfig {
        email,
        directory,
        ca_root,
        storage,
        challenge,
    }
}

/// Why greenlight could not write into `dir` (or create it), if it could not.
fn not_writable(dir: &std::path::Path) -> Option<String> {
    use nix::unistd::{AccessFlags, access};
    let mut probe = dir;
    loop {
        match std::fs::metadata(probe) {
            Ok(m) if !m.is_dir() => return Some(format!("{} is not a directory", probe.display())),
            Ok(_) => {
                return access(probe, AccessFlags::W_OK | AccessFlags::X_OK)
                    .err()
                    .map(|e| format!("{} is not writable ({e})", probe.display()));
            }
            Err(_) => match probe.parent() {
                Some(p) if !p.as_os_str().is_empty() => probe = p,
                _ => return None, // relative path under the working directory
            },
        }
    }
}

fn validate_access_log(file: &FileConfig, ds: &mut Diagnostics) -> AccessLogConfig {
    let Some(a) = &file.access_log else {
        return AccessLogConfig::Stdout(AccessLogFormat::Combined);
    };
    for u in &a.value.unknown {
        ds.error(
            pos(u),
            format!("unknown key '{}' in access_log", u.value),
            "access_log takes `path` and `format`",
        );
    }
    let format = match &a.value.format {
        None => AccessLogFormat::Combined,
        Some(f) => match f.value.as_str() {
            "combined" => AccessLogFormat::Combined,
            "json" => AccessLogFormat::Json,
            other => {
                ds.error(
                    pos(f),
                    format!("access log format '{other}' is not known"),
                    "use `combined` (nginx's) or `json`",
                );
                AccessLogFormat::Combined
            }
        },
    };
    match a.value.path.as_ref().map(|p| p.value.as_str()) {
        None | Some("stdout") => AccessLogConfig::Stdout(format),
        Some("off") => AccessLogConfig::Off,
        Some(path) => AccessLogConfig::File(PathBuf::from(path), format),
    }
}

fn validate_limits(file: &FileConfig, ds: &mut Diagnostics) -> LimitsConfig {
    let mut l = LimitsConfig::default();
    let Some(f) = &file.limits else {
        return l;
    };
    let f = &f.value;
    l.max_uri_length = size_field(&f.max_uri_length, l.max_uri_length, ds);
    l.max_header_size = size_field(&f.max_header_size, l.max_header_size, ds);
    l.max_headers = count_field(&f.max_headers, l.max_headers as u32, 1, ds) as usize;
    l.header_timeout = duration_field(&f.header_timeout, l.header_timeout, false, ds);
    l.keepalive_timeout = duration_field(&f.keepalive_timeout, l.keepalive_timeout, false, ds);
    l.keepalive_requests = count_field(&f.keepalive_requests, l.keepalive_requests, 1, ds);
    l.body_timeout = duration_field(&f.body_timeout, l.body_timeout, false, ds);
    l.body_buffer_size = size_field(&f.body_buffer_size, l.body_buffer_size, ds);
    l.send_timeout = duration_field(&f.send_timeout, l.send_timeout, false, ds);
    l.websocket_idle_timeout = match &f.websocket_idle_timeout {
        Some(s) if s.value.0.trim() == "off" || s.value.0.trim() == "false" => None,
        v => Some(duration_field(v, Duration::ZERO, false, ds)).filter(|d| !d.is_zero()),
    };
    l.h2_max_concurrent_streams = count_field(
        &f.h2_max_concurrent_streams,
        l.h2_max_concurrent_streams,
        1,
        ds,
    );
    l
}

pub(super) fn check_name(kind: &str, name: &str, at: Pos, ds: &mut Diagnostics) {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        ds.error(
            at,
            format!("{kind} name '{name}' is not a valid name"),
            "use lowercase letters, digits, '-' and '_', starting with a letter or digit",
        );
    }
}

fn validate_listeners(file: &FileConfig, ds: &mut Diagnostics) -> Vec<ListenerConfig> {
    let mut out = Vec::new();
    let mut seen: HashMap<SocketAddr, String> = HashMap::new();
    if file.listeners.is_empty() {
        ds.error(
            Pos { line: 1, col: 1 },
            "no `listeners:` section",
            "add one, e.g. `listeners: {http: {address: 127.0.0.1:8080}}`",
        );
    }
    for (name, l) in &file.listeners {
        check_name("listener", name, pos(l), ds);
        let Some(addr) = parse_listen_addr(&l.value.address, ds) else {
            continue;
        };
        if let Some(other) = seen.insert(addr, name.clone()) {
            ds.error(
                pos(&l.value.address),
                format!("listeners '{other}' and '{name}' both use {addr}"),
                "give each listener its own address",
            );
        }
        out.push(ListenerConfig {
            name: name.clone(),
            addr,
            tls: l.value.tls.as_ref().is_some_and(|t| t.value),
            max_connections: count_field(&l.value.max_connections, defaults::MAX_CONNECTIONS, 1, ds)
                as usize,
            proxy_protocol: l.value.proxy_protocol.as_ref().is_some_and(|p| p.value),
        });
    }
    out
}

/// Parses `host:port` where host is an IP address (listeners bind, they do not
/// resolve names); reports a problem and returns `None` otherwise.
fn parse_listen_addr(s: &Spanned<Scalar>, ds: &mut Diagnostics) -> Option<SocketAddr> {
    let text = s.value.0.trim();
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Some(a);
    }
    let fix = if super::validate_upstream::is_placeholder(text) {
        "this is a placeholder left by `greenlight import-nginx`: put the IP address to listen on here".to_string()
    } else if let Some(port) = text.strip_prefix("*:") {
        format!("write `0.0.0.0:{port}` (all IPv4) or `[::]:{port}` (all IPv6)")
    } else if let Some(port) = text.strip_prefix("localhost:") {
        format!("write `127.0.0.1:{port}`")
    } else if text.parse::<u16>().is_ok() {
        format!("write an address with the port, e.g. `0.0.0.0:{text}`")
    } else {
        "write an IP address and port, e.g. `0.0.0.0:443` or `[::]:443`".to_string()
    };
    ds.error(pos(s), format!("'{text}' is not a listen address"), fix);
    None
}

fn validate_admin(file: &FileConfig, ds: &mut Diagnostics) -> Option<AdminConfig> {
    let default_addr: SocketAddr = defaults::ADMIN_ADDR.parse().ok()?;
    let Some(admin) = &file.admin else {
        return Some(AdminConfig {
            addr: default_addr,
            token_file: None,
            allowed_hosts: vec![],
        });
    };
    let addr = match &admin.value.address {
        Some(a) => parse_listen_addr(a, ds)?,
        None => default_addr,
    };
    let token_file = admin
        .value
        .token_file
        .as_ref()
        .map(|t| PathBuf::from(&t.value));
    if !addr.ip().is_loopback() && token_file.is_none() {
        let at = admin.value.address.as_ref().map(pos).unwrap_or(pos(admin));
        ds.error(
            at,
            format!("the admin API on {addr} would be reachable from the network without a token"),
            "bind it to 127.0.0.1 or set `token_file:`",
        );
    }
    for l in file.listeners.values() {
        if parse_quiet(&l.value.address.value.0) == Some(addr) {
            ds.error(
                admin.value.address.as_ref().map(pos).unwrap_or(pos(admin)),
                format!("the admin API and a listener both use {addr}"),
                "give the admin API its own port",
            );
        }
    }
    let mut allowed_hosts = Vec::new();
    for h in admin.value.allowed_hosts.iter().flat_map(|l| &l.value) {
        match normalize_allowed_host(&h.value, addr.port()) {
            Ok(n) => allowed_hosts.push(n),
            Err(why) => ds.error(
                pos(h),
                format!("admin.allowed_hosts: {why}"),
                "write a host name or address with an optional port, e.g. `admin.internal:9090` or `[fd00::1]:9090`",
            ),
        }
    }
    Some(AdminConfig {
        addr,
        token_file,
        allowed_hosts,
    })
}

fn parse_quiet(s: &str) -> Option<SocketAddr> {
    s.trim().parse().ok()
}

fn validate_sites(
    file: &FileConfig,
    upstreams: &HashSet<&str>,
    listeners: &[ListenerConfig],
    maps: &[String],
    ds: &mut Diagnostics,
) -> Vec<SiteConfig> {
    let mut out = Vec::new();
    // Pattern as written -> the site listing it.
    let mut owners: HashMap<String, String> = HashMap::new();
    let mut defaults = super::validate_site::Defaults::default();
    // From the file, so that a listener with a bad address still counts here
    // and its one problem is not reported twice.
    let has_tls_listener = listeners.iter().any(|l| l.tls)
        || file
            .listeners
            .values()
            .any(|l| l.value.tls.as_ref().is_some_and(|t| t.value));
    if file.sites.is_empty() {
        ds.error(
            Pos { line: 1, col: 1 },
            "no `sites:` section",
            "add a site with `hosts:` and `routes:`",
        );
    }
    for (name, s) in &file.sites {
        let site = &s.value;
        check_name("site", name, pos(s), ds);
        let bound = super::validate_listeners::site_listeners(name, s, file, listeners, ds);
        // A site bound to listeners shares hosts and defaults per listener:
        // `validate_listeners::check_sites` checks those, not the global maps.
        let (mut own_owners, mut own_defaults) = Default::default();
        let (owners, defaults) = match bound {
            Some(_) => (&mut own_owners, &mut own_defaults),
            None => (&mut owners, &mut defaults),
        };
        let default = super::validate_site::site_default(name, &site.default, defaults, ds);
        let hosts = super::validate_match::site_hosts(name, s, default.any(), owners, ds);
        let tls = site.tls.as_ref().and_then(|t| validate_tls(t, ds));
        let tls_origin = ds.origin(site.tls.as_ref().map(pos).unwrap_or(pos(s)));
        if tls.is_some() && !has_tls_listener {
            ds.error(
                tls_origin.pos,
                format!("site '{name}' has a certificate but no listener terminates TLS"),
                "add a listener with `tls: true`, e.g. `https: {address: 0.0.0.0:443, tls: true}`",
            );
        }
        let (plain_http, plain_redirect_to, plain_headers) =
            super::validate_site::plain_http(name, s, ds);
        let max_body_size = body_size(&site.max_body_size, Some(defaults::MAX_BODY_SIZE), ds);
        let buffering = switch_field(&site.request_buffering, true, ds);
        let retry = retry_statuses(&site.retry_statuses, Default::default(), ds);
        let mut steps = validate_steps::site_steps(site, maps, ds);
        steps.access =
            super::validate_access::access(&site.access, &Default::default(), upstreams, ds);
        let site_limits = super::validate_limits::SiteLimits::new(site, file, ds);
        let mut routes = Vec::new();
        let mut seen = super::validate_match::SeenRoutes::default();
        if site.routes.value.is_empty() {
            ds.error(
                pos(&site.routes),
                format!("site '{name}' has no routes"),
                "add `- path: /` with an `upstream:`",
            );
        }
        for r in &site.routes.value {
            let location = super::validate_match::route_location(name, r, &mut seen, ds);
            let (upstream, plan) =
                validate_steps::route_plan(r, location.as_ref(), &steps, upstreams, ds);
            let plan = site_limits.route_plan(plan, &r.value, file, ds);
            let Some(location) = location else { continue };
            let methods = super::validate_match::route_methods(&r.value.methods, ds);
            let scheme = super::validate_match::route_scheme(&r.value.scheme, tls.is_some(), ds);
            routes.push(RouteConfig {
                location,
                methods,
                scheme,
                upstream,
                plan,
                request_buffering: switch_field(&r.value.request_buffering, buffering, ds),
                max_body_size: body_size(&r.value.max_body_size, max_body_size, ds),
                retry_statuses: retry_statuses(&r.value.retry_statuses, retry, ds),
            });
        }
        super::validate_files::link_named(&site.routes.value, &routes, ds);
        out.push(SiteConfig {
            name: name.clone(),
            hosts,
            default,
            listeners: bound,
            client_auth: super::validate_client_auth::client_auth(name, site, tls.is_some(), ds),
            acme_names: match site.tls.as_ref().map(|t| &t.value) {
                Some(FileTls::Files { acme: Some(a), .. }) => a
                    .value
                    .iter()
                    .map(|n| n.value.trim().trim_end_matches('.').to_ascii_lowercase())
                    .collect(),
                _ => Vec::new(),
            },
            tls,
            tls_origin,
            plain_http,
            plain_redirect_to,
            max_body_size,
            keepalive_timeout: site
                .keepalive_timeout
                .as_ref()
                .map(|_| duration_field(&site.keepalive_timeout, Duration::ZERO, true, ds)),
            underscores_in_headers: site
                .underscores_in_headers
                .as_ref()
                .is_some_and(|u| u.value),
            client_ip: None, // filled by validate_client_ip
            routes,
            plan: site_limits.site_plan(validate_steps::site_plan(&steps, plain_headers)),
        });
    }
    super::validate_listeners::check_sites(file, &out, listeners, ds);
    if has_tls_listener && !out.iter().any(|s| s.tls.is_some()) && !out.is_empty() {
        let l = listeners.iter().find(|l| l.tls).map(|l| l.name.clone());
        let at = l
            .as_ref()
            .and_then(|n| file.listeners.get(n))
            .map(pos)
            .unwrap_or_default();
        ds.error(
            at,
            format!(
                "listener '{}' terminates TLS but no site has a certificate",
                l.unwrap_or_default()
            ),
            "add `tls:` to a site, or remove `tls: true` from the listener",
        );
    }
    out
}

fn validate_tls(t: &Spanned<FileTls>, ds: &mut Diagnostics) -> Option<TlsSource> {
    match &t.value {
        FileTls::Mode(m) if m == "self_signed" => Some(TlsSource::SelfSigned),
        FileTls::Mode(m) if m == "acme" => Some(TlsSource::Acme),
        FileTls::Mode(m) => {
            ds.error(
                pos(t),
                format!("tls '{m}' is not known"),
                "use `self_signed`, `acme`, or a map `{cert: PATH, key: PATH}`",
            );
            None
        }
        FileTls::Files {
            cert,
            key,
            acme,
            unknown,
        } => {
            for u in unknown {
                ds.error(
                    pos(u),
                    format!("unknown key '{}' in tls", u.value),
                    "tls takes `cert` and `key`, or `acme: [names]`",
                );
            }
            if let Some(a) = acme {
                if cert.is_some() || key.is_some() {
                    ds.error(
                        pos(a),
                        "tls has both `acme` and `cert`/`key`",
                        "either greenlight orders the certificate (`acme: [names]`) or you give it (`cert`, `key`)",
                    );
                }
                return Some(TlsSource::Acme);
            }
            match (cert, key) {
                (Some(c), Some(k)) => Some(TlsSource::Files {
                    cert: PathBuf::from(&c.value),
                    key: PathBuf::from(&k.value),
                }),
                (c, _) => {
                    let missing = if c.is_none() { "cert" } else { "key" };
                    ds.error(
                        pos(t),
                        format!("tls is missing `{missing}`"),
                        "give both `cert:` (PEM chain) and `key:` (PEM private key)",
                    );
                    None
                }
            }
        }
    }
}

/// A `max_body_size` value in bytes (`0` = unlimited: `None`), or
/// `inherited` when the key is absent.
fn body_size(
    value: &Option<Spanned<Scalar>>,
    inherited: Option<u64>,
    ds: &mut Diagnostics,
) -> Option<u64> {
    let Some(v) = value else { return inherited };
    match parse_size(&v.value.0) {
        Some(0) => None,
        Some(n) => Some(n),
        None => {
            ds.error(
                pos(v),
                format!("'{}' is not a size", v.value.0),
                "write bytes with an optional unit: `512`, `64k`, `10m`, `1g`; `0` = unlimited",
            );
            inherited
        }
    }
}

/// A `retry_statuses` list as a set, or `inherited` when the key is absent.
fn retry_statuses(
    value: &Option<Spanned<Vec<Spanned<u16>>>>,
    inherited: RetryStatuses,
    ds: &mut Diagnostics,
) -> RetryStatuses {
    let Some(list) = value else { return inherited };
    let statuses: Vec<u16> = list.value.iter().map(|s| s.value).collect();
    RetryStatuses::from_statuses(&statuses).unwrap_or_else(|bad| {
        let at = list
            .value
            .iter()
            .find(|s| s.value == bad)
            .map_or(pos(list), pos);
        let allowed: Vec<String> = RETRYABLE.iter().map(u16::to_string).collect();
        ds.error(
            at,
            format!("{bad} is not a status greenlight retries on"),
            format!("use some of {}", allowed.join(", ")),
        );
        inherited
    })
}
