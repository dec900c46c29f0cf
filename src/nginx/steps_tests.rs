//! One test per mapping of issue #13's importer table, through the public
//! API only (configs written for these tests): what each nginx directive
//! becomes in the YAML, and which messages are notes rather than warnings.

use super::{ImportOptions, import_str};

/// The YAML, the warnings (not notes) and the notes.
fn run(text: &str) -> (String, Vec<String>, Vec<String>) {
    let out = import_str("t.conf", text, &ImportOptions::default()).expect("imports");
    let (notes, warnings): (Vec<_>, Vec<_>) = out.warnings.iter().partition(|w| w.is_note());
    (
        out.yaml,
        warnings.iter().map(ToString::to_string).collect(),
        notes.iter().map(ToString::to_string).collect(),
    )
}

fn server(body: &str) -> String {
    format!("server {{ listen 80; server_name a.test;\n{body}\n}}\n")
}

#[test]
fn location_modifiers_go_into_path() {
    let (y, w, _) = run(&server(
        "location = /x { proxy_pass http://127.0.0.1:1; }\n\
         location ^~ /s/ { proxy_pass http://127.0.0.1:1; }\n\
         location ~ ^/r/(\\d+)$ { proxy_pass http://127.0.0.1:1; }\n\
         location ~* \\.png$ { proxy_pass http://127.0.0.1:1; }",
    ));
    for p in [
        "\"= /x\"",
        "\"^~ /s/\"",
        "\"~ ^/r/(\\\\d+)$\"",
        "\"~* \\\\.png$\"",
    ] {
        assert!(y.contains(&format!("- path: {p}")), "{p}: {y}");
    }
    assert!(w.is_empty(), "{w:#?}");
}

#[test]
fn return_becomes_redirect_or_respond() {
    let (y, w, n) = run(&server(
        "location = /health { default_type text/plain; return 200 'ok'; }\n\
         location = /old { return 301 https://$host/new$is_args$args; }\n\
         location /gone { return 410; }\n\
         location /drop { return 444; }\n\
         location = /j { add_header Content-Type application/json; return 200 '{\"m\":1}'; }",
    ));
    assert!(
        y.contains("respond: {status: 200, body: \"ok\", content_type: \"text/plain\"}"),
        "{y}"
    );
    assert!(
        y.contains("redirect: {to: \"https://$host/new$is_args$args\", status: 301}"),
        "{y}"
    );
    assert!(y.contains("respond: {status: 410}"), "{y}");
    assert!(y.contains("respond: {status: 404}"), "{y}");
    assert!(
        y.contains("body: \"{\\\"m\\\":1}\", content_type: \"application/json\""),
        "{y}"
    );
    assert!(w.is_empty(), "{w:#?}");
    assert!(n.iter().any(|n| n.contains("'return 444'")), "{n:#?}");
}

#[test]
fn proxy_pass_uri_replaces_the_prefix() {
    let (y, w, _) = run(&server(
        "location /api/ { proxy_pass http://127.0.0.1:1/v1/; }\n\
         location = /e { proxy_pass http://127.0.0.1:1/landing; }\n\
         location /raw/ { proxy_pass http://127.0.0.1:1/pre$request_uri; }",
    ));
    assert!(y.contains("upstream_path: \"/v1/\""), "{y}");
    assert!(
        y.contains("- {from: \"^/e$\", to: \"/landing\", flag: break}"),
        "exact routes rewrite the whole path: {y}"
    );
    assert!(
        y.contains("- {from: \"^(.*)$\", to: \"/pre$1\", flag: break}"),
        "{y}"
    );
    assert!(w.is_empty(), "{w:#?}");
}

