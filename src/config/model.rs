//! The typed, validated configuration: what greenlight runs on.
//!
//! Built only by [`crate::config::validate`]; immutable afterwards and shared
//! as `Arc<Config>` inside a snapshot. No serde here: the file format may
//! change without touching the code that uses these types. Values are already
//! parsed (socket addresses, durations, byte counts, enums) and every
//! cross-reference (route -> upstream, active -> pool) is known to resolve.

use crate::config::diag::Origin;
pub use crate::plan::client_ip::ClientIpRule;
use crate::plan::{Plan, SitePlan};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A whole validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file this came from (for reloads and messages).
    pub source: PathBuf,
    /// Listen addresses, fixed for the life of the process.
    pub listeners: Vec<ListenerConfig>,
    /// The admin API.
    pub admin: AdminConfig,
    /// Client-facing limits and timeouts.
    pub limits: LimitsConfig,
    /// Access log (fixed at start).
    pub access_log: AccessLogConfig,
    /// ACME settings, when some site has `tls: acme`.
    pub acme: Option<crate::acme::AcmeConfig>,
    /// Directory for generated certificates.
    pub certs_dir: PathBuf,
    /// How long SIGTERM/SIGQUIT wait for in-flight requests before ending them.
    pub shutdown_timeout: Duration,
    /// Unix socket for the binary-upgrade hand-off (fixed at start).
    pub upgrade_socket: PathBuf,
    /// Who may name the client, and in which header (`trusted_proxies`,
    /// `client_ip_from`); sites may have their own.
    pub client_ip: ClientIpRule,
    /// Sites in file order.
    pub sites: Vec<SiteConfig>,
    /// Upstreams in file order.
    pub upstreams: Vec<UpstreamConfig>,
    /// The compiled `maps:`, in file order (`Var::Map` indexes into it).
    pub maps: std::sync::Arc<[crate::plan::map::VarMap]>,
    /// `limit_req_zones` and `limit_conn_zones` (plans index into them).
    pub zones: crate::plan::limits::Zones,
    /// Fleet mode (`cluster:`), fixed at start.
    pub cluster: Option<super::validate_cluster::ClusterConfig>,
}

impl Config {
    /// The upstream called `name`.
    pub fn upstream(&self, name: &str) -> Option<&UpstreamConfig> {
        self.upstreams.iter().find(|u| u.name == name)
    }

    /// The port HTTPS redirects point to: the first TLS listener's port.
    pub fn https_port(&self) -> Option<u16> {
        self.listeners.iter().find(|l| l.tls).map(|l| l.addr.port())
    }
}

/// One listen address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerConfig {
    /// Name from the file.
    pub name: String,
    /// Bound address.
    pub addr: SocketAddr,
    /// Terminates TLS (h2 + http/1.1 by ALPN).
    pub tls: bool,
    /// Client connections open at once, at most (fixed at start).
    pub max_connections: usize,
    /// Connections start with a PROXY protocol header whose source address
    /// is the client's (fixed at start).
    pub proxy_protocol: bool,
}

/// Where access log lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccessLogConfig {
    /// No access log.
    Off,
    /// To standard output.
    Stdout(AccessLogFormat),
    /// To a file (reopened on SIGUSR1).
    File(PathBuf, AccessLogFormat),
}

/// Access log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// nginx's `combined`.
    Combined,
    /// One JSON object per line.
    Json,
}

