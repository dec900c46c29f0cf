//! `cluster:` → [`ClusterConfig`]: endpoints normalised to URLs, the prefix
//! checked, the lease TTL in whole seconds (etcd's unit). Fixed at start: a
//! reload that changes it is reported as "restart needed" (`state::apply`).

use super::diag::Diagnostics;
use super::file_cluster::FileCluster;
use super::validate::pos;
use super::values::parse_duration;
use serde_saphyr::Spanned;
use std::path::PathBuf;
use std::time::Duration;

/// Default `cluster.lease_ttl`.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);

/// A validated `cluster:` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// etcd endpoints as URLs (`http://127.0.0.1:2379`).
    pub endpoints: Vec<String>,
    /// Key prefix without a trailing slash (`/greenlight/shop`).
    pub prefix: String,
    /// Member-key lease TTL, whole seconds.
    pub lease_ttl: Duration,
    /// etcd user and password.
    pub credentials: Option<(String, String)>,
    /// CA certificate (PEM) for `https://` endpoints.
    pub ca: Option<PathBuf>,
}

/// Validates `cluster:`; every problem is reported, `None` when any.
pub(super) fn validate(c: &Spanned<FileCluster>, ds: &mut Diagnostics) -> Option<ClusterConfig> {
    let before = ds.is_empty();
    let f = &c.value;
    let tls = f.ca.is_some();
    if f.etcd.value.is_empty() {
        ds.error(
            pos(&f.etcd),
            "`cluster.etcd` lists no endpoint",
            "name every etcd member, e.g. `etcd: [10.0.0.1:2379, 10.0.0.2:2379, 10.0.0.3:2379]`",
        );
    }
    let mut endpoints = Vec::new();
    for e in &f.etcd.value {
        match endpoint(e.value.0.trim(), tls) {
            Ok(url) => endpoints.push(url),
            Err(what) => ds.error(
                pos(e),
                what,
                "write `host:port` or `http://host:port` (`https://` with `ca:`)",
            ),
        }
    }
    let prefix = f.prefix.value.trim().to_string();
    if !prefix.starts_with('/')
        || prefix.len() < 2
        || prefix.ends_with('/')
        || prefix.contains(char::is_whitespace)
    {
        ds.error(
            pos(&f.prefix),
            format!("'{prefix}' is not a key prefix"),
            "write an absolute path without a trailing slash, e.g. `/greenlight/shop`",
        );
    }
    let lease_ttl = match &f.lease_ttl {
        None => DEFAULT_LEASE_TTL,
        Some(s) => match parse_duration(&s.value.0) {
            Some(d) if d >= Duration::from_secs(2) && d.subsec_nanos() == 0 => d,
            _ => {
                ds.error(
                    pos(s),
                    format!("'{}' is not a lease TTL", s.value.0),
                    "write whole seconds, at least 2 (etcd leases count seconds): `10s`",
                );
                DEFAULT_LEASE_TTL
            }
        },
    };
    let credentials = match (&f.username, &f.password) {
        (Some(u), Some(p)) => Some((u.value.clone(), p.value.clone())),
        (None, None) => None,
        (Some(one), None) | (None, Some(one)) => {
            ds.error(
                pos(one),
                "`cluster.username` and `cluster.password` go together",
                "give both (the password can come from the environment: `password: {$ETCD_PASSWORD}`)",
            );
            None
        }
    };
    if !tls
        && let Some(e) = f
            .etcd
            .value
            .iter()
            .find(|e| e.value.0.starts_with("https://"))
    {
        ds.error(
            pos(e),
            "an https:// etcd endpoint needs `cluster.ca`",
            "add `ca: /path/to/etcd-ca.pem` (the CA that signed etcd's certificate)",
        );
    }
    if !before || !ds.is_empty() {
        return None;
    }
    Some(ClusterConfig {
        endpoints,
        prefix,
        lease_ttl,
        credentials,
        ca: f.ca.as_ref().map(|c| PathBuf::from(&c.value)),
    })
}

/// `host:port` → `http(s)://host:port`; a URL must have a port and no path.
fn endpoint(text: &str, tls: bool) -> Result<String, String> {
    let (scheme, rest) = match text.split_once("://") {
        Some((s @ ("http" | "https"), rest)) => (s, rest),
        Some((s, _)) => return Err(format!("'{text}': etcd speaks http or https, not {s}")),
        None => (if tls { "https" } else { "http" }, text),
    };
    match super::values::split_authority(rest) {
        Some((host, Some(_))) if !host.is_empty() && !rest.contains('/') => {
            Ok(format!("{scheme}://{rest}"))
        }
        _ => Err(format!("'{text}' is not an etcd endpoint (host:port)")),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::load_str;
    use std::path::Path;

    const BASE: &str = "listeners: {http: {address: 127.0.0.1:8080}}
sites: {a: {hosts: [a.test], routes: [{path: /, upstream: app}]}}
upstreams: {app: {active: blue, pools: {blue: [127.0.0.1:8001]}}}
";

    fn load(cluster: &str) -> Result<crate::config::Config, String> {
        let text = format!("{BASE}cluster:\n{cluster}");
        load_str(Path::new("g.yaml"), &text).map_err(|e| {
            e.diagnostics()
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        })
    }

    #[test]
    fn a_cluster_section_compiles_with_defaults() {
        let c = load("  etcd: [127.0.0.1:2379, 'http://[::1]:2379']\n  prefix: /greenlight/shop\n")
            .unwrap()
            .cluster
            .unwrap();
        assert_eq!(c.endpoints, ["http://127.0.0.1:2379", "http://[::1]:2379"]);
        assert_eq!(c.prefix, "/greenlight/shop");
        assert_eq!(c.lease_ttl, super::DEFAULT_LEASE_TTL);
        assert_eq!(c.credentials, None);
    }

    #[test]
    fn without_a_cluster_section_there_is_none() {
        let c = load_str(Path::new("g.yaml"), BASE).unwrap();
        assert!(c.cluster.is_none());
    }

    #[test]
    fn bad_values_are_named_at_their_position_with_the_fix() {
        let e = load("  etcd: [nohost, 'ftp://x:1']\n  prefix: greenlight/\n  lease_ttl: 1500ms\n  username: u\n")
            .unwrap_err();
        assert!(
            e.contains("g.yaml:5:10: 'nohost' is not an etcd endpoint"),
            "{e}"
        );
        assert!(
            e.contains("g.yaml:5:18: 'ftp://x:1': etcd speaks http or https"),
            "{e}"
        );
        assert!(
            e.contains("g.yaml:6:11: 'greenlight/' is not a key prefix"),
            "{e}"
        );
        assert!(e.contains("/greenlight/shop"), "{e}");
        assert!(
            e.contains("g.yaml:7:14: '1500ms' is not a lease TTL"),
            "{e}"
        );
        assert!(
            e.contains("g.yaml:8:13: `cluster.username` and `cluster.password` go together"),
            "{e}"
        );
    }

    #[test]
    fn https_needs_a_ca_and_ca_makes_bare_endpoints_https() {
        let e = load("  etcd: ['https://e1:2379']\n  prefix: /g\n").unwrap_err();
        assert!(
            e.contains("g.yaml:5:10: an https:// etcd endpoint needs `cluster.ca`"),
            "{e}"
        );
        let c = load("  etcd: [e1:2379]\n  prefix: /g\n  ca: ca.pem\n")
            .unwrap()
            .cluster
            .unwrap();
        assert_eq!(c.endpoints, ["https://e1:2379"]);
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(load("  etcd: [a:1]\n  prefix: /g\n  ttl: 3s\n").is_err());
    }
}
