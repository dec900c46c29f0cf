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
use pingora::http::RequestHeader;
use pingora_ketama::{Bucket, Continuum};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::config::model::Balance;

/// One part of a `hash:` key template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum KeyPart {
    Text(String),
    RequestUri,
    Uri,
    Args,
    Host,
    RemoteAddr,
    Header(http::HeaderName),
    Cookie(String),
    Arg(String),
}

/// The key of `balance: {hash: TEMPLATE}`, parsed at load time.
///
/// Knows `$request_uri`, `$uri`, `$args`, `$host`, `$remote_addr`,
/// `$http_NAME`, `$cookie_NAME`, `$arg_NAME` (also in `${...}` form) and
/// literal text between them. To be replaced by `plan::template` once the
/// shared template engine is merged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashKey {
    parts: Vec<KeyPart>,
}

/// The variables a `hash:` key may use (for error messages).
pub const HASH_VARIABLES: &str =
    "$request_uri, $uri, $args, $host, $remote_addr, $http_NAME, $cookie_NAME, $arg_NAME";

impl HashKey {
    /// Parses a key template; `Err` names what is wrong.
    pub fn parse(template: &str) -> Result<HashKey, String> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = template;
        while let Some(i) = rest.find('$') {
            text.push_str(&rest[..i]);
            rest = &rest[i + 1..];
            let (name, after) = if let Some(r) = rest.strip_prefix('{') {
                let end = r
                    .find('}')
                    .ok_or_else(|| format!("'${{' without '}}' in '{template}'"))?;
                (&r[..end], &r[end + 1..])
            } else {
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                (&rest[..end], &rest[end..])
            };
            let part = variable(name).ok_or_else(|| {
                format!("unknown variable '${name}' in hash key; known: {HASH_VARIABLES}")
            })?;
            if !text.is_empty() {
                parts.push(KeyPart::Text(std::mem::take(&mut text)));
            }
            parts.push(part);
            rest = after;
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(KeyPart::Text(text));
        }
        if !parts.iter().any(|p| !matches!(p, KeyPart::Text(_))) {
            return Err(format!(
                "hash key '{template}' has no variable, so every request would go to one server"
            ));
        }
        Ok(HashKey { parts })
    }

    /// Writes the key of one request into `out`.
    pub fn render(&self, req: &RequestHeader, client: IpAddr, out: &mut Vec<u8>) {
        use std::io::Write;
        let query = req.uri.query().unwrap_or("");
        for p in &self.parts {
            match p {
                KeyPart::Text(t) => out.extend_from_slice(t.as_bytes()),
                KeyPart::RequestUri => out.extend_from_slice(
                    req.uri
                        .path_and_query()
                        .map_or(req.uri.path(), |pq| pq.as_str())
                        .as_bytes(),
                ),
                KeyPart::Uri => out.extend_from_slice(req.uri.path().as_bytes()),
                KeyPart::Args => out.extend_from_slice(query.as_bytes()),
                KeyPart::Host => {
                    let host = req
                        .uri
                        .host()
                        .or_else(|| req.headers.get(http::header::HOST)?.to_str().ok())
                        .unwrap_or("");
                    // nginx's $host has no port.
                    let host = match host.find(']') {
                        Some(end) if host.starts_with('[') => &host[..=end],
                        _ => host.split(':').next().unwrap_or(host),
                    };
                    out.extend_from_slice(host.as_bytes())
                }
                KeyPart::RemoteAddr => {
                    let _ = write!(out, "{client}");
                }
                KeyPart::Header(name) => {
                    if let Some(v) = req.headers.get(name) {
                        out.extend_from_slice(v.as_bytes());
                    }
                }
                KeyPart::Cookie(name) => {
                    let found = req
                        .headers
                        .get_all(http::header::COOKIE)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .flat_map(|v| v.split(';'))
                        .filter_map(|kv| kv.trim().split_once('='))
                        .find(|(k, _)| k == name);
                    if let Some((_, v)) = found {
                        out.extend_from_slice(v.as_bytes());
                    }
                }
                KeyPart::Arg(name) => {
                    let found = query
                        .split('&')
                        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
                        .find(|(k, _)| k == name);
                    if let Some((_, v)) = found {
                        out.extend_from_slice(v.as_bytes());
                    }
                }
            }
        }
    }
}

