//! The admin commands of the CLI (`switch`, `status`, `reload`): HTTP clients
//! of a running greenlight's admin API that print for people and return an
//! exit code. `switch --wait` is the operator's "safe to stop" signal: it
//! returns 0 only once the old pool is drained.

use crate::admin::client::AdminClient;
use crate::admin::safe_to_stop::{Because, Verdict, verdict};
use crate::cli::AdminArgs;
use crate::config::model::defaults;
use crate::config::validate::parse_duration;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(200);

/// The admin API client for `args`: `--admin`, else the address in `-c`'s
/// config, else the default; the token from `--token-file` or that config.
pub(crate) fn client(args: &AdminArgs) -> Result<AdminClient, String> {
    let from_config = match &args.config {
        Some(p) => Some(crate::config::load_file(p).map_err(|e| e.to_string())?),
        None => None,
    };
    let addr: SocketAddr = args
        .admin
        .or(from_config.as_ref().map(|c| c.admin.addr))
        .unwrap_or_else(|| defaults::ADMIN_ADDR.parse().expect("valid default address"));
    let token_file = args
        .token_file
        .clone()
        .or(from_config.and_then(|c| c.admin.token_file));
    let token = match token_file {
        Some(p) => Some(
            std::fs::read_to_string(&p)
                .map_err(|e| format!("cannot read {}: {e}", p.display()))?
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string(),
        ),
        None => None,
    };
    Ok(AdminClient::new(addr, token))
}

fn fail(msg: impl std::fmt::Display) -> i32 {
    eprintln!("greenlight: {msg}");
    1
}

fn api_error(status: u16, body: &Value) -> i32 {
    let msg = body["error"].as_str().unwrap_or("request failed");
    eprintln!("greenlight: {msg} (HTTP {status})");
    if let Some(list) = body["problems"].as_array() {
        for p in list {
            eprintln!("{}", p.as_str().unwrap_or_default());
        }
    }
    1
}

/// `greenlight switch UPSTREAM POOL [--wait] [--timeout D] [--force]`.
pub fn switch(
    args: &AdminArgs,
    upstream: &str,
    pool: &str,
    wait: bool,
    timeout: Option<&str>,
    force: bool,
) -> i32 {
    let limit = match timeout.map(parse_duration) {
        Some(None) => return fail("--timeout takes a duration like 90s or 5m"),
        Some(Some(d)) => Some(d),
        None => None,
    };
    let c = match client(args) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let path = format!("/api/upstreams/{upstream}/switch");
    let (status, body) = match c.call("POST", &path, Some(&json!({"pool": pool, "force": force}))) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if status != 200 {
        return api_error(status, &body);
    }
    let from = body["from"].as_str().unwrap_or("").to_string();
    if body["already_active"] == true {
        println!(
            "upstream '{upstream}': pool '{pool}' is already active — nothing changed (generation {})",
            body["generation"]
        );
        return 0;
    }
    println!(
        "upstream '{upstream}': new requests go to pool '{pool}' (was '{from}'; generation {})",
        body["generation"]
    );
    if !wait || from.is_empty() || from == pool {
        return 0;
    }
    // Fleet mode: the switch went to etcd; wait for every member.
    if let Some(revision) = body["cluster_revision"].as_i64() {
        return crate::cli_cluster::wait_fleet(&c, upstream, &from, pool, revision, limit);
    }
    wait_drained(&c, upstream, &from, limit)
}

fn wait_drained(c: &AdminClient, upstream: &str, pool: &str, limit: Option<Duration>) -> i32 {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        let (status, body) = match c.call("GET", "/api/upstreams", None) {
            Ok(r) => r,
            Err(e) => return fail(e),
        };
        if status != 200 {
            return api_error(status, &body);
        }
        let p = body["upstreams"]
            .as_array()
            .and_then(|ups| ups.iter().find(|u| u["name"] == upstream))
            .and_then(|u| u["pools"].as_array())
            .and_then(|ps| ps.iter().find(|p| p["name"] == pool))
            .cloned();
        // The rule is shared with the API's `safe_to_stop` (the dashboard's
        // light), so both say "safe" at the same moment.
        match verdict(p.as_ref()) {
            Verdict::Safe(Because::Removed) => {
                println!(
                    "pool '{pool}' of upstream '{upstream}' was removed from the configuration and nothing is left on it after {:.1}s — safe to stop",
                    start.elapsed().as_secs_f64()
                );
                return 0;
            }
            Verdict::Safe(_) => {
                println!(
                    "pool '{pool}' of upstream '{upstream}' is drained after {:.1}s: nothing in flight, upstream connections closed — safe to stop",
                    start.elapsed().as_secs_f64()
                );
                return 0;
            }
            Verdict::Active => {
                return fail(format!(
                    "pool '{pool}' of upstream '{upstream}' became active again; not waiting"
                ));
            }
            Verdict::Wait => {}
        }
        let p = p.unwrap_or_default();
        let state = p["state"].as_str().unwrap_or("?");
        let line = format!(
            "pool '{pool}': {state} — {} in flight, {} WebSocket(s), {}s to the drain deadline",
            p["inflight"],
            p["websockets"],
            p["drain_seconds_left"]
                .as_f64()
                .map_or("?".into(), |s| format!("{s:.0}"))
        );
        if line != last {
            println!("{line}");
            last = line;
        }
        if limit.is_some_and(|l| start.elapsed() >= l) {
            return fail(format!(
                "timed out after {:.0?}: pool '{pool}' is still {state} ({} in flight, {} WebSocket(s))",
                limit.unwrap_or_default(),
                p["inflight"],
                p["websockets"]
            ));
        }
        std::thread::sleep(POLL);
    }
}

