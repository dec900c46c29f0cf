//! `ssl_client_certificate`, `ssl_verify_client`, `ssl_verify_depth` (http
//! or server level) → a TLS site's `client_auth: {ca, verify, depth}`.
//!
//! Each directive is inherited on its own from the http level, as nginx
//! does. `ssl_verify_client off` (nginx's default) is a note; a CA file
//! without `ssl_verify_client` asks nothing in nginx, so it is a note too.
//! `ssl_trusted_certificate` stands in for the CA file when only it is
//! given (nginx verifies against both; it only does not name those CAs to
//! the client).

use super::convert::Ctx;
use super::parse::Directive;
use super::yaml::{Out, scalar};

/// The client-certificate directives of one level.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ClientAuthDirs<'a> {
    ca: Option<&'a Directive>,
    verify: Option<&'a Directive>,
    depth: Option<&'a Directive>,
    trusted: Option<&'a Directive>,
}

impl<'a> ClientAuthDirs<'a> {
    /// Records `d` when it is one of this module's directives.
    pub fn record(&mut self, d: &'a Directive) -> bool {
        let slot = match d.name.as_str() {
            "ssl_client_certificate" => &mut self.ca,
            "ssl_verify_client" => &mut self.verify,
            "ssl_verify_depth" => &mut self.depth,
            // Also read (not consumed): it keeps its own note in the table.
            "ssl_trusted_certificate" => {
                self.trusted = Some(d);
                return false;
            }
            _ => return false,
        };
        *slot = Some(d);
        true
    }

    /// These directives over `outer`'s (each one inherited on its own).
    pub fn over(self, outer: &ClientAuthDirs<'a>) -> ClientAuthDirs<'a> {
        ClientAuthDirs {
            ca: self.ca.or(outer.ca),
            verify: self.verify.or(outer.verify),
            depth: self.depth.or(outer.depth),
            trusted: self.trusted.or(outer.trusted),
        }
    }
}

/// A site's `client_auth:` to emit.
#[derive(Debug, Clone)]
pub(crate) struct ClientAuthOut<'a> {
    verify: &'static str,
    verify_d: &'a Directive,
    ca: Option<&'a Directive>,
    depth: Option<&'a Directive>,
}

/// The `client_auth:` of a server with TLS, from the directives in force;
/// `None` (with notes or warnings said) when nginx asked no certificate.
pub(crate) fn convert<'a>(
    ctx: &mut Ctx<'a>,
    dirs: &ClientAuthDirs<'a>,
    has_tls: bool,
) -> Option<ClientAuthOut<'a>> {
    let off = |ctx: &mut Ctx<'a>, why: &str| {
        for d in [dirs.ca, dirs.depth].into_iter().flatten() {
            ctx.note(d, format!("'{}' is not needed: {why}", d.name));
        }
    };
    let Some(v) = dirs.verify else {
        off(
            ctx,
            "without ssl_verify_client nginx asks clients for no certificate",
        );
        return None;
    };
    let verify = match v.arg0() {
        "off" => {
            ctx.note(
                v,
                "'ssl_verify_client off' is not needed: it is nginx's default, and greenlight asks no client certificate without `client_auth:`",
            );
            off(ctx, "ssl_verify_client is off");
            return None;
        }
        "on" => "required",
        "optional" => "optional",
        "optional_no_ca" => "optional_no_ca",
        other => {
            ctx.warn(
                v,
                format!("'ssl_verify_client {other}' is not a value nginx knows; no client certificate is asked"),
            );
            return None;
        }
    };
    if !has_tls {
        ctx.note(
            v,
            "'ssl_verify_client' is not needed: this server has no TLS listen, so nginx never asked for a certificate",
        );
        off(ctx, "this server has no TLS listen");
        return None;
    }
    let ca = dirs.ca.or(dirs.trusted);
    if ca.is_none() && verify != "optional_no_ca" {
        ctx.warn(
            v,
            format!("'ssl_verify_client {}' has no ssl_client_certificate (nginx refuses such a configuration); no client certificate is asked, so whatever this protected is now open", v.arg0()),
        );
        return None;
    }
    Some(ClientAuthOut {
        verify,
        verify_d: v,
        ca,
        depth: dirs.depth,
    })
}

