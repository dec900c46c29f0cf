//! Client certificates (mutual TLS, a site's `client_auth:`): the CA roots a
//! site trusts, the verdict on a connection's certificate chain, and the
//! listener-wide rustls verifier that asks clients for a certificate.
//!
//! How it fits together, and why it is split in two:
//!
//! - rustls asks for a client certificate per *listener* (one `ServerConfig`
//!   per listener, shared by every SNI site), before the request says which
//!   site it is for. So the listener's [`ClientAuthOffer`] only *asks* (and
//!   only while some site has `client_auth`), accepts any chain whose owner
//!   proves it holds the key, and never refuses a handshake.
//! - After routing, the site the request is for judges the chain against its
//!   own roots ([`ClientAuth::verdict`], cached per connection in
//!   [`super::client_cert::PeerCert`]) and `proxy::client_cert` answers 400,
//!   as nginx does (`ssl_verify_client`): a missing or untrusted certificate
//!   is an HTTP answer the site's error pages can shape, not a TLS alert.
//!
//! Everything here is built at load (`validate_client_auth`) and swapped with
//! the certificate store; nothing is parsed per request.

use super::TlsError;
use arc_swap::ArcSwap;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, TrustAnchor, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// nginx's `ssl_verify_client`, less `off` (no `client_auth:` at all).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyMode {
    /// `on`: no certificate, or one the CA did not issue, is answered 400.
    Required,
    /// A missing certificate passes; an untrusted one is answered 400.
    Optional,
    /// Asks and records the verdict, refuses nothing (the app decides).
    OptionalNoCa,
}

impl VerifyMode {
    /// The word in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyMode::Required => "required",
            VerifyMode::Optional => "optional",
            VerifyMode::OptionalNoCa => "optional_no_ca",
        }
    }
}

/// The CA certificates of one `client_auth.ca` file, as trust anchors.
#[derive(Debug)]
pub struct CaRoots {
    /// Where they came from (for messages).
    pub path: PathBuf,
    anchors: Vec<TrustAnchor<'static>>,
    /// Their subjects, sent to clients as the acceptable CA names.
    subjects: Vec<DistinguishedName>,
    /// The certificates themselves: a client may present one of them
    /// (a pinned self-signed certificate), which OpenSSL trusts as is.
    certs: Vec<CertificateDer<'static>>,
}

impl CaRoots {
    /// Reads every certificate of the PEM file `path`; each one is trusted
    /// as it is (an intermediate in the file is an anchor too).
    pub fn load(path: &Path) -> Result<CaRoots, TlsError> {
        let pem = std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        CaRoots::from_pem(path, &pem)
    }

    /// [`CaRoots::load`] on PEM text already read.
    pub fn from_pem(path: &Path, pem: &[u8]) -> Result<CaRoots, TlsError> {
        use rustls::pki_types::pem::PemObject;
        let bad = |detail: String| TlsError::Pem {
            path: path.to_path_buf(),
            detail,
        };
        let mut anchors = Vec::new();
        let mut subjects = Vec::new();
        let mut certs = Vec::new();
        for der in CertificateDer::pem_slice_iter(pem) {
            let der = der.map_err(|e| bad(e.to_string()))?;
            let anchor = webpki::anchor_from_trusted_cert(&der)
                .map_err(|e| bad(format!("a certificate cannot be read: {e}")))?
                .to_owned();
            subjects.push(DistinguishedName::in_sequence(anchor.subject.as_ref()));
            anchors.push(anchor);
            certs.push(der);
        }
        if anchors.is_empty() {
            return Err(TlsError::Empty {
                path: path.to_path_buf(),
                what: "certificate",
            });
        }
        Ok(CaRoots {
            path: path.to_path_buf(),
            anchors,
            subjects,
            certs,
        })
    }
}

/// A site's compiled `client_auth:`.
#[derive(Debug)]
pub struct ClientAuth {
    /// What a missing or untrusted certificate gets.
    pub mode: VerifyMode,
    /// The CAs whose certificates the site accepts; `None` only with
    /// `optional_no_ca` and no `ca:` (every verdict is then a failure).
    pub roots: Option<CaRoots>,
    /// nginx's `ssl_verify_depth`: how many CA certificates (intermediates
    /// and the trusted one) may stand above the client's own; 1 = issued
    /// directly by a CA of the file (nginx's default).
    pub depth: u8,
}

/// What the site makes of the connection's certificate (`$ssl_client_verify`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No certificate was sent.
    None,
    /// Issued (through at most `depth` CAs) by one of the site's CAs, valid now.
    Success,
    /// Why not, in OpenSSL's words (what nginx reports after `FAILED:`).
    Failed(&'static str),
}

