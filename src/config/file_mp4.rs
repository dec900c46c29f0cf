//! The `files.mp4` key as written: `true`/`false`, or a map
//! (`buffer_size`, `max_buffer_size`, `start_key_frame`). Compiled by
//! `validate_files` into [`crate::mp4::Options`].

use super::file::Scalar;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

/// `mp4: true | false | {…}`.
#[derive(Debug, Default)]
pub struct FileMp4 {
    /// The word form: `true` (nginx's defaults) or `false` (off).
    pub switch: Option<bool>,
    /// nginx `mp4_buffer_size`.
    pub buffer_size: Option<Spanned<Scalar>>,
    /// nginx `mp4_max_buffer_size`: a larger `moov` is an error (500).
    pub max_buffer_size: Option<Spanned<Scalar>>,
    /// nginx `mp4_start_key_frame`.
    pub start_key_frame: Option<Spanned<bool>>,
    /// Keys not known, with their positions.
    pub unknown: Vec<Spanned<String>>,
}

/// The keys of the map form.
pub const KEYS: [&str; 3] = ["buffer_size", "max_buffer_size", "start_key_frame"];

impl<'de> Deserialize<'de> for FileMp4 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FileMp4;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "`true`, `false`, or a map (buffer_size, max_buffer_size, start_key_frame)",
                )
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<FileMp4, E> {
                Ok(FileMp4 {
                    switch: Some(v),
                    ..FileMp4::default()
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FileMp4, A::Error> {
                let mut out = FileMp4::default();
                while let Some(k) = map.next_key::<Spanned<String>>()? {
                    match k.value.as_str() {
                        "buffer_size" => out.buffer_size = Some(map.next_value()?),
                        "max_buffer_size" => out.max_buffer_size = Some(map.next_value()?),
                        "start_key_frame" => out.start_key_frame = Some(map.next_value()?),
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
