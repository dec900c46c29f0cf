//! MP4 pseudo-streaming (nginx's `mp4` module): `GET /video.mp4?start=12.5`
//! answers a file that starts at 12.5 s (and `&end=30` ends at 30 s), so a
//! player can seek into a long video served as a plain file.
//!
//! [`cut`] reads the file's `moov` box (the index: per track, the time,
//! sync, composition, chunk, size and offset tables), crops every table to
//! the asked interval and writes a new, smaller `moov`; the answer is then
//! `ftyp` + the new `moov` + an `mdat` header, all built in memory
//! ([`Cut::head`]), followed by the part of the file's media data the
//! kept samples are in ([`Cut::data`], streamed from the file like any
//! other body). Nothing but the `moov` (bounded by `max_buffer_size`) is
//! read into memory.
//!
//! The output is nginx's, byte for byte (the parity harness compares them),
//! with nginx's choices kept on purpose so a player that works behind nginx
//! works behind greenlight:
//! - times are milliseconds parsed like nginx (`1.5` → 1500; digits past
//!   the third decimal are dropped; anything else is "not given");
//! - `start` alone, `0` included, trims; with neither argument, or
//!   `start=0` on a file whose `moov` comes before its `mdat`, the file
//!   goes out unchanged;
//! - a track shorter than `start` is dropped; the new `moov` keeps only the
//!   boxes nginx keeps (`mvhd`, and per track `tkhd`, `mdia`, `mdhd`, `hdlr`,
//!   `minf`, `vmhd`/`smhd`, `dinf`, `stbl` and its tables: `udta`, `edts`
//!   and other boxes are left out);
//! - the cut starts on the sample at `start` (a player then waits for the
//!   next key frame), unless `start_key_frame` is set: then it starts on the
//!   key frame before and an edit list hides the frames before `start`;
//! - a compressed `moov` (`cmov`), a `start` past the end of the file or a
//!   malformed table is an error: the caller answers 500 and logs
//!   [`Mp4Error`], as nginx does.
//!
//! Owns no I/O beyond `pread` on the file it is given.

mod atoms;
mod crop;
mod trak;

#[doc(hidden)]
pub mod sample;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::os::unix::fs::FileExt;

/// nginx's `mp4_buffer_size`, `mp4_max_buffer_size`, `mp4_start_key_frame`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// A `moov` up to this size is read without asking (nginx: 512 KiB).
    pub buffer_size: u64,
    /// A larger `moov` than this is an error (nginx: 10 MiB).
    pub max_buffer_size: u64,
    /// Start on the key frame before `start`, hiding the frames before
    /// `start` with an edit list.
    pub start_key_frame: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            buffer_size: 512 * 1024,
            max_buffer_size: 10 * 1024 * 1024,
            start_key_frame: false,
        }
    }
}

/// What a request asks for: milliseconds from the start, and how many
/// (0: to the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    /// Where the answer starts, in ms.
    pub start: u64,
    /// How long it lasts, in ms (0: to the end).
    pub length: u64,
}

/// The interval the query string asks for (`start`, `end`, in seconds with
/// up to three decimals), or `None` when the file goes out unchanged.
pub fn interval(args: &str) -> Option<Interval> {
    let arg = |name| crate::plan::vars::query_arg(args, name).and_then(millis);
    let mut start = arg("start");
    let mut length = 0;
    if let Some(end) = arg("end").filter(|&e| e > 0) {
        let s = *start.get_or_insert(0);
        if end > s {
            length = end - s;
        }
    }
    start.map(|start| Interval { start, length })
}

/// nginx's `ngx_http_mp4_atofp(…, 3)`: `12.5` → 12500; digits past the
/// third decimal are ignored; `None` for an empty value, a second dot, any
/// other character, or an overflow.
fn millis(v: &str) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    let max = i64::MAX as u64;
    let (mut value, mut point, mut dot) = (0u64, 3u32, false);
    for c in v.bytes() {
        if c == b'.' {
            if dot {
                return None;
            }
            dot = true;
            continue;
        }
        if !c.is_ascii_digit() {
            return None;
        }
        if point == 0 {
            continue;
        }
        value = value
            .checked_mul(10)
            .and_then(|x| x.checked_add(u64::from(c - b'0')))
            .filter(|&x| x <= max)?;
        if dot {
            point -= 1;
        }
    }
    for _ in 0..point {
        value = value.checked_mul(10).filter(|&x| x <= max)?;
    }
    Some(value)
}

/// Why a file could not be cut (the answer is a 500; this goes to the log).
#[derive(Debug)]
pub struct Mp4Error(pub String);

impl std::fmt::Display for Mp4Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Mp4Error {}

