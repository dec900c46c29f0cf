//! Golden tests for configuration diagnostics: what `greenlight check` prints
//! for files with problems, exactly, positions included.

use super::*;

fn problems(yaml: &str) -> Vec<String> {
    match load_str(Path::new("g.yaml"), yaml) {
        Ok(_) => vec![],
        Err(e) => e.diagnostics().iter().map(|d| d.to_string()).collect(),
    }
}

#[test]
fn embedded_default_and_example_are_valid() {
    ConfigSource::Embedded
        .load()
        .expect("embedded default is valid");
    let example = include_str!("../../config/example.yaml");
    let cfg = load_str(Path::new("example.yaml"), example).expect("example is valid");
    assert_eq!(cfg.listeners.len(), 2);
    assert_eq!(cfg.upstream("app").map(|u| u.active.as_str()), Some("blue"));
}

#[test]
fn every_problem_is_reported_at_once_with_its_position() {
    let yaml = "\
listeners:
  http:
    address: \"*:80\"
sites:
  main:
    hosts: [example.com, \"bad host\"]
    max_body_size: ten
    routes:
      - path: api
        upstream: ap
upstreams:
  app:
    active: blu
    pools:
      blue: [127.0.0.1:3000, nohost]
    drain_timeout: 30
";
    assert_eq!(
        problems(yaml),
        vec![
            "g.yaml:3:14: '*:80' is not a listen address — write `0.0.0.0:80` (all IPv4) or `[::]:80` (all IPv6)",
            "g.yaml:6:26: 'bad host' is not a host name or wildcard — write a name like `example.com`, `*.example.com`, `www.example.*` or `~^regex$`",
            "g.yaml:7:20: 'ten' is not a size — write bytes with an optional unit: `512`, `64k`, `10m`, `1g`; `0` = unlimited",
            "g.yaml:9:15: route path 'api' does not start with '/' — write `/api`",
            "g.yaml:10:19: unknown upstream 'ap' — did you mean 'app'? Upstreams are defined under `upstreams:`",
            "g.yaml:13:13: active pool 'blu' is not a pool of upstream 'app' — did you mean 'blue'?",
            "g.yaml:15:30: server 'nohost' has no port — write `host:port` with an IP address or a resolvable name, e.g. `127.0.0.1:3000`",
            "g.yaml:16:20: '30' is not a duration — write a number with a unit: `500ms`, `30s`, `5m`, `1h`",
        ]
    );
}

#[test]
fn an_unknown_key_names_the_key_and_the_known_ones() {
    let yaml = "listeners:\n  http:\n    adress: 127.0.0.1:80\n";
    assert_eq!(
        problems(yaml),
        vec![
            "g.yaml:3:5: unknown field `adress`, expected one of address, tls, max_connections, proxy_protocol — remove it or fix its spelling; config/example.yaml lists every key"
        ]
    );
}

#[test]
fn broken_yaml_is_one_positioned_problem_not_a_panic() {
    let p = problems("listeners: [\n");
    assert_eq!(p.len(), 1);
    assert!(p[0].starts_with("g.yaml:1:"), "{p:?}");
}

#[test]
fn cross_site_conflicts_are_reported() {
    let yaml = "\
listeners:
  http: {address: 127.0.0.1:8080}
sites:
  a:
    hosts: [x.test]
    default: true
    routes: [{path: /, upstream: u}]
  b:
    hosts: [x.test]
    default: true
    routes: [{path: /, upstream: u}, {path: /, upstream: u}]
upstreams:
  u: {active: p, pools: {p: [127.0.0.1:1]}}
";
    let p = problems(yaml);
    assert_eq!(
        p,
        vec![
            "g.yaml:9:13: host 'x.test' is listed by sites 'a' and 'b' — each host belongs to one site",
            "g.yaml:10:14: sites 'a' and 'b' are both the default site on every listener — keep one default per kind of listener: `default: true` on one site, or `https` on one and `http` on another",
            "g.yaml:11:45: route path '/' appears twice in site 'b' — keep one route per location (or split it by `methods:`): the second is never chosen",
        ]
    );
}

#[test]
fn plain_http_and_default_forms_are_checked_with_their_positions() {
    let yaml = "\
listeners:
  http: {address: 127.0.0.1:8080}
  https: {address: 127.0.0.1:8443, tls: true}
sites:
  a:
    hosts: [a.test]
    default: both
    tls: self_signed
    plain_http: {redirect: 200, to: \"https://$hots$request_uri\", code: 1}
    routes: [{path: /, upstream: u}]
  b:
    hosts: [b.test]
    tls: self_signed
    plain_http: {redirect: 301, response_headers: {set: {\"bad name\": x}}}
    routes: [{path: /, upstream: u}]
upstreams:
  u: {active: p, pools: {p: [127.0.0.1:1]}}
";
    let p = problems(yaml);
    assert_eq!(
        p,
        vec![
            "g.yaml:7:14: default 'both' is not known — use `true` (unknown hosts on every listener), `https` (TLS listeners only) or `http` (plain listeners only)",
            "g.yaml:9:28: plain_http redirect status '200' is not a redirect — use 301, 302, 303, 307 or 308",
            "g.yaml:9:46: unknown variable `$hots` in 'https://$hots$request_uri' — did you mean `$host`? Known variables: $host, $scheme, $request_uri, $uri, $document_uri, $args, $query_string, $is_args, $arg_NAME, $remote_addr, $server_port, $server_name, $http_NAME, $cookie_NAME, $request_method, $upstream_addr, $proxy_host, $1..$9, named regex captures and the names under `maps:`",
            "g.yaml:9:66: plain_http has no key 'code' — a plain_http map takes `redirect:` (the status), `to:` (the URL) and `response_headers:`",
            "g.yaml:14:70: 'bad name' is not a header name — use letters, digits and `-`, like `X-Frame-Options`",
        ]
    );
}

#[test]
fn tls_needs_a_tls_listener_and_a_public_admin_needs_a_token() {
    let yaml = "\
listeners:
  http: {address: 127.0.0.1:8080}
admin:
  address: 0.0.0.0:9090
sites:
  a:
    hosts: [x.test]
    tls: self_signed
    routes: [{path: /, upstream: u}]
upstreams:
  u: {active: p, pools: {p: [localhost:1]}}
";
    let p = problems(yaml);
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p[0].starts_with("g.yaml:4:12: the admin API on 0.0.0.0:9090 would be reachable"));
    assert!(
        p[1].starts_with("g.yaml:8:10: site 'a' has a certificate but no listener terminates TLS")
    );
}

#[test]
fn localhost_upstreams_resolve_to_ipv4() {
    let yaml = "\
listeners:
  http: {address: 127.0.0.1:8080}
sites:
  a: {hosts: [x.test], routes: [{path: /, upstream: u}]}
upstreams:
  u: {active: p, pools: {p: [localhost:8082]}}
";
    let cfg = load_str(Path::new("g.yaml"), yaml).expect("valid");
    let s = &cfg.upstreams[0].pools[0].servers[0];
    assert_eq!(s.label, "localhost:8082");
    assert_eq!(s.addr.to_string(), "127.0.0.1:8082");
}

#[test]
fn unix_socket_servers_need_an_absolute_path_but_not_an_existing_socket() {
    let yaml = |server: &str, tls: &str| {
        format!(
            "listeners:\n  http: {{address: 127.0.0.1:8080}}\nsites:\n  a: {{hosts: [x.test], routes: [{{path: /, upstream: u}}]}}\nupstreams:\n  u: {{active: p, pools: {{p: [\"{server}\"]}}{tls}}}\n"
        )
    };
    // The socket does not exist: the app may start after greenlight.
    let cfg =
        load_str(Path::new("g.yaml"), &yaml("unix:/nonexistent/app.sock", "")).expect("valid");
    let s = &cfg.upstreams[0].pools[0].servers[0];
    assert_eq!(s.addr.to_string(), "unix:/nonexistent/app.sock");
    assert_eq!(
        problems(&yaml("unix:run/app.sock", "")),
        [
            "g.yaml:6:30: server 'unix:run/app.sock' is not an absolute socket path — write `unix:` followed by the socket's absolute path, e.g. `unix:/run/app/gunicorn.sock`"
        ]
    );
    let p = problems(&yaml("unix:/run/app.sock", ", tls: true"));
    assert!(
        p.len() == 1
            && p[0].starts_with("g.yaml:6:")
            && p[0].contains("`tls: true` and a unix socket server"),
        "{p:?}"
    );
}

#[test]
fn acme_settings_are_checked_with_their_positions() {
    let base = |acme: &str, listeners: &str, host: &str| {
        format!(
            "{acme}listeners:\n{listeners}sites:\n  s:\n    hosts: [\"{host}\"]\n    tls: acme\n    routes: [{{path: /, upstream: u}}]\nupstreams:\n  u: {{active: p, pools: {{p: [\"127.0.0.1:1\"]}}}}\n"
        )
    };
    let both =
        "  http: {address: \"127.0.0.1:80\"}\n  https: {address: \"127.0.0.1:443\", tls: true}\n";
    let good = "acme:\n  email: ops@example.com\n  storage: /tmp/greenlight-acme-test\n";
    assert!(problems(&base(good, both, "a.example.com")).is_empty());
    // The e-mail may be left out: an account without contact.
    let no_email = "acme:\n  storage: /tmp/greenlight-acme-test\n";
    assert!(problems(&base(no_email, both, "a.example.com")).is_empty());

    let p = problems(&base("", both, "a.example.com"));
    assert!(p.iter().any(|l| l.contains("no `acme:` section")), "{p:?}");

    let p = problems(&base(good, both, "*.example.com"));
    assert!(
        p.iter()
            .any(|l| l.starts_with("g.yaml:9:") && l.contains("wildcard")),
        "{p:?}"
    );

    let bad = "acme:\n  email: nobody\n  directory: http://ca.test/dir\n  challenge: dns-01\n  storage: /tmp/greenlight-acme-test\n";
    let p = problems(&base(bad, both, "a.example.com"));
    assert!(
        p.iter()
            .any(|l| l.starts_with("g.yaml:2:10:") && l.contains("not an e-mail")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|l| l.starts_with("g.yaml:3:") && l.contains("https:// URL")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|l| l.starts_with("g.yaml:4:") && l.contains("not known")),
        "{p:?}"
    );

    // The challenge needs a listener of its kind.
    let tls_only = "  https: {address: \"127.0.0.1:443\", tls: true}\n";
    let p = problems(&base(good, tls_only, "a.example.com"));
    assert!(
        p.iter().any(|l| l.contains("http-01 needs a plain")),
        "{p:?}"
    );
    let alpn = "acme:\n  email: ops@example.com\n  storage: /tmp/greenlight-acme-test\n  challenge: tls-alpn-01\n";
    assert!(problems(&base(alpn, tls_only, "a.example.com")).is_empty());
    let plain_only = "  http: {address: \"127.0.0.1:80\"}\n";
    let p = problems(&base(alpn, plain_only, "a.example.com"));
    assert!(
        p.iter()
            .any(|l| l.contains("tls-alpn-01 needs a TLS listener")),
        "{p:?}"
    );
}

#[test]
fn request_buffering_is_on_by_default_set_per_site_overridden_per_route() {
    let yaml = "\
listeners:
  http: {address: 127.0.0.1:8080}
limits: {body_buffer_size: 64k}
sites:
  a:
    hosts: [a.test]
    routes: [{path: /, upstream: u}, {path: /up/, upstream: u, request_buffering: off}]
  b:
    hosts: [b.test]
    request_buffering: off
    routes: [{path: /, upstream: u}, {path: /form/, upstream: u, request_buffering: on}]
upstreams:
  u: {active: p, pools: {p: [127.0.0.1:1]}}
";
    let cfg = load_str(Path::new("g.yaml"), yaml).expect("valid");
    assert_eq!(cfg.limits.body_buffer_size, 64 * 1024);
    let on: Vec<Vec<bool>> = cfg
        .sites
        .iter()
        .map(|s| s.routes.iter().map(|r| r.request_buffering).collect())
        .collect();
    assert_eq!(on, vec![vec![true, false], vec![false, true]]);
    let bad = yaml.replace("request_buffering: off\n", "request_buffering: maybe\n");
    assert_eq!(
        problems(&bad),
        vec!["g.yaml:10:24: 'maybe' is not `on` or `off` — write `on` or `off`"]
    );
}

#[test]
fn matching_problems_name_the_value_and_the_fix() {
    let yaml = r#"
listeners:
  http: {address: 127.0.0.1:8080}
sites:
  a:
    hosts: ["www.*.com", "~^(unclosed", ".example.org", b.test]
    routes:
      - {path: "~ ^/(a|b", upstream: u}
      - {path: "~* ", upstream: u}
      - {path: "@fallback /x", upstream: u}
      - {path: "= /healthz", upstream: u}
      - {path: "=/healthz", upstream: u}
      - {path: "/static/", upstream: u}
      - {path: "^~ /static/", upstream: u}
      - {path: "= healthz", upstream: u}
  b:
    hosts: [b.test]
    routes: [{path: /, upstream: u}]
  c:
    routes: [{path: /, upstream: u}]
upstreams:
  u: {active: p, pools: {p: [127.0.0.1:1]}}
"#;
    assert_eq!(
        problems(yaml),
        vec![
            "g.yaml:6:13: 'www.*.com' has a '*' that is not a whole first or last label — a '*' stands for whole labels at the start (`*.example.com`) or the end (`www.example.*`); use a `~regex` name for anything else",
            "g.yaml:6:26: the host regex '^(unclosed' does not compile: unclosed group — fix the expression (regex crate syntax: no look-around, no back-references)",
            "g.yaml:6:41: '.example.org' is nginx's `.name` form, which greenlight does not take — list both `example.org` and `*.example.org`",
            "g.yaml:8:16: route path regex '^/(a|b' does not compile: unclosed group — fix the expression (regex crate syntax: no look-around, no back-references)",
            "g.yaml:9:16: route path has nothing after the modifier '~*' — write a path after the modifier, e.g. `= /healthz` or `~* \\.php$`",
            "g.yaml:10:16: route path: '@fallback' is not a location modifier — a named route's path is the name alone, e.g. `@app` (reached through a files route's `try_files`)",
            "g.yaml:12:16: route path '= /healthz' appears twice in site 'a' — keep one route per location (or split it by `methods:`): the second is never chosen",
            "g.yaml:14:16: route paths '/static/' and '^~ /static/' in site 'a' are the same location — keep one route per location (or split it by `methods:`): the second is never chosen",
            "g.yaml:15:16: route path 'healthz' does not start with '/' — write `= /healthz`",
            "g.yaml:17:13: host 'b.test' is listed by sites 'a' and 'b' — each host belongs to one site",
            "g.yaml:20:5: site 'c' has no hosts — list at least one host name, or make it the catch-all site with `default: true`",
        ]
    );
    let catch_all = yaml.replace("  c:\n", "  c:\n    default: true\n");
    assert_eq!(
        problems(&catch_all).len(),
        10,
        "a default site needs no hosts"
    );
    let empty = catch_all.replace("    default: true\n", "    default: true\n    hosts: []\n");
    assert_eq!(problems(&empty).len(), 10, "nor a non-empty list");
}

#[test]
fn acme_needs_names_a_certificate_can_carry() {
    let yaml = r#"
listeners:
  http: {address: 127.0.0.1:80}
  https: {address: 127.0.0.1:443, tls: true}
acme: {email: ops@example.com, storage: /tmp/greenlight-acme-test}
sites:
  a:
    hosts: [a.test, "www.a.*", "~^x"]
    tls: acme
    routes: [{path: /, upstream: u}]
  b:
    default: true
    tls: acme
    routes: [{path: /, upstream: u}]
upstreams:
  u: {active: p, pools: {p: [127.0.0.1:1]}}
"#;
    assert_eq!(
        problems(yaml),
        vec![
            "g.yaml:8:21: 'www.a.*' is a routing pattern: no certificate can name it — list the exact host names the certificate should carry (the pattern may stay in a site without `tls: acme`)",
            "g.yaml:8:32: '~^x' is a routing pattern: no certificate can name it — list the exact host names the certificate should carry (the pattern may stay in a site without `tls: acme`)",
            "g.yaml:13:10: site 'b' uses `tls: acme` but has no host name to order a certificate for — list the site's host names under `hosts:`",
        ]
    );
}

#[test]
fn bad_client_ip_keys_are_reported_at_their_position_with_the_fix() {
    let yaml = "\
trusted_proxies: [10.0.0.0/8, 10.0.0.1/8, \"2400:cb00::/33x\"]
client_ip_from: \"x forwarded\"
listeners:
  http: {address: 127.0.0.1:80, proxy_protocol: true}
sites:
  main:
    hosts: [example.com]
    trusted_proxies: [fd00::/8, nonsense]
    client_ip_from: proxy_protocol
    routes: [{path: /, upstream: app}]
upstreams:
  app: {active: blue, pools: {blue: [127.0.0.1:3000]}}
";
    assert_eq!(
        problems(yaml),
        vec![
            "g.yaml:1:31: '10.0.0.1/8' has bits set past its /8 prefix — write `10.0.0.0/8` for the whole network, or `10.0.0.1/32` for the one address",
            "g.yaml:1:43: '2400:cb00::/33x' is not an IP address or network — write an IP address (`10.0.0.1`) or a network (`10.0.0.0/8`, `2400:cb00::/32`)",
            "g.yaml:2:17: 'x forwarded' is not a header name — write a header name: `x-forwarded-for` (the default), `x-real-ip`, `cf-connecting-ip`, or the one your load balancer sets",
            "g.yaml:8:33: 'nonsense' is not an IP address or network — write an IP address (`10.0.0.1`) or a network (`10.0.0.0/8`, `2400:cb00::/32`)",
            "g.yaml:9:21: the client IP from the PROXY protocol is not a header — set `proxy_protocol: true` on the listener: its source address is then the connection's peer",
        ]
    );
}

#[test]
fn client_ip_keys_compile_into_rules_and_sites_inherit_what_they_do_not_set() {
    let yaml = "\
trusted_proxies: [10.0.0.0/8]
listeners:
  http: {address: 127.0.0.1:80, proxy_protocol: true}
sites:
  main:
    hosts: [example.com]
    routes: [{path: /, upstream: app}]
  cf:
    hosts: [cf.example.com]
    client_ip_from: CF-Connecting-IP
    routes: [{path: /, upstream: app}]
upstreams:
  app: {active: blue, pools: {blue: [127.0.0.1:3000]}}
";
    let cfg = load_str(Path::new("g.yaml"), yaml).expect("valid");
    assert!(cfg.listeners[0].proxy_protocol);
    assert_eq!(cfg.client_ip.header(), "x-forwarded-for");
    assert!(cfg.client_ip.is_trusted("10.1.2.3".parse().unwrap()));
    assert!(cfg.sites[0].client_ip.is_none(), "inherits the top level");
    let cf = cfg.sites[1].client_ip.as_ref().expect("its own rule");
    assert_eq!(cf.header(), "cf-connecting-ip");
    assert!(
        cf.is_trusted("10.1.2.3".parse().unwrap()),
        "trusted_proxies inherited"
    );
}

#[test]
fn maps_and_checks_are_checked_with_their_positions() {
    let yaml = "\
listeners:
  http: {address: 127.0.0.1:8080}
maps:
  host: {source: $uri}
  cc:
    source: $ur
    values: {\"~^/(\": x, \"*.a.test\": y, \"/\": \"$cc\"}
sites:
  a:
    hosts: [a.test]
    routes:
      - path: /
        upstream: u
        checks:
          - {if: \"-f $uri\", respond: {status: 404}}
          - {if: \"$uri == /x\", respond: {status: 404}}
          - {if: \"$http_a ~ (\", respond: {status: 404}}
          - {if: \"$cc\"}
          - {if: \"$cc = 1\", redirect: {to: /x, status: 200}}
upstreams:
  u: {active: p, pools: {p: [127.0.0.1:1]}}
";
    let p = problems(yaml);
    assert_eq!(
        p,
        vec![
            "g.yaml:4:9: map name 'host' is a variable greenlight already has (`$host`) — choose another name for the map's variable",
            "g.yaml:6:13: unknown variable `$ur` in '$ur' — did you mean `$uri`? Known variables: $host, $scheme, $request_uri, $uri, $document_uri, $args, $query_string, $is_args, $arg_NAME, $remote_addr, $server_port, $server_name, $http_NAME, $cookie_NAME, $request_method, $upstream_addr, $proxy_host, $1..$9, named regex captures and the names under `maps:`",
            "g.yaml:7:22: map key '~^/(' of 'cc' is not a valid regex: error: unclosed group — fix the pattern (Rust regex syntax, close to PCRE without look-around)",
            "g.yaml:7:37: map key '*.a.test' of 'cc' is a host wildcard — write it as a regex key, e.g. `~^(.+\\.)?example\\.com$`",
            "g.yaml:7:45: '$cc' in map 'cc' reads another map — a map's source and values may use any variable but another map's; choose from the source of that map instead",
            "g.yaml:15:19: file tests (`-f`, `-d`, `-e`, `-x`) are not supported: a condition never looks at the disk (a `files:` route with `try_files` does) in condition '-f $uri' — write it as nginx does: `$var`, `$var = text`, `$var != text`, `$var ~ regex` (or `~*`, `!~`, `!~*`)",
            "g.yaml:16:24: unknown operator: use `=`, `!=`, `~`, `~*`, `!~` or `!~*` in condition '$uri == /x' — write it as nginx does: `$var`, `$var = text`, `$var != text`, `$var ~ regex` (or `~*`, `!~`, `!~*`)",
            "g.yaml:17:29: not a valid regex: error: unclosed group in condition '$http_a ~ (' — write it as nginx does: `$var`, `$var = text`, `$var != text`, `$var ~ regex` (or `~*`, `!~`, `!~*`)",
            "g.yaml:18:13: check '$cc' needs exactly one of `redirect` and `respond` — give it `redirect: {to: URL}` or `respond: {status: 403}`",
            "g.yaml:19:56: '200' is not a status allowed here — use 301, 302, 303, 307 or 308",
        ]
    );
}

#[test]
fn max_body_size_per_route_overrides_the_site_and_zero_is_unlimited() {
    let yaml = "\
listeners:
  http: {address: 127.0.0.1:8080}
sites:
  a:
    hosts: [a.test]
    max_body_size: 2m
    routes: [{path: /, upstream: u}, {path: /up/, upstream: u, max_body_size: 700m}, {path: /any/, upstream: u, max_body_size: 0}]
  b:
    hosts: [b.test]
    routes: [{path: /, upstream: u}]
upstreams:
  u: {active: p, pools: {p: [127.0.0.1:1]}}
";
    let cfg = load_str(Path::new("g.yaml"), yaml).expect("valid");
    let limits: Vec<Vec<Option<u64>>> = cfg
        .sites
        .iter()
        .map(|s| s.routes.iter().map(|r| r.max_body_size).collect())
        .collect();
    let m = 1024 * 1024;
    assert_eq!(
        limits,
        vec![vec![Some(2 * m), Some(700 * m), None], vec![Some(10 * m)]]
    );
    let bad = yaml.replace("max_body_size: 700m", "max_body_size: lots");
    assert_eq!(
        problems(&bad),
        vec![
            "g.yaml:7:79: 'lots' is not a size — write bytes with an optional unit: `512`, `64k`, `10m`, `1g`; `0` = unlimited"
        ]
    );
}

#[test]
fn servers_may_be_written_as_urls_and_env_references_are_expanded() {
    let y = |servers: &str, tls: &str| {
        format!(
            "listeners:\n  http: {{address: \"127.0.0.1:80\"}}\nsites:\n  s:\n    hosts: [a.example]\n    routes: [{{path: /, upstream: u}}]\nupstreams:\n  u: {{active: p, {tls}pools: {{p: [{servers}]}}}}\n"
        )
    };
    let labels = |yaml: &str| -> Vec<String> {
        let c = load_str(Path::new("g.yaml"), yaml).expect("valid");
        c.upstreams[0].pools[0]
            .servers
            .iter()
            .map(|s| s.label.clone())
            .collect()
    };
    assert_eq!(
        labels(&y("\"http://127.0.0.1:3000/\", \"http://localhost\"", "")),
        ["127.0.0.1:3000", "localhost:80"]
    );
    assert_eq!(
        labels(&y("\"https://localhost\"", "tls: true, ")),
        ["localhost:443"]
    );
    let p = problems(&y("\"https://127.0.0.1:8443\"", ""));
    assert!(
        p.iter()
            .any(|l| l.starts_with("g.yaml:8:") && l.contains("says https")),
        "{p:?}"
    );
    let p = problems(&y("\"http://127.0.0.1:3000/api\"", ""));
    assert!(p.iter().any(|l| l.contains("has a path")), "{p:?}");

    // `{$NAME}` comes from the environment; an unset one is an error at
    // its own column, and later columns on the line are the file's.
    let with_env = y("\"{$GREENLIGHT_TEST_UNSET_APP}\", \"127.0.0.1:x\"", "");
    let p = problems(&with_env);
    assert!(
        p.iter()
            .any(|l| l.starts_with("g.yaml:8:31:")
                && l.contains("GREENLIGHT_TEST_UNSET_APP is not set")),
        "{p:?}"
    );
    let defaulted = with_env.replace("APP}", "APP:http://127.0.0.1:3000}");
    let p = problems(&defaulted);
    let col = defaulted
        .lines()
        .nth(7)
        .unwrap()
        .find("\"127.0.0.1:x")
        .unwrap()
        + 1;
    assert!(
        p.iter()
            .any(|l| l.starts_with(&format!("g.yaml:8:{col}:")) && l.contains("valid port")),
        "{col} {p:?}"
    );
}

#[test]
fn acme_names_may_be_listed_for_a_catch_all_site() {
    let y = |tls: &str| {
        format!(
            "acme: {{storage: /tmp/greenlight-acme-test}}\nlisteners:\n  http: {{address: \"127.0.0.1:80\"}}\n  https: {{address: \"127.0.0.1:443\", tls: true}}\nsites:\n  s:\n    default: true\n    tls: {tls}\n    routes: [{{path: /, upstream: u}}]\nupstreams:\n  u: {{active: p, pools: {{p: [\"127.0.0.1:1\"]}}}}\n"
        )
    };
    let c = load_str(
        Path::new("g.yaml"),
        &y("{acme: [A.example.com, www.a.example.com.]}"),
    )
    .expect("valid");
    assert_eq!(
        c.sites[0].acme_names,
        ["a.example.com", "www.a.example.com"]
    );
    // `tls: acme` on a site without hosts has nothing to order.
    let p = problems(&y("acme"));
    assert!(
        p.iter().any(|l| l.contains("no host name to order")),
        "{p:?}"
    );
    let p = problems(&y("{acme: []}"));
    assert!(
        p.iter().any(|l| l.contains("no host name to order")),
        "{p:?}"
    );
    let p = problems(&y("{acme: [\"*.a.example.com\"]}"));
    assert!(
        p.iter()
            .any(|l| l.starts_with("g.yaml:8:") && l.contains("wildcard")),
        "{p:?}"
    );
    let p = problems(&y("{acme: [a.example.com], cert: c.pem, key: k.pem}"));
    assert!(
        p.iter().any(|l| l.contains("both `acme` and `cert`")),
        "{p:?}"
    );
}
