//! Answering tls-alpn-01 validation connections on the proxy's TLS port.
//!
//! Owns the `acme-tls/1` side of a TLS listener: spotting a validation
//! ClientHello and completing that handshake with the RFC 8737 certificate
//! from [`Challenges`]. Must not touch normal connections: for anything else
//! [`answer_tls_alpn01`] hands back the exact bytes it read so the caller can
//! put them back (pingora: `L4Stream::rewind`) and run its usual handshake.
//!
//! Why a separate handshake: rustls refuses a handshake whose client ALPN
//! list has nothing in common with the server's, and pingora 0.9's
//! `TlsSettings::set_alpn` can only set `h2`+`http/1.1` or one custom
//! protocol, so the proxy's own `ServerConfig` cannot also offer
//! `acme-tls/1`. greenlight calls this from a pingora `PreTlsProcess` hook.
//!
//! Data flow: bytes from the socket ─▶ rustls `Acceptor` until a whole
//! ClientHello ─▶ ALPN is `acme-tls/1`? no ─▶ `NotAcme(bytes read)`; yes ─▶
//! a one-off `ServerConfig` (ALPN `acme-tls/1`, resolver [`ChallengeResolver`])
//! finishes the handshake under a deadline ─▶ close_notify ─▶ `Answered`.

use super::challenges::{ACME_TLS_ALPN_PROTOCOL, Challenges};
use rustls::server::{Acceptor, ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, ServerConnection};
use std::io::{self, Cursor};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest ClientHello read before giving up on spotting ACME (the caller's
/// own handshake then sees the bytes and decides).
const MAX_HELLO: usize = 16 * 1024;
/// Deadline for finishing a validation handshake once it is recognised.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What [`answer_tls_alpn01`] did with a connection.
#[derive(Debug, PartialEq, Eq)]
pub enum AlpnOutcome {
    /// Not an `acme-tls/1` handshake: these bytes were read and must be put
    /// back in front of the stream before the normal TLS handshake.
    NotAcme(Vec<u8>),
    /// A validation handshake was answered; close the connection.
    Answered,
}

/// True when the client offers `acme-tls/1` (validation servers offer only
/// that protocol).
pub fn is_acme_tls_alpn(hello: &ClientHello<'_>) -> bool {
    hello
        .alpn()
        .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN_PROTOCOL))
}

/// A rustls resolver that serves only pending tls-alpn-01 certificates.
#[derive(Debug, Clone)]
pub struct ChallengeResolver(pub Challenges);

impl ResolvesServerCert for ChallengeResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if !is_acme_tls_alpn(&hello) {
            return None;
        }
        self.0.tls_alpn01(hello.server_name()?)
    }
}

/// Reads the ClientHello from `io`; answers it if it is a tls-alpn-01
/// validation, otherwise returns what was read (see [`AlpnOutcome`]).
/// Callers should skip it entirely while
/// [`Challenges::tls_alpn01_pending`] is false (no order is running), so
/// ordinary connections are not looked at at all.
/// Reading the ClientHello has no deadline of its own (pingora bounds the
/// whole handshake); answering one has a 10 s deadline.
pub async fn answer_tls_alpn01<S>(io: &mut S, challenges: &Challenges) -> io::Result<AlpnOutcome>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut acceptor = Acceptor::default();
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 4096];
    let accepted = loop {
        if seen.len() >= MAX_HELLO {
            return Ok(AlpnOutcome::NotAcme(seen));
        }
        let n = io.read(&mut buf).await?;
        if n == 0 {
            return Ok(AlpnOutcome::NotAcme(seen));
        }
        seen.extend_from_slice(&buf[..n]);
        let mut chunk = Cursor::new(&buf[..n]);
        while (chunk.position() as usize) < n {
            if acceptor.read_tls(&mut chunk)? == 0 {
                break;
            }
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => break accepted,
            Ok(None) => continue,
            // Not TLS or a broken hello: let the normal handshake report it.
            Err(_) => return Ok(AlpnOutcome::NotAcme(seen)),
        }
    };
    if !is_acme_tls_alpn(&accepted.client_hello()) {
        return Ok(AlpnOutcome::NotAcme(seen));
    }
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(ChallengeResolver(challenges.clone())));
    config.alpn_protocols = vec![ACME_TLS_ALPN_PROTOCOL.to_vec()];
    config.send_tls13_tickets = 0;
    let conn = accepted
        .into_connection(Arc::new(config))
        .map_err(|(e, _alert)| io::Error::new(io::ErrorKind::InvalidData, e))?;
    tokio::time::timeout(HANDSHAKE_TIMEOUT, finish_handshake(io, conn))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "acme-tls/1 handshake timed out"))??;
    Ok(AlpnOutcome::Answered)
}

