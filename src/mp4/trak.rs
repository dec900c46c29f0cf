//! Reading the `moov`: the movie header and, per track, the boxes nginx
//! keeps, with each table held as rows plus the window (`pos..last`) the
//! crop leaves of it. The crop itself is in `crop.rs`; [`Movie::build`]
//! runs it and writes the new `moov`.

use super::atoms::{Flow, be32, be64, boxed, put_header, set32, set64, walk};
use super::{Cut, Interval, Mp4Error, Options, err};

/// One table box: its first bytes as a box of their own (`head`: header,
/// version, flags, and for `stsz` the uniform size, then the entry count),
/// its rows, and the rows kept (`pos..last`).
pub(super) struct Table<T> {
    pub head: Vec<u8>,
    pub rows: Vec<T>,
    pub pos: usize,
    pub last: usize,
}

impl<T: Copy> Table<T> {
    /// Reads a table whose rows follow a `head_len`-byte head (the count at
    /// `head_len - 4`), each `row` bytes, parsed by `get`.
    fn read(
        name: &[u8; 4],
        d: &[u8],
        head_len: usize,
        row: usize,
        get: impl Fn(&[u8]) -> T,
    ) -> Result<Table<T>, Mp4Error> {
        let what = String::from_utf8_lossy(name);
        if d.len() < head_len - 8 {
            return err(format!("mp4 {what} atom too small"));
        }
        let n = be32(d, head_len - 12) as usize;
        if (head_len - 8) as u64 + n as u64 * row as u64 > d.len() as u64 {
            return err(format!("mp4 {what} atom too small"));
        }
        let rows: Vec<T> = d[head_len - 8..head_len - 8 + n * row]
            .chunks_exact(row)
            .map(get)
            .collect();
        Ok(Table {
            head: boxed(name, &d[..head_len - 8]),
            last: rows.len(),
            rows,
            pos: 0,
        })
    }

    pub fn kept(&self) -> &[T] {
        &self.rows[self.pos..self.last]
    }
}

/// `stsz`: a size per sample, or one size for all (then kept as it is).
pub(super) enum Sizes {
    Table(Table<u32>),
    Uniform(Vec<u8>),
}

/// `stco` (32-bit chunk offsets) or `co64`.
pub(super) enum Chunks {
    Stco(Table<u32>),
    Co64(Table<u64>),
}

/// One track: the boxes kept, and the crop's bookkeeping (nginx's names).
#[derive(Default)]
pub(super) struct Trak {
    pub tkhd: Option<Vec<u8>>,
    pub mdia: bool,
    pub mdhd: Option<Vec<u8>>,
    pub hdlr: Option<Vec<u8>>,
    pub minf: bool,
    pub vmhd: Option<Vec<u8>>,
    pub smhd: Option<Vec<u8>>,
    pub dinf: Option<Vec<u8>>,
    pub stbl: bool,
    pub stsd: Option<Vec<u8>>,
    pub stts: Option<Table<[u32; 2]>>,
    pub stss: Option<Table<u32>>,
    pub ctts: Option<Table<[u32; 2]>>,
    pub stsc: Option<Table<[u32; 3]>>,
    pub stsc_start: Option<[u32; 3]>,
    pub stsc_end: Option<[u32; 3]>,
    pub stsz: Option<Sizes>,
    pub chunks: Option<Chunks>,

    pub timescale: u32,
    pub duration: u64,
    pub movie_duration: u64,
    pub time_to_sample_entries: u64,
    pub sync_samples_entries: u64,
    pub composition_offset_entries: u64,
    pub sample_to_chunk_entries: u64,
    pub sample_sizes_entries: u64,
    pub start_sample: u64,
    pub end_sample: u64,
    pub start_chunk: u64,
    pub end_chunk: u64,
    pub start_chunk_samples: u64,
    pub end_chunk_samples: u64,
    pub start_chunk_samples_size: u64,
    pub end_chunk_samples_size: u64,
    pub prefix: u64,
    pub start_offset: u64,
    pub end_offset: u64,
    /// The `trak` box's size as the containers are closed.
    pub size: u64,
}

