//! The certificate a client sent on one connection ([`PeerCert`]): read once
//! when the handshake completes, judged once per site configuration, and the
//! text of the nginx variables a request can pass upstream
//! (`$ssl_client_s_dn`, `$ssl_client_i_dn`, `$ssl_client_serial`,
//! `$ssl_client_fingerprint`, `$ssl_client_escaped_cert`).
//!
//! A connection only carries one when some site has `client_auth:` (the
//! listener asks for certificates only then), so a config without it never
//! builds one.

use super::client_auth::{ClientAuth, Verdict};
use rustls::pki_types::{CertificateDer, UnixTime};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

/// The client's certificate chain and what the variables say of its leaf.
#[derive(Debug)]
pub struct PeerCert {
    chain: Vec<CertificateDer<'static>>,
    /// Subject, RFC 2253 (as nginx prints it since 1.11.6).
    pub subject: String,
    /// Issuer, RFC 2253.
    pub issuer: String,
    /// Serial number, upper-case hex (OpenSSL's `i2a_ASN1_INTEGER`).
    pub serial: String,
    /// SHA-1 of the DER, lower-case hex.
    pub fingerprint: String,
    /// The leaf in PEM, percent-encoded; made on first use only.
    escaped: OnceLock<String>,
    /// The last verdict and the site configuration that gave it: one
    /// connection serves one site (a Host of another is 421), so one slot
    /// saves every later request the chain verification; a reload makes a
    /// new configuration and the next request judges again.
    judged: Mutex<Option<(Arc<ClientAuth>, Verdict)>>,
}

impl PeerCert {
    /// Reads the chain the client sent (leaf first); `None` when it sent none.
    pub fn new(chain: &[CertificateDer<'_>]) -> Option<PeerCert> {
        let leaf = chain.first()?;
        let (subject, issuer, serial) = match x509_parser::parse_x509_certificate(leaf) {
            Ok((_, cert)) => (
                rfc2253(cert.subject()),
                rfc2253(cert.issuer()),
                serial_hex(cert.raw_serial()),
            ),
            // The handshake signature was checked against this certificate,
            // so it parses as one; keep the chain and say nothing.
            Err(_) => Default::default(),
        };
        let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, leaf);
        let mut fingerprint = String::with_capacity(40);
        for b in digest.as_ref() {
            let _ = write!(fingerprint, "{b:02x}");
        }
        Some(PeerCert {
            chain: chain.iter().map(|c| c.clone().into_owned()).collect(),
            subject,
            issuer,
            serial,
            fingerprint,
            escaped: OnceLock::new(),
            judged: Mutex::new(None),
        })
    }

    /// The verdict of `auth` on this chain, computed once per `auth`.
    pub fn verdict(&self, auth: &Arc<ClientAuth>) -> Verdict {
        let mut judged = self.judged.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((by, v)) = judged.as_ref()
            && Arc::ptr_eq(by, auth)
        {
            return *v;
        }
        let v = auth.verdict(&self.chain, UnixTime::now());
        *judged = Some((auth.clone(), v));
        v
    }

    /// `$ssl_client_escaped_cert`: the leaf in PEM, percent-encoded.
    pub fn escaped(&self) -> &str {
        self.escaped.get_or_init(|| {
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::STANDARD.encode(&self.chain[0]);
            let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
            for line in b64.as_bytes().chunks(64) {
                pem.push_str(std::str::from_utf8(line).unwrap_or_default());
                pem.push('\n');
            }
            pem.push_str("-----END CERTIFICATE-----\n");
            // nginx escapes it as a URI component: all but letters, digits
            // and `-._~`.
            const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
                .remove(b'-')
                .remove(b'.')
                .remove(b'_')
                .remove(b'~');
            percent_encoding::utf8_percent_encode(&pem, COMPONENT).to_string()
        })
    }
}

/// The client-certificate values of one request: the connection's
/// certificate (if any) and the routed site's verdict on it. Absent from a
/// request to a site without `client_auth:` (its `$ssl_client_verify` is
/// `NONE`, as nginx never asked there).
#[derive(Clone, Debug)]
pub struct ClientVars {
    /// What the client sent.
    pub peer: Option<Arc<PeerCert>>,
    /// The site's verdict.
    pub verdict: Verdict,
}

