//! A TCP load balancer for the fleet tests: the address a CA's validation
//! connects to, in front of several greenlight members.
//!
//! Owns one loopback listener and the connections it relays; touches nothing
//! else. For each accepted connection a test-supplied chooser names the
//! target (the fleet ACME test sends the CA to a member that is *not* the
//! one ordering, which only works if the answers travel through etcd); the
//! bytes are then relayed both ways until either side closes, bounded by
//! [`RELAY_LIMIT`]. The accept loop runs in a task aborted on drop.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Longest life of one relayed connection.
const RELAY_LIMIT: Duration = Duration::from_secs(30);

/// Picks the target index for a new connection.
pub type Chooser = Arc<dyn Fn() -> usize + Send + Sync>;

/// A running balancer; stops on drop.
pub struct Balancer {
    port: u16,
    accept: JoinHandle<()>,
    picks: Arc<Mutex<Vec<usize>>>,
}

impl Balancer {
    /// Listens on a free loopback port and relays every connection to
    /// `targets[choose()]`.
    pub async fn start(targets: Vec<SocketAddr>, choose: Chooser) -> Balancer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the balancer");
        let port = listener.local_addr().expect("balancer address").port();
        let picks = Arc::new(Mutex::new(Vec::new()));
        let recorded = picks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let i = choose();
                recorded.lock().unwrap_or_else(|p| p.into_inner()).push(i);
                let target = targets[i];
                tokio::spawn(async move {
                    let Ok(Ok(mut upstream)) =
                        tokio::time::timeout(super::IO_TIMEOUT, TcpStream::connect(target)).await
                    else {
                        return;
                    };
                    let _ = tokio::time::timeout(
                        RELAY_LIMIT,
                        tokio::io::copy_bidirectional(&mut client, &mut upstream),
                    )
                    .await;
                });
            }
        });
        Balancer {
            port,
            accept,
            picks,
        }
    }

    /// The port clients (the CA) connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The target chosen for each connection so far, in order.
    pub fn picks(&self) -> Vec<usize> {
        self.picks.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
