//! Failed client TLS handshakes: counted in
//! `greenlight_tls_handshake_failures_total` by reason, logged at debug.
//!
//! A failed handshake is nearly always the client's doing — a port scanner,
//! a plain-HTTP request to the TLS port, a garbage ClientHello, a readiness
//! probe that connects and closes — so it is not worth an ERROR line per
//! connection (one TLS scan wrote 55). Pingora reports each one through the
//! hook of greenlight's pingora-core patch (`set_handshake_failure_hook`);
//! the metric is what an operator watches. Pingora passes the error as text
//! only (its rustls layer keeps no typed cause), so the reason is read from
//! the words rustls and tokio-rustls use.

use crate::metrics::{Metrics, TlsFailure};
use pingora::services::listening::{HandshakeFailure, set_handshake_failure_hook};
use std::sync::Arc;

/// Counts every failed client handshake in `metrics` from now on (once per
/// process).
pub fn count_handshake_failures(metrics: Arc<Metrics>) {
    set_handshake_failure_hook(Box::new(move |failure| {
        if let Some(reason) = reason(&failure) {
            metrics.tls_handshake_failed(reason);
        }
    }));
}

/// The `reason` label for `failure`, or `None` when it was already counted
/// (no certificate: the resolver counts it as it happens).
fn reason(failure: &HandshakeFailure<'_>) -> Option<TlsFailure> {
    match failure {
        HandshakeFailure::Timeout => Some(TlsFailure::Timeout),
        HandshakeFailure::Error(e) => classify(&e.to_string()),
    }
}

fn classify(text: &str) -> Option<TlsFailure> {
    let t = text.to_ascii_lowercase();
    // Counted by the resolver or the PROXY protocol reader already, or not
    // a failure at all (the CA's TLS-ALPN-01 validation, answered before the
    // handshake proper).
    if t.contains("no server certificate chain resolved")
        || t.contains(&crate::acme::listener::ACME_ANSWERED.to_ascii_lowercase())
        || t.contains(&crate::listen::proxy_protocol::REFUSED.to_ascii_lowercase())
    {
        return None;
    }
    // The client went away or never spoke TLS to the end.
    const GONE: [&str; 5] = [
        "eof",
        "reset by peer",
        "broken pipe",
        "timed out",
        "timeout",
    ];
    // rustls: not TLS, a malformed or oversized message, an alert, nothing in common.
    const PROTOCOL: [&str; 7] = [
        "corrupt message",
        "invalid message",
        "received fatal alert",
        "peer is incompatible",
        "peer misbehaved",
        "inappropriate",
        "payload",
    ];
    if GONE.iter().any(|w| t.contains(w)) {
        Some(TlsFailure::Timeout)
    } else if PROTOCOL.iter().any(|w| t.contains(w)) {
        Some(TlsFailure::Protocol)
    } else {
        Some(TlsFailure::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_from_what_pingora_and_rustls_say() {
        let cases = [
            (
                " TLSHandshakeFailure context: tls connect error: received corrupt message of type InvalidContentType",
                Some(TlsFailure::Protocol),
            ),
            (
                " TLSHandshakeFailure context: tls connect error: received corrupt message of type HandshakePayloadTooLarge",
                Some(TlsFailure::Protocol),
            ),
            (
                " TLSHandshakeFailure context: tls connect error: tls handshake eof",
                Some(TlsFailure::Timeout),
            ),
            (
                " TLSHandshakeFailure context: tls connect error: Connection reset by peer (os error 104)",
                Some(TlsFailure::Timeout),
            ),
            (
                " TLSHandshakeFailure context: tls connect error: peer is incompatible: NoCipherSuitesInCommon",
                Some(TlsFailure::Protocol),
            ),
            (
                " TLSHandshakeFailure context: tls connect error: unexpected error: no server certificate chain resolved",
                None,
            ),
            (
                " TLSHandshakeFailure context: something new",
                Some(TlsFailure::Other),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(classify(text), want, "{text}");
        }
        assert_eq!(
            reason(&HandshakeFailure::Timeout),
            Some(TlsFailure::Timeout)
        );
    }
}
