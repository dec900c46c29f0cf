//! The converter: walks the parsed configuration, builds greenlight's
//! listeners, sites and upstreams, and reports everything it leaves out.
//!
//! Server blocks and locations are analysed in `server.rs`, `upstream`
//! blocks (pools and passive health) in `upstream.rs`, inherited settings
//! in `inherit.rs`, client limits in
//! `limits.rs`; this file holds the shared model and the http-level walk;
//! sites are assembled in `sites.rs`, upstreams grouped in `finish.rs` and
//! the YAML is written by `emit.rs`.

use std::collections::HashMap;

use super::addr::Names;
use super::directives;
use super::emit;
use super::limits::{self, LimitLine, LimitSeen, Scope};
use super::parse::{Config, Directive};
use super::realip;
use super::server::{self, ServerInfo};
use super::sites;
use super::upstream::{self, Passive};
use super::{ImportError, ImportOptions, ImportOutput, NOTE_PREFIX, Note, Warning};

/// Conversion state shared by all passes: the configuration and the
/// messages collected so far.
pub(crate) struct Ctx<'a> {
    /// The loaded configuration.
    pub cfg: &'a Config,
    /// Warnings and notes so far.
    pub notes: Vec<Note>,
    /// Client limits seen so far (greenlight's are global).
    pub limits: Vec<LimitSeen<'a>>,
    /// The block being walked, for `limits`.
    pub scope: Scope,
    /// `access_log off` at http level.
    pub access_log_off: Option<&'a Directive>,
    /// Imported with `--acme`: greenlight answers ACME challenges itself.
    pub acme: bool,
    /// http-level `map`s converted so far.
    pub maps: Vec<super::checks::MapDef>,
    /// Limit zones and each route's limits and error pages.
    pub rate: super::ratelimit::RateState<'a>,
}

impl Ctx<'_> {
    /// Records a warning about `d`.
    pub fn warn(&mut self, d: &Directive, message: impl Into<String>) {
        self.notes.push(Note {
            file: d.file,
            line: d.line,
            seq: d.seq,
            message: message.into(),
        });
    }

    /// Records an informational note about `d`.
    pub fn note(&mut self, d: &Directive, message: impl AsRef<str>) {
        self.warn(d, format!("{NOTE_PREFIX}{}", message.as_ref()));
    }

    /// Records the standard message for a directive that is not converted.
    pub fn unsupported(&mut self, d: &Directive) {
        let message = directives::explain(d);
        self.warn(d, message);
    }

    /// `file:line` of a directive.
    pub fn at(&self, d: &Directive) -> String {
        format!("{}:{}", self.cfg.file_name(d.file), d.line)
    }
}

pub(crate) use super::inherit::{Inherit, Level, RealIp, common};

/// A value and the directive it came from.
#[derive(Debug, Clone)]
pub(crate) struct Setting<'a, T> {
    /// The converted value.
    pub value: T,
    /// Where it was set.
    pub d: &'a Directive,
}

/// Upstream timeouts (milliseconds), set per location in nginx.
#[derive(Debug, Clone, Default)]
pub(crate) struct Timeouts<'a> {
    /// `proxy_connect_timeout`.
    pub connect: Option<Setting<'a, u64>>,
    /// `proxy_read_timeout`.
    pub read: Option<Setting<'a, u64>>,
    /// `proxy_send_timeout`.
    pub write: Option<Setting<'a, u64>>,
}

impl Timeouts<'_> {
    /// The values alone, for grouping routes into upstreams.
    pub fn key(&self) -> [Option<u64>; 3] {
        [&self.connect, &self.read, &self.write].map(|s| s.as_ref().map(|s| s.value))
    }
}

/// A host name of a site.
#[derive(Debug, Clone)]
pub(crate) struct Host<'a> {
    /// Lower-case host name or `*.` wildcard.
    pub name: String,
    /// The `server_name` it came from.
    pub d: &'a Directive,
}

/// A listener, keyed by its normalized address.
#[derive(Debug, Clone)]
pub(crate) struct Listener<'a> {
    /// Greenlight name (`http`, `https-2`...), set once all are known.
    pub name: String,
    /// `host:port` or a placeholder.
    pub address: String,
    /// True for `listen ... ssl`.
    pub tls: bool,
    /// The first `listen` with this address.
    pub d: &'a Directive,
    /// Why the address is a placeholder the user must edit.
    pub edit: Option<String>,
    /// `listen … proxy_protocol`.
    pub proxy_protocol: bool,
}

