//! What to say about nginx directives that are not converted: built-in
//! behaviour and rustls-irrelevant TLS settings get a calm note, everything
//! else a warning that says what greenlight does instead or what to do.
//! The words come from the one table in `table.rs`.

use super::NOTE_PREFIX;
use super::parse::Directive;
use super::table::{self, Kind};

/// The message for a directive that the converter does not carry over:
/// special cases by argument first, then the kind and text of its
/// [`table`] entry.
pub(crate) fn explain(d: &Directive) -> String {
    let name = d.name.as_str();
    if let Some(text) = proxy_header_note(d) {
        return text;
    }
    if name == "map" {
        if d.args.get(1).is_some_and(|v| v == "$connection_upgrade") {
            return format!(
                "{NOTE_PREFIX}'map {} $connection_upgrade' is not needed: it only fed the Connection header for WebSocket upgrades, which greenlight forwards itself",
                d.arg0()
            );
        }
        return format!(
            "directive 'map {} {}' is not converted here: nginx allows `map` only in the http block, where it becomes `maps:`",
            d.arg0(),
            d.args.get(1).map_or("", String::as_str),
        );
    }
    let arg = d.arg0();
    let special = match name {
        "proxy_pass_request_headers" | "proxy_pass_request_body" if arg == "off" => {
            Some("greenlight always forwards request headers and bodies")
        }
        "proxy_cache_bypass" if arg != "$http_upgrade" => {
            Some("greenlight does not cache responses; every request reaches the upstream")
        }
        "http2" if arg == "off" => Some(
            "greenlight always offers HTTP/2 on TLS listeners (through ALPN); clients that speak it will use it",
        ),
        _ => None,
    };
    if let Some(why) = special {
        return format!("directive '{}' is not supported: {why}", shown(d));
    }
    let Some(entry) = table::lookup(name) else {
        return format!("directive '{name}' is not supported: {}", table::UNKNOWN);
    };
    match entry.kind {
        Kind::Note if name.starts_with("ssl_") => {
            let mut msg = format!(
                "{NOTE_PREFIX}'{name}' is not needed with rustls: {}",
                entry.text
            );
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
            msg
        }
        Kind::Note => format!("{NOTE_PREFIX}'{}' is not needed: {}", shown(d), entry.text),
        Kind::Warning => format!("directive '{name}' is not supported: {}", entry.text),
        Kind::Setting | Kind::Step | Kind::Terminal => format!(
            "directive '{}' is not converted in this block: greenlight takes it from {}",
            shown(d),
            entry.text
        ),
    }
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
                // `$host` is not: nginx strips the port and lowercases it.
                ("host", "$http_host") => "greenlight forwards the client's Host header unchanged",
                ("x-forwarded-for", "$proxy_add_x_forwarded_for" | "$remote_addr") => {
                    "greenlight adds X-Forwarded-For itself"
                }
                ("x-forwarded-proto", "$scheme") => "greenlight sets X-Forwarded-Proto itself",
                // `$host` and `$server_name` are not: nginx sends the name
                // without the port, or the site's first name.
                ("x-forwarded-host", "$http_host") => "greenlight sets X-Forwarded-Host itself",
                ("upgrade", "$http_upgrade") => "greenlight forwards WebSocket upgrades itself",
                // `Upgrade "websocket"` in a WebSocket location: greenlight
                // manages the header (hop-by-hop) and forwards the client's own.
                ("upgrade", _) => {
                    "greenlight forwards a client's WebSocket upgrade itself (a fixed Upgrade value is not sent on other requests)"
                }
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