/// What one client request may cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Longest request target in bytes (414 beyond).
    pub max_uri_length: usize,
    /// Total bytes of request header fields (431 beyond).
    pub max_header_size: usize,
    /// Number of request header fields (431 beyond).
    pub max_headers: usize,
    /// Time a new connection has to deliver its first complete request header.
    pub header_timeout: Duration,
    /// Idle keep-alive timeout for client connections.
    pub keepalive_timeout: Duration,
    /// Requests one HTTP/1.1 client connection serves before it is closed.
    pub keepalive_requests: u32,
    /// Longest pause while reading a request body.
    pub body_timeout: Duration,
    /// Request body bytes a buffered request keeps in memory; beyond, an
    /// unlinked temp file holds the body.
    pub body_buffer_size: usize,
    /// Longest wait for a client to accept the next piece of a response.
    pub send_timeout: Duration,
    /// Idle limit of an upgraded (WebSocket) connection; `None` = no limit.
    pub websocket_idle_timeout: Option<Duration>,
    /// HTTP/2 streams per client connection.
    pub h2_max_concurrent_streams: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_uri_length: defaults::MAX_URI_LENGTH,
            max_header_size: defaults::MAX_HEADER_SIZE,
            max_headers: defaults::MAX_HEADERS,
            header_timeout: defaults::HEADER_TIMEOUT,
            keepalive_timeout: defaults::KEEPALIVE_TIMEOUT,
            keepalive_requests: defaults::KEEPALIVE_REQUESTS,
            body_timeout: defaults::BODY_TIMEOUT,
            body_buffer_size: defaults::BODY_BUFFER_SIZE,
            send_timeout: defaults::SEND_TIMEOUT,
            websocket_idle_timeout: None,
            h2_max_concurrent_streams: defaults::H2_MAX_CONCURRENT_STREAMS,
        }
    }
}

/// The admin API listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminConfig {
    /// Bound address (loopback unless a token is set).
    pub addr: SocketAddr,
    /// Bearer token file.
    pub token_file: Option<PathBuf>,
    /// Extra names (`host:port`, lowercase) a request's Host or Origin may
    /// use besides the admin address itself (see `admin::guard`).
    pub allowed_hosts: Vec<String>,
}

/// A host pattern of a site (nginx `server_name` forms).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPattern {
    /// `example.com` (lowercase).
    Exact(String),
    /// `*.example.com`, stored as the suffix `.example.com`. Routing matches
    /// any depth like nginx (`a.b.example.com` too, the longest such suffix
    /// wins); certificate selection by SNI keeps certificate semantics (one
    /// label, see `tls::store`).
    Wildcard(String),
    /// `www.example.*`, stored as the prefix `www.example.`: any name that
    /// starts with it and has at least one more label. Routing only: no
    /// certificate can name it.
    TrailingWildcard(String),
    /// `~regex`: a case-insensitive regular expression over the lowercased
    /// host without port, tried in file order. Routing only.
    Regex(crate::plan::location::Pattern),
}

impl HostPattern {
    /// The pattern as written in the file.
    pub fn as_written(&self) -> String {
        match self {
            HostPattern::Exact(h) => h.clone(),
            HostPattern::Wildcard(s) => format!("*{s}"),
            HostPattern::TrailingWildcard(p) => format!("{p}*"),
            HostPattern::Regex(r) => format!("~{}", r.as_str()),
        }
    }

    /// The name a certificate would carry for this pattern (`example.com`,
    /// `*.example.com`); `None` for the routing-only forms.
    pub fn cert_name(&self) -> Option<String> {
        match self {
            HostPattern::Exact(_) | HostPattern::Wildcard(_) => Some(self.as_written()),
            HostPattern::TrailingWildcard(_) | HostPattern::Regex(_) => None,
        }
    }
}

/// Where a site's certificate comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsSource {
    /// PEM files given by the operator.
    Files {
        /// Certificate chain (leaf first).
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
    /// Generated at start into `certs_dir` (development).
    SelfSigned,
    /// Obtained and renewed through ACME (the `acme` section).
    Acme,
}

/// What plain listeners do with requests for a TLS site.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlainHttp {
    /// A redirect to the https URL with this status (308 unless written
    /// `redirect 301` etc., as nginx's `return 301 https://…` is).
    Redirect(u16),
    /// Proxy the request as on the TLS listener.
    Serve,
    /// Answer 404 (`plain_http: not_found`): the site is not served over
    /// plain HTTP at all, not even with a redirect.
    NotFound,
    /// `plain_http: default`: the plain listeners' default site answers,
    /// as if the name were unknown there (nginx, when no plain-HTTP server
    /// block names a TLS server's hosts); 404 when there is none.
    Default,
}

/// Which requests a route takes by how they arrived (`scheme:`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RouteScheme {
    /// Both (no `scheme:`).
    #[default]
    Any,
    /// Plain HTTP only. On a TLS site whose `plain_http` redirects (or
    /// answers 404), these routes are served over plain HTTP and every
    /// other path is redirected.
    Http,
    /// TLS only.
    Https,
}

