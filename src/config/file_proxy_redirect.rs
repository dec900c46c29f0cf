//! The YAML of `rewrite_location:` (nginx `proxy_redirect`) on a site or a
//! route: the word `off`, or a list of `{from, to}` rules. Compiled by
//! `validate_proxy_redirect` into `plan::proxy_redirect`.

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

/// `rewrite_location:`.
#[derive(Debug)]
pub enum FileProxyRedirect {
    /// A word: `off` (anything else is reported by validate).
    Word(String),
    /// Rules in order.
    Rules(Vec<Spanned<FileRedirectRule>>),
}

/// One rule: `from` (a prefix template, or `~regex` / `~*regex`) and `to`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRedirectRule {
    /// What to look for at the start of the value, or `~regex`.
    pub from: Spanned<String>,
    /// What replaces it (a template; a regex's groups as `$1`, `$name`).
    pub to: Spanned<String>,
}

impl<'de> Deserialize<'de> for FileProxyRedirect {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FileProxyRedirect;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`off` or a list of `{from: TEXT, to: TEMPLATE}`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FileProxyRedirect, E> {
                Ok(FileProxyRedirect::Word(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<FileProxyRedirect, E> {
                // YAML 1.1 readers take a bare `off` for false.
                Ok(FileProxyRedirect::Word(
                    if v { "on" } else { "off" }.to_string(),
                ))
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<FileProxyRedirect, A::Error> {
                let mut rules = Vec::new();
                while let Some(r) = seq.next_element()? {
                    rules.push(r);
                }
                Ok(FileProxyRedirect::Rules(rules))
            }
        }
        d.deserialize_any(V)
    }
}