/// The movie as read: its header, its tracks, what was asked.
pub(super) struct Movie {
    pub at: Interval,
    pub opts: Options,
    /// The file's length.
    pub end: u64,
    pub timescale: u32,
    pub mvhd: Option<Vec<u8>>,
    pub traks: Vec<Trak>,
}

/// `time * timescale / 1000`, wrapping as nginx's unsigned arithmetic does.
pub(super) fn to_units(ms: u64, timescale: u32) -> u64 {
    ms.wrapping_mul(u64::from(timescale)) / 1000
}

fn dup<T>(name: &str) -> Result<T, Mp4Error> {
    err(format!("duplicate mp4 {name} atom"))
}

impl Movie {
    pub fn new(at: Interval, opts: Options, end: u64) -> Movie {
        Movie {
            at,
            opts,
            end,
            timescale: 0,
            mvhd: None,
            traks: Vec::new(),
        }
    }

    /// The `moov` content: `mvhd` and the tracks (`cmov` is refused).
    pub fn read_moov(&mut self, data: &[u8]) -> Result<(), Mp4Error> {
        walk(data, |name, d| {
            match name {
                b"mvhd" => self.read_mvhd(d)?,
                b"trak" => {
                    let mut t = Trak::default();
                    if t.read(self, d)? == Flow::Go {
                        self.traks.push(t);
                    }
                }
                b"cmov" => return err("mp4 compressed moov atom (cmov) is not supported"),
                _ => {}
            }
            Ok(Flow::Go)
        })
        .map(|_| ())
    }

    /// A duration in `timescale` units cut to the interval: from `start`,
    /// at most the asked length; `None` when it ends at or before `start`.
    fn cut_duration(&self, duration: u64, timescale: u32) -> Option<u64> {
        let start = to_units(self.at.start, timescale);
        let left = duration.checked_sub(start).filter(|&d| d > 0)?;
        Some(match self.at.length {
            0 => left,
            ms => left.min(to_units(ms, timescale)),
        })
    }

    fn read_mvhd(&mut self, d: &[u8]) -> Result<(), Mp4Error> {
        if self.mvhd.is_some() {
            return dup("mvhd");
        }
        let v1 = d.first().is_some_and(|&v| v != 0);
        if d.len() < if v1 { 112 } else { 100 } {
            return err("mp4 mvhd atom too small");
        }
        let (ts, duration) = if v1 {
            (be32(d, 20), be64(d, 24))
        } else {
            (be32(d, 12), u64::from(be32(d, 16)))
        };
        self.timescale = ts;
        if duration < to_units(self.at.start, ts) {
            return err("mp4 start time exceeds file duration");
        }
        let duration = self.cut_duration(duration, ts).unwrap_or(0);
        let mut atom = boxed(b"mvhd", d);
        if v1 {
            set64(&mut atom, 32, duration);
        } else {
            set32(&mut atom, 24, duration as u32);
        }
        self.mvhd = Some(atom);
        Ok(())
    }

