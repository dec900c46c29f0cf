//! Compiles `respond.body_base64` (a binary answer, e.g. nginx's
//! `empty_gif`) into the bytes the route sends, at load: a bad encoding is
//! a `check` error at its line and column, never a runtime surprise.
//!
//! Why base64 in the YAML rather than an `empty_gif: true` key: the same
//! key serves every small binary answer (a tracking pixel, an icon, a
//! protobuf health reply), the bytes are visible in the file, and the
//! importer writes nginx's `empty_gif` as exactly this (with
//! `content_type: image/gif`) so nothing is hidden behind a name.

use super::diag::Diagnostics;
use super::validate::pos;
use base64::Engine;
use serde_saphyr::Spanned;

/// Largest decoded body: a `respond` answer lives in memory in every
/// snapshot; larger content belongs in a `files:` route.
pub(super) const MAX_BINARY_BODY: usize = 64 * 1024;

/// The bytes of `body_base64` (standard alphabet; padding optional, and
/// blanks and line breaks ignored so long values may be folded); `None`
/// after reporting.
pub(super) fn binary_body(b: &Spanned<String>, ds: &mut Diagnostics) -> Option<bytes::Bytes> {
    let text: String = b.value.chars().filter(|c| !c.is_whitespace()).collect();
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    match engine.decode(text.as_bytes()) {
        Ok(v) if v.len() > MAX_BINARY_BODY => {
            ds.error(
                pos(b),
                format!(
                    "`body_base64` decodes to {} bytes, more than {MAX_BINARY_BODY}",
                    v.len()
                ),
                "serve a body this large from a `files:` route",
            );
            None
        }
        Ok(v) => Some(bytes::Bytes::from(v)),
        Err(e) => {
            ds.error(
                pos(b),
                format!("`body_base64` is not valid base64 ({e})"),
                "write the bytes in standard base64 (A-Z a-z 0-9 + /), e.g. the output of `base64 -w0 FILE`",
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::load_str;
    use crate::plan::Terminal;
    use crate::plan::answer::Body;
    use std::path::Path;

    fn check(respond: &str) -> Result<crate::config::Config, String> {
        let yaml = format!(
            "listeners: {{http: {{address: \"127.0.0.1:8080\"}}}}\nsites:\n  s:\n    hosts: [a.test]\n    routes:\n      - path: /p\n        respond: {respond}\n"
        );
        load_str(Path::new("g.yaml"), &yaml).map_err(|e| e.to_string())
    }

    fn body(cfg: &crate::config::Config) -> Vec<u8> {
        match &cfg.sites[0].routes[0].plan.terminal {
            Terminal::Respond(r) => match &r.body {
                Some(Body::Binary(b)) => b.to_vec(),
                other => panic!("not binary: {other:?}"),
            },
            _ => panic!("not respond"),
        }
    }

    #[test]
    fn base64_bodies_are_decoded_at_load_with_or_without_padding_and_folds() {
        let cfg =
            check("{body_base64: \"R0lG ODlh\\nAQ==\", content_type: image/gif}").expect("valid");
        assert_eq!(body(&cfg), b"GIF89a\x01");
        let cfg = check("{body_base64: \"R0lGODlhAQ\"}").expect("unpadded");
        assert_eq!(body(&cfg), b"GIF89a\x01");
    }

    #[test]
    fn bad_base64_is_an_error_at_its_position_with_the_fix() {
        let e = check("{body_base64: \"R0lG*DlhAQ==\"}").expect_err("bad");
        assert!(
            e.contains("g.yaml:7:32: `body_base64` is not valid base64"),
            "{e}"
        );
        assert!(e.contains("base64 -w0 FILE"), "{e}");
    }

    #[test]
    fn body_and_body_base64_exclude_each_other() {
        let e = check("{body: hi, body_base64: aGk=}").expect_err("both");
        assert!(
            e.contains("g.yaml:7:18: `respond` has both `body` and `body_base64`"),
            "{e}"
        );
    }

    #[test]
    fn a_body_larger_than_the_limit_is_refused() {
        let big = "A".repeat((super::MAX_BINARY_BODY + 3) / 3 * 4 + 4);
        let e = check(&format!("{{body_base64: \"{big}\"}}")).expect_err("big");
        assert!(e.contains("`files:` route"), "{e}");
    }
}
