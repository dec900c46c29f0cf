//! Validation of `upstreams:`: pools and their servers (`host:port` or
//! `{address, weight, backup}`), timeouts, health checks, `balance`, and the
//! HTTPS keys (`tls`, `sni`, `ca`, `verify`, `http2`).
//!
//! Two kinds of I/O happen here, at load time only: resolving server host
//! names, and reading the `ca:` file (so that a missing or unparsable file is
//! an error at its line, not a failed handshake later).

use super::diag::{Diagnostics, Pos};
use super::file::{FileBalance, FileServer, FileUpstream, Scalar};
use super::model::*;
use super::validate::{check_name, pos};
use super::values::{closest, count_field, duration_field, parse_status_range};
use crate::upstream::addr::{self, ServerAddr, UnixAddrError};
use crate::upstream::balance::HashKey;
use serde_saphyr::Spanned;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub(super) fn validate_upstream(
    name: &str,
    u: &Spanned<FileUpstream>,
    ds: &mut Diagnostics,
) -> Option<UpstreamConfig> {
    check_name("upstream", name, pos(u), ds);
    let f = &u.value;
    let mut pools = Vec::new();
    if f.pools.value.is_empty() {
        ds.error(
            pos(&f.pools),
            format!("upstream '{name}' has no pools"),
            "add a pool, e.g. `pools: {main: [127.0.0.1:3000]}`",
        );
    }
    for (pname, servers) in &f.pools.value {
        check_name("pool", pname, pos(servers), ds);
        if servers.value.is_empty() {
            ds.error(
                pos(servers),
                format!("pool '{pname}' of upstream '{name}' has no servers"),
                "list at least one `host:port`",
            );
        }
        let mut list = Vec::new();
        let tls_on = f.tls.as_ref().is_some_and(|t| t.value);
        for s in &servers.value {
            if let Some(server) = validate_server(s, tls_on, ds) {
                list.push(server);
            }
        }
        if !list.is_empty() && list.iter().all(|s| s.backup) {
            ds.error(
                pos(servers),
                format!("every server of pool '{pname}' of upstream '{name}' is a backup"),
                "backups only take over while a primary is down: make at least one server a primary (remove `backup: true`)",
            );
        }
        pools.push(PoolConfig {
            name: pname.clone(),
            servers: list,
        });
    }
    if !f.pools.value.contains_key(&f.active.value) {
        let fix = match closest(&f.active.value, f.pools.value.keys().map(String::as_str)) {
            Some(c) => format!("did you mean '{c}'?"),
            None => "name one of the pools under `pools:`".to_string(),
        };
        ds.error(
            pos(&f.active),
            format!(
                "active pool '{}' is not a pool of upstream '{name}'",
                f.active.value
            ),
            fix,
        );
    }
    let dur = |v: &Option<Spanned<Scalar>>, default: Duration, ds: &mut Diagnostics| {
        duration_field(v, default, true, ds)
    };
    let health = f.health.as_ref().map(|h| validate_health(h, ds));
    let max_fails = count_field(&f.max_fails, defaults::MAX_FAILS, 0, ds);
    let fail_timeout = dur(&f.fail_timeout, defaults::FAIL_TIMEOUT, ds);
    let balance = validate_balance(&f.balance, ds);
    let tls = validate_tls(f, ds);
    if let (Some(t), true) = (&f.tls, tls.is_some()) {
        refuse_tls_to_unix(name, &pools, pos(t), ds);
    }
    Some(UpstreamConfig {
        balance,
        tls,
        name: name.to_string(),
        health,
        max_fails,
        fail_timeout,
        active: f.active.value.clone(),
        active_origin: ds.origin(pos(&f.active)),
        pools,
        drain_timeout: dur(&f.drain_timeout, defaults::DRAIN_TIMEOUT, ds),
        connect_timeout: dur(&f.connect_timeout, defaults::CONNECT_TIMEOUT, ds),
        read_timeout: dur(&f.read_timeout, defaults::READ_TIMEOUT, ds),
        write_timeout: dur(&f.write_timeout, defaults::WRITE_TIMEOUT, ds),
    })
}

