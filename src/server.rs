//! Assembles and runs the Pingora server: listeners (fixed at start), the
//! proxy service, and the background services.
//!
//! Start-up order matters for clear failures: the configuration and every
//! certificate are loaded and checked first, then each listen address is
//! test-bound, so that a bad file or a port in use ends the process with one
//! readable line and a non-zero exit — Pingora itself would retry a busy port
//! for 30 s and then panic. Only then is the Pingora server built (with
//! `Server::new_with_opt_and_conf`, never mutating its configuration later,
//! which is known to break the upgrade hand-off) and run.

use crate::acme::listener::AcmeTlsAlpn;
use crate::acme::{AcmeService, AcmeSite, InstallFn};
use crate::admin::AdminApi;
use crate::config::ConfigSource;
use crate::config::model::TlsSource;
use crate::lifecycle::Signals;
use crate::proxy::GreenlightProxy;
use crate::proxy::connections::{CountedApp, ListenerSlot};
use crate::reload::HupCatcher;
use crate::state::{ApplyError, StateHandle};
use crate::tls::SniCapture;
use crate::upstream::drain::DrainService;
use crate::upstream::health::HealthService;
use pingora::listeners::tls::TlsSettings;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use pingora::services::background::background_service;
use std::net::SocketAddr;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Configuration or certificates are invalid.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// A listen address cannot be bound.
    #[error("cannot listen on {addr} (listener '{name}'): {source} — {hint}")]
    Bind {
        /// Listener name.
        name: String,
        /// Its address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
        /// What to do about it.
        hint: &'static str,
    },
    /// The admin token file is unusable.
    #[error("cannot read the admin token file {}: {source}", path.display())]
    Token {
        /// The file.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Pingora could not be set up.
    #[error("cannot set up the server: {0}")]
    Setup(String),
}

/// The read buffer of a TLS client connection: one maximum-size TLS record
/// (RFC 8446 §5.1: 2^14 bytes of plaintext, plus the record overhead).
const TLS_READ_BUFFER: usize = 16 * 1024 + 256;

/// HTTP/2 control frames (PING, SETTINGS, PRIORITY, GOAWAY, WINDOW_UPDATE
/// with no stream open) a client connection may send at once. A browser sends
/// a handful per connection and a few per page; a flood (a million a second)
/// spends it in about a millisecond. Each HEADERS or DATA frame greenlight
/// sends adds one back, so a client's control traffic may grow with the work
/// it asks for (gRPC clients probe bandwidth with one PING per round trip).
const H2_CONTROL_FRAME_BURST: u32 = 1_000;

/// How fast that allowance refills on its own: a keep-alive PING every second
/// for hours never comes near it, a flood of 20 seconds gets past it by
/// at most 1,000 frames.
const H2_CONTROL_FRAMES_PER_SEC: u32 = 50;
/// The most response bytes one HTTP/2 stream queues toward its client:
/// four frames of the default 16 KiB size (issue #12, slow readers).
const H2_STREAM_SEND_BUFFER: usize = 64 * 1024;

