//! Per-listener host tables, for configs where some site has `listeners:`.
//!
//! nginx chooses a server block by the address:port the request arrived on
//! first, then by name, with a default server per address:port. A site with
//! `listeners:` is in the tables of those listeners only (a site without is
//! in every one), so one host may go to different sites on different
//! listeners and each listener has its own default site and certificate
//! fallback (the same choice `tls::store` makes for that listener's
//! handshakes).
//!
//! Built only when some site is bound: otherwise [`Router::view`] is one
//! `Option` check away from the shared table, and the proxy never looks up
//! the connection's local address.

use super::{HostView, Router};
use crate::config::Config;
use std::net::SocketAddr;

/// The host tables of each listener, in config order.
#[derive(Debug)]
pub(super) struct ByListener {
    /// Per listener (index into `Config::listeners`).
    views: Vec<HostView>,
    /// The listeners' bound addresses, same order.
    addrs: Vec<SocketAddr>,
}

impl ByListener {
    /// The tables of `config`, or `None` when no site has `listeners:`.
    pub(super) fn build(config: &Config) -> Option<Box<ByListener>> {
        if config.sites.iter().all(|s| s.listeners.is_none()) {
            return None;
        }
        let views = (0..config.listeners.len())
            .map(|l| {
                let mut v = HostView::default();
                for (i, s) in config.sites.iter().enumerate() {
                    if s.listeners.as_ref().is_none_or(|ls| ls.contains(&l)) {
                        v.add_site(i, s);
                    }
                }
                v
            })
            .collect();
        let addrs = config.listeners.iter().map(|l| l.addr).collect();
        Some(Box::new(ByListener { views, addrs }))
    }
}

/// The listener (index into `addrs`) a connection to `local` was accepted
/// by: the one bound to exactly that address, else the wildcard one of the
/// same family and port (`0.0.0.0:80` and `[::]:80` are two listeners).
pub(crate) fn listener_at(addrs: &[SocketAddr], local: SocketAddr) -> Option<usize> {
    addrs
        .iter()
        .position(|a| *a == local)
        .or_else(|| addrs.iter().position(|a| crate::listen::accepts(*a, local)))
}

impl Router {
    /// The tables a request on `listener` consults.
    pub(super) fn view(&self, listener: Option<usize>) -> &HostView {
        match (&self.by_listener, listener) {
            (Some(b), Some(l)) => b.views.get(l).unwrap_or(&self.all),
            _ => &self.all,
        }
    }

    /// Whether routing depends on the listener (some site has
    /// `listeners:`); when not, callers need not find it.
    pub fn by_listener(&self) -> bool {
        self.by_listener.is_some()
    }

    /// The listener a connection whose local address is `local` arrived
    /// on, for [`super::RouteInput::listener`]; `None` when no site has
    /// `listeners:` (the address is then not even looked at).
    pub fn listener_of(&self, local: Option<SocketAddr>) -> Option<usize> {
        let b = self.by_listener.as_ref()?;
        listener_at(&b.addrs, local?)
    }

