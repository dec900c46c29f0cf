//! TLS-ALPN-01 on Pingora's TLS listeners (RFC 8737).
//!
//! Pingora 0.9's `TlsSettings` can only offer h2/http1.1 by ALPN, and rustls
//! refuses a handshake whose client ALPN list (`acme-tls/1`) does not meet the
//! server's. So the validation handshake is answered *before* Pingora's TLS:
//! a pre-TLS hook peeks at the ClientHello only while an order is waiting for
//! a tls-alpn-01 validation (one atomic load otherwise), answers an
//! `acme-tls/1` hello with the challenge certificate, and puts every other
//! hello's bytes back for the normal handshake.

use super::{AlpnOutcome, Challenges, answer_tls_alpn01};
use async_trait::async_trait;
use pingora::listeners::PreTlsProcess;
use pingora::protocols::l4::stream::Stream;

/// The error text that ends a connection whose TLS-ALPN-01 validation was
/// answered (not a failed handshake: `tls::handshake` does not count it).
pub const ACME_ANSWERED: &str = "answered an ACME tls-alpn-01 validation";

/// The pre-TLS hook greenlight installs on its TLS listeners.
pub struct AcmeTlsAlpn(pub Challenges);

#[async_trait]
impl PreTlsProcess for AcmeTlsAlpn {
    async fn process(&self, stream: &mut Stream) -> pingora::Result<()> {
        if !self.0.tls_alpn01_pending() {
            return Ok(());
        }
        match answer_tls_alpn01(stream, &self.0).await {
            Ok(AlpnOutcome::NotAcme(read)) => {
                stream.rewind(&read);
                Ok(())
            }
            Ok(AlpnOutcome::Answered) => {
                // Pingora logs a failed handshake at debug only (our
                // pingora-core patch), so say here that the CA was answered.
                log::info!("answered an ACME tls-alpn-01 validation");
                // An error ends the connection: it was the CA's, not a client's.
                pingora::Error::e_explain(pingora::ErrorType::HandshakeError, ACME_ANSWERED)
            }
            Err(e) => Err(pingora::Error::because(
                pingora::ErrorType::HandshakeError,
                "acme-tls/1 check",
                e,
            )),
        }
    }
}