#[test]
fn rewrite_flags() {
    let (y, w, _) = run(&server(
        "location / {\n\
           rewrite ^/a/(.*)$ /b/$1 last;\n\
           rewrite ^/c$ /d break;\n\
           rewrite ^/e$ /f redirect;\n\
           rewrite ^/g$ /h permanent;\n\
           rewrite ^/i$ https://other.test/;\n\
           proxy_pass http://127.0.0.1:1; }",
    ));
    for (from, to, flag) in [
        ("^/a/(.*)$", "/b/$1", "last"),
        ("^/c$", "/d", "break"),
        ("^/e$", "/f", "redirect"),
        ("^/g$", "/h", "permanent"),
        ("^/i$", "https://other.test/", "redirect"),
    ] {
        let want = format!("- {{from: \"{from}\", to: \"{to}\", flag: {flag}}}");
        assert!(y.contains(&want), "{want}: {y}");
    }
    assert!(w.is_empty(), "{w:#?}");
}

#[test]
fn add_header_follows_nginx_inheritance() {
    let (y, w, n) = run(&server(
        "add_header Strict-Transport-Security \"max-age=1\" always;\n\
         location / { proxy_pass http://127.0.0.1:1; }\n\
         location /own/ { add_header X-Own yes; proxy_pass http://127.0.0.1:1; }",
    ));
    assert!(
        y.contains("Strict-Transport-Security: {value: \"max-age=1\", always: true}"),
        "{y}"
    );
    let own = y.split("- path: /own/").nth(1).unwrap_or("");
    assert!(own.contains("X-Own: \"yes\""), "{y}");
    assert!(
        !own.contains("Strict-Transport-Security"),
        "nginx dropped it in /own/: {y}"
    );
    assert!(
        n.iter()
            .any(|n| n.contains("dropped the outer add_header Strict-Transport-Security")),
        "{n:#?}"
    );
    assert!(w.is_empty(), "{w:#?}");
}

#[test]
fn proxy_set_header_and_hide_header_are_steps() {
    let (y, w, n) = run(&server(
        "location / { proxy_pass http://127.0.0.1:1;\n\
           proxy_set_header X-Real-IP $remote_addr;\n\
           proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
           proxy_set_header Accept-Encoding \"\";\n\
           proxy_hide_header X-Powered-By; }",
    ));
    assert!(y.contains("X-Real-IP: \"$remote_addr\""), "{y}");
    assert!(
        y.contains("Host: \"127.0.0.1:1\""),
        "without Host nginx sends $proxy_host: {y}"
    );
    assert!(y.contains("remove: [Accept-Encoding]"), "{y}");
    assert!(y.contains("remove: [X-Powered-By]"), "{y}");
    assert!(w.is_empty(), "{w:#?}");
    assert!(
        n.iter()
            .any(|n| n.contains("X-Forwarded-For") && n.contains("built in")),
        "{n:#?}"
    );
    assert!(n.iter().all(|n| !n.contains("X-Real-IP")), "{n:#?}");
}

#[test]
fn an_unknown_variable_is_a_warning_that_names_it() {
    let (y, w, _) = run(&server(
        "location / { proxy_pass http://127.0.0.1:1; proxy_set_header X-Dn $geoip_country_code; }",
    ));
    assert!(!y.contains("X-Dn"), "{y}");
    assert!(
        w.iter()
            .any(|w| w.contains("'$geoip_country_code', which greenlight does not know")),
        "{w:#?}"
    );
}

#[test]
fn set_variables_are_resolved() {
    let (y, w, _) = run(&server(
        "set $app http://10.0.0.7:3000;\nlocation / { proxy_pass $app; }",
    ));
    assert!(y.contains("main: [10.0.0.7:3000]"), "{y}");
    assert!(w.is_empty(), "{w:#?}");
}

