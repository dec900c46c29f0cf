//! Tests of `metrics`: a strict exposition-format parser checks every render;
//! counters move, retain drops stale series, unknown hosts add no series.

use super::*;

/// One sample line: name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_value(v: &str) -> Option<f64> {
    match v {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => v.parse().ok(),
    }
}

fn parse_labels(s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    let mut rest = s;
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Some((labels, r));
        }
        let eq = rest.find('=')?;
        let name = &rest[..eq];
        if !valid_name(name) || name.starts_with("__") {
            return None;
        }
        rest = rest[eq + 1..].strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    _ => return None,
                },
                (_, '\n') => return None,
                (_, c) => value.push(c),
            }
        };
        labels.push((name.to_string(), value));
        rest = &rest[end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if !rest.starts_with('}') {
            return None;
        }
    }
}

/// A strict parser for the text exposition format: returns the families
/// (name -> type) and the samples, or the first offending line. Every sample
/// must follow its family's `# HELP` and `# TYPE`.
fn parse(text: &str) -> Result<(HashMap<String, String>, Vec<Sample>), String> {
    let mut help = HashSet::new();
    let mut types = HashMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        let bad = || format!("bad line: {line:?}");
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().ok_or_else(bad)?;
            if !valid_name(name) || !help.insert(name.to_string()) {
                return Err(bad());
            }
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').ok_or_else(bad)?;
            let known = ["counter", "gauge", "histogram", "summary", "untyped"];
            if !valid_name(name) || !known.contains(&ty) || types.contains_key(name) {
                return Err(bad());
            }
            types.insert(name.to_string(), ty.to_string());
        } else if line.starts_with('#') || line.is_empty() {
            return Err(bad());
        } else {
            let name_end = line.find(['{', ' ']).ok_or_else(bad)?;
            let name = &line[..name_end];
            let (labels, rest) = match line[name_end..].strip_prefix('{') {
                Some(r) => parse_labels(r).ok_or_else(bad)?,
                None => (Vec::new(), &line[name_end..]),
            };
            let mut parts = rest.strip_prefix(' ').ok_or_else(bad)?.split(' ');
            let value = parts.next().and_then(parse_value).ok_or_else(bad)?;
            if let Some(ts) = parts.next()
                && ts.parse::<i64>().is_err()
            {
                return Err(bad());
            }
            if !valid_name(name) || parts.next().is_some() {
                return Err(bad());
            }
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    let base = name.strip_suffix(s)?;
                    (types.get(base).map(String::as_str) == Some("histogram")).then_some(base)
                })
                .unwrap_or(name);
            if !types.contains_key(family) || !help.contains(family) {
                return Err(format!("sample before HELP/TYPE: {line:?}"));
            }
            if name.ends_with("_bucket") && !labels.iter().any(|(k, _)| k == "le") {
                return Err(bad());
            }
            samples.push((name.to_string(), labels, value));
        }
    }
    if help.len() != types.len() {
        return Err("a family lacks HELP or TYPE".into());
    }
    Ok((types, samples))
}

