//! JSON views of the running state for the admin API (and so for
//! `greenlight status` and the dashboard). Pure functions of a snapshot;
//! nothing is cached.

use super::next_step;
use super::safe_to_stop;
use crate::config::ConfigSource;
use crate::state::{ReloadRecord, Snapshot, StateHandle};
use crate::upstream::{Pool, PoolState};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

fn unix(t: Option<SystemTime>) -> Value {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(Value::Null, |d| json!(d.as_secs_f64()))
}

fn pool_view(p: &Pool, now: SystemTime, removed: bool) -> Value {
    let ph = p.phase();
    let left = ph
        .drain_deadline
        .filter(|_| ph.state == PoolState::Draining)
        .map(|d| d.duration_since(now).map_or(0.0, |l| l.as_secs_f64()));
    let mut view = json!({
        "name": p.name,
        "state": ph.state.as_str(),
        "removed": removed,
        "servers": p.servers().iter().map(|s| s.label.clone()).collect::<Vec<_>>(),
        "health": p.servers().iter().map(|s| json!({
            "server": s.label,
            "weight": s.weight,
            "backup": s.backup,
            "inflight": s.busy.load(std::sync::atomic::Ordering::Acquire),
            "up": s.health.is_up(),
            "down_reason": match s.health.down() {
                None => Value::Null,
                Some(crate::upstream::health::Down::Active) => json!("health check"),
                Some(crate::upstream::health::Down::Passive) => json!("failed requests"),
            },
        })).collect::<Vec<_>>(),
        "removed_servers": p.removed_servers().iter().map(|r| json!({
            "server": r.label,
            "inflight": p.conns().inflight_to(std::slice::from_ref(&r.addr)),
            "drain_deadline": unix(Some(r.deadline)),
        })).collect::<Vec<_>>(),
        "inflight": p.inflight(),
        "websockets": p.websockets(),
        "drain_started": unix(ph.drain_started),
        "drain_deadline": unix(ph.drain_deadline),
        "drain_seconds_left": left,
        "last_drain_seconds": ph.last_drain.map(|d| d.as_secs_f64()),
        "last_drain_forced": ph.forced,
    });
    // What `switch --wait` would conclude now (the one shared rule).
    view["safe_to_stop"] = json!(safe_to_stop::verdict(Some(&view)).is_safe());
    view
}

/// Every upstream with its pools. Pools (and upstreams) that a reload
/// removed while they were still busy are listed too, with `removed: true`,
/// until nothing holds them: their drain stays observable to
/// `greenlight switch --wait` and `status`. Each upstream also names the
/// pool to stop next and the operator's next step (see [`next_step`]);
/// `source` is where the config comes from, for the commands it suggests.
pub fn upstreams(snap: &Snapshot, live: &[Arc<Pool>], source: &ConfigSource) -> Value {
    let cli = next_step::CliTarget::new(source, snap.config.admin.addr);
    let now = SystemTime::now();
    let in_snapshot = |p: &Pool| snap.pools().any(|q| q.same_pool(p));
    let gone = |name: &str| -> Vec<Value> {
        live.iter()
            .filter(|p| p.upstream == name && !in_snapshot(p))
            .map(|p| pool_view(p, now, true))
            .collect()
    };
    let mut ups: Vec<Value> = snap
        .upstreams
        .iter()
        .map(|u| {
            let mut pools: Vec<Value> = u.pools.iter().map(|p| pool_view(p, now, false)).collect();
            pools.extend(gone(&u.config.name));
            let active = &u.active_pool().name;
            let drain = next_step::drain_pool(&pools, active).cloned();
            let next = next_step::next(&u.config.name, active, &pools, drain.as_ref(), &cli);
            json!({
                "name": u.config.name,
                "active": active,
                "removed": false,
                "drain_timeout_seconds": u.config.drain_timeout.as_secs_f64(),
                "drain": drain,
                "next": next,
                "pools": pools,
            })
        })
        .collect();
    let mut removed_ups: Vec<&str> = live
        .iter()
        .filter(|p| snap.upstream(&p.upstream).is_none())
        .map(|p| p.upstream.as_str())
        .collect();
    removed_ups.dedup();
    for name in removed_ups {
        let pools = gone(name);
        ups.push(json!({
            "name": name,
            "active": Value::Null,
            "removed": true,
            "drain_timeout_seconds": Value::Null,
            "drain": next_step::drain_pool(&pools, "").cloned(),
            "next": next_step::removed_upstream(name),
            "pools": pools,
        }));
    }
    json!({ "generation": snap.generation, "upstreams": ups })
}

