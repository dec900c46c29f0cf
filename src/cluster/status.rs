//! What the fleet says: each member's status key (published by the service
//! while its lease lives) and `GET /api/cluster`, which reads every live
//! member's key and tells whether all of them applied the latest switch and
//! drained the old pools — by the same "safe to stop" rule as one instance
//! (`admin::safe_to_stop`). Also the admin API's answer to a fleet switch.

use super::Cluster;
use super::switch::{FleetSwitchError, fleet_switch, pool_of};
use crate::admin::safe_to_stop::verdict;
use crate::state::StateHandle;
use etcd_client::GetOptions;
use http::StatusCode;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// This member's status, as published under `<prefix>/members/<id>`: the
/// switch revision it applied, its running active pools and, per live pool,
/// in-flight requests, WebSockets and state; with fleet ACME also the
/// revision through which it serves the fleet's challenge answers. No clock in it except the
/// applied time, so an unchanged member is not re-published.
pub fn member_status(cluster: &Cluster, state: &StateHandle) -> Value {
    let snap = state.load();
    let (applied_revision, applied_at) = cluster.applied();
    let active: Map<String, Value> = snap
        .upstreams
        .iter()
        .map(|u| (u.config.name.clone(), json!(u.active_pool().name)))
        .collect();
    let pools: Vec<Value> = state
        .live_pools()
        .iter()
        .map(|p| {
            json!({
                "upstream": p.upstream,
                "pool": p.name,
                "state": p.phase().state.as_str(),
                "inflight": p.inflight(),
                "websockets": p.websockets(),
            })
        })
        .collect();
    let mut status = json!({
        "id": cluster.id,
        "admin": cluster.admin,
        "applied_revision": applied_revision,
        "applied_at_us": applied_at,
        "last_write": cluster.last_write().map(|(r, at)| json!({"revision": r, "at_us": at})),
        "active": active,
        "pools": pools,
    });
    // Fleet ACME: the orderer waits until every member serving answers
    // has seen its answer before it lets the CA validate.
    if let Some(seen) = cluster.acme_challenges_seen() {
        status["acme_challenges"] = json!(seen);
    }
    status
}

/// `GET /api/cluster` (`None`: not in cluster mode).
pub async fn api_view(cluster: Option<&Cluster>, state: &StateHandle) -> (StatusCode, Value) {
    let Some(cluster) = cluster else {
        return (
            StatusCode::NOT_FOUND,
            json!({"error": "not in cluster mode: add a `cluster:` section (README: Running more than one greenlight)"}),
        );
    };
    let disconnected = |why: String| {
        (
            StatusCode::OK,
            json!({
                "cluster": "disconnected",
                "error": why,
                "member": cluster.id,
                "prefix": cluster.config.prefix,
                "self": member_status(cluster, state),
            }),
        )
    };
    let Some(mut client) = cluster.client() else {
        return disconnected(cluster.last_error());
    };
    let opts = || Some(GetOptions::new().with_prefix());
    let keys = super::timed(
        "read the active keys",
        client.get(cluster.active_prefix(), opts()),
    )
    .await;
    let members = super::timed(
        "read the members",
        client.get(cluster.members_prefix(), opts()),
    )
    .await;
    let acme_prefix = cluster.acme_prefix();
    let acme = super::timed(
        "read the fleet's certificates",
        client.get(acme_prefix.clone(), opts()),
    )
    .await;
    let (keys, members, acme) = match (keys, members, acme) {
        (Ok(k), Ok(m), Ok(a)) => (k, m, a),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return disconnected(e),
    };
    let acme = super::acme::fleet_view(acme.kvs().iter().filter_map(|kv| {
        let rest = kv.key_str().ok()?.strip_prefix(acme_prefix.as_str())?;
        Some((rest, kv.value()))
    }));
    let prefix = cluster.active_prefix();
    let active: BTreeMap<String, (String, i64)> = keys
        .kvs()
        .iter()
        .filter_map(|kv| {
            let up = kv.key_str().ok()?.strip_prefix(&prefix)?.to_string();
            Some((up, (pool_of(kv.value())?, kv.mod_revision())))
        })
        .collect();
    let members: Vec<Value> = members
        .kvs()
        .iter()
        .filter_map(|kv| serde_json::from_slice(kv.value()).ok())
        .collect();
    let mut view = fleet(cluster, &active, &members);
    view["acme"] = acme;
    (StatusCode::OK, view)
}

