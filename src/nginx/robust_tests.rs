//! Robustness: no input may make the importer panic. Random bytes, random
//! soups of nginx tokens, every prefix of each golden input and random
//! one-byte edits of them are imported; only the absence of panics is
//! checked. Iterations are bounded so the test takes a few seconds.

use std::fs;

use super::golden_tests::golden_inputs;
use super::{ImportOptions, import_str};

/// xorshift64*: a tiny deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    ";",
    "\"",
    "'",
    "#",
    "$",
    "\\",
    "\n",
    " ",
    "\t",
    "server",
    "http",
    "listen",
    "80",
    "443",
    "ssl",
    "http2",
    "default_server",
    "[::]:443",
    "X.Y.1.2:443",
    "server_name",
    "example.com",
    "*.example.com",
    ".example.org",
    "_",
    "~^www",
    "location",
    "/",
    "/api/",
    "=",
    "~",
    "~*",
    "^~",
    "@named",
    "proxy_pass",
    "http://127.0.0.1:8080",
    "http://localhost:8082/",
    "https://b",
    "http://$backend",
    "http://app",
    "upstream",
    "app",
    "server",
    "127.0.0.1:1",
    "weight=3",
    "backup",
    "max_fails=2",
    "down",
    "return",
    "301",
    "https://$host$request_uri",
    "404",
    "if",
    "($host",
    "($scheme",
    "!=",
    "https)",
    ")",
    "ssl_certificate",
    "/etc/letsencrypt/live/a/fullchain.pem",
    "ssl_certificate_key",
    "client_max_body_size",
    "0",
    "10m",
    "proxy_read_timeout",
    "1h",
    "proxy_set_header",
    "Host",
    "$host",
    "include",
    "missing.conf",
    "*.conf",
    "root",
    "try_files",
    "gzip",
    "on",
    "${x}",
];

fn opts() -> ImportOptions {
    ImportOptions::default()
}

#[test]
fn random_bytes_never_panic() {
    let dir = tempfile::tempdir().ok();
    let name = dir
        .as_ref()
        .map(|d| d.path().join("random.conf").display().to_string())
        .unwrap_or_else(|| "random.conf".to_string());
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3000 {
        let len = rng.below(300);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let text = String::from_utf8_lossy(&bytes);
        let _ = import_str(&name, &text, &opts());
    }
}

#[test]
fn token_soup_never_panics() {
    let dir = tempfile::tempdir().ok();
    let name = dir
        .as_ref()
        .map(|d| d.path().join("soup.conf").display().to_string())
        .unwrap_or_else(|| "soup.conf".to_string());
    let mut rng = Rng(42);
    let acme = ImportOptions {
        prefix: None,
        acme_email: Some("admin@example.com".to_string()),
    };
    for round in 0..6000 {
        let len = rng.below(120);
        let mut text = String::new();
        for _ in 0..len {
            let t = TOKENS.get(rng.below(TOKENS.len())).copied().unwrap_or(" ");
            text.push_str(t);
            if rng.below(3) > 0 {
                text.push(' ');
            }
        }
        let o = if round % 2 == 0 { opts() } else { acme.clone() };
        let _ = import_str(&name, &text, &o);
    }
}

#[test]
fn truncated_and_mutated_goldens_never_panic() {
    let mut rng = Rng(7);
    let mut inputs = golden_inputs();
    if let Some(first) = inputs.first() {
        let sites = first.with_file_name("sites-enabled");
        if let Ok(rd) = fs::read_dir(sites) {
            inputs.extend(rd.filter_map(Result::ok).map(|e| e.path()));
        }
    }
    assert!(!inputs.is_empty());
    let mut tried = 0usize;
    let mut converted = 0usize;
    for path in inputs {
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        let name = path.display().to_string();
        for (i, _) in text.char_indices() {
            tried += 1;
            if import_str(&name, text.get(..i).unwrap_or(""), &opts()).is_ok() {
                converted += 1;
            }
        }
        let bytes = text.as_bytes();
        for _ in 0..60 {
            let mut b = bytes.to_vec();
            let at = rng.below(b.len());
            if let Some(x) = b.get_mut(at) {
                *x = b"{};\"'#$\\ \nx"[rng.below(11)];
            }
            let _ = import_str(&name, &String::from_utf8_lossy(&b), &opts());
        }
    }
    // Sanity: the loop really ran, and complete prefixes do convert.
    assert!(tried > 10_000, "only {tried} prefixes tried");
    assert!(converted > 0);
}
