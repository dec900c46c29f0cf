//! ACME (RFC 8555): certificates from Let's Encrypt or any other ACME CA.
//!
//! Owns the ACME account (`<storage>/account.json`), orders, the issued
//! certificates (`<storage>/<site>/fullchain.pem` + `privkey.pem` +
//! `issued.json`), the
//! challenge answers the proxy serves while an order runs, and the renewal
//! schedule. Must not touch the proxy's `CertStore`, its config or any file
//! outside `storage`: a certificate leaves this module only through the
//! install callback given to [`AcmeService`], and challenge answers only
//! through the [`Challenges`] store the proxy reads.
//!
//! ```text
//!  AcmeService (pingora background service), one task per ACME site
//!    start: stored cert still valid? ──yes──▶ install(site, cert), sleep until renew_at
//!                                    └─no──▶ AcmeManager::obtain(site, names)
//!    obtain: account (load account.json or create + save)
//!            ─▶ new order ─▶ for each authorization: Challenges.add_* ─▶ "ready"
//!            ─▶ poll (bounded backoff) ─▶ finalize with a fresh P-256 key
//!            ─▶ download chain ─▶ write files (tmp + fsync + rename) ─▶ LoadedCert
//!    success ─▶ install, sleep until renew_at; failure ─▶ sleep backoff(failures)
//!
//!  proxy: GET /.well-known/acme-challenge/<token> ─▶ Challenges::http01(host, token)
//!         TLS ClientHello with ALPN acme-tls/1    ─▶ Challenges::tls_alpn01(sni)
//!                                                    (see [`answer_tls_alpn01`])
//! ```
//!
//! The CA's TLS certificate is verified with the system's trusted roots
//! (rustls-platform-verifier, webpki), or — when `ca_root` is set — only
//! against that PEM (a private CA, or Pebble in tests).

mod account;
mod challenges;
mod error;
mod http;
pub mod listener;
mod order;
mod schedule;
mod service;
mod storage;
mod tls_alpn;

pub use challenges::{
    ACME_TLS_ALPN_PROTOCOL, ChallengeAnswer, ChallengeGuard, ChallengeSink, Challenges,
    HTTP01_PATH_PREFIX,
};
pub use error::{AcmeError, chain};
pub use order::AcmeManager;
pub use schedule::{backoff, needs_order, renew_at};
pub(crate) use schedule::{fmt_utc, name_set, seed_for};
pub use service::{
    AcmeService, AcmeSite, AcmeStatus, InstallFn, Issuer, Obtained, ReportFn, SiteStatus, Updates,
};
pub use storage::{account_path, site_paths};
pub use tls_alpn::{AlpnOutcome, ChallengeResolver, answer_tls_alpn01, is_acme_tls_alpn};

use std::fmt;
use std::path::PathBuf;

/// Let's Encrypt's production directory.
pub const LETSENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// Let's Encrypt's staging directory (untrusted certificates, generous limits).
pub const LETSENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// What greenlight's typed config says about ACME.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcmeConfig {
    /// Contact e-mail for the account (may be empty: no contact).
    pub email: String,
    /// The directory URL, already resolved (e.g. [`LETSENCRYPT`]).
    pub directory: String,
    /// PEM file with the only root(s) trusted for the directory's TLS;
    /// `None` trusts the system's roots.
    pub ca_root: Option<PathBuf>,
    /// Directory for the account and certificates (default `certs/acme`).
    pub storage: PathBuf,
    /// How the CA validates the names.
    pub challenge: ChallengeKind,
}

/// The challenge type greenlight answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChallengeKind {
    /// `http-01`: a file under `/.well-known/acme-challenge/` on port 80.
    Http01,
    /// `tls-alpn-01`: a special certificate for ALPN `acme-tls/1` on port 443.
    TlsAlpn01,
}

impl ChallengeKind {
    /// The ACME name of the challenge type.
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeKind::Http01 => "http-01",
            ChallengeKind::TlsAlpn01 => "tls-alpn-01",
        }
    }

    pub(crate) fn acme_type(self) -> instant_acme::ChallengeType {
        match self {
            ChallengeKind::Http01 => instant_acme::ChallengeType::Http01,
            ChallengeKind::TlsAlpn01 => instant_acme::ChallengeType::TlsAlpn01,
        }
    }
}

impl fmt::Display for ChallengeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
