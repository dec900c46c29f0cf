//! Compiles a site's `client_auth:` into [`ClientAuth`], every problem at its
//! line and column. The CA file is read and parsed here, at load: a missing
//! or bad file is a `check` error, and a reload with one keeps the old
//! configuration (and its CAs) serving.

use super::diag::Diagnostics;
use super::file::FileSite;
use super::validate::pos;
use crate::tls::client_auth::{CaRoots, ClientAuth, VerifyMode};
use std::path::Path;
use std::sync::Arc;

/// nginx's `ssl_verify_depth` default: the client's certificate is issued
/// directly by a CA of the file.
pub const DEFAULT_DEPTH: u8 = 1;

/// The compiled `client_auth:` of site `name`; `tls` says whether the site
/// has a certificate (client certificates need TLS).
pub(super) fn client_auth(
    name: &str,
    site: &FileSite,
    tls: bool,
    ds: &mut Diagnostics,
) -> Option<Arc<ClientAuth>> {
    let c = site.client_auth.as_ref()?;
    if site.tls.is_none() {
        ds.error(
            pos(c),
            format!("site '{name}' asks for client certificates but has no `tls:`"),
            "add `tls:` to the site (client certificates are part of the TLS handshake), or remove client_auth",
        );
        return None;
    }
    // Every problem is reported, so each part is read before giving up.
    let mode = match c.value.verify.as_ref() {
        None => Some(VerifyMode::Required),
        Some(v) => match v.value.trim() {
            "required" | "on" => Some(VerifyMode::Required),
            "optional" => Some(VerifyMode::Optional),
            "optional_no_ca" => Some(VerifyMode::OptionalNoCa),
            other => {
                ds.error(
                    pos(v),
                    format!("verify '{other}' is not known"),
                    "use `required` (no or untrusted certificate: 400), `optional` (untrusted: 400) or `optional_no_ca` (ask, never refuse)",
                );
                None
            }
        },
    };
    let depth = match c.value.depth.as_ref() {
        None => Some(DEFAULT_DEPTH),
        Some(d) => match d.value.0.trim().parse::<u8>() {
            Ok(n) => Some(n),
            _ => {
                ds.error(
                    pos(d),
                    format!("depth '{}' is not a number from 0 to 255", d.value.0),
                    "give how many CA certificates may stand above the client's: 1 = issued directly by a CA of `ca:`, 0 = only certificates the `ca:` file holds itself",
                );
                None
            }
        },
    };
    let roots = match c.value.ca.as_ref() {
        Some(f) => match CaRoots::load(Path::new(f.value.trim())) {
            Ok(r) => Some(Some(r)),
            Err(e) => {
                ds.error(
                    pos(f),
                    format!("client_auth ca: {e}"),
                    "give a readable PEM file of the CA certificates that issue client certificates",
                );
                None
            }
        },
        // optional_no_ca needs none (and a bad `verify:` is reported already).
        None if !matches!(mode, Some(VerifyMode::Required | VerifyMode::Optional)) => Some(None),
        None => {
            ds.error(
                pos(c),
                format!("client_auth of site '{name}' has no `ca:`"),
                "add `ca: FILE` (PEM, the CA certificates that issue client certificates), or use `verify: optional_no_ca`",
            );
            None
        }
    };
    // A site without a certificate already has its own error.
    let (mode, depth, roots) = (mode?, depth?, roots?);
    tls.then(|| Arc::new(ClientAuth { mode, roots, depth }))
}

#[cfg(test)]
mod tests {
    fn load_str(yaml: &str) -> Result<crate::config::Config, String> {
        crate::config::load_str(std::path::Path::new("g.yaml"), yaml).map_err(|e| e.to_string())
    }

    fn ca_file(dir: &std::path::Path) -> String {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let path = dir.join("ca.pem");
        std::fs::write(&path, p.self_signed(&key).expect("ca").pem()).expect("write");
        path.display().to_string()
    }

    fn site(client_auth: &str) -> String {
        format!(
            "listeners:\n  https: {{address: 127.0.0.1:8443, tls: true}}\nupstreams:\n  app: {{active: p, pools: {{p: [\"127.0.0.1:1\"]}}}}\nsites:\n  web:\n    hosts: [a.test]\n    tls: self_signed\n    client_auth: {client_auth}\n    routes:\n      - path: /\n        upstream: app\n"
        )
    }

    #[test]
    fn a_good_client_auth_compiles_with_nginx_defaults() {
        let dir = tempfile::tempdir().expect("dir");
        let ca = ca_file(dir.path());
        let cfg = load_str(&site(&format!("{{ca: {ca}}}"))).expect("config");
        let a = cfg.sites[0].client_auth.as_ref().expect("client_auth");
        assert_eq!(a.mode, crate::tls::client_auth::VerifyMode::Required);
        assert_eq!(a.depth, 1);
        let cfg = load_str(&site("{verify: optional_no_ca}")).expect("no ca needed");
        assert!(
            cfg.sites[0]
                .client_auth
                .as_ref()
                .expect("ca")
                .roots
                .is_none()
        );
    }

    #[test]
    fn problems_name_their_line_column_and_fix() {
        let dir = tempfile::tempdir().expect("dir");
        let ca = ca_file(dir.path());
        let cases = [
            (
                "{ca: /nonexistent/ca.pem}".to_string(),
                "9:23: client_auth ca: cannot read /nonexistent/ca.pem",
            ),
            (
                "{verify: optional}".into(),
                "9:18: client_auth of site 'web' has no `ca:`",
            ),
            (
                format!("{{ca: {ca}, verify: sometimes}}"),
                "verify 'sometimes' is not known",
            ),
            (
                format!("{{ca: {ca}, depth: 256}}"),
                "depth '256' is not a number",
            ),
            (format!("{{ca: {ca}, dept: 2}}"), "unknown field `dept`"),
        ];
        for (value, want) in cases {
            let err = load_str(&site(&value)).expect_err(&value);
            assert!(err.contains(want), "{value}: {err}");
        }
        // Every problem at once.
        let err = load_str(&site("{ca: /nonexistent/ca.pem, verify: sometimes}")).expect_err("two");
        assert!(
            err.contains("verify 'sometimes'") && err.contains("cannot read"),
            "{err}"
        );
        let garbage = dir.path().join("bad.pem");
        std::fs::write(&garbage, "not a certificate\n").expect("write");
        let err = load_str(&site(&format!("{{ca: {}}}", garbage.display()))).expect_err("bad");
        assert!(err.contains("holds no certificate"), "{err}");
        let plain = site(&format!("{{ca: {ca}}}")).replace("    tls: self_signed\n", "");
        let err = load_str(&plain).expect_err("no tls");
        assert!(
            err.contains("asks for client certificates but has no `tls:`"),
            "{err}"
        );
    }
}
