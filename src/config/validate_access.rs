//! Compiles `access:` of sites and routes into [`Access`] steps, every
//! problem at its line and column. The htpasswd file is read and parsed
//! here, at load: a missing or bad file is a `check` error (and a reload
//! with one keeps the old configuration serving).
//!
//! Inheritance is nginx's, per key: a route's `ip`, `basic_auth`,
//! `forward_auth` or `satisfy` replaces the site's; a key the route does
//! not write is the site's. `basic_auth: off` / `forward_auth: off` turn an
//! inherited one off (nginx `auth_basic off`, `auth_request off`);
//! `ip: []` drops the site's rules.

use super::diag::Diagnostics;
use super::file_access::{FileAccess, FileBasicAuth, FileForwardAuth, FileIpRule, FileOr};
use super::validate::pos;
use super::validate_client_ip::parse_trusted;
use super::values::{closest, duration_field};
use crate::plan::access::{Access, AuthTarget, BasicAuth, ForwardAuth, IpRules};
use crate::plan::htpasswd::Users;
use http::HeaderName;
use ipnet::IpNet;
use serde_saphyr::Spanned;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The default forward-auth timeout.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// The compiled `access:` of a route over its site's (`base`).
pub(super) fn access(
    own: &Option<Spanned<FileAccess>>,
    base: &Access,
    upstreams: &HashSet<&str>,
    ds: &mut Diagnostics,
) -> Access {
    let mut out = base.clone();
    let Some(a) = own else { return out };
    let a = &a.value;
    if let Some(list) = &a.ip {
        out.ip = ip_rules(list, ds).map(Arc::new);
    }
    if let Some(b) = &a.basic_auth {
        out.basic = match &b.value {
            FileOr::Map(m) => basic_auth(m, ds).map(Arc::new),
            FileOr::Word(w) => off(b, w, "basic_auth", ds),
        };
    }
    if let Some(f) = &a.forward_auth {
        out.forward = match &f.value {
            FileOr::Map(m) => forward_auth(f, m, upstreams, ds).map(Arc::new),
            FileOr::Word(w) => off(f, w, "forward_auth", ds),
        };
    }
    if let Some(s) = &a.satisfy {
        out.any = match s.value.trim() {
            "any" => true,
            "all" => false,
            other => {
                ds.error(
                    pos(s),
                    format!("satisfy '{other}' is neither `all` nor `any`"),
                    "`all`: every check must pass (the default); `any`: one is enough",
                );
                false
            }
        };
    }
    out
}

fn off<T, U>(at: &Spanned<T>, word: &str, key: &str, ds: &mut Diagnostics) -> Option<U> {
    if word.trim() != "off" {
        ds.error(
            pos(at),
            format!("`{key}: {word}` is not a setting"),
            format!("write a map of settings, or `{key}: off` to turn the site's off"),
        );
    }
    None
}

/// `ip: [{allow: …}, {deny: …}]`; `None` for an empty list.
fn ip_rules(list: &Spanned<Vec<Spanned<FileIpRule>>>, ds: &mut Diagnostics) -> Option<IpRules> {
    let mut rules = Vec::new();
    for item in &list.value {
        let mut entries = item.value.iter();
        let (Some((verb, net)), None) = (entries.next(), entries.next()) else {
            ds.error(
                pos(item),
                "an `ip` rule is one `allow: NETWORK` or `deny: NETWORK`",
                "write one rule per list item, e.g. `- allow: 10.0.0.0/8` then `- deny: all`",
            );
            continue;
        };
        let allow = match verb.as_str() {
            "allow" => true,
            "deny" => false,
            other => {
                ds.error(
                    pos(item),
                    format!("'{other}' is neither `allow` nor `deny`"),
                    "write `- allow: NETWORK` or `- deny: NETWORK`",
                );
                continue;
            }
        };
        let text = net.value.0.trim();
        if text == "all" {
            rules.push((IpNet::V4(Default::default()), allow));
            rules.push((IpNet::V6(Default::default()), allow));
            continue;
        }
        match parse_trusted(text) {
            Ok(n) => rules.push((n, allow)),
            Err((what, fix)) => ds.error(pos(net), what, fix + "; or `all`"),
        }
    }
    (!rules.is_empty()).then(|| IpRules {
        rules: rules.into(),
    })
}

