//! Turning an [`Entry`] into one line: nginx's `combined` format or JSON.
//!
//! Owns: the two line formats, nginx-style escaping and UTC time formatting
//! (no date crate). Must not touch: I/O, threads, the channel — these are pure
//! functions that append to a caller's `String`, run on the writer thread.
//! Data flow: writer thread receives an `Entry` -> [`write_line`] into its
//! reused line buffer -> the buffered sink.

use super::{Entry, LogFormat};
use crate::timefmt::Utc;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::time::SystemTime;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Appends `v` escaped as nginx's `escape=default` does: `"`, `\`, bytes
/// below 0x20 and above 0x7e become `\xHH` (uppercase hex); empty is `-`.
fn push_escaped(out: &mut String, v: &str) {
    if v.is_empty() {
        out.push('-');
        return;
    }
    for &b in v.as_bytes() {
        if !(0x20..=0x7e).contains(&b) || b == b'"' || b == b'\\' {
            let _ = write!(out, "\\x{b:02X}");
        } else {
            out.push(char::from(b));
        }
    }
}

fn push_opt(out: &mut String, v: Option<&str>) {
    push_escaped(out, v.unwrap_or(""));
}

/// `$remote_addr - $remote_user [$time_local] "$request" $status
/// $body_bytes_sent "$http_referer" "$http_user_agent"`, time in UTC.
fn combined(out: &mut String, e: &Entry) {
    match e.client_ip {
        Some(ip) => {
            let _ = write!(out, "{ip}");
        }
        None => out.push('-'),
    }
    let t = Utc::of(e.time);
    let month = MONTHS
        .get(usize::try_from(t.month).unwrap_or(0).wrapping_sub(1))
        .copied()
        .unwrap_or("Jan");
    let _ = write!(
        out,
        " - - [{:02}/{month}/{:04}:{:02}:{:02}:{:02} +0000] \"",
        t.day, t.year, t.hour, t.minute, t.second
    );
    // $request is one variable: the whole request line is escaped.
    let request = format!("{} {} {}", e.method, e.path, e.protocol);
    push_escaped(out, &request);
    let _ = write!(out, "\" {:03} {} \"", e.status, e.bytes_sent);
    push_opt(out, e.referer.as_deref());
    out.push_str("\" \"");
    push_opt(out, e.user_agent.as_deref());
    out.push('"');
}

/// RFC 3339 UTC with milliseconds: `2026-11-25T16:54:03.000Z`.
fn rfc3339(t: SystemTime) -> String {
    let t = Utc::of(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.millis
    )
}

fn json_value(e: &Entry) -> Value {
    json!({
        "time": rfc3339(e.time),
        "request_id": e.request_id,
        "client_ip": e.client_ip.map(|ip| ip.to_string()),
        "method": e.method,
        "path": e.path,
        "protocol": e.protocol,
        "status": e.status,
        "bytes_sent": e.bytes_sent,
        "referer": e.referer,
        "user_agent": e.user_agent,
        "host": e.host,
        "site": e.site,
        "upstream": e.upstream,
        "pool": e.pool,
        "server": e.server,
        "duration_seconds": e.duration.as_secs_f64(),
        "upstream_duration_seconds": e.upstream_duration.map(|d| d.as_secs_f64()),
        "websocket": e.websocket.as_ref().map(|w| json!({
            "duration_seconds": w.duration.as_secs_f64(),
            "bytes_in": w.bytes_in,
            "bytes_out": w.bytes_out,
        })),
    })
}

/// Appends `e` in `format` and a newline to `out`.
pub(super) fn write_line(out: &mut String, e: &Entry, format: LogFormat) {
    match format {
        LogFormat::Combined => combined(out, e),
        // Serialising a `Value` to a String cannot fail; the fallback keeps
        // the line count right anyway.
        LogFormat::Json => match serde_json::to_string(&json_value(e)) {
            Ok(s) => out.push_str(&s),
            Err(_) => out.push_str("{}"),
        },
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accesslog::WebSocketStats;
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::{Duration, UNIX_EPOCH};

    fn entry() -> Entry {
        Entry {
            time: UNIX_EPOCH + Duration::from_millis(1_795_625_643_250),
            client_ip: Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7))),
            method: "GET".into(),
            path: "/search?q=\"hi\"".into(),
            protocol: "HTTP/1.1",
            status: 200,
            bytes_sent: 5120,
            referer: Some("https://example.com/".into()),
            user_agent: Some("curl/8.5 \\x\n\u{e9}".into()),
            host: Some("shop.example".into()),
            site: Some("shop".into()),
            upstream: Some("app".into()),
            pool: Some("blue".into()),
            server: Some("localhost:8081".into()),
            duration: Duration::from_millis(1500),
            upstream_duration: Some(Duration::from_millis(1250)),
            request_id: "00112233aabbccdd".into(),
            websocket: None,
        }
    }

    fn line(e: &Entry, f: LogFormat) -> String {
        let mut s = String::new();
        write_line(&mut s, e, f);
        s
    }

    #[test]
    fn combined_matches_nginx_exactly() {
        assert_eq!(
            line(&entry(), LogFormat::Combined),
            "203.0.113.7 - - [25/Nov/2026:16:54:03 +0000] \"GET /search?q=\\x22hi\\x22 HTTP/1.1\" \
             200 5120 \"https://example.com/\" \"curl/8.5 \\x5Cx\\x0A\\xC3\\xA9\"\n"
        );
        let bare = Entry {
            method: "GET".into(),
            path: "/".into(),
            referer: Some(String::new()),
            ..Entry::default()
        };
        assert_eq!(
            line(&bare, LogFormat::Combined),
            "- - - [01/Jan/1970:00:00:00 +0000] \"GET / HTTP/1.1\" 000 0 \"-\" \"-\"\n"
        );
    }

    #[test]
    fn json_has_every_field() {
        let mut e = entry();
        e.websocket = Some(WebSocketStats {
            duration: Duration::from_secs(30),
            bytes_in: 10,
            bytes_out: 20,
        });
        let text = line(&e, LogFormat::Json);
        assert_eq!(text.matches('\n').count(), 1);
        let v: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(v["time"], "2026-11-25T16:54:03.250Z");
        assert_eq!(v["client_ip"], "203.0.113.7");
        assert_eq!(v["path"], "/search?q=\"hi\"");
        assert_eq!(v["status"], 200);
        assert_eq!(v["bytes_sent"], 5120);
        assert_eq!(v["site"], "shop");
        assert_eq!(v["upstream"], "app");
        assert_eq!(v["pool"], "blue");
        assert_eq!(v["server"], "localhost:8081");
        assert_eq!(v["host"], "shop.example");
        assert_eq!(v["user_agent"], "curl/8.5 \\x\n\u{e9}");
        assert_eq!(v["request_id"], "00112233aabbccdd");
        assert_eq!(v["duration_seconds"], 1.5);
        assert_eq!(v["upstream_duration_seconds"], 1.25);
        assert_eq!(v["websocket"]["bytes_out"], 20);
        assert_eq!(v["websocket"]["duration_seconds"], 30.0);
        let none: Value =
            serde_json::from_str(&line(&Entry::default(), LogFormat::Json)).expect("valid JSON");
        assert!(none["server"].is_null() && none["websocket"].is_null());
        assert!(none["upstream_duration_seconds"].is_null());
    }
}
