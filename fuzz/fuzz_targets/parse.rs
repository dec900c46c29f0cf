//! Fuzzes the whole import (parser and converter) on arbitrary text:
//! `cargo fuzz run parse` from the crate directory. Any panic is a bug.

#![no_main]

use libfuzzer_sys::fuzz_target;
use greenlight::nginx::{ImportOptions, import_str};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // `include` reads files named by the input; keep the fuzzer off the disk.
    if text.contains("include") {
        return;
    }
    let mut opts = ImportOptions::default();
    if data.first().is_some_and(|b| b & 1 == 1) {
        opts.acme_email = Some("fuzz@example.com".to_string());
    }
    let _ = import_str("fuzz.conf", &text, &opts);
});
