//! The certificate of a site imported from a TLS server block.
//!
//! `ssl_certificate` + `ssl_certificate_key` become `tls: {cert, key}`
//! (with `--acme EMAIL`, a certbot certificate becomes `tls: acme`).
//!
//! A TLS server block with no usable pair is a configuration nginx refuses
//! to start with ("no ssl_certificate is defined for the listen … ssl
//! directive"): the pair lives somewhere the file does not say (a missing
//! include, certbot lines removed before publishing). When every name of the
//! block is a public DNS name, greenlight can do what the operator plainly
//! wants — serve those names over TLS with a certificate browsers trust — by
//! ordering one (`tls: acme`); that is a note, not a warning, because no
//! behaviour of the file is lost. Otherwise (no names, wildcards, regexes,
//! IP addresses, names only a LAN resolves) no CA can validate the names, so
//! the site gets `tls: self_signed` and a warning.
//!
//! A catch-all TLS server (no `server_name`: nginx's default server for its
//! port) has no names of its own. When plain-HTTP blocks redirect names to
//! `https://` and no TLS block names them, nginx's default TLS server is
//! where those clients arrive, so those are the names its certificate must
//! carry (certbot issued it for them: the "managed by Certbot" lines that
//! publishers strip): it gets `tls: {acme: [names]}`. Its `$server_name`
//! stays empty, as in nginx, since its `hosts` do not change.

use super::ImportOptions;
use super::convert::{Ctx, Host, SiteTls};
use super::directives::shown;
use super::parse::Directive;
use super::server::ServerInfo;

/// Exact names of plain-HTTP blocks that only redirect to `https://` and
/// that no TLS block names: where a catch-all TLS server's clients come from.
pub(super) fn redirected_names(infos: &[ServerInfo<'_>]) -> Vec<String> {
    let tls_named: Vec<String> = infos
        .iter()
        .filter(|i| i.has_tls)
        .flat_map(ServerInfo::own_hosts)
        .collect();
    let mut out: Vec<String> = Vec::new();
    for i in infos
        .iter()
        .filter(|i| !i.has_tls && !i.redirects.is_empty())
    {
        for h in i.own_hosts() {
            if !tls_named.contains(&h) && !out.contains(&h) {
                out.push(h);
            }
        }
    }
    out
}

/// The `tls:` of the site made from `info`, whose hosts are `hosts`;
/// `redirected`: see [`redirected_names`].
pub(super) fn site_tls<'a>(
    ctx: &mut Ctx<'a>,
    info: &ServerInfo<'a>,
    hosts: &[Host<'a>],
    redirected: &[String],
    opts: &ImportOptions,
) -> SiteTls<'a> {
    // A path with only envsubst references (`/ssl/${DOMAIN}.crt`) is one
    // greenlight fills in from its environment (written `{$DOMAIN}`).
    let fixed =
        |d: &Directive| !d.arg0().contains('$') || super::envsubst::literal_but_refs(d.arg0());
    let usable = |d: Option<&'a Directive>| d.filter(|d| fixed(d));
    for d in [info.cert, info.key].into_iter().flatten() {
        if !fixed(d) {
            ctx.warn(
                d,
                format!("'{}' uses a variable, which greenlight does not support: name the certificate files per site", shown(d)),
            );
        }
    }
    if let (Some(cert), Some(key)) = (usable(info.cert), usable(info.key)) {
        return if opts.acme_email.is_some() && is_letsencrypt(cert.arg0()) {
            SiteTls::Acme { cert: Some(cert) }
        } else {
            SiteTls::Files { cert, key }
        };
    }
    let what = "this TLS server has no usable ssl_certificate and ssl_certificate_key pair";
    if public_names(hosts) {
        let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
        ctx.note(
            info.d,
            format!(
                "{what} (nginx does not start like this); greenlight orders a certificate for {} from Let's Encrypt itself (tls: acme), once DNS points here",
                names.join(", ")
            ),
        );
        SiteTls::Acme { cert: None }
    } else if hosts.is_empty()
        && !redirected.is_empty()
        && redirected.iter().all(|n| public_name(n))
    {
        ctx.note(
            info.d,
            format!(
                "{what} (nginx does not start like this), and no server_name: plain-HTTP blocks send {} here over https, so greenlight orders a certificate for those names from Let's Encrypt (tls: {{acme: [...]}}), once DNS points here",
                redirected.join(", ")
            ),
        );
        SiteTls::AcmeNames(redirected.to_vec())
    } else if opts.acme_email.is_some() {
        ctx.warn(
            info.d,
            format!("{what}, and its names are not all public DNS names a CA could check; it was given tls: acme"),
        );
        SiteTls::Acme { cert: None }
    } else {
        ctx.warn(
            info.d,
            format!("{what}, and its names are not all public DNS names a CA could check; it was given tls: self_signed, which browsers reject: set cert and key"),
        );
        SiteTls::SelfSigned
    }
}

/// True when there is at least one name and every name is one a public CA
/// could validate over HTTP-01 or TLS-ALPN-01: an exact DNS name under a
/// public-looking suffix (no wildcard, regex, IP address, single label, or
/// a suffix reserved for local or test use).
pub(super) fn public_names(hosts: &[Host<'_>]) -> bool {
    !hosts.is_empty() && hosts.iter().all(|h| public_name(&h.name))
}

/// Suffixes no public CA issues for (RFC 2606, RFC 6761, RFC 6762, RFC
/// 8375, and the private-use names home routers hand out).
const LOCAL_SUFFIXES: &[&str] = &[
    "localhost",
    "local",
    "lan",
    "home",
    "internal",
    "intranet",
    "corp",
    "test",
    "example",
    "invalid",
    "home.arpa",
];

fn public_name(name: &str) -> bool {
    let name = name.trim_end_matches('.');
    let labels: Vec<&str> = name.split('.').collect();
    let valid_label = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if labels.len() < 2
        || !labels.iter().all(valid_label)
        || name.parse::<std::net::IpAddr>().is_ok()
    {
        return false;
    }
    // The top-level label of a DNS name is never all digits (an IPv4
    // address written oddly, or a typo).
    if labels
        .last()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    let lower = name.to_ascii_lowercase();
    !LOCAL_SUFFIXES
        .iter()
        .any(|s| lower == *s || lower.ends_with(&format!(".{s}")))
}

/// True for certificates managed by certbot.
pub(crate) fn is_letsencrypt(path: &str) -> bool {
    path.starts_with("/etc/letsencrypt/live/")
}

#[cfg(test)]
mod tests {
    use super::public_name;

    #[test]
    fn only_names_a_public_ca_can_check_are_public() {
        for ok in [
            "example.com",
            "www.tensy.ru",
            "a-b.duckdns.org",
            "Mixed.Example.ORG.",
        ] {
            assert!(public_name(ok), "{ok}");
        }
        for no in [
            "localhost",
            "nas.local",
            "router.lan",
            "app.test",
            "a.example",
            "printer.home.arpa",
            "intranet",
            "*.example.com",
            "~^www\\.",
            "192.168.1.2",
            "::1",
            "10.0.0.300",
            "_",
            "",
            "a..b.com",
            "-a.com",
            "${DOMAIN}",
            "{$DOMAIN}.com",
        ] {
            assert!(!public_name(no), "{no}");
        }
    }
}
