//! Micro-benchmarks of the request-path pieces greenlight owns: the routing
//! decision, the snapshot load and the client-IP walk. `cargo bench` prints ns per operation;
//! CI only builds it (`cargo bench --no-run`) so it stays compilable.
//!
//! A plain timing loop (no benchmark framework dependency): each case runs a
//! warm-up, then enough iterations to last about a second, and reports the
//! mean. `std::hint::black_box` keeps the optimiser honest.

use greenlight::config::{ConfigSource, load_str};
use greenlight::plan::router::RouteInput;
use greenlight::state::StateHandle;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

fn bench(name: &str, mut f: impl FnMut()) {
    for _ in 0..10_000 {
        f();
    }
    let mut iters: u64 = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        for _ in 0..1_000 {
            f();
        }
        iters += 1_000;
    }
    let ns = start.elapsed().as_nanos() as f64 / iters as f64;
    println!("{name:<40} {ns:>8.1} ns/op  ({iters} iterations)");
}

fn config_with_sites(n: usize) -> String {
    let mut y = String::from(
        "access_log: off\nlisteners:\n  http: {address: \"127.0.0.1:1\"}\nupstreams:\n  app: {active: a, pools: {a: [\"127.0.0.1:2\"], b: [\"127.0.0.1:3\"]}}\n  api: {active: a, pools: {a: [\"127.0.0.1:4\"]}}\nsites:\n",
    );
    // One site with regex locations (the other sites have none, so their
    // cases never run a regex).
    y.push_str("  rx:\n    hosts: [rx.example.com]\n    routes: [{path: /, upstream: app}, {path: \"~ ^/users/(?<id>\\\\d+)$\", upstream: api}, {path: \"~* \\\\.png$\", upstream: app}]\n");
    for i in 0..n {
        y.push_str(&format!(
            "  s{i}:\n    hosts: [site{i}.example.com, \"*.w{i}.example.com\"]\n    routes: [{{path: /, upstream: app}}, {{path: /api/, upstream: api}}, {{path: /api/v2/, upstream: app}}]\n"
        ));
    }
    y
}

fn main() {
    for sites in [1, 1000] {
        let cfg =
            load_str(Path::new("bench.yaml"), &config_with_sites(sites)).expect("valid config");
        let state = StateHandle::from_parts(
            ConfigSource::Embedded,
            cfg,
            Default::default(),
            std::sync::Arc::new(greenlight::metrics::Metrics::new().expect("metrics")),
            None,
            Default::default(),
        );
        let snap = state.load();
        let last = format!("site{}.example.com", sites - 1);
        let wild = format!("x.w{}.example.com", sites - 1);
        bench(&format!("route exact host, {sites} site(s)"), || {
            black_box(snap.router.route(&RouteInput {
                host: Some(black_box(last.as_str())),
                path: black_box("/api/v2/users/42"),
                tls: false,
                sni: None,
                method: &http::Method::GET,
                listener: None,
            }));
        });
        bench(&format!("route wildcard host, {sites} site(s)"), || {
            black_box(snap.router.route(&RouteInput {
                host: Some(black_box(wild.as_str())),
                path: black_box("/index.html"),
                tls: true,
                sni: Some("x.example.org"),
                method: &http::Method::GET,
                listener: None,
            }));
        });
        bench(
            &format!("route mixed-case host:port, {sites} site(s)"),
            || {
                black_box(snap.router.route(&RouteInput {
                    host: Some(black_box("SITE0.Example.com:8080")),
                    path: black_box("/"),
                    tls: false,
                    sni: None,
                    method: &http::Method::GET,
                    listener: None,
                }));
            },
        );
        bench(
            &format!("route regex location + captures, {sites} site(s)"),
            || {
                black_box(snap.router.route(&RouteInput {
                    host: Some(black_box("rx.example.com")),
                    path: black_box("/users/42"),
                    tls: false,
                    sni: None,
                    method: &http::Method::GET,
                    listener: None,
                }));
            },
        );
        bench(
            &format!("route regexes tried, prefix wins, {sites} site(s)"),
            || {
                black_box(snap.router.route(&RouteInput {
                    host: Some(black_box("rx.example.com")),
                    path: black_box("/about/team"),
                    tls: false,
                    sni: None,
                    method: &http::Method::GET,
                    listener: None,
                }));
            },
        );
        bench(&format!("snapshot load, {sites} site(s)"), || {
            black_box(state.load());
        });
    }
    client_ip();
}

/// The real client IP: the default rule (nobody trusted: no header read),
/// and a trusted peer whose X-Forwarded-For has two trusted hops and a
/// forged entry before the client.
fn client_ip() {
    use greenlight::plan::client_ip::ClientIpRule;
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "x-forwarded-for",
        http::HeaderValue::from_static("6.6.6.6, 203.0.113.7, 10.0.0.2, 10.0.0.3"),
    );
    let peer: std::net::IpAddr = "10.0.0.1".parse().expect("ip");
    let default = ClientIpRule::default();
    bench("client ip, nobody trusted", || {
        black_box(default.resolve(black_box(peer), black_box(&headers)));
    });
    let nets = [
        "173.245.48.0/20",
        "103.21.244.0/22",
        "10.0.0.0/8",
        "2400:cb00::/32",
    ];
    let trusting = ClientIpRule::new(
        nets.iter().map(|n| n.parse().expect("net")).collect(),
        http::HeaderName::from_static("x-forwarded-for"),
    );
    bench("client ip, trusted peer, 3 hops", || {
        black_box(trusting.resolve(black_box(peer), black_box(&headers)));
    });
}
