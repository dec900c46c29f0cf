//! One switch for the fleet.
//!
//! [`fleet_switch`] (the admin API's switch in cluster mode) checks the pool
//! like a local switch does, then writes `<prefix>/active/<upstream>` in ONE
//! etcd transaction compared against the revision this member last saw: a
//! concurrent switch by another member makes the compare fail (a conflict,
//! nothing written), and an unreachable etcd or one without quorum refuses the
//! switch with nothing changed here — a member never switches alone.
//!
//! [`apply_remote`] is how every member (the writer included) applies a key:
//! the pool becomes the upstream's active-pool choice, kept across reloads
//! like the embedded config's switches (`Writer::active_overrides`), and the
//! config is applied as a reload does — so the drain, the state and the
//! metrics are the ones a local switch produces. A deleted key removes the
//! choice: the file's `active:` is the fallback.

use super::{Cluster, Seen, timed, unix_micros};
use crate::reload::{self, Applied, SwitchError};
use crate::state::{ApplyError, StateHandle};
use etcd_client::{Compare, CompareOp, Txn, TxnOp, TxnOpResponse};
use serde_json::json;
use std::time::SystemTime;

/// Why a fleet switch was not done.
#[derive(Debug, thiserror::Error)]
pub enum FleetSwitchError {
    /// The local checks refused it (unknown upstream or pool, unreachable pool).
    #[error(transparent)]
    Local(#[from] SwitchError),
    /// Another member switched the upstream since this one last saw it.
    #[error(
        "conflict: upstream '{upstream}' was switched to pool '{now}' (etcd revision {revision}) by another member after this one last saw revision {expected}; nothing was changed — look at GET /api/cluster and switch again if still wanted"
    )]
    Conflict {
        /// Upstream.
        upstream: String,
        /// The pool the key names now ("" when deleted).
        now: String,
        /// The key's revision now.
        revision: i64,
        /// The revision this member compared against.
        expected: i64,
    },
    /// etcd is unreachable or has no quorum.
    #[error(
        "refusing to switch upstream '{upstream}': etcd is unreachable or has no quorum ({detail}); nothing was changed on any member (in cluster mode a member never switches alone) — bring etcd back and retry"
    )]
    Unavailable {
        /// Upstream.
        upstream: String,
        /// The etcd error.
        detail: String,
    },
}

/// A fleet switch that was written (and applied on this member).
#[derive(Debug)]
pub struct FleetSwitched {
    /// The local apply.
    pub applied: Applied,
    /// The etcd revision of the write (0 when nothing was written).
    pub revision: i64,
}

/// Switches `upstream` to `pool` for the whole fleet (see the module doc).
pub async fn fleet_switch(
    cluster: &Cluster,
    state: &StateHandle,
    upstream: &str,
    pool: &str,
    force: bool,
) -> Result<FleetSwitched, FleetSwitchError> {
    let snap = state.load();
    let (up, target) = reload::switch_target(&snap, upstream, pool)?;
    // Every refusal is counted, as for a switch of one proxy.
    let refused = || {
        state
            .metrics()
            .switch(upstream, crate::metrics::SwitchResult::Refused)
    };
    let unavailable = |detail: String| FleetSwitchError::Unavailable {
        upstream: upstream.to_string(),
        detail,
    };
    let Some(mut client) = cluster.client() else {
        refused();
        return Err(unavailable(format!(
            "not connected: {}",
            cluster.last_error()
        )));
    };
    let seen = cluster.seen().get(upstream).cloned();
    if let Some(s) = &seen
        && s.pool == pool
        && up.active_pool().name == pool
    {
        log::info!(
            "upstream '{upstream}': pool '{pool}' is already active on the fleet, nothing changed"
        );
        return Ok(FleetSwitched {
            applied: Applied::unchanged(snap.generation),
            revision: s.revision,
        });
    }
    if !force {
        let checked = reload::probe(upstream, &target, &up.config).await;
        if let Err(e) = checked {
            refused();
            return Err(e.into());
        }
    }
    drop(snap);
    let expected = seen.as_ref().map_or(0, |s| s.revision);
    let key = cluster.active_key(upstream);
    let value = json!({
        "pool": pool,
        "by": cluster.id,
        "requested_at": unix_micros(SystemTime::now()),
    })
    .to_string();
    // mod_revision of an absent key compares as 0: "still absent".
    let txn = Txn::new()
        .when([Compare::mod_revision(
            key.clone(),
            CompareOp::Equal,
            expected,
        )])
        .and_then([TxnOp::put(key.clone(), value, None)])
        .or_else([TxnOp::get(key.clone(), None)]);
    let resp = match timed("switch transaction", client.txn(txn)).await {
        Ok(r) => r,
        Err(e) => {
            refused();
            log::warn!("cluster: switch of '{upstream}' to '{pool}' refused: {e}");
            return Err(unavailable(e));
        }
    };
    let written_at = SystemTime::now();
    if !resp.succeeded() {
        refused();
        let (now, revision) = resp
            .op_responses()
            .into_iter()
            .find_map(|r| match r {
                TxnOpResponse::Get(g) => g
                    .kvs()
                    .first()
                    .map(|kv| (pool_of(kv.value()).unwrap_or_default(), kv.mod_revision())),
                _ => None,
            })
            .unwrap_or_default();
        let e = FleetSwitchError::Conflict {
            upstream: upstream.to_string(),
            now,
            revision,
            expected,
        };
        log::warn!("cluster: {e}");
        return Err(e);
    }
    let revision = resp.header().map_or(0, |h| h.revision());
    cluster.set_last_write(revision, written_at);
    cluster.status_changed.notify_one();
    log::info!(
        "cluster: upstream '{upstream}' switched to pool '{pool}' for the fleet (etcd revision {revision})"
    );
    let applied = apply_remote(
        cluster,
        state,
        upstream,
        Some(pool),
        revision,
        Some(written_at),
    )
    .map_err(FleetSwitchError::Local)?;
    state.metrics().switch(
        upstream,
        if force {
            crate::metrics::SwitchResult::Forced
        } else {
            crate::metrics::SwitchResult::Ok
        },
    );
    Ok(FleetSwitched {
        // `None`: this member's watch applied the key before etcd's answer
        // was read here — still a switch that was done, not a no-op.
        applied: applied.unwrap_or(Applied {
            generation: state.load().generation,
            restart_needed: vec![],
            already_active: false,
        }),
        revision,
    })
}