/// Drives `conn` over `io` until the handshake is done, then closes.
async fn finish_handshake<S>(io: &mut S, mut conn: ServerConnection) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 4096];
    loop {
        if let Err(e) = flush_tls(io, &mut conn).await {
            // Once the handshake is done the validator may hang up at once.
            return if conn.is_handshaking() {
                Err(e)
            } else {
                Ok(())
            };
        }
        if !conn.is_handshaking() {
            break;
        }
        let n = io.read(&mut buf).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "validation client closed during the handshake",
            ));
        }
        let mut chunk = Cursor::new(&buf[..n]);
        while (chunk.position() as usize) < n {
            if conn.read_tls(&mut chunk)? == 0 {
                break;
            }
            if let Err(e) = conn.process_new_packets() {
                // Send the alert rustls queued, then fail.
                let _ = flush_tls(io, &mut conn).await;
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
    }
    conn.send_close_notify();
    // Best effort: the validator has what it needs already.
    let _ = flush_tls(io, &mut conn).await;
    let _ = io.shutdown().await;
    Ok(())
}

async fn flush_tls<S>(io: &mut S, conn: &mut ServerConnection) -> io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    while conn.wants_write() {
        let mut out = Vec::new();
        conn.write_tls(&mut out)?;
        io.write_all(&out).await?;
    }
    io.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::ServerName;
    use tokio::io::duplex;

    /// A client handshake with `alpn` on one end of a pipe; the server end is
    /// handed to `answer_tls_alpn01`.
    async fn run(alpn: &[&[u8]], challenges: &Challenges) -> (AlpnOutcome, Option<Vec<u8>>) {
        let (mut server_io, client_io) = duplex(64 * 1024);
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny))
        .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let client = tokio::spawn(async move {
            let name = ServerName::try_from("app.test").expect("name");
            match connector.connect(name, client_io).await {
                Ok(tls) => tls.get_ref().1.peer_certificates().map(|c| c[0].to_vec()),
                Err(_) => None,
            }
        });
        let outcome = tokio::time::timeout(
            Duration::from_secs(5),
            answer_tls_alpn01(&mut server_io, challenges),
        )
        .await
        .expect("in time")
        .expect("no I/O error");
        drop(server_io);
        let cert = tokio::time::timeout(Duration::from_secs(5), client)
            .await
            .expect("client in time")
            .expect("joined");
        (outcome, cert)
    }

    #[tokio::test]
    async fn a_validation_handshake_gets_the_challenge_certificate() {
        let challenges = Challenges::new();
        let _guard = challenges
            .add_tls_alpn01("app.test", &[9u8; 32])
            .expect("cert");
        let want = challenges.tls_alpn01("app.test").expect("published").cert[0].to_vec();
        let (outcome, got) = run(&[ACME_TLS_ALPN_PROTOCOL], &challenges).await;
        assert_eq!(outcome, AlpnOutcome::Answered);
        assert_eq!(got, Some(want));
    }

    #[tokio::test]
    async fn other_handshakes_are_handed_back_untouched() {
        let challenges = Challenges::new();
        let _guard = challenges
            .add_tls_alpn01("app.test", &[9u8; 32])
            .expect("cert");
        let (outcome, _) = run(&[b"h2", b"http/1.1"], &challenges).await;
        let AlpnOutcome::NotAcme(bytes) = outcome else {
            panic!("a normal handshake was answered");
        };
        // The bytes are the client's whole ClientHello, parseable again.
        let mut acceptor = Acceptor::default();
        acceptor.read_tls(&mut Cursor::new(&bytes)).expect("read");
        let accepted = acceptor.accept().expect("hello").expect("complete");
        assert_eq!(accepted.client_hello().server_name(), Some("app.test"));
    }

    #[derive(Debug)]
    struct AcceptAny;

    impl rustls::client::danger::ServerCertVerifier for AcceptAny {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            rustls::crypto::ring::default_provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }
}
