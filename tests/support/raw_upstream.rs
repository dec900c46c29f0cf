//! An upstream that answers with exactly the bytes a test gives it.
//!
//! [`RawUpstream`] reads each request (head and body, HTTP/1.1 framing) on a
//! keep-alive connection and writes back the raw response bytes its script
//! returns for the request target, unchanged: duplicated or conflicting
//! framing headers go on the wire as written, which a well-behaved server
//! library would refuse to produce. It counts accepted connections and
//! records the target and connection id of every request, so a test can tell
//! whether the proxy reused a connection.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use super::http1::{self, BodyKind};

/// The response bytes for a request target.
pub type Script = Arc<dyn Fn(&str) -> Vec<u8> + Send + Sync>;

#[derive(Default)]
struct Shared {
    accepted: AtomicU64,
    /// (target, connection id) per request, in arrival order.
    requests: Mutex<Vec<(String, u64)>>,
}

/// A scripted raw HTTP/1.1 upstream on `127.0.0.1:<ephemeral>`; dropping it
/// closes the listener and every connection.
pub struct RawUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl RawUpstream {
    /// Starts an upstream answering each request with `script(target)`.
    pub async fn start(script: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static) -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind raw upstream");
        let addr = listener.local_addr().expect("raw upstream addr");
        let shared = Arc::new(Shared::default());
        let script: Script = Arc::new(script);
        let task = tokio::spawn(accept_loop(listener, shared.clone(), script));
        RawUpstream { addr, shared, task }
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections accepted since start.
    pub fn accepted_connections(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// (target, connection id) of every request so far; ids count from 1.
    pub fn requests(&self) -> Vec<(String, u64)> {
        self.shared.requests.lock().unwrap().clone()
    }
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, script: Script) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            tcp = crate::support::accept(&listener) => {
                let id = shared.accepted.fetch_add(1, Ordering::SeqCst) + 1;
                let (shared, script) = (shared.clone(), script.clone());
                conns.spawn(async move {
                    let _ = serve(tcp, id, &shared, &script).await;
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn serve(tcp: TcpStream, id: u64, shared: &Shared, script: &Script) -> io::Result<()> {
    let mut io = BufReader::new(tcp);
    while let Some(head) = http1::read_head(&mut io).await? {
        let target = head.start_line.split(' ').nth(1).unwrap_or("").to_string();
        let kind = http1::body_kind(&head.headers, BodyKind::Empty)?;
        http1::read_body(&mut io, kind).await?;
        shared.requests.lock().unwrap().push((target.clone(), id));
        io.write_all(&script(&target)).await?;
        io.flush().await?;
    }
    Ok(())
}
