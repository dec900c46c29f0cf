//! The HTTPS client instant-acme talks to the CA through.
//!
//! Owns trust (system roots via rustls-platform-verifier, or only the PEM at
//! `ca_root`), deadlines (connect, and one deadline for a whole exchange
//! including the body), a body size cap, the classification of transport
//! failures (unreachable / not trusted / other, see [`TransportError`]), and
//! the last `Retry-After` the CA sent with a 429/503 (instant-acme drops
//! response headers of error answers, so this is where rate-limit retry times
//! come from). Touches nothing but sockets to the CA.
//!
//! Data flow: instant-acme builds a request ─▶ [`AcmeHttp::request`] ─▶ hyper
//! (rustls) ─▶ whole response collected under the deadline ─▶ back to
//! instant-acme as bytes; a failure goes back as `instant_acme::Error::Other`
//! holding a [`TransportError`], which `error::classify` turns into
//! [`AcmeError::Unreachable`] / [`AcmeError::Untrusted`].

use super::error::{AcmeError, BoxError};
use super::schedule::parse_retry_after;
use http_body_util::{BodyExt, Limited};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::error::Error;
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Deadline for a TCP connection to the CA.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline for one whole request: connect, TLS, response and body.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response body accepted (certificate chains are a few KiB).
const MAX_BODY: usize = 1 << 20;

/// The last `Retry-After` time the CA sent with a 429 or 503 answer.
#[derive(Clone, Debug, Default)]
pub(crate) struct RetryAfter(Arc<Mutex<Option<SystemTime>>>);

impl RetryAfter {
    pub(crate) fn set(&self, at: SystemTime) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(at);
    }

    /// The recorded time, forgetting it.
    pub(crate) fn take(&self) -> Option<SystemTime> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// What kind of transport failure happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TransportKind {
    /// No connection: refused, DNS, timeout, reset.
    Unreachable,
    /// The CA's certificate failed verification.
    Untrusted,
    /// Anything else (TLS alert, protocol error, oversized body).
    Other,
}

/// A failed exchange with the CA, carried through instant-acme inside
/// `instant_acme::Error::Other`.
#[derive(Debug, thiserror::Error)]
#[error("request to {url} failed")]
pub(crate) struct TransportError {
    kind: TransportKind,
    url: String,
    hint: Arc<str>,
    #[source]
    source: BoxError,
}

impl TransportError {
    pub(crate) fn into_acme_error(self) -> AcmeError {
        let TransportError {
            kind,
            url,
            hint,
            source,
        } = self;
        match kind {
            TransportKind::Unreachable => AcmeError::Unreachable { url, source },
            TransportKind::Untrusted => AcmeError::Untrusted {
                url,
                hint: hint.to_string(),
                source,
            },
            TransportKind::Other => AcmeError::Transport { url, source },
        }
    }
}

/// The client handed to instant-acme (cheap to clone: one pooled client).
#[derive(Clone)]
pub(crate) struct AcmeHttp {
    client: Client<HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>,
    retry_after: RetryAfter,
    /// How the CA is trusted, for [`AcmeError::Untrusted`] messages.
    hint: Arc<str>,
}