#[test]
fn real_ip_and_proxy_protocol() {
    let (y, w, _) = run(
        "http { set_real_ip_from 10.0.0.0/8; real_ip_header X-Forwarded-For;\n\
         server { listen 80 proxy_protocol; server_name a.test;\n\
         location / { proxy_pass http://127.0.0.1:1; } } }",
    );
    assert!(y.contains("trusted_proxies: [\"10.0.0.0/8\"]"), "{y}");
    assert!(
        !y.contains("client_ip_from"),
        "x-forwarded-for is greenlight's default: {y}"
    );
    assert!(y.contains("proxy_protocol: true"), "{y}");
    assert!(w.is_empty(), "{w:#?}");
    let (y, _, _) = run(&server(
        "set_real_ip_from 192.0.2.1; location / { proxy_pass http://127.0.0.1:1; }",
    ));
    assert!(
        y.contains("client_ip_from: x-real-ip"),
        "nginx's default header: {y}"
    );
}

#[test]
fn https_upstreams() {
    let (y, w, _) = run(&server(
        "location / { proxy_pass https://api.example.net; proxy_ssl_name api.internal;\n\
           proxy_ssl_trusted_certificate /etc/ca.pem; }\n\
         location /b/ { proxy_pass https://10.0.0.9:8443; proxy_ssl_verify off; }",
    ));
    assert!(
        y.contains("main: [api.example.net:443]\n    tls: true"),
        "{y}"
    );
    assert!(y.contains("sni: api.internal"), "{y}");
    assert!(y.contains("ca: /etc/ca.pem"), "{y}");
    assert!(y.contains("verify: false"), "{y}");
    assert!(w.is_empty(), "{w:#?}");
}

#[test]
fn balancing() {
    let (y, w, _) = run(
        "upstream u { least_conn; server 10.0.0.1:80 weight=3; server 10.0.0.2:80 backup; }\n\
         upstream h { hash $request_uri consistent; server 10.0.0.3:80; server 10.0.0.4:80; }\n\
         upstream i { ip_hash; server 10.0.0.5:80; server 10.0.0.6:80; }\n\
         server { listen 80; server_name a.test; location / { proxy_pass http://u; }\n\
         location /h/ { proxy_pass http://h; } location /i/ { proxy_pass http://i; } }",
    );
    assert!(y.contains("- {address: 10.0.0.1:80, weight: 3}"), "{y}");
    assert!(y.contains("- {address: 10.0.0.2:80, backup: true}"), "{y}");
    assert!(y.contains("balance: least_conn"), "{y}");
    assert!(y.contains("balance: {hash: \"$request_uri\"}"), "{y}");
    assert!(y.contains("balance: ip_hash"), "{y}");
    assert!(w.is_empty(), "{w:#?}");
}

#[test]
fn benign_directives_are_notes() {
    let (_, w, n) = run(
        "http { server_tokens off; access_log /var/log/nginx/a.log; error_log /var/log/nginx/e.log;\n\
         proxy_buffers 8 16k; client_body_buffer_size 128k;\n\
         server { listen 80; server_name a.test; location / { proxy_pass http://127.0.0.1:1;\n\
           proxy_buffering off; proxy_http_version 1.1; proxy_buffer_size 8k;\n\
           proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $connection_upgrade; } }\n\
         map $http_upgrade $connection_upgrade { default upgrade; '' close; } }",
    );
    assert!(w.is_empty(), "{w:#?}");
    for d in [
        "server_tokens",
        "access_log",
        "error_log",
        "proxy_buffers",
        "client_body_buffer_size",
        "proxy_buffering",
        "proxy_http_version",
        "proxy_buffer_size",
        "map $http_upgrade",
    ] {
        assert!(
            n.iter().any(|n| n.contains(&format!("'{d}"))),
            "{d}: {n:#?}"
        );
    }
}

/// A WebSocket location that sets `Upgrade "websocket"` by hand: greenlight
/// manages that header, so the output must not carry it (check refuses it).
#[test]
fn a_fixed_upgrade_header_is_built_in_not_a_request_header_rule() {
    let (y, w, n) = run(
        "server { listen 80; server_name a.test; location /ws { proxy_pass http://127.0.0.1:1;\n\
           proxy_set_header Upgrade \"websocket\"; proxy_set_header Connection \"Upgrade\"; } }",
    );
    assert!(w.is_empty(), "{w:#?}");
    assert!(!y.contains("Upgrade:"), "{y}");
    assert!(
        n.iter().any(|n| n.contains("'proxy_set_header Upgrade")),
        "{n:#?}"
    );
    crate::config::load_str(std::path::Path::new("t.yaml"), &y).expect("check accepts it");
}

