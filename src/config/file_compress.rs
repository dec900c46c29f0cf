//! The `compress:` key of a site or route as written: `true`/`false`, or a
//! map (`algorithms`, `types`, `min_length`, `level`, `precompressed`).
//! Only `validate_compress` reads it.

use super::file::Scalar;
use indexmap::IndexMap;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

/// `compress: true | false | {…}`.
#[derive(Debug, Default)]
pub struct FileCompress {
    /// The word form: `true` (defaults) or `false` (off; a route turning
    /// its site's compression off).
    pub switch: Option<bool>,
    /// Codings made on the fly, in order of preference (`[zstd, br, gzip]`).
    pub algorithms: Option<Spanned<Vec<Spanned<String>>>>,
    /// MIME types compressed (`text/*`, `application/json`, `*`).
    pub types: Option<Spanned<Vec<Spanned<String>>>>,
    /// Bodies shorter than this (by `Content-Length`) are not compressed.
    pub min_length: Option<Spanned<Scalar>>,
    /// Levels per coding: `{gzip: 1-9, br: 0-11, zstd: 1-19}`.
    pub level: Option<Spanned<IndexMap<String, Spanned<Scalar>>>>,
    /// `files:` routes: serve `FILE.br`/`.zst`/`.gz` when present.
    pub precompressed: Option<Spanned<FileWords>>,
    /// Keys not known, with their positions.
    pub unknown: Vec<Spanned<String>>,
}

impl<'de> Deserialize<'de> for FileCompress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FileCompress;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`true`, `false`, or a map (algorithms, types, min_length, level, precompressed)")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<FileCompress, E> {
                Ok(FileCompress {
                    switch: Some(v),
                    ..FileCompress::default()
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FileCompress, A::Error> {
                let mut out = FileCompress::default();
                while let Some(k) = map.next_key::<Spanned<String>>()? {
                    match k.value.as_str() {
                        "algorithms" => out.algorithms = Some(map.next_value()?),
                        "types" => out.types = Some(map.next_value()?),
                        "min_length" => out.min_length = Some(map.next_value()?),
                        "level" => out.level = Some(map.next_value()?),
                        "precompressed" => out.precompressed = Some(map.next_value()?),
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                            out.unknown.push(k);
                        }
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_any(V)
    }
}

/// `true`/`false` or a list of words (`precompressed: [br, gzip]`).
#[derive(Debug)]
pub enum FileWords {
    /// `true` (every choice, in the default order) or `false` (none).
    Switch(bool),
    /// The words, in order.
    List(Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for FileWords {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FileWords;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`true`, `false`, or a list such as `[br, gzip]`")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<FileWords, E> {
                Ok(FileWords::Switch(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FileWords, A::Error> {
                let mut out = Vec::new();
                while let Some(w) = seq.next_element()? {
                    out.push(w);
                }
                Ok(FileWords::List(out))
            }
        }
        d.deserialize_any(V)
    }
}
