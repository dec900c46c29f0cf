//! A site's `listeners:` key: which listeners' requests it takes.
//!
//! nginx picks a server block by the address:port a request arrived on
//! first and by name second, and keeps a default server per address:port.
//! A site bound with `listeners:` is chosen only for requests on those
//! listeners, so two sites may name the same host when their listener sets
//! do not meet, and each listener may have its own default site. A site
//! without the key is on every listener (as before the key existed), so it
//! meets every other site.
//!
//! Checked here, once every site is known: unknown listener names, a host
//! named by two sites on one listener, two defaults on one listener, and a
//! TLS site or listener left without the other.

use serde_saphyr::Spanned;

use super::diag::Diagnostics;
use super::file::{FileConfig, FileSite};
use super::model::{ListenerConfig, SiteConfig};
use super::validate::pos;

/// `listeners:` of site `name` as indexes into `listeners`; `None` when the
/// key is absent (every listener).
pub(super) fn site_listeners(
    name: &str,
    site: &Spanned<FileSite>,
    file: &FileConfig,
    listeners: &[ListenerConfig],
    ds: &mut Diagnostics,
) -> Option<Vec<usize>> {
    let list = site.value.listeners.as_ref()?;
    if list.value.is_empty() {
        ds.error(
            pos(list),
            format!("site '{name}' has an empty `listeners:` list: it would serve nothing"),
            "name at least one listener, or remove `listeners:` (every listener)",
        );
        return None;
    }
    let mut out = Vec::new();
    for l in &list.value {
        match listeners.iter().position(|c| c.name == l.value) {
            Some(i) if !out.contains(&i) => out.push(i),
            Some(_) => {}
            // Written in the file but its address is bad: reported there.
            None if file.listeners.contains_key(&l.value) => {}
            None => {
                let names: Vec<String> = file.listeners.keys().map(|k| format!("`{k}`")).collect();
                ds.error(
                    pos(l),
                    format!(
                        "site '{name}' names listener '{}', which is not defined",
                        l.value
                    ),
                    format!("use one of {}", names.join(", ")),
                );
            }
        }
    }
    Some(out)
}

impl super::model::Config {
    /// Puts the `running` listeners in place of this config's (a reload
    /// keeps the listeners the process started with) and maps each site's
    /// `listeners:` onto them by name; one that is not running drops out.
    pub fn keep_listeners(&mut self, running: &[ListenerConfig]) {
        let written = &self.listeners;
        for s in &mut self.sites {
            if let Some(ls) = &mut s.listeners {
                *ls = ls
                    .iter()
                    .filter_map(|&i| written.get(i))
                    .filter_map(|l| running.iter().position(|r| r.name == l.name))
                    .collect();
            }
        }
        self.listeners = running.to_vec();
    }
}

/// True when site `s` takes requests on listener `l`.
fn on(s: &SiteConfig, l: usize) -> bool {
    s.listeners.as_ref().is_none_or(|ls| ls.contains(&l))
}

