//! The container image's configuration: `config/container.yaml`, which the
//! Dockerfile installs as the file its `greenlight run` reads. It must be
//! reachable through `-p` (every interface), keep the admin API inside the
//! container, keep certificates in the image's volume and, naming no app,
//! answer with how to mount one; the embedded default for `cargo run` stays
//! on loopback. (Building and running the image itself:
//! `contrib/container-smoke.sh`, where a container engine runs.)

use std::net::SocketAddr;
use std::path::Path;

use crate::support::*;

const IMAGE_CONFIG: &str = include_str!("../config/container.yaml");
const DOCKERFILE: &str = include_str!("../Dockerfile");
/// Where the Dockerfile puts the image's configuration.
const IMAGE_CONFIG_PATH: &str = "/etc/greenlight/greenlight.yaml";

fn load(name: &str, text: &str) -> greenlight::config::Config {
    greenlight::config::load_str(Path::new(name), text)
        .unwrap_or_else(|e| panic!("{name} does not load: {e}"))
}

/// The Dockerfile's instruction lines starting with `keyword` (continuations
/// joined).
fn instructions(keyword: &str) -> Vec<String> {
    DOCKERFILE
        .replace("\\\n", " ")
        .lines()
        .filter(|l| l.starts_with(keyword))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn the_image_config_listens_on_every_interface_and_keeps_the_admin_api_inside() {
    let c = load("config/container.yaml", IMAGE_CONFIG);
    let mut ports: Vec<(u16, bool)> = c
        .listeners
        .iter()
        .map(|l| {
            assert!(
                l.addr.ip().is_unspecified(),
                "listener '{}' on {}: `docker run -p` reaches only a listener on every interface",
                l.name,
                l.addr
            );
            (l.addr.port(), l.tls)
        })
        .collect();
    ports.sort();
    assert_eq!(
        ports,
        [(8080, false), (8443, true)],
        "the ports EXPOSE names"
    );
    assert!(
        instructions("EXPOSE").contains(&"EXPOSE 8080 8443".to_string()),
        "{:?}",
        instructions("EXPOSE")
    );
    assert!(c.admin.addr.ip().is_loopback(), "admin on {}", c.admin.addr);
    assert_eq!(c.admin.token_file, None, "loopback needs no token");

    let volume = format!("VOLUME [\"{}\"]", c.certs_dir.display());
    assert!(
        instructions("VOLUME").contains(&volume),
        "certs_dir {} is not the image's volume: {:?}",
        c.certs_dir.display(),
        instructions("VOLUME")
    );
    let copy = instructions("COPY");
    assert!(
        copy.iter()
            .any(|l| l.ends_with(&format!("config/container.yaml {IMAGE_CONFIG_PATH}"))),
        "the Dockerfile installs another file: {copy:?}"
    );
    let cmd = format!("CMD [\"run\", \"-c\", \"{IMAGE_CONFIG_PATH}\"]");
    assert!(
        instructions("CMD").contains(&cmd),
        "{:?}",
        instructions("CMD")
    );
    assert!(
        instructions("HEALTHCHECK")
            .iter()
            .any(|l| l.contains(&format!("\"status\", \"-c\", \"{IMAGE_CONFIG_PATH}\""))),
        "{:?}",
        instructions("HEALTHCHECK")
    );
}

#[test]
fn the_embedded_default_stays_on_loopback() {
    let c = load("embedded", greenlight::config::EMBEDDED_DEFAULT);
    for l in &c.listeners {
        assert!(
            l.addr.ip().is_loopback(),
            "listener '{}' on {}",
            l.name,
            l.addr
        );
    }
    assert!(c.admin.addr.ip().is_loopback(), "admin on {}", c.admin.addr);
}

#[test]
fn greenlight_check_accepts_the_image_config_as_shipped() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/container.yaml");
    let out = run_cli(&["check", "-c", path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn the_image_config_answers_every_request_with_how_to_mount_a_config() {
    // Loopback test ports and a relative certs_dir in place of the image's,
    // the rest as shipped.
    let p = free_ports(3);
    let [http, https, admin] =
        [p[0], p[1], p[2]].map(|port| SocketAddr::from(([127, 0, 0, 1], port)));
    let yaml = IMAGE_CONFIG
        .replace("0.0.0.0:8080", &http.to_string())
        .replace("0.0.0.0:8443", &https.to_string())
        .replace("127.0.0.1:9090", &admin.to_string())
        .replace("/var/lib/greenlight/certs", "certs");
    assert_ne!(yaml, IMAGE_CONFIG);
    let mut proxy = ProxyProcess::start_ready(&yaml, &[http, https, admin])
        .await
        .expect("greenlight runs on the image config");
    for path in ["/", "/api/users?page=2"] {
        let r = timed("GET", http_get(http, "example.com", path))
            .await
            .expect("answer");
        let body = r.text();
        assert_eq!(r.status, 503, "{path}: {body}");
        assert!(
            body.contains("names no app") && body.contains("/etc/greenlight"),
            "{path}: {body}"
        );
    }
    assert!(
        proxy.dir().join("certs/self-signed/local").is_dir(),
        "self-signed certificate in certs_dir"
    );
    proxy.stop(IO_TIMEOUT).await;
}
