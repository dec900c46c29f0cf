//! What to say about nginx directives that are not converted: built-in
//! behaviour and rustls-irrelevant TLS settings get a calm note, everything
//! else a warning that says what greenlight does instead or what to do.

use super::NOTE_PREFIX;
use super::parse::Directive;

/// The message for a directive that the converter does not carry over.
pub(crate) fn explain(d: &Directive) -> String {
    let name = d.name.as_str();
    if let Some(text) = proxy_header_note(d) {
        return text;
    }
    if name == "proxy_set_header" {
        return proxy_header_warning(d);
    }
    if name == "map" && d.args.get(1).is_some_and(|v| v == "$connection_upgrade") {
        return format!(
            "{NOTE_PREFIX}'map {} $connection_upgrade' is not needed: it only fed the Connection header for WebSocket upgrades, which greenlight forwards itself",
            d.arg0()
        );
    }
    if let Some(why) = rustls_note(name) {
        let mut msg = format!("{NOTE_PREFIX}'{name}' is not needed with rustls: {why}");
        if name == "ssl_protocols" {
            let old: Vec<&str> = d
                .args
                .iter()
                .map(String::as_str)
                .filter(|a| matches!(*a, "SSLv2" | "SSLv3" | "TLSv1" | "TLSv1.1"))
                .collect();
            if !old.is_empty() {
                msg.push_str(&format!(
                    " (clients that only speak {} will no longer connect)",
                    old.join("/")
                ));
            }
        }
        return msg;
    }
    if let Some(why) = not_needed(name, d) {
        return format!("{NOTE_PREFIX}'{}' is not needed: {why}", shown(d));
    }
    let why = unsupported_reason(name, d);
    format!("directive '{name}' is not supported: {why}")
}

/// `name arg1 arg2` for messages (arguments shortened).
pub(crate) fn shown(d: &Directive) -> String {
    let mut s = d.name.clone();
    for a in &d.args {
        s.push(' ');
        if a.is_empty() {
            s.push_str("\"\"");
        } else if a.chars().count() > 40 {
            s.extend(a.chars().take(37));
            s.push_str("...");
        } else {
            s.push_str(a);
        }
    }
    s
}

fn rustls_note(name: &str) -> Option<&'static str> {
    Some(match name {
        "ssl_dhparam" => {
            "rustls negotiates ECDHE key exchange with built-in curves, so a DH parameter file is never used"
        }
        "ssl_ciphers" | "ssl_prefer_server_ciphers" | "ssl_ecdh_curve" | "ssl_conf_command" => {
            "rustls chooses modern cipher suites and curves itself"
        }
        "ssl_protocols" => "rustls speaks TLS 1.2 and TLS 1.3 only",
        "ssl_session_cache"
        | "ssl_session_timeout"
        | "ssl_session_tickets"
        | "ssl_session_ticket_key" => "TLS session resumption is handled by rustls",
        "ssl_stapling"
        | "ssl_stapling_verify"
        | "ssl_stapling_file"
        | "ssl_stapling_responder"
        | "ssl_ocsp"
        | "ssl_ocsp_cache"
        | "ssl_ocsp_responder" => {
            "greenlight does not staple OCSP responses, and Let's Encrypt has ended OCSP, so stapling is moot"
        }
        "ssl_trusted_certificate" => {
            "it only fed OCSP stapling; the chain sent to clients comes from the certificate file (fullchain.pem)"
        }
        "ssl_buffer_size" => "rustls sizes TLS records itself",
        _ => return None,
    })
}