fn validate_health(
    h: &Spanned<crate::config::file::FileHealth>,
    ds: &mut Diagnostics,
) -> HealthConfig {
    let f = &h.value;
    if !f.path.value.starts_with('/') {
        ds.error(
            pos(&f.path),
            format!("health path '{}' does not start with '/'", f.path.value),
            "write e.g. `/healthz`",
        );
    }
    let dur = |v: &Option<Spanned<Scalar>>, default: Duration, ds: &mut Diagnostics| {
        duration_field(v, default, false, ds)
    };
    let count = |v: &Option<Spanned<Scalar>>, default: u32, ds: &mut Diagnostics| {
        count_field(v, default, 1, ds)
    };
    let expect_status = match &f.expect_status {
        None => (200, 299),
        Some(s) => parse_status_range(&s.value.0).unwrap_or_else(|| {
            ds.error(
                pos(s),
                format!("'{}' is not a status or range", s.value.0),
                "write `2xx`, `200`, or `200-399`",
            );
            (200, 299)
        }),
    };
    HealthConfig {
        path: f.path.value.clone(),
        interval: dur(&f.interval, defaults::HEALTH_INTERVAL, ds),
        timeout: dur(&f.timeout, defaults::HEALTH_TIMEOUT, ds),
        healthy_after: count(&f.healthy_after, defaults::HEALTHY_AFTER, ds),
        unhealthy_after: count(&f.unhealthy_after, defaults::UNHEALTHY_AFTER, ds),
        expect_status,
    }
}

/// A `unix:/path` server: the syntax only (see [`addr::parse_unix`] for why
/// the socket need not exist at load).
fn unix_server(text: &str, path: &str, at: Pos, ds: &mut Diagnostics) -> Option<ServerAddr> {
    match addr::parse_unix(path) {
        Ok(a) => Some(a),
        Err(UnixAddrError::NotAbsolute) => {
            ds.error(
                at,
                format!("server '{text}' is not an absolute socket path"),
                "write `unix:` followed by the socket's absolute path, e.g. `unix:/run/app/gunicorn.sock`",
            );
            None
        }
        Err(UnixAddrError::TooLong) => {
            ds.error(
                at,
                format!("server '{text}': the socket path is longer than 107 bytes, the most a unix socket address holds"),
                "use a shorter path for the app's socket (e.g. under /run)",
            );
            None
        }
    }
}

/// TLS over a unix socket is not supported (nginx allows it; it is rare, and
/// the socket's file permissions already guard it).
fn refuse_tls_to_unix(name: &str, pools: &[PoolConfig], at: Pos, ds: &mut Diagnostics) {
    let unix = pools
        .iter()
        .flat_map(|p| &p.servers)
        .find(|s| s.addr.unix_path().is_some());
    if let Some(s) = unix {
        ds.error(
            at,
            format!(
                "upstream '{name}' has `tls: true` and a unix socket server '{}'",
                s.label
            ),
            "remove `tls: true` (greenlight speaks plain HTTP over unix sockets), or list `host:port` servers",
        );
    }
}

/// Resolves an upstream `host:port` at load time. An IPv4 result is preferred
/// for names (`localhost` -> 127.0.0.1), matching what apps bound to
/// `localhost` usually listen on.
fn resolve_server(text: &str, at: Pos, ds: &mut Diagnostics) -> Option<ServerAddr> {
    let text = text.trim();
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Some(ServerAddr::Inet(a));
    }
    if let Some(path) = text.strip_prefix(addr::UNIX_PREFIX) {
        return unix_server(text, path, at, ds);
    }
    if is_placeholder(text) {
        ds.error(
            at,
            format!("server '{text}' is a placeholder"),
            "`greenlight import-nginx` could not convert this upstream address: put the app's `host:port` here",
        );
        return None;
    }
    let bad = |ds: &mut Diagnostics, what: String| {
        ds.error(
            at,
            what,
            "write `host:port` with an IP address or a resolvable name, e.g. `127.0.0.1:3000`",
        )
    };
    let Some((host, port)) = text.rsplit_once(':') else {
        bad(ds, format!("server '{text}' has no port"));
        return None;
    };
    if port.parse::<u16>().is_err() {
        bad(ds, format!("server '{text}' has no valid port"));
        return None;
    }
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        bad(ds, format!("server '{text}' has no valid host"));
        return None;
    }
    match text.to_socket_addrs() {
        Ok(addrs) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            let pick = addrs
                .iter()
                .find(|a| a.is_ipv4())
                .or(addrs.first())
                .copied();
            if pick.is_none() {
                bad(ds, format!("host '{host}' resolved to no address"));
            }
            pick.map(ServerAddr::Inet)
        }
        Err(e) => {
            bad(ds, format!("cannot resolve '{host}': {e}"));
            None
        }
    }
}

/// The address placeholder `greenlight import-nginx` writes where it could
/// not convert an nginx address (`EDIT-ME:443`).
pub(super) fn is_placeholder(text: &str) -> bool {
    text.to_ascii_uppercase().starts_with("EDIT-ME")
}