/// `greenlight status [--json]`.
pub fn status(args: &AdminArgs, as_json: bool) -> i32 {
    let c = match client(args) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let (status, body) = match status_body(&c) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if status != 200 {
        return api_error(status, &body);
    }
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&body).unwrap_or_default()
        );
        return 0;
    }
    print!("{}", render_status(&body));
    0
}

/// `GET /api/status`, with `cluster` (`GET /api/cluster`) added in fleet
/// mode, so `status` shows the whole fleet; without fleet mode that answers
/// 404 and nothing is added.
pub(crate) fn status_body(
    c: &crate::admin::client::AdminClient,
) -> Result<(u16, Value), crate::admin::client::ClientError> {
    let (status, mut body) = c.call("GET", "/api/status", None)?;
    if status == 200
        && let Ok((200, fleet)) = c.call("GET", "/api/cluster", None)
        && let Some(o) = body.as_object_mut()
    {
        o.insert("cluster".into(), fleet);
    }
    Ok((status, body))
}

/// A pool's servers, each marked when it is down or removed and draining.
fn server_list(p: &Value) -> String {
    let mut out: Vec<String> = p["health"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            let name = h["server"].as_str().unwrap_or("?");
            match h["down_reason"].as_str() {
                Some(why) => format!("{name} (down: {why})"),
                None => name.to_string(),
            }
        })
        .collect();
    out.extend(
        p["removed_servers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                format!(
                    "{} (removed, {} in flight)",
                    r["server"].as_str().unwrap_or("?"),
                    r["inflight"]
                )
            }),
    );
    out.join(", ")
}

/// The status JSON as tables for people.
pub fn render_status(b: &Value) -> String {
    let mut out = format!(
        "greenlight {} — config {} — generation {}\n",
        b["version"].as_str().unwrap_or("?"),
        b["config"].as_str().unwrap_or("?"),
        b["generation"]
    );
    let lr = &b["last_reload"];
    out.push_str(&match lr["ok"].as_bool() {
        None => "last reload: none since start\n".to_string(),
        Some(true) => "last reload: ok\n".to_string(),
        Some(false) => format!(
            "last reload: REJECTED (still serving generation {}):\n  {}\n",
            b["generation"],
            lr["problems"]
                .as_array()
                .map(|a| a
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("\n  "))
                .unwrap_or_default()
        ),
    });
    let mut rows = vec![vec![
        "UPSTREAM".to_string(),
        "POOL".into(),
        "STATE".into(),
        "IN-FLIGHT".into(),
        "WEBSOCKETS".into(),
        "DRAIN".into(),
        "HEALTHY".into(),
        "SERVERS".into(),
    ]];
    for u in b["upstreams"].as_array().into_iter().flatten() {
        for p in u["pools"].as_array().into_iter().flatten() {
            let drain = match p["state"].as_str() {
                Some("draining") => format!(
                    "{}s left",
                    p["drain_seconds_left"]
                        .as_f64()
                        .map_or("?".into(), |s| format!("{s:.0}"))
                ),
                Some("drained") => format!(
                    "took {}s",
                    p["last_drain_seconds"]
                        .as_f64()
                        .map_or("?".into(), |s| format!("{s:.1}"))
                ),
                _ => "-".into(),
            };
            rows.push(vec![
                u["name"].as_str().unwrap_or("?").into(),
                p["name"].as_str().unwrap_or("?").into(),
                match (p["state"].as_str().unwrap_or("?"), p["removed"] == true) {
                    (st, true) => format!("{st} (removed)"),
                    (st, false) => st.to_string(),
                },
                p["inflight"].to_string(),
                p["websockets"].to_string(),
                drain,
                {
                    let h = p["health"].as_array().cloned().unwrap_or_default();
                    let up = h.iter().filter(|s| s["up"] == true).count();
                    format!("{up}/{}", h.len())
                },
                server_list(p),
            ]);
        }
    }
    out.push('\n');
    out.push_str(&table(&rows));
    let certs = b["certificates"].as_array().cloned().unwrap_or_default();
    if !certs.is_empty() {
        let mut rows = vec![vec![
            "SITE".to_string(),
            "SOURCE".into(),
            "NAMES".into(),
            "DAYS LEFT".into(),
            "ISSUER".into(),
            "ACME".into(),
        ]];
        for c in certs {
            let acme = &c["acme"];
            let acme = if acme.is_null() {
                "-".to_string()
            } else if let Some(e) = acme["last_error"].as_str() {
                format!("FAILING ({} in a row): {e}", acme["failures"])
            } else {
                "ok".to_string()
            };
            rows.push(vec![
                c["site"].as_str().unwrap_or("?").into(),
                c["source"].as_str().unwrap_or("?").into(),
                join_strs(&c["names"]),
                c["days_left"].to_string(),
                c["issuer"].as_str().unwrap_or("-").into(),
                acme,
            ]);
        }
        out.push('\n');
        out.push_str(&table(&rows));
    }
    if !b["cluster"].is_null() {
        out.push('\n');
        out.push_str(&render_fleet(&b["cluster"]));
    }
    out
}

