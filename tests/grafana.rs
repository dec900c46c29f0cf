//! The Grafana board (`contrib/grafana/greenlight.json`) against the real
//! binary: every metric name in every PromQL expression of the board — panel
//! targets, annotations, variable queries — is a family that `/metrics` of a
//! running greenlight serves (`_bucket`/`_sum`/`_count` mapped to their
//! histogram), so renaming a metric without the board fails here. Also: the
//! board uses a data source variable (no hard-coded data source uid), every
//! `$variable` it uses is defined, and panels do not overlap.
//!
//! Names are read with a PromQL parser (promql-parser, the AST walk of
//! [`metric_names`]), never with a pattern over the text: a pattern cannot
//! tell a metric from a function, a label, a keyword or a string.

use crate::support::exposition::{Labels, check_exposition};
use crate::support::*;
use promql_parser::parser::{self, Expr, LabelModifier};
use promql_parser::util::{ExprVisitor, walk_expr};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The board, as shipped.
const BOARD: &str = include_str!("../contrib/grafana/greenlight.json");

/// Grafana's built-in variables: a duration stands in for the interval ones,
/// a number for the `_s`/`_ms` forms.
const BUILT_INS: [(&str, &str); 6] = [
    ("__rate_interval", "5m"),
    ("__interval", "1m"),
    ("__range", "1h"),
    ("__range_s", "3600"),
    ("__range_ms", "3600000"),
    ("__interval_ms", "60000"),
];

/// Replaces Grafana variables (`$x`, `${x}`, `${x:format}`, `[[x]]`) so the
/// text is PromQL: built-ins by a value, the board's own variables by
/// `@x@`, which only parses inside a string (a label matcher's value), where
/// dashboard variables belong. Fails on a variable the board does not define.
fn substitute(expr: &str, defined: &BTreeSet<String>) -> Result<String, String> {
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(i) = rest.find(['$', '[']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let (name, len) = if let Some(t) = tail.strip_prefix("${") {
            let end = t
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {expr:?}"))?;
            let inner = &t[..end];
            (inner.split(':').next().unwrap_or(inner), end + 3)
        } else if let Some(t) = tail.strip_prefix("[[") {
            let end = t
                .find("]]")
                .ok_or_else(|| format!("unclosed [[ in {expr:?}"))?;
            (&t[..end], end + 4)
        } else if let Some(t) = tail.strip_prefix('$') {
            let end = t
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(t.len());
            (&t[..end], end + 1)
        } else {
            // A plain `[` (a range): keep it.
            out.push('[');
            rest = &tail[1..];
            continue;
        };
        if name.is_empty() {
            return Err(format!("a lone `$` in {expr:?}"));
        }
        match BUILT_INS.iter().find(|(n, _)| *n == name) {
            Some((_, value)) => out.push_str(value),
            None if defined.contains(name) => out.push_str(&format!("@{name}@")),
            None => return Err(format!("undefined variable ${name} in {expr:?}")),
        }
        rest = &tail[len..];
    }
    out.push_str(rest);
    Ok(out)
}

/// What one PromQL expression uses.
#[derive(Debug, Default)]
struct Uses {
    /// Every selector: its metric name and the label names it matches on.
    selectors: Vec<(String, BTreeSet<String>)>,
    /// Every `by`/`without` of an aggregation and `on`/`ignoring` of a
    /// binary operation: its labels and the metrics of the expression(s) it
    /// applies to.
    groupings: Vec<(BTreeSet<String>, BTreeSet<String>)>,
}

impl Uses {
    fn names(&self) -> BTreeSet<String> {
        self.selectors.iter().map(|(n, _)| n.clone()).collect()
    }
}

