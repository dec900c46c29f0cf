//! The challenge answers the proxy serves while an ACME order runs.
//!
//! Owns only an in-memory map: `(host, token) -> key authorization` for
//! http-01 and `host -> challenge certificate` for tls-alpn-01 (RFC 8737).
//! Must not touch files, the network or the proxy's own certificates.
//!
//! Data flow: `AcmeManager::obtain` adds an entry (getting a
//! [`ChallengeGuard`]) before telling the CA the challenge is ready; the proxy
//! looks entries up per request / per `acme-tls/1` handshake; the guard's drop
//! removes the entry when the order completes, fails or is cancelled. The
//! store is a cheap clone (one `Arc`); lookups take a read lock for a hash
//! lookup and never wait on the network.
//!
//! Fleet mode: an order also hands each answer to a [`ChallengeSink`]
//! (`cluster::acme` publishes it in etcd) before the CA is told to validate,
//! and every member adds the answers it watches with [`Challenges::add`], so
//! whichever member the CA reaches answers. An answer travels as a
//! [`ChallengeAnswer`] (what the CA checks, no private key: each member makes
//! its own tls-alpn-01 certificate from the digest).

use super::AcmeError;
use async_trait::async_trait;
use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The ALPN protocol of tls-alpn-01 validation connections (RFC 8737).
pub const ACME_TLS_ALPN_PROTOCOL: &[u8] = b"acme-tls/1";

/// The path prefix of http-01 requests; the rest of the path is the token.
pub const HTTP01_PATH_PREFIX: &str = "/.well-known/acme-challenge/";

/// One challenge answer, as an order makes it and as the fleet shares it
/// (JSON in etcd: `{"type": "http-01", "host", "token", "key_authorization"}`
/// or `{"type": "tls-alpn-01", "host", "digest"}` with the SHA-256 of the key
/// authorization in hex).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum ChallengeAnswer {
    /// Served at `/.well-known/acme-challenge/<token>` for `host`.
    #[serde(rename = "http-01")]
    Http01 {
        /// The name being validated.
        host: String,
        /// The challenge token (the last path segment).
        token: String,
        /// The body to answer with.
        key_authorization: String,
    },
    /// An RFC 8737 certificate for `host` carrying `digest`.
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01 {
        /// The name being validated.
        host: String,
        /// SHA-256 of the key authorization, lowercase hex.
        digest: String,
    },
}

impl ChallengeAnswer {
    /// The name the answer is for.
    pub fn host(&self) -> &str {
        match self {
            ChallengeAnswer::Http01 { host, .. } | ChallengeAnswer::TlsAlpn01 { host, .. } => host,
        }
    }
}

/// Somewhere else an order's answers must be published before the CA is
/// told to validate them (fleet mode: etcd, for the other members).
#[async_trait]
pub trait ChallengeSink: Send + Sync {
    /// Publishes `answer`; returns once it can be served where the CA may
    /// connect. Withdrawing the answers after the order is the sink owner's
    /// business (the order only ends).
    async fn publish(&self, answer: &ChallengeAnswer) -> Result<(), AcmeError>;
}

/// Challenge answers, shared between the ACME service and the proxy.
#[derive(Clone, Default)]
pub struct Challenges {
    inner: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    entries: RwLock<Entries>,
    /// Number of tls-alpn-01 entries, readable without the lock (the TLS
    /// listener checks it on every connection).
    tls_alpn01_count: AtomicUsize,
}

#[derive(Default)]
struct Entries {
    /// host -> token -> key authorization.
    http01: HashMap<String, HashMap<String, String>>,
    /// host -> RFC 8737 certificate.
    tls_alpn01: HashMap<String, Arc<CertifiedKey>>,
}

impl std::fmt::Debug for Challenges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = self.read();
        f.debug_struct("Challenges")
            .field("http01_hosts", &e.http01.len())
            .field("tls_alpn01_hosts", &e.tls_alpn01.len())
            .finish()
    }
}

impl Challenges {
    /// An empty store.
    pub fn new() -> Challenges {
        Challenges::default()
    }

    /// The key authorization to answer `GET /.well-known/acme-challenge/<token>`
    /// with, only when `host` (a Host header; a port is ignored, case too) has
    /// a pending http-01 challenge with exactly this token.
    pub fn http01(&self, host: &str, token: &str) -> Option<String> {
        let host = normalize_host(host);
        self.read().http01.get(&host)?.get(token).cloned()
    }

    /// Like [`Challenges::http01`] for a whole request path; `None` when the
    /// path is not under [`HTTP01_PATH_PREFIX`].
    pub fn http01_path(&self, host: &str, path: &str) -> Option<String> {
        let token = path.strip_prefix(HTTP01_PATH_PREFIX)?;
        if token.is_empty() || token.contains('/') {
            return None;
        }
        self.http01(host, token)
    }