/// Which listeners a site is the catch-all of (nginx has a default server
/// per port; a plain port's default may differ from the TLS one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SiteDefault {
    /// Not a default site.
    #[default]
    No,
    /// `default: true`: unknown hosts on every listener.
    All,
    /// `default: https`: unknown hosts on TLS listeners only.
    Https,
    /// `default: http`: unknown hosts on plain listeners only.
    Http,
}

impl SiteDefault {
    /// True when unknown hosts on a listener of this kind come here.
    pub fn covers(self, tls: bool) -> bool {
        match self {
            SiteDefault::No => false,
            SiteDefault::All => true,
            SiteDefault::Https => tls,
            SiteDefault::Http => !tls,
        }
    }

    /// True for any default.
    pub fn any(self) -> bool {
        self != SiteDefault::No
    }

    /// As the config writes it: `false`, `true`, `"https"` or `"http"`.
    pub fn as_json(self) -> serde_json::Value {
        match self {
            SiteDefault::No => false.into(),
            SiteDefault::All => true.into(),
            SiteDefault::Https => "https".into(),
            SiteDefault::Http => "http".into(),
        }
    }
}

/// One site.
#[derive(Clone, Debug)]
pub struct SiteConfig {
    /// Name from the file.
    pub name: String,
    /// Host patterns in file order; empty only for the default site (nginx's
    /// catch-all server).
    pub hosts: Vec<HostPattern>,
    /// Serves hosts no site names (on which listeners).
    pub default: SiteDefault,
    /// `listeners:`: the listeners (indexes into [`Config::listeners`])
    /// whose requests this site takes; `None` = every listener.
    pub listeners: Option<Vec<usize>>,
    /// Certificate source; `None` for a plain-HTTP-only site.
    pub tls: Option<TlsSource>,
    /// Where `tls:` was written, for certificate errors found later.
    pub tls_origin: Origin,
    /// `tls: {acme: [names]}`: the names ordered (lower case); empty = the
    /// site's exact hosts.
    pub acme_names: Vec<String>,
    /// Client certificates asked of TLS clients, CA roots loaded.
    pub client_auth: Option<Arc<crate::tls::client_auth::ClientAuth>>,
    /// Behaviour on plain listeners when `tls` is set.
    pub plain_http: PlainHttp,
    /// Where `plain_http: {redirect: NNN, to: URL}` sends plain requests;
    /// `None` = the request's own URL on https.
    pub plain_redirect_to: Option<std::sync::Arc<crate::plan::template::Template>>,
    /// Request body limit in bytes; `None` = unlimited.
    pub max_body_size: Option<u64>,
    /// HTTP/1.1 keep-alive wait for requests this site answers, instead of
    /// `limits.keepalive_timeout`; zero closes the connection after the
    /// answer (nginx `keepalive_timeout` in a server block).
    pub keepalive_timeout: Option<std::time::Duration>,
    /// Request headers with `_` in their names reach the app (nginx's
    /// `underscores_in_headers on`); off by default, they are dropped.
    pub underscores_in_headers: bool,
    /// The site's own client-IP rule; `None` = the top level's.
    pub client_ip: Option<ClientIpRule>,
    /// Routes, in file order.
    pub routes: Vec<RouteConfig>,
    /// The site's own steps (response headers of answers made without a
    /// route); route plans hold them merged with their own.
    pub plan: Arc<SitePlan>,
}

/// A route: which paths (nginx `location` syntax) match, and what answers.
#[derive(Clone, Debug)]
pub struct RouteConfig {
    /// The compiled path matcher (exact, prefix, `^~` prefix or regex).
    pub location: crate::plan::location::Location,
    /// The request methods it takes; `None` = every method (the route of
    /// its location that takes what no other one names).
    pub methods: Option<Vec<http::Method>>,
    /// Which requests it takes by how they arrived (`scheme:`).
    pub scheme: RouteScheme,
    /// Upstream name (known to exist); `None` for a route that answers
    /// itself (`redirect`, `respond`).
    pub upstream: Option<String>,
    /// The compiled plan: steps (site's merged in) and terminal.
    pub plan: Arc<Plan>,
    /// Read the request body whole before connecting upstream (the route's
    /// `request_buffering`, else the site's; on by default).
    pub request_buffering: bool,
    /// Body limit in bytes for this route (`max_body_size`, else the
    /// site's); `None` = unlimited.
    pub max_body_size: Option<u64>,
    /// Upstream answers retried on the next server (`retry_statuses`,
    /// else the site's).
    pub retry_statuses: crate::plan::retry::RetryStatuses,
}