impl ExprVisitor for Uses {
    type Error = String;

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, String> {
        let labels =
            |m: &LabelModifier| -> BTreeSet<String> { m.labels().labels.iter().cloned().collect() };
        let vs = match expr {
            Expr::VectorSelector(vs) => vs,
            Expr::MatrixSelector(ms) => &ms.vs,
            Expr::Aggregate(a) => {
                if let Some(m) = &a.modifier {
                    self.groupings
                        .push((labels(m), analyse_expr(&a.expr)?.names()));
                }
                // `walk_expr` does not visit an aggregation's parameter
                // (`topk(scalar(x), ...)`): walk it here.
                if let Some(param) = &a.param {
                    walk_expr(self, param)?;
                }
                return Ok(true);
            }
            Expr::Binary(b) => {
                if let Some(m) = b.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
                    let mut names = analyse_expr(&b.lhs)?.names();
                    names.extend(analyse_expr(&b.rhs)?.names());
                    self.groupings.push((labels(m), names));
                }
                return Ok(true);
            }
            _ => return Ok(true),
        };
        // `{__name__="x"}`: the name as an equality matcher.
        let by_matcher =
            vs.matchers.matchers.iter().find(|m| {
                m.name == "__name__" && matches!(m.op, promql_parser::label::MatchOp::Equal)
            });
        let name = vs
            .name
            .clone()
            .or_else(|| by_matcher.map(|m| m.value.clone()))
            .ok_or_else(|| format!("a selector with no fixed metric name: {vs}"))?;
        let matched = vs
            .matchers
            .matchers
            .iter()
            .chain(vs.matchers.or_matchers.iter().flatten())
            .map(|m| m.name.clone())
            .filter(|n| n != "__name__")
            .collect();
        self.selectors.push((name, matched));
        Ok(true)
    }
}

fn analyse_expr(expr: &Expr) -> Result<Uses, String> {
    let mut uses = Uses::default();
    walk_expr(&mut uses, expr)?;
    Ok(uses)
}

/// What `promql` (after [`substitute`]) uses.
fn analyse(promql: &str) -> Result<Uses, String> {
    let expr = parser::parse(promql).map_err(|e| format!("{promql:?}: {e}"))?;
    analyse_expr(&expr)
}

/// Every metric name `promql` selects.
fn metric_names(promql: &str) -> Result<BTreeSet<String>, String> {
    analyse(promql).map(|u| u.names())
}

/// The PromQL a Prometheus variable query amounts to: `label_values(SELECTOR,
/// label)` reads as `count by (label) (SELECTOR)` (so the label is checked
/// like any grouping), `query_result(EXPR)` as `EXPR`; `None` for the forms
/// that name no metric (`label_values(label)`, `label_names()`).
fn variable_promql(query: &str) -> Result<Option<String>, String> {
    let q = query.trim();
    if let Some(args) = q
        .strip_prefix("label_values(")
        .and_then(|r| r.strip_suffix(')'))
    {
        // The label is the last argument; the selector may hold commas.
        return Ok(args
            .rsplit_once(',')
            .map(|(sel, label)| format!("count by ({}) ({})", label.trim(), sel.trim())));
    }
    if let Some(inner) = q
        .strip_prefix("query_result(")
        .and_then(|r| r.strip_suffix(')'))
    {
        return Ok(Some(inner.to_string()));
    }
    if q.starts_with("label_names(") {
        return Ok(None);
    }
    Err(format!("unknown variable query {q:?}"))
}

/// Every panel, rows' nested panels included.
fn panels(board: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for p in list.as_array().into_iter().flatten() {
            out.push(p);
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&board["panels"], &mut out);
    out
}

/// Every PromQL expression of the board with where it is (for messages),
/// Grafana variables substituted.
fn expressions(board: &Value) -> Result<Vec<(String, String)>, String> {
    let vars = &board["templating"]["list"];
    let defined: BTreeSet<String> = vars
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str().map(String::from))
        .collect();
    let mut out = Vec::new();
    for p in panels(board) {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().ok_or("a target without expr")?;
            let at = format!(
                "panel {:?} target {}",
                p["title"].as_str().unwrap_or("?"),
                t["refId"].as_str().unwrap_or("?")
            );
            out.push((at, substitute(expr, &defined)?));
        }
    }
    for a in board["annotations"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(expr) = a["expr"].as_str() {
            let at = format!("annotation {:?}", a["name"].as_str().unwrap_or("?"));
            out.push((at, substitute(expr, &defined)?));
        }
    }
    for v in vars.as_array().into_iter().flatten() {
        if v["type"] != "query" {
            continue;
        }
        let q = &v["query"];
        let text = q
            .as_str()
            .or(q["query"].as_str())
            .ok_or("a query variable without query")?;
        if let Some(expr) = variable_promql(text)? {
            let at = format!("variable {:?}", v["name"].as_str().unwrap_or("?"));
            out.push((at, substitute(&expr, &defined)?));
        }
    }
    Ok(out)
}