/// Runs greenlight until it is told to stop.
pub fn run(source: ConfigSource, upgrade: bool) -> Result<(), ServerError> {
    // First of all, so that a SIGHUP during start-up cannot kill the process.
    let reloader = HupCatcher::install().map_err(|e| ServerError::Setup(e.to_string()))?;
    log::info!(
        "greenlight {} starting: loading {}",
        env!("CARGO_PKG_VERSION"),
        match &source {
            ConfigSource::File(p) => p.display().to_string(),
            ConfigSource::Embedded => crate::config::EMBEDDED_NAME.to_string(),
        }
    );
    let state = StateHandle::start(source)?;
    crate::tls::handshake::count_handshake_failures(state.metrics().clone());
    let snapshot = state.load();
    let config = snapshot.config.clone();
    let token = match &config.admin.token_file {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ServerError::Token {
                path: path.clone(),
                source,
            })?;
            let t = text.lines().next().unwrap_or("").trim().to_string();
            if t.is_empty() {
                return Err(ServerError::Token {
                    path: path.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "the file is empty",
                    ),
                });
            }
            Some(t)
        }
    };
    let binds: Vec<(String, SocketAddr)> = config
        .listeners
        .iter()
        .map(|l| (l.name.clone(), l.addr))
        .chain(std::iter::once(("admin".to_string(), config.admin.addr)))
        .collect();
    // In an upgrade the old process still holds these ports: they come over
    // the upgrade socket instead.
    for (name, addr) in binds.iter().filter(|_| !upgrade) {
        if let Err(source) = std::net::TcpListener::bind(addr) {
            let hint = match source.kind() {
                std::io::ErrorKind::AddrInUse => {
                    "another process uses this port: stop it or change the address"
                }
                std::io::ErrorKind::PermissionDenied => {
                    "ports below 1024 need root or CAP_NET_BIND_SERVICE"
                }
                _ => "check the address",
            };
            return Err(ServerError::Bind {
                name: name.clone(),
                addr: *addr,
                source,
                hint,
            });
        }
    }

    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let conf = ServerConf {
        threads,
        // Work stealing stays on: without it (one single-threaded runtime per
        // thread) h2 fell from ~20k to ~12.6k req/s on one core (BENCHMARKS.md).
        // Only an upper bound: `lifecycle` exits the process as soon as
        // nothing is in flight, and ends what is left at shutdown_timeout.
        grace_period_seconds: Some(config.shutdown_timeout.as_secs() + 5),
        graceful_shutdown_timeout_seconds: Some(1),
        pid_file: std::env::temp_dir()
            .join(format!("greenlight-{}.pid", std::process::id()))
            .display()
            .to_string(),
        upgrade_sock: config.upgrade_socket.display().to_string(),
        // Timeouts and sleeps of a second or more on tokio's timer wheel, not
        // Pingora's 10 ms slots: cancelled when the request is done instead
        // of kept until they expire, and cheaper per request (BENCHMARKS.md,
        // issue #15). Shorter ones keep Pingora's timer.
        fast_timeout_to_tokio_threshold_seconds: Some(0),
        ..ServerConf::default()
    };
    let opt = pingora::server::configuration::Opt {
        upgrade,
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(Some(opt), conf);
    server.bootstrap();

    let mut app = pingora::proxy::HttpProxy::new(
        GreenlightProxy::new(state.clone()),
        server.configuration.clone(),
    );
    app.handle_init_modules();
    // Fixed at start (listeners are): slowloris protection, h2 streams.
    app.first_request_header_timeout = Some(config.limits.header_timeout);
    // A keep-alive connection gets the idle wait plus the header time for
    // its next request (nginx: keepalive_timeout, then client_header_timeout).
    app.reused_request_header_timeout =
        Some(config.limits.keepalive_timeout + config.limits.header_timeout);
    // HTTP/2 connections without streams close after the same idle time as
    // HTTP/1.1 keep-alive (nginx: keepalive_timeout covers h2 since 1.19.7).
    // Taken at start, like the listeners.
    let mut server_options = pingora::apps::HttpServerOptions::default();
    server_options.h2_idle_timeout = Some(config.limits.keepalive_timeout);
    app.server_options = Some(server_options);
    let mut h2 = pingora::protocols::http::v2::server::default_h2_options();
    h2.max_concurrent_streams(config.limits.h2_max_concurrent_streams);
    // PING/SETTINGS/PRIORITY floods get GOAWAY ENHANCE_YOUR_CALM (issue #12):
    // client connections only, the upstream side is an h2 client.
    h2.control_frame_budget(H2_CONTROL_FRAME_BURST, H2_CONTROL_FRAMES_PER_SEC);
    // What one HTTP/2 stream may have queued for a client that is not
    // reading: the h2 crate's default is about 400 KiB per stream, the same
    // memory an idle slow reader would cost on each of its streams. Four
    // full frames keep the connection's writer fed.
    h2.max_send_buffer_size(H2_STREAM_SEND_BUFFER);
    app.h2_options = Some(h2);
    let watermark = std::sync::Arc::new(crate::proxy::connections::ConnectionWatermark::default());
    let slots = config
        .listeners
        .iter()
        .map(|l| ListenerSlot::new(&l.name, l.addr, l.max_connections, state.metrics()))
        .collect();
    let mut proxy = pingora::services::listening::Service::new(
        "greenlight proxy".to_string(),
        CountedApp::new(app, slots, watermark.clone()),
    );
    for (i, l) in config.listeners.iter().enumerate() {
        let addr = l.addr.to_string();
        // An IPv6 listener is IPv6-only, as in nginx (`ipv6only=on` is its
        // default): `[::]:443` and `0.0.0.0:443` can then both be listed, the
        // way imported nginx sites have them. Without this, Linux makes
        // `[::]` dual-stack and the IPv4 listener would fail to bind.
        let mut sock = pingora::listeners::TcpSocketOptions::default();
        sock.ipv6_only = l.addr.is_ipv6().then_some(true);
        // Pingora gives every client connection a 64 KiB read buffer, filled
        // with zeros up front: 64 KiB of RSS for each idle WebSocket or
        // keep-alive connection. On a plain listener greenlight's HTTP/1
        // reader reads into its own buffers anyway, so the extra layer is
        // only a copy: none. TLS reads many small records, so there a buffer
        // saves system calls: one TLS record's worth.
        let read_buffer = if l.tls { TLS_READ_BUFFER } else { 0 };
        let mut endpoint = pingora::listeners::ListenerConfig::tcp(addr)
            .tcp_socket_options(sock)
            .l4_buffer(pingora::listeners::L4BufferSettings::default().read(read_buffer));
        if l.tls {
            let mut tls = TlsSettings::with_callbacks(Box::new(SniCapture))
                .map_err(|e| ServerError::Setup(e.to_string()))?;
            // This listener's sites' certificates (all, unless some site
            // has `listeners:`).
            tls.set_cert_resolver(std::sync::Arc::new(
                crate::tls::listener_certs::ListenerResolver::new(state.cert_store(), i),
            ));
            // Asks for client certificates only while a site has `client_auth:`.
            tls.set_client_cert_verifier(state.cert_store().client_verifier());
            tls.enable_h2();
            endpoint = endpoint.tls(tls);
        }
        proxy.add_listener(endpoint);
        log::info!(
            "listener '{}' on {}{}{}",
            l.name,
            l.addr,
            if l.tls { " (TLS: h2, http/1.1)" } else { "" },
            if l.proxy_protocol {
                " (PROXY protocol)"
            } else {
                ""
            }
        );
    }
    // PROXY protocol headers, then ACME's TLS-ALPN-01 answers (`listen`).
    if let Some(hook) = crate::listen::PreTls::new(
        &config.listeners,
        config
            .acme
            .is_some()
            .then(|| AcmeTlsAlpn(state.challenges().clone())),
        state.metrics().clone(),
        config.limits.header_timeout,
    ) {
        proxy
            .endpoints()
            .set_pre_tls_callback(std::sync::Arc::new(hook));
    }
    server.add_service(proxy);

    let mut admin = pingora::services::listening::Service::new(
        "greenlight admin".to_string(),
        AdminApi::new(
            state.clone(),
            token,
            crate::admin::guard::HostRules::new(config.admin.addr, &config.admin.allowed_hosts),
        ),
    );
    admin.add_tcp(&config.admin.addr.to_string());
    server.add_service(admin);
    log::info!("admin API on {}", config.admin.addr);

    let cluster = config.cluster.clone().map(|c| {
        let cluster = crate::cluster::Cluster::new(c, config.admin.addr, state.metrics().clone());
        state.set_cluster(cluster.clone());
        cluster
    });
    let mut fleet_acme = None;
    if let Some(manager) = state.acme().cloned() {
        let sites: Vec<AcmeSite> = config
            .sites
            .iter()
            .filter(|s| s.tls == Some(TlsSource::Acme))
            .map(|s| AcmeSite {
                name: s.name.clone(),
                names: s.acme_cert_names(),
            })
            .collect();
        // Fleet mode: one order per certificate for the whole fleet.
        let issuer: std::sync::Arc<dyn crate::acme::Issuer> = match &cluster {
            Some(cluster) => {
                let fleet = crate::cluster::acme::FleetAcme::new(
                    cluster.clone(),
                    manager,
                    &sites,
                    state.challenges().clone(),
                );
                fleet_acme = Some(fleet.clone());
                fleet
            }
            None => manager,
        };
        let for_install = state.clone();
        let install: InstallFn =
            std::sync::Arc::new(move |site: &str, cert| for_install.install_acme_cert(site, cert));
        let metrics = state.metrics().clone();
        let acme = AcmeService::new(issuer, sites, install).with_report(std::sync::Arc::new(
            move |site: &str, renewal: bool, ok: bool| metrics.acme_order(site, renewal, ok),
        ));
        state.set_acme_status(acme.status_handle());
        server.add_service(background_service("greenlight acme", acme));
    }

    if let Some(cluster) = cluster {
        server.add_service(background_service(
            "greenlight cluster",
            crate::cluster::ClusterService::new(cluster, state.clone()).with_acme(fleet_acme),
        ));
    }
    let (drains, tx) = DrainService::new();
    state.set_drain_sender(tx);
    server.add_service(background_service("greenlight drains", drains));
    server.add_service(background_service(
        "greenlight memory trim",
        crate::memtrim::MemoryTrimService::new(watermark),
    ));
    server.add_service(background_service(
        "greenlight health",
        HealthService::new(state.clone()),
    ));
    server.add_service(background_service(
        "greenlight reload",
        reloader.bind(state.clone()),
    ));
    log::info!(
        "greenlight started: config {} generation {}",
        config.source.display(),
        snapshot.generation
    );
    let signals = Signals::new(
        state.clone(),
        config.shutdown_timeout,
        config.upgrade_socket.clone(),
        server.watch_execution_phase(),
    );
    server.run(pingora::server::RunArgs {
        shutdown_signal: Box::new(signals),
    });
    Ok(())
}