/// A named group of application instances in pools.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// Name from the file.
    pub name: String,
    /// The pool that takes new requests (known to exist).
    pub active: String,
    /// Where `active:` was written (the switch command rewrites it).
    pub active_origin: Origin,
    /// Pools in file order.
    pub pools: Vec<PoolConfig>,
    /// How long a pool that stops being active may finish its work.
    pub drain_timeout: Duration,
    /// TCP connect timeout per server try.
    pub connect_timeout: Duration,
    /// Idle read timeout on the upstream connection.
    pub read_timeout: Duration,
    /// Idle write timeout on the upstream connection.
    pub write_timeout: Duration,
    /// Active checks, if configured.
    pub health: Option<HealthConfig>,
    /// Passive health: failures in a row (connect errors, 5xx) that mark a
    /// server down; 0 turns passive marking off.
    pub max_fails: u32,
    /// Passive health: how long such a server stays down.
    pub fail_timeout: Duration,
    /// How a server is chosen for a request (`balance`).
    pub balance: Balance,
    /// HTTPS to the servers (`tls: true` and its keys); `None` = plain HTTP.
    pub tls: Option<UpstreamTls>,
}

/// How an upstream picks a server of its active pool for a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Balance {
    /// Smooth weighted round robin (nginx's default).
    RoundRobin,
    /// The up server with the fewest requests in flight per unit of weight.
    LeastConn,
    /// Consistent hashing on the client address (IPv4: its /24, like nginx).
    IpHash,
    /// Consistent hashing on a key built from the request.
    Hash(crate::upstream::balance::HashKey),
}

/// HTTPS to an upstream's servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamTls {
    /// Name sent as SNI and checked against the certificate for every
    /// server; `None` = each server's host as written (an IP literal sends
    /// no SNI and its certificate must cover the IP address).
    pub sni: Option<String>,
    /// Trust only these CA certificates (DER, from the `ca:` PEM file);
    /// `None` = the system roots.
    pub ca: Option<CaCerts>,
    /// Check the server certificate (chain and name); off only when written.
    pub verify: bool,
    /// Offer HTTP/2 by ALPN (the server may still choose HTTP/1.1).
    pub http2: bool,
}

/// The certificates of a `ca:` file, read at load time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaCerts {
    /// The file, as written.
    pub path: PathBuf,
    /// Its certificates, DER encoded (parsed and known to be X.509).
    pub der: std::sync::Arc<Vec<Vec<u8>>>,
}

/// Active health checks of an upstream's servers (every pool).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthConfig {
    /// GET this path.
    pub path: String,
    /// Between checks of one server.
    pub interval: Duration,
    /// One check's time limit.
    pub timeout: Duration,
    /// Successes in a row to come back up.
    pub healthy_after: u32,
    /// Failures in a row to go down.
    pub unhealthy_after: u32,
    /// Accepted status codes, inclusive.
    pub expect_status: (u16, u16),
}

impl UpstreamConfig {
    /// The pool called `name`.
    pub fn pool(&self, name: &str) -> Option<&PoolConfig> {
        self.pools.iter().find(|p| p.name == name)
    }
}

/// A pool of servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Name from the file.
    pub name: String,
    /// Servers in file order.
    pub servers: Vec<ServerConfig>,
}

/// One application instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// As written (`localhost:8082`), for logs and the API.
    pub label: String,
    /// Resolved address, or a unix socket path.
    pub addr: crate::upstream::addr::ServerAddr,
    /// Share of requests relative to the pool's other servers (at least 1).
    pub weight: u32,
    /// Takes requests only while every primary server of the pool is down.
    pub backup: bool,
    /// This server's `max_fails` when it differs from the upstream's.
    pub max_fails: Option<u32>,
    /// This server's `fail_timeout` when it differs from the upstream's.
    pub fail_timeout: Option<std::time::Duration>,
}