/// Checks made once every site is known, only when some site has
/// `listeners:` (without, `validate_match` and `validate_site` already
/// refuse shared hosts and two defaults of one kind).
pub(super) fn check_sites(
    file: &FileConfig,
    sites: &[SiteConfig],
    listeners: &[ListenerConfig],
    ds: &mut Diagnostics,
) {
    if sites.iter().all(|s| s.listeners.is_none()) {
        return;
    }
    let file_site = |s: &SiteConfig| file.sites.get(&s.name);
    for (j, b) in sites.iter().enumerate() {
        let fb = file_site(b);
        // A host two sites name on one listener (pairs of unbound sites are
        // reported by `validate_match` already).
        for a in &sites[..j] {
            if a.listeners.is_none() && b.listeners.is_none() {
                continue;
            }
            let Some(shared) = (0..listeners.len()).find(|&l| on(a, l) && on(b, l)) else {
                continue;
            };
            for h in &b.hosts {
                if !a.hosts.contains(h) {
                    continue;
                }
                let written = h.as_written();
                let at = fb
                    .and_then(|f| f.value.hosts.as_ref())
                    .and_then(|hs| {
                        hs.value.iter().find(|w| {
                            super::validate_match::parse_host_pattern(&w.value)
                                .is_ok_and(|p| p.as_written() == written)
                        })
                    })
                    .map(pos)
                    .unwrap_or_else(|| fb.map(pos).unwrap_or_default());
                ds.error(
                    at,
                    format!(
                        "host '{written}' is named by sites '{}' and '{}' on listener '{}'",
                        a.name, b.name, listeners[shared].name
                    ),
                    "give the two sites `listeners:` that do not overlap, or list the host in one site only",
                );
            }
        }
        if b.tls.is_some()
            && let Some(ls) = &b.listeners
            && !ls.is_empty()
            && !ls.iter().any(|&l| listeners[l].tls)
        {
            ds.error(
                b.tls_origin.pos,
                format!(
                    "site '{}' has a certificate but none of its listeners terminates TLS",
                    b.name
                ),
                "add a listener with `tls: true` to its `listeners:`, or remove `tls:`",
            );
        }
    }
    for (l, lc) in listeners.iter().enumerate() {
        let defaults: Vec<&SiteConfig> = sites
            .iter()
            .filter(|s| on(s, l) && s.default.covers(lc.tls))
            .collect();
        if let [first, .., last] = defaults.as_slice()
            && (first.listeners.is_some() || last.listeners.is_some())
        {
            let at = file_site(last)
                .and_then(|f| f.value.default.as_ref().map(pos))
                .unwrap_or_default();
            ds.error(
                at,
                format!(
                    "sites '{}' and '{}' are both the default site on listener '{}'",
                    first.name, last.name, lc.name
                ),
                "keep one default per listener: remove `default:` from one site, or give them `listeners:` that do not overlap",
            );
        }
        if lc.tls && !sites.iter().any(|s| on(s, l) && s.tls.is_some()) {
            let at = file.listeners.get(&lc.name).map(pos).unwrap_or_default();
            ds.error(
                at,
                format!(
                    "listener '{}' terminates TLS but no site on it has a certificate",
                    lc.name
                ),
                "add the listener to the `listeners:` of a site with `tls:`, or remove `tls: true` from it",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::load_str;
    use std::path::Path;

    const HEAD: &str = "listeners:
  a: {address: 127.0.0.1:8001}
  b: {address: 127.0.0.1:8002}
upstreams:
  u: {active: p, pools: {p: [\"127.0.0.1:1\"]}}
sites:
";

    fn problems(sites: &str) -> Vec<String> {
        match load_str(Path::new("g.yaml"), &format!("{HEAD}{sites}")) {
            Ok(_) => Vec::new(),
            Err(e) => e.diagnostics().iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn one_host_may_be_named_by_two_sites_on_different_listeners() {
        let ok = "  x: {hosts: [h.test], listeners: [a], default: true, routes: [{path: /, upstream: u}]}
  y: {hosts: [h.test], listeners: [b], default: true, routes: [{path: /, upstream: u}]}
";
        assert_eq!(problems(ok), Vec::<String>::new());
    }

    #[test]
    fn a_host_shared_on_one_listener_is_an_error_naming_both_sites() {
        let both = "  x: {hosts: [h.test], listeners: [a, b], routes: [{path: /, upstream: u}]}
  y: {hosts: [other.test, H.test], listeners: [b], routes: [{path: /, upstream: u}]}
";
        assert_eq!(
            problems(both),
            [
                "g.yaml:8:27: host 'h.test' is named by sites 'x' and 'y' on listener 'b' — give the two sites `listeners:` that do not overlap, or list the host in one site only"
            ]
        );
        // A site without `listeners:` is on every listener.
        let unbound = "  x: {hosts: [h.test], routes: [{path: /, upstream: u}]}
  y: {hosts: [h.test], listeners: [b], routes: [{path: /, upstream: u}]}
";
        let p = problems(unbound);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("sites 'x' and 'y' on listener 'b'"), "{p:?}");
    }

    #[test]
    fn an_unknown_listener_lists_the_known_ones() {
        let p = problems(
            "  x: {hosts: [h.test], listeners: [a, c], routes: [{path: /, upstream: u}]}\n",
        );
        assert_eq!(
            p,
            [
                "g.yaml:7:39: site 'x' names listener 'c', which is not defined — use one of `a`, `b`"
            ]
        );
        let p =
            problems("  x: {hosts: [h.test], listeners: [], routes: [{path: /, upstream: u}]}\n");
        assert!(p[0].contains("empty `listeners:`"), "{p:?}");
    }

    #[test]
    fn each_listener_has_at_most_one_default() {
        let two = "  x: {default: true, listeners: [a], routes: [{path: /, upstream: u}]}
  y: {default: http, routes: [{path: /, upstream: u}]}
";
        assert_eq!(
            problems(two),
            [
                "g.yaml:8:16: sites 'x' and 'y' are both the default site on listener 'a' — keep one default per listener: remove `default:` from one site, or give them `listeners:` that do not overlap"
            ]
        );
    }

    #[test]
    fn a_reload_maps_sites_onto_the_running_listeners_by_name() {
        let ok = "  x: {hosts: [h.test], listeners: [b], routes: [{path: /, upstream: u}]}\n";
        let mut cfg = load_str(Path::new("g.yaml"), &format!("{HEAD}{ok}")).expect("valid");
        assert_eq!(cfg.sites[0].listeners, Some(vec![1]));
        // The running process has `b` first and no `a`.
        let mut running = cfg.listeners.clone();
        running.reverse();
        running.pop();
        cfg.keep_listeners(&running);
        assert_eq!(cfg.sites[0].listeners, Some(vec![0]));
        assert_eq!(cfg.listeners[0].name, "b");
    }

    #[test]
    fn tls_sites_and_tls_listeners_must_meet() {
        let yaml = "listeners:
  a: {address: 127.0.0.1:8001}
  s: {address: 127.0.0.1:8443, tls: true}
upstreams:
  u: {active: p, pools: {p: [\"127.0.0.1:1\"]}}
sites:
  x: {hosts: [h.test], tls: self_signed, listeners: [a], routes: [{path: /, upstream: u}]}
  y: {hosts: [h.test], listeners: [s], routes: [{path: /, upstream: u}]}
";
        let e = load_str(Path::new("g.yaml"), yaml).expect_err("invalid");
        let p: Vec<String> = e.diagnostics().iter().map(|d| d.to_string()).collect();
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].starts_with(
                "g.yaml:3:6: listener 's' terminates TLS but no site on it has a certificate"
            ),
            "{p:?}"
        );
        assert!(
            p[1].starts_with(
                "g.yaml:7:29: site 'x' has a certificate but none of its listeners terminates TLS"
            ),
            "{p:?}"
        );
    }
}
