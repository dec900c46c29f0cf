//! nginx `upstream` blocks: their `server` lines become greenlight pools, and
//! the servers' `max_fails`/`fail_timeout` become the upstream's passive
//! health (`max_fails`, `fail_timeout`).
//!
//! nginx sets passive health per server, greenlight once per upstream; both
//! count the same failures (refused or failed connections and timeouts, not
//! the app's 5xx answers) and neither takes the only server of a pool out.
//! The mapping is spelled out in [`passive`] and every choice it makes is
//! written next to the emitted key.

use super::addr;
use super::convert::{Ctx, UpServer, UpstreamDef};
use super::directives;
use super::parse::Directive;

/// nginx's `max_fails` when a server does not set one.
const NGINX_MAX_FAILS: u32 = 1;
/// nginx's `fail_timeout` when a server does not set one (10s).
const NGINX_FAIL_TIMEOUT_MS: u64 = 10_000;

/// The passive health keys of an emitted upstream, each with the comment
/// that says where the value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Passive {
    /// `max_fails` (0 = passive marking off).
    pub max_fails: u32,
    /// Why this `max_fails`.
    pub max_fails_why: String,
    /// `fail_timeout` in milliseconds and why; None when `max_fails` is 0.
    pub fail_timeout: Option<(u64, String)>,
}

impl Passive {
    /// For an upstream with a single server. nginx never takes the only
    /// server of an upstream out of service (`peers->single` in
    /// ngx_http_upstream_round_robin.c skips the max_fails check), and
    /// greenlight does the same, so nothing is emitted for it.
    pub fn single_server() -> Passive {
        Passive {
            max_fails: 0,
            max_fails_why:
                "one server: nginx never takes the only server of an upstream out of service"
                    .to_string(),
            fail_timeout: None,
        }
    }

    /// True for [`Passive::single_server`].
    pub fn is_single(&self) -> bool {
        *self == Passive::single_server()
    }
}

/// `max_fails=` / `fail_timeout=` as written on one `server` line.
#[derive(Debug, Clone, Copy, Default)]
struct Stated {
    max_fails: Option<u32>,
    /// Milliseconds.
    fail_timeout: Option<u64>,
}

/// One parsed `server` line of an upstream block.
struct ServerLine<'a> {
    d: &'a Directive,
    backup: bool,
    down: bool,
    server: UpServer,
    stated: Stated,
}

