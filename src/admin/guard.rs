//! Cross-site and DNS-rebinding protection for the admin API, the rules
//! Caddy's admin endpoint follows.
//!
//! Without a token the admin API trusts whoever can open a TCP connection to
//! it — and a web page the operator has open can: a browser sends a
//! cross-site "simple" request (a form, or `fetch` with `text/plain`) without
//! asking first, and a page whose host name the attacker re-points at
//! 127.0.0.1 (DNS rebinding) can even read the answers. So every request,
//! with or without a token, must pass three checks, in this order:
//!
//! 1. **Host** names this admin API: its `ip:port` exactly as bound
//!    (`127.0.0.1:9090`, `[::1]:9090`), `localhost:PORT` when the address is
//!    loopback, or an entry of `admin.allowed_hosts`. A rebinding page's
//!    requests carry *its* host name, so they fail here.
//! 2. **Origin**, when sent, is `http://` + a host rule 1 accepts, and
//!    **Sec-Fetch-Site**, when sent, is `same-origin` or `none` (a browser
//!    sends it on every request; `same-site` is refused too, since another
//!    port or subdomain of the same site is another program).
//! 3. A request that changes state (any method but GET/HEAD) carries
//!    `Content-Type: application/json`: a browser cannot send that
//!    cross-site without a CORS preflight, which the API never grants.
//!
//! Tools that are not browsers (the CLI, curl, Prometheus) send the right
//! Host and no Origin, so they pass; the CLI sends the JSON content type. A
//! dashboard served from this listener passes too: its `fetch` calls are
//! same-origin, with an allowed Host and Origin, and send JSON.
//!
//! **Wildcard bind** (`0.0.0.0:PORT` / `[::]:PORT`, which validation allows
//! only with a token): the listener answers on every address of the host,
//! which greenlight cannot list reliably (addresses come and go). It accepts
//! any IP literal with the admin port, `localhost:PORT`, and the
//! `allowed_hosts` entries. That is safe against rebinding, which always
//! goes through a host *name* the attacker's DNS controls — never an IP
//! literal; names used to reach the API must be listed. The token still
//! guards every call, and the Origin and content-type rules still apply.
//!
//! A refusal is 403 with a JSON `{"error": …}` naming the rule and the fix.

use crate::config::validate::split_authority;
use http::header::{CONTENT_TYPE, HOST, ORIGIN};
use http::{HeaderMap, Method, Uri};
use std::net::{IpAddr, SocketAddr};

/// What this admin API accepts as its own name (from its bound address and
/// `admin.allowed_hosts`).
#[derive(Debug, Clone)]
pub struct HostRules {
    /// Accepted `host:port` values, lowercase; IPv6 in brackets.
    exact: Vec<String>,
    /// With a wildcard bind: any IP literal on this port.
    any_ip_on: Option<u16>,
    /// The admin port (an allowed host entry without a port uses it).
    port: u16,
}

/// Why a request was refused; the text names the rule and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

impl HostRules {
    /// The rules for an admin API bound to `addr` with `allowed_hosts`
    /// (already normalised by validation: lowercase `host:port`).
    pub fn new(addr: SocketAddr, allowed_hosts: &[String]) -> HostRules {
        let port = addr.port();
        let mut exact = Vec::new();
        let mut any_ip_on = None;
        if addr.ip().is_unspecified() {
            any_ip_on = Some(port);
        } else {
            exact.push(addr.to_string().to_ascii_lowercase());
        }
        if addr.ip().is_loopback() || addr.ip().is_unspecified() {
            exact.push(format!("localhost:{port}"));
        }
        exact.extend(allowed_hosts.iter().map(|h| h.to_ascii_lowercase()));
        HostRules {
            exact,
            any_ip_on,
            port,
        }
    }

    /// Whether `authority` (`host[:port]`, as in Host or an Origin) names
    /// this API.
    fn accepts(&self, authority: &str) -> bool {
        let Some((host, port)) = split_authority(authority) else {
            return false;
        };
        let port = port.unwrap_or(80);
        let key = format!("{host}:{port}");
        if self.exact.contains(&key) {
            return true;
        }
        self.any_ip_on == Some(port)
            && host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok()
    }

