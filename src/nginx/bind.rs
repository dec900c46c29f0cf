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
    defaults(ctx, infos, sites, binding, listeners);
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
/// of that kind it has (a `default:` covers all of them).
fn defaults<'a>(
    ctx: &mut Ctx<'a>,
    infos: &[ServerInfo<'a>],
    sites: &mut [Site<'a>],
    binding: &Binding<'a>,
    listeners: &Listeners<'a>,
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
        if let Some(s) = site {
            *slot = Some((s, format!("{why} ({})", ctx.at(block.d))));
        }
    }
    for (i, site) in sites.iter_mut().enumerate() {
        let mine = |l: usize| {
            chosen
                .get(l)
                .is_some_and(|c| c.as_ref().is_some_and(|(s, _)| *s == i))
        };
        // (default on every listener of the kind, on some only, has none)
        let kind = |tls: bool| -> (bool, bool, bool) {
            let of_kind: Vec<usize> = site
                .listeners
                .iter()
                .copied()
                .filter(|&l| listeners.list.get(l).is_some_and(|x| x.tls == tls))
                .collect();
            let all = !of_kind.is_empty() && of_kind.iter().all(|&l| mine(l));
            let some = of_kind.iter().any(|&l| mine(l));
            (all, some && !all, of_kind.is_empty())
        };
        let (tls_all, tls_part, no_tls) = kind(true);
        let (plain_all, plain_part, no_plain) = kind(false);
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
        if tls_part || plain_part {
            ctx.warn(
                site.server,
                "this server block is nginx's default server on some of its listen addresses only; a greenlight site is the default on all its listeners of a kind or none, so unknown hosts on those addresses get no site here",
            );
        }
    }
}