/// The `$ssl_client_*` variables greenlight knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslClientVar {
    /// `$ssl_client_verify`: `SUCCESS`, `NONE` or `FAILED:reason`.
    Verify,
    /// `$ssl_client_s_dn`: the subject, RFC 2253.
    SubjectDn,
    /// `$ssl_client_i_dn`: the issuer, RFC 2253.
    IssuerDn,
    /// `$ssl_client_serial`: the serial number in hex.
    Serial,
    /// `$ssl_client_fingerprint`: SHA-1 of the certificate, hex.
    Fingerprint,
    /// `$ssl_client_escaped_cert`: the PEM, percent-encoded.
    EscapedCert,
}

impl SslClientVar {
    /// The variable called `name` (without `$`).
    pub fn from_name(name: &str) -> Option<SslClientVar> {
        Some(match name {
            "ssl_client_verify" => SslClientVar::Verify,
            "ssl_client_s_dn" => SslClientVar::SubjectDn,
            "ssl_client_i_dn" => SslClientVar::IssuerDn,
            "ssl_client_serial" => SslClientVar::Serial,
            "ssl_client_fingerprint" => SslClientVar::Fingerprint,
            "ssl_client_escaped_cert" => SslClientVar::EscapedCert,
            _ => return None,
        })
    }

    /// Appends the value for a request with `vars` (`None`: a site without
    /// `client_auth:`, or plain HTTP: `NONE` and empty values, as nginx
    /// gives where it never asked).
    pub fn write(self, vars: Option<&ClientVars>, out: &mut String) {
        if self == SslClientVar::Verify {
            vars.map_or(Verdict::None, |v| v.verdict).write(out);
            return;
        }
        let Some(p) = vars.and_then(|v| v.peer.as_deref()) else {
            return;
        };
        out.push_str(match self {
            SslClientVar::SubjectDn => &p.subject,
            SslClientVar::IssuerDn => &p.issuer,
            SslClientVar::Serial => &p.serial,
            SslClientVar::Fingerprint => &p.fingerprint,
            SslClientVar::EscapedCert => p.escaped(),
            SslClientVar::Verify => "",
        });
    }
}

/// A name in RFC 2253 form as OpenSSL's `XN_FLAG_RFC2253` prints it: the
/// last RDN first, `,` between RDNs, `+` inside one, short attribute names,
/// special characters escaped with `\`, bytes outside printable ASCII as
/// `\XX`, values that are not strings as `#` and their DER in hex.
pub fn rfc2253(name: &x509_parser::x509::X509Name<'_>) -> String {
    let mut out = String::new();
    for (i, rdn) in name
        .iter_rdn()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        for (j, atv) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let oid = atv.attr_type();
            match short_name(oid.as_bytes()) {
                Some(n) => out.push_str(n),
                None => out.push_str(&oid.to_id_string()),
            }
            out.push('=');
            match atv.as_str() {
                Ok(v) => escape_value(v, &mut out),
                Err(_) => {
                    // RFC 2253 §2.4: `#` then the BER of the value in hex.
                    out.push('#');
                    let any = atv.attr_value();
                    let _ = write!(out, "{:02X}", any.tag().0);
                    // Short form length is enough for attribute values.
                    let data = any.data;
                    let _ = write!(out, "{:02X}", data.len().min(0x7f));
                    for b in data {
                        let _ = write!(out, "{b:02X}");
                    }
                }
            }
        }
    }
    out
}

/// OpenSSL's short names of the attributes certificates use (by the DER of
/// their OID).
fn short_name(oid: &[u8]) -> Option<&'static str> {
    Some(match oid {
        [0x55, 0x04, 0x03] => "CN",
        [0x55, 0x04, 0x04] => "SN",
        [0x55, 0x04, 0x05] => "serialNumber",
        [0x55, 0x04, 0x06] => "C",
        [0x55, 0x04, 0x07] => "L",
        [0x55, 0x04, 0x08] => "ST",
        [0x55, 0x04, 0x09] => "street",
        [0x55, 0x04, 0x0a] => "O",
        [0x55, 0x04, 0x0b] => "OU",
        [0x55, 0x04, 0x0c] => "title",
        [0x55, 0x04, 0x2a] => "GN",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => "UID",
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => "emailAddress",
        _ => return None,
    })
}

/// Appends `v` escaped as an RFC 2253 attribute value.
fn escape_value(v: &str, out: &mut String) {
    let bytes = v.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let special = matches!(b, b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';')
            || (i == 0 && (b == b'#' || b == b' '))
            || (i == bytes.len() - 1 && b == b' ');
        if special {
            out.push('\\');
            out.push(b as char);
        } else if !(0x20..0x7f).contains(&b) {
            let _ = write!(out, "\\{b:02X}");
        } else {
            out.push(b as char);
        }
    }
}

