//! The binary's command line: `check` output and exit codes, and `run`
//! failing cleanly (one line, non-zero exit, never a panic).

use crate::support::proxy::temp_config;
use crate::support::*;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn check_prints_every_problem_with_its_line_and_exits_1() {
    let yaml = "\
listeners:
  http: {address: \"127.0.0.1:notaport\"}
sites:
  main:
    hosts: [app.test]
    routes:
      - {path: /, upstream: missing}
upstreams:
  app: {active: green, pools: {blue: [127.0.0.1:3000]}}
";
    let (_dir, path) = temp_config(yaml);
    let p = path.display().to_string();
    let out = run_cli(&["check", "-c", &p]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines[0].starts_with(&format!(
            "{p}:2:19: '127.0.0.1:notaport' is not a listen address"
        )),
        "{err}"
    );
    assert!(
        lines[1].starts_with(&format!("{p}:7:29: unknown upstream 'missing'")),
        "{err}"
    );
    assert!(
        lines[2].starts_with(&format!("{p}:9:17: active pool 'green' is not a pool")),
        "{err}"
    );
    assert!(lines[3].contains("3 problems found"), "{err}");
    assert!(!err.contains("panicked"));
}

#[test]
fn check_accepts_the_shipped_configs_and_says_so() {
    let out = run_cli(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
}

#[test]
fn check_names_certificate_problems() {
    let ca = TestCa::new();
    let a = ca.issue_to(&["app.test"], ca.dir(), "a");
    let b = ca.issue_to(&["app.test"], ca.dir(), "b");
    let yaml = format!(
        "listeners:\n  https: {{address: \"127.0.0.1:1\", tls: true}}\nsites:\n  s:\n    hosts: [app.test]\n    tls: {{cert: \"{}\", key: \"{}\"}}\n    routes: [{{path: /, upstream: u}}]\nupstreams:\n  u: {{active: p, pools: {{p: [127.0.0.1:2]}}}}\n",
        a.cert_path.display(),
        b.key_path.display()
    );
    let (_dir, path) = temp_config(&yaml);
    let out = run_cli(&["check", "-c", &path.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(":6:10: site 's':"), "{err}");
    assert!(
        err.contains(&format!(
            "{} does not match the certificate in {}",
            b.key_path.display(),
            a.cert_path.display()
        )),
        "{err}"
    );
}

#[test]
fn run_with_a_bad_config_or_a_busy_port_fails_with_one_clear_line() {
    let out = run_cli(&["run", "-c", "/nonexistent/greenlight.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("/nonexistent/greenlight.yaml: cannot read the configuration"),
        "{err}"
    );
    assert!(!err.contains("panicked"));

    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = busy.local_addr().expect("addr").port();
    let yaml = format!(
        "listeners:\n  http: {{address: \"127.0.0.1:{port}\"}}\nsites:\n  s: {{hosts: [a.test], routes: [{{path: /, upstream: u}}]}}\nupstreams:\n  u: {{active: p, pools: {{p: [127.0.0.1:2]}}}}\n"
    );
    let (_dir, path) = temp_config(&yaml);
    let out = run_cli(&["run", "-c", &path.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "cannot listen on 127.0.0.1:{port} (listener 'http')"
        )),
        "{err}"
    );
    assert!(err.contains("another process uses this port"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn unknown_commands_are_usage_errors() {
    let out = run_cli(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}
