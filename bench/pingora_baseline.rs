//! The "pingora" row of `bench/run`: Pingora with nothing of greenlight's.
//!
//! The least a Pingora reverse proxy can be for the benchmark's workload:
//! one `upstream_peer` hook (`/ws` to the WebSocket backend, the rest to
//! blue), upstream keep-alive, the same listeners (plain HTTP, and TLS with
//! h2 by ALPN through rustls) and the same thread count as greenlight. It
//! runs on greenlight's dependency tree and release profile (including the
//! vendored pingora-proxy, whose changes are off this path), so the
//! difference between this row and greenlight's is what greenlight's hooks
//! cost, and the difference between this row and nginx's is Pingora's.
//!
//! `pingora_baseline HTTP_ADDR HTTPS_ADDR CERT KEY APP_ADDR WS_ADDR`

use async_trait::async_trait;
use pingora::listeners::tls::TlsSettings;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use std::net::SocketAddr;

struct Baseline {
    app: SocketAddr,
    ws: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Baseline {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let to = if session.req_header().uri.path().starts_with("/ws") {
            self.ws
        } else {
            self.app
        };
        Ok(Box::new(HttpPeer::new(to, false, String::new())))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [http, https, cert, key, app, ws] = args.as_slice() else {
        eprintln!("usage: pingora_baseline HTTP_ADDR HTTPS_ADDR CERT KEY APP_ADDR WS_ADDR");
        std::process::exit(2);
    };
    let addr = |s: &str| -> SocketAddr {
        s.parse().unwrap_or_else(|e| {
            eprintln!("pingora_baseline: bad address {s:?}: {e}");
            std::process::exit(2)
        })
    };
    let conf = ServerConf {
        threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(
        &server.configuration,
        Baseline {
            app: addr(app),
            ws: addr(ws),
        },
    );
    proxy.add_tcp(http);
    let mut tls = TlsSettings::intermediate(cert, key).unwrap_or_else(|e| {
        eprintln!("pingora_baseline: TLS settings: {e}");
        std::process::exit(2)
    });
    tls.enable_h2();
    proxy.add_tls_with_settings(https, None, tls);
    server.add_service(proxy);
    server.run_forever();
}