/// The fleet view from the `active/` keys (upstream → pool, revision) and
/// the live members' statuses.
fn fleet(cluster: &Cluster, active: &BTreeMap<String, (String, i64)>, members: &[Value]) -> Value {
    let revision = active.values().map(|(_, r)| *r).max().unwrap_or(0);
    // The member that wrote the latest switch says when etcd answered it.
    let written_at = members.iter().find_map(|m| {
        (m["last_write"]["revision"].as_i64() == Some(revision))
            .then(|| m["last_write"]["at_us"].as_i64())
            .flatten()
    });
    let mut all_applied = !members.is_empty();
    let mut all_drained = !members.is_empty();
    let views: Vec<Value> = members
        .iter()
        .map(|m| {
            let applied = m["applied_revision"].as_i64().unwrap_or(0) >= revision
                && active
                    .iter()
                    .all(|(u, (p, _))| m["active"][u].as_str() == Some(p.as_str()));
            let empty = vec![];
            let pools = m["pools"].as_array().unwrap_or(&empty);
            let waiting: Vec<String> = pools
                .iter()
                .filter(|p| {
                    let up = p["upstream"].as_str().unwrap_or("");
                    let name = p["pool"].as_str().unwrap_or("");
                    active
                        .get(up)
                        .is_some_and(|(want, _)| want != name && !verdict(Some(p)).is_safe())
                })
                .map(|p| {
                    format!(
                        "{}/{}",
                        p["upstream"].as_str().unwrap_or(""),
                        p["pool"].as_str().unwrap_or("")
                    )
                })
                .collect();
            let drained = applied && waiting.is_empty();
            all_applied &= applied;
            all_drained &= drained;
            let propagation_ms = match (written_at, applied) {
                (Some(w), true) => m["applied_at_us"]
                    .as_i64()
                    .map(|a| json!((a - w) as f64 / 1000.0)),
                _ => None,
            };
            json!({
                "id": m["id"],
                "admin": m["admin"],
                "applied_revision": m["applied_revision"],
                "applied": applied,
                "drained": drained,
                "draining": waiting,
                "propagation_ms": propagation_ms,
                "active": m["active"],
                "pools": m["pools"],
            })
        })
        .collect();
    let active_view: Map<String, Value> = active
        .iter()
        .map(|(u, (p, r))| (u.clone(), json!({"pool": p, "revision": r})))
        .collect();
    json!({
        "cluster": "connected",
        "endpoint": cluster.endpoint(),
        "member": cluster.id,
        "prefix": cluster.config.prefix,
        "revision": revision,
        "active": active_view,
        "members": views,
        "all_applied": all_applied,
        "all_drained": all_drained,
        "safe_to_stop": all_applied && all_drained,
    })
}

/// `POST /api/upstreams/{name}/switch` in cluster mode: the fleet switch,
/// answered like a local one plus the etcd revision; 409 for a conflict,
/// 503 when etcd is unreachable.
pub async fn api_switch(
    cluster: &Cluster,
    state: &StateHandle,
    upstream: &str,
    pool: &str,
    force: bool,
) -> (StatusCode, Value) {
    let from = state
        .load()
        .upstream(upstream)
        .map(|u| u.active_pool().name.clone());
    let err = |s: StatusCode, e: &dyn std::fmt::Display| (s, json!({"error": e.to_string()}));
    match fleet_switch(cluster, state, upstream, pool, force).await {
        Ok(s) => {
            let mut body = crate::admin::switched(upstream, from, pool, force, &s.applied);
            body["cluster_revision"] = json!(s.revision);
            (StatusCode::OK, body)
        }
        Err(FleetSwitchError::Local(e)) => crate::admin::switch_refused(&e),
        Err(e @ FleetSwitchError::Conflict { .. }) => {
            let (s, mut body) = err(StatusCode::CONFLICT, &e);
            body["conflict"] = json!(true);
            (s, body)
        }
        Err(e @ FleetSwitchError::Unavailable { .. }) => err(StatusCode::SERVICE_UNAVAILABLE, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> std::sync::Arc<Cluster> {
        let cfg = crate::config::validate_cluster::ClusterConfig {
            endpoints: vec!["http://127.0.0.1:1".into()],
            prefix: "/g".into(),
            lease_ttl: std::time::Duration::from_secs(10),
            credentials: None,
            ca: None,
        };
        Cluster::new(
            cfg,
            "127.0.0.1:9".parse().unwrap(),
            std::sync::Arc::new(crate::metrics::Metrics::new().unwrap()),
        )
    }

    fn member(id: &str, rev: i64, active: &str, blue_state: &str) -> Value {
        json!({"id": id, "applied_revision": rev, "applied_at_us": 1_000_000 + rev * 1000,
            "last_write": if id == "a" { json!({"revision": 7, "at_us": 1_000_000}) } else { Value::Null },
            "active": {"app": active},
            "pools": [{"upstream": "app", "pool": "blue", "state": blue_state},
                      {"upstream": "app", "pool": "green", "state": "active"}]})
    }

    #[test]
    fn the_fleet_is_safe_to_stop_only_when_every_member_applied_and_drained() {
        let c = cluster();
        let active: BTreeMap<_, _> = [("app".to_string(), ("green".to_string(), 7))].into();
        let all = [
            member("a", 7, "green", "drained"),
            member("b", 7, "green", "idle"),
        ];
        let v = fleet(&c, &active, &all);
        assert_eq!(v["safe_to_stop"], true, "{v}");
        assert_eq!(v["members"][0]["propagation_ms"], 7.0, "{v}");
        let draining = [
            member("a", 7, "green", "drained"),
            member("b", 7, "green", "draining"),
        ];
        let v = fleet(&c, &active, &draining);
        assert_eq!(
            (v["all_applied"].clone(), v["all_drained"].clone()),
            (json!(true), json!(false))
        );
        assert_eq!(v["members"][1]["draining"], json!(["app/blue"]));
        let behind = [
            member("a", 7, "green", "drained"),
            member("b", 5, "blue", "active"),
        ];
        let v = fleet(&c, &active, &behind);
        assert_eq!(v["all_applied"], false, "{v}");
        assert_eq!(v["members"][1]["propagation_ms"], Value::Null);
        assert_eq!(fleet(&c, &active, &[])["safe_to_stop"], false);
    }
}