fn variable(name: &str) -> Option<KeyPart> {
    Some(match name {
        "request_uri" => KeyPart::RequestUri,
        "uri" => KeyPart::Uri,
        "args" | "query_string" => KeyPart::Args,
        "host" => KeyPart::Host,
        "remote_addr" => KeyPart::RemoteAddr,
        _ => {
            if let Some(h) = name.strip_prefix("http_").filter(|h| !h.is_empty()) {
                let h = h.replace('_', "-").to_ascii_lowercase();
                KeyPart::Header(http::HeaderName::from_bytes(h.as_bytes()).ok()?)
            } else if let Some(c) = name.strip_prefix("cookie_").filter(|c| !c.is_empty()) {
                KeyPart::Cookie(c.to_string())
            } else if let Some(a) = name.strip_prefix("arg_").filter(|a| !a.is_empty()) {
                KeyPart::Arg(a.to_string())
            } else {
                return None;
            }
        }
    })
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

/// The request facts a hash method reads (only at the first attempt).
pub struct RequestKey<'a> {
    /// The client's request.
    pub header: &'a RequestHeader,
    /// The client's address (`$remote_addr`, `ip_hash`).
    pub client: IpAddr,
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
                    .map(|&i| Bucket::new(servers[i].addr, servers[i].weight))
                    .collect();
                Method::Ring {
                    ring: Continuum::new(&buckets),
                    nodes: primaries.iter().map(|&i| (servers[i].addr, i)).collect(),
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

    /// The server for the next attempt of a request, or `None` when no
    /// server is left (all down or tried). `key` is read at the first
    /// attempt only (hash methods).
    pub fn choose(
        &self,
        servers: &[Server],
        a: &mut Attempts,
        key: Option<&RequestKey<'_>>,
    ) -> Option<usize> {
        if !a.started {
            a.started = true;
            a.start = self.next.fetch_add(1, Ordering::Relaxed);
            if let (Method::Ring { ring, hash, .. }, Some(k)) = (&self.method, key) {
                let mut buf = Vec::with_capacity(64);
                match hash {
                    Some(h) => h.render(k.header, k.client, &mut buf),
                    // nginx's ip_hash: an IPv4 client's /24 (also when it
                    // arrives IPv4-mapped on an IPv6 listener), an IPv6 one whole.
                    None => match k.client {
                        IpAddr::V4(v4) => buf.extend_from_slice(&v4.octets()[..3]),
                        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                            Some(v4) => buf.extend_from_slice(&v4.octets()[..3]),
                            None => buf.extend_from_slice(&v6.octets()),
                        },
                    },
                }
                a.ring_at = ring.node_idx(&buf);
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
    use std::time::Duration;

    fn pool(servers: &[(&str, u32, bool)], balance: Balance) -> Upstream {
        Upstream::build(&upstream_with(servers, balance), None)
    }

    fn label(u: &Upstream, i: Option<usize>) -> String {
        i.map_or("-".into(), |i| u.active_pool().servers()[i].label.clone())
    }

    /// One request's first choice.
    fn pick(u: &Upstream, key: Option<&RequestKey<'_>>) -> String {
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
        let for_ip = |ip: &str| {
            pick(
                &u,
                Some(&RequestKey {
                    header: &req,
                    client: ip.parse().expect("ip"),
                }),
            )
        };
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
        let client = "192.0.2.1".parse().expect("ip");
        let mut moved = 0;
        for n in 0..200 {
            let req = request(&format!("/item/{n}?v=1"));
            let k = RequestKey {
                header: &req,
                client,
            };
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
            let k = RequestKey {
                header: &req,
                client,
            };
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
        let mut out = Vec::new();
        k.render(&req, "192.0.2.1".parse().expect("ip"), &mut out);
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "example.com:/a/b|7|abc|t1"
        );
        assert!(
            HashKey::parse("$nope")
                .unwrap_err()
                .contains("unknown variable '$nope'")
        );
        assert!(HashKey::parse("fixed").is_err());
        assert!(HashKey::parse("${host").is_err());
    }
}
