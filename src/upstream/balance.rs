//! Choosing a server of a pool for one request: `balance:` (smooth weighted
//! round robin, least connections, consistent hashing on the client address
//! or on a request key) and `backup` servers.
//!
//! A pool's servers form two tiers: the primaries, and the backups, which are
//! only considered when no primary is left to try — every primary is down
//! (active checks or passive cool-off) or already failed for this request
//! (then the retry goes to a backup, as nginx does). Within a tier:
//! - `round_robin`: nginx's *smooth* weighted round robin (weights 3:1 give
//!   `a a b a`, not `a a a b`), under a short lock; when every weight is 1 a
//!   lock-free counter does the same thing, as before weights existed;
//! - `least_conn`: the server with the fewest requests in flight per unit of
//!   weight, ties taken in round-robin order; in-flight is counted per server
//!   (for every method, shown by the admin API) by a [`Busy`] slot the
//!   request holds, kept across pool rebuilds;
//! - `ip_hash` / `hash`: an nginx-compatible ketama ring (`pingora-ketama`),
//!   so that adding or removing a server moves only that server's keys. A key
//!   whose server is down or failed goes to the next server on the ring.
//!
//! What a request needs across its attempts (which servers it tried, where
//! it started, its busy slot) is an [`Attempts`] kept in the request ctx.
//! Nothing here does I/O; the hash key is rendered once per request.

use super::Server;
use crate::config::model::Balance;
use crate::plan::template::{KNOWN, Scope, Segment, Template, Var};
use crate::plan::vars::VarCx;
use pingora_ketama::{Bucket, Continuum};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The key of `balance: {hash: TEMPLATE}`: a [`Template`] compiled at load
/// (the same syntax and variables as header and redirect values), rendered
/// once per request from the request as the client sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashKey(Template);

impl HashKey {
    /// Parses a key template; `Err` names what is wrong.
    pub fn parse(text: &str) -> Result<HashKey, String> {
        let t = Template::parse(text, &Scope::default()).map_err(|e| {
            format!(
                "{} in hash key; known variables: {KNOWN}",
                e.what.replace('`', "'")
            )
        })?;
        let mut vars = t.segments().iter().filter_map(|s| match s {
            Segment::Var(v) => Some(v),
            Segment::Literal(_) => None,
        });
        if let Some(why) = vars.clone().find_map(unusable) {
            return Err(format!("hash key '{text}' uses {why}"));
        }
        if vars.next().is_none() {
            return Err(format!(
                "hash key '{text}' has no variable, so every request would go to one server"
            ));
        }
        Ok(HashKey(t))
    }

    /// Appends the key of one request to `out`.
    pub fn render(&self, cx: &VarCx<'_>, out: &mut String) {
        self.0.render_into(cx, out);
    }
}

/// Why `var` has no place in a hash key, if it has none.
fn unusable(var: &Var) -> Option<&'static str> {
    match var {
        Var::Capture(_) | Var::LastNamed(_) | Var::LocationNamed(_) => {
            Some("a regex capture, but no regex has matched when a server is chosen")
        }
        Var::ServerName => Some("`$server_name`, which is the same for every request of a site"),
        _ => None,
    }
}

/// What one request knows about its server choices across attempts.
#[derive(Debug, Default)]
pub struct Attempts {
    /// Attempts made so far.
    pub count: usize,
    started: bool,
    /// Round-robin position taken at the first attempt.
    start: usize,
    /// Ring position of the request's key (hash methods).
    ring_at: usize,
    /// Servers tried (bit per index; indexes past 63 in `more`).
    tried: u64,
    more: Vec<usize>,
    /// The in-flight slot on the chosen server.
    busy: Option<Busy>,
}

impl Attempts {
    fn was_tried(&self, i: usize) -> bool {
        if i < 64 {
            self.tried & (1 << i) != 0
        } else {
            self.more.contains(&i)
        }
    }

    fn mark(&mut self, i: usize) {
        if i < 64 {
            self.tried |= 1 << i;
        } else {
            self.more.push(i);
        }
    }
}

