//! Access control of a route (`access:` of a site or route; nginx
//! `allow`/`deny`, `auth_basic`, `auth_request`, `satisfy`), compiled at
//! load into an [`Access`] step that `proxy::access` runs after the
//! rewrites and checks and before the route's upstream or files.
//!
//! - [`IpRules`]: `allow`/`deny` networks, first match wins, no match
//!   allows (nginx), on the real client IP (after `trusted_proxies`).
//! - [`BasicAuth`]: users of an htpasswd file ([`super::htpasswd`]), read at
//!   load. A slow hash (bcrypt, SHA-crypt) is checked on a blocking thread,
//!   at most [`SLOW_CHECKS`] at once, so the worker threads keep serving
//!   other requests; a credential that checked out is remembered for
//!   [`CACHE_TTL`] (as a keyed hash, see [`BasicAuth::remember`]) so that a
//!   browser sending it with every request costs one bcrypt, not one per
//!   request.
//! - [`ForwardAuth`]: where the auth subrequest goes and which headers go
//!   there and come back; the subrequest itself is `proxy::access`'s.
//!
//! Each part is an `Arc` because a site's parts are shared by every route
//! that does not replace them.

use super::htpasswd::Users;
use http::HeaderName;
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How many bcrypt / SHA-crypt checks of one `basic_auth` run at once; more
/// wait their turn (a flood of wrong passwords queues, it does not take
/// every blocking thread).
pub const SLOW_CHECKS: usize = 4;

/// How long a credential that checked out is taken without hashing again.
pub const CACHE_TTL: Duration = Duration::from_secs(300);

/// Credentials remembered at most (the whole memory is cleared past it).
pub const CACHE_MAX: usize = 4096;

/// A route's compiled access control.
#[derive(Debug, Default, Clone)]
pub struct Access {
    /// `allow`/`deny` rules; `None` = none.
    pub ip: Option<Arc<IpRules>>,
    /// HTTP Basic auth; `None` = none (or `off`).
    pub basic: Option<Arc<BasicAuth>>,
    /// Forward auth; `None` = none (or `off`).
    pub forward: Option<Arc<ForwardAuth>>,
    /// `satisfy: any`: one passing part is enough (default: all must pass).
    pub any: bool,
}

impl Access {
    /// True when nothing is checked (the step is then left out of the plan).
    pub fn is_empty(&self) -> bool {
        self.ip.is_none() && self.basic.is_none() && self.forward.is_none()
    }
}

/// `allow`/`deny` rules in order.
#[derive(Debug, Default)]
pub struct IpRules {
    /// (network, allow?) in file order; `all` is `0.0.0.0/0` and `::/0`.
    pub rules: Box<[(IpNet, bool)]>,
}

impl IpRules {
    /// nginx's order: the first rule whose network holds `ip` decides; an
    /// address no rule names is allowed. A v4-mapped IPv6 address is its
    /// IPv4 self (as nginx compares it).
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.rules
            .iter()
            .find(|(net, _)| net.contains(&ip))
            .is_none_or(|(_, allow)| *allow)
    }
}

/// HTTP Basic auth against an htpasswd file.
pub struct BasicAuth {
    /// The `WWW-Authenticate` value (`Basic realm="…"`).
    pub challenge: http::HeaderValue,
    /// The file's users.
    pub users: Users,
    /// The file, for log lines.
    pub file: std::path::PathBuf,
    /// Slow checks running at once.
    pub slots: tokio::sync::Semaphore,
    /// Remembered credentials: keyed hash -> when checked.
    verified: Mutex<HashMap<[u8; 32], Instant>>,
    /// This load's random key for [`BasicAuth::remember`].
    key: ring::hmac::Key,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("challenge", &self.challenge)
            .field("file", &self.file)
            .field("users", &self.users.len())
            .finish()
    }
}

impl BasicAuth {
    /// Basic auth for `realm` with these users.
    pub fn new(realm: &str, users: Users, file: std::path::PathBuf) -> BasicAuth {
        let quoted = realm.replace('\\', "\\\\").replace('"', "\\\"");
        let challenge = http::HeaderValue::from_str(&format!("Basic realm=\"{quoted}\""))
            .unwrap_or_else(|_| http::HeaderValue::from_static("Basic realm=\"Restricted\""));
        let rng = ring::rand::SystemRandom::new();
        let key = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng)
            .unwrap_or_else(|_| ring::hmac::Key::new(ring::hmac::HMAC_SHA256, realm.as_bytes()));
        BasicAuth {
            challenge,
            users,
            file,
            slots: tokio::sync::Semaphore::new(SLOW_CHECKS),
            verified: Mutex::new(HashMap::new()),
            key,
        }
    }

    /// The memory's key for a credential: HMAC-SHA256 under a key drawn at
    /// load. A careful operator does not want passwords, or fast unsalted
    /// hashes of them, lying in memory: this key never leaves the process
    /// and changes on every reload, so a remembered entry is of no use to
    /// an offline guesser without it, and a reload forgets everything.
    pub fn cache_key(&self, user: &str, password: &[u8]) -> [u8; 32] {
        let mut ctx = ring::hmac::Context::with_key(&self.key);
        ctx.update(user.as_bytes());
        ctx.update(&[0]);
        ctx.update(password);
        let tag = ctx.sign();
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// True when this credential checked out less than [`CACHE_TTL`] ago.
    pub fn remembered(&self, key: &[u8; 32], now: Instant) -> bool {
        let map = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .is_some_and(|at| now.saturating_duration_since(*at) < CACHE_TTL)
    }

    /// Remembers a credential that checked out. Past [`CACHE_MAX`] entries
    /// the expired ones go, then, if still full, all of them: the memory
    /// is bounded whatever the number of users or clients.
    pub fn remember(&self, key: [u8; 32], now: Instant) {
        let mut map = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= CACHE_MAX {
            map.retain(|_, at| now.saturating_duration_since(*at) < CACHE_TTL);
            if map.len() >= CACHE_MAX {
                map.clear();
            }
        }
        map.insert(key, now);
    }
}