#[test]
fn access_log_off_at_http_level_turns_the_log_off() {
    let (y, _, _) = run(
        "http { access_log off; server { listen 80; server_name a.test; location / { proxy_pass http://127.0.0.1:1; } } }",
    );
    assert!(y.contains("access_log: \"off\""), "{y}");
}

#[test]
fn server_name_forms_and_a_catch_all_without_hosts() {
    let (y, w, _) = run(
        "server { listen 80 default_server; server_name _; location / { proxy_pass http://127.0.0.1:1; } }\n\
         server { listen 80; server_name gitlab.* *.b.test ~^(?<x>.+)\\.c\\.test$;\n\
           location / { proxy_pass http://127.0.0.1:2; } }",
    );
    assert!(!y.contains("hosts: []"), "{y}");
    assert!(y.contains("default: true"), "{y}");
    assert!(
        y.contains("hosts: [\"gitlab.*\", \"*.b.test\", \"~^(?<x>.+)\\\\.c\\\\.test$\"]"),
        "{y}"
    );
    assert!(w.is_empty(), "{w:#?}");
}

#[test]
fn maps_and_if_returns_become_maps_and_checks() {
    let (y, w, _) = run(
        "http { map $cookie_v $pool { default a; ~^b(?<n>\\d)$ b$n; c \"\"; }\n\
         server { listen 80; server_name a.test;\n\
         if ($request_method = POST) { return 405; }\n\
         location / { if ($pool != a) { return 302 /other/$pool; } proxy_pass http://127.0.0.1:1; } } }",
    );
    assert!(w.is_empty(), "{w:#?}");
    for want in [
        "maps:\n  pool:  # from t.conf:1\n    source: \"$cookie_v\"\n    default: \"a\"\n    values:\n      \"~^b(?<n>\\\\d)$\": \"b$n\"\n      \"c\": \"\"\n",
        "    checks:\n      - if: \"$request_method = POST\"  # from the if at t.conf:3\n        respond: {status: 405}\n",
        "        checks:\n          - if: \"$pool != a\"  # from the if at t.conf:4\n            redirect: {to: \"/other/$pool\", status: 302}\n",
    ] {
        assert!(y.contains(want), "{want}\n---\n{y}");
    }
}

#[test]
fn ifs_greenlight_cannot_run_are_warnings_that_say_what_is_lost() {
    let (_, w, _) = run(
        "http { map $cookie_v $pool { hostnames; default a; } server { listen 80; server_name a.test;\n\
         location / { if ($args ~ (a)) { set $args b; rewrite ^ /x; }\n\
         if ($http_user_agent ~ \"^x(?!y)(\") { return 404; }\n\
         if (-f $request_filename) { return 404; }\n\
         proxy_pass http://127.0.0.1:1; } } }",
    );
    let has = |a: &str, b: &str| w.iter().any(|w| w.contains(a) && w.contains(b));
    assert!(has("map $cookie_v $pool", "hostnames"), "{w:#?}");
    assert!(
        has("if ($args ~ (a))", "2 directive(s) inside it"),
        "{w:#?}"
    );
    assert!(has("^x(?!y)(", "not a valid regex"), "{w:#?}");
    assert!(has("-f $request_filename", "file tests"), "{w:#?}");
}

