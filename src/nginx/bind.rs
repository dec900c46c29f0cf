//! Sites bound to listeners (`listeners:`) where nginx chose server blocks
//! by listen address.
//!
//! nginx picks the server block by the address:port a request arrived on
//! first and by name second, with a default server per address:port (the
//! `default_server` block there, else the first block listening there).
//! When two blocks name one host on different addresses (`listen 80` and a
//! plain `listen 443`; a block without `listen`, which is `0.0.0.0:80`, and
//! one with `listen 80; listen [::]:80`), both are kept: every site gets the
//! listeners of its block's addresses, minus those where an earlier block
//! already names the host (nginx ignores the later name there, "conflicting
//! server name"), and each listener gets nginx's default server.
//!
//! Only then: a configuration whose blocks do not collide imports without
//! `listeners:` (every site on every listener, one default per kind).

use std::collections::HashMap;

use super::convert::{Ctx, Listeners, Site};
use super::parse::Directive;
use super::server::ServerInfo;

impl Listeners<'_> {
    /// The index of the listener for `key` (a block's listen key).
    fn index_of(&self, key: &str) -> Option<usize> {
        self.by_key.get(key).copied()
    }

    /// The key of listener `i`.
    fn key_of(&self, i: usize) -> Option<&str> {
        self.by_key
            .iter()
            .find(|(_, v)| **v == i)
            .map(|(k, _)| k.as_str())
    }
}

/// What the site assembly found that needs listeners.
#[derive(Debug, Default)]
pub(crate) struct Binding<'a> {
    /// A later block keeping a host an earlier one names: that block, and
    /// the addresses it does not get (the earlier block's, nginx keeps the
    /// first name per address).
    excluded: Vec<(&'a Directive, Vec<String>)>,
    /// (site block, other block) whose addresses also serve the site: a
    /// plain-HTTP twin merged into a TLS site, or a redirect block that
    /// became its `plain_http`.
    extra: Vec<(&'a Directive, &'a Directive)>,
}

impl<'a> Binding<'a> {
    /// Whether block `later` keeps a host that block `first` (earlier)
    /// also names: it listens on some address `first` does not, where
    /// nginx chose it. Records the addresses it does not get.
    pub fn split(&mut self, first: &ServerInfo<'a>, later: &ServerInfo<'a>) -> bool {
        let own = later
            .listen_keys
            .iter()
            .any(|k| !first.listen_keys.contains(k));
        if own {
            let shared = later
                .listen_keys
                .iter()
                .filter(|k| first.listen_keys.contains(k))
                .cloned()
                .collect();
            self.excluded.push((later.d, shared));
        }
        own
    }

    /// Block `other`'s addresses serve the site of block `site` too.
    pub fn also(&mut self, site: &'a Directive, other: &'a Directive) {
        self.extra.push((site, other));
    }

    /// True once some host is served by two blocks on different addresses.
    pub fn needed(&self) -> bool {
        !self.excluded.is_empty()
    }
}

