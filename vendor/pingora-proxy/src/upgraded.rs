// greenlight patch: this file is not part of pingora-proxy 0.9.1.
//
// An HTTP/1 upgrade (WebSocket) handed over whole, once the 101 has been
// written to the client. Pingora alone keeps every upgraded connection inside
// its request machinery for the tunnel's whole life: the connection's task and
// boxed request future (about 23 KB), two 64 KiB body buffers, two task
// channels and both parsed header sets. An application that takes the two
// streams can run the tunnel in a small task of its own and let all of that go.

use bytes::Bytes;
use pingora_core::protocols::Stream;

/// Both ends of an upgraded connection, and what was read from them already.
pub struct UpgradedTunnel {
    /// The client's connection (TLS already terminated by the stream).
    pub downstream: Stream,
    /// The upstream server's connection.
    pub upstream: Stream,
    /// Bytes the client sent after its request that were already read; they
    /// go to the upstream first.
    pub from_downstream: Vec<Bytes>,
    /// Bytes the upstream sent after its 101 that were already read; they go
    /// to the client first.
    pub from_upstream: Vec<Bytes>,
    /// The client had already closed its side.
    pub downstream_closed: bool,
    /// The upstream had already closed its side.
    pub upstream_closed: bool,
}

/// Runs an [`UpgradedTunnel`]; called once, from the request's task.
pub type TunnelRunner = Box<dyn FnOnce(UpgradedTunnel) + Send>;

/// The default runner: a plain copy both ways on a task of its own.
pub fn spawn_copy(t: UpgradedTunnel) {
    use tokio::io::AsyncWriteExt;
    tokio::spawn(async move {
        let UpgradedTunnel {
            mut downstream,
            mut upstream,
            from_downstream,
            from_upstream,
            ..
        } = t;
        for b in from_downstream {
            if upstream.write_all(&b).await.is_err() {
                return;
            }
        }
        for b in from_upstream {
            if downstream.write_all(&b).await.is_err() {
                return;
            }
        }
        if upstream.flush().await.is_err() || downstream.flush().await.is_err() {
            return;
        }
        let _ = tokio::io::copy_bidirectional(&mut downstream, &mut upstream).await;
    });
}
