//! A standard scene for proxy scenarios: a test CA with certificates for the
//! test hosts, two HTTP upstreams (`web`, `api`), a WebSocket echo upstream
//! (`ws`), a refusing address, and greenlight started in front of them.

use crate::support::*;
use std::net::SocketAddr;

/// Everything a scenario needs, alive for the test's duration.
pub struct Scene {
    pub ca: TestCa,
    pub web: HttpUpstream,
    pub api: HttpUpstream,
    pub ws: WsUpstream,
    /// Kept alive so its port stays refused for the test's duration.
    #[allow(dead_code)]
    pub dead: DeadUpstream,
    pub http: SocketAddr,
    pub https: SocketAddr,
    #[allow(dead_code)] // used by the admin API scenarios
    pub admin: SocketAddr,
    pub proxy: ProxyProcess,
}

/// The scene's YAML; `{...}` placeholders are filled by [`Scene::start`].
pub const SCENE_YAML: &str = r#"
listeners:
  http: {address: "127.0.0.1:{HTTP}"}
  https: {address: "127.0.0.1:{HTTPS}", tls: true}
admin: {address: "127.0.0.1:{ADMIN}"}
sites:
  app:
    hosts: [app.test, "*.wild.test"]
    default: true
    tls: {cert: "{DIR}/app.crt", key: "{DIR}/app.key"}
    plain_http: serve
    max_body_size: 1k
    routes:
      - {path: /, upstream: web}
      - {path: /api/, upstream: api}
      - {path: /ws, upstream: ws}
      - {path: /dead/, upstream: dead}
      - {path: /flaky/, upstream: flaky}
      - {path: /slow, upstream: slow}
  secure:
    hosts: [secure.test]
    tls: {cert: "{DIR}/secure.crt", key: "{DIR}/secure.key"}
    routes: [{path: /, upstream: web}]
  plain:
    hosts: [plain.test]
    routes: [{path: /, upstream: api}]
upstreams:
  web: {active: main, pools: {main: ["127.0.0.1:{WEB}"]}}
  api: {active: main, pools: {main: ["127.0.0.1:{API}"]}}
  ws: {active: main, pools: {main: ["127.0.0.1:{WS}"]}}
  dead: {active: main, pools: {main: ["127.0.0.1:{DEAD}"]}}
  flaky: {active: main, pools: {main: ["127.0.0.1:{DEAD}", "127.0.0.1:{WEB}"]}}
  slow:
    active: main
    pools: {main: ["127.0.0.1:{WEB}"]}
    read_timeout: 300ms
"#;

impl Scene {
    /// Starts the upstreams and greenlight on fresh ports.
    pub async fn start() -> Scene {
        let ca = TestCa::new();
        ca.issue_to(&["app.test", "*.wild.test"], ca.dir(), "app");
        ca.issue_to(&["secure.test"], ca.dir(), "secure");
        let web = HttpUpstream::start("web").await;
        let api = HttpUpstream::start("api").await;
        let ws = WsUpstream::start("ws").await;
        let dead = DeadUpstream::new();
        let ports = free_ports(3);
        let yaml = fill_ports(
            &SCENE_YAML.replace("{DIR}", &ca.dir().display().to_string()),
            &[
                ("HTTP", ports[0]),
                ("HTTPS", ports[1]),
                ("ADMIN", ports[2]),
                ("WEB", web.port()),
                ("API", api.port()),
                ("WS", ws.port()),
                ("DEAD", dead.port()),
            ],
        );
        let http: SocketAddr = ([127, 0, 0, 1], ports[0]).into();
        let https: SocketAddr = ([127, 0, 0, 1], ports[1]).into();
        let admin: SocketAddr = ([127, 0, 0, 1], ports[2]).into();
        let proxy = ProxyProcess::start_ready(&yaml, &[http, https])
            .await
            .expect("greenlight starts");
        Scene {
            ca,
            web,
            api,
            ws,
            dead,
            http,
            https,
            admin,
            proxy,
        }
    }

    /// The CA's root certificate, for TLS clients.
    pub fn root(&self) -> String {
        self.ca.cert_pem()
    }
}