/// Converts an `upstream NAME { ... }` block.
pub(crate) fn upstream_def<'a>(ctx: &mut Ctx<'a>, d: &'a Directive) -> UpstreamDef<'a> {
    let name = d.arg0().to_string();
    if d.args.len() != 1 {
        ctx.warn(d, "upstream needs exactly one name");
    }
    let mut lines = Vec::new();
    let mut balance: Option<(String, &'a Directive)> = None;
    for c in d.children() {
        match c.name.as_str() {
            "server" => lines.push(upstream_server(ctx, c)),
            "keepalive" | "keepalive_requests" | "keepalive_time" | "keepalive_timeout" => ctx.note(
                c,
                format!(
                    "'{}' is not needed: greenlight keeps connections to upstreams alive itself",
                    directives::shown(c)
                ),
            ),
            "zone" => ctx.note(c, format!("'{}' is not needed: greenlight has no shared memory zones", directives::shown(c))),
            "least_conn" | "ip_hash" => balance = Some((c.name.clone(), c)),
            "hash" => match c.args.as_slice() {
                [key] | [key, _] => {
                    if c.args.get(1).is_some_and(|a| a != "consistent") {
                        ctx.warn(c, format!("'{}': unknown hash parameter; hashed as 'consistent'", directives::shown(c)));
                    } else if c.args.len() == 1 {
                        ctx.note(c, "'hash' without 'consistent': greenlight always hashes consistently, so fewer keys move when servers change (the same key still reaches the same server)");
                    }
                    let key = key.replace("$binary_remote_addr", "$remote_addr");
                    let (key, unknown) = super::vars::resolve(&key, &Default::default(), &[]);
                    if unknown.is_empty() {
                        balance = Some((format!("{{hash: {}}}", super::yaml::quoted(&key)), c));
                    } else {
                        ctx.warn(c, format!("'{}' hashes on {}, which greenlight does not know; round robin is used instead", directives::shown(c), super::vars::list(&unknown)));
                    }
                }
                _ => ctx.warn(c, "hash needs a key; round robin is used instead"),
            },
            _ => ctx.unsupported(c),
        }
    }
    let passive = passive(ctx, d, &name, &mut lines);
    let mut main: Vec<UpServer> = lines
        .into_iter()
        .filter(|l| !l.down)
        .map(|l| l.server)
        .collect();
    if !main.is_empty() && main.iter().all(|s| s.backup) {
        ctx.warn(
            d,
            format!("upstream '{name}' has only backup servers; they were made primaries"),
        );
        for s in &mut main {
            s.backup = false;
        }
    }
    if let Some((b, c)) = &balance
        && main.iter().any(|s| s.backup)
        && (b == "ip_hash" || b.starts_with("{hash"))
    {
        ctx.warn(
            c,
            format!("upstream '{name}': nginx does not allow 'backup' servers with {} (nginx -t rejects it); greenlight keeps them as backups", c.name),
        );
    }
    if main.is_empty() {
        let reason = format!(
            "upstream '{name}' from {} has no usable server; put the upstream's host:port",
            ctx.at(d)
        );
        ctx.warn(
            d,
            format!("upstream '{name}' has no usable server; a placeholder was emitted"),
        );
        main.push(UpServer {
            addr: format!("{}:80", addr::EDIT_ME),
            edit: Some(reason),
            comment: None,
            weight: None,
            backup: false,
            max_fails: None,
            fail_timeout: None,
        });
    }
    UpstreamDef {
        name,
        d,
        main,
        balance,
        passive,
        used: false,
    }
}

/// Parses `server ADDRESS [params];` of an upstream block.
fn upstream_server<'a>(ctx: &mut Ctx<'a>, c: &'a Directive) -> ServerLine<'a> {
    let raw = c.arg0();
    let parsed = if raw.starts_with("unix:") {
        addr::parse_unix_upstream(raw)
    } else {
        addr::parse_upstream_addr(raw, 80)
    };
    let (addr, edit) = match parsed {
        Ok(a) => (a, None),
        Err(bad) => {
            ctx.warn(
                c,
                format!(
                    "upstream server {}; a placeholder was emitted",
                    bad.reason()
                ),
            );
            let edit = format!(
                "{}; put the upstream's host:port",
                bad.reason_at(&ctx.at(c))
            );
            (bad.placeholder(), Some(edit))
        }
    };
    let mut line = ServerLine {
        d: c,
        backup: false,
        down: false,
        server: UpServer {
            addr: addr.clone(),
            edit,
            comment: None,
            weight: None,
            backup: false,
            max_fails: None,
            fail_timeout: None,
        },
        stated: Stated::default(),
    };
    let mut notes: Vec<String> = Vec::new();
    for p in c.args.iter().skip(1) {
        let (key, value) = p.split_once('=').unwrap_or((p.as_str(), ""));
        match key {
            "weight" if value == "1" => {}
            "weight" => match value.parse::<u32>() {
                Ok(n) if n > 0 => line.server.weight = Some(n),
                _ => ctx.warn(
                    c,
                    format!("server parameter '{p}' is not a positive whole number; weight 1 was assumed"),
                ),
            },
            "backup" => {
                line.backup = true;
                line.server.backup = true;
            }
            "max_fails" => match value.parse::<u32>() {
                Ok(n) => {
                    notes.push(p.clone());
                    line.stated.max_fails = Some(n);
                }
                Err(_) => ctx.warn(
                    c,
                    format!("server parameter '{p}' is not a whole number; nginx's default max_fails=1 was assumed"),
                ),
            },
            "fail_timeout" => match addr::parse_duration(value) {
                Some(ms) => {
                    notes.push(p.clone());
                    line.stated.fail_timeout = Some(ms);
                }
                None => ctx.warn(
                    c,
                    format!("server parameter '{p}' is not a time (like 10s, 1m); nginx's default fail_timeout=10s was assumed"),
                ),
            },
            "down" => {
                ctx.warn(c, format!("server {raw} is marked 'down', so it was left out"));
                line.down = true;
                // nginx still counts it (as a primary or a backup server).
                line.backup |= c.args.iter().any(|a| a == "backup");
                return line;
            }
            "resolve" => ctx.note(c, "'resolve' is not needed: greenlight resolves upstream host names when it loads the configuration"),
            _ => ctx.warn(
                c,
                format!("server parameter '{p}' is not supported and was not converted"),
            ),
        }
    }
    let mut comment = format!("from {}", ctx.at(c));
    if !notes.is_empty() {
        comment.push_str("; ");
        comment.push_str(&notes.join(", "));
    }
    line.server.comment = Some(comment);
    line
}

/// The upstream's passive health, from its servers' parameters:
/// - a single server without backups: nothing, because neither nginx nor
///   greenlight takes such a server out (stated parameters are noted);
/// - a server without `max_fails` counts as nginx's default of 1, so the
///   imported site marks servers down exactly when nginx did (greenlight's
///   own default, [`defaults::MAX_FAILS`], is a more forgiving 3);
///   a server without `fail_timeout` counts as nginx's 10s (greenlight's too);
/// - `max_fails=0` (no accounting) maps to greenlight's `max_fails: 0`;
/// - servers that disagree: the values most of them share go on the
///   upstream, the others on their servers.
fn passive<'a>(
    ctx: &mut Ctx<'a>,
    d: &Directive,
    name: &str,
    lines: &mut [ServerLine<'a>],
) -> Passive {
    let primaries = lines.iter().filter(|l| !l.backup).count();
    let backups = lines.iter().filter(|l| l.backup).count();
    let stated =
        |l: &&ServerLine<'_>| l.stated.max_fails.is_some() || l.stated.fail_timeout.is_some();
    if primaries == 1 && backups == 0 {
        if let Some(l) = lines.iter().find(stated) {
            ctx.note(
                l.d,
                "'max_fails'/'fail_timeout' had no effect in nginx, which never takes the only server of an upstream out of service; greenlight does the same, so they are left out",
            );
        }
        return Passive::single_server();
    }
    let live: Vec<&ServerLine<'a>> = lines.iter().filter(|l| !l.down).collect();
    let effective: Vec<(u32, u64)> = live
        .iter()
        .map(|l| {
            (
                l.stated.max_fails.unwrap_or(NGINX_MAX_FAILS),
                l.stated.fail_timeout.unwrap_or(NGINX_FAIL_TIMEOUT_MS),
            )
        })
        .collect();
    let counting = effective.iter().filter(|(n, _)| *n > 0);
    let first_mf = live
        .iter()
        .find(|l| l.stated.max_fails.is_some())
        .map(|l| ctx.at(l.d));
    let Some(max_fails) = counting.clone().map(|(n, _)| *n).min() else {
        if effective.is_empty() {
            // Every server is `down`: one placeholder server is emitted.
            return Passive::single_server();
        }
        let from = first_mf.unwrap_or_default();
        return Passive {
            max_fails: 0,
            max_fails_why: format!("from {from}: max_fails=0, no passive marking, as in nginx"),
            fail_timeout: None,
        };
    };
    let fail_timeout = counting
        .map(|(_, t)| *t)
        .max()
        .unwrap_or(NGINX_FAIL_TIMEOUT_MS);
    let agree = effective.windows(2).all(|w| w.first() == w.last());
    if !agree {
        // The values most servers share go on the upstream; a server with
        // others gets its own `max_fails`/`fail_timeout`, as in nginx.
        let mut counts: Vec<((u32, u64), usize)> = Vec::new();
        for e in &effective {
            match counts.iter_mut().find(|(v, _)| v == e) {
                Some((_, n)) => *n += 1,
                None => counts.push((*e, 1)),
            }
        }
        // Most shared wins; on a tie nginx's defaults (the servers that
        // state nothing), else the first server's.
        let default = (NGINX_MAX_FAILS, NGINX_FAIL_TIMEOUT_MS);
        let most = counts.iter().map(|(_, n)| *n).max().unwrap_or(0);
        let tied: Vec<(u32, u64)> = counts
            .iter()
            .filter(|(_, n)| *n == most)
            .map(|(v, _)| *v)
            .collect();
        let common = if tied.contains(&default) {
            default
        } else {
            tied.first().copied().unwrap_or(default)
        };
        for (l, e) in lines.iter_mut().filter(|l| !l.down).zip(&effective) {
            if e.0 != common.0 {
                l.server.max_fails = Some(e.0);
            }
            if e.1 != common.1 && e.0 > 0 {
                l.server.fail_timeout = Some(e.1);
            }
        }
        ctx.note(
            d,
            format!("upstream '{name}': its servers differ in max_fails/fail_timeout: the values most of them share are the upstream's, the others are set on their servers (a server without them counts as nginx's defaults, max_fails=1 and fail_timeout=10s)"),
        );
        let why = "the value most of the servers share (see the notes)".to_string();
        return Passive {
            max_fails: common.0,
            max_fails_why: why.clone(),
            fail_timeout: Some((common.1, why)),
        };
    }
    let max_fails_why = match first_mf {
        Some(at) => format!("from {at}"),
        None => "nginx's default (greenlight's own is 3)".to_string(),
    };
    let fail_timeout_why = match live.iter().find(|l| l.stated.fail_timeout.is_some()) {
        Some(l) => format!("from {}", ctx.at(l.d)),
        None => "nginx's default".to_string(),
    };
    Passive {
        max_fails,
        max_fails_why,
        fail_timeout: Some((fail_timeout, fail_timeout_why)),
    }
}