impl Verdict {
    /// Appends the `$ssl_client_verify` text.
    pub fn write(self, out: &mut String) {
        match self {
            Verdict::None => out.push_str("NONE"),
            Verdict::Success => out.push_str("SUCCESS"),
            Verdict::Failed(why) => {
                out.push_str("FAILED:");
                out.push_str(why);
            }
        }
    }
}

/// Why a request is refused, as nginx words it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `required` and no certificate (nginx's internal 496).
    NoCertificate,
    /// An untrusted certificate (nginx's internal 495).
    BadCertificate,
}

impl Refusal {
    /// The 400 answer's body.
    pub fn body(self) -> &'static str {
        match self {
            Refusal::NoCertificate => "400 Bad Request: No required SSL certificate was sent\n",
            Refusal::BadCertificate => "400 Bad Request: The SSL certificate error\n",
        }
    }
}

impl ClientAuth {
    /// Judges `chain` (leaf first, as the client sent it) at `now`.
    pub fn verdict(&self, chain: &[CertificateDer<'_>], now: UnixTime) -> Verdict {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Verdict::None;
        };
        let Some(roots) = &self.roots else {
            return Verdict::Failed("unable to get local issuer certificate");
        };
        if roots.certs.iter().any(|c| c.as_ref() == leaf.as_ref()) {
            return pinned(leaf, now);
        }
        let leaf = match webpki::EndEntityCert::try_from(leaf) {
            Ok(l) => l,
            Err(e) => return Verdict::Failed(reason(&e)),
        };
        let depth = usize::from(self.depth);
        // The trusted CA counts as one level, as in OpenSSL's depth.
        let within_depth = |path: &webpki::VerifiedPath<'_>| {
            if path.intermediate_certificates().count() < depth {
                Ok(())
            } else {
                Err(webpki::Error::MaximumPathDepthExceeded)
            }
        };
        match leaf.verify_for_usage(
            algorithms().all,
            &roots.anchors,
            intermediates,
            now,
            webpki::KeyUsage::client_auth(),
            None,
            Some(&within_depth),
        ) {
            Ok(_) => Verdict::Success,
            Err(e) => Verdict::Failed(reason(&e)),
        }
    }

    /// Whether a request with `verdict` is answered 400, and why.
    pub fn refusal(&self, verdict: Verdict) -> Option<Refusal> {
        match (self.mode, verdict) {
            (VerifyMode::Required, Verdict::None) => Some(Refusal::NoCertificate),
            (VerifyMode::Required | VerifyMode::Optional, Verdict::Failed(_)) => {
                Some(Refusal::BadCertificate)
            }
            _ => None,
        }
    }
}

/// The verdict on a certificate the CA file itself holds (nginx users pin a
/// self-signed client certificate this way; OpenSSL trusts it at depth 0,
/// webpki would refuse a CA certificate as a client's): only its validity
/// period is left to check.
fn pinned(der: &CertificateDer<'_>, now: UnixTime) -> Verdict {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Verdict::Failed("unspecified certificate verification error");
    };
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let v = cert.validity();
    if now < v.not_before.timestamp() {
        Verdict::Failed("certificate is not yet valid")
    } else if now > v.not_after.timestamp() {
        Verdict::Failed("certificate has expired")
    } else {
        Verdict::Success
    }
}

/// OpenSSL's text for a verification error (nginx puts it after `FAILED:`).
fn reason(e: &webpki::Error) -> &'static str {
    use webpki::Error as E;
    match e {
        E::UnknownIssuer => "unable to get local issuer certificate",
        E::CertExpired { .. } => "certificate has expired",
        E::CertNotValidYet { .. } => "certificate is not yet valid",
        E::MaximumPathDepthExceeded | E::PathLenConstraintViolated => "certificate chain too long",
        E::InvalidSignatureForPublicKey => "certificate signature failure",
        E::RequiredEkuNotFoundContext(_) | E::CaUsedAsEndEntity | E::EndEntityUsedAsCa => {
            "unsupported certificate purpose"
        }
        E::CertRevoked => "certificate revoked",
        _ => "unspecified certificate verification error",
    }
}

/// The signature algorithms of greenlight's rustls provider (ring).
fn algorithms() -> WebPkiSupportedAlgorithms {
    rustls::crypto::ring::default_provider().signature_verification_algorithms
}