/// Where `name` is missing from `types` (family name to `# TYPE`), or `None`
/// when `/metrics` serves it: a counter or gauge by its name, a histogram's
/// series by `_bucket`, `_sum`, `_count` (a histogram has no series under
/// its bare name).
fn missing(name: &str, types: &BTreeMap<String, String>) -> Option<String> {
    if let Some(ty) = types.get(name) {
        return (ty == "histogram")
            .then(|| format!("{name} is a histogram: query {name}_bucket, _sum or _count"));
    }
    let family = ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| Some((*s, name.strip_suffix(s)?)))
        .and_then(|(s, base)| Some((s, base, types.get(base)?)));
    match family {
        Some((_, _, ty)) if ty == "histogram" => None,
        Some((s, _, ty)) if ty == "summary" && s != "_bucket" => None,
        Some((_, base, ty)) => Some(format!("{name}: {base} is a {ty}, not a histogram")),
        None => Some(format!("{name} is not in /metrics")),
    }
}

/// The labels the board matches or groups on that the series it reads do
/// not have. `job` and `instance` are Prometheus' own target labels.
fn unknown_labels(uses: &[(&String, Uses)], samples: &[(String, Labels, f64)]) -> Vec<String> {
    let mut by_name: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (name, labels, _) in samples {
        let set = by_name.entry(name.as_str()).or_default();
        set.extend(labels.iter().map(|(k, _)| k.as_str()));
        set.extend(["job", "instance"]);
    }
    let known = |names: &BTreeSet<String>| -> BTreeSet<&str> {
        names
            .iter()
            .flat_map(|n| by_name.get(n.as_str()).into_iter().flatten().copied())
            .collect()
    };
    let mut out = Vec::new();
    for (at, u) in uses {
        // A name `/metrics` lacks is reported by `missing`, not label by label.
        for (name, matched) in &u.selectors {
            if !by_name.contains_key(name.as_str()) {
                continue;
            }
            let have = known(&[name.clone()].into());
            for l in matched.iter().filter(|l| !have.contains(l.as_str())) {
                out.push(format!("{at}: {name} has no label {l:?}"));
            }
        }
        for (labels, names) in &u.groupings {
            let have = known(names);
            if have.is_empty() {
                continue;
            }
            for l in labels.iter().filter(|l| !have.contains(l.as_str())) {
                out.push(format!(
                    "{at}: groups by {l:?}, which none of {names:?} has"
                ));
            }
        }
    }
    out
}