#[test]
fn common_if_shapes_convert() {
    let (y, w, _) = run(
        "server { listen 80; server_name a.test; rewrite ^ https://$host$request_uri? permanent; }\n\
         server { listen 80; server_name b.test;\n\
           if ($host ~ ^[a-z]+\\.b\\.test$) { return 301 https://$host$request_uri; } }\n\
         server { listen 443 ssl; server_name a.test b.test; ssl_certificate /c.pem; ssl_certificate_key /k.pem;\n\
           location / { if ($request_uri ~ ^/(.*)\\.html) { return 302 /$1; }\n\
             proxy_pass http://127.0.0.1:1; } }",
    );
    assert!(
        y.contains("plain_http: redirect 301  # from t.conf:1 (return 301)"),
        "{y}"
    );
    assert!(
        y.contains("- {from: \"^/(.*)\\\\.html\", to: \"/$1?\", flag: redirect}"),
        "{y}"
    );
    assert!(w.is_empty(), "{w:#?}");
}

#[test]
fn a_plain_redirect_for_hosts_without_a_tls_site_is_its_own_site() {
    let (y, w, _) = run(
        "server { listen 80; server_name a.test b.test; return 301 https://$host$request_uri; }\n\
         server { listen 443 ssl; server_name a.test; ssl_certificate /c.pem; ssl_certificate_key /k.pem;\n\
           location / { proxy_pass http://127.0.0.1:1; } }",
    );
    assert!(y.contains("plain_http: redirect"), "a.test: {y}");
    assert!(
        y.contains("  b-test:  # from t.conf:1\n    hosts: [b.test]"),
        "b.test: {y}"
    );
    assert!(
        y.contains("redirect: {to: \"https://$host$request_uri\", status: 301}"),
        "{y}"
    );
    assert!(w.is_empty(), "{w:#?}");
}

#[test]
fn a_fragment_of_locations_becomes_one_catch_all_site() {
    let (y, w, n) = run("location /api/ { proxy_pass http://127.0.0.1:1/; }\n");
    assert!(y.contains("default: true"), "{y}");
    assert!(y.contains("upstream_path: \"/\""), "{y}");
    assert!(w.is_empty(), "{w:#?}");
    assert!(n.iter().any(|n| n.contains("no server block")), "{n:#?}");
}

#[test]
fn a_duplicate_name_on_the_same_sockets_is_what_nginx_ignores_too() {
    let (y, w, n) = run(
        "server { listen 80; server_name a.test; location / { proxy_pass http://127.0.0.1:1; } }\n\
         server { listen 80; server_name a.test; location / { proxy_pass http://127.0.0.1:2; } }",
    );
    assert!(!y.contains("127.0.0.1:2"), "{y}");
    assert!(w.is_empty(), "{w:#?}");
    assert!(
        n.iter().any(|n| n.contains("conflicting server name")),
        "{n:#?}"
    );
}

#[test]
fn a_check_of_a_server_that_became_plain_http_is_reported() {
    let (y, w, _) = run("server { listen 80; server_name a.test;\n\
         if ($http_x_legacy) { return 301 https://legacy.test$request_uri; }\n\
         return 301 https://$host$request_uri; }\n\
         server { listen 443 ssl; server_name a.test; location / { proxy_pass http://127.0.0.1:1; } }");
    assert!(y.contains("plain_http: redirect 301"), "{y}");
    assert!(!y.contains("checks:"), "{y}");
    assert!(
        w.iter()
            .any(|w| w.contains("if ($http_x_legacy)") && w.contains("plain_http redirect")),
        "{w:#?}"
    );
}

#[test]
fn locations_that_serve_files_become_files_routes() {
    let (y, w, _) = run(&server(
        "root /srv/site; index index.htm;\n\
         location / { try_files $uri $uri/ /index.htm; }\n\
         location /static/ { alias /srv/static/; }\n\
         location ~ \\.png$ { try_files $uri =404; }\n\
         location /api/ { proxy_pass http://127.0.0.1:1; }",
    ));
    assert!(w.is_empty(), "{w:#?}");
    for want in [
        "files: {root: \"/srv/site\", index: [\"index.htm\"], try_files: [\"$uri\", \"$uri/\", \"/index.htm\"]}",
        "files: {alias: \"/srv/static/\", index: [\"index.htm\"]}",
        "files: {root: \"/srv/site\", index: [\"index.htm\"], try_files: [\"$uri\", \"=404\"]}",
    ] {
        assert!(y.contains(want), "{want}\n---\n{y}");
    }
}

