//! Tests of the directive table: lookups, and the README's importer table
//! kept equal to it.

use super::*;

const START: &str = "<!-- importer-table: generated from src/nginx/table.rs -->\n";
const END: &str = "<!-- importer-table: end -->";

#[test]
fn patterns() {
    assert_eq!(lookup("gzip_types").map(|e| e.kind), Some(Step));
    assert_eq!(lookup("gzip_vary").map(|e| e.kind), Some(Note));
    assert_eq!(lookup("gunzip").map(|e| e.kind), Some(Warning));
    assert_eq!(lookup("proxy_buffering").map(|e| e.kind), Some(Note));
    assert_eq!(
        lookup("server_names_hash_bucket_size").map(|e| e.kind),
        Some(Note)
    );
    assert_eq!(
        lookup("content_by_lua_block").map(|e| e.kind),
        Some(Warning)
    );
    assert_eq!(lookup("worker_connections").map(|e| e.kind), Some(Note));
    assert!(lookup("no_such_directive").is_none());
}

#[test]
fn no_directive_is_listed_twice() {
    let mut seen = std::collections::HashSet::new();
    for e in TABLE {
        for n in e.names {
            assert!(seen.insert(*n), "{n} is listed twice");
        }
    }
}

/// The converter's message for a directive it does not carry over has
/// the kind the table gives it (argument-dependent ones aside).
#[test]
fn messages_follow_the_table() {
    let by_argument = [
        "proxy_pass_request_headers",
        "proxy_pass_request_body",
        "proxy_cache_bypass",
        "http2",
        "map",
    ];
    for e in TABLE.iter().filter(|e| matches!(e.kind, Note | Warning)) {
        for name in e.names.iter().filter(|n| !n.contains('*')) {
            if by_argument.contains(name) {
                continue;
            }
            let d = crate::nginx::parse::Directive {
                name: name.to_string(),
                args: vec!["x".to_string()],
                file: 0,
                line: 1,
                col: 1,
                seq: 0,
                block: None,
            };
            let msg = crate::nginx::directives::explain(&d);
            assert_eq!(
                msg.starts_with(crate::nginx::NOTE_PREFIX),
                e.kind == Note,
                "{name}: {msg}"
            );
            assert!(msg.contains(e.text), "{name}: {msg}");
        }
    }
}

/// The README's importer table is this table; `UPDATE_README=1`
/// rewrites it.
#[test]
fn readme_matches_the_table() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).expect("README.md");
    let (Some(a), Some(b)) = (readme.find(START), readme.find(END)) else {
        panic!("README.md lacks the importer-table markers");
    };
    let current = &readme[a + START.len()..b];
    let want = markdown();
    if current == want {
        return;
    }
    if std::env::var_os("UPDATE_README").is_some_and(|v| v == "1") {
        let new = format!("{}{START}{want}{}", &readme[..a], &readme[b..]);
        std::fs::write(&path, new).expect("write README.md");
        return;
    }
    panic!(
        "README.md's importer table differs from src/nginx/table.rs; run `UPDATE_README=1 cargo test --lib readme_matches_the_table`"
    );
}
