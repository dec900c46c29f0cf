//! Golden tests: every `testdata/X.conf` is imported and compared with
//! `testdata/X.yaml` and `testdata/X.warnings`. Run with `UPDATE_GOLDEN=1`
//! to rewrite the expected files (then read the diff before committing).
//!
//! A first line `# import-options: --acme EMAIL` imports with that option.

use std::fs;
use std::path::{Path, PathBuf};

use super::{ImportOptions, import};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/nginx/testdata")
}

fn options_for(text: &str) -> ImportOptions {
    let mut opts = ImportOptions::default();
    if let Some(rest) = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# import-options:"))
    {
        let mut words = rest.split_whitespace();
        while let Some(w) = words.next() {
            if w == "--acme" {
                opts.acme_email = words.next().map(str::to_string);
            }
        }
    }
    opts
}

/// The top-level `.conf` files of testdata, sorted.
pub(super) fn golden_inputs() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(testdata())
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "conf"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn first_difference(expected: &str, actual: &str) -> String {
    for (n, (e, a)) in expected.lines().zip(actual.lines()).enumerate() {
        if e != a {
            return format!("line {}:\n  expected: {e}\n  actual:   {a}", n + 1);
        }
    }
    format!(
        "lengths differ: expected {} lines, actual {} lines",
        expected.lines().count(),
        actual.lines().count()
    )
}

#[test]
fn golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let inputs = golden_inputs();
    assert!(
        inputs.len() >= 9,
        "expected at least 9 golden inputs, found {}",
        inputs.len()
    );
    let machine_dir = testdata().display().to_string();
    let mut failures = Vec::new();
    for conf in &inputs {
        let text = fs::read_to_string(conf).unwrap_or_default();
        let out = match import(conf, &options_for(&text)) {
            Ok(out) => out,
            Err(e) => {
                failures.push(format!("{}: import failed: {e}", conf.display()));
                continue;
            }
        };
        let warnings: String = out.warnings.iter().map(|w| format!("{w}\n")).collect();
        for (ext, actual) in [("yaml", &out.yaml), ("warnings", &warnings)] {
            assert!(
                !actual.contains(&machine_dir),
                "{} output contains the machine path {machine_dir}",
                conf.display()
            );
            let path = conf.with_extension(ext);
            if update {
                if let Err(e) = fs::write(&path, actual) {
                    failures.push(format!("{}: cannot write: {e}", path.display()));
                }
                continue;
            }
            let expected = fs::read_to_string(&path).unwrap_or_default();
            if &expected != actual {
                failures.push(format!(
                    "{} differs ({}); run UPDATE_GOLDEN=1 cargo test and review the diff",
                    path.display(),
                    first_difference(&expected, actual)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Every golden YAML is a greenlight configuration: greenlight's own loader
/// accepts it, except where the importer left a placeholder, which the loader
/// must then name as such (so `greenlight check` points the user at it).
#[test]
fn golden_yaml_is_accepted_by_greenlights_loader() {
    let dir = testdata();
    let mut checked = 0;
    let mut acme = 0;
    for conf in golden_inputs() {
        let yaml_path = conf.with_extension("yaml");
        let Ok(text) = fs::read_to_string(&yaml_path) else {
            continue;
        };
        checked += 1;
        if text.contains("tls: acme") {
            acme += 1;
        }
        // Judged as written, `--acme` output (`tls: acme` and the `acme:`
        // section) included.
        // Host names of upstreams are resolved at load; this machine has no
        // DNS for the goldens' example names, so that one problem is allowed.
        // `{$NAME}` (envsubst templates) get values of the kind they stand for.
        let env = |n: &str| {
            Some(if n.contains("DOMAIN") || n.contains("HOST") {
                "env.example".to_string()
            } else {
                "http://127.0.0.1:9".to_string()
            })
        };
        let all: Vec<String> = match crate::config::load_str_env(&yaml_path, &text, env) {
            Ok(_) => vec![],
            Err(e) => e.diagnostics().iter().map(|d| d.to_string()).collect(),
        };
        // Nor does it have the CA files an imported `proxy_ssl_trusted_certificate`
        // names: those two problems are what `check` may report on this machine.
        let unexpected: Vec<String> = all
            .into_iter()
            .filter(|d| !d.contains("cannot resolve"))
            .filter(|d| !d.contains("cannot read ca file"))
            // (and those of `ssl_client_certificate`)
            .filter(|d| !d.contains("client_auth ca: cannot read"))
            // nor the error pages an imported `error_page` names.
            .filter(|d| !d.contains("cannot read error page"))
            // Nor the htpasswd files of `auth_basic_user_file`.
            .filter(|d| !d.contains("cannot read users file"))
            .collect();
        if text.contains("EDIT-ME") {
            assert!(
                !unexpected.is_empty(),
                "{}: a placeholder must be rejected",
                yaml_path.display()
            );
        }
        let not_placeholders: Vec<&String> = unexpected
            .iter()
            .filter(|d| !d.contains("placeholder"))
            .collect();
        assert!(
            not_placeholders.is_empty(),
            "{} is not accepted: {not_placeholders:#?}",
            yaml_path.strip_prefix(&dir).unwrap_or(&yaml_path).display()
        );
    }
    assert!(checked >= 9, "only {checked} goldens found");
    assert!(acme >= 1, "no golden covers `--acme` output");
}