/// Reads and parses the htpasswd file now.
fn basic_auth(b: &FileBasicAuth, ds: &mut Diagnostics) -> Option<BasicAuth> {
    let f = &b.users_file;
    let path = PathBuf::from(f.value.trim());
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            ds.error(
                pos(f),
                format!("cannot read users file '{}': {e}", path.display()),
                "give an htpasswd file (made with `htpasswd -B -c FILE USER`) that greenlight can read",
            );
            return None;
        }
    };
    let users = match Users::parse(&text) {
        Ok(u) => u,
        Err(lines) => {
            for l in lines {
                ds.error(
                    pos(f),
                    format!(
                        "users file '{}' line {}: {}",
                        path.display(),
                        l.line,
                        l.what
                    ),
                    "write the user again with `htpasswd -B FILE USER` (bcrypt)",
                );
            }
            return None;
        }
    };
    if users.is_empty() {
        ds.error(
            pos(f),
            format!("users file '{}' names no user", path.display()),
            "add one with `htpasswd -B FILE USER`",
        );
        return None;
    }
    let realm = b.realm.as_ref().map_or("Restricted", |r| r.value.as_str());
    if let Some(r) = &b.realm
        && (r.value.is_empty() || r.value.chars().any(char::is_control))
    {
        ds.error(
            pos(r),
            "the realm is empty or holds control characters",
            "write the text browsers show, e.g. `realm: Staff only`",
        );
        return None;
    }
    Some(BasicAuth::new(realm, users, path))
}

fn header_list(
    list: &Option<Spanned<Vec<Spanned<String>>>>,
    ds: &mut Diagnostics,
) -> Option<Box<[HeaderName]>> {
    let list = list.as_ref()?;
    let mut out = Vec::new();
    for n in &list.value {
        match HeaderName::from_bytes(n.value.trim().as_bytes()) {
            Ok(h) => out.push(h),
            Err(_) => ds.error(
                pos(n),
                format!("'{}' is not a header name", n.value),
                "use letters, digits and `-`, like `X-Auth-User`",
            ),
        }
    }
    Some(out.into())
}

fn forward_auth(
    at: &Spanned<FileOr<FileForwardAuth>>,
    f: &FileForwardAuth,
    upstreams: &HashSet<&str>,
    ds: &mut Diagnostics,
) -> Option<ForwardAuth> {
    let path_of = |p: &Option<Spanned<String>>, ds: &mut Diagnostics| match p {
        None => Some("/".to_string()),
        Some(p) if p.value.starts_with('/') && !p.value.contains(char::is_whitespace) => {
            Some(p.value.clone())
        }
        Some(p) => {
            ds.error(
                pos(p),
                format!("path '{}' does not start with `/`", p.value),
                "write the auth service's path, e.g. `/auth`",
            );
            None
        }
    };
    let target = match (&f.upstream, &f.url) {
        (Some(u), None) => {
            if !upstreams.contains(u.value.as_str()) {
                let fix = match closest(&u.value, upstreams.iter().copied()) {
                    Some(c) => {
                        format!("did you mean '{c}'? Upstreams are defined under `upstreams:`")
                    }
                    None => "define it under `upstreams:`, or give a `url:`".to_string(),
                };
                ds.error(pos(u), format!("unknown upstream '{}'", u.value), fix);
            }
            let path = path_of(&f.path, ds)?;
            let vars = match &f.path {
                Some(p) => path_vars(p, &path, ds)?,
                None => None,
            };
            AuthTarget::Upstream {
                name: u.value.clone(),
                path,
                vars,
            }
        }
        (None, Some(url)) => {
            if let Some(p) = &f.path {
                ds.error(
                    pos(p),
                    "`path` goes with `upstream`; a `url` holds its own path",
                    "put the path in the URL",
                );
            }
            url_target(url, ds)?
        }
        _ => {
            ds.error(
                pos(at),
                "`forward_auth` needs exactly one of `upstream` and `url`",
                "`upstream: auth` with `path: /verify`, or `url: http://127.0.0.1:9091/verify`",
            );
            return None;
        }
    };
    let timeout = duration_field(&f.timeout, FORWARD_TIMEOUT, false, ds);
    Some(ForwardAuth {
        target,
        request_headers: header_list(&f.request_headers, ds),
        copy_headers: header_list(&f.copy_headers, ds).unwrap_or_default(),
        timeout,
        connector: pingora::connectors::http::Connector::new(None),
    })
}