/// Gives every site its block's listeners and each listener nginx's
/// default server, when [`Binding::needed`]; otherwise leaves the sites as
/// they are. `redirects` are the plain-HTTP redirect blocks, `owner` the
/// block (index into `infos`) owning each host.
pub(crate) fn bind<'a>(
    ctx: &mut Ctx<'a>,
    infos: &[ServerInfo<'a>],
    sites: &mut Vec<Site<'a>>,
    binding: &mut Binding<'a>,
    redirects: &[ServerInfo<'a>],
    owner: &HashMap<String, usize>,
    listeners: &Listeners<'a>,
) {
    if !binding.needed() && !defaults_differ(infos, listeners) {
        return;
    }
    for r in redirects {
        for h in &r.hosts {
            if let Some(o) = owner.get(&h.name).and_then(|&o| infos.get(o)) {
                binding.also(o.d, r.d);
            }
        }
    }
    let keys_of = |d: &Directive| -> Vec<String> {
        infos
            .iter()
            .chain(redirects)
            .find(|x| std::ptr::eq(x.d, d))
            .map(|x| x.listen_keys.clone())
            .unwrap_or_default()
    };
    for site in sites.iter_mut() {
        let mut keys = keys_of(site.server);
        for (s, other) in &binding.extra {
            if std::ptr::eq(*s, site.server) {
                keys.extend(keys_of(other));
            }
        }
        for (d, shared) in &binding.excluded {
            if std::ptr::eq(*d, site.server) {
                keys.retain(|k| !shared.contains(k));
            }
        }
        let mut ids: Vec<usize> = keys.iter().filter_map(|k| listeners.index_of(k)).collect();
        ids.sort_unstable();
        ids.dedup();
        site.listeners = ids;
    }
    plain_for_tls(sites, listeners);
    // The defaults chosen per kind before (`sites::choose_default`): they
    // stand in on a listener whose nginx default became no site (a
    // catch-all redirect block folded into the TLS sites' plain_http).
    let prior: Vec<(usize, &'static str)> = sites
        .iter()
        .enumerate()
        .filter(|(_, s)| s.default.is_some())
        .map(|(i, s)| (i, s.default_on))
        .collect();
    defaults(ctx, infos, sites, binding, listeners, &prior);
    // A block without a name that is nobody's default: nginx never chose it
    // (no Host matches an empty name but a request without one, which
    // greenlight does not route apart).
    sites.retain(|s| {
        let lost = s.hosts.is_empty() && s.default.is_none();
        if lost {
            ctx.warn(
                s.server,
                "this server block has no server_name and is not nginx's default server on any of its listen addresses, so no site was created from it",
            );
        }
        !lost
    });
}

/// nginx's default server block on listener `l`: the `default_server`
/// block listening there, else the first block listening there.
fn default_block<'b, 'a>(
    infos: &'b [ServerInfo<'a>],
    listeners: &Listeners<'a>,
    l: usize,
) -> Option<(&'b ServerInfo<'a>, &'static str)> {
    let key = listeners.key_of(l)?;
    let on = |x: &&ServerInfo<'a>| x.listen_keys.iter().any(|k| k == key);
    infos
        .iter()
        .filter(on)
        .find(|x| x.listen_default.is_some())
        .map(|x| (x, "listen … default_server"))
        .or_else(|| {
            infos
                .iter()
                .find(on)
                .map(|x| (x, "the first server block listening there"))
        })
}

/// True when two listeners of one kind have different default server
/// blocks: one `default:` per kind cannot say that.
pub(crate) fn defaults_differ<'a>(infos: &[ServerInfo<'a>], listeners: &Listeners<'a>) -> bool {
    [true, false].into_iter().any(|tls| {
        let mut blocks = (0..listeners.list.len())
            .filter(|&l| listeners.list.get(l).is_some_and(|x| x.tls == tls))
            .filter_map(|l| default_block(infos, listeners, l).map(|(b, _)| b.d));
        let Some(first) = blocks.next() else {
            return false;
        };
        blocks.any(|b| !std::ptr::eq(b, first))
    })
}