    /// Runs the crop on every track and writes `ftyp` + `moov` + the `mdat`
    /// header; `mdat_end` is where the file's media data ends.
    pub fn build(mut self, ftyp: Option<Vec<u8>>, mdat_end: u64) -> Result<Cut, Mp4Error> {
        let mut moov_size = 8 + self.mvhd.as_ref().map_or(0, |a| a.len() as u64);
        let mut start_offset = self.end;
        let mut end_offset = 0;
        let (at, opts, end) = (self.at, self.opts, self.end);
        for t in &mut self.traks {
            t.crop(at, &opts, end, mdat_end)?;
            moov_size += t.size;
            start_offset = start_offset.min(t.start_offset);
            end_offset = end_offset.max(t.end_offset);
        }
        end_offset = end_offset.max(start_offset);
        if start_offset > mdat_end {
            return err("start time is out mp4 mdat atom");
        }
        let data = end_offset - start_offset;
        let mdat_header: u64 = if data > u64::from(u32::MAX) - 8 {
            16
        } else {
            8
        };
        let ftyp_size = ftyp.as_ref().map_or(0, |a| a.len() as u64);
        let adjustment = (ftyp_size + moov_size + mdat_header).wrapping_sub(start_offset);
        let mut head = ftyp.unwrap_or_default();
        head.reserve((moov_size + mdat_header) as usize);
        put_header(&mut head, moov_size, b"moov");
        if let Some(mvhd) = &self.mvhd {
            head.extend_from_slice(mvhd);
        }
        for t in &mut self.traks {
            t.adjust(adjustment);
            t.write(&mut head);
        }
        if mdat_header == 16 {
            put_header(&mut head, 1, b"mdat");
            head.extend_from_slice(&(16 + data).to_be_bytes());
        } else {
            put_header(&mut head, 8 + data, b"mdat");
        }
        Ok(Cut {
            head,
            data: start_offset..end_offset,
        })
    }
}

impl Trak {
    /// How many chunks the offsets table lists (nginx's `trak->chunks`).
    pub(super) fn chunk_count(&self) -> u64 {
        match &self.chunks {
            Some(Chunks::Stco(t)) => t.rows.len() as u64,
            Some(Chunks::Co64(t)) => t.rows.len() as u64,
            None => 0,
        }
    }

    /// The `trak` content; `Drop` when the track ends before `start`.
    fn read(&mut self, m: &Movie, d: &[u8]) -> Result<Flow, Mp4Error> {
        walk(d, |name, d| match name {
            b"tkhd" => self.read_tkhd(m, d),
            b"mdia" => {
                if self.mdia {
                    return dup("mdia");
                }
                self.mdia = true;
                walk(d, |name, d| match name {
                    b"mdhd" => self.read_mdhd(m, d),
                    b"hdlr" => Ok(set_once(&mut self.hdlr, "hdlr", boxed(b"hdlr", d))?),
                    b"minf" => self.read_minf(d),
                    _ => Ok(Flow::Go),
                })
            }
            _ => Ok(Flow::Go),
        })
    }

    fn read_tkhd(&mut self, m: &Movie, d: &[u8]) -> Result<Flow, Mp4Error> {
        let v1 = d.first().is_some_and(|&v| v != 0);
        if d.len() < if v1 { 96 } else { 84 } {
            return err("mp4 tkhd atom too small");
        }
        let duration = if v1 {
            be64(d, 28)
        } else {
            u64::from(be32(d, 20))
        };
        // The movie's timescale, as far as the file has told it by now.
        let Some(duration) = m.cut_duration(duration, m.timescale) else {
            return Ok(Flow::Drop);
        };
        if self.tkhd.is_some() {
            return dup("tkhd");
        }
        let mut atom = boxed(b"tkhd", d);
        if v1 {
            set64(&mut atom, 36, duration);
        } else {
            set32(&mut atom, 28, duration as u32);
        }
        self.movie_duration = duration;
        self.tkhd = Some(atom);
        Ok(Flow::Go)
    }

    fn read_mdhd(&mut self, m: &Movie, d: &[u8]) -> Result<Flow, Mp4Error> {
        let v1 = d.first().is_some_and(|&v| v != 0);
        if d.len() < if v1 { 36 } else { 24 } {
            return err("mp4 mdhd atom too small");
        }
        let (ts, duration) = if v1 {
            (be32(d, 20), be64(d, 24))
        } else {
            (be32(d, 12), u64::from(be32(d, 16)))
        };
        let Some(duration) = m.cut_duration(duration, ts) else {
            return Ok(Flow::Drop);
        };
        if self.mdhd.is_some() {
            return dup("mdhd");
        }
        self.timescale = ts;
        self.duration = duration;
        // The duration is written when the track is (the crop may add the
        // key-frame prefix to it).
        self.mdhd = Some(boxed(b"mdhd", d));
        Ok(Flow::Go)
    }