impl From<std::io::Error> for Mp4Error {
    fn from(e: std::io::Error) -> Mp4Error {
        Mp4Error(format!("reading the file: {e}"))
    }
}

pub(crate) fn err<T>(why: impl Into<String>) -> Result<T, Mp4Error> {
    Err(Mp4Error(why.into()))
}

/// A cut file: `head` (ftyp + the new moov + the mdat header) then the
/// file's bytes `data`.
#[derive(Debug)]
pub struct Cut {
    /// Built in memory.
    pub head: Vec<u8>,
    /// Offsets in the file, sent after `head`.
    pub data: std::ops::Range<u64>,
}

impl Cut {
    /// The answer's length.
    pub fn len(&self) -> u64 {
        self.head.len() as u64 + (self.data.end - self.data.start)
    }

    /// Never true: `head` holds at least the moov and mdat headers.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `Ok(None)`: send the file unchanged (nginx's "declined").
pub fn cut(file: &File, len: u64, at: Interval, opts: &Options) -> Result<Option<Cut>, Mp4Error> {
    let mut m = trak::Movie::new(at, *opts, len);
    let mut ftyp: Option<Vec<u8>> = None;
    let mut mdat: Option<(u64, u64)> = None;
    let mut moov_seen = false;
    let mut off = 0u64;
    while off < len {
        let Some(h) = read_header(file, off, len)? else {
            break;
        };
        let data_size = h.size - h.header;
        match &h.name {
            b"ftyp" => {
                if data_size > 1024 {
                    return err(format!("mp4 ftyp atom is too large:{data_size}"));
                }
                if ftyp.is_some() {
                    return err("duplicate mp4 ftyp atom");
                }
                let mut atom = Vec::with_capacity(8 + data_size as usize);
                atoms::put_header(&mut atom, 8 + data_size, b"ftyp");
                atom.resize(8 + data_size as usize, 0);
                read_exact(file, &mut atom[8..], off + h.header)?;
                ftyp = Some(atom);
            }
            b"moov" => {
                if mdat.is_none() && at.start == 0 && at.length == 0 {
                    return Ok(None);
                }
                if moov_seen {
                    return err("duplicate mp4 moov atom");
                }
                if data_size > opts.buffer_size && data_size > opts.max_buffer_size {
                    return err(format!(
                        "mp4 moov atom is too large:{data_size}, you may want to increase mp4_max_buffer_size"
                    ));
                }
                moov_seen = true;
                let mut data = vec![0u8; data_size as usize];
                read_exact(file, &mut data, off + h.header)?;
                m.read_moov(&data)?;
                if mdat.is_some() {
                    break;
                }
            }
            b"mdat" => {
                if mdat.is_some() {
                    return err("duplicate mp4 mdat atom");
                }
                mdat = Some((off + h.header, off + h.size));
                if !m.traks.is_empty() {
                    break;
                }
            }
            _ => {}
        }
        off += h.size;
    }
    if m.traks.is_empty() {
        return err("no mp4 trak atoms were found");
    }
    let Some((_, mdat_end)) = mdat else {
        return err("no mp4 mdat atom was found");
    };
    m.build(ftyp, mdat_end).map(Some)
}

/// An atom's header as read from the file.
struct Header {
    size: u64,
    header: u64,
    name: [u8; 4],
}

/// The header at `off`; `None` for a size 0 (nginx: "atom end").
fn read_header(file: &File, off: u64, len: u64) -> Result<Option<Header>, Mp4Error> {
    let mut b = [0u8; 16];
    if len - off < 4 {
        return err("mp4 file truncated");
    }
    read_exact(file, &mut b[..4], off)?;
    let mut size = u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let mut header = 8;
    if size == 0 {
        return Ok(None);
    }
    if len - off < 8 {
        return err("mp4 file truncated");
    }
    read_exact(file, &mut b[4..8], off + 4)?;
    if size == 1 {
        if len - off < 16 {
            return err("mp4 file truncated");
        }
        read_exact(file, &mut b[8..16], off + 8)?;
        size = u64::from_be_bytes(b[8..16].try_into().expect("8 bytes"));
        header = 16;
    }
    if size < header {
        return err(format!("mp4 atom is too small:{size}"));
    }
    if size > len - off {
        return err(format!("mp4 atom too large:{size}"));
    }
    Ok(Some(Header {
        size,
        header,
        name: [b[4], b[5], b[6], b[7]],
    }))
}

fn read_exact(file: &File, buf: &mut [u8], at: u64) -> Result<(), Mp4Error> {
    file.read_exact_at(buf, at).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Mp4Error("mp4 file truncated".into())
        } else {
            e.into()
        }
    })
}