/// A server written as a URL, `http://host[:port][/]` or `https://…` (as
/// Caddy's `reverse_proxy` and nginx's `proxy_pass` take it, and as an
/// environment variable often holds it): the `host:port` (port 80 or 443
/// when left out) and whether it said https. `None` for any other text.
fn server_url(text: &str) -> Option<(String, bool)> {
    let (rest, https) = if let Some(r) = text.strip_prefix("http://") {
        (r, false)
    } else if let Some(r) = text.strip_prefix("https://") {
        (r, true)
    } else {
        return None;
    };
    let hostport = rest.strip_suffix('/').unwrap_or(rest);
    let has_port = match hostport.rsplit_once(':') {
        Some((h, p)) => {
            !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (!h.starts_with('[') || h.ends_with(']'))
        }
        None => false,
    };
    let port = if https { 443 } else { 80 };
    Some(if has_port {
        (hostport.to_string(), https)
    } else {
        (format!("{hostport}:{port}"), https)
    })
}

/// One pool entry: `host:port`, `http(s)://host[:port]`, or `{address,
/// weight, backup}`. `tls_on`: the upstream has `tls: true`.
fn validate_server(
    s: &Spanned<FileServer>,
    tls_on: bool,
    ds: &mut Diagnostics,
) -> Option<ServerConfig> {
    let f = &s.value;
    for u in &f.unknown {
        ds.error(
            pos(u),
            format!("unknown key '{}' in a server", u.value),
            "a server takes `address`, `weight`, `backup`, `max_fails` and `fail_timeout`",
        );
    }
    let Some(address) = &f.address else {
        ds.error(
            pos(s),
            "this server has no `address`",
            "write `{address: 127.0.0.1:3000, weight: 2}` or just `127.0.0.1:3000`",
        );
        return None;
    };
    // The short form carries no position of its own: use the entry's.
    let at = if address.referenced.line() == 0 {
        pos(s)
    } else {
        pos(address)
    };
    let weight = match &f.weight {
        None => 1,
        Some(w) => match w.value.0.trim().parse::<u32>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                ds.error(
                    pos(w),
                    format!("weight '{}' is not a whole number from 1 to 1000", w.value.0),
                    "write e.g. `weight: 3` (a server with weight 3 gets three times the requests of one with weight 1); to take a server out, remove it or mark it `backup: true`",
                );
                1
            }
        },
    };
    // Per-server passive health (nginx `server … max_fails=N
    // fail_timeout=T`): absent keys follow the upstream's values.
    let max_fails = f
        .max_fails
        .is_some()
        .then(|| super::values::count_field(&f.max_fails, 0, 0, ds));
    let fail_timeout = f
        .fail_timeout
        .is_some()
        .then(|| super::values::duration_field(&f.fail_timeout, Duration::ZERO, false, ds));
    let written = address.value.0.trim();
    let label = match server_url(written) {
        Some((hostport, https)) => {
            if https != tls_on {
                let (said, fix) = if https {
                    (
                        "https",
                        "add `tls: true` to the upstream (TLS is set per upstream), or write `http://`",
                    )
                } else {
                    (
                        "http",
                        "write `https://` or just `host:port`: the upstream has `tls: true`",
                    )
                };
                ds.error(
                    at,
                    format!("server '{written}' says {said}, which the upstream's `tls` does not"),
                    fix,
                );
            }
            if hostport.contains('/') {
                ds.error(
                    at,
                    format!("server '{written}' has a path"),
                    "a server is only an address: rewrite paths on the route (`strip_prefix`, `rewrite`)",
                );
                return None;
            }
            hostport
        }
        None => written.to_string(),
    };
    let addr = resolve_server(&label, at, ds)?;
    Some(ServerConfig {
        label,
        addr,
        weight,
        backup: f.backup.as_ref().is_some_and(|b| b.value),
        max_fails,
        fail_timeout,
    })
}

