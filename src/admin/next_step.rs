//! The deploy step an operator takes next, per upstream: which pool the
//! "safe to stop" light is about (`drain`) and what to do or run (`next`).
//! Built from the pool views of `views`, so the API, `greenlight status`
//! and the dashboard say the same thing; the dashboard only displays it.

use super::safe_to_stop::{Verdict, verdict};
use crate::config::ConfigSource;
use crate::config::model::defaults;
use serde_json::{Value, json};
use std::net::SocketAddr;

/// How a suggested command reaches this greenlight: `-c FILE` (which also
/// gives the CLI the token file), or `--admin ADDR` for the embedded config
/// when the admin address is not the CLI's default.
pub struct CliTarget {
    suffix: String,
}

impl CliTarget {
    /// The target for a greenlight running `source` with its admin API on
    /// `admin`.
    pub fn new(source: &ConfigSource, admin: SocketAddr) -> CliTarget {
        let suffix = match source {
            ConfigSource::File(path) => format!(" -c {}", shell_word(&path.to_string_lossy())),
            ConfigSource::Embedded if admin.to_string() == defaults::ADMIN_ADDR => String::new(),
            ConfigSource::Embedded => format!(" --admin {admin}"),
        };
        CliTarget { suffix }
    }

    fn command(&self, args: &str) -> String {
        format!("greenlight {args}{}", self.suffix)
    }
}

/// `s` as one shell word: as is when it has no special character, else in
/// single quotes.
fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./:@%+=,-".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The pool to stop next, as its view: of the pools that no longer take new
/// requests and are draining or drained, the one whose drain started last.
/// `None` before the first switch (or once a removed pool is gone).
pub fn drain_pool<'a>(pools: &'a [Value], active: &str) -> Option<&'a Value> {
    pools
        .iter()
        .filter(|p| p["removed"] == true || p["name"] != active)
        .filter(|p| p["state"] == "draining" || p["state"] == "drained")
        .max_by(|a, b| {
            let t = |p: &Value| p["drain_started"].as_f64().unwrap_or(0.0);
            t(a).total_cmp(&t(b))
        })
}

fn servers(p: &Value) -> String {
    let list: Vec<&str> = p["servers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if list.is_empty() {
        "no servers".into()
    } else {
        list.join(", ")
    }
}

fn step(text: String, command: Option<String>) -> Value {
    json!({ "text": text, "command": command })
}

/// The next step for upstream `name` whose `active` pool serves, given its
/// pool views and the pool to stop next.
pub fn next(
    name: &str,
    active: &str,
    pools: &[Value],
    drain: Option<&Value>,
    cli: &CliTarget,
) -> Value {
    let Some(d) = drain else {
        let other = pools
            .iter()
            .find(|p| p["removed"] != true && p["name"] != active);
        return match other.and_then(|p| p["name"].as_str()) {
            Some(o) => step(
                format!(
                    "No drain in progress: pool '{active}' serves. To deploy, start the new release on pool '{o}' ({}), then switch to it (refused unless one of its servers accepts a connection):",
                    servers(&pools[pools.iter().position(|p| p["name"] == o).unwrap_or(0)])
                ),
                Some(cli.command(&format!("switch {name} {o} --wait"))),
            ),
            None => step(
                format!(
                    "Pool '{active}' is the only pool: add a second one to deploy without downtime."
                ),
                None,
            ),
        };
    };
    let pool = d["name"].as_str().unwrap_or("?");
    match verdict(Some(d)) {
        Verdict::Safe(_) if d["removed"] == true => step(
            format!(
                "Pool '{pool}' was removed from the configuration and is drained: stop its servers ({}).",
                servers(d)
            ),
            None,
        ),
        Verdict::Safe(_) => step(
            format!(
                "Pool '{pool}' is safe to stop: nothing in flight, its upstream connections are closed. Stop or upgrade its servers ({}); once the next release runs there, switch to it:",
                servers(d)
            ),
            Some(cli.command(&format!("switch {name} {pool} --wait"))),
        ),
        Verdict::Wait | Verdict::Active => step(
            format!(
                "Wait — do not stop pool '{pool}' yet: {} request(s) in flight, {} WebSocket(s) open; the drain deadline ends what is left in {}s.",
                d["inflight"],
                d["websockets"],
                d["drain_seconds_left"]
                    .as_f64()
                    .map_or("?".into(), |s| format!("{}", s.ceil()))
            ),
            None,
        ),
    }
}

/// The next step for an upstream a reload removed (listed while its pools
/// drain).
pub fn removed_upstream(name: &str) -> Value {
    step(
        format!(
            "Upstream '{name}' was removed from the configuration; its pools stay listed while they drain."
        ),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(name: &str, state: &str, started: f64) -> Value {
        json!({"name": name, "state": state, "removed": false, "servers": ["127.0.0.1:3000"],
               "drain_started": started, "inflight": 2, "websockets": 1, "drain_seconds_left": 4.2})
    }

    #[test]
    fn the_light_follows_the_latest_drain_of_a_pool_that_is_not_active() {
        let pools = [pool("blue", "draining", 10.0), pool("green", "active", 5.0)];
        assert_eq!(drain_pool(&pools, "green").unwrap()["name"], "blue");
        let pools = [
            pool("blue", "drained", 10.0),
            pool("green", "drained", 20.0),
        ];
        assert_eq!(drain_pool(&pools, "blue").unwrap()["name"], "green");
        let pools = [pool("blue", "active", 0.0), pool("green", "idle", 0.0)];
        assert!(drain_pool(&pools, "blue").is_none());
    }

    #[test]
    fn the_next_step_names_the_command() {
        let cli = CliTarget::new(
            &ConfigSource::File("/etc/my conf.yaml".into()),
            "127.0.0.1:9090".parse().unwrap(),
        );
        let pools = [pool("blue", "active", 0.0), pool("green", "idle", 0.0)];
        let n = next("app", "blue", &pools, None, &cli);
        assert_eq!(
            n["command"],
            "greenlight switch app green --wait -c '/etc/my conf.yaml'"
        );
        let pools = [pool("blue", "draining", 1.0), pool("green", "active", 0.0)];
        let n = next("app", "green", &pools, Some(&pools[0]), &cli);
        assert!(n["command"].is_null());
        assert!(
            n["text"].as_str().unwrap().contains("1 WebSocket(s)"),
            "{n}"
        );
        assert!(n["text"].as_str().unwrap().contains("in 5s"), "{n}");
        let pools = [pool("blue", "drained", 1.0), pool("green", "active", 0.0)];
        let n = next("app", "green", &pools, Some(&pools[0]), &cli);
        assert!(n["text"].as_str().unwrap().contains("safe to stop"), "{n}");
        let embedded = CliTarget::new(&ConfigSource::Embedded, "127.0.0.1:9191".parse().unwrap());
        assert_eq!(
            embedded.command("status"),
            "greenlight status --admin 127.0.0.1:9191"
        );
    }
}