/// The auth request's path compiled when it names variables (nginx's
/// `proxy_pass http://auth/check$request_uri` in the auth location):
/// `Some(None)` for a literal path, `None` when a variable is refused.
fn path_vars(
    at: &Spanned<String>,
    path: &str,
    ds: &mut Diagnostics,
) -> Option<Option<Box<crate::plan::template::Template>>> {
    if !path.contains('$') {
        return Some(None);
    }
    let scope = crate::plan::template::Scope::default();
    let t = super::validate_steps::template(at, pos(at), path, &scope, ds)?;
    Some(Some(Box::new(t)))
}

/// `http://host:port/path` or `https://…`, resolved now.
fn url_target(url: &Spanned<String>, ds: &mut Diagnostics) -> Option<AuthTarget> {
    let fail = |ds: &mut Diagnostics, what: String| {
        ds.error(
            pos(url),
            what,
            "write an http(s) URL, e.g. `http://127.0.0.1:9091/api/verify`",
        )
    };
    let Ok(uri) = url.value.trim().parse::<http::Uri>() else {
        fail(ds, format!("'{}' is not a URL", url.value));
        return None;
    };
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => {
            fail(ds, format!("'{}' is not an http or https URL", url.value));
            return None;
        }
    };
    let Some(auth) = uri.authority() else {
        fail(ds, format!("'{}' names no host", url.value));
        return None;
    };
    let port = auth.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let host = auth.host().trim_start_matches('[').trim_end_matches(']');
    let addr = match std::net::ToSocketAddrs::to_socket_addrs(&(host, port)) {
        Ok(mut a) => a.next(),
        Err(_) => None,
    };
    let Some(addr) = addr else {
        fail(ds, format!("cannot resolve '{host}'"));
        return None;
    };
    let mut peer = pingora::upstreams::peer::HttpPeer::new(addr, tls, host.to_string());
    peer.options.connection_timeout = Some(FORWARD_TIMEOUT);
    let path = uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.as_str().to_string());
    Some(AuthTarget::Url {
        peer: Box::new(peer),
        host: auth.as_str().to_string(),
        vars: path_vars(url, &path, ds)?,
        path,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::load_str;
    use std::path::Path;

    fn load(site: &str, route: &str) -> Result<crate::config::Config, String> {
        let yaml = format!(
            "listeners: {{http: {{address: \"127.0.0.1:8080\"}}}}\nsites:\n  s:\n    hosts: [a.test]\n{site}    routes:\n      - path: /\n        upstream: u\n{route}      - path: /open\n        upstream: u\nupstreams:\n  u: {{active: p, pools: {{p: [\"127.0.0.1:1\"]}}}}\n"
        );
        load_str(Path::new("g.yaml"), &yaml).map_err(|e| e.to_string())
    }

    fn users_file() -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().expect("tmp");
        std::fs::write(f.path(), "alice:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n").expect("write");
        f
    }

    #[test]
    fn site_keys_are_inherited_and_a_route_key_replaces_or_turns_off() {
        let f = users_file();
        let site = format!(
            "    access:\n      ip: [{{allow: 10.0.0.0/8}}, {{deny: all}}]\n      basic_auth: {{realm: Staff, users_file: \"{}\"}}\n",
            f.path().display()
        );
        let route = "        access: {ip: [{allow: \"::1\"}], basic_auth: off}\n";
        let cfg = load(&site, route).expect("valid");
        let own = cfg.sites[0].routes[0].plan.access().expect("access");
        assert_eq!(own.ip.as_ref().map(|r| r.rules.len()), Some(1), "replaced");
        assert!(own.basic.is_none(), "turned off");
        let inherited = cfg.sites[0].routes[1].plan.access().expect("access");
        assert_eq!(
            inherited.ip.as_ref().map(|r| r.rules.len()),
            Some(3),
            "all = v4 + v6"
        );
        let b = inherited.basic.as_ref().expect("basic");
        assert_eq!(b.challenge, "Basic realm=\"Staff\"");
        let plain = load("", "").expect("valid");
        assert!(
            plain.sites[0].routes[0].plan.steps().is_empty(),
            "no access, no step"
        );
    }

    #[test]
    fn bad_rules_files_and_targets_are_reported_at_their_lines() {
        let bad = tempfile::NamedTempFile::new().expect("tmp");
        std::fs::write(bad.path(), "bob:abJnggxhB/yWI\n").expect("write");
        let site = format!(
            "    access:\n      ip: [{{allow: 10.0.0.1/8}}, {{permit: all}}, {{deny: nowhere}}]\n      basic_auth: {{users_file: \"{}\"}}\n      satisfy: some\n",
            bad.path().display()
        );
        let route = "        access:\n          basic_auth: {users_file: /nonexistent/htpasswd}\n          forward_auth: {upstream: uu, copy_headers: [\"bad header\"]}\n";
        let e = load(&site, route).expect_err("invalid");
        for want in [
            "g.yaml:6:",
            "bits set past",
            "'permit' is neither",
            "'nowhere' is not an IP",
            "line 1: user 'bob'",
            "satisfy 'some'",
            "g.yaml:13:",
            "cannot read users file '/nonexistent/htpasswd'",
            "unknown upstream 'uu'",
            "did you mean 'u'",
            "'bad header' is not a header name",
        ] {
            assert!(e.contains(want), "{want} in:\n{e}");
        }
        let e = load(
            "",
            "        access: {forward_auth: {url: \"ftp://x/\"}, basic_auth: on}\n",
        )
        .expect_err("invalid");
        assert!(e.contains("not an http or https URL"), "{e}");
        assert!(e.contains("`basic_auth: on` is not a setting"), "{e}");
        let e = load("", "        access: {forward_auth: {path: /a}}\n").expect_err("invalid");
        assert!(e.contains("exactly one of `upstream` and `url`"), "{e}");
        let e = load(
            "",
            "        access: {forward_auth: {upstream: u, path: \"/a$nosuch\"}}\n",
        )
        .expect_err("invalid");
        assert!(e.contains("unknown variable"), "{e}");
    }

    #[test]
    fn forward_auth_targets_compile() {
        let cfg = load(
            "",
            "        access: {forward_auth: {upstream: u, path: /auth, copy_headers: [X-User], timeout: 2s}}\n",
        )
        .expect("valid");
        let fa = cfg.sites[0].routes[0]
            .plan
            .access()
            .and_then(|a| a.forward.clone());
        let fa = fa.expect("forward");
        assert_eq!(fa.copy_headers.len(), 1);
        assert_eq!(fa.timeout, std::time::Duration::from_secs(2));
        assert!(
            fa.request_headers.is_none(),
            "all client headers by default"
        );
        let cfg = load(
            "",
            "        access: {forward_auth: {url: \"http://127.0.0.1:9/v?x=1\"}}\n",
        )
        .expect("valid");
        let fa = cfg.sites[0].routes[0]
            .plan
            .access()
            .and_then(|a| a.forward.clone());
        match fa.as_deref().map(|f| &f.target) {
            Some(crate::plan::access::AuthTarget::Url { host, path, .. }) => {
                assert_eq!((host.as_str(), path.as_str()), ("127.0.0.1:9", "/v?x=1"));
            }
            other => panic!("{other:?}"),
        }
    }
}