/// Each listener's default site: nginx's `default_server` block listening
/// there, else the first block listening there. A site is made the default
/// of a kind of listener only when it is nginx's default on every listener
/// of that kind it has (a `default:` covers all of them); a site that is
/// the default on some of them only is split in two: a copy on those
/// listeners is their default, the site keeps the others.
fn defaults<'a>(
    ctx: &mut Ctx<'a>,
    infos: &[ServerInfo<'a>],
    sites: &mut Vec<Site<'a>>,
    binding: &Binding<'a>,
    listeners: &Listeners<'a>,
    prior: &[(usize, &'static str)],
) {
    let n = listeners.list.len();
    // Per listener: the site (index into `sites`) nginx answers unknown
    // hosts with there, and why.
    let mut chosen: Vec<Option<(usize, String)>> = vec![None; n];
    for (l, slot) in chosen.iter_mut().enumerate() {
        let Some((block, why)) = default_block(infos, listeners, l) else {
            continue;
        };
        // The site made from the block, else the one it serves (a redirect
        // block that became a TLS site's plain_http).
        let site = sites
            .iter()
            .position(|s| std::ptr::eq(s.server, block.d) && s.listeners.contains(&l))
            .or_else(|| {
                binding
                    .extra
                    .iter()
                    .filter(|(_, o)| std::ptr::eq(*o, block.d))
                    .find_map(|(s, _)| {
                        sites
                            .iter()
                            .position(|x| std::ptr::eq(x.server, *s) && x.listeners.contains(&l))
                    })
            });
        let tls = listeners.list.get(l).is_some_and(|x| x.tls);
        let covers = |on: &str| on == "true" || (on == "https") == tls;
        match site {
            Some(s) => *slot = Some((s, format!("{why} ({})", ctx.at(block.d)))),
            None => {
                *slot = prior
                    .iter()
                    .find(|(s, on)| {
                        covers(on) && sites.get(*s).is_some_and(|x| x.listeners.contains(&l))
                    })
                    .map(|(s, _)| {
                        (
                            *s,
                            format!(
                                "nginx's default there ({}) is no site of its own",
                                ctx.at(block.d)
                            ),
                        )
                    })
            }
        }
    }
    split_partial(ctx, sites, &mut chosen, listeners);
    for (i, site) in sites.iter_mut().enumerate() {
        let mine = |l: usize| {
            chosen
                .get(l)
                .is_some_and(|c| c.as_ref().is_some_and(|(s, _)| *s == i))
        };
        // (default on every listener of the kind, has none of the kind)
        let kind = |tls: bool| -> (bool, bool) {
            let of_kind: Vec<usize> = site
                .listeners
                .iter()
                .copied()
                .filter(|&l| listeners.list.get(l).is_some_and(|x| x.tls == tls))
                .collect();
            let all = !of_kind.is_empty() && of_kind.iter().all(|&l| mine(l));
            (all, of_kind.is_empty())
        };
        // `split_partial` left no site a default on part of a kind.
        let (tls_all, no_tls) = kind(true);
        let (plain_all, no_plain) = kind(false);
        // A kind the site has no listener of does not narrow `default:`.
        site.default_on = match (tls_all || no_tls, plain_all || no_plain) {
            (true, false) => "https",
            (false, true) => "http",
            _ => "true",
        };
        site.default = (tls_all || plain_all).then(|| {
            let why = site
                .listeners
                .iter()
                .find_map(|&l| chosen.get(l)?.as_ref().filter(|(s, _)| *s == i))
                .map(|(_, w)| w.clone())
                .unwrap_or_default();
            format!("nginx's default server on its listen addresses: {why}")
        });
    }
}

/// Splits each site that is nginx's default on some of its listeners of a
/// kind only: a copy takes those listeners (and is their default), the
/// site keeps the rest. The routes are the same; the copy is what nginx
/// answers unknown hosts with there.
fn split_partial<'a>(
    ctx: &mut Ctx<'a>,
    sites: &mut Vec<Site<'a>>,
    chosen: &mut [Option<(usize, String)>],
    listeners: &Listeners<'a>,
) {
    let original = sites.len();
    for i in 0..original {
        for tls in [true, false] {
            let Some(site) = sites.get(i) else { continue };
            let of_kind: Vec<usize> = site
                .listeners
                .iter()
                .copied()
                .filter(|&l| listeners.list.get(l).is_some_and(|x| x.tls == tls))
                .collect();
            let mine: Vec<usize> = of_kind
                .iter()
                .copied()
                .filter(|&l| {
                    chosen
                        .get(l)
                        .is_some_and(|c| c.as_ref().is_some_and(|(s, _)| *s == i))
                })
                .collect();
            if mine.is_empty() || mine.len() == of_kind.len() {
                continue;
            }
            let mut copy = site.clone();
            let mut name = format!("{}-default", site.name);
            let mut n = 2;
            while sites.iter().any(|s| s.name == name) {
                name = format!("{}-default-{n}", site.name);
                n += 1;
            }
            copy.name = name;
            copy.listeners = mine.clone();
            let at = sites.len();
            for &l in &mine {
                if let Some(Some((s, _))) = chosen.get_mut(l) {
                    *s = at;
                }
            }
            if let Some(site) = sites.get_mut(i) {
                site.listeners.retain(|l| !mine.contains(l));
            }
            ctx.note(
                copy.server,
                format!(
                    "this server block is nginx's default server on some of its listen addresses only: site '{}' is a copy of its site on those, and their default",
                    copy.name
                ),
            );
            sites.push(copy);
        }
    }
}

/// A TLS site that says what plain HTTP does for its names (`plain_http`)
/// keeps that on every plain listener where no other site names one of its
/// hosts: the block it came from (a catch-all redirect) may be no site.
fn plain_for_tls(sites: &mut [Site<'_>], listeners: &Listeners<'_>) {
    for i in 0..sites.len() {
        let Some(site) = sites.get(i) else { continue };
        if site.tls.is_none() || site.plain_http.is_none() {
            continue;
        }
        let free: Vec<usize> = (0..listeners.list.len())
            .filter(|&l| listeners.list.get(l).is_some_and(|x| !x.tls))
            .filter(|l| !site.listeners.contains(l))
            .filter(|l| {
                !sites.iter().enumerate().any(|(j, o)| {
                    j != i
                        && o.listeners.contains(l)
                        && o.hosts
                            .iter()
                            .any(|h| site.hosts.iter().any(|m| m.name == h.name))
                })
            })
            .collect();
        if let Some(site) = sites.get_mut(i) {
            site.listeners.extend(free);
            site.listeners.sort_unstable();
            // On no plain listener, it would say nothing.
            if !site
                .listeners
                .iter()
                .any(|&l| listeners.list.get(l).is_some_and(|x| !x.tls))
            {
                site.plain_http = None;
            }
        }
    }
}