/// Fleet mode (`GET /api/cluster`): the connection to etcd, the stored
/// switch, and per live member whether it applied it and drained the old
/// pool — the fleet-wide "safe to stop".
fn render_fleet(f: &Value) -> String {
    let yes = |v: &Value| if v == &Value::Bool(true) { "yes" } else { "no" };
    let mut out = match f["cluster"].as_str() {
        Some("connected") => format!(
            "fleet: connected to etcd at {} as member {} — switch revision {} — all applied: {}, all drained: {}, safe to stop: {}\n",
            f["endpoint"].as_str().unwrap_or("?"),
            f["member"].as_str().unwrap_or("?"),
            f["revision"],
            yes(&f["all_applied"]),
            yes(&f["all_drained"]),
            yes(&f["safe_to_stop"]),
        ),
        other => format!(
            "fleet: {} ({}): serving the last state; switches are refused until etcd is back\n",
            other.unwrap_or("?").to_uppercase(),
            f["error"].as_str().unwrap_or("no detail")
        ),
    };
    let mut rows = vec![vec![
        "MEMBER".to_string(),
        "ADMIN".into(),
        "APPLIED".into(),
        "DRAINED".into(),
        "WAITING FOR".into(),
        "PROPAGATION".into(),
    ]];
    for m in f["members"].as_array().into_iter().flatten() {
        rows.push(vec![
            m["id"].as_str().unwrap_or("?").into(),
            m["admin"].as_str().unwrap_or("?").into(),
            format!("{} (rev {})", yes(&m["applied"]), m["applied_revision"]),
            yes(&m["drained"]).into(),
            match join_strs(&m["draining"]) {
                s if s.is_empty() => "-".into(),
                s => s,
            },
            m["propagation_ms"]
                .as_f64()
                .map_or("-".into(), |ms| format!("{ms:.1} ms")),
        ]);
    }
    if rows.len() > 1 {
        out.push_str(&table(&rows));
    }
    // Fleet ACME: one line per certificate the fleet orders.
    for (site, a) in f["acme"].as_object().into_iter().flatten() {
        let c = &a["certificate"];
        let mut line = match c["serial"].as_str() {
            Some(serial) => format!(
                "acme {site}: serial {serial}, valid until {}, ordered by {}",
                c["not_after"].as_str().unwrap_or("?"),
                c["by"].as_str().unwrap_or("?")
            ),
            None => format!("acme {site}: no certificate stored yet"),
        };
        if a["locked"] == Value::Bool(true) {
            line.push_str(" — a member is ordering or checking it now");
        }
        if let Some(b) = a["backoff"].as_object() {
            line.push_str(&format!(
                " — last order failed ({} failure(s), {}): no member orders before {}",
                b["failures"],
                b["error"].as_str().unwrap_or("?"),
                b["next_attempt"].as_str().unwrap_or("?")
            ));
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// A JSON array of strings as `a, b, c` (empty for anything else).
fn join_strs(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `greenlight reload`.
pub fn reload(args: &AdminArgs) -> i32 {
    let c = match client(args) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    match c.call("POST", "/api/reload", None) {
        Ok((200, body)) => {
            println!("configuration reloaded: generation {}", body["generation"]);
            for r in body["restart_needed"].as_array().into_iter().flatten() {
                println!("note: {}", r.as_str().unwrap_or_default());
            }
            0
        }
        Ok((status, body)) => api_error(status, &body),
        Err(e) => fail(e),
    }
}