/// A DER INTEGER's content as OpenSSL prints a serial: upper-case hex,
/// without the sign byte DER adds before a high bit.
fn serial_hex(raw: &[u8]) -> String {
    let raw = match raw {
        [0, rest @ ..] if !rest.is_empty() => rest,
        r => r,
    };
    if raw.is_empty() {
        return "00".into();
    }
    let mut s = String::with_capacity(raw.len() * 2);
    for b in raw {
        let _ = write!(s, "{b:02X}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair};

    fn cert(dn: &[(DnType, &str)], serial: &[u8]) -> CertificateDer<'static> {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.distinguished_name = rcgen::DistinguishedName::new();
        for (t, v) in dn {
            p.distinguished_name.push(t.clone(), *v);
        }
        p.serial_number = Some(rcgen::SerialNumber::from_slice(serial));
        let key = KeyPair::generate().expect("key");
        p.self_signed(&key).expect("cert").der().clone()
    }

    #[test]
    fn names_print_as_openssl_rfc2253_last_rdn_first_and_escaped() {
        let der = cert(
            &[
                (DnType::CountryName, "FR"),
                (DnType::OrganizationName, "Acme, Inc."),
                (DnType::CommonName, " alice+ops "),
            ],
            &[0x00, 0x9f, 0x01],
        );
        let p = PeerCert::new(std::slice::from_ref(&der)).expect("peer");
        assert_eq!(p.subject, r"CN=\ alice\+ops\ ,O=Acme\, Inc.,C=FR");
        assert_eq!(p.issuer, p.subject, "self-signed");
        assert_eq!(p.serial, "9F01", "no DER sign byte");
        assert_eq!(p.fingerprint.len(), 40);
        assert!(
            p.fingerprint
                .chars()
                .all(|c| matches!(c, '0'..='9' | 'a'..='f'))
        );
        let e = p.escaped();
        assert!(e.starts_with("-----BEGIN%20CERTIFICATE-----%0A"), "{e}");
        assert!(e.ends_with("-----END%20CERTIFICATE-----%0A"), "{e}");
        assert!(!e.contains('/') && !e.contains('+') && !e.contains('='));
        assert!(PeerCert::new(&[]).is_none());
    }

    #[test]
    fn variables_read_the_request_verdict_and_none_where_nothing_was_asked() {
        use super::super::client_auth::Verdict;
        let der = cert(&[(DnType::CommonName, "bob")], &[0x42]);
        let peer = PeerCert::new(std::slice::from_ref(&der)).map(Arc::new);
        let vars = ClientVars {
            peer,
            verdict: Verdict::Failed("certificate has expired"),
        };
        let read = |name: &str, vars: Option<&ClientVars>| {
            let mut out = String::new();
            SslClientVar::from_name(name)
                .expect("known")
                .write(vars, &mut out);
            out
        };
        assert_eq!(
            read("ssl_client_verify", Some(&vars)),
            "FAILED:certificate has expired"
        );
        assert_eq!(read("ssl_client_s_dn", Some(&vars)), "CN=bob");
        assert_eq!(read("ssl_client_i_dn", Some(&vars)), "CN=bob");
        assert_eq!(read("ssl_client_serial", Some(&vars)), "42");
        assert_eq!(read("ssl_client_fingerprint", Some(&vars)).len(), 40);
        assert!(read("ssl_client_escaped_cert", Some(&vars)).starts_with("-----BEGIN%20"));
        assert_eq!(read("ssl_client_verify", None), "NONE");
        assert_eq!(read("ssl_client_s_dn", None), "");
        assert!(SslClientVar::from_name("ssl_client_raw_cert").is_none());
        // Templates know them (and the importer asks templates).
        let t = crate::plan::template::Template::parse(
            "$ssl_client_verify/$ssl_client_s_dn",
            &Default::default(),
        );
        assert!(t.is_ok(), "{t:?}");
    }

    #[test]
    fn serials_and_values_outside_printable_ascii() {
        assert_eq!(serial_hex(&[0x01, 0x02]), "0102");
        assert_eq!(serial_hex(&[0x00]), "00");
        assert_eq!(serial_hex(&[]), "00");
        let mut out = String::new();
        escape_value("#é\u{1}", &mut out);
        assert_eq!(out, r"\#\C3\A9\01");
    }
}