/// Directives whose effect is built into greenlight or irrelevant to it.
fn not_needed(name: &str, d: &Directive) -> Option<&'static str> {
    let arg = d.arg0();
    Some(match name {
        "user"
        | "worker_processes"
        | "worker_rlimit_nofile"
        | "worker_cpu_affinity"
        | "worker_priority"
        | "worker_shutdown_timeout"
        | "pid"
        | "daemon"
        | "master_process"
        | "events"
        | "worker_connections"
        | "multi_accept"
        | "use"
        | "accept_mutex"
        | "accept_mutex_delay"
        | "thread_pool"
        | "pcre_jit"
        | "lock_file"
        | "timer_resolution"
        | "working_directory"
        | "load_module"
        | "env" => {
            "nginx process setting; greenlight runs as one process with its own worker threads (set its user and limits in its service unit)"
        }
        "sendfile"
        | "sendfile_max_chunk"
        | "tcp_nopush"
        | "tcp_nodelay"
        | "aio"
        | "directio"
        | "types_hash_max_size"
        | "types_hash_bucket_size"
        | "server_names_hash_bucket_size"
        | "server_names_hash_max_size"
        | "variables_hash_max_size"
        | "variables_hash_bucket_size"
        | "map_hash_max_size"
        | "map_hash_bucket_size"
        | "proxy_headers_hash_max_size"
        | "proxy_headers_hash_bucket_size"
        | "open_file_cache"
        | "open_file_cache_valid"
        | "open_file_cache_min_uses"
        | "open_file_cache_errors" => "nginx-internal tuning with no greenlight equivalent",
        "types" | "default_type" | "charset_types" => {
            "file types only matter for files nginx serves itself; greenlight passes the upstream's Content-Type through"
        }
        "http2" if arg == "on" => "greenlight offers HTTP/2 on TLS listeners through ALPN",
        "resolver" | "resolver_timeout" => {
            "greenlight resolves upstream host names itself when it loads the configuration"
        }
        "proxy_redirect" if arg == "off" => {
            "greenlight does not rewrite the upstream's Location headers, which is what 'off' asks for"
        }
        "proxy_pass_request_headers" | "proxy_pass_request_body" if arg == "on" => {
            "greenlight forwards request headers and bodies (the nginx default)"
        }
        "http2_push" | "http2_push_preload" | "spdy_headers_comp" => {
            "HTTP/2 server push is obsolete (browsers removed it)"
        }
        "http2_recv_buffer_size"
        | "http2_chunk_size"
        | "http2_body_preread_size"
        | "http2_idle_timeout"
        | "http2_max_requests" => "HTTP/2 tuning is handled by greenlight",
        "client_header_buffer_size" => {
            "greenlight sizes its header buffer itself; its header limits are limits.max_uri_length and max_header_size (converted from large_client_header_buffers)"
        }
        _ => return None,
    })
}