/// All listeners, in order of first appearance.
#[derive(Debug, Default)]
pub(crate) struct Listeners<'a> {
    /// The listeners.
    pub list: Vec<Listener<'a>>,
    /// Listen key (a block's `listen_keys`) -> index into `list`.
    pub(super) by_key: HashMap<String, usize>,
}

impl<'a> Listeners<'a> {
    /// Adds (or finds) the listener for `key`.
    pub fn add(
        &mut self,
        ctx: &mut Ctx<'a>,
        key: String,
        address: String,
        edit: Option<String>,
        tls: bool,
        d: &'a Directive,
    ) {
        if let Some(&i) = self.by_key.get(&key) {
            if let Some(l) = self.list.get_mut(i)
                && l.tls != tls
            {
                let first = ctx.at(l.d);
                ctx.warn(
                    d,
                    format!(
                        "listen {}: 'ssl' differs from the listen at {first}; nginx uses one socket for both, which is TLS when any of them says 'ssl', and so does the greenlight listener",
                        d.arg0()
                    ),
                );
                l.tls = true;
            }
            return;
        }
        self.by_key.insert(key, self.list.len());
        self.list.push(Listener {
            name: String::new(),
            address,
            tls,
            d,
            edit,
            proxy_protocol: false,
        });
    }

    /// Marks the listener for `key` as reading the PROXY protocol.
    pub fn set_proxy_protocol(&mut self, key: &str) {
        if let Some(l) = self.by_key.get(key).and_then(|&i| self.list.get_mut(i)) {
            l.proxy_protocol = true;
        }
    }

    /// True when some listener is plain HTTP.
    pub fn any_plain(&self) -> bool {
        self.list.iter().any(|l| !l.tls)
    }
}

/// One server of an `upstream` block.
#[derive(Debug, Clone)]
pub(crate) struct UpServer {
    /// `host:port` or a placeholder.
    pub addr: String,
    /// Why `addr` is a placeholder.
    pub edit: Option<String>,
    /// Trailing comment (origin and unsupported parameters).
    pub comment: Option<String>,
    /// `weight=N` (None: 1).
    pub weight: Option<u32>,
    /// `backup`.
    pub backup: bool,
    /// `max_fails=N` where it differs from the upstream's.
    pub max_fails: Option<u32>,
    /// `fail_timeout=T` (milliseconds) where it differs from the upstream's.
    pub fail_timeout: Option<u64>,
}

/// An nginx `upstream` block.
#[derive(Debug, Clone)]
pub(crate) struct UpstreamDef<'a> {
    /// The nginx upstream name.
    pub name: String,
    /// The `upstream` directive.
    pub d: &'a Directive,
    /// The servers (backups marked).
    pub main: Vec<UpServer>,
    /// `balance:` value (YAML text) and where it came from.
    pub balance: Option<(String, &'a Directive)>,
    /// Passive health made from the servers' `max_fails`/`fail_timeout`.
    pub passive: Passive,
    /// True once a route uses it.
    pub used: bool,
}

/// What a route proxies to, for grouping routes into upstreams.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum TargetKey {
    /// An `upstream` block, by index.
    Named(usize),
    /// A `host:port` from `proxy_pass`.
    Addr(String),
    /// A `proxy_pass` that could not be converted, by its text.
    Edit(String),
}

/// The target of a `proxy_pass`.
#[derive(Debug, Clone)]
pub(crate) struct Target<'a> {
    /// Identity for grouping routes into upstreams.
    pub key: TargetKey,
    /// The `proxy_pass` directive.
    pub d: &'a Directive,
    /// `host:port` or a placeholder (unused for named upstreams).
    pub addr: String,
    /// Why `addr` is a placeholder.
    pub edit: Option<String>,
    /// An extra comment for the upstream (e.g. https was used).
    pub comment: Option<String>,
    /// The `proxy_pass` URI part, when it replaces the location prefix.
    pub upstream_path: Option<String>,
    /// A `proxy_pass` URI with variables, as a final rewrite.
    pub path_rewrite: Option<Rewrite>,
    /// Base for the upstream's name.
    pub hint: String,
    /// `https://`: TLS to the servers.
    pub tls: Option<UpTls>,
    /// nginx's `$proxy_host`: the Host it sends when none is set.
    pub proxy_host: String,
    /// `rewrite_location:` rules (nginx `proxy_redirect`, explicit or implicit).
    pub redirects: Vec<super::redirects::RedirectRule>,
}

