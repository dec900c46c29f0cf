//! Oversized configuration files: refused before parsing with a message
//! naming the file, its size and the limit (16 MiB), by `check`, by a reload
//! (SIGHUP and `greenlight reload`, which keep serving the running config)
//! and by `import-nginx`; and the YAML parser's own budgets, which a smaller
//! file can reach, come out in words instead of a debug dump.

use crate::support::proxy::temp_config;
use crate::support::*;
use std::net::SocketAddr;
use std::time::Duration;

const LIMIT_TEXT: &str = "over the 16 MiB limit";

/// `yaml` followed by a comment that brings it to 17 MiB: valid YAML that
/// any parser would accept, only too large.
fn padded_to_17_mib(yaml: &str) -> String {
    let size = 17 * 1024 * 1024;
    let mut text = format!("{yaml}#");
    text.push_str(&"x".repeat(size - text.len() - 1));
    text.push('\n');
    assert_eq!(text.len(), size);
    text
}

fn config(http: u16, admin: u16, upstream: u16) -> String {
    format!(
        "listeners:\n  http: {{address: \"127.0.0.1:{http}\"}}\nadmin: {{address: \"127.0.0.1:{admin}\"}}\nsites:\n  s: {{hosts: [a.test], default: true, routes: [{{path: /, upstream: app}}]}}\nupstreams:\n  app: {{active: p, pools: {{p: [\"127.0.0.1:{upstream}\"]}}}}\n"
    )
}

#[test]
fn check_refuses_a_17_mib_file_naming_its_size_and_the_limit() {
    let (_dir, path) = temp_config(&padded_to_17_mib(&config(1, 2, 3)));
    let p = path.display().to_string();
    let out = run_cli(&["check", "-c", &p]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{p}: the file is 17825792 bytes (17.0 MiB), {LIMIT_TEXT}"
        )),
        "{err}"
    );

    let nginx = padded_to_17_mib(
        "server { listen 80; server_name a.test; location / { proxy_pass http://127.0.0.1:3000; } }\n",
    );
    let (_dir, conf) = temp_config(&nginx);
    let out = run_cli(&["import-nginx", &conf.display().to_string()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(LIMIT_TEXT), "{err}");
}

#[test]
fn a_parser_budget_is_reported_in_words() {
    // 300,000 host names: 1.8 MB, past serde-saphyr's 250,000-node budget.
    let hosts = vec!["a.test"; 300_000].join(",");
    let yaml = config(1, 2, 3).replace("hosts: [a.test]", &format!("hosts: [{hosts}]"));
    let (_dir, path) = temp_config(&yaml);
    let out = run_cli(&["check", "-c", &path.display().to_string()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("too many YAML values"), "{err}");
    assert!(!err.contains("budget breached"), "{err}");
    assert!(!err.contains('{'), "no debug dump: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_of_a_17_mib_file_keeps_serving_the_running_config() {
    let blue = HttpUpstream::start("blue").await;
    let green = HttpUpstream::start("green").await;
    let ports = free_ports(2);
    let http: SocketAddr = ([127, 0, 0, 1], ports[0]).into();
    let admin: SocketAddr = ([127, 0, 0, 1], ports[1]).into();
    let mut proxy =
        ProxyProcess::start_ready(&config(ports[0], ports[1], blue.port()), &[http, admin])
            .await
            .expect("starts");
    let serving = || async {
        http_get(http, "a.test", "/")
            .await
            .expect("serves")
            .header("x-upstream")
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(serving().await, "blue");

    // The big file would send traffic to green if it were applied.
    proxy
        .write_config(&padded_to_17_mib(&config(ports[0], ports[1], green.port())))
        .expect("write");
    let mark = proxy.log_mark();
    proxy.signal("HUP").expect("hup");
    assert!(
        proxy
            .wait_for_stderr_after(mark, LIMIT_TEXT, Duration::from_secs(10))
            .await,
        "{}",
        proxy.stderr()
    );
    assert_eq!(serving().await, "blue");

    let admin_arg = admin.to_string();
    let out = tokio::task::spawn_blocking(move || run_cli(&["reload", "--admin", &admin_arg]))
        .await
        .expect("cli");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(LIMIT_TEXT), "{err}");
    assert_eq!(serving().await, "blue");
    assert!(proxy.try_exit_status().is_none());
}
