// greenlight patch (new file): the peer a request goes to, owned or shared.

use pingora_core::upstreams::peer::HttpPeer;
use std::ops::Deref;
use std::sync::Arc;

/// The peer [`crate::ProxyHttp::upstream_peer_ref`] names: a fresh one, or
/// one the application keeps and shares between requests.
#[derive(Debug, Clone)]
pub enum PeerRef {
    /// Made for this request.
    Owned(Box<HttpPeer>),
    /// Kept by the application.
    Shared(Arc<HttpPeer>),
}

impl Deref for PeerRef {
    type Target = HttpPeer;

    fn deref(&self) -> &HttpPeer {
        match self {
            PeerRef::Owned(p) => p,
            PeerRef::Shared(p) => p,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_kinds_read_as_the_peer() {
        let peer = HttpPeer::new("127.0.0.1:80", false, "a.test".into());
        let shared = Arc::new(peer.clone());
        for r in [PeerRef::Owned(Box::new(peer)), PeerRef::Shared(shared.clone())] {
            assert_eq!(r.sni, "a.test");
        }
        let again = PeerRef::Shared(shared.clone());
        assert_eq!(Arc::strong_count(&shared), 2);
        drop(again);
    }
}
