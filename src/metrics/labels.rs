//! The fixed value sets of greenlight's enumerated labels (`kind`,
//! `result`, `reason`, `protocol`): one enum per label, each with the exact
//! strings `/metrics` shows. Kept apart from the families in `metrics.rs` so
//! that file stays readable; re-exported from there.

/// Why an upstream request failed (`kind` of `greenlight_upstream_errors_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    /// Connection refused.
    Refused,
    /// Connect, read or write timed out.
    Timeout,
    /// Connection reset or closed early by the upstream.
    Reset,
    /// TLS to the upstream failed.
    Tls,
    /// Anything else.
    Other,
}

impl UpstreamErrorKind {
    pub(super) const ALL: [UpstreamErrorKind; 5] = [
        UpstreamErrorKind::Refused,
        UpstreamErrorKind::Timeout,
        UpstreamErrorKind::Reset,
        UpstreamErrorKind::Tls,
        UpstreamErrorKind::Other,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamErrorKind::Refused => "refused",
            UpstreamErrorKind::Timeout => "timeout",
            UpstreamErrorKind::Reset => "reset",
            UpstreamErrorKind::Tls => "tls",
            UpstreamErrorKind::Other => "other",
        }
    }
}

/// Outcome of a pool switch (`result` of `greenlight_switches_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwitchResult {
    /// Switched after the target pool passed its checks.
    Ok,
    /// Refused (target unhealthy, unknown, ...); nothing changed.
    Refused,
    /// Switched although checks failed (`--force`).
    Forced,
}

impl SwitchResult {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            SwitchResult::Ok => "ok",
            SwitchResult::Refused => "refused",
            SwitchResult::Forced => "forced",
        }
    }
}

/// Why a client TLS handshake failed (`reason` of
/// `greenlight_tls_handshake_failures_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsFailure {
    /// No certificate for the SNI name and no default one.
    NoCertificate,
    /// Protocol error: no common version or cipher, bad message, alert.
    Protocol,
    /// The client took too long or went away mid-handshake.
    Timeout,
    /// Anything else.
    Other,
}

impl TlsFailure {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsFailure::NoCertificate => "no_certificate",
            TlsFailure::Protocol => "protocol",
            TlsFailure::Timeout => "timeout",
            TlsFailure::Other => "other",
        }
    }
}

/// Why a `proxy_protocol` listener closed a connection (`reason` of
/// `greenlight_proxy_protocol_errors_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyProtocolError {
    /// The connection did not start with a PROXY signature.
    Missing,
    /// A signature, then an invalid or oversized header.
    Malformed,
    /// Closed or too slow before the header ended.
    Incomplete,
}

impl ProxyProtocolError {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyProtocolError::Missing => "missing",
            ProxyProtocolError::Malformed => "malformed",
            ProxyProtocolError::Incomplete => "incomplete",
        }
    }
}

/// Downstream protocol (`protocol` of `greenlight_downstream_connections`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpProtocol {
    /// HTTP/1.x.
    H1,
    /// HTTP/2.
    H2,
}
