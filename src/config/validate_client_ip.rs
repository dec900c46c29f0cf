//! Validation of the real-client-IP keys: `trusted_proxies` and
//! `client_ip_from`, at the top level and per site. Compiles them into
//! [`ClientIpRule`]s (CIDRs parsed, the header name checked) so that nothing
//! is parsed per request, and reports every bad entry at its position with
//! the fix. `listeners.*.proxy_protocol` is a plain switch read by
//! `validate_listeners`.

use super::diag::Diagnostics;
use super::file::{FileConfig, Scalar};
use super::model::{ClientIpRule, SiteConfig};
use super::validate::pos;
use crate::plan::client_ip::DEFAULT_HEADER;
use http::HeaderName;
use ipnet::IpNet;
use serde_saphyr::Spanned;
use std::net::IpAddr;

type TrustedList = Option<Spanned<Vec<Spanned<Scalar>>>>;

/// Builds the top-level rule and each site's own (set only on sites that
/// write one of the two keys; the other key then comes from the top level).
pub(super) fn validate(
    file: &FileConfig,
    sites: &mut [SiteConfig],
    ds: &mut Diagnostics,
) -> ClientIpRule {
    let trusted = trusted_list(&file.trusted_proxies, ds).unwrap_or_default();
    let header = header_name(&file.client_ip_from, ds).unwrap_or(DEFAULT_HEADER);
    for (name, s) in &file.sites {
        let f = &s.value;
        if f.trusted_proxies.is_none() && f.client_ip_from.is_none() {
            continue;
        }
        let rule = ClientIpRule::new(
            trusted_list(&f.trusted_proxies, ds).unwrap_or_else(|| trusted.clone()),
            header_name(&f.client_ip_from, ds).unwrap_or_else(|| header.clone()),
        );
        if let Some(site) = sites.iter_mut().find(|site| &site.name == name) {
            site.client_ip = Some(rule);
        }
    }
    ClientIpRule::new(trusted, header)
}

/// The networks of a `trusted_proxies` list; `None` when absent.
fn trusted_list(list: &TrustedList, ds: &mut Diagnostics) -> Option<Vec<IpNet>> {
    let list = list.as_ref()?;
    let mut out = Vec::with_capacity(list.value.len());
    for entry in &list.value {
        match parse_trusted(&entry.value.0) {
            Ok(net) => out.push(net),
            Err((what, fix)) => ds.error(pos(entry), what, fix),
        }
    }
    Some(out)
}

/// One `trusted_proxies` entry: a CIDR (`10.0.0.0/8`, `2400:cb00::/32`) or
/// one address. A v4-mapped IPv6 range is stored as the IPv4 range it means,
/// because peers are compared in canonical form.
pub(crate) fn parse_trusted(text: &str) -> Result<IpNet, (String, String)> {
    let t = text.trim();
    let net = if let Ok(ip) = t.parse::<IpAddr>() {
        IpNet::from(ip)
    } else {
        match t.parse::<IpNet>() {
            Ok(n) if n.addr() != n.network() => {
                return Err((
                    format!("'{t}' has bits set past its /{} prefix", n.prefix_len()),
                    format!(
                        "write `{}` for the whole network, or `{}` for the one address",
                        n.trunc(),
                        IpNet::from(n.addr())
                    ),
                ));
            }
            Ok(n) => n,
            Err(_) => {
                let fix = if t.contains('*') || t.contains('-') {
                    "write a network in CIDR form, e.g. `10.0.0.0/8` or `2400:cb00::/32`"
                } else if t.starts_with("unix:") {
                    "Unix sockets are not listeners of greenlight: list IP networks only"
                } else {
                    "write an IP address (`10.0.0.1`) or a network (`10.0.0.0/8`, `2400:cb00::/32`)"
                };
                return Err((
                    format!("'{t}' is not an IP address or network"),
                    fix.to_string(),
                ));
            }
        }
    };
    Ok(match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 && v6.addr().to_ipv4_mapped().is_some() => {
            let v4 = v6
                .addr()
                .to_ipv4_mapped()
                .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
            ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(IpNet::V4)
                .unwrap_or(net)
        }
        n => n,
    })
}

/// The header of a `client_ip_from`; `None` when absent or bad (reported).
fn header_name(v: &Option<Spanned<String>>, ds: &mut Diagnostics) -> Option<HeaderName> {
    let v = v.as_ref()?;
    match parse_header(&v.value) {
        Ok(h) => Some(h),
        Err((what, fix)) => {
            ds.error(pos(v), what, fix);
            None
        }
    }
}

/// `x-forwarded-for`, `x-real-ip`, `cf-connecting-ip`, or any header whose
/// value is an address or a comma-separated list of them.
pub(crate) fn parse_header(text: &str) -> Result<HeaderName, (String, String)> {
    let t = text.trim().to_ascii_lowercase();
    let fix_any = "write a header name: `x-forwarded-for` (the default), `x-real-ip`, `cf-connecting-ip`, or the one your load balancer sets";
    match t.as_str() {
        "proxy_protocol" | "proxy-protocol" => Err((
            "the client IP from the PROXY protocol is not a header".into(),
            "set `proxy_protocol: true` on the listener: its source address is then the connection's peer".into(),
        )),
        "forwarded" => Err((
            "the `Forwarded` header (RFC 7239, `for=...`) is not read for the client IP".into(),
            "use `x-forwarded-for`, which proxies that send `Forwarded` usually send too".into(),
        )),
        _ => match HeaderName::from_bytes(t.as_bytes()) {
            Ok(h) if !t.is_empty() => Ok(h),
            _ => Err((format!("'{}' is not a header name", text.trim()), fix_any.into())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_entries_are_networks_or_addresses() {
        assert_eq!(
            parse_trusted("10.0.0.0/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            parse_trusted(" 10.0.0.1 ").unwrap().to_string(),
            "10.0.0.1/32"
        );
        assert_eq!(
            parse_trusted("2400:cb00::/32").unwrap().to_string(),
            "2400:cb00::/32"
        );
        assert_eq!(parse_trusted("::1").unwrap().to_string(), "::1/128");
        assert_eq!(
            parse_trusted("::ffff:10.0.0.0/104").unwrap().to_string(),
            "10.0.0.0/8"
        );
    }

    #[test]
    fn bad_trusted_entries_say_how_to_fix_them() {
        let (what, fix) = parse_trusted("10.0.0.1/8").unwrap_err();
        assert!(what.contains("past its /8 prefix"), "{what}");
        assert!(
            fix.contains("`10.0.0.0/8`") && fix.contains("`10.0.0.1/32`"),
            "{fix}"
        );
        let (what, _) = parse_trusted("10.0.0.0/33").unwrap_err();
        assert!(what.contains("not an IP address or network"), "{what}");
        let (_, fix) = parse_trusted("10.0.0.*").unwrap_err();
        assert!(fix.contains("CIDR"), "{fix}");
        assert!(parse_trusted("localhost").is_err());
    }

    #[test]
    fn client_ip_from_takes_header_names() {
        assert_eq!(parse_header("X-Forwarded-For").unwrap(), "x-forwarded-for");
        assert_eq!(
            parse_header("cf-connecting-ip").unwrap(),
            "cf-connecting-ip"
        );
        assert_eq!(parse_header("True-Client-IP").unwrap(), "true-client-ip");
        assert!(parse_header("x forwarded").is_err());
        assert!(parse_header("").is_err());
        assert!(
            parse_header("proxy_protocol")
                .unwrap_err()
                .1
                .contains("proxy_protocol: true")
        );
        assert!(parse_header("Forwarded").is_err());
    }
}