#[test]
fn metric_names_come_from_the_promql_syntax_tree() {
    let names = |q: &str| {
        metric_names(q)
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .collect::<Vec<_>>()
    };
    assert_eq!(names("rate(a_total[5m])"), ["a_total"]);
    assert_eq!(
        names(
            r#"histogram_quantile(0.99, sum by (site, le) (rate(h_seconds_bucket{site=~"x|y", le!="+Inf"}[5m])))"#
        ),
        ["h_seconds_bucket"]
    );
    // Functions, aggregations, label names, keywords and strings are no names.
    assert_eq!(
        names(
            r#"(sum without (class) (rate(req_total{class="not_a_metric"}[1m] offset 5m)) / on (site) group_left max by (site) (up)) > time()"#
        ),
        ["req_total", "up"]
    );
    assert_eq!(
        names(
            r#"{__name__="by_matcher", job="x"} + max_over_time(sub[1h:5m]) - count(b) or vector(1)"#
        ),
        ["b", "by_matcher", "sub"]
    );
    assert_eq!(
        names(r#"label_replace(m, "dst", "$1", "src", "(.*)")"#),
        ["m"]
    );
    assert!(
        metric_names(r#"{__name__=~"any_.*"}"#).is_err(),
        "no fixed name"
    );
    assert!(metric_names("sum(rate(x[5m])").is_err(), "syntax error");
    // Labels: matchers per selector, and `by`/`on` with the metrics below them.
    let u = analyse(r#"sum by (a) (rate(x{b="1", c=~"2"}[5m])) / on (d) group_left topk(1, y)"#)
        .expect("parses");
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        u.selectors,
        [
            ("x".to_string(), set(&["b", "c"])),
            ("y".to_string(), set(&[]))
        ]
    );
    assert_eq!(
        u.groupings,
        [(set(&["d"]), set(&["x", "y"])), (set(&["a"]), set(&["x"]))]
    );
    let samples: Vec<(String, Labels, f64)> = vec![(
        "x".into(),
        vec![("b".into(), "v".into()), ("a".into(), "v".into())],
        1.0,
    )];
    let at = "here".to_string();
    let problems = unknown_labels(&[(&at, u)], &samples);
    assert_eq!(
        problems,
        [
            "here: x has no label \"c\"",
            "here: groups by \"d\", which none of {\"x\", \"y\"} has"
        ],
    );
}

#[test]
fn grafana_variables_are_substituted_and_must_be_defined() {
    let defined: BTreeSet<String> = ["site".to_string()].into();
    let got = substitute(
        r#"rate(a{s=~"$site", t="${site:regex}", u="[[site]]"}[$__rate_interval]) * $__range_s"#,
        &defined,
    )
    .expect("substitutes");
    assert_eq!(
        got,
        r#"rate(a{s=~"@site@", t="@site@", u="@site@"}[5m]) * 3600"#
    );
    assert!(metric_names(&got).is_ok(), "{got}");
    assert!(substitute(r#"a{s="$nope"}"#, &defined).is_err());
    // A dashboard variable outside a string is not PromQL.
    let bare = substitute("topk($site, a)", &defined).expect("substitutes");
    assert!(metric_names(&bare).is_err(), "{bare}");
    assert_eq!(
        variable_promql(r#"label_values(m{a="1", b=~"2"}, site)"#).expect("ok"),
        Some(r#"count by (site) (m{a="1", b=~"2"})"#.to_string())
    );
    assert_eq!(variable_promql("label_values(site)").expect("ok"), None);
    assert!(variable_promql("metrics(greenlight_.*)").is_err());
}

#[test]
fn the_board_uses_a_data_source_variable_and_a_clean_layout() {
    let board: Value = serde_json::from_str(BOARD).expect("the board is JSON");
    assert!(board["schemaVersion"].as_u64().is_some_and(|v| v >= 36));
    assert!(board["uid"].as_str().is_some_and(|u| !u.is_empty()));
    let ds_var = board["templating"]["list"]
        .as_array()
        .and_then(|l| l.iter().find(|v| v["type"] == "datasource"))
        .expect("a data source variable");
    assert_eq!(ds_var["query"], "prometheus");
    let ds_ref = format!("${{{}}}", ds_var["name"].as_str().expect("named"));
    // Every data source reference outside the built-in annotation goes
    // through the variable: no uid of someone's Grafana is baked in.
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
        match v {
            Value::Object(m) => {
                if let Some(ds) = m.get("datasource") {
                    out.push(ds);
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&board, &mut all);
    let prometheus: Vec<&&Value> = all.iter().filter(|d| d["type"] != "grafana").collect();
    assert!(prometheus.len() > 20);
    for d in prometheus {
        assert_eq!(d["uid"], ds_ref.as_str(), "hard-coded data source {d}");
    }
    let mut ids = BTreeSet::new();
    let mut cells: BTreeMap<(u64, u64), String> = BTreeMap::new();
    for p in panels(&board) {
        let title = p["title"].as_str().expect("titled").to_string();
        assert!(
            ids.insert(p["id"].as_u64().expect("id")),
            "id twice: {title}"
        );
        let g = &p["gridPos"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| g[k].as_u64().expect("gridPos"));
        assert!(x + w <= 24 && w > 0 && h > 0, "{title}: outside the grid");
        for cell in (x..x + w).flat_map(|cx| (y..y + h).map(move |cy| (cx, cy))) {
            if let Some(other) = cells.insert(cell, title.clone()) {
                panic!("{title} overlaps {other}");
            }
        }
        if p["type"] != "row" {
            assert!(
                p["description"].as_str().is_some_and(|d| !d.is_empty()),
                "{title}"
            );
            let refs: BTreeSet<&str> = p["targets"]
                .as_array()
                .expect("targets")
                .iter()
                .map(|t| t["refId"].as_str().expect("refId"))
                .collect();
            assert_eq!(
                refs.len(),
                p["targets"].as_array().map_or(0, Vec::len),
                "{title}"
            );
        }
    }
}

/// A greenlight that has done everything the board shows: traffic on
/// several routes, a switch, a reload, a failing health check, a failed
/// TLS handshake, a failed ACME order, and a self-signed certificate.
const YAML: &str = r#"
access_log: off
acme:
  email: ops@app.test
  directory: "https://127.0.0.1:{ACME}/dir"
listeners:
  http: {address: "127.0.0.1:{HTTP}"}
  https: {address: "127.0.0.1:{HTTPS}", tls: true}
admin: {address: "127.0.0.1:{ADMIN}"}
sites:
  shop:
    hosts: [shop.test]
    routes:
      - {path: /, upstream: app}
      - {path: /api/, upstream: app}
  secure:
    hosts: [localhost]
    tls: self_signed
    plain_http: serve
    routes: [{path: /, upstream: app}]
  auto:
    hosts: [auto.test]
    tls: acme
    routes: [{path: /, upstream: app}]
upstreams:
  app:
    active: blue
    pools:
      blue: ["127.0.0.1:{BLUE}"]
      green: ["127.0.0.1:{GREEN}"]
      spare: ["127.0.0.1:{DEAD}"]
    health: {path: /status/204, interval: 100ms, timeout: 500ms, unhealthy_after: 1}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_grafana_board_queries_is_served_by_a_running_greenlight() {
    let board: Value = serde_json::from_str(BOARD).expect("the board is JSON");
    let exprs = expressions(&board).unwrap_or_else(|e| panic!("{e}"));
    let mut used: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut uses = Vec::new();
    for (at, expr) in &exprs {
        let u = analyse(expr).unwrap_or_else(|e| panic!("{at}: {e}"));
        assert!(!u.selectors.is_empty(), "{at}: no metric in {expr:?}");
        for n in u.names() {
            used.entry(n).or_default().push(at.clone());
        }
        uses.push((at, u));
    }
    // What the board is for: if one of these leaves, say so here first.
    for n in [
        "greenlight_requests_total",
        "greenlight_request_duration_seconds_bucket",
        "greenlight_upstream_errors_total",
        "greenlight_pool_inflight",
        "greenlight_pool_websockets",
        "greenlight_pool_state",
        "greenlight_certificate_not_after_seconds",
        "greenlight_acme_orders_total",
    ] {
        assert!(used.contains_key(n), "the board no longer queries {n}");
    }

    let (blue, green) = (
        HttpUpstream::start("blue").await,
        HttpUpstream::start("green").await,
    );
    let (dead, acme) = (DeadUpstream::new(), DeadUpstream::new());
    let ports = free_ports(3);
    let addr = |p: u16| -> SocketAddr { ([127, 0, 0, 1], p).into() };
    let (http, https, admin) = (addr(ports[0]), addr(ports[1]), addr(ports[2]));
    let yaml = fill_ports(
        YAML,
        &[
            ("HTTP", ports[0]),
            ("HTTPS", ports[1]),
            ("ADMIN", ports[2]),
            ("BLUE", blue.port()),
            ("GREEN", green.port()),
            ("DEAD", dead.port()),
            ("ACME", acme.port()),
        ],
    );
    let proxy = ProxyProcess::start_ready(&yaml, &[http, https, admin])
        .await
        .expect("starts");
    for path in ["/", "/api/a", "/api/status/503"] {
        http_get(http, "shop.test", path).await.expect("answer");
    }
    // Not TLS on the TLS port: a failed handshake.
    let mut raw = H1Conn::connect(https).await.expect("connect");
    let _ = raw.get("/", "localhost").await;
    let out = admin_cli(admin, &["switch", "app", "green", "--wait"]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    proxy.write_config(&yaml).expect("rewrite");
    let out = admin_cli(admin, &["reload"]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Some families appear with their first event (a failed health check, a
    // failed ACME order, a failed handshake): poll until every name is
    // served, or the deadline, then report every one still missing.
    let deadline = deadline_in(Duration::from_secs(15));
    let problems = loop {
        let text = metrics_text(admin).await;
        let served = check_exposition(&text).unwrap_or_else(|e| panic!("/metrics: {e}\n{text}"));
        let mut problems: Vec<String> = used
            .iter()
            .filter_map(|(n, at)| {
                missing(n, &served.types).map(|why| format!("{why} (used by {})", at.join(", ")))
            })
            .collect();
        problems.extend(unknown_labels(&uses, &served.samples));
        if problems.is_empty() || Instant::now() >= deadline {
            break problems;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        problems.is_empty(),
        "the board queries what /metrics does not serve:\n{}",
        problems.join("\n")
    );
}
