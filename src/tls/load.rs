//! Loading a PEM certificate chain and private key into a rustls
//! `CertifiedKey`, with the checks an operator wants before traffic: the files
//! exist, hold what they should, the key matches, and the leaf is in date.

use super::TlsError;
use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the leaf certificate says, for status output and expiry checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// Subject alternative DNS names.
    pub dns_names: Vec<String>,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Serial number, hex.
    pub serial: String,
    /// Not valid before.
    pub not_before: SystemTime,
    /// Not valid after.
    pub not_after: SystemTime,
}

/// A usable certificate: the rustls key plus what it says.
#[derive(Clone, Debug)]
pub struct LoadedCert {
    /// Chain and signing key for rustls.
    pub key: Arc<CertifiedKey>,
    /// Parsed leaf facts.
    pub info: CertInfo,
}

/// Loads and checks a PEM chain (leaf first) and its private key.
pub fn load_pem_pair(cert_path: &Path, key_path: &Path) -> Result<LoadedCert, TlsError> {
    let cert_pem = std::fs::read(cert_path).map_err(|source| TlsError::Read {
        path: cert_path.to_path_buf(),
        source,
    })?;
    let key_pem = std::fs::read(key_path).map_err(|source| TlsError::Read {
        path: key_path.to_path_buf(),
        source,
    })?;
    load_pem_bytes(&cert_pem, cert_path, &key_pem, key_path, SystemTime::now())
}

/// Like [`load_pem_pair`] on bytes already read; `now` decides validity.
pub fn load_pem_bytes(
    cert_pem: &[u8],
    cert_path: &Path,
    key_pem: &[u8],
    key_path: &Path,
    now: SystemTime,
) -> Result<LoadedCert, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            path: cert_path.to_path_buf(),
            detail: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Empty {
            path: cert_path.to_path_buf(),
            what: "certificate",
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::Empty {
            path: key_path.to_path_buf(),
            what: "private key",
        },
        other => TlsError::Pem {
            path: key_path.to_path_buf(),
            detail: other.to_string(),
        },
    })?;
    let signer = any_supported_type(&key).map_err(|e| TlsError::BadKey {
        path: key_path.to_path_buf(),
        detail: e.to_string(),
    })?;
    let certified = CertifiedKey::new(chain, signer);
    match certified.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => {
            return Err(TlsError::KeyMismatch {
                key: key_path.to_path_buf(),
                cert: cert_path.to_path_buf(),
            });
        }
    }
    let info = cert_info(&certified.cert[0]).map_err(|detail| TlsError::Pem {
        path: cert_path.to_path_buf(),
        detail,
    })?;
    if now > info.not_after {
        return Err(TlsError::Validity {
            path: cert_path.to_path_buf(),
            detail: format!(
                "expired on {} — renew it (certbot renew) or use `tls: acme`",
                httpdate(info.not_after)
            ),
        });
    }
    if now < info.not_before {
        return Err(TlsError::Validity {
            path: cert_path.to_path_buf(),
            detail: format!(
                "is not valid before {} — check the system clock",
                httpdate(info.not_before)
            ),
        });
    }
    Ok(LoadedCert {
        key: Arc::new(certified),
        info,
    })
}

/// Parses the leaf certificate's names, issuer, serial and validity.
pub fn cert_info(der: &CertificateDer<'_>) -> Result<CertInfo, String> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der.as_ref()).map_err(|e| e.to_string())?;
    let mut dns_names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let GeneralName::DNSName(d) = n {
                dns_names.push(d.to_string());
            }
        }
    }
    let to_time = |t: ASN1Time| {
        let secs = t.timestamp();
        if secs >= 0 {
            UNIX_EPOCH + Duration::from_secs(secs as u64)
        } else {
            UNIX_EPOCH
        }
    };
    Ok(CertInfo {
        dns_names,
        issuer: cert.issuer().to_string(),
        serial: cert.raw_serial_as_string(),
        not_before: to_time(cert.validity().not_before),
        not_after: to_time(cert.validity().not_after),
    })
}

/// A UTC date like `2026-11-25 16:54:03 UTC`.
pub fn httpdate(t: SystemTime) -> String {
    crate::timefmt::fmt_utc(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("params");
        let cert = params.self_signed(&key).expect("cert");
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn a_matching_pair_loads_with_its_names() {
        let (c, k) = pair(&["app.test"]);
        let l = load_pem_bytes(
            c.as_bytes(),
            Path::new("c.pem"),
            k.as_bytes(),
            Path::new("k.pem"),
            SystemTime::now(),
        )
        .expect("loads");
        assert_eq!(l.info.dns_names, vec!["app.test".to_string()]);
    }

    #[test]
    fn a_foreign_key_is_reported_as_mismatch() {
        let (c, _) = pair(&["app.test"]);
        let (_, k2) = pair(&["other.test"]);
        let e = load_pem_bytes(
            c.as_bytes(),
            Path::new("c.pem"),
            k2.as_bytes(),
            Path::new("k.pem"),
            SystemTime::now(),
        )
        .unwrap_err();
        assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "k.pem does not match the certificate in c.pem"
        );
    }

    #[test]
    fn an_expired_certificate_is_refused_with_its_date() {
        let (c, k) = pair(&["app.test"]);
        let far = SystemTime::now() + Duration::from_secs(3600 * 24 * 365 * 5000);
        let e = load_pem_bytes(
            c.as_bytes(),
            Path::new("c.pem"),
            k.as_bytes(),
            Path::new("k.pem"),
            far,
        )
        .unwrap_err();
        assert!(e.to_string().contains("c.pem expired on"), "{e}");
    }

    #[test]
    fn empty_files_say_what_is_missing() {
        let e = load_pem_bytes(
            b"",
            Path::new("c.pem"),
            b"",
            Path::new("k.pem"),
            SystemTime::now(),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "c.pem holds no certificate");
    }
}