/// Writes `client_auth:` at `indent`; `from` gives a directive's origin.
pub(crate) fn emit(
    out: &mut Out,
    indent: usize,
    c: &ClientAuthOut<'_>,
    from: impl Fn(&Directive) -> String,
) {
    out.line(indent, "client_auth:", None);
    if let Some(ca) = c.ca {
        out.line(
            indent + 1,
            &format!("ca: {}", scalar(ca.arg0())),
            Some(&from(ca)),
        );
    }
    out.line(
        indent + 1,
        &format!("verify: {}", c.verify),
        Some(&from(c.verify_d)),
    );
    if let Some(d) = c.depth {
        let n = d.arg0();
        let v = if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
            n.to_string()
        } else {
            scalar(n)
        };
        out.line(indent + 1, &format!("depth: {v}"), Some(&from(d)));
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ImportOptions, import_str};

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

    fn tls_server(body: &str) -> String {
        format!(
            "server {{ listen 443 ssl; server_name a.test;\nssl_certificate /c.pem; ssl_certificate_key /k.pem;\n{body}\nlocation / {{ proxy_pass http://127.0.0.1:1; proxy_set_header X-Verify $ssl_client_verify; proxy_set_header X-Dn $ssl_client_s_dn; }}\n}}\n"
        )
    }

    #[test]
    fn verify_on_with_a_ca_becomes_client_auth_required() {
        let (y, w, _) = run(&tls_server(
            "ssl_client_certificate /etc/nginx/ca.pem;\nssl_verify_client on;\nssl_verify_depth 2;",
        ));
        assert!(
            y.contains("    client_auth:\n      ca: /etc/nginx/ca.pem  # from t.conf:3\n      verify: required  # from t.conf:4\n      depth: 2  # from t.conf:5\n"),
            "{y}"
        );
        assert!(y.contains("X-Verify: \"$ssl_client_verify\""), "{y}");
        assert!(y.contains("X-Dn: \"$ssl_client_s_dn\""), "{y}");
        assert!(w.is_empty(), "{w:#?}");
    }

    #[test]
    fn http_level_directives_are_inherited_one_by_one() {
        let text = format!(
            "http {{ ssl_client_certificate /ca.pem; ssl_verify_client optional;\n{}}}\n",
            tls_server("ssl_verify_client optional_no_ca;")
        );
        let (y, w, _) = run(&text);
        assert!(y.contains("ca: /ca.pem  # from t.conf:1"), "{y}");
        assert!(y.contains("verify: optional_no_ca  # from t.conf:4"), "{y}");
        assert!(w.is_empty(), "{w:#?}");
    }

    #[test]
    fn off_and_a_lone_ca_are_notes_and_a_missing_ca_is_a_warning() {
        let (y, w, n) = run(&tls_server(
            "ssl_client_certificate /ca.pem;\nssl_verify_client off;",
        ));
        assert!(!y.contains("client_auth"), "{y}");
        assert!(w.is_empty(), "{w:#?}");
        assert!(
            n.iter().any(|n| n.contains("'ssl_verify_client off' is not needed: it is nginx's default")),
            "{n:#?}"
        );
        assert!(
            n.iter()
                .any(|n| n.contains("'ssl_client_certificate' is not needed")),
            "{n:#?}"
        );
        let (y, _, n) = run(&tls_server("ssl_client_certificate /ca.pem;"));
        assert!(!y.contains("client_auth"), "{y}");
        assert!(
            n.iter()
                .any(|n| n.contains("without ssl_verify_client nginx asks")),
            "{n:#?}"
        );
        let (y, w, _) = run(&tls_server("ssl_verify_client on;"));
        assert!(!y.contains("client_auth"), "{y}");
        assert!(
            w.iter()
                .any(|w| w.contains("has no ssl_client_certificate")),
            "{w:#?}"
        );
        // ssl_trusted_certificate stands in for the CA file.
        let (y, w, _) = run(&tls_server(
            "ssl_trusted_certificate /t.pem;\nssl_verify_client on;",
        ));
        assert!(y.contains("ca: /t.pem  # from t.conf:3"), "{y}");
        assert!(w.is_empty(), "{w:#?}");
    }

    #[test]
    fn a_plain_server_asks_nothing() {
        let (y, w, n) = run(
            "server { listen 80; server_name a.test; ssl_client_certificate /ca.pem; ssl_verify_client on;\nlocation / { proxy_pass http://127.0.0.1:1; } }\n",
        );
        assert!(!y.contains("client_auth"), "{y}");
        assert!(w.is_empty(), "{w:#?}");
        assert!(n.iter().any(|n| n.contains("no TLS listen")), "{n:#?}");
    }
}
