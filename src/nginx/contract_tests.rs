//! The importer's output against issue #13's YAML contract (the keys the
//! README's configuration tables document): every key in its place, one
//! terminal per route, known variables in every template, valid statuses,
//! flags and balance methods. Run over the golden outputs always, and over
//! the third-party corpus (`../shared/fixtures/nginx-corpus/`, when present)
//! with `cargo test --lib corpus_outputs_match_the_contract -- --ignored`.

use std::path::Path;

use serde_json::Value;

use super::vars;
use super::{ImportOptions, import};

fn keys(v: &Value, at: &str, allowed: &[&str], errs: &mut Vec<String>) {
    match v.as_object() {
        Some(m) => {
            for k in m.keys() {
                if !allowed.contains(&k.as_str()) {
                    errs.push(format!("{at}: key `{k}` is not in the contract"));
                }
            }
        }
        None => errs.push(format!("{at}: expected a mapping")),
    }
}

fn template(v: &Value, at: &str, captures: &[String], errs: &mut Vec<String>) {
    let Some(s) = v.as_str() else {
        errs.push(format!("{at}: expected a string"));
        return;
    };
    for r in vars::refs(s) {
        if !vars::known(&r.name, captures) {
            errs.push(format!("{at}: unknown variable ${}", r.name));
        }
    }
}

fn headers(v: &Value, at: &str, response: bool, maps: &[String], errs: &mut Vec<String>) {
    keys(v, at, &["set", "add", "remove"], errs);
    for part in ["set", "add"] {
        let Some(m) = v.get(part).and_then(Value::as_object) else {
            continue;
        };
        for (name, value) in m {
            let here = format!("{at}.{part}.{name}");
            match value {
                Value::Object(o) if response => {
                    keys(value, &here, &["value", "always"], errs);
                    if let Some(x) = o.get("value") {
                        template(x, &here, maps, errs);
                    }
                }
                _ => template(value, &here, maps, errs),
            }
        }
    }
    if let Some(r) = v.get("remove")
        && !r.is_array()
    {
        errs.push(format!("{at}.remove: expected a list"));
    }
}