fn value(m: &Metrics, name: &str, want: &[(&str, &str)]) -> Option<f64> {
    let (_, samples) = parse(&m.render()).ok()?;
    samples
        .into_iter()
        .find(|(n, labels, _)| {
            n == name
                && labels.len() == want.len()
                && want
                    .iter()
                    .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|s| s.2)
}

fn series(m: &Metrics) -> usize {
    parse(&m.render()).map(|(_, s)| s.len()).unwrap_or(0)
}

fn exercise(m: &Metrics) {
    let r = m.route_handles("shop", "/", "app", "blue");
    r.record(200, Duration::from_millis(12), 300, 4000);
    r.record(0, Duration::from_secs(2), 10, 0);
    r.upstream_error(UpstreamErrorKind::Timeout);
    let _ws = r.websocket_opened();
    m.route_handles(NONE, NONE, NONE, NONE)
        .record(404, Duration::from_micros(50), 80, 9);
    let _c = m
        .listener_handles("https")
        .connection_opened(HttpProtocol::H2);
    m.pool_handles("app", "blue").set(&PoolSample {
        inflight: 3,
        websockets: 1,
        state: "draining",
        drain_started: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
        drain_deadline: None,
        last_drain: Some(Duration::from_millis(1500)),
    });
    m.switch("app", SwitchResult::Forced);
    m.set_server_up("app", "blue", "localhost:8081", true);
    m.health_check_failed("app", "blue", "localhost:8081");
    m.config_applied(7, SystemTime::now());
    m.reload(true);
    m.reload(false);
    m.set_certificate_not_after("shop", UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    m.tls_handshake_failed(TlsFailure::Protocol);
    m.acme_order("shop", false, true);
}

#[test]
fn render_is_valid_exposition_format_with_help_and_type_everywhere() {
    let m = Metrics::new().expect("metrics");
    exercise(&m);
    let text = m.render();
    let (types, samples) = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    for name in [
        "greenlight_requests_total",
        "greenlight_request_duration_seconds",
        "greenlight_upstream_errors_total",
        "greenlight_downstream_connections",
        "greenlight_pool_state",
        "greenlight_pool_last_drain_duration_seconds",
        "greenlight_server_up",
        "greenlight_config_generation",
        "greenlight_certificate_not_after_seconds",
        "greenlight_acme_orders_total",
        "process_start_time_seconds",
    ] {
        assert!(types.contains_key(name), "{name} missing\n{text}");
    }
    assert_eq!(types["greenlight_request_duration_seconds"], "histogram");
    let buckets = samples
        .iter()
        .filter(|(n, l, _)| {
            n == "greenlight_request_duration_seconds_bucket"
                && l.iter().any(|(k, v)| k == "site" && v == "shop")
        })
        .count();
    assert_eq!(buckets, DURATION_BUCKETS.len() + 1);
    for (name, _, _) in &samples {
        assert!(name.starts_with("greenlight_") || name.starts_with("process_"));
    }
}

#[test]
fn the_test_parser_is_strict() {
    let ok = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"\"} 3\n";
    assert!(parse(ok).is_ok(), "{ok}");
    for bad in [
        "a_total 1\n",
        "# HELP a_total A.\na_total 1\n",
        "# TYPE a_total counter\na_total 1\n",
        "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1} 1\n",
        "# HELP a_total A.\n# TYPE a_total counter\na_total{x=1} 1\n",
        "# HELP a_total A.\n# TYPE a_total counter\na_total one\n",
        "# HELP a_total A.\n# TYPE a_total counter\na_total 1 2 3\n",
        "# HELP a_total A.\n# TYPE a_total countr\na_total 1\n",
        "# HELP h A.\n# TYPE h histogram\nh_bucket 1\n",
    ] {
        assert!(parse(bad).is_err(), "accepted {bad:?}");
    }
}

#[test]
fn counters_and_gauges_move() {
    let m = Metrics::new().expect("metrics");
    exercise(&m);
    let req = |class| {
        value(
            &m,
            "greenlight_requests_total",
            &[
                ("site", "shop"),
                ("route", "/"),
                ("upstream", "app"),
                ("pool", "blue"),
                ("class", class),
            ],
        )
    };
    assert_eq!(req("2xx"), Some(1.0));
    assert_eq!(req("error"), Some(1.0));
    assert_eq!(req("5xx"), Some(0.0));
    let bytes = value(&m, "greenlight_bytes_sent_total", &[("site", "shop")]);
    assert_eq!(bytes, Some(4000.0));
    let pool_state = |s| {
        value(
            &m,
            "greenlight_pool_state",
            &[("upstream", "app"), ("pool", "blue"), ("state", s)],
        )
    };
    assert_eq!(pool_state("draining"), Some(1.0));
    assert_eq!(pool_state("active"), Some(0.0));
    assert_eq!(value(&m, "greenlight_config_generation", &[]), Some(7.0));
    assert_eq!(
        value(&m, "greenlight_reloads_total", &[("result", "error")]),
        Some(1.0)
    );
    // Guards from `exercise` are dropped: the gauges are back to zero.
    let ws = [("upstream", "app"), ("pool", "blue")];
    assert_eq!(value(&m, "greenlight_websockets_open", &ws), Some(0.0));
    let r = m.route_handles("shop", "/", "app", "blue");
    let guard = r.websocket_opened();
    assert_eq!(value(&m, "greenlight_websockets_open", &ws), Some(1.0));
    drop(guard);
    assert_eq!(value(&m, "greenlight_websockets_open", &ws), Some(0.0));
    // No upstream: no error or WebSocket series under "-".
    m.route_handles(NONE, NONE, NONE, NONE)
        .upstream_error(UpstreamErrorKind::Refused);
    assert!(
        !m.render()
            .contains("upstream_errors_total{kind=\"refused\",pool=\"-\"")
    );
}

#[test]
fn retain_removes_series_of_names_that_left_the_config() {
    let m = Metrics::new().expect("metrics");
    exercise(&m);
    m.route_handles("blog", "/", "cms", "green")
        .record(200, Duration::from_millis(3), 1, 1);
    m.pool_handles("cms", "green").set(&PoolSample {
        inflight: 0,
        websockets: 0,
        state: "active",
        drain_started: None,
        drain_deadline: None,
        last_drain: None,
    });
    m.set_server_up("cms", "green", "10.0.0.1:80", false);
    let before = m.render();
    assert!(before.contains("site=\"blog\""));
    let removed = m.retain_config(&ConfigNames {
        sites: &["shop"],
        routes: &[("shop", "/")],
        pools: &[("app", "blue")],
        servers: &[("app", "blue", "localhost:8081")],
        listeners: &["https"],
    });
    assert!(removed > 0);
    let after = m.render();
    parse(&after).unwrap_or_else(|e| panic!("{e}"));
    for gone in ["site=\"blog\"", "upstream=\"cms\"", "10.0.0.1:80"] {
        assert!(!after.contains(gone), "{gone} still present\n{after}");
    }
    for kept in [
        "site=\"shop\"",
        "pool=\"blue\"",
        "site=\"-\"",
        "listener=\"https\"",
    ] {
        assert!(after.contains(kept), "{kept} was removed\n{after}");
    }
    // Dropping the listener and the pool too.
    m.retain_config(&ConfigNames {
        sites: &["shop"],
        ..ConfigNames::default()
    });
    let after = m.render();
    assert!(!after.contains("listener=\"https\""));
    assert!(!after.contains("pool=\"blue\""));
    assert!(after.contains("greenlight_bytes_sent_total{site=\"shop\"}"));
}

#[test]
fn requests_and_latency_are_counted_per_route() {
    let m = Metrics::new().expect("metrics");
    let api = m.route_handles("shop", "/api/", "app", "blue");
    let img = m.route_handles("shop", "~* \\.png$", "app", "blue");
    let ping = m.route_handles("shop", "= /ping", NONE, NONE);
    for _ in 0..3 {
        api.record(200, Duration::from_millis(3), 1, 1);
    }
    api.record(502, Duration::from_millis(40), 1, 1);
    img.record(200, Duration::from_secs(2), 1, 1);
    ping.record(200, Duration::ZERO, 1, 1);
    let req = |route, upstream, pool, class| {
        value(
            &m,
            "greenlight_requests_total",
            &[
                ("site", "shop"),
                ("route", route),
                ("upstream", upstream),
                ("pool", pool),
                ("class", class),
            ],
        )
    };
    assert_eq!(req("/api/", "app", "blue", "2xx"), Some(3.0));
    assert_eq!(req("/api/", "app", "blue", "5xx"), Some(1.0));
    assert_eq!(req("~* \\.png$", "app", "blue", "2xx"), Some(1.0));
    assert_eq!(req("= /ping", NONE, NONE, "2xx"), Some(1.0));
    let count = |route, upstream| {
        value(
            &m,
            "greenlight_request_duration_seconds_count",
            &[("site", "shop"), ("route", route), ("upstream", upstream)],
        )
    };
    assert_eq!(count("/api/", "app"), Some(4.0));
    assert_eq!(count("~* \\.png$", "app"), Some(1.0));
    // The 2 s request is above the 1 s bucket, the API's are all below it.
    let le1 = |route| {
        value(
            &m,
            "greenlight_request_duration_seconds_bucket",
            &[
                ("site", "shop"),
                ("route", route),
                ("upstream", "app"),
                ("le", "1"),
            ],
        )
    };
    assert_eq!(le1("/api/"), Some(4.0));
    assert_eq!(le1("~* \\.png$"), Some(0.0));
}

#[test]
fn retain_removes_the_series_of_a_route_that_left_its_site() {
    let m = Metrics::new().expect("metrics");
    m.route_handles("shop", "/", "app", "blue")
        .record(200, Duration::ZERO, 1, 1);
    m.route_handles("shop", "/old/", "app", "blue")
        .record(200, Duration::ZERO, 1, 1);
    m.route_handles("shop", NONE, NONE, NONE)
        .record(404, Duration::ZERO, 1, 1);
    assert!(m.render().contains("route=\"/old/\""));
    m.retain_config(&ConfigNames {
        sites: &["shop"],
        // `/old/` now belongs to another site only: the pair must match.
        routes: &[("shop", "/"), ("blog", "/old/")],
        pools: &[("app", "blue")],
        ..ConfigNames::default()
    });
    let after = m.render();
    parse(&after).unwrap_or_else(|e| panic!("{e}"));
    assert!(!after.contains("route=\"/old/\""), "{after}");
    assert!(after.contains("route=\"/\""), "{after}");
    assert!(after.contains("route=\"-\""), "{after}");
}

#[test]
fn random_hosts_add_no_series() {
    let m = Metrics::new().expect("metrics");
    let known = ["shop", "blog"];
    for site in known.iter().copied().chain([NONE]) {
        m.route_handles(site, "/", "app", "blue")
            .record(200, Duration::ZERO, 0, 0);
    }
    let baseline = series(&m);
    assert!(baseline > 0);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..5_000u32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let host = format!("h{x:x}-{i}.example");
        let site = site_label(&known, &host);
        assert_eq!(site, NONE);
        m.route_handles(site, "/", "app", "blue")
            .record(404, Duration::from_millis(1), 1, 1);
    }
    assert_eq!(site_label(&known, "blog"), "blog");
    assert_eq!(series(&m), baseline);
    assert!(!m.render().contains(".example"));
}

#[test]
fn status_classes() {
    assert_eq!(STATUS_CLASSES[status_class(101)], "1xx");
    assert_eq!(STATUS_CLASSES[status_class(204)], "2xx");
    assert_eq!(STATUS_CLASSES[status_class(308)], "3xx");
    assert_eq!(STATUS_CLASSES[status_class(499)], "4xx");
    assert_eq!(STATUS_CLASSES[status_class(599)], "5xx");
    for s in [0, 99, 600, u16::MAX] {
        assert_eq!(STATUS_CLASSES[status_class(s)], "error");
    }
}
