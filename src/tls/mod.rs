//! TLS: certificates from PEM files or generated for development, and the
//! [`CertStore`] that rustls asks for a certificate on every handshake.
//!
//! Owns certificate loading and checking (file readable, key matches the
//! certificate, not expired), self-signed generation, and the SNI resolver.
//! The store is one of the two swaps in greenlight (the other is the config
//! snapshot): a reload or a renewal builds a complete new [`CertMap`] and swaps
//! it in, so handshakes in progress and open connections are never touched and
//! one rustls `ServerConfig` per listener lives for the whole process (session
//! tickets stay valid across swaps). Nothing here runs per request.
//!
//! Client certificates (`client_auth:`): [`client_auth`] holds a site's CA
//! roots and the listeners' certificate request, [`client_cert`] what one
//! connection sent; the routed site judges it in `proxy::client_cert`.

pub mod client_auth;
pub mod client_cert;
pub mod handshake;
pub mod listener_certs;
mod load;
pub(crate) mod selfsigned;
mod store;

pub use load::{CertInfo, LoadedCert, load_pem_bytes, load_pem_pair};
pub use selfsigned::ensure_self_signed;
pub use store::{CertMap, CertStore, SniCapture, SniName, build_cert_map};

use std::path::PathBuf;

/// Why a certificate could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file holds no usable PEM section of the wanted kind.
    #[error("{} holds no {what}", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
        /// "certificate" or "private key".
        what: &'static str,
    },
    /// PEM or DER could not be decoded.
    #[error("{} is not valid PEM: {detail}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// Decoder message.
        detail: String,
    },
    /// The private key does not belong to the certificate.
    #[error("{} does not match the certificate in {}", key.display(), cert.display())]
    KeyMismatch {
        /// Key file.
        key: PathBuf,
        /// Certificate file.
        cert: PathBuf,
    },
    /// The key type is not supported by rustls.
    #[error("{}: unsupported private key: {detail}", path.display())]
    BadKey {
        /// Key file.
        path: PathBuf,
        /// rustls message.
        detail: String,
    },
    /// The leaf certificate is expired or not yet valid.
    #[error("{} {detail}", path.display())]
    Validity {
        /// Certificate file.
        path: PathBuf,
        /// "expired on ..." or "is not valid before ...".
        detail: String,
    },
    /// Writing a generated certificate failed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Certificate generation failed.
    #[error("cannot generate a certificate: {0}")]
    Generate(String),
}
