//! Why an ACME step failed: [`AcmeError`], and [`chain`] to print a whole
//! cause chain on one line.
//!
//! Owns the error type and the mapping from `instant_acme::Error` (with the
//! transport errors of [`super::http`] inside) to the variants an operator
//! can act on: CA unreachable, CA not trusted, rate limited, challenge failed,
//! order/finalize failed, storage not writable. Touches nothing else.
//!
//! Every variant's own message says what greenlight was doing; the cause (if
//! any) is kept as `source()`, never repeated in the message, so [`chain`]
//! reads as "what: why: deeper why".

use super::ChallengeKind;
use super::http::{RetryAfter, TransportError};
use super::schedule::fmt_utc;
use crate::tls::TlsError;
use std::error::Error;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// A boxed cause.
pub(crate) type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// Why obtaining or keeping an ACME certificate failed.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// No connection to the CA (refused, DNS, timeout, reset).
    #[error("the ACME CA at {url} is unreachable")]
    Unreachable {
        /// The URL greenlight tried.
        url: String,
        /// The connection error.
        #[source]
        source: BoxError,
    },
    /// The CA's TLS certificate failed verification.
    #[error("the ACME CA at {url} is not trusted: its TLS certificate failed verification {hint}")]
    Untrusted {
        /// The URL greenlight tried.
        url: String,
        /// Against what it was verified, and what to do.
        hint: String,
        /// The TLS error.
        #[source]
        source: BoxError,
    },
    /// Another HTTP or TLS failure talking to the CA.
    #[error("talking to the ACME CA at {url} failed")]
    Transport {
        /// The URL greenlight tried.
        url: String,
        /// The HTTP/TLS error.
        #[source]
        source: BoxError,
    },
    /// The CA could not validate a name.
    #[error("{kind} challenge for {identifier} failed: {detail}")]
    Challenge {
        /// The name being validated.
        identifier: String,
        /// The challenge type.
        kind: ChallengeKind,
        /// The CA's problem document (detail and type).
        detail: String,
    },
    /// The challenge answer could not be prepared (or the CA offers none of
    /// the configured type).
    #[error("cannot answer the challenge for {identifier}: {detail}")]
    ChallengeSetup {
        /// The name being validated.
        identifier: String,
        /// What went wrong.
        detail: String,
    },
    /// The CA answered with a `rateLimited` problem.
    #[error("rate limited by the ACME CA{}: {detail}", retry_text(retry_after))]
    RateLimited {
        /// The CA's problem detail.
        detail: String,
        /// When the CA says to retry (from `Retry-After`), if it said.
        retry_after: Option<SystemTime>,
    },
    /// Loading, creating or updating the account failed.
    #[error("ACME account at {directory}: {stage} failed")]
    Account {
        /// The directory URL.
        directory: String,
        /// What was being done.
        stage: &'static str,
        /// The CA's answer or the client error.
        #[source]
        source: BoxError,
    },
    /// The stored account file cannot be used.
    #[error("ACME account file {} cannot be used (move it away to create a new account)", path.display())]
    AccountFile {
        /// `<storage>/account.json`.
        path: PathBuf,
        /// The read or parse error.
        #[source]
        source: BoxError,
    },
    /// An order step failed.
    #[error("ACME order for {names}: {stage} failed")]
    Order {
        /// The names ordered, comma-separated.
        names: String,
        /// What was being done.
        stage: &'static str,
        /// The CA's answer or the client error.
        #[source]
        source: BoxError,
    },
    /// Finalizing the order (CSR) or downloading the certificate failed.
    #[error("ACME order for {names}: {stage} failed")]
    Finalize {
        /// The names ordered, comma-separated.
        names: String,
        /// "finalizing the order" or "downloading the certificate".
        stage: &'static str,
        /// The CA's answer or the client error.
        #[source]
        source: BoxError,
    },
    /// The CA did not reach the expected state before the deadline.
    #[error("the ACME CA did not {what} within {}s", after.as_secs())]
    Timeout {
        /// What greenlight waited for.
        what: &'static str,
        /// How long it waited.
        after: Duration,
    },
    /// A file or directory under the ACME storage cannot be written.
    #[error("ACME storage {} is not writable", path.display())]
    Storage {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The trust roots for the CA could not be set up.
    #[error("cannot set up TLS trust for the ACME CA: {what}")]
    Trust {
        /// Which roots.
        what: String,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// The request itself is not something ACME can do.
    #[error("invalid ACME request: {0}")]
    Invalid(String),
    /// Fleet mode: coordinating with the other members through etcd failed,
    /// or the fleet says to wait (another member's order failed recently).
    /// No order was sent to the CA because of it.
    #[error("fleet: {detail}")]
    Fleet {
        /// What happened and what the member does next.
        detail: String,
        /// When to try again, when the fleet decided it.
        retry_at: Option<SystemTime>,
    },
    /// The issued certificate and key could not be loaded back.
    #[error("the certificate issued for site '{site}' cannot be used")]
    Certificate {
        /// The site.
        site: String,
        /// Loader error.
        #[source]
        source: TlsError,
    },
}

impl AcmeError {
    /// When the CA asked to retry (rate limits), or the fleet did, if so.
    pub fn retry_after(&self) -> Option<SystemTime> {
        match self {
            AcmeError::RateLimited { retry_after, .. } => *retry_after,
            AcmeError::Fleet { retry_at, .. } => *retry_at,
            _ => None,
        }
    }

    /// True for a fleet-coordination problem: nothing went to the CA, so it
    /// is neither counted as a failed order nor backed off like one.
    pub fn is_fleet(&self) -> bool {
        matches!(self, AcmeError::Fleet { .. })
    }
}

fn retry_text(at: &Option<SystemTime>) -> String {
    match at {
        Some(t) => format!(" until {}", fmt_utc(*t)),
        None => String::new(),
    }
}

/// `e` and all its causes joined with ": " (a cause whose text the message
/// already ends with is not repeated).
pub fn chain(e: &dyn Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !s.is_empty() && !out.ends_with(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    out
}

/// A problem document as one line: "detail (type)", plus subproblems.
pub(crate) fn problem_text(p: &instant_acme::Problem) -> String {
    let mut out = p.detail.clone().unwrap_or_else(|| "no detail".to_string());
    if let Some(t) = &p.r#type {
        out.push_str(&format!(" ({t})"));
    }
    for sub in &p.subproblems {
        out.push_str(&format!("; {sub}"));
    }
    out
}

const RATE_LIMITED: &str = "urn:ietf:params:acme:error:rateLimited";

/// Maps a client error: transport failures and rate limits get their own
/// variants whatever the step; anything else goes through `otherwise`.
pub(crate) fn classify(
    e: instant_acme::Error,
    retry: &RetryAfter,
    otherwise: impl FnOnce(BoxError) -> AcmeError,
) -> AcmeError {
    match e {
        instant_acme::Error::Api(p) if p.r#type.as_deref() == Some(RATE_LIMITED) => {
            AcmeError::RateLimited {
                detail: problem_text(&p),
                retry_after: retry.take(),
            }
        }
        instant_acme::Error::Other(b) => match b.downcast::<TransportError>() {
            Ok(t) => t.into_acme_error(),
            Err(b) => otherwise(b),
        },
        other => otherwise(Box::new(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chain_joins_causes_without_repeating_them() {
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(chain(&e), "outer: inner");
        let t = TlsError::Write {
            path: PathBuf::from("/x"),
            source: std::io::Error::other("denied"),
        };
        assert_eq!(chain(&t), "cannot write /x: denied");
        let s = AcmeError::Storage {
            path: PathBuf::from("/s"),
            source: std::io::Error::other("read-only"),
        };
        assert_eq!(chain(&s), "ACME storage /s is not writable: read-only");
    }

    #[test]
    fn rate_limits_are_recognised_with_retry_after() {
        let p: instant_acme::Problem = serde_json::from_str(
            r#"{"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many certificates","status":429}"#,
        )
        .expect("problem");
        let retry = RetryAfter::default();
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_089_643);
        retry.set(at);
        let e = classify(instant_acme::Error::Api(p), &retry, |b| {
            AcmeError::Invalid(b.to_string())
        });
        assert_eq!(e.retry_after(), Some(at));
        assert_eq!(
            e.to_string(),
            "rate limited by the ACME CA until 2025-11-25 16:54:03 UTC: too many certificates \
             (urn:ietf:params:acme:error:rateLimited)"
        );
    }

    #[test]
    fn other_problems_go_to_the_step_error() {
        let p: instant_acme::Problem = serde_json::from_str(
            r#"{"type":"urn:ietf:params:acme:error:malformed","detail":"bad CSR"}"#,
        )
        .expect("problem");
        let e = classify(
            instant_acme::Error::Api(p),
            &RetryAfter::default(),
            |source| AcmeError::Finalize {
                names: "a.test".into(),
                stage: "finalizing the order",
                source,
            },
        );
        assert_eq!(
            chain(&e),
            "ACME order for a.test: finalizing the order failed: API error: bad CSR \
             (urn:ietf:params:acme:error:malformed)"
        );
    }
}