/// TLS to an upstream (`proxy_pass https://` and `proxy_ssl_*`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct UpTls {
    /// `sni:` (from `proxy_ssl_name`).
    pub sni: Option<String>,
    /// `ca:` (from `proxy_ssl_trusted_certificate`).
    pub ca: Option<String>,
    /// `verify: false` (from `proxy_ssl_verify off`).
    pub no_verify: bool,
}

/// An answer greenlight gives itself (nginx `return`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// `redirect: {to, status}`.
    Redirect {
        /// The Location template.
        to: String,
        /// 301, 302, 303, 307 or 308.
        status: u16,
    },
    /// `respond: {status, body, content_type}`.
    Respond {
        /// The status code.
        status: u16,
        /// The body template.
        body: Option<String>,
        /// From `add_header Content-Type` or `default_type`.
        content_type: Option<String>,
    },
    /// `respond: {status: 200, content_type, body_base64}`: fixed bytes
    /// (nginx `empty_gif`).
    Bytes {
        /// The media type.
        content_type: &'static str,
        /// The body, base64.
        base64: &'static str,
    },
}

/// One `rewrite:` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rewrite {
    /// The regex.
    pub from: String,
    /// The replacement template.
    pub to: String,
    /// `break`, `last`, `redirect` or `permanent`.
    pub flag: &'static str,
    /// `file:line` of the `rewrite`.
    pub at: String,
}

/// Header steps (`request_headers` or `response_headers`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Headers {
    /// `set: {name: value}`.
    pub set: Vec<(String, String)>,
    /// `add: {name: value}` (with `always` for responses).
    pub add: Vec<(String, String, bool)>,
    /// `remove: [name]`.
    pub remove: Vec<String>,
}

impl Headers {
    /// True when there is nothing to emit.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// `trusted_proxies` and `client_ip_from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientIp {
    /// CIDRs or addresses.
    pub trusted: Vec<String>,
    /// The header (None: greenlight's default, X-Forwarded-For).
    pub from: Option<String>,
    /// `file:line` of the first `set_real_ip_from`.
    pub at: String,
}

/// A route of a site.
#[derive(Debug, Clone)]
pub(crate) struct Route<'a> {
    /// The `path:` value: nginx location syntax (`/p`, `= /p`, `~ re`...).
    pub path: String,
    /// Request methods the route takes (`if ($request_method = M)`);
    /// `None` = every method.
    pub methods: Option<Vec<String>>,
    /// `scheme: http`: a location of a plain-HTTP block carried onto the
    /// TLS site that block redirects to (certbot's webroot).
    pub plain_only: bool,
    /// `expires:` of a route that proxies or answers (a files route keeps
    /// its own in `files`).
    pub expires: Option<String>,
    /// `charset:` (nginx `charset` in force).
    pub charset: Option<String>,
    /// The `location` directive.
    pub loc: &'a Directive,
    /// Extra comment (e.g. the route was an exact location).
    pub comment: Option<String>,
    /// What it proxies to (None: it answers itself).
    pub target: Option<Target<'a>>,
    /// The answer, for routes without a target.
    pub answer: Option<Answer>,
    /// `files:`, for a location that serves files.
    pub files: Option<super::files::FilesDef>,
    /// `upstream_path` (the `proxy_pass` URI part).
    pub upstream_path: Option<String>,
    /// `rewrite:` rules in order.
    pub rewrites: Vec<Rewrite>,
    /// `checks:` from the location's `if … return`s.
    pub checks: Vec<super::checks::CheckDef>,
    /// `request_headers` (nginx's list in force for this location).
    pub req: Headers,
    /// `response_headers` (nginx's list in force for this location).
    pub resp: Headers,
    /// `request_buffering` when nginx set it.
    pub request_buffering: Option<bool>,
    /// `max_body_size` when the location's differs from the site's, with
    /// the `file:line` of the directive that set it.
    pub max_body_size: Option<(String, String)>,
    /// `retry_statuses` from `proxy_next_upstream`, with its `file:line`.
    pub retry: Option<(Vec<u16>, String)>,
    /// Timeouts in force in the location.
    pub timeouts: Timeouts<'a>,
    /// Index of the emitted upstream (set when upstreams are assigned).
    pub upstream: usize,
    /// `access:` (nginx's access directives in force for this location).
    pub access: Option<super::access::AccessDef>,
    /// `compress:` from the `gzip*`/`brotli*` in force.
    pub compress: Option<super::compress::CompressDef>,
}