    /// The accepted names, for error messages.
    fn listed(&self) -> String {
        let mut names = self.exact.clone();
        if let Some(p) = self.any_ip_on {
            names.push(format!("any IP address with port {p}"));
        }
        names.join(", ")
    }

    /// Checks rules 1 and 2 (Host, Origin, Sec-Fetch-Site) for any request.
    pub fn check_origin(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), Refusal> {
        let fix_host = |what: &str| {
            Refusal(format!(
                "{what} is not this admin API's address (accepted: {}) — refused to guard against DNS rebinding; to reach the API under this name, add it to admin.allowed_hosts (as host:port; port {} if omitted) and restart",
                self.listed(),
                self.port
            ))
        };
        let host = match headers.get(HOST).map(|h| h.to_str()) {
            Some(Ok(h)) => h.trim(),
            Some(Err(_)) => return Err(fix_host("a non-ASCII Host header")),
            None => {
                return Err(Refusal(format!(
                    "the request has no Host header — send `Host: {}` (one of: {})",
                    self.exact.first().map_or("ADDRESS", String::as_str),
                    self.listed()
                )));
            }
        };
        if !self.accepts(host) {
            return Err(fix_host(&format!("Host '{}'", printable(host))));
        }
        if let Some(a) = uri.authority()
            && !self.accepts(a.as_str())
        {
            return Err(fix_host(&format!("the request target's host '{a}'")));
        }
        if let Some(origin) = headers.get(ORIGIN) {
            let text = origin.to_str().unwrap_or("");
            let ok = text
                .strip_prefix("http://")
                .is_some_and(|a| !a.contains('/') && self.accepts(a));
            if !ok {
                return Err(Refusal(format!(
                    "Origin '{}' is another site — the admin API refuses cross-site requests; a page must be served by this admin API (http://{}), or add its host to admin.allowed_hosts",
                    printable(text),
                    self.exact.first().map_or("", String::as_str)
                )));
            }
        }
        if let Some(site) = headers.get("sec-fetch-site") {
            let site = site.to_str().unwrap_or("").trim().to_ascii_lowercase();
            if site != "same-origin" && site != "none" {
                return Err(Refusal(format!(
                    "Sec-Fetch-Site '{}': the admin API accepts only same-origin requests (or none, a typed URL) — call it from a page it serves, or from a tool that is not a browser",
                    printable(&site)
                )));
            }
        }
        Ok(())
    }
}

/// Checks rule 3: a state-changing request must declare a JSON body.
pub fn check_content_type(method: &Method, headers: &HeaderMap) -> Result<(), Refusal> {
    if method == Method::GET || method == Method::HEAD {
        return Ok(());
    }
    let ct = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        return Ok(());
    }
    Err(Refusal(format!(
        "a {method} to the admin API must send `Content-Type: application/json` (got {}) — this is what keeps a web page from changing state cross-site; the greenlight CLI sends it",
        if ct.is_empty() {
            "none".to_string()
        } else {
            format!("'{}'", printable(ct))
        }
    )))
}