    /// [`Router::listener_of`] for a Pingora connection digest (its local
    /// address is cached there: no system call per request).
    pub fn listener_of_digest(&self, digest: Option<&pingora::protocols::Digest>) -> Option<usize> {
        self.by_listener.as_ref()?;
        let local = digest
            .and_then(|d| d.socket_digest.as_ref())
            .and_then(|s| s.local_addr())
            .and_then(|a| a.as_inet())
            .copied();
        self.listener_of(local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;
    use crate::metrics::Metrics;
    use crate::plan::router::{Decision, RouteInput};
    use std::collections::HashMap;
    use std::path::Path;

    #[test]
    fn a_local_address_finds_its_listener_by_family() {
        let addrs: Vec<SocketAddr> = ["0.0.0.0:80", "[::]:80", "127.0.0.1:8080"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let at = |s: &str| listener_at(&addrs, s.parse().unwrap());
        assert_eq!(at("10.0.0.1:80"), Some(0));
        assert_eq!(at("[::1]:80"), Some(1));
        assert_eq!(at("127.0.0.1:8080"), Some(2));
        assert_eq!(at("127.0.0.1:8081"), None);
    }

    const YAML: &str = r#"
listeners:
  a: {address: "127.0.0.1:8001"}
  b: {address: "127.0.0.1:8002"}
  s: {address: "127.0.0.1:8443", tls: true}
sites:
  one:
    hosts: [h.test]
    listeners: [a]
    routes: [{path: /, upstream: u1}]
  two:
    hosts: [h.test]
    listeners: [b]
    default: true
    routes: [{path: /, upstream: u2}]
  catch_a:
    listeners: [a]
    default: http
    routes: [{path: /, upstream: u2}]
  secure:
    hosts: [h.test]
    listeners: [s]
    tls: self_signed
    routes: [{path: /, upstream: u1}]
upstreams:
  u1: {active: p, pools: {p: ["127.0.0.1:1"]}}
  u2: {active: p, pools: {p: ["127.0.0.1:2"]}}
"#;

    fn router(yaml: &str) -> Router {
        let cfg = load_str(Path::new("t.yaml"), yaml).expect("valid");
        let idx: HashMap<String, usize> = cfg
            .upstreams
            .iter()
            .enumerate()
            .map(|(i, u)| (u.name.clone(), i))
            .collect();
        Router::build(&cfg, &idx, &Metrics::new().expect("metrics"))
    }

    fn site(r: &Router, host: &str, tls: bool, listener: Option<usize>) -> Option<String> {
        let d = r.route(&RouteInput {
            host: Some(host),
            path: "/",
            tls,
            sni: tls.then_some(host),
            method: &http::Method::GET,
            listener,
        });
        if d == Decision::Misdirected {
            return Some("421".into());
        }
        d.site().map(|s| r.site(s).name.clone())
    }

    #[test]
    fn each_listener_has_its_own_sites_and_default() {
        let r = router(YAML);
        assert!(r.by_listener());
        assert_eq!(site(&r, "h.test", false, Some(0)).as_deref(), Some("one"));
        assert_eq!(site(&r, "h.test", false, Some(1)).as_deref(), Some("two"));
        assert_eq!(
            site(&r, "x.test", false, Some(0)).as_deref(),
            Some("catch_a")
        );
        assert_eq!(site(&r, "x.test", false, Some(1)).as_deref(), Some("two"));
        // TLS: the listener's own certificate site answers, no 421.
        assert_eq!(site(&r, "h.test", true, Some(2)).as_deref(), Some("secure"));
        assert_eq!(
            r.listener_of(Some("127.0.0.1:8002".parse().unwrap())),
            Some(1)
        );
    }

    #[test]
    fn a_bound_tls_site_redirects_on_its_plain_listeners_only() {
        let r = router(
            r#"
listeners:
  a: {address: "127.0.0.1:8001"}
  b: {address: "127.0.0.1:8002"}
  s: {address: "127.0.0.1:8443", tls: true}
sites:
  secure:
    hosts: [h.test]
    listeners: [s, a]
    tls: self_signed
    routes: [{path: /, upstream: u1}]
  other:
    listeners: [b]
    default: true
    routes: [{path: /, upstream: u1}]
upstreams:
  u1: {active: p, pools: {p: ["127.0.0.1:1"]}}
"#,
        );
        let go = |l: usize| {
            r.route(&RouteInput {
                host: Some("h.test"),
                path: "/",
                tls: false,
                sni: None,
                method: &http::Method::GET,
                listener: Some(l),
            })
        };
        assert_eq!(
            go(0),
            Decision::Redirect {
                site: 0,
                status: 308
            }
        );
        // `b` does not know the name: its default answers.
        assert_eq!(go(1).site(), Some(1));
        // Without SNI the TLS listener's own fallback certificate is
        // `secure`'s: no 421.
        assert_eq!(site(&r, "h.test", true, Some(2)).as_deref(), Some("secure"));
    }

    #[test]
    fn without_bound_sites_the_listener_is_never_looked_up() {
        let r = router(
            r#"
listeners:
  a: {address: "127.0.0.1:8001"}
sites:
  one: {hosts: [h.test], routes: [{path: /, upstream: u1}]}
upstreams:
  u1: {active: p, pools: {p: ["127.0.0.1:1"]}}
"#,
        );
        assert!(!r.by_listener());
        assert_eq!(r.listener_of(Some("127.0.0.1:8001".parse().unwrap())), None);
        assert_eq!(site(&r, "h.test", false, None).as_deref(), Some("one"));
    }
}