/// How a site gets its certificate.
#[derive(Debug, Clone)]
pub(crate) enum SiteTls<'a> {
    Files {
        cert: &'a Directive,
        key: &'a Directive,
    },
    Acme {
        cert: Option<&'a Directive>,
    },
    /// `tls: {acme: [names]}`: a catch-all TLS server without a certificate
    /// that plain-HTTP redirects send these names to.
    AcmeNames(Vec<String>),
    SelfSigned,
}

/// What plain listeners do for a TLS site.
#[derive(Debug, Clone)]
pub(crate) struct PlainHttp {
    /// `redirect`, `redirect NNN` or `serve`.
    pub mode: String,
    /// Trailing comment saying where it came from.
    pub detail: String,
}

impl<'a> Route<'a> {
    /// A route at `path` from `loc` with nothing else set: the importer's
    /// routes that are not locations (a server-level answer, a redirect
    /// site, a server's root) fill in what they have with `..Route::bare`.
    pub(crate) fn bare(path: String, loc: &'a Directive) -> Route<'a> {
        Route {
            path,
            methods: None,
            plain_only: false,
            expires: None,
            charset: None,
            loc,
            comment: None,
            target: None,
            answer: None,
            files: None,
            upstream_path: None,
            rewrites: Vec::new(),
            checks: Vec::new(),
            req: Headers::default(),
            resp: Headers::default(),
            request_buffering: None,
            max_body_size: None,
            retry: None,
            timeouts: Timeouts::default(),
            upstream: 0,
            access: None,
            compress: None,
        }
    }
}

/// A greenlight site, made from one server block.
#[derive(Debug, Clone)]
pub(crate) struct Site<'a> {
    /// Greenlight name, set once all sites are known.
    pub name: String,
    /// The `server` directive.
    pub server: &'a Directive,
    /// Host names it owns.
    pub hosts: Vec<Host<'a>>,
    /// The first `server_name`.
    pub hosts_d: Option<&'a Directive>,
    /// Why it is the default site, when it is.
    pub default: Option<String>,
    /// `default:`'s value when it is: `true`, `https` or `http`.
    pub default_on: &'static str,
    /// Certificate settings of a TLS site.
    pub tls: Option<SiteTls<'a>>,
    /// What plain listeners do for a TLS site.
    pub plain_http: Option<PlainHttp>,
    /// `client_max_body_size` in force (None: nginx's 1m default).
    pub body: Option<Setting<'a, String>>,
    /// `keepalive_timeout` of its server block where it differs from the
    /// global `limits.keepalive_timeout` (formatted duration).
    pub keepalive: Option<Setting<'a, String>>,
    /// `underscores_in_headers` in force (None: nginx's `off`).
    pub underscores: Option<Setting<'a, bool>>,
    /// Routes in source order.
    pub routes: Vec<Route<'a>>,
    /// Site-level `trusted_proxies`/`client_ip_from`.
    pub client_ip: Option<ClientIp>,
    /// `checks:` from the server's `if … return`s.
    pub checks: Vec<super::checks::CheckDef>,
    /// `client_auth:` of a TLS site (`ssl_verify_client` …).
    pub client_auth: Option<super::client_auth::ClientAuthOut<'a>>,
    /// `listeners:` (indexes into the model's listeners); empty = every
    /// listener (`bind`).
    pub listeners: Vec<usize>,
}