/// The pool an `active/` key's value names: `{"pool": ...}` or a bare name.
pub fn pool_of(value: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(value).ok()?.trim();
    if text.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        return v["pool"].as_str().map(str::to_string);
    }
    (!text.is_empty()).then(|| text.to_string())
}

/// When the switch in an `active/` value was requested (µs), if it says.
pub fn requested_at(value: &[u8]) -> Option<i64> {
    let v: serde_json::Value = serde_json::from_slice(value).ok()?;
    v["requested_at"].as_i64()
}

/// Applies `<prefix>/active/<upstream>` at `revision` naming `pool` (`None`:
/// deleted, back to the file's `active:`). `Ok(None)`: nothing to do (an
/// older or already applied revision). `since`: when the switch was written
/// (the writer: when etcd's answer came; the others: the writer's
/// `requested_at`), for the propagation time logged.
pub fn apply_remote(
    cluster: &Cluster,
    state: &StateHandle,
    upstream: &str,
    pool: Option<&str>,
    revision: i64,
    since: Option<SystemTime>,
) -> Result<Option<Applied>, SwitchError> {
    {
        let mut seen = cluster.seen_mut();
        if seen.get(upstream).is_some_and(|s| s.revision >= revision) {
            return Ok(None);
        }
        match pool {
            Some(p) => seen.insert(
                upstream.to_string(),
                Seen {
                    pool: p.to_string(),
                    revision,
                },
            ),
            None => seen.remove(upstream),
        };
    }
    let mut writer = state.writer();
    let before = match pool {
        Some(p) => writer
            .active_overrides
            .insert(upstream.to_string(), p.to_string()),
        None => writer.active_overrides.remove(upstream),
    };
    let restore = |writer: &mut crate::state::Writer| match &before {
        Some(p) => writer
            .active_overrides
            .insert(upstream.to_string(), p.clone()),
        None => writer.active_overrides.remove(upstream),
    };
    let config = match reload::load_with_overrides(state.source(), &writer) {
        Ok(c) => c,
        Err(e) => {
            restore(&mut writer);
            return Err(e.into());
        }
    };
    let want = config.upstream(upstream).map(|u| u.active.clone());
    if let (Some(p), Some(w)) = (pool, &want)
        && p != w
    {
        restore(&mut writer);
        log::error!(
            "cluster: the fleet switched upstream '{upstream}' to pool '{p}', which this member's config does not have; still serving '{w}'"
        );
        return Err(SwitchError::UnknownPool {
            upstream: upstream.to_string(),
            pool: p.to_string(),
            known: String::new(),
        });
    }
    let running = state
        .load()
        .upstream(upstream)
        .map(|u| u.active_pool().name.clone());
    if running.is_some() && running == want {
        // Already serving it (the writer, or a key equal to the file).
        cluster.mark_applied(revision);
        return Ok(None);
    }
    let result = state
        .apply(&mut writer, config)
        .map(|(snap, restart)| Applied {
            generation: snap.generation,
            restart_needed: restart,
            already_active: false,
        });
    if result.is_err() {
        restore(&mut writer);
    }
    drop(writer);
    let result: Result<Applied, ApplyError> = result;
    reload::record(
        state,
        &format!(
            "switch {upstream} to {} (fleet, etcd revision {revision})",
            want.as_deref().unwrap_or("?")
        ),
        &result,
    );
    let applied = result?;
    cluster.mark_applied(revision);
    let after = since
        .and_then(|w| SystemTime::now().duration_since(w).ok())
        .map(|d| {
            format!(
                ", {:.1} ms after the switch was written",
                d.as_secs_f64() * 1e3
            )
        })
        .unwrap_or_default();
    log::info!(
        "cluster: applied upstream '{upstream}' -> pool '{}' (etcd revision {revision}, generation {}{after})",
        want.as_deref().unwrap_or("?"),
        applied.generation
    );
    Ok(Some(applied))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_names_its_pool_as_json_or_bare() {
        assert_eq!(
            pool_of(br#"{"pool":"green","by":"a:1","requested_at":5}"#).as_deref(),
            Some("green")
        );
        assert_eq!(pool_of(b"blue\n").as_deref(), Some("blue"));
        assert_eq!(pool_of(b"  "), None);
        assert_eq!(pool_of(b"{not json"), None);
        assert_eq!(requested_at(br#"{"pool":"g","requested_at":42}"#), Some(42));
        assert_eq!(requested_at(b"green"), None);
    }
}
