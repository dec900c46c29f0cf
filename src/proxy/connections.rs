//! Client connections: counted per listener and protocol, and capped.
//!
//! Pingora gives a `ProxyHttp` no hook when a client connection opens or
//! closes; it hands each accepted (and, for TLS, handshaken) connection to a
//! `ServerApp`, and for HTTP/1.1 keep-alive hands the connection back and
//! forth once per request. [`CountedApp`] wraps the proxy's `ServerApp` and
//! keeps one connection for its whole life — it runs the keep-alive loop
//! itself, exactly as Pingora would — so an RAII guard can count it: the
//! `greenlight_downstream_connections` gauge and each listener's
//! `max_connections`. A connection over the cap is closed at once, before any
//! byte is read (the client sees the connection close and may retry).
//! A [`ConnectionWatermark`] shared by all listeners tells the memory
//! trimmer (`crate::memtrim`) when connections have ended.

use crate::metrics::{GaugeGuard, HttpProtocol, ListenerMetrics, Metrics};
use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::{ALPN, Stream};
use pingora::server::ShutdownWatch;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// One listener's counting state.
pub struct ListenerSlot {
    addr: SocketAddr,
    name: String,
    max: usize,
    open: AtomicUsize,
    metrics: ListenerMetrics,
}

impl ListenerSlot {
    /// A slot for the listener `name` bound to `addr`, capped at `max`.
    pub fn new(name: &str, addr: SocketAddr, max: usize, metrics: &Metrics) -> ListenerSlot {
        ListenerSlot {
            addr,
            name: name.to_string(),
            max,
            open: AtomicUsize::new(0),
            metrics: metrics.listener_handles(name),
        }
    }

    fn serves(&self, local: SocketAddr) -> bool {
        crate::listen::accepts(self.addr, local)
    }
}

/// Open client connections over all listeners, and the most that were
/// open at once since the count was last taken: a burst between two looks
/// is still seen.
#[derive(Debug, Default)]
pub struct ConnectionWatermark {
    open: AtomicUsize,
    high: AtomicUsize,
}

impl ConnectionWatermark {
    fn opened(&self) {
        let now = self.open.fetch_add(1, Ordering::AcqRel) + 1;
        self.high.fetch_max(now, Ordering::AcqRel);
    }

    fn closed(&self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }

    /// `(open now, most open at once since the last call)`; the high-water
    /// mark starts again from the current count.
    pub fn take(&self) -> (usize, usize) {
        let open = self.open.load(Ordering::Acquire);
        let high = self.high.swap(open, Ordering::AcqRel);
        (open, high.max(open))
    }
}

/// Releases a slot (and the gauge, by its own drop) when the connection ends.
struct SlotGuard {
    slot: Arc<ListenerSlot>,
    watermark: Arc<ConnectionWatermark>,
    _gauge: GaugeGuard,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.slot.open.fetch_sub(1, Ordering::AcqRel);
        self.watermark.closed();
    }
}

/// Keeps a client connection counted after its request task has ended: an
/// upgraded WebSocket moved to a task of its own (`super::tunnel`) holds one.
#[derive(Clone)]
pub struct ConnectionHold(#[allow(dead_code)] Arc<SlotGuard>);

tokio::task_local! {
    /// The connection the current task serves (absent for uncounted ones).
    static CONNECTION: Option<ConnectionHold>;
}

/// The hold on the connection this task serves, if it is counted.
pub fn current_connection() -> Option<ConnectionHold> {
    CONNECTION.try_with(Clone::clone).ok().flatten()
}

/// The proxy's `ServerApp`, with connections counted and capped.
pub struct CountedApp<A> {
    inner: Arc<A>,
    slots: Vec<Arc<ListenerSlot>>,
    watermark: Arc<ConnectionWatermark>,
}

impl<A> CountedApp<A> {
    /// Wraps `inner`; `slots` describe the listeners; every counted
    /// connection is also counted in `watermark`.
    pub fn new(
        inner: A,
        slots: Vec<ListenerSlot>,
        watermark: Arc<ConnectionWatermark>,
    ) -> CountedApp<A> {
        CountedApp {
            inner: Arc::new(inner),
            slots: slots.into_iter().map(Arc::new).collect(),
            watermark,
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for CountedApp<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let local = stream
            .get_socket_digest()
            .and_then(|d| d.local_addr().and_then(|a| a.as_inet()).copied());
        let slot = local.and_then(|l| self.slots.iter().find(|s| s.serves(l)));
        let hold = match slot {
            Some(slot) => {
                if slot.open.fetch_add(1, Ordering::AcqRel) >= slot.max {
                    slot.open.fetch_sub(1, Ordering::AcqRel);
                    log::warn!(
                        "listener '{}': {} connections open (max_connections); closing a new one",
                        slot.name,
                        slot.max
                    );
                    return None;
                }
                let proto = if stream.selected_alpn_proto() == Some(ALPN::H2) {
                    HttpProtocol::H2
                } else {
                    HttpProtocol::H1
                };
                self.watermark.opened();
                Some(ConnectionHold(Arc::new(SlotGuard {
                    slot: slot.clone(),
                    watermark: self.watermark.clone(),
                    _gauge: slot.metrics.connection_opened(proto),
                })))
            }
            None => None,
        };
        // The keep-alive loop Pingora would run, kept here so the hold
        // spans the whole connection (and a tunnel can take a share of it).
        CONNECTION
            .scope(hold, async {
                let mut next = self.inner.process_new(stream, shutdown).await;
                while let Some(s) = next {
                    next = self.inner.process_new(s, shutdown).await;
                }
            })
            .await;
        None
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await;
    }
}
