//! A minimal blocking HTTP/1.1 client for the CLI's admin commands
//! (`switch`, `status`, `reload`). The CLI never touches process state: it
//! only talks to a running greenlight's admin API.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Why an admin call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No connection.
    #[error(
        "cannot reach the admin API at {addr}: {source} — is greenlight running, and is this its admin address?"
    )]
    Connect {
        /// Address tried.
        addr: SocketAddr,
        /// OS error.
        source: std::io::Error,
    },
    /// The connection broke or the answer was not HTTP + JSON.
    #[error("bad answer from the admin API: {0}")]
    Protocol(String),
}

/// An admin API endpoint with an optional bearer token.
#[derive(Debug, Clone)]
pub struct AdminClient {
    addr: SocketAddr,
    token: Option<String>,
}

impl AdminClient {
    /// A client for the API at `addr`.
    pub fn new(addr: SocketAddr, token: Option<String>) -> AdminClient {
        AdminClient { addr, token }
    }

    /// Sends one request; returns the status and the JSON body.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), ClientError> {
        let proto = |e: std::io::Error| ClientError::Protocol(e.to_string());
        let mut s =
            TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).map_err(|source| {
                ClientError::Connect {
                    addr: self.addr,
                    source,
                }
            })?;
        s.set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(proto)?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        if let Some(t) = &self.token {
            req.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(&body);
        s.write_all(req.as_bytes()).map_err(proto)?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).map_err(proto)?;
        let text = String::from_utf8_lossy(&raw);
        let (head, rest) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| ClientError::Protocol("no HTTP header".into()))?;
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ClientError::Protocol(format!("bad status line: {head}")))?;
        let json = serde_json::from_str(rest.trim())
            .map_err(|e| ClientError::Protocol(format!("not JSON ({e}): {rest}")))?;
        Ok((status, json))
    }
}