/// A header value safe to quote in a message (control characters dropped,
/// length bounded).
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate::normalize_allowed_host;

    fn req(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn uri() -> Uri {
        "/api/status".parse().unwrap()
    }

    #[test]
    fn loopback_accepts_its_address_and_localhost_only() {
        let r = HostRules::new("127.0.0.1:9090".parse().unwrap(), &[]);
        for ok in ["127.0.0.1:9090", "LOCALHOST:9090"] {
            assert!(
                r.check_origin(&uri(), &req(&[("host", ok)])).is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "evil.example:9090",
            "127.0.0.1:9091",
            "127.0.0.1",
            "10.0.0.1:9090",
            "",
            "a@127.0.0.1:9090",
        ] {
            let e = r.check_origin(&uri(), &req(&[("host", bad)]));
            assert!(e.is_err(), "{bad}");
        }
        assert!(r.check_origin(&uri(), &req(&[])).is_err());
        let e = r
            .check_origin(&uri(), &req(&[("host", "evil.example:9090")]))
            .unwrap_err();
        assert!(e.0.contains("admin.allowed_hosts"), "{}", e.0);
    }

    #[test]
    fn ipv6_loopback_uses_brackets() {
        let r = HostRules::new("[::1]:9090".parse().unwrap(), &[]);
        assert!(
            r.check_origin(&uri(), &req(&[("host", "[::1]:9090")]))
                .is_ok()
        );
        assert!(
            r.check_origin(&uri(), &req(&[("host", "localhost:9090")]))
                .is_ok()
        );
        assert!(
            r.check_origin(&uri(), &req(&[("host", "::1:9090")]))
                .is_err()
        );
    }

    #[test]
    fn allowed_hosts_extend_the_list() {
        let r = HostRules::new(
            "127.0.0.1:9090".parse().unwrap(),
            &["admin.internal:9090".into()],
        );
        assert!(
            r.check_origin(&uri(), &req(&[("host", "Admin.Internal:9090")]))
                .is_ok()
        );
        assert_eq!(
            normalize_allowed_host("Admin.Internal", 9090).unwrap(),
            "admin.internal:9090"
        );
        assert!(normalize_allowed_host("http://a", 9090).is_err());
        assert!(normalize_allowed_host("a/b", 9090).is_err());
    }

    #[test]
    fn wildcard_bind_accepts_ip_literals_not_names() {
        let r = HostRules::new("0.0.0.0:9090".parse().unwrap(), &[]);
        for ok in [
            "10.1.2.3:9090",
            "[fe80::1]:9090",
            "localhost:9090",
            "0.0.0.0:9090",
        ] {
            assert!(
                r.check_origin(&uri(), &req(&[("host", ok)])).is_ok(),
                "{ok}"
            );
        }
        for bad in ["evil.example:9090", "10.1.2.3:80"] {
            assert!(
                r.check_origin(&uri(), &req(&[("host", bad)])).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn origin_and_fetch_metadata() {
        let r = HostRules::new("127.0.0.1:9090".parse().unwrap(), &[]);
        let h = |extra: (&str, &str)| req(&[("host", "127.0.0.1:9090"), extra]);
        assert!(
            r.check_origin(&uri(), &h(("origin", "http://127.0.0.1:9090")))
                .is_ok()
        );
        assert!(
            r.check_origin(&uri(), &h(("origin", "http://localhost:9090")))
                .is_ok()
        );
        for bad in [
            "http://evil.example",
            "https://127.0.0.1:9090",
            "null",
            "http://127.0.0.1:9090/x",
        ] {
            assert!(
                r.check_origin(&uri(), &h(("origin", bad))).is_err(),
                "{bad}"
            );
        }
        assert!(
            r.check_origin(&uri(), &h(("sec-fetch-site", "same-origin")))
                .is_ok()
        );
        assert!(
            r.check_origin(&uri(), &h(("sec-fetch-site", "none")))
                .is_ok()
        );
        for bad in ["cross-site", "same-site"] {
            assert!(r.check_origin(&uri(), &h(("sec-fetch-site", bad))).is_err());
        }
        let absolute: Uri = "http://evil.example:9090/api/status".parse().unwrap();
        assert!(
            r.check_origin(&absolute, &req(&[("host", "127.0.0.1:9090")]))
                .is_err()
        );
    }

    #[test]
    fn state_changes_need_json() {
        let json = req(&[("content-type", "application/json; charset=utf-8")]);
        assert!(check_content_type(&Method::POST, &json).is_ok());
        assert!(check_content_type(&Method::GET, &req(&[])).is_ok());
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
        ] {
            let h = req(&[("content-type", bad)]);
            assert!(check_content_type(&Method::POST, &h).is_err(), "{bad}");
        }
        assert!(check_content_type(&Method::POST, &req(&[])).is_err());
    }
}