/// What to tell the user about a directive greenlight has no equivalent for.
fn unsupported_reason(name: &str, d: &Directive) -> String {
    let s = |t: &str| t.to_string();
    if name.starts_with("gzip") || name.starts_with("brotli") || name == "gunzip" {
        return s(
            "greenlight does not compress responses; compress in the upstream app if you need it",
        );
    }
    if name.starts_with("proxy_ssl") {
        return s("greenlight speaks plain HTTP to upstreams for now");
    }
    if name.starts_with("proxy_cache") || name == "proxy_no_cache" || name == "proxy_temp_path" {
        return s("greenlight does not cache responses; every request reaches the upstream");
    }
    if name.starts_with("limit_") && name != "limit_except" {
        return s(
            "rate and connection limits are not available in greenlight yet; limit in the app or in front of greenlight",
        );
    }
    if name.starts_with("fastcgi_")
        || name.starts_with("uwsgi_")
        || name.starts_with("scgi_")
        || name.starts_with("grpc_")
        || name.starts_with("memcached_")
    {
        return s(
            "greenlight proxies plain HTTP only; run the application behind an HTTP server (e.g. php-fpm behind a small HTTP front, or the app's own HTTP mode) and proxy to that",
        );
    }
    if name.starts_with("ssl_verify") || name == "ssl_client_certificate" || name == "ssl_crl" {
        return s(
            "client certificates (mutual TLS) are not supported: greenlight accepts clients without certificates, so whatever this protected is now open; protect it in the app",
        );
    }
    if name.starts_with("secure_link") || name.starts_with("auth_") {
        return s(
            "access control is not converted: greenlight lets every client through, so protect these paths in the app",
        );
    }
    if name.starts_with("autoindex") {
        return static_files();
    }
    match name {
        "root" | "alias" | "index" | "try_files" | "internal" | "disable_symlinks" | "etag"
        | "if_modified_since" | "random_index" => static_files(),
        "expires" => s(
            "greenlight does not set caching headers; send Cache-Control/Expires from the upstream",
        ),
        "access_log"
        | "error_log"
        | "log_format"
        | "log_not_found"
        | "log_subrequest"
        | "open_log_file_cache"
        | "rewrite_log" => {
            s("greenlight has its own logging; nginx log settings are not carried over")
        }
        "add_header" => {
            let header = d.arg0();
            let mut why = format!(
                "greenlight does not add response headers yet, so '{header}' is no longer sent; send it from the upstream app"
            );
            if header.eq_ignore_ascii_case("Strict-Transport-Security") {
                why.push_str(" (HSTS matters for a TLS site: keep sending it)");
            }
            why
        }
        "more_set_headers"
        | "more_clear_headers"
        | "add_trailer"
        | "proxy_hide_header"
        | "proxy_pass_header"
        | "proxy_ignore_headers"
        | "proxy_set_body"
        | "proxy_cookie_domain"
        | "proxy_cookie_path"
        | "proxy_cookie_flags"
        | "sub_filter"
        | "sub_filter_once"
        | "sub_filter_types" => {
            s("greenlight does not rewrite headers or bodies; do it in the upstream app")
        }
        "rewrite"
        | "set"
        | "break"
        | "map"
        | "geo"
        | "split_clients"
        | "uninitialized_variable_warn" => s(
            "greenlight forwards paths unchanged and has no variables or rewrites; move the logic into the app",
        ),
        "error_page" | "recursive_error_pages" | "proxy_intercept_errors" => {
            s("greenlight passes the upstream's error pages through unchanged")
        }
        "allow" | "deny" | "satisfy" | "limit_except" => s(
            "access control is not converted: greenlight lets every client through, so protect these paths in the app",
        ),
        "proxy_buffering"
        | "proxy_buffers"
        | "proxy_buffer_size"
        | "proxy_busy_buffers_size"
        | "proxy_max_temp_file_size"
        | "proxy_temp_file_write_size"
        | "client_body_temp_path"
        | "client_body_in_file_only"
        | "output_buffers"
        | "postpone_output" => s(
            "buffering is managed by greenlight and cannot be tuned; check the app still behaves (e.g. streaming responses)",
        ),
        "proxy_request_buffering" | "client_body_buffer_size" => s(
            "not converted: greenlight reads request bodies whole before connecting by default; set `request_buffering: off` on a route that streams uploads, and `limits.body_buffer_size` for the memory part",
        ),
        "keepalive_timeout"
        | "client_body_timeout"
        | "client_header_timeout"
        | "send_timeout"
        | "large_client_header_buffers"
        | "http2_max_concurrent_streams" => s(
            "greenlight sets this once for every client, in the global limits section; only values at http, server and location level are converted",
        ),
        "keepalive_requests"
        | "keepalive_time"
        | "keepalive_disable"
        | "lingering_close"
        | "lingering_time"
        | "lingering_timeout"
        | "reset_timedout_connection" => s(
            "greenlight has no setting for this (its client settings are limits.header_timeout, body_timeout, send_timeout and keepalive_timeout); its own behaviour applies",
        ),
        "proxy_next_upstream" | "proxy_next_upstream_tries" | "proxy_next_upstream_timeout" => s(
            "the retry policy is not carried over: greenlight tries the next server of the pool when connecting fails, and counts failed connections and timeouts (not 5xx answers) for max_fails",
        ),
        "real_ip_header" | "set_real_ip_from" | "real_ip_recursive" => s(
            "greenlight takes the client address from the connection; if a load balancer is in front, the upstream sees its address in X-Forwarded-For",
        ),
        "server_tokens" => s("greenlight decides its own Server header"),
        "stream" => s("TCP/UDP proxying (the stream module) is not supported by greenlight"),
        "mail" => s("mail proxying is not supported by greenlight"),
        "http3" | "quic_retry" | "quic_gso" | "quic_host_key" | "quic_bpf" => {
            s("HTTP/3 (QUIC) is not supported by greenlight yet")
        }
        "http2" => s("greenlight always offers HTTP/2 on TLS listeners (through ALPN)"),
        "proxy_http_version" => s("greenlight talks HTTP/1.1 to upstreams"),
        "proxy_redirect" => s("greenlight does not rewrite the upstream's Location headers"),
        "proxy_set_header" => s(
            "greenlight does not set custom request headers yet; set it in the app or ask for the feature",
        ),
        "stub_status" | "status" | "vhost_traffic_status" => {
            s("greenlight has no nginx-style status page")
        }
        "ssl_early_data" => s("0-RTT early data is not enabled in greenlight"),
        "ssl_password_file" => {
            s("encrypted private keys are not supported; give greenlight an unencrypted key file")
        }
        "ssl_reject_handshake" => s(
            "greenlight does not reject TLS handshakes for unknown names this way; unknown names get the default site",
        ),
        "server_name_in_redirect" | "port_in_redirect" | "absolute_redirect" => {
            s("greenlight does not generate redirects of its own besides plain_http: redirect")
        }
        "charset" | "source_charset" | "override_charset" => {
            s("greenlight does not convert character sets; set the charset in the app")
        }
        "ssi" | "ssi_types" | "addition_types" | "add_before_body" | "add_after_body" => {
            s("response body processing is not supported by greenlight")
        }
        "ignore_invalid_headers" => s(
            "greenlight applies its own header validation rules; to pass header names with `_`, set `underscores_in_headers: true` on the site",
        ),
        "location" => s("this location was not converted"),
        _ => s(
            "greenlight has no equivalent, so it was not converted; check whether the site relies on it",
        ),
    }
}