#[test]
fn named_fallbacks_convert_and_what_greenlight_cannot_serve_stays_a_warning() {
    let (y, w, _) = run(&server(
        "root /srv/site;\n\
         location /app/ { try_files $uri @backend; }\n\
         location @backend { proxy_pass http://127.0.0.1:1; }\n\
         location ~ ^/u/(.+)$ { alias /srv/u/$1; }\n\
         location ~ ^/h/(.+)$ { alias /srv/$host/$1; }\n\
         location /api/ { proxy_pass http://127.0.0.1:1; }",
    ));
    let has = |a: &str| w.iter().any(|w| w.contains(a));
    assert!(
        has("in a regex location is not converted: it reads $host"),
        "{w:#?}"
    );
    assert!(!has("alias /srv/u/$1"), "captures convert: {w:#?}");
    assert!(y.contains("files: {alias: \"/srv/u/$1\"}"), "{y}");
    assert!(!has("@backend"), "the named location converts: {w:#?}");
    for want in [
        "files: {root: \"/srv/site\", try_files: [\"$uri\", \"@backend\"]}",
        "- path: \"@backend\"",
    ] {
        assert!(y.contains(want), "{want}\n---\n{y}");
    }
    // A fallback to a named location that does not convert drops the files.
    let (y, w, _) = run(&server(
        "root /srv/site;\n\
         location /app/ { try_files $uri @php; }\n\
         location @php { memcached_pass 127.0.0.1:11211; }\n\
         location /api/ { proxy_pass http://127.0.0.1:1; }",
    ));
    assert!(!y.contains("try_files"), "{y}");
    assert!(
        w.iter()
            .any(|w| w.contains("falls back to the named location @php")),
        "{w:#?}"
    );
    // A server that runs PHP: its root is never served as files.
    let (y, w, _) = run(&server(
        "root /srv/php; location / { try_files $uri /index.php?$args; }\n\
         location ~ \\.php$ { fastcgi_pass unix:/run/php.sock; }\n\
         location /api/ { proxy_pass http://127.0.0.1:1; }",
    ));
    assert!(!y.contains("files:"), "{y}");
    assert!(
        w.iter()
            .any(|w| w.contains("script sources are never sent")),
        "{w:#?}"
    );
}

#[test]
fn a_plain_default_server_leaves_the_tls_port_to_its_first_block() {
    let (y, _, _) = run(
        "server { listen 80 default_server; server_name _; root /srv; location / { try_files $uri =404; } }\n\
         server { listen 443 ssl; server_name b.test; location / { proxy_pass http://127.0.0.1:1; } }",
    );
    assert!(
        y.contains("    default: http  # listen 80 default_server"),
        "{y}"
    );
    assert!(
        y.contains("    default: https  # the first TLS server block"),
        "{y}"
    );
}

#[test]
fn a_host_regex_greenlight_cannot_compile_is_left_out_with_a_warning() {
    let (y, w, _) = run(
        "server { listen 80; server_name ok.test ~^(www\\.bad ~.${HOST} ~^(www\\.)?good\\.test$;\n\
         location / { proxy_pass http://127.0.0.1:1; } }",
    );
    assert!(
        w.iter()
            .any(|w| w.contains("'~^(www\\.bad' was left out") && w.contains("does not compile")),
        "{w:#?}"
    );
    assert!(!y.contains("bad"), "{y}");
    assert!(y.contains("ok.test") && y.contains("good"), "{y}");
    // An envsubst template's `~.${HOST}` is a regex only once the
    // environment is read: kept as greenlight's `{$HOST}`, compiled by `check`.
    assert!(y.contains("\"~.{$HOST}\""), "{y}");
}