fn validate_balance(b: &Option<Spanned<FileBalance>>, ds: &mut Diagnostics) -> Balance {
    let Some(b) = b else {
        return Balance::RoundRobin;
    };
    const FIX: &str = "write `round_robin`, `least_conn`, `ip_hash`, or `{hash: \"$request_uri\"}`";
    match &b.value {
        FileBalance::Method(m) => match m.trim() {
            "round_robin" => Balance::RoundRobin,
            "least_conn" => Balance::LeastConn,
            "ip_hash" => Balance::IpHash,
            "hash" => {
                ds.error(pos(b), "`hash` needs a key", FIX);
                Balance::RoundRobin
            }
            other => {
                let known = ["round_robin", "least_conn", "ip_hash"];
                let fix = match closest(other, known.into_iter()) {
                    Some(c) => format!("did you mean `{c}`? {FIX}"),
                    None => FIX.to_string(),
                };
                ds.error(pos(b), format!("unknown balance method '{other}'"), fix);
                Balance::RoundRobin
            }
        },
        FileBalance::Hash(key, unknown) => {
            for u in unknown {
                ds.error(pos(u), format!("unknown key '{}' in balance", u.value), FIX);
            }
            let Some(key) = key else {
                if unknown.is_empty() {
                    ds.error(pos(b), "balance map has no `hash` key", FIX);
                }
                return Balance::RoundRobin;
            };
            match HashKey::parse(&key.value) {
                Ok(k) => Balance::Hash(k),
                Err(why) => {
                    ds.error(
                        pos(key),
                        why,
                        "build the key from request variables, e.g. `$request_uri` or `$cookie_session`",
                    );
                    Balance::RoundRobin
                }
            }
        }
    }
}

/// `tls`, `sni`, `ca`, `verify`, `http2`.
fn validate_tls(f: &FileUpstream, ds: &mut Diagnostics) -> Option<UpstreamTls> {
    let on = f.tls.as_ref().is_some_and(|t| t.value);
    if !on {
        let mut only_with_tls = |key: &str, at: Option<Pos>| {
            if let Some(at) = at {
                let fix = if key == "http2" {
                    "add `tls: true` (greenlight speaks HTTP/2 to upstreams over TLS only; cleartext h2c is not supported)".to_string()
                } else {
                    format!("add `tls: true` to use HTTPS to this upstream, or remove `{key}`")
                };
                ds.error(at, format!("`{key}` only applies with `tls: true`"), fix);
            }
        };
        only_with_tls("sni", f.sni.as_ref().map(pos));
        only_with_tls("ca", f.ca.as_ref().map(pos));
        only_with_tls("verify", f.verify.as_ref().map(pos));
        only_with_tls("http2", f.http2.as_ref().map(pos));
        return None;
    }
    let sni = f.sni.as_ref().and_then(|s| {
        let v = s.value.trim().to_ascii_lowercase();
        if pingora::tls::ServerName::try_from(v.as_str()).is_err() || v.is_empty() {
            ds.error(
                pos(s),
                format!("sni '{}' is not a host name", s.value),
                "write the name the servers' certificate is for, e.g. `sni: api.internal`",
            );
            return None;
        }
        Some(v)
    });
    let verify = f.verify.as_ref().is_none_or(|v| v.value);
    let ca = f.ca.as_ref().and_then(|c| {
        if !verify {
            ds.error(
                pos(c),
                "`ca` has no effect with `verify: false`",
                "remove `verify: false` to check the servers against this CA, or remove `ca`",
            );
        }
        read_ca(c, ds)
    });
    Some(UpstreamTls {
        sni,
        ca,
        verify,
        http2: f.http2.as_ref().is_some_and(|h| h.value),
    })
}

/// Reads and parses the `ca:` PEM file now, so that a bad file is a
/// positioned error instead of every handshake failing later.
fn read_ca(c: &Spanned<String>, ds: &mut Diagnostics) -> Option<CaCerts> {
    let path = PathBuf::from(c.value.trim());
    let fail = |ds: &mut Diagnostics, what: String| {
        ds.error(
            pos(c),
            what,
            "give a PEM file with the CA certificate(s) that signed the servers' certificates",
        )
    };
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) => {
            fail(ds, format!("cannot read ca file '{}': {e}", path.display()));
            return None;
        }
    };
    let mut der = Vec::new();
    for item in rustls_pemfile_certs(&text) {
        match item {
            Ok(d) => {
                if x509_parser::parse_x509_certificate(&d).is_err() {
                    fail(
                        ds,
                        format!(
                            "ca file '{}' holds a certificate that does not parse",
                            path.display()
                        ),
                    );
                    return None;
                }
                der.push(d);
            }
            Err(e) => {
                fail(
                    ds,
                    format!("ca file '{}' is not valid PEM: {e}", path.display()),
                );
                return None;
            }
        }
    }
    if der.is_empty() {
        fail(
            ds,
            format!("ca file '{}' has no CERTIFICATE block", path.display()),
        );
        return None;
    }
    Some(CaCerts {
        path,
        der: Arc::new(der),
    })
}