/// Counts one request in flight on one server while it lives.
#[derive(Debug)]
pub struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn new(count: &Arc<AtomicUsize>) -> Busy {
        count.fetch_add(1, Ordering::AcqRel);
        Busy(count.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

enum Method {
    RoundRobin {
        /// Smooth weighted round robin's current weights; `None` when every
        /// weight is 1 (the counter alone is fair then).
        smooth: Option<Mutex<Vec<i64>>>,
    },
    LeastConn,
    Ring {
        ring: Continuum,
        /// Ring node address -> server index.
        nodes: Vec<(SocketAddr, usize)>,
        /// The key template (`hash`); `None` = the client address (`ip_hash`).
        hash: Option<HashKey>,
    },
}

/// A pool's balancer, built with the pool.
pub struct Balancer {
    method: Method,
    primaries: Vec<usize>,
    backups: Vec<usize>,
    next: AtomicUsize,
}

impl std::fmt::Debug for Balancer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Balancer")
            .field("primaries", &self.primaries)
            .field("backups", &self.backups)
            .finish()
    }
}

impl Balancer {
    /// The balancer for `servers` by `balance`.
    pub fn new(balance: &Balance, servers: &[Server]) -> Balancer {
        let primaries: Vec<usize> = (0..servers.len()).filter(|&i| !servers[i].backup).collect();
        let backups: Vec<usize> = (0..servers.len()).filter(|&i| servers[i].backup).collect();
        let method = match balance {
            Balance::RoundRobin => Method::RoundRobin {
                smooth: servers
                    .iter()
                    .any(|s| s.weight != 1)
                    .then(|| Mutex::new(vec![0; servers.len()])),
            },
            Balance::LeastConn => Method::LeastConn,
            Balance::IpHash | Balance::Hash(_) => {
                let buckets: Vec<Bucket> = primaries
                    .iter()
                    .map(|&i| Bucket::new(servers[i].addr.ring_addr(), servers[i].weight))
                    .collect();
                Method::Ring {
                    ring: Continuum::new(&buckets),
                    nodes: primaries
                        .iter()
                        .map(|&i| (servers[i].addr.ring_addr(), i))
                        .collect(),
                    hash: match balance {
                        Balance::Hash(h) => Some(h.clone()),
                        _ => None,
                    },
                }
            }
        };
        Balancer {
            method,
            primaries,
            backups,
            next: AtomicUsize::new(0),
        }
    }

    /// True when [`Balancer::choose`] would read a key for `a`: a ring
    /// (`ip_hash`, `hash:`) on the request's first attempt.
    pub fn needs_key(&self, a: &Attempts) -> bool {
        !a.started && matches!(self.method, Method::Ring { .. })
    }

    /// The server for the next attempt of a request, or `None` when no
    /// server is left (all down or tried). `key` (the request's variables)
    /// is read at the first attempt only, by the hash methods.
    pub fn choose(
        &self,
        servers: &[Server],
        a: &mut Attempts,
        key: Option<&VarCx<'_>>,
    ) -> Option<usize> {
        if !a.started {
            a.started = true;
            a.start = self.next.fetch_add(1, Ordering::Relaxed);
            if let (Method::Ring { ring, hash, .. }, Some(cx)) = (&self.method, key) {
                a.ring_at = match hash {
                    Some(h) => {
                        let mut buf = String::new();
                        h.render(cx, &mut buf);
                        ring.node_idx(buf.as_bytes())
                    }
                    // nginx's ip_hash: an IPv4 client's /24 (also when it
                    // arrives IPv4-mapped on an IPv6 listener), an IPv6 one whole.
                    None => match cx.client_ip.as_ref().map(IpAddr::to_canonical) {
                        Some(IpAddr::V4(v4)) => ring.node_idx(&v4.octets()[..3]),
                        Some(IpAddr::V6(v6)) => ring.node_idx(&v6.octets()),
                        None => ring.node_idx(&[]),
                    },
                };
            }
        }
        let usable = |i: usize| !a.was_tried(i) && servers[i].health.is_up();
        let pick = self
            .pick_in(&self.primaries, servers, a, &usable, true)
            .or_else(|| self.pick_in(&self.backups, servers, a, &usable, false));
        a.count += 1;
        if let Some(i) = pick {
            a.mark(i);
            // Counted for every method: `least_conn` reads it, the admin
            // API shows it (four atomic operations per request).
            a.busy = Some(Busy::new(&servers[i].busy));
        }
        pick
    }