    /// The RFC 8737 challenge certificate for a handshake whose ALPN is
    /// `acme-tls/1` and whose SNI is `sni`, when one is pending.
    pub fn tls_alpn01(&self, sni: &str) -> Option<Arc<CertifiedKey>> {
        self.read().tls_alpn01.get(&normalize_host(sni)).cloned()
    }

    /// True while a tls-alpn-01 answer is published: one atomic load, so
    /// a TLS listener can skip looking at ClientHellos the rest of the time.
    pub fn tls_alpn01_pending(&self) -> bool {
        self.inner.tls_alpn01_count.load(Ordering::Acquire) > 0
    }

    /// True when no challenge is pending (the proxy may skip lookups).
    pub fn is_empty(&self) -> bool {
        let e = self.read();
        e.http01.is_empty() && e.tls_alpn01.is_empty()
    }

    /// Publishes an http-01 answer until the returned guard is dropped.
    pub fn add_http01(&self, host: &str, token: &str, key_authorization: &str) -> ChallengeGuard {
        let host = normalize_host(host);
        self.write()
            .http01
            .entry(host.clone())
            .or_default()
            .insert(token.to_string(), key_authorization.to_string());
        ChallengeGuard {
            store: self.clone(),
            entry: Entry::Http01 {
                host,
                token: token.to_string(),
            },
        }
    }

    /// Publishes a tls-alpn-01 certificate for `host` until the returned guard
    /// is dropped. `key_authorization_sha256` is the SHA-256 digest of the key
    /// authorization (32 bytes); the certificate is self-signed with a fresh
    /// P-256 key, names only `host`, and carries it in the critical
    /// `id-pe-acmeIdentifier` extension (1.3.6.1.5.5.7.1.31).
    pub fn add_tls_alpn01(
        &self,
        host: &str,
        key_authorization_sha256: &[u8],
    ) -> Result<ChallengeGuard, AcmeError> {
        let host = normalize_host(host);
        let key = challenge_cert(&host, key_authorization_sha256)?;
        if self.write().tls_alpn01.insert(host.clone(), key).is_none() {
            self.inner.tls_alpn01_count.fetch_add(1, Ordering::AcqRel);
        }
        Ok(ChallengeGuard {
            store: self.clone(),
            entry: Entry::TlsAlpn01 { host },
        })
    }

