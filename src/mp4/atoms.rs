//! Big-endian fields and the walk over a container box held in memory (the
//! `moov` and everything inside it).

use super::{Mp4Error, err};

pub(super) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

pub(super) fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

pub(super) fn set32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

pub(super) fn set64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_be_bytes());
}

/// Appends an 8-byte box header. Sizes are the box's own: a moov over
/// 4 GiB cannot be read in the first place (`max_buffer_size`).
pub(super) fn put_header(out: &mut Vec<u8>, size: u64, name: &[u8; 4]) {
    out.extend_from_slice(&(size as u32).to_be_bytes());
    out.extend_from_slice(name);
}

/// A box rebuilt with an 8-byte header (nginx writes every box it keeps so,
/// whatever header the file had) around `data`.
pub(super) fn boxed(name: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + data.len());
    put_header(&mut out, 8 + data.len() as u64, name);
    out.extend_from_slice(data);
    out
}

/// What a box's handler says of its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    /// Go on with the next box.
    Go,
    /// The track ends before `start`: drop it (nginx's `NGX_DECLINED`).
    Drop,
}

/// Calls `f(name, data)` for each box in `data` (a container's content), in
/// order, stopping at a box of size 0 (nginx: "atom end") or at the first
/// `Drop`.
pub(super) fn walk<'a>(
    data: &'a [u8],
    mut f: impl FnMut(&[u8; 4], &'a [u8]) -> Result<Flow, Mp4Error>,
) -> Result<Flow, Mp4Error> {
    let mut off = 0usize;
    while off < data.len() {
        let left = data.len() - off;
        if left < 4 {
            return err("mp4 file truncated");
        }
        let mut size = u64::from(be32(data, off));
        let mut header = 8u64;
        if size == 0 {
            return Ok(Flow::Go);
        }
        if left < 8 {
            return err("mp4 file truncated");
        }
        if size == 1 {
            if left < 16 {
                return err("mp4 file truncated");
            }
            size = be64(data, off + 8);
            header = 16;
        }
        if size < header {
            return err(format!("mp4 atom is too small:{size}"));
        }
        if size > left as u64 {
            return err(format!("mp4 atom too large:{size}"));
        }
        let name: [u8; 4] = data[off + 4..off + 8].try_into().expect("4 bytes");
        let body = &data[off + header as usize..off + size as usize];
        if f(&name, body)? == Flow::Drop {
            return Ok(Flow::Drop);
        }
        off += size as usize;
    }
    Ok(Flow::Go)
}
