//! What runs on a client connection before TLS and HTTP: the PROXY protocol
//! header of a `proxy_protocol` listener ([`proxy_protocol`]), then, on TLS
//! listeners, the ACME TLS-ALPN-01 answer ([`crate::acme::listener`]).
//!
//! Pingora has one pre-TLS hook per listening service, and greenlight's
//! listeners share one service; so [`PreTls`] finds the listener of each
//! connection by its local address (cached in the socket digest, which the
//! connection counting reads anyway) and runs what that listener needs. It is
//! installed only when some listener needs it. Our pingora-core patch runs
//! the hook on plain listeners too (vendor/README.md). Listeners are fixed
//! at start, and so is this.

pub mod proxy_protocol;

use crate::acme::listener::AcmeTlsAlpn;
use crate::config::model::ListenerConfig;
use crate::metrics::Metrics;
use async_trait::async_trait;
use pingora::listeners::PreTlsProcess;
use pingora::protocols::GetSocketDigest;
use pingora::protocols::l4::stream::Stream;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// One listener as the hook needs it.
struct Listener {
    name: String,
    addr: SocketAddr,
    tls: bool,
    proxy_protocol: bool,
}

impl Listener {
    fn serves(&self, local: SocketAddr) -> bool {
        accepts(self.addr, local)
    }
}

/// Whether a socket bound to `bound` accepts connections to `local`: the
/// same address, or the wildcard of the same family and port. `0.0.0.0:80`
/// and `[::]:80` are two listeners (greenlight's `[::]` sockets are
/// IPv6-only), so an IPv6 connection is never counted against, or given the
/// settings of, the IPv4 wildcard.
pub fn accepts(bound: SocketAddr, local: SocketAddr) -> bool {
    bound == local
        || (bound.ip().is_unspecified()
            && bound.port() == local.port()
            && bound.is_ipv4() == local.is_ipv4())
}

/// The pre-TLS hook of the proxy service's listeners.
pub struct PreTls {
    listeners: Vec<Listener>,
    acme: Option<AcmeTlsAlpn>,
    metrics: Arc<Metrics>,
    /// How long a PROXY header may take to arrive (`limits.header_timeout`).
    header_timeout: Duration,
}

impl PreTls {
    /// The hook for `listeners`, or `None` when none of them needs one (no
    /// PROXY protocol, and no ACME answer on a TLS listener).
    pub fn new(
        listeners: &[ListenerConfig],
        acme: Option<AcmeTlsAlpn>,
        metrics: Arc<Metrics>,
        header_timeout: Duration,
    ) -> Option<PreTls> {
        let acme = acme.filter(|_| listeners.iter().any(|l| l.tls));
        if acme.is_none() && !listeners.iter().any(|l| l.proxy_protocol) {
            return None;
        }
        Some(PreTls {
            listeners: listeners
                .iter()
                .map(|l| Listener {
                    name: l.name.clone(),
                    addr: l.addr,
                    tls: l.tls,
                    proxy_protocol: l.proxy_protocol,
                })
                .collect(),
            acme,
            metrics,
            header_timeout,
        })
    }
}

#[async_trait]
impl PreTlsProcess for PreTls {
    async fn process(&self, stream: &mut Stream) -> pingora::Result<()> {
        let local = stream
            .get_socket_digest()
            .and_then(|d| d.local_addr().and_then(|a| a.as_inet()).copied());
        let Some(l) = local.and_then(|a| self.listeners.iter().find(|l| l.serves(a))) else {
            return Ok(());
        };
        if l.proxy_protocol {
            proxy_protocol::accept(stream, &l.name, self.header_timeout, &self.metrics).await?;
        }
        match &self.acme {
            Some(acme) if l.tls => acme.process(stream).await,
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod accepts_tests {
    use super::accepts;
    use std::net::SocketAddr;

    #[test]
    fn a_wildcard_takes_its_own_family_only() {
        let a = |s: &str| s.parse::<SocketAddr>().expect("addr");
        assert!(accepts(a("0.0.0.0:80"), a("127.0.0.1:80")));
        assert!(accepts(a("[::]:80"), a("[::1]:80")));
        assert!(!accepts(a("0.0.0.0:80"), a("[::1]:80")));
        assert!(!accepts(a("[::]:80"), a("127.0.0.1:80")));
        assert!(!accepts(a("0.0.0.0:80"), a("127.0.0.1:81")));
        assert!(accepts(a("127.0.0.1:80"), a("127.0.0.1:80")));
        assert!(!accepts(a("127.0.0.1:80"), a("127.0.0.2:80")));
    }
}