    /// Publishes `answer` until the returned guard is dropped (the http-01 or
    /// tls-alpn-01 `add_*` above, from its shared form).
    pub fn add(&self, answer: &ChallengeAnswer) -> Result<ChallengeGuard, AcmeError> {
        match answer {
            ChallengeAnswer::Http01 {
                host,
                token,
                key_authorization,
            } => Ok(self.add_http01(host, token, key_authorization)),
            ChallengeAnswer::TlsAlpn01 { host, digest } => {
                let bytes = from_hex(digest).ok_or_else(|| AcmeError::ChallengeSetup {
                    identifier: host.clone(),
                    detail: format!("'{digest}' is not a hex digest"),
                })?;
                self.add_tls_alpn01(host, &bytes)
            }
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Entries> {
        // A panic elsewhere while holding the lock cannot leave the maps
        // half-updated (single inserts/removes), so poisoning is ignored.
        self.inner.entries.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Entries> {
        self.inner
            .entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
    }
}

/// Keeps one challenge answer published; dropping it removes the answer.
#[must_use = "the challenge answer is removed when the guard is dropped"]
pub struct ChallengeGuard {
    store: Challenges,
    entry: Entry,
}

enum Entry {
    Http01 { host: String, token: String },
    TlsAlpn01 { host: String },
}

impl Drop for ChallengeGuard {
    fn drop(&mut self) {
        let mut e = self.store.write();
        match &self.entry {
            Entry::Http01 { host, token } => {
                if let Some(tokens) = e.http01.get_mut(host) {
                    tokens.remove(token);
                    if tokens.is_empty() {
                        e.http01.remove(host);
                    }
                }
            }
            Entry::TlsAlpn01 { host } => {
                if e.tls_alpn01.remove(host).is_some() {
                    self.store
                        .inner
                        .tls_alpn01_count
                        .fetch_sub(1, Ordering::AcqRel);
                }
            }
        }
    }
}

/// Lowercase, without a trailing dot or a `:port` (IPv6 literals keep their
/// brackets' content).
fn normalize_host(host: &str) -> String {
    let host = host.trim();
    let bare = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else if host.matches(':').count() == 1 {
        host.split(':').next().unwrap_or(host)
    } else {
        host
    };
    bare.trim_end_matches('.').to_ascii_lowercase()
}

/// Lowercase hex of `bytes`.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of an even-length hex string, `None` if it is not one.
fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// The RFC 8737 certificate for `host` and a key authorization digest.
fn challenge_cert(host: &str, digest: &[u8]) -> Result<Arc<CertifiedKey>, AcmeError> {
    let fail = |detail: String| AcmeError::ChallengeSetup {
        identifier: host.to_string(),
        detail,
    };
    if digest.len() != 32 {
        return Err(fail(format!(
            "key authorization digest has {} bytes, SHA-256 has 32",
            digest.len()
        )));
    }
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| fail(e.to_string()))?;
    let mut params =
        rcgen::CertificateParams::new(vec![host.to_string()]).map_err(|e| fail(e.to_string()))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .custom_extensions
        .push(rcgen::CustomExtension::new_acme_identifier(digest));
    let cert = params.self_signed(&key).map_err(|e| fail(e.to_string()))?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signer = any_supported_type(&der).map_err(|e| fail(e.to_string()))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signer,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http01_answers_only_the_right_host_and_token_until_the_guard_drops() {
        let c = Challenges::new();
        let guard = c.add_http01("App.Example.", "tok", "tok.thumb");
        assert_eq!(c.http01("app.example", "tok").as_deref(), Some("tok.thumb"));
        assert_eq!(
            c.http01("APP.example:80", "tok").as_deref(),
            Some("tok.thumb")
        );
        assert_eq!(
            c.http01_path("app.example", "/.well-known/acme-challenge/tok")
                .as_deref(),
            Some("tok.thumb")
        );
        assert_eq!(c.http01("other.example", "tok"), None, "wrong host");
        assert_eq!(c.http01("app.example", "tok2"), None, "wrong token");
        assert_eq!(c.http01_path("app.example", "/tok"), None, "wrong path");
        assert!(!c.is_empty());
        drop(guard);
        assert_eq!(c.http01("app.example", "tok"), None);
        assert!(c.is_empty());
    }

    #[test]
    fn tls_alpn01_certificate_follows_rfc_8737() {
        use x509_parser::prelude::*;
        let c = Challenges::new();
        let digest = [7u8; 32];
        let guard = c.add_tls_alpn01("app.example", &digest).expect("cert");
        let key = c.tls_alpn01("APP.example").expect("published");
        assert!(c.tls_alpn01_pending());
        assert!(c.tls_alpn01("other.example").is_none());
        let (_, cert) = X509Certificate::from_der(key.cert[0].as_ref()).expect("der");
        let san = cert
            .subject_alternative_name()
            .expect("san ok")
            .expect("san present");
        let names: Vec<String> = san
            .value
            .general_names
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(names, vec!["DNSName(app.example)".to_string()]);
        let ext = cert
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier extension");
        assert!(ext.critical);
        let mut want = vec![0x04, 32];
        want.extend_from_slice(&digest);
        assert_eq!(ext.value, want.as_slice(), "DER OCTET STRING of the digest");
        drop(guard);
        assert!(c.tls_alpn01("app.example").is_none());
        assert!(!c.tls_alpn01_pending());
    }

    #[test]
    fn a_digest_of_the_wrong_size_is_an_error_not_a_panic() {
        let e = Challenges::new()
            .add_tls_alpn01("app.example", &[1, 2, 3])
            .err()
            .expect("refused");
        assert!(e.to_string().contains("SHA-256 has 32"), "{e}");
    }

    #[test]
    fn shared_answers_round_trip_through_json_and_the_store() {
        let c = Challenges::new();
        let http: ChallengeAnswer = serde_json::from_str(
            r#"{"type":"http-01","host":"app.example","token":"t","key_authorization":"t.k"}"#,
        )
        .expect("http-01 json");
        let g1 = c.add(&http).expect("added");
        assert_eq!(c.http01("app.example", "t").as_deref(), Some("t.k"));
        let digest = to_hex(&[0xab; 32]);
        let alpn = ChallengeAnswer::TlsAlpn01 {
            host: "app.example".into(),
            digest: digest.clone(),
        };
        let json = serde_json::to_string(&alpn).expect("json");
        assert_eq!(
            json,
            format!(r#"{{"type":"tls-alpn-01","host":"app.example","digest":"{digest}"}}"#)
        );
        let g2 = c.add(&alpn).expect("added");
        assert!(c.tls_alpn01_pending());
        drop((g1, g2));
        assert!(c.is_empty());
        let bad = ChallengeAnswer::TlsAlpn01 {
            host: "a".into(),
            digest: "xyz".into(),
        };
        assert!(c.add(&bad).is_err(), "not hex");
        assert_eq!(from_hex("0aFf"), Some(vec![0x0a, 0xff]));
    }

    #[test]
    fn hosts_are_normalized() {
        assert_eq!(normalize_host("A.Example:8080"), "a.example");
        assert_eq!(normalize_host("[::1]:80"), "::1");
        assert_eq!(normalize_host("a.example."), "a.example");
    }
}
