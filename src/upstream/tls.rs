//! HTTPS upstreams (`tls: true` on an upstream): the Pingora peer settings
//! for each server, the TLS client the active health checks use, and the one
//! log line a failed handshake gets.
//!
//! Server name: `sni:` when written, else the server's host as written in the
//! pool. An IP literal (`10.0.0.5:8443`) is given to rustls as an IP address:
//! no SNI is sent (RFC 6066 has no IP names) and the certificate must cover
//! that IP (an IP SAN) — write `sni:` to check a name instead. This matters
//! because Pingora turns *every* check off for an empty server name; greenlight
//! never hands it one.
//!
//! Verification is on unless `verify: false` is written: the chain against
//! the system roots, or only against the `ca:` file's certificates (read and
//! parsed at load time), and the name. `http2: true` offers `h2` then
//! `http/1.1` by ALPN; WebSocket upgrades always offer HTTP/1.1 only.

use crate::config::model::{CaCerts, ServerConfig, UpstreamTls};
use crate::upstream::addr::ServerAddr;
use pingora::protocols::ALPN;
use pingora::tls::{
    CertificateDer, ClientConfig, DigitallySignedStruct, HandshakeSignatureValid, RootCertStore,
    ServerCertVerified, ServerCertVerifier, ServerName, SignatureScheme, TlsConnector, UnixTime,
};
use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::{WrappedX509, parse_x509};
use std::sync::Arc;

/// What a pool built once for TLS to its servers.
pub struct PoolTls {
    /// The upstream's settings.
    pub config: UpstreamTls,
    /// The `ca:` certificates in Pingora's form (shared by every peer).
    ca: Option<Arc<[WrappedX509]>>,
    /// The health checks' TLS client (same trust and verification).
    pub health: TlsConnector,
}

impl std::fmt::Debug for PoolTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolTls")
            .field("config", &self.config)
            .finish()
    }
}

impl PoolTls {
    /// Builds what the pool needs.
    pub fn new(config: &UpstreamTls) -> PoolTls {
        let ca = config.ca.as_ref().map(|c| {
            let certs: Vec<WrappedX509> = c
                .der
                .iter()
                .map(|d| WrappedX509::new(d.clone(), parse_x509))
                .collect();
            Arc::from(certs)
        });
        PoolTls {
            config: config.clone(),
            ca,
            health: health_connector(config),
        }
    }

    /// The TLS server name for `server`.
    pub fn server_name(&self, server: &ServerConfig) -> String {
        self.config
            .sni
            .clone()
            .unwrap_or_else(|| server.host().to_string())
    }

    /// A peer for `server`, with verification, CA and ALPN set.
    pub fn peer(&self, server: &ServerConfig) -> HttpPeer {
        // Validation refuses `tls: true` with a unix socket server.
        let addr = match &server.addr {
            ServerAddr::Inet(a) => *a,
            ServerAddr::Unix(_) => std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        let mut peer = HttpPeer::new(addr, true, self.server_name(server));
        let o = &mut peer.options;
        o.verify_cert = self.config.verify;
        o.verify_hostname = self.config.verify;
        o.alpn = if self.config.http2 {
            ALPN::H2H1
        } else {
            ALPN::H1
        };
        o.ca = self.ca.clone();
        peer
    }
}

/// Makes a peer fit for an upgrade (WebSocket): HTTP/1.1 only.
pub fn for_upgrade(peer: &mut HttpPeer) {
    peer.options.alpn = ALPN::H1;
}

fn roots(ca: Option<&CaCerts>) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match ca {
        Some(c) => {
            for der in c.der.iter() {
                store
                    .add(CertificateDer::from(der.clone()))
                    .map_err(|e| format!("{}: {e}", c.path.display()))?;
            }
        }
        None => pingora::tls::load_platform_certs_incl_env_into_store(&mut store)
            .map_err(|e| format!("cannot load the system root certificates: {e}"))?,
    }
    Ok(store)
}

fn health_connector(config: &UpstreamTls) -> TlsConnector {
    pingora::tls::install_default_crypto_provider();
    let builder = ClientConfig::builder();
    let mut cfg = if config.verify {
        let store = roots(config.ca.as_ref()).unwrap_or_else(|e| {
            // Checked at load for `ca:`; the system store may be missing.
            log::error!("upstream health checks over TLS: {e}; every check will fail");
            RootCertStore::empty()
        });
        builder.with_root_certificates(store).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify))
            .with_no_client_auth()
    };
    // The checks speak HTTP/1.1 whatever `http2` says.
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(cfg))
}

/// `verify: false`: accepts any certificate (signatures still checked).
#[derive(Debug)]
struct NoVerify;

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, pingora::tls::RusTlsError> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, pingora::tls::RusTlsError> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &algorithms())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, pingora::tls::RusTlsError> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        algorithms().supported_schemes()
    }
}

fn algorithms() -> rustls::crypto::WebPkiSupportedAlgorithms {
    rustls::crypto::CryptoProvider::get_default()
        .map(|p| p.signature_verification_algorithms)
        .unwrap_or(rustls::crypto::ring::default_provider().signature_verification_algorithms)
}

/// The reason of a failed TLS handshake with an upstream, said plainly
/// (`certificate not signed by a trusted CA (...)`), or `None` for other errors.
pub fn handshake_failure(e: &pingora::Error) -> Option<String> {
    use pingora::ErrorType;
    if !matches!(
        e.etype(),
        ErrorType::TLSHandshakeFailure | ErrorType::InvalidCert | ErrorType::HandshakeError
    ) {
        return None;
    }
    // Pingora wraps rustls's words ("invalid peer certificate: UnknownIssuer",
    // or "TLS connect() failed: <reason>, SNI: <name>") in a chain of
    // contexts and causes (local address included); its Display has them all.
    let chain = e.to_string();
    let reason = match (
        chain.find("invalid peer certificate"),
        chain.find("TLS connect() failed: "),
    ) {
        (Some(i), _) => &chain[i..],
        (None, Some(i)) => &chain[i + "TLS connect() failed: ".len()..],
        (None, None) => chain
            .rsplit(" cause: ")
            .find(|c| !c.starts_with("local address"))
            .unwrap_or(&chain),
    };
    let core = reason
        .split(", SNI: ")
        .next()
        .unwrap_or(reason)
        .split(" context: ")
        .next()
        .unwrap_or(reason)
        .trim()
        .to_string();
    let plain = if core.contains("UnknownIssuer") || core.contains("BadSignature") {
        format!("certificate not signed by a trusted CA ({core})")
    } else if core.contains("NotValidForName") || core.contains("not valid for name") {
        format!("certificate does not match the server name ({core})")
    } else if core.contains("Expired") {
        format!("certificate expired ({core})")
    } else {
        core
    };
    Some(plain)
}
