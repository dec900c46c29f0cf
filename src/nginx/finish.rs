//! What the converter does once the sites are built: the routes' targets
//! grouped into the upstreams that are emitted, listeners that would clash
//! when bound, and the message when nothing usable was found.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::addr::Names;
use super::convert::{Ctx, Listener, Site, TargetKey, UpTls, Upstream, UpstreamDef};
use super::server::ServerInfo;

/// Groups routes into emitted upstreams: one per target and set of timeouts.
pub(super) fn assign_upstreams<'a>(
    sites: &mut [Site<'a>],
    defs: &mut [UpstreamDef<'a>],
) -> Vec<Upstream<'a>> {
    let mut upstreams: Vec<Upstream<'a>> = Vec::new();
    type Key = (TargetKey, Option<UpTls>, [Option<u64>; 3]);
    let mut index: HashMap<Key, usize> = HashMap::new();
    let mut names = Names::default();
    for site in sites.iter_mut() {
        for route in &mut site.routes {
            let Some(target) = &route.target else {
                continue;
            };
            let key = (target.key.clone(), target.tls.clone(), route.timeouts.key());
            if let Some(&i) = index.get(&key) {
                route.upstream = i;
                continue;
            }
            if let TargetKey::Named(i) = target.key
                && let Some(def) = defs.get_mut(i)
            {
                def.used = true;
            }
            let twin_of = upstreams
                .iter()
                .find(|u| u.target.key == target.key)
                .map(|u| u.name.clone());
            let name = names.alloc(&target.hint, "app");
            route.upstream = upstreams.len();
            index.insert(key, upstreams.len());
            upstreams.push(Upstream {
                name,
                target: target.clone(),
                timeouts: route.timeouts.clone(),
                twin_of,
            });
        }
    }
    upstreams
}

pub(super) fn overlapping_listeners(ctx: &mut Ctx<'_>, list: &[Listener<'_>]) {
    for l in list {
        let Ok(addr) = l.address.parse::<SocketAddr>() else {
            continue;
        };
        if addr.ip().is_unspecified() {
            continue;
        }
        let wild = list.iter().find(|w| {
            w.address.parse::<SocketAddr>().is_ok_and(|w| {
                w.ip().is_unspecified() && w.port() == addr.port() && w.is_ipv4() == addr.is_ipv4()
            })
        });
        if let Some(w) = wild {
            let at = ctx.at(w.d);
            ctx.warn(
                l.d,
                format!(
                    "listener {} overlaps {} (from {at}): nginx serves both from the wildcard socket, but greenlight binds each listener and the second bind may fail; keep only one of them",
                    l.address, w.address
                ),
            );
        }
    }
}

pub(super) fn nothing_usable(ctx: &Ctx<'_>, infos: &[ServerInfo<'_>]) -> String {
    if infos.is_empty() {
        return "no server block found (greenlight sites are made from nginx server blocks)"
            .to_string();
    }
    let mut parts: Vec<String> = infos
        .iter()
        .take(5)
        .map(|s| {
            let what = if s.routes.is_empty() {
                if s.redirects.is_empty() {
                    "no location with proxy_pass"
                } else {
                    "only redirects to https"
                }
            } else {
                "its hosts are served by another site"
            };
            format!("{} {}", ctx.at(s.d), what)
        })
        .collect();
    if infos.len() > 5 {
        parts.push(format!("and {} more", infos.len() - 5));
    }
    format!(
        "no server block yields a site with a route (a location with proxy_pass or return): {}",
        parts.join("; ")
    )
}