impl AcmeHttp {
    /// A client trusting only the PEM root(s) at `ca_root`, or the system's
    /// roots when `None`.
    pub(crate) fn new(ca_root: Option<&Path>) -> Result<AcmeHttp, AcmeError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (builder, hint) = match ca_root {
            Some(path) => {
                let roots = load_roots(path)?;
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| AcmeError::Trust {
                        what: "TLS versions".into(),
                        source: Box::new(e),
                    })?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                (
                    HttpsConnectorBuilder::new().with_tls_config(config),
                    format!("against the ACME CA root in {}", path.display()),
                )
            }
            None => (
                HttpsConnectorBuilder::new()
                    .with_provider_and_platform_verifier(provider)
                    .map_err(|e| AcmeError::Trust {
                        what: "the system's trusted roots".into(),
                        source: Box::new(e),
                    })?,
                "against the system's trusted roots (for a private or test CA, \
                 configure its root certificate as the ACME CA root)"
                    .to_string(),
            ),
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let connector = builder.https_only().enable_http1().wrap_connector(http);
        Ok(AcmeHttp {
            client: Client::builder(TokioExecutor::new()).build(connector),
            retry_after: RetryAfter::default(),
            hint: hint.into(),
        })
    }

    /// The CA's last `Retry-After`.
    pub(crate) fn retry_after(&self) -> &RetryAfter {
        &self.retry_after
    }
}

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        req: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let url = req.uri().to_string();
        let response = self.client.request(req);
        let retry_after = self.retry_after.clone();
        let hint = self.hint.clone();
        Box::pin(async move {
            let exchange = async {
                let rsp = response.await.map_err(|e| {
                    let kind = transport_kind(&e, e.is_connect());
                    (kind, Box::new(e) as BoxError)
                })?;
                let (parts, body) = rsp.into_parts();
                let bytes = Limited::new(body, MAX_BODY)
                    .collect()
                    .await
                    .map_err(|e| (transport_kind(e.as_ref(), false), e))?
                    .to_bytes();
                Ok::<_, (TransportKind, BoxError)>((parts, bytes))
            };
            let failed = |kind, source| {
                instant_acme::Error::Other(Box::new(TransportError {
                    kind,
                    url: url.clone(),
                    hint: hint.clone(),
                    source,
                }))
            };
            match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
                Err(_) => Err(failed(
                    TransportKind::Unreachable,
                    Box::new(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no complete answer within {}s", REQUEST_TIMEOUT.as_secs()),
                    )),
                )),
                Ok(Err((kind, source))) => Err(failed(kind, source)),
                Ok(Ok((parts, bytes))) => {
                    if parts.status == StatusCode::TOO_MANY_REQUESTS
                        || parts.status == StatusCode::SERVICE_UNAVAILABLE
                    {
                        let at = parts
                            .headers
                            .get(hyper::header::RETRY_AFTER)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| parse_retry_after(v, SystemTime::now()));
                        if let Some(at) = at {
                            retry_after.set(at);
                        }
                    }
                    Ok(BytesResponse {
                        parts,
                        body: Box::new(bytes),
                    })
                }
            }
        })
    }
}

/// Reads every certificate of a PEM file into a root store.
fn load_roots(path: &Path) -> Result<rustls::RootCertStore, AcmeError> {
    let what = || format!("the ACME CA root {}", path.display());
    let pem = std::fs::read(path).map_err(|e| AcmeError::Trust {
        what: what(),
        source: Box::new(e),
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(&pem) {
        let der = der.map_err(|e| AcmeError::Trust {
            what: what(),
            source: Box::new(e),
        })?;
        roots.add(der).map_err(|e| AcmeError::Trust {
            what: what(),
            source: Box::new(e),
        })?;
    }
    if roots.is_empty() {
        return Err(AcmeError::Trust {
            what: what(),
            source: "the file holds no PEM certificate".into(),
        });
    }
    Ok(roots)
}

/// Finds the root cause kind: a rustls certificate error anywhere in the
/// chain (also inside an `io::Error`) means untrusted; another rustls error
/// is "other"; a connect-phase or I/O error means unreachable.
fn transport_kind(e: &(dyn Error + 'static), connect_phase: bool) -> TransportKind {
    let mut io_seen = false;
    let mut cur: Option<&(dyn Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(tls) = c.downcast_ref::<rustls::Error>() {
            return tls_kind(tls);
        }
        cur = match c.downcast_ref::<io::Error>() {
            // `io::Error::source` skips the error it wraps; step into it
            // (hyper-rustls wraps tokio-rustls' io::Error in another one).
            Some(io) => {
                io_seen = true;
                match io.get_ref() {
                    Some(inner) => Some(inner as &(dyn Error + 'static)),
                    None => c.source(),
                }
            }
            None => c.source(),
        };
    }
    if connect_phase || io_seen {
        TransportKind::Unreachable
    } else {
        TransportKind::Other
    }
}

fn tls_kind(e: &rustls::Error) -> TransportKind {
    match e {
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
            TransportKind::Untrusted
        }
        _ => TransportKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_errors_inside_io_errors_read_as_untrusted() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = io::Error::new(io::ErrorKind::InvalidData, tls);
        let wrapped = io::Error::other(io);
        assert_eq!(transport_kind(&wrapped, true), TransportKind::Untrusted);
        let alert = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure),
        );
        assert_eq!(transport_kind(&alert, true), TransportKind::Other);
        let refused = io::Error::new(io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(transport_kind(&refused, false), TransportKind::Unreachable);
    }

    #[test]
    fn a_root_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("root.pem");
        std::fs::write(&p, "not pem").expect("write");
        let e = AcmeHttp::new(Some(&p)).err().expect("refused");
        assert!(
            crate::acme::chain(&e).contains("holds no PEM certificate"),
            "{e}"
        );
        let missing = AcmeHttp::new(Some(&dir.path().join("nope.pem")))
            .err()
            .expect("refused");
        assert!(missing.to_string().contains("nope.pem"), "{missing}");
    }
}
