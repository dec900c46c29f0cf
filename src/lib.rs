//! greenlight: a Pingora-based reverse proxy for zero-downtime blue/green
//! deploys, with TLS that runs itself.
//!
//! The crate is a library plus a thin binary (`main.rs`). Module map:
//! `config` (YAML -> typed model), `state` (the one snapshot swap), `proxy`
//! (the Pingora `ProxyHttp` hooks and routing), `upstream` (pools and RAII
//! request guards), `tls` (certificates and the SNI resolver), `server`
//! (assembling Pingora), `cli` (the command line).

pub mod accesslog;
pub mod acme;
pub mod admin;
pub mod cli;
pub mod cli_admin;
pub mod cli_cluster;
pub mod cli_docs;
pub mod cli_watch;
pub mod cluster;
pub mod config;
pub mod lifecycle;
pub mod listen;
pub mod logging;
pub mod memtrim;
pub mod metrics;
pub mod mp4;
pub mod nginx;
pub mod plan;
pub mod proxy;
pub mod reload;
pub mod selfupgrade;
pub mod server;
pub mod state;
pub mod timefmt;
pub mod tls;
pub mod upstream;