    fn read_minf(&mut self, d: &[u8]) -> Result<Flow, Mp4Error> {
        if self.minf {
            return dup("minf");
        }
        self.minf = true;
        walk(d, |name, d| {
            match name {
                b"vmhd" | b"smhd" => {
                    if self.vmhd.is_some() || self.smhd.is_some() {
                        return dup("vmhd/smhd");
                    }
                    let slot = if name == b"vmhd" {
                        &mut self.vmhd
                    } else {
                        &mut self.smhd
                    };
                    *slot = Some(boxed(name, d));
                }
                b"dinf" => {
                    set_once(&mut self.dinf, "dinf", boxed(b"dinf", d))?;
                }
                b"stbl" => {
                    if self.stbl {
                        return dup("stbl");
                    }
                    self.stbl = true;
                    walk(d, |name, d| self.read_table(name, d))?;
                }
                _ => {}
            }
            Ok(Flow::Go)
        })
    }

    fn read_table(&mut self, name: &[u8; 4], d: &[u8]) -> Result<Flow, Mp4Error> {
        let pair = |r: &[u8]| [be32(r, 0), be32(r, 4)];
        match name {
            b"stsd" => {
                if d.len() < 16 {
                    return err("mp4 stsd atom too small");
                }
                let atom = boxed(b"stsd", d);
                let size = atom.len() as u64;
                set_once(&mut self.stsd, "stsd", atom)?;
                self.size += size;
            }
            b"stts" => {
                let t = Table::read(name, d, 16, 8, pair)?;
                self.time_to_sample_entries = t.rows.len() as u64;
                set_once(&mut self.stts, "stts", t)?;
            }
            b"stss" => {
                let t = Table::read(name, d, 16, 4, |r| be32(r, 0))?;
                self.sync_samples_entries = t.rows.len() as u64;
                set_once(&mut self.stss, "stss", t)?;
            }
            b"ctts" => {
                let t = Table::read(name, d, 16, 8, pair)?;
                self.composition_offset_entries = t.rows.len() as u64;
                set_once(&mut self.ctts, "ctts", t)?;
            }
            b"stsc" => {
                let t = Table::read(name, d, 16, 12, |r| [be32(r, 0), be32(r, 4), be32(r, 8)])?;
                self.sample_to_chunk_entries = t.rows.len() as u64;
                set_once(&mut self.stsc, "stsc", t)?;
            }
            b"stsz" => {
                if self.stsz.is_some() {
                    return dup("stsz");
                }
                if d.len() < 12 {
                    return err("mp4 stsz atom too small");
                }
                self.sample_sizes_entries = u64::from(be32(d, 8));
                self.stsz = Some(if be32(d, 4) != 0 {
                    // One size for every sample: kept as it is (nginx
                    // does not crop it).
                    let atom = boxed(b"stsz", d);
                    self.size += atom.len() as u64;
                    Sizes::Uniform(atom)
                } else {
                    Sizes::Table(Table::read(name, d, 20, 4, |r| be32(r, 0))?)
                });
            }
            b"stco" | b"co64" => {
                if self.chunks.is_some() {
                    return dup("stco/co64");
                }
                let t = if name == b"stco" {
                    Chunks::Stco(Table::read(name, d, 16, 4, |r| be32(r, 0))?)
                } else {
                    Chunks::Co64(Table::read(name, d, 16, 8, |r| be64(r, 0))?)
                };
                self.chunks = Some(t);
            }
            _ => {}
        }
        Ok(Flow::Go)
    }
}

fn set_once<T>(slot: &mut Option<T>, name: &str, v: T) -> Result<Flow, Mp4Error> {
    if slot.is_some() {
        return dup(name);
    }
    *slot = Some(v);
    Ok(Flow::Go)
}