/// An emitted upstream: a target with one set of timeouts.
#[derive(Debug, Clone)]
pub(crate) struct Upstream<'a> {
    /// Greenlight name.
    pub name: String,
    /// What it proxies to.
    pub target: Target<'a>,
    /// Its timeouts.
    pub timeouts: Timeouts<'a>,
    /// An earlier upstream with the same servers, when only timeouts differ.
    pub twin_of: Option<String>,
}

/// Everything the YAML is made from.
pub(crate) struct Model<'a> {
    /// Display name of the main file.
    pub source: String,
    /// `--acme` email.
    pub acme_email: Option<String>,
    /// Listeners in order of appearance.
    pub listeners: Vec<Listener<'a>>,
    /// The global `limits:` lines.
    pub limits: Vec<LimitLine>,
    /// Sites in source order.
    pub sites: Vec<Site<'a>>,
    /// Upstreams in order of first use.
    pub upstreams: Vec<Upstream<'a>>,
    /// nginx `upstream` blocks, for named targets.
    pub defs: Vec<UpstreamDef<'a>>,
    /// Top-level `trusted_proxies`/`client_ip_from`.
    pub client_ip: Option<ClientIp>,
    /// `access_log off` at http level.
    pub access_log_off: Option<&'a Directive>,
    /// `maps:` from http-level `map`s.
    pub maps: Vec<super::checks::MapDef>,
    /// Limit zones and each route's limits and error pages.
    pub rate: super::ratelimit::RateState<'a>,
}

/// Settings of the `http` level that servers inherit.
#[derive(Debug, Default)]
pub(crate) struct HttpLevel<'a> {
    /// Inherited settings.
    pub inh: Inherit<'a>,
    /// `ssl_certificate` at http level.
    pub cert: Option<&'a Directive>,
    /// `ssl_certificate_key` at http level.
    pub key: Option<&'a Directive>,
    /// `ssl_client_certificate`, `ssl_verify_client`, … at http level.
    pub client_auth: super::client_auth::ClientAuthDirs<'a>,
}

#[derive(Default)]
struct Found<'a> {
    servers: Vec<&'a Directive>,
    upstreams: Vec<&'a Directive>,
}

/// A file of locations without any `server` or `http` block (an include
/// fragment), as the body of one server block.
fn fragment(cfg: &Config) -> Option<Directive> {
    let top = &cfg.directives;
    let is_block = |n: &str| top.iter().any(|d| d.name == n && d.block.is_some());
    let first = top
        .iter()
        .find(|d| d.name == "location" && d.block.is_some())?;
    if is_block("server") || is_block("http") {
        return None;
    }
    Some(Directive {
        name: "server".to_string(),
        args: Vec::new(),
        file: first.file,
        line: first.line,
        col: first.col,
        seq: 0,
        block: Some(top.clone()),
    })
}