/// The rustls verifier of every TLS listener: asks for a client certificate
/// only while some site has `client_auth:` (so sites of a config without it
/// see no CertificateRequest at all), names the CAs of those sites, checks
/// that the client holds the certificate's key, and leaves trust to the
/// routed site.
pub struct ClientAuthOffer {
    state: ArcSwap<Offer>,
    /// Every distinct CA-name list this process has offered. rustls borrows
    /// the list from the verifier for the whole handshake, so a list must
    /// outlive any reload that replaces it: each distinct list is leaked
    /// once and reused when it comes back (bounded by the distinct CA sets
    /// ever configured, not by the number of reloads).
    interned: Mutex<Vec<&'static [DistinguishedName]>>,
    algorithms: WebPkiSupportedAlgorithms,
}

#[derive(Clone, Copy, Debug, Default)]
struct Offer {
    ask: bool,
    names: &'static [DistinguishedName],
}

impl std::fmt::Debug for ClientAuthOffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAuthOffer")
            .field("state", &**self.state.load())
            .finish_non_exhaustive()
    }
}

impl Default for ClientAuthOffer {
    fn default() -> Self {
        ClientAuthOffer {
            state: ArcSwap::from_pointee(Offer::default()),
            interned: Mutex::new(Vec::new()),
            algorithms: algorithms(),
        }
    }
}

impl ClientAuthOffer {
    /// From now on, ask for a certificate when `sites` (the `client_auth:`
    /// of every TLS site that has one) is not empty, naming their CAs.
    pub fn set<'a>(&self, sites: impl IntoIterator<Item = &'a ClientAuth>) {
        let mut ask = false;
        let mut names: Vec<DistinguishedName> = Vec::new();
        for auth in sites {
            ask = true;
            for n in auth.roots.iter().flat_map(|r| &r.subjects) {
                if !names.iter().any(|m| m.as_ref() == n.as_ref()) {
                    names.push(n.clone());
                }
            }
        }
        let names = self.intern(names);
        self.state.store(Arc::new(Offer { ask, names }));
    }

    /// Whether a certificate is asked for now.
    pub fn asks(&self) -> bool {
        self.state.load().ask
    }

    fn intern(&self, names: Vec<DistinguishedName>) -> &'static [DistinguishedName] {
        if names.is_empty() {
            return &[];
        }
        let mut seen = self.interned.lock().unwrap_or_else(|p| p.into_inner());
        let same = |kept: &&&'static [DistinguishedName]| {
            kept.len() == names.len()
                && kept
                    .iter()
                    .zip(&names)
                    .all(|(a, b)| a.as_ref() == b.as_ref())
        };
        if let Some(kept) = seen.iter().find(same) {
            return kept;
        }
        let kept: &'static [DistinguishedName] = Box::leak(names.into_boxed_slice());
        seen.push(kept);
        kept
    }
}

impl ClientCertVerifier for ClientAuthOffer {
    fn offer_client_auth(&self) -> bool {
        self.state.load().ask
    }

    fn client_auth_mandatory(&self) -> bool {
        // nginx answers a missing certificate with an HTTP 400 the site can
        // shape, and a site without client_auth shares the listener.
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.state.load().names
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Trust is the routed site's to judge (its own CAs, after the Host
        // is known); the handshake signature below still proves the client
        // holds the certificate's key.
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

    struct Ca {
        params: CertificateParams,
        cert: rcgen::Certificate,
        key: KeyPair,
    }

    fn ca(name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.distinguished_name
            .push(rcgen::DnType::CommonName, name.to_string());
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("key");
        let cert = p.self_signed(&key).expect("ca");
        Ca {
            params: p,
            cert,
            key,
        }
    }

    fn issue(by: &Ca, is_ca: bool) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "client");
        if is_ca {
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        let key = KeyPair::generate().expect("key");
        let issuer = rcgen::Issuer::from_params(&by.params, &by.key);
        let cert = p.signed_by(&key, &issuer).expect("sign");
        Ca {
            params: p,
            cert,
            key,
        }
    }

    fn auth(roots: &[&Ca], depth: u8, mode: VerifyMode) -> ClientAuth {
        let pem: String = roots.iter().map(|c| c.cert.pem()).collect();
        ClientAuth {
            mode,
            roots: Some(CaRoots::from_pem(Path::new("ca.pem"), pem.as_bytes()).expect("roots")),
            depth,
        }
    }