fn reload_view(rec: &ReloadRecord) -> Value {
    json!({
        "at": unix(rec.at),
        "action": rec.at.map(|_| rec.action.clone()),
        "ok": rec.at.map(|_| rec.ok),
        "generation": rec.at.map(|_| rec.generation),
        "problems": rec.problems,
        "diagnostics": rec.diagnostics.iter().map(|d| json!({
            "file": d.origin.file.display().to_string(),
            "line": d.origin.pos.line,
            "col": d.origin.pos.col,
            "what": d.what,
            "fix": d.fix,
        })).collect::<Vec<_>>(),
        "restart_needed": rec.restart_needed,
    })
}

/// Every site: its host patterns, certificate source and routes.
fn sites(snap: &Snapshot) -> Value {
    let list: Vec<Value> = snap
        .config
        .sites
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "hosts": s.hosts.iter().map(|h| h.as_written()).collect::<Vec<_>>(),
                "default": s.default.as_json(),
                // `null`: every listener.
                "listeners": s.listeners.as_ref().map(|ls| ls.iter().filter_map(|&l| snap.config.listeners.get(l)).map(|l| l.name.as_str()).collect::<Vec<_>>()),
                "tls": s.tls.as_ref().map(tls_source),
                "routes": s.routes.iter().map(|r| json!({
                    "path": r.location.as_written(),
                    "upstream": r.upstream,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!(list)
}

fn tls_source(t: &crate::config::model::TlsSource) -> &'static str {
    match t {
        crate::config::model::TlsSource::Files { .. } => "files",
        crate::config::model::TlsSource::SelfSigned => "self_signed",
        crate::config::model::TlsSource::Acme => "acme",
    }
}

/// The whole picture: process, config, reloads, sites, upstreams,
/// certificates.
pub fn status(state: &StateHandle) -> Value {
    let snap = state.load();
    let certs = certificates(state);
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "config": snap.config.source.display().to_string(),
        "generation": snap.generation,
        "started": unix(Some(state.started())),
        "last_reload": reload_view(&state.last_reload()),
        "reloads": state.reloads().iter().filter(|r| r.at.is_some()).map(reload_view).collect::<Vec<_>>(),
        "sites": sites(&snap),
        "upstreams": upstreams(&snap, &state.live_pools(), state.source())["upstreams"].clone(),
        "certificates": certs,
    })
}

/// Every TLS site's certificate as served now, with its ACME state.
pub fn certificates(state: &StateHandle) -> Value {
    let snap = state.load();
    let acme = state
        .acme_status()
        .map(|a| a.snapshot())
        .unwrap_or_default();
    let served = state.cert_store().current();
    let list: Vec<Value> = snap
        .config
        .sites
        .iter()
        .filter_map(|site| {
            let source = tls_source(site.tls.as_ref()?);
            let info = served
                .sites
                .iter()
                .find(|(n, _)| *n == site.name)
                .map(|(_, i)| i);
            let a = acme.iter().find(|a| a.site == site.name);
            let days = info.map(|i| {
                i.not_after
                    .duration_since(SystemTime::now())
                    .map_or(0.0, |d| (d.as_secs_f64() / 8640.0).round() / 10.0)
            });
            Some(json!({
                "site": site.name,
                "source": source,
                "names": info.map(|i| i.dns_names.clone()),
                "issuer": info.map(|i| i.issuer.clone()),
                "serial": info.map(|i| i.serial.clone()),
                "not_after": unix(info.map(|i| i.not_after)),
                "days_left": days,
                "acme": a.map(|a| json!({
                    // `failing` after an error (until an order succeeds),
                    // `pending` before the first ACME certificate, else `ok`.
                    "state": if a.last_error.is_some() {
                        "failing"
                    } else if a.issuer.is_none() {
                        "pending"
                    } else {
                        "ok"
                    },
                    "last_attempt": unix(a.last_attempt),
                    "last_error": a.last_error,
                    "next_attempt": unix(a.next_attempt),
                    "failures": a.failures,
                })),
            }))
        })
        .collect();
    json!(list)
}