    /// True when some server is left for another attempt of `a`.
    pub fn any_left(&self, servers: &[Server], a: &Attempts) -> bool {
        (0..servers.len()).any(|i| !a.was_tried(i) && servers[i].health.is_up())
    }

    fn pick_in(
        &self,
        tier: &[usize],
        servers: &[Server],
        a: &Attempts,
        usable: &dyn Fn(usize) -> bool,
        primary: bool,
    ) -> Option<usize> {
        if tier.is_empty() {
            return None;
        }
        let n = tier.len();
        let in_order = || (0..n).map(|k| tier[(a.start + k) % n]);
        match &self.method {
            Method::RoundRobin { smooth: Some(cw) } => {
                let mut cw = cw.lock().unwrap_or_else(|p| p.into_inner());
                let mut total = 0i64;
                let mut best: Option<usize> = None;
                for &i in tier.iter().filter(|&&i| usable(i)) {
                    let w = i64::from(servers[i].weight);
                    cw[i] += w;
                    total += w;
                    if best.is_none_or(|b| cw[i] > cw[b]) {
                        best = Some(i);
                    }
                }
                if let Some(b) = best {
                    cw[b] -= total;
                }
                best
            }
            Method::RoundRobin { smooth: None } => in_order().find(|&i| usable(i)),
            Method::LeastConn => {
                let load = |i: usize| (servers[i].busy.load(Ordering::Acquire) as u64, i);
                let mut best: Option<(u64, usize)> = None;
                for i in in_order().filter(|&i| usable(i)) {
                    let (busy, _) = load(i);
                    let w = u64::from(servers[i].weight);
                    // busy/w < best_busy/best_w, without division.
                    if best.is_none_or(|(bb, b)| busy * u64::from(servers[b].weight) < bb * w) {
                        best = Some((busy, i));
                    }
                }
                best.map(|(_, i)| i)
            }
            Method::Ring { ring, nodes, .. } if primary => {
                let mut at = a.ring_at;
                let mut seen = 0u64;
                let bound = 160
                    * tier
                        .iter()
                        .map(|&i| servers[i].weight as usize)
                        .sum::<usize>();
                for _ in 0..=bound {
                    let addr = ring.get_addr(&mut at)?;
                    let Some(&(_, i)) = nodes.iter().find(|(x, _)| x == addr) else {
                        continue;
                    };
                    if usable(i) {
                        return Some(i);
                    }
                    if i < 64 {
                        seen |= 1 << i;
                        if seen.count_ones() as usize >= n {
                            return None;
                        }
                    }
                }
                None
            }
            // Backups of a hash pool: plain round robin.
            Method::Ring { .. } => in_order().find(|&i| usable(i)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::Upstream;
    use crate::upstream::tests::upstream_with;
    use pingora::http::RequestHeader;
    use std::time::Duration;

    fn pool(servers: &[(&str, u32, bool)], balance: Balance) -> Upstream {
        Upstream::build(&upstream_with(servers, balance), None)
    }

    fn label(u: &Upstream, i: Option<usize>) -> String {
        i.map_or("-".into(), |i| u.active_pool().servers()[i].label.clone())
    }

    /// One request's first choice.
    fn pick(u: &Upstream, key: Option<&VarCx<'_>>) -> String {
        label(u, u.active_pool().choose(&mut Attempts::default(), key))
    }

    fn down(u: &Upstream, i: usize) {
        u.active_pool().servers()[i]
            .health
            .request_failed(1, Duration::from_secs(600));
    }

    fn request(path: &str) -> RequestHeader {
        RequestHeader::build("GET", path.as_bytes(), None).expect("request")
    }

    /// The variables of `req` from `client`, as `upstream_peer` passes them.
    fn key_of(req: &RequestHeader, client: IpAddr) -> VarCx<'_> {
        VarCx {
            client_ip: Some(client),
            ..VarCx::of_request(req)
        }
    }

    #[test]
    fn smooth_weighted_round_robin_gives_exact_shares_interleaved() {
        let u = pool(
            &[("127.0.0.1:1", 3, false), ("127.0.0.1:2", 1, false)],
            Balance::RoundRobin,
        );
        let picks: Vec<String> = (0..8).map(|_| pick(&u, None)).collect();
        let a = "127.0.0.1:1".to_string();
        let b = "127.0.0.1:2".to_string();
        // nginx's smooth order: never three in a row before the light one.
        assert_eq!(picks, [&a, &a, &b, &a, &a, &a, &b, &a].map(String::clone));
        let u = pool(
            &[
                ("127.0.0.1:1", 5, false),
                ("127.0.0.1:2", 1, false),
                ("127.0.0.1:3", 1, false),
            ],
            Balance::RoundRobin,
        );
        let picks: Vec<String> = (0..700).map(|_| pick(&u, None)).collect();
        let count = |s: &str| picks.iter().filter(|p| *p == s).count();
        assert_eq!(
            (
                count("127.0.0.1:1"),
                count("127.0.0.1:2"),
                count("127.0.0.1:3")
            ),
            (500, 100, 100)
        );
    }

    #[test]
    fn a_retry_goes_to_an_untried_server_and_down_servers_are_skipped() {
        let u = pool(
            &[
                ("127.0.0.1:1", 3, false),
                ("127.0.0.1:2", 1, false),
                ("127.0.0.1:3", 1, false),
            ],
            Balance::RoundRobin,
        );
        down(&u, 1);
        let p = u.active_pool();
        let mut a = Attempts::default();
        let first = p.choose(&mut a, None);
        let second = p.choose(&mut a, None);
        assert_ne!(first, second);
        assert!(p.choose(&mut a, None).is_none(), "server 2 is down");
        assert!(!p.any_left(&a));
        for _ in 0..20 {
            assert_ne!(pick(&u, None), "127.0.0.1:2");
        }
    }

    #[test]
    fn least_conn_picks_the_least_busy_server_per_weight() {
        let u = pool(
            &[
                ("127.0.0.1:1", 1, false),
                ("127.0.0.1:2", 1, false),
                ("127.0.0.1:3", 2, false),
            ],
            Balance::LeastConn,
        );
        let p = u.active_pool();
        // Hold requests open: each holds its Attempts (and so its busy slot).
        let mut held: Vec<Attempts> = Vec::new();
        let mut take = || {
            let mut a = Attempts::default();
            let i = p.choose(&mut a, None);
            held.push(a);
            label(&u, i)
        };
        let first: Vec<String> = (0..4).map(|_| take()).collect();
        // Weight 2 takes two before the others' second.
        let busy: Vec<usize> = p
            .servers()
            .iter()
            .map(|s| s.busy.load(Ordering::Acquire))
            .collect();
        assert_eq!(busy, [1, 1, 2], "picks were {first:?}");
        // Server 1 finishes both of its requests: it is the least busy now.
        let idx_of_2: Vec<usize> = (0..held.len())
            .filter(|&k| first[k] == "127.0.0.1:2")
            .collect();
        for k in idx_of_2.into_iter().rev() {
            held.remove(k);
        }
        assert_eq!(p.servers()[1].busy.load(Ordering::Acquire), 0);
        assert_eq!(pick(&u, None), "127.0.0.1:2");
        drop(held);
        assert!(
            p.servers()
                .iter()
                .all(|s| s.busy.load(Ordering::Acquire) == 0)
        );
    }

    #[test]
    fn ip_hash_is_stable_per_client_network() {
        let u = pool(
            &[
                ("127.0.0.1:1", 1, false),
                ("127.0.0.1:2", 1, false),
                ("127.0.0.1:3", 1, false),
            ],
            Balance::IpHash,
        );
        let req = request("/");
        let for_ip = |ip: &str| pick(&u, Some(&key_of(&req, ip.parse().expect("ip"))));
        let mut seen = std::collections::HashSet::new();
        for n in 0..50 {
            let ip = format!("10.{n}.7.1");
            let first = for_ip(&ip);
            for _ in 0..5 {
                assert_eq!(for_ip(&ip), first);
            }
            // Same /24, same server (nginx's ip_hash), IPv4-mapped too.
            assert_eq!(for_ip(&format!("10.{n}.7.200")), first);
            assert_eq!(for_ip(&format!("::ffff:10.{n}.7.9")), first);
            seen.insert(first);
        }
        assert_eq!(seen.len(), 3, "clients spread over every server");
    }

    #[test]
    fn hash_is_consistent_when_a_server_is_removed_or_down() {
        let key = Balance::Hash(HashKey::parse("$request_uri").expect("key"));
        let three = [
            ("127.0.0.1:1", 1, false),
            ("127.0.0.1:2", 1, false),
            ("127.0.0.1:3", 1, false),
        ];
        let u3 = pool(&three, key.clone());
        let u2 = pool(&three[..2], key);
        let client: IpAddr = "192.0.2.1".parse().expect("ip");
        let mut moved = 0;
        for n in 0..200 {
            let req = request(&format!("/item/{n}?v=1"));
            let k = key_of(&req, client);
            let before = pick(&u3, Some(&k));
            assert_eq!(pick(&u3, Some(&k)), before, "stable");
            let after = pick(&u2, Some(&k));
            if before != "127.0.0.1:3" {
                assert_eq!(after, before, "a key of a kept server stays there");
            } else {
                moved += 1;
            }
        }
        assert!(
            moved > 20,
            "the removed server had its share of keys: {moved}"
        );
        // A down server's keys go to the next one on the ring, others stay.
        down(&u3, 2);
        for n in 0..50 {
            let req = request(&format!("/item/{n}?v=1"));
            let k = key_of(&req, client);
            assert_eq!(pick(&u3, Some(&k)), pick(&u2, Some(&k)));
        }
    }

    #[test]
    fn backups_serve_only_while_every_primary_is_down() {
        let u = pool(
            &[
                ("127.0.0.1:1", 1, false),
                ("127.0.0.1:2", 1, false),
                ("127.0.0.1:9", 1, true),
            ],
            Balance::RoundRobin,
        );
        for _ in 0..10 {
            assert_ne!(pick(&u, None), "127.0.0.1:9");
        }
        down(&u, 0);
        for _ in 0..10 {
            assert_eq!(pick(&u, None), "127.0.0.1:2");
        }
        down(&u, 1);
        assert_eq!(pick(&u, None), "127.0.0.1:9");
        // A request whose primaries all failed retries on the backup.
        let u = pool(
            &[("127.0.0.1:1", 1, false), ("127.0.0.1:9", 1, true)],
            Balance::IpHash,
        );
        let p = u.active_pool();
        let mut a = Attempts::default();
        assert_eq!(label(&u, p.choose(&mut a, None)), "127.0.0.1:1");
        assert_eq!(label(&u, p.choose(&mut a, None)), "127.0.0.1:9");
        assert_eq!(p.choose(&mut a, None), None);
    }

    #[test]
    fn hash_keys_parse_and_render() {
        let k = HashKey::parse("${host}:$uri|$arg_id|$cookie_sid|$http_x_tenant").expect("key");
        let mut req = request("/a/b?id=7&x=1");
        req.insert_header("host", "example.com:8080").expect("h");
        req.insert_header("cookie", "a=1; sid=abc").expect("h");
        req.insert_header("x-tenant", "t1").expect("h");
        let mut out = String::new();
        k.render(&key_of(&req, "192.0.2.1".parse().expect("ip")), &mut out);
        assert_eq!(out, "example.com:/a/b|7|abc|t1");
        assert!(
            HashKey::parse("$nope")
                .unwrap_err()
                .contains("unknown variable '$nope'")
        );
        assert!(HashKey::parse("fixed").is_err());
        assert!(HashKey::parse("${host").is_err());
        // The shared template's meanings: `$host` lowercase, `$arg_` by any case.
        let k = HashKey::parse("$host|$arg_ID|$remote_addr").expect("key");
        let mut req = request("/?id=7");
        req.insert_header("host", "Example.COM").expect("h");
        let mut out = String::new();
        k.render(&key_of(&req, "2001:db8::1".parse().expect("ip")), &mut out);
        assert_eq!(out, "example.com|7|2001:db8::1");
        // Nothing that is the same for every request of a site, or needs a match.
        assert!(
            HashKey::parse("$uri$1")
                .unwrap_err()
                .contains("regex capture")
        );
        assert!(
            HashKey::parse("$server_name$uri")
                .unwrap_err()
                .contains("`$server_name`")
        );
    }
}