    fn der(c: &Ca) -> CertificateDer<'static> {
        c.cert.der().clone()
    }

    #[test]
    fn a_chain_is_judged_against_the_sites_own_roots_and_depth() {
        let root = ca("root");
        let other = ca("other");
        let leaf = issue(&root, false);
        let now = UnixTime::now();
        let a = auth(&[&root], 1, VerifyMode::Required);
        assert_eq!(a.verdict(&[der(&leaf)], now), Verdict::Success);
        assert_eq!(a.verdict(&[], now), Verdict::None);
        let foreign = auth(&[&other], 1, VerifyMode::Required);
        assert_eq!(
            foreign.verdict(&[der(&leaf)], now),
            Verdict::Failed("unable to get local issuer certificate")
        );
        // Through an intermediate: depth 1 (nginx's default) refuses it,
        // depth 2 takes it.
        let mid = issue(&root, true);
        let deep = issue(&mid, false);
        let chain = [der(&deep), der(&mid)];
        assert_eq!(
            a.verdict(&chain, now),
            Verdict::Failed("certificate chain too long")
        );
        assert_eq!(
            auth(&[&root], 2, VerifyMode::Required).verdict(&chain, now),
            Verdict::Success
        );
        // Expired by the clock it is judged at (rcgen's certificates end in 4096).
        let later = UnixTime::since_unix_epoch(std::time::Duration::from_secs(100_000_000_000));
        assert_eq!(
            a.verdict(&[der(&leaf)], later),
            Verdict::Failed("certificate has expired")
        );
    }

    #[test]
    fn a_certificate_pinned_in_the_ca_file_passes_even_as_its_own_ca() {
        // nginx users list a self-signed client certificate (CA:TRUE, as
        // `openssl req -x509` makes it) in ssl_client_certificate.
        let me = ca("pinned client");
        let a = auth(&[&me], 1, VerifyMode::Required);
        assert_eq!(a.verdict(&[der(&me)], UnixTime::now()), Verdict::Success);
        let later = UnixTime::since_unix_epoch(std::time::Duration::from_secs(100_000_000_000));
        assert_eq!(
            a.verdict(&[der(&me)], later),
            Verdict::Failed("certificate has expired")
        );
        // Another self-signed certificate is not trusted for it.
        assert_ne!(
            a.verdict(&[der(&ca("pinned client"))], UnixTime::now()),
            Verdict::Success
        );
    }

    #[test]
    fn refusals_follow_nginx_modes() {
        let bad = Verdict::Failed("x");
        let mode = |m| ClientAuth {
            mode: m,
            roots: None,
            depth: 1,
        };
        let r = mode(VerifyMode::Required);
        assert_eq!(r.refusal(Verdict::None), Some(Refusal::NoCertificate));
        assert_eq!(r.refusal(bad), Some(Refusal::BadCertificate));
        assert_eq!(r.refusal(Verdict::Success), None);
        let o = mode(VerifyMode::Optional);
        assert_eq!(o.refusal(Verdict::None), None);
        assert_eq!(o.refusal(bad), Some(Refusal::BadCertificate));
        let n = mode(VerifyMode::OptionalNoCa);
        assert_eq!(n.refusal(bad), None);
        assert_eq!(n.refusal(Verdict::None), None);
        // No CA at all (optional_no_ca): a certificate is never trusted.
        let leaf = issue(&ca("root"), false);
        assert_eq!(
            n.verdict(&[der(&leaf)], UnixTime::now()),
            Verdict::Failed("unable to get local issuer certificate")
        );
        let mut text = String::new();
        bad.write(&mut text);
        Verdict::Success.write(&mut text);
        Verdict::None.write(&mut text);
        assert_eq!(text, "FAILED:xSUCCESSNONE");
    }

    #[test]
    fn the_listener_asks_only_while_a_site_wants_certificates() {
        let offer = ClientAuthOffer::default();
        assert!(!offer.offer_client_auth(), "nothing configured: no request");
        assert!(!offer.client_auth_mandatory());
        let one = auth(&[&ca("one")], 1, VerifyMode::Required);
        let two = auth(&[&ca("two")], 1, VerifyMode::Optional);
        offer.set([&one, &two, &one]);
        assert!(offer.offer_client_auth());
        assert_eq!(offer.root_hint_subjects().len(), 2, "each CA named once");
        let first = offer.root_hint_subjects().as_ptr();
        offer.set(std::iter::empty());
        assert!(!offer.asks());
        assert!(offer.root_hint_subjects().is_empty());
        offer.set([&one, &two]);
        assert_eq!(
            offer.root_hint_subjects().as_ptr(),
            first,
            "the same names are reused, not leaked again"
        );
    }

    #[test]
    fn a_ca_file_without_certificates_or_with_garbage_is_refused() {
        let empty = CaRoots::from_pem(Path::new("ca.pem"), b"nothing here\n").unwrap_err();
        assert!(
            empty.to_string().contains("holds no certificate"),
            "{empty}"
        );
        let garbage = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let bad = CaRoots::from_pem(Path::new("ca.pem"), garbage).unwrap_err();
        assert!(bad.to_string().contains("ca.pem"), "{bad}");
        let missing = CaRoots::load(Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert!(missing.to_string().contains("cannot read"), "{missing}");
    }
}