fn route(v: &Value, at: &str, maps: &[String], errs: &mut Vec<String>) {
    keys(
        v,
        at,
        &[
            "path",
            "methods",
            "scheme",
            "upstream",
            "redirect",
            "respond",
            "upstream_path",
            "rewrite",
            "request_headers",
            "response_headers",
            "request_buffering",
            "max_body_size",
            "retry_statuses",
            "checks",
            "files",
            "expires",
            "charset",
            "limit_req",
            "limit_conn",
            "error_pages",
            "intercept_errors",
            "access",
            "compress",
            "rewrite_location",
        ],
        errs,
    );
    if let Some(list) = v.get("rewrite_location") {
        let rules_ok = list.as_array().is_some_and(|l| {
            l.iter().all(|r| {
                r.get("from").is_some_and(Value::is_string)
                    && r.get("to").is_some_and(Value::is_string)
            })
        });
        if !rules_ok {
            errs.push(format!(
                "{at}.rewrite_location: expected a list of {{from, to}}"
            ));
        }
    }
    if let Some(e) = v.get("expires").and_then(Value::as_str)
        && let Err(why) = crate::plan::expires::parse(e)
    {
        errs.push(format!("{at}.expires: {why}"));
    }
    if let Some(a) = v.get("access") {
        keys(
            a,
            &format!("{at}.access"),
            &["ip", "basic_auth", "forward_auth", "satisfy"],
            errs,
        );
    }
    let path = v.get("path").and_then(Value::as_str).unwrap_or("");
    let (modifier, body) = path.split_once(' ').unwrap_or(("", path));
    let regex = matches!(modifier, "~" | "~*");
    let named = modifier.is_empty() && body.len() > 1 && body.starts_with('@');
    if !(matches!(modifier, "" | "=" | "^~" | "~" | "~*")
        && (regex || named || body.starts_with('/')))
    {
        errs.push(format!("{at}.path: '{path}' is not nginx location syntax"));
    }
    let mut captures = if regex {
        vars::named_groups(body)
    } else {
        Vec::new()
    };
    // Map variables are known to every template (checked like named groups).
    captures.extend(maps.iter().cloned());
    checks(v, at, &captures, errs);
    let terminals = ["upstream", "redirect", "respond", "files"]
        .iter()
        .filter(|t| v.get(**t).is_some())
        .count();
    if terminals != 1 {
        errs.push(format!(
            "{at}: {terminals} terminals (exactly one of upstream, redirect, respond, files)"
        ));
    }
    if let Some(r) = v.get("redirect") {
        keys(r, &format!("{at}.redirect"), &["to", "status"], errs);
        if let Some(to) = r.get("to") {
            template(to, &format!("{at}.redirect.to"), &captures, errs);
        }
        let status = r.get("status").and_then(Value::as_u64).unwrap_or(302);
        if ![301, 302, 303, 307, 308].contains(&status) {
            errs.push(format!("{at}.redirect.status {status}"));
        }
    }
    if let Some(f) = v.get("files") {
        keys(
            f,
            &format!("{at}.files"),
            &["root", "alias", "index", "try_files", "autoindex"],
            errs,
        );
        if f.get("root").is_some() == f.get("alias").is_some() {
            errs.push(format!("{at}.files: exactly one of root, alias"));
        }
        for t in f
            .get("try_files")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            template(t, &format!("{at}.files.try_files"), &captures, errs);
        }
    }
    if let Some(r) = v.get("respond") {
        keys(
            r,
            &format!("{at}.respond"),
            &["status", "body", "body_base64", "content_type"],
            errs,
        );
        if let Some(b) = r.get("body") {
            template(b, &format!("{at}.respond.body"), &captures, errs);
        }
        let status = r.get("status").and_then(Value::as_u64).unwrap_or(0);
        if !(100..=599).contains(&status) {
            errs.push(format!("{at}.respond.status {status}"));
        }
    }
    if v.get("upstream_path").is_some() && !matches!(modifier, "" | "^~") {
        errs.push(format!(
            "{at}: upstream_path on a route that is not a prefix"
        ));
    }
    for (i, w) in v
        .get("rewrite")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let here = format!("{at}.rewrite[{i}]");
        keys(w, &here, &["from", "to", "flag"], errs);
        let mut names = captures.clone();
        names.extend(vars::named_groups(
            w.get("from").and_then(Value::as_str).unwrap_or(""),
        ));
        if let Some(to) = w.get("to") {
            template(to, &here, &names, errs);
        }
        let flag = w.get("flag").and_then(Value::as_str).unwrap_or("break");
        if !["break", "last", "redirect", "permanent"].contains(&flag) {
            errs.push(format!("{here}.flag {flag}"));
        }
    }
    for (k, resp) in [("request_headers", false), ("response_headers", true)] {
        if let Some(h) = v.get(k) {
            headers(h, &format!("{at}.{k}"), resp, maps, errs);
        }
    }
}

/// `checks:` of a site or route: keys, a condition the plan's parser
/// accepts, one answer.
fn checks(v: &Value, at: &str, known: &[String], errs: &mut Vec<String>) {
    for (i, c) in v
        .get("checks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let here = format!("{at}.checks[{i}]");
        keys(c, &here, &["if", "redirect", "respond"], errs);
        let named: Vec<(String, usize)> = known.iter().cloned().zip(1..).collect();
        let scope = crate::plan::template::Scope {
            location: &named,
            ..Default::default()
        };
        match c.get("if").and_then(Value::as_str) {
            Some(t) => {
                if let Err(e) = crate::plan::check::Condition::parse(t, &scope) {
                    errs.push(format!("{here}.if: {}", e.what));
                }
            }
            None => errs.push(format!("{here}: no `if`")),
        }
        if c.get("redirect").is_some() == c.get("respond").is_some() {
            errs.push(format!("{here}: exactly one of redirect, respond"));
        }
    }
}