/// Where a forward-auth subrequest goes.
#[derive(Debug)]
pub enum AuthTarget {
    /// One of the config's upstreams (its active pool, balanced), at this
    /// path (and query).
    Upstream {
        /// Upstream name (known to exist).
        name: String,
        /// Request target sent, e.g. `/auth`, as written.
        path: String,
        /// `path` compiled, when it holds variables (`/auth$request_uri`).
        vars: Option<Box<crate::plan::template::Template>>,
    },
    /// A fixed URL.
    Url {
        /// Resolved at load.
        peer: Box<pingora::upstreams::peer::HttpPeer>,
        /// `Host` header (the URL's authority).
        host: String,
        /// Request target sent, as written.
        path: String,
        /// `path` compiled, when it holds variables.
        vars: Option<Box<crate::plan::template::Template>>,
    },
}

impl AuthTarget {
    /// The request target for this request: `path`, or its template
    /// rendered with `cx` (built only when there are variables).
    pub fn target<'c>(
        &self,
        cx: impl FnOnce() -> crate::plan::vars::VarCx<'c>,
    ) -> std::borrow::Cow<'_, str> {
        let (AuthTarget::Upstream { path, vars, .. } | AuthTarget::Url { path, vars, .. }) = self;
        match vars {
            Some(t) => std::borrow::Cow::Owned(t.render(&cx())),
            None => std::borrow::Cow::Borrowed(path),
        }
    }
}

/// Forward auth (nginx `auth_request`, Traefik `forwardAuth`).
pub struct ForwardAuth {
    /// Where the subrequest goes.
    pub target: AuthTarget,
    /// Client headers sent along; `None` = all of them (nginx, Traefik).
    pub request_headers: Option<Box<[HeaderName]>>,
    /// Headers of a 2xx answer set on the request to the upstream (and
    /// removed from it when the answer lacks them).
    pub copy_headers: Box<[HeaderName]>,
    /// How long the whole subrequest may take.
    pub timeout: Duration,
    /// Connections to the auth service, kept alive between subrequests.
    pub connector: pingora::connectors::http::Connector,
}

impl std::fmt::Debug for ForwardAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardAuth")
            .field("target", &self.target)
            .field("request_headers", &self.request_headers)
            .field("copy_headers", &self.copy_headers)
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(list: &[(&str, bool)]) -> IpRules {
        IpRules {
            rules: list
                .iter()
                .map(|(n, a)| (n.parse().expect("net"), *a))
                .collect(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn the_first_matching_rule_decides_and_no_match_allows() {
        let r = rules(&[
            ("192.168.1.1/32", false),
            ("192.168.1.0/24", true),
            ("2001:db8::/32", true),
            ("0.0.0.0/0", false),
            ("::/0", false),
        ]);
        assert!(!r.allows(ip("192.168.1.1")), "denied before the allow");
        assert!(r.allows(ip("192.168.1.2")));
        assert!(!r.allows(ip("10.0.0.1")), "deny all");
        assert!(r.allows(ip("2001:db8::5")));
        assert!(!r.allows(ip("::1")));
        assert!(r.allows(ip("::ffff:192.168.1.9")), "v4-mapped is IPv4");
        assert!(rules(&[("10.0.0.0/8", false)]).allows(ip("127.0.0.1")));
        assert!(IpRules::default().allows(ip("127.0.0.1")));
    }

    #[test]
    fn remembered_credentials_expire_and_the_memory_is_bounded() {
        let b = BasicAuth::new("R \"x\"", Users::default(), "f".into());
        assert_eq!(b.challenge, "Basic realm=\"R \\\"x\\\"\"");
        let k = b.cache_key("u", b"p");
        assert_ne!(k, b.cache_key("u", b"q"));
        assert_ne!(
            k,
            b.cache_key("up", b""),
            "user and password are kept apart"
        );
        let other = BasicAuth::new("R", Users::default(), "f".into());
        assert_ne!(k, other.cache_key("u", b"p"), "a key per load");
        let t0 = Instant::now();
        assert!(!b.remembered(&k, t0));
        b.remember(k, t0);
        assert!(b.remembered(&k, t0 + Duration::from_secs(1)));
        assert!(!b.remembered(&k, t0 + CACHE_TTL));
        for i in 0..CACHE_MAX * 2 {
            b.remember(b.cache_key(&i.to_string(), b""), t0);
        }
        let len = b.verified.lock().map(|m| m.len()).unwrap_or(usize::MAX);
        assert!(len <= CACHE_MAX, "{len}");
    }
}