impl SiteConfig {
    /// The names an ACME (or stand-in self-signed) certificate of this site
    /// carries: `tls: {acme: [names]}`'s, else its exact hosts.
    pub fn acme_cert_names(&self) -> Vec<String> {
        if self.acme_names.is_empty() {
            self.hosts
                .iter()
                .filter_map(HostPattern::cert_name)
                .collect()
        } else {
            self.acme_names.clone()
        }
    }
}

impl ServerConfig {
    /// The host part of the label as written (`app.internal`, `127.0.0.1`,
    /// `::1` without brackets): the default TLS server name.
    pub fn host(&self) -> &str {
        let h = self
            .label
            .rsplit_once(':')
            .map_or(self.label.as_str(), |(h, _)| h);
        h.trim_start_matches('[').trim_end_matches(']')
    }
}

/// Defaults that the validator fills in, in one place so docs and code agree.
pub mod defaults {
    use std::time::Duration;
    /// `admin.address`.
    pub const ADMIN_ADDR: &str = "127.0.0.1:9090";
    /// `certs_dir`.
    pub const CERTS_DIR: &str = "certs";
    /// `listeners.*.max_connections` (well under the systemd unit's
    /// LimitNOFILE, which also has to cover upstream connections).
    pub const MAX_CONNECTIONS: u32 = 16_384;
    /// `limits.max_uri_length`: 8 KiB (nginx's large_client_header_buffers line size).
    pub const MAX_URI_LENGTH: usize = 8 * 1024;
    /// `limits.max_header_size`: 32 KiB (nginx: 4 x 8k buffers).
    pub const MAX_HEADER_SIZE: usize = 32 * 1024;
    /// `limits.max_headers`.
    pub const MAX_HEADERS: usize = 100;
    /// `limits.header_timeout` (slowloris; nginx client_header_timeout is 60s,
    /// but a whole header in 10s is generous for any real client).
    pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    /// `limits.keepalive_requests`: nginx's default since 1.19.10. Closing
    /// a long-lived connection now and then lets a client's connections
    /// spread again over a changed set of proxies and bounds what one
    /// connection can hold on to.
    pub const KEEPALIVE_REQUESTS: u32 = 1000;
    /// `limits.keepalive_timeout` (nginx 75s; browsers keep about 60s).
    pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(60);
    /// `limits.h2_max_concurrent_streams` (nginx's default).
    pub const H2_MAX_CONCURRENT_STREAMS: u32 = 128;
    /// `limits.body_timeout` (nginx client_body_timeout).
    pub const BODY_TIMEOUT: Duration = Duration::from_secs(60);
    /// `limits.body_buffer_size`: 16 KiB, nginx's `client_body_buffer_size` on
    /// 64-bit hosts. Form posts and JSON calls fit; a thousand slow uploads cost
    /// at most 16 MB of memory; larger bodies go to a temp file (page cache).
    pub const BODY_BUFFER_SIZE: usize = 16 * 1024;
    /// `limits.send_timeout` (nginx send_timeout).
    pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);
    /// `upstreams.*.max_fails`: 3 in a row. nginx uses 1; greenlight counts
    /// the same failures (connections, timeouts) but forgives a lone blip.
    pub const MAX_FAILS: u32 = 3;
    /// `upstreams.*.fail_timeout` (nginx's default too).
    pub const FAIL_TIMEOUT: Duration = Duration::from_secs(10);
    /// `health.interval`.
    pub const HEALTH_INTERVAL: Duration = Duration::from_secs(5);
    /// `health.timeout`.
    pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
    /// `health.healthy_after`.
    pub const HEALTHY_AFTER: u32 = 2;
    /// `health.unhealthy_after`.
    pub const UNHEALTHY_AFTER: u32 = 3;
    /// `shutdown_timeout`.
    pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
    /// `upgrade_socket`.
    pub const UPGRADE_SOCKET: &str = "/tmp/greenlight-upgrade.sock";
    /// `sites.*.max_body_size`: 10 MiB.
    pub const MAX_BODY_SIZE: u64 = 10 * 1024 * 1024;
    /// `upstreams.*.drain_timeout`.
    pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
    /// `upstreams.*.connect_timeout`.
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// `upstreams.*.read_timeout` (nginx `proxy_read_timeout`).
    pub const READ_TIMEOUT: Duration = Duration::from_secs(60);
    /// `upstreams.*.write_timeout` (nginx `proxy_send_timeout`).
    pub const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
}