/// The contract's complaints about one imported YAML text.
pub(super) fn check(yaml: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let doc: Value = match serde_saphyr::from_str(yaml) {
        Ok(v) => v,
        Err(e) => return vec![format!("not YAML: {e}")],
    };
    keys(
        &doc,
        "top",
        &[
            "acme",
            "access_log",
            "maps",
            "limit_req_zones",
            "limit_conn_zones",
            "trusted_proxies",
            "client_ip_from",
            "listeners",
            "limits",
            "sites",
            "upstreams",
        ],
        &mut errs,
    );
    let maps: Vec<String> = doc
        .get("maps")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    for (name, l) in doc
        .get("listeners")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        keys(
            l,
            &format!("listeners.{name}"),
            &["address", "tls", "proxy_protocol"],
            &mut errs,
        );
    }
    for (name, s) in doc
        .get("sites")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let at = format!("sites.{name}");
        keys(
            s,
            &at,
            &[
                "hosts",
                "default",
                "tls",
                "plain_http",
                "max_body_size",
                "keepalive_timeout",
                "underscores_in_headers",
                "request_buffering",
                "routes",
                "request_headers",
                "response_headers",
                "trusted_proxies",
                "client_ip_from",
                "checks",
                "compress",
                "client_auth",
                "listeners",
            ],
            &mut errs,
        );
        checks(s, &at, &maps, &mut errs);
        if let Some(c) = s.get("client_auth") {
            keys(
                c,
                &format!("{at}.client_auth"),
                &["ca", "verify", "depth"],
                &mut errs,
            );
            if s.get("tls").is_none() {
                errs.push(format!("{at}: client_auth without tls"));
            }
        }
        let no_hosts = s
            .get("hosts")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        let default = match s.get("default") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(on)) => on == "https" || on == "http",
            _ => false,
        };
        if no_hosts && !default {
            errs.push(format!("{at}: no hosts and not the default site"));
        }
        if s.get("hosts")
            .is_some_and(|h| h.as_array().is_some_and(Vec::is_empty))
        {
            errs.push(format!("{at}: `hosts: []`"));
        }
        for (k, resp) in [("request_headers", false), ("response_headers", true)] {
            if let Some(h) = s.get(k) {
                headers(h, &format!("{at}.{k}"), resp, &maps, &mut errs);
            }
        }
        for (i, r) in s
            .get("routes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            route(r, &format!("{at}.routes[{i}]"), &maps, &mut errs);
        }
    }
    for (name, u) in doc
        .get("upstreams")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let at = format!("upstreams.{name}");
        keys(
            u,
            &at,
            &[
                "active",
                "pools",
                "balance",
                "tls",
                "sni",
                "ca",
                "verify",
                "connect_timeout",
                "read_timeout",
                "write_timeout",
                "max_fails",
                "fail_timeout",
            ],
            &mut errs,
        );
        for (p, servers) in u
            .get("pools")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            for s in servers.as_array().into_iter().flatten() {
                if s.is_object() {
                    keys(
                        s,
                        &format!("{at}.pools.{p}"),
                        &["address", "weight", "backup", "max_fails", "fail_timeout"],
                        &mut errs,
                    );
                } else if !s.is_string() {
                    errs.push(format!(
                        "{at}.pools.{p}: a server is neither text nor a mapping"
                    ));
                }
            }
        }
        match u.get("balance") {
            None => {}
            Some(Value::String(b))
                if ["round_robin", "least_conn", "ip_hash"].contains(&b.as_str()) => {}
            Some(b @ Value::Object(_)) => {
                keys(b, &format!("{at}.balance"), &["hash"], &mut errs);
                if let Some(h) = b.get("hash") {
                    template(h, &format!("{at}.balance.hash"), &[], &mut errs);
                }
            }
            Some(other) => errs.push(format!("{at}.balance: {other}")),
        }
    }
    errs
}

#[test]
fn golden_outputs_match_the_contract() {
    let mut failures = Vec::new();
    for conf in super::golden_tests::golden_inputs() {
        let text = std::fs::read_to_string(conf.with_extension("yaml")).unwrap_or_default();
        for e in check(&text) {
            failures.push(format!("{}: {e}", conf.display()));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn the_checker_rejects_what_the_contract_does_not_allow() {
    let bad = "sites:\n  a:\n    hosts: []\n    routes:\n      - path: \"~x\"\n        upstream: u\n        redirect: {to: \"$nope\", status: 200}\n";
    let errs = check(bad);
    for want in [
        "`hosts: []`",
        "not nginx location syntax",
        "2 terminals",
        "unknown variable $nope",
        "status 200",
    ] {
        assert!(errs.iter().any(|e| e.contains(want)), "{want}: {errs:#?}");
    }
}

/// The third-party corpus (test data, never copied into the repository):
/// every file that imports must give YAML that matches the contract.
#[test]
#[ignore = "needs ../shared/fixtures/nginx-corpus; run with --ignored"]
fn corpus_outputs_match_the_contract() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/nginx-corpus");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        eprintln!("no corpus at {}", dir.display());
        return;
    };
    let mut files: Vec<_> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    files.sort();
    let mut failures = Vec::new();
    for f in &files {
        if let Ok(out) = import(f, &ImportOptions::default()) {
            for e in check(&out.yaml) {
                failures.push(format!("{}: {e}", f.display()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} problems: {failures:#?}",
        failures.len()
    );
}