/// The DER certificates of the PEM `CERTIFICATE` blocks in `pem`.
fn rustls_pemfile_certs(pem: &[u8]) -> Vec<Result<Vec<u8>, String>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .map(|r| r.map(|c| c.to_vec()).map_err(|e| e.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::config::load_str;
    use crate::config::model::Balance;
    use std::path::Path;

    fn problems(upstream: &str) -> Vec<String> {
        let yaml = format!(
            "listeners:\n  http:\n    address: 127.0.0.1:8080\nsites:\n  main:\n    hosts: [example.com]\n    routes:\n      - path: /\n        upstream: app\nupstreams:\n  app:\n{upstream}"
        );
        match load_str(Path::new("g.yaml"), &yaml) {
            Ok(_) => vec![],
            Err(e) => e.diagnostics().iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn weights_backups_and_balance_load() {
        let yaml = "listeners:\n  http:\n    address: 127.0.0.1:8080\nsites:\n  main:\n    hosts: [example.com]\n    routes:\n      - path: /\n        upstream: app\nupstreams:\n  app:\n    active: blue\n    balance: {hash: \"$request_uri\"}\n    pools:\n      blue:\n        - 127.0.0.1:3000\n        - {address: 127.0.0.1:3001, weight: 3}\n        - {address: 127.0.0.1:3002, backup: true}\n";
        let cfg = load_str(Path::new("g.yaml"), yaml).expect("valid");
        let u = cfg.upstream("app").expect("app");
        assert!(matches!(u.balance, Balance::Hash(_)));
        let s = &u.pools[0].servers;
        assert_eq!(
            s.iter().map(|s| (s.weight, s.backup)).collect::<Vec<_>>(),
            [(1, false), (3, false), (1, true)]
        );
        assert!(u.tls.is_none());
    }

    #[test]
    fn bad_balancing_keys_are_positioned_errors_with_the_fix() {
        let p = problems(
            "    active: blue\n    balance: leastconn\n    pools:\n      blue:\n        - {address: 127.0.0.1:3000, weight: 0}\n        - {address: 127.0.0.1:3001, backup: true, wieght: 2}\n",
        );
        assert_eq!(p.len(), 3, "{p:#?}");
        assert!(
            p[0].starts_with(
                "g.yaml:13:14: unknown balance method 'leastconn' — did you mean `least_conn`?"
            ),
            "{}",
            p[0]
        );
        assert!(
            p[1].starts_with("g.yaml:16:45: weight '0' is not a whole number from 1 to 1000"),
            "{}",
            p[1]
        );
        assert!(
            p[2].starts_with("g.yaml:17:51: unknown key 'wieght' in a server"),
            "{}",
            p[2]
        );
        let p = problems(
            "    active: blue\n    pools:\n      blue:\n        - {address: 127.0.0.1:3001, backup: true}\n",
        );
        assert_eq!(p.len(), 1, "{p:#?}");
        assert!(
            p[0].starts_with(
                "g.yaml:15:9: every server of pool 'blue' of upstream 'app' is a backup"
            ),
            "{}",
            p[0]
        );
        let p = problems(
            "    active: blue\n    balance: {hash: \"$uri$bogus\"}\n    pools:\n      blue: [127.0.0.1:3000]\n",
        );
        assert_eq!(p.len(), 1, "{p:#?}");
        assert!(
            p[0].starts_with("g.yaml:13:21: unknown variable '$bogus' in hash key"),
            "{}",
            p[0]
        );
    }

    #[test]
    fn tls_keys_need_tls_and_a_readable_ca() {
        let p = problems(
            "    active: blue\n    sni: api.internal\n    http2: true\n    pools:\n      blue: [127.0.0.1:3000]\n",
        );
        assert_eq!(p.len(), 2, "{p:#?}");
        assert!(
            p[0].starts_with("g.yaml:13:10: `sni` only applies with `tls: true`"),
            "{}",
            p[0]
        );
        assert!(p[1].contains("h2c is not supported"), "{}", p[1]);
        let p = problems(
            "    active: blue\n    tls: true\n    ca: /nonexistent/ca.pem\n    pools:\n      blue: [127.0.0.1:3000]\n",
        );
        assert_eq!(p.len(), 1, "{p:#?}");
        assert!(
            p[0].starts_with("g.yaml:14:9: cannot read ca file '/nonexistent/ca.pem'"),
            "{}",
            p[0]
        );
        let dir = tempfile::tempdir().expect("dir");
        let bad = dir.path().join("ca.pem");
        std::fs::write(&bad, "not a certificate\n").expect("write");
        let p = problems(&format!(
            "    active: blue\n    tls: true\n    ca: {}\n    pools:\n      blue: [127.0.0.1:3000]\n",
            bad.display()
        ));
        assert_eq!(p.len(), 1, "{p:#?}");
        assert!(p[0].contains("has no CERTIFICATE block"), "{}", p[0]);
    }
}
