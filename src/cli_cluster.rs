//! `greenlight switch --wait` in fleet mode: after the switch was written to
//! etcd, wait on `GET /api/cluster` until every live member has applied it
//! and drained the old pool — the fleet-wide "safe to stop". A member whose
//! lease expires (crashed, cut off) drops out of the list: it is named and
//! no longer counted. Each member's pools are judged by the one rule
//! (`admin::safe_to_stop`).

use crate::admin::client::AdminClient;
use crate::admin::safe_to_stop::verdict;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(200);

/// What one look at `/api/cluster` says to `switch --wait`.
#[derive(Debug, PartialEq, Eq)]
pub enum Fleet {
    /// Every live member applied the switch and `from` is safe to stop on
    /// each; the members' ids.
    Done(Vec<String>),
    /// Still waiting: one progress line.
    Wait(String),
    /// The upstream was switched again (to the pool named): stop waiting.
    Switched(String),
}

/// Judges `view` (a `GET /api/cluster` answer) for the switch of `upstream`
/// from `from` to `to` written at etcd `revision`.
pub fn judge(view: &Value, upstream: &str, from: &str, to: &str, revision: i64) -> Fleet {
    if view["cluster"] != "connected" {
        return Fleet::Wait(format!(
            "cluster: disconnected ({}); waiting for etcd",
            view["error"].as_str().unwrap_or("?")
        ));
    }
    let stored = &view["active"][upstream];
    if stored["revision"].as_i64().unwrap_or(0) > revision || stored["pool"].as_str() != Some(to) {
        return Fleet::Switched(
            stored["pool"]
                .as_str()
                .unwrap_or("the file's active")
                .to_string(),
        );
    }
    let empty = vec![];
    let members = view["members"].as_array().unwrap_or(&empty);
    let mut ids = Vec::new();
    let mut behind = Vec::new();
    for m in members {
        let id = m["id"].as_str().unwrap_or("?").to_string();
        let applied = m["applied_revision"].as_i64().unwrap_or(0) >= revision
            && m["active"][upstream].as_str() == Some(to);
        let old = m["pools"].as_array().and_then(|ps| {
            ps.iter()
                .find(|p| p["upstream"] == upstream && p["pool"] == from)
        });
        if !applied {
            behind.push(format!("{id}: not applied yet"));
        } else if !verdict(old).is_safe() {
            let p = old.cloned().unwrap_or_default();
            behind.push(format!(
                "{id}: {} — {} in flight, {} WebSocket(s)",
                p["state"].as_str().unwrap_or("?"),
                p["inflight"],
                p["websockets"]
            ));
        }
        ids.push(id);
    }
    if ids.is_empty() {
        return Fleet::Wait("no live member listed yet".into());
    }
    if behind.is_empty() {
        return Fleet::Done(ids);
    }
    Fleet::Wait(format!(
        "pool '{from}' on the fleet: {}/{} member(s) done; {}",
        ids.len() - behind.len(),
        ids.len(),
        behind.join("; ")
    ))
}

/// Polls `/api/cluster` until [`judge`] says done (0), switched again or
/// timed out (1).
pub fn wait_fleet(
    c: &AdminClient,
    upstream: &str,
    from: &str,
    to: &str,
    revision: i64,
    limit: Option<Duration>,
) -> i32 {
    let start = Instant::now();
    let mut last = String::new();
    let mut known: BTreeSet<String> = BTreeSet::new();
    loop {
        let (status, view) = match c.call("GET", "/api/cluster", None) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("greenlight: {e}");
                return 1;
            }
        };
        if status != 200 {
            eprintln!(
                "greenlight: {} (HTTP {status})",
                view["error"].as_str().unwrap_or("request failed")
            );
            return 1;
        }
        // Members that left (lease expired) stop counting, and are named.
        let now: BTreeSet<String> = view["members"]
            .as_array()
            .map(|ms| {
                ms.iter()
                    .filter_map(|m| m["id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if view["cluster"] == "connected" {
            for gone in known.difference(&now) {
                println!("member {gone} left the fleet (its lease expired): no longer counted");
            }
            known = now;
        }
        match judge(&view, upstream, from, to, revision) {
            Fleet::Done(ids) => {
                println!(
                    "pool '{from}' of upstream '{upstream}' is drained on all {} member(s) ({}) after {:.1}s — safe to stop",
                    ids.len(),
                    ids.join(", "),
                    start.elapsed().as_secs_f64()
                );
                return 0;
            }
            Fleet::Switched(now) => {
                eprintln!(
                    "greenlight: upstream '{upstream}' was switched again (to '{now}') on the fleet; not waiting"
                );
                return 1;
            }
            Fleet::Wait(line) => {
                if line != last {
                    println!("{line}");
                    last = line;
                }
            }
        }
        if limit.is_some_and(|l| start.elapsed() >= l) {
            eprintln!(
                "greenlight: timed out after {:.0?}: {last}",
                limit.unwrap_or_default()
            );
            return 1;
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn member(id: &str, rev: i64, active: &str, blue: &str, inflight: u64) -> Value {
        json!({"id": id, "applied_revision": rev, "active": {"app": active},
            "pools": [{"upstream": "app", "pool": "blue", "state": blue, "inflight": inflight, "websockets": 0}]})
    }

    fn view(members: Vec<Value>, pool: &str, rev: i64) -> Value {
        json!({"cluster": "connected", "active": {"app": {"pool": pool, "revision": rev}}, "members": members})
    }

    #[test]
    fn done_only_when_every_member_applied_and_drained_the_old_pool() {
        let v = view(
            vec![
                member("a", 5, "green", "drained", 0),
                member("b", 5, "green", "draining", 1),
            ],
            "green",
            5,
        );
        let Fleet::Wait(line) = judge(&v, "app", "blue", "green", 5) else {
            panic!("should wait")
        };
        assert!(
            line.contains("1/2 member(s) done; b: draining — 1 in flight"),
            "{line}"
        );
        let v = view(
            vec![
                member("a", 5, "green", "drained", 0),
                member("b", 4, "blue", "active", 0),
            ],
            "green",
            5,
        );
        assert!(
            matches!(judge(&v, "app", "blue", "green", 5), Fleet::Wait(l) if l.contains("b: not applied yet"))
        );
        let v = view(
            vec![
                member("a", 5, "green", "drained", 0),
                member("b", 6, "green", "idle", 0),
            ],
            "green",
            5,
        );
        assert_eq!(
            judge(&v, "app", "blue", "green", 5),
            Fleet::Done(vec!["a".into(), "b".into()])
        );
    }

    #[test]
    fn a_newer_switch_or_a_disconnected_member_is_not_done() {
        let v = view(vec![member("a", 7, "red", "drained", 0)], "red", 7);
        assert_eq!(
            judge(&v, "app", "blue", "green", 5),
            Fleet::Switched("red".into())
        );
        let v = json!({"cluster": "disconnected", "error": "down"});
        assert!(
            matches!(judge(&v, "app", "blue", "green", 5), Fleet::Wait(l) if l.contains("disconnected (down)"))
        );
    }
}