/// Converts a loaded configuration.
pub(crate) fn convert(cfg: &Config, opts: &ImportOptions) -> Result<ImportOutput, ImportError> {
    let fragment = fragment(cfg);
    let mut ctx = Ctx {
        cfg,
        notes: cfg.notes.clone(),
        limits: Vec::new(),
        scope: Scope::Http,
        access_log_off: None,
        acme: opts.acme_email.is_some(),
        maps: Vec::new(),
        rate: Default::default(),
    };
    let mut http = HttpLevel::default();
    let mut found = Found::default();
    match &fragment {
        Some(f) => {
            ctx.note(
                f,
                "this file has locations but no server block (a fragment that nginx includes into one): it was imported as one catch-all site; move its routes into the site that includes it",
            );
            found.servers.push(f);
        }
        None => walk_http(&mut ctx, &cfg.directives, &mut http, &mut found, 0),
    }

    let mut defs: Vec<UpstreamDef> = Vec::new();
    for d in &found.upstreams {
        let name = d.arg0();
        if let Some(first) = defs.iter().find(|u| u.name == name) {
            let at = ctx.at(first.d);
            ctx.warn(
                d,
                format!("upstream '{name}' is already defined at {at}; this one was ignored"),
            );
            continue;
        }
        let def = upstream::upstream_def(&mut ctx, d);
        defs.push(def);
    }

    let mut listeners = Listeners::default();
    let mut infos: Vec<ServerInfo> = Vec::new();
    for (i, d) in found.servers.iter().enumerate() {
        ctx.scope = Scope::Server(i);
        infos.push(server::analyze(&mut ctx, d, &http, &defs, &mut listeners));
    }
    ctx.scope = Scope::Http;
    for info in &infos {
        super::ratelimit::resolve_pages(&mut ctx, &info.routes);
    }
    let (limits, keepalive) = limits::resolve(&mut ctx, found.servers.len());

    let mut sites = sites::build(&mut ctx, &infos, &listeners, opts);
    if sites.iter().all(|s| s.routes.is_empty()) {
        return Err(ImportError::NothingUsable(super::finish::nothing_usable(
            &ctx, &infos,
        )));
    }
    limits::give_sites(&mut sites, &found.servers, keepalive);

    let upstreams = super::finish::assign_upstreams(&mut sites, &mut defs);
    for def in defs.iter().filter(|d| !d.used) {
        ctx.warn(
            def.d,
            format!(
                "upstream '{}' is not used by any converted location, so it was not emitted",
                def.name
            ),
        );
    }

    let mut names = Names::default();
    for l in &mut listeners.list {
        l.name = names.alloc(if l.tls { "https" } else { "http" }, "listener");
    }
    super::finish::overlapping_listeners(&mut ctx, &listeners.list);

    let client_ip = realip::client_ip(&mut ctx, &http.inh.real_ip);
    let model = Model {
        source: cfg.file_name(0),
        acme_email: opts.acme_email.clone(),
        listeners: listeners.list,
        limits,
        sites,
        upstreams,
        defs,
        client_ip,
        access_log_off: ctx.access_log_off,
        maps: std::mem::take(&mut ctx.maps),
        rate: std::mem::take(&mut ctx.rate),
    };
    let yaml = emit::yaml(&model, cfg);

    let mut notes = ctx.notes;
    notes.sort_by_key(|n| n.seq);
    let mut seen = std::collections::HashSet::new();
    notes.retain(|n| seen.insert((cfg.file_name(n.file), n.line, n.message.clone())));
    let warnings = notes
        .into_iter()
        .map(|n| Warning {
            file: cfg.files.get(n.file).cloned().unwrap_or_default(),
            line: n.line,
            message: n.message,
        })
        .collect();
    Ok(ImportOutput { yaml, warnings })
}

/// Walks the main and http levels: collects servers and upstream blocks and
/// the settings servers inherit.
fn walk_http<'a>(
    ctx: &mut Ctx<'a>,
    list: &'a [Directive],
    http: &mut HttpLevel<'a>,
    found: &mut Found<'a>,
    depth: usize,
) {
    for d in list {
        match (d.name.as_str(), d.block.is_some()) {
            ("http", true) if depth == 0 => walk_http(ctx, d.children(), http, found, depth + 1),
            ("server", true) => found.servers.push(d),
            ("upstream", true) => found.upstreams.push(d),
            ("ssl_certificate", false) => set_cert(ctx, &mut http.cert, d),
            ("ssl_certificate_key", false) => set_cert(ctx, &mut http.key, d),
            (_, false) if http.client_auth.record(d) => {}
            ("map", true) => {
                if let Some(m) = super::checks::map(ctx, d, &mut http.inh.set_vars) {
                    ctx.maps.push(m);
                }
            }
            _ => {
                if !common(ctx, d, &mut http.inh) {
                    ctx.unsupported(d);
                }
            }
        }
    }
}

/// Records an `ssl_certificate`(`_key`); a second one at the same level
/// (an RSA + ECDSA pair) is reported and ignored.
pub(crate) fn set_cert<'a>(ctx: &mut Ctx<'a>, slot: &mut Option<&'a Directive>, d: &'a Directive) {
    if d.args.len() != 1 {
        ctx.warn(
            d,
            format!("directive '{}' needs exactly one file; ignored", d.name),
        );
        return;
    }
    match slot {
        None => *slot = Some(d),
        Some(first) => {
            let at = ctx.at(first);
            ctx.warn(
                d,
                format!(
                    "a second '{}' (e.g. an RSA + ECDSA pair) is not supported: greenlight uses the first one, from {at}",
                    d.name
                ),
            );
        }
    }
}