fn static_files() -> String {
    "greenlight does not serve files: keep them on a static upstream (any small HTTP file server) and add a route to it".to_string()
}

/// Notes for `proxy_set_header`, `proxy_http_version` and
/// `proxy_cache_bypass` values that greenlight has built in.
pub(crate) fn proxy_header_note(d: &Directive) -> Option<String> {
    let args: Vec<&str> = d.args.iter().map(String::as_str).collect();
    let why = match (d.name.as_str(), args.as_slice()) {
        ("proxy_http_version", ["1.1"]) => {
            "greenlight talks HTTP/1.1 to upstreams (keep-alive and WebSocket upgrades work)"
        }
        ("proxy_cache_bypass", ["$http_upgrade"]) => {
            "greenlight does not cache, and upgrade requests go straight to the upstream"
        }
        ("proxy_set_header", [header, value]) => {
            let h = header.to_ascii_lowercase();
            let v = value.to_ascii_lowercase();
            match (h.as_str(), v.as_str()) {
                ("host", "$host" | "$http_host") => {
                    "greenlight forwards the client's Host header unchanged"
                }
                ("x-forwarded-for", "$proxy_add_x_forwarded_for" | "$remote_addr") => {
                    "greenlight adds X-Forwarded-For itself"
                }
                ("x-forwarded-proto", "$scheme") => "greenlight sets X-Forwarded-Proto itself",
                ("x-forwarded-host", "$host" | "$http_host" | "$server_name") => {
                    "greenlight sets X-Forwarded-Host itself"
                }
                ("x-real-ip", "$remote_addr") => {
                    "greenlight passes the client address to the upstream itself (X-Forwarded-For)"
                }
                ("upgrade", "$http_upgrade") => "greenlight forwards WebSocket upgrades itself",
                ("connection", "upgrade" | "$connection_upgrade" | "$http_connection") => {
                    "greenlight forwards WebSocket upgrades itself"
                }
                ("connection", "" | "keep-alive") => {
                    "greenlight manages keep-alive connections to upstreams itself"
                }
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(format!("{NOTE_PREFIX}'{}' is built in: {why}", shown(d)))
}

/// A warning for `proxy_set_header` values that are not built in.
pub(crate) fn proxy_header_warning(d: &Directive) -> String {
    let header = d.arg0();
    let value = d.args.get(1).map(String::as_str).unwrap_or("");
    if header.eq_ignore_ascii_case("host") {
        return format!(
            "directive 'proxy_set_header Host {value}' is not supported: greenlight forwards the client's Host header unchanged, so the upstream no longer receives '{value}'; make the upstream accept the public host name"
        );
    }
    if header.eq_ignore_ascii_case("x-forwarded-proto") && value.eq_ignore_ascii_case("https") {
        return format!(
            "{NOTE_PREFIX}'{}' is built in: greenlight sets X-Forwarded-Proto from the listener (https on TLS listeners)",
            shown(d)
        );
    }
    format!(
        "directive 'proxy_set_header' is not supported: greenlight does not set custom request headers yet, so '{header}' is no longer sent; set it in the app"
    )
}
