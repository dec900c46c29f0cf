//! Cropping one track's tables to the interval, then writing the track.
//!
//! The order and arithmetic are nginx's (`ngx_http_mp4_update_*_atom` and
//! `ngx_http_mp4_crop_*_data`): the time-to-sample table (`stts`) gives
//! the first and last sample, the sync (`stss`) and composition (`ctts`)
//! tables follow them, the sample-to-chunk table (`stsc`) gives the chunks
//! (splitting the first and last chunk's run with an extra row where the cut
//! falls inside a chunk), the sizes (`stsz`) give how many bytes of the
//! first and last chunk are cut, and the chunk offsets (`stco`/`co64`) where
//! the kept media data starts and ends. Sample numbers in `stss` count from
//! 1; chunk numbers in `stsc` too.

use super::atoms::{put_header, set32, set64};
use super::trak::{Chunks, Sizes, Table, Trak, to_units};
use super::{Interval, Mp4Error, Options, err};

impl Trak {
    /// Crops every table and closes the containers (`self.size` is then
    /// the `trak` box's size).
    pub(super) fn crop(
        &mut self,
        at: Interval,
        opts: &Options,
        file_end: u64,
        mdat_end: u64,
    ) -> Result<(), Mp4Error> {
        if self.stts.is_none() {
            return err("no mp4 stts atoms were found");
        }
        self.crop_stts(true, at, opts)?;
        self.crop_stts(false, at, opts)?;
        let t = self.stts.as_ref().expect("checked");
        self.size += 16 + 8 * (t.last - t.pos) as u64;
        self.update_stss(at);
        self.update_ctts(at);
        if self.stsc.is_none() || self.sample_to_chunk_entries == 0 {
            return err("no mp4 stsc atoms were found");
        }
        self.crop_stsc(true, at)?;
        self.crop_stsc(false, at)?;
        if let Some(t) = self.stsc.as_mut() {
            let start_chunk = self.start_chunk as u32;
            let (pos, last) = (t.pos, t.last);
            for row in &mut t.rows[pos..last] {
                row[0] = row[0].wrapping_sub(start_chunk);
            }
        }
        self.check_counts()?;
        let stsc_rows = self.stsc.as_ref().map_or(0, |t| t.kept().len());
        let extra = usize::from(self.stsc_start.is_some()) + usize::from(self.stsc_end.is_some());
        self.size += 16 + 12 * (stsc_rows + extra) as u64;
        self.update_stsz(at, file_end)?;
        self.update_chunks(at, file_end, mdat_end)?;
        // stbl, minf, mdhd, hdlr, mdia, tkhd, edts, trak: nginx's order.
        self.size += 8;
        self.size += 8 + box_len(&self.vmhd) + box_len(&self.smhd) + box_len(&self.dinf);
        if let Some(mdhd) = self.mdhd.as_mut() {
            if mdhd[8] == 0 {
                set32(mdhd, 24, self.duration as u32);
            } else {
                set64(mdhd, 32, self.duration);
            }
            self.size += mdhd.len() as u64;
        }
        self.size += box_len(&self.hdlr);
        self.size += 8;
        self.size += box_len(&self.tkhd);
        if self.prefix > 0 {
            self.size += EDTS_LEN;
        }
        self.size += 8;
        Ok(())
    }

    /// The counts the crop kept agree with the rows it kept (they do for
    /// any well-formed file; a damaged one would write boxes whose sizes
    /// and counts disagree).
    fn check_counts(&self) -> Result<(), Mp4Error> {
        let kept = |n: Option<usize>| n.map(|n| n as u64);
        let stsc = self.stsc.as_ref().map(|t| {
            t.kept().len()
                + usize::from(self.stsc_start.is_some())
                + usize::from(self.stsc_end.is_some())
        });
        let pairs = [
            (
                kept(self.stts.as_ref().map(|t| t.kept().len())),
                self.time_to_sample_entries,
            ),
            (
                kept(self.stss.as_ref().map(|t| t.kept().len())),
                self.sync_samples_entries,
            ),
            (
                kept(self.ctts.as_ref().map(|t| t.kept().len())),
                self.composition_offset_entries,
            ),
            (kept(stsc), self.sample_to_chunk_entries),
        ];
        if pairs
            .iter()
            .any(|(rows, count)| rows.is_some_and(|r| r != *count))
        {
            return err("mp4 tables inconsistent with their counts");
        }
        Ok(())
    }

    /// nginx's `ngx_http_mp4_crop_stts_data`: `start` finds the first
    /// sample, else the end (when a length is asked).
    fn crop_stts(&mut self, start: bool, at: Interval, opts: &Options) -> Result<(), Mp4Error> {
        let ms = if start {
            at.start
        } else if at.length != 0 {
            at.length
        } else {
            return Ok(());
        };
        let mut start_time = to_units(ms, self.timescale).wrapping_add(self.prefix);
        let mut entries = self.time_to_sample_entries;
        let mut start_sample = 0u64;
        let t = self.stts.as_ref().expect("checked");
        let mut e = t.pos;
        let (mut count, mut duration, mut rest) = (0u32, 0u32, 0u32);
        let mut found = false;
        while e < t.last {
            [count, duration] = t.rows[e];
            let run = u64::from(count) * u64::from(duration);
            if start_time < run {
                start_sample += start_time / u64::from(duration);
                rest = (start_time / u64::from(duration)) as u32;
                found = true;
                break;
            }
            start_sample += u64::from(count);
            start_time -= run;
            entries = entries.wrapping_sub(1);
            e += 1;
        }
        if !found {
            if start {
                return err("start time is out mp4 stts samples");
            }
            self.end_sample = self.start_sample + start_sample;
            return Ok(());
        }
        if start {
            let mut key_prefix = self.seek_key_frame(start_sample, opts);
            start_sample = start_sample
                .checked_sub(u64::from(key_prefix))
                .ok_or_else(|| Mp4Error("mp4 sync sample out of the samples".into()))?;
            let t = self.stts.as_ref().expect("checked");
            while rest < key_prefix {
                if e == 0 {
                    return err("mp4 key frame before the first sample");
                }
                self.prefix = self
                    .prefix
                    .wrapping_add(u64::from(rest) * u64::from(duration));
                key_prefix -= rest;
                e -= 1;
                entries += 1;
                [count, duration] = t.rows[e];
                rest = count;
            }
            self.prefix = self
                .prefix
                .wrapping_add(u64::from(key_prefix) * u64::from(duration));
            self.duration = self.duration.wrapping_add(self.prefix);
            rest -= key_prefix;
            let t = self.stts.as_mut().expect("checked");
            t.rows[e][0] = count - rest;
            t.pos = e;
            self.time_to_sample_entries = entries;
            self.start_sample = start_sample;
        } else {
            let t = self.stts.as_mut().expect("checked");
            t.rows[e][0] = rest;
            t.last = e + 1;
            self.time_to_sample_entries = self
                .time_to_sample_entries
                .wrapping_sub(entries.wrapping_sub(1));
            self.end_sample = self.start_sample + start_sample;
        }
        Ok(())
    }

    /// How many samples before `start_sample` the key frame is (0 without
    /// `start_key_frame` or a sync table).
    fn seek_key_frame(&self, start_sample: u64, opts: &Options) -> u32 {
        let Some(stss) = self.stss.as_ref().filter(|_| opts.start_key_frame) else {
            return 0;
        };
        let target = (start_sample as u32).wrapping_add(1);
        let mut key_prefix = 0;
        for &sample in stss.kept() {
            if sample > target {
                break;
            }
            key_prefix = target - sample;
        }
        key_prefix
    }

    fn update_stss(&mut self, at: Interval) {
        if self.stss.is_none() {
            return;
        }
        for start in [true, false] {
            let first = if start {
                self.start_sample + 1
            } else if at.length != 0 {
                self.end_sample + 1
            } else {
                continue;
            };
            let t = self.stss.as_mut().expect("checked");
            let mut entries = self.sync_samples_entries;
            let mut e = t.pos;
            while e < t.last && u64::from(t.rows[e]) < first {
                entries = entries.wrapping_sub(1);
                e += 1;
            }
            if start {
                t.pos = e;
                self.sync_samples_entries = entries;
            } else {
                t.last = e;
                self.sync_samples_entries = self.sync_samples_entries.wrapping_sub(entries);
            }
        }
        let t = self.stss.as_mut().expect("checked");
        let (pos, last) = (t.pos, t.last);
        for s in &mut t.rows[pos..last] {
            *s = s.wrapping_sub(self.start_sample as u32);
        }
        self.size += 16 + 4 * (last - pos) as u64;
    }

    fn update_ctts(&mut self, at: Interval) {
        if self.ctts.is_none() {
            return;
        }
        for start in [true, false] {
            let mut sample = if start {
                self.start_sample + 1
            } else if at.length != 0 {
                self.end_sample - self.start_sample + 1
            } else {
                continue;
            };
            let t = self.ctts.as_mut().expect("checked");
            let mut entries = self.composition_offset_entries;
            let mut e = t.pos;
            let mut found = None;
            while e < t.last {
                let count = u64::from(t.rows[e][0]);
                if sample <= count {
                    found = Some((count, sample - 1));
                    break;
                }
                sample -= count;
                entries = entries.wrapping_sub(1);
                e += 1;
            }
            match found {
                None if start => {
                    t.pos = t.last;
                    self.composition_offset_entries = 0;
                }
                None => {}
                Some((count, rest)) if start => {
                    t.rows[e][0] = (count - rest) as u32;
                    t.pos = e;
                    self.composition_offset_entries = entries;
                }
                Some((_, rest)) => {
                    t.rows[e][0] = rest as u32;
                    t.last = e + 1;
                    self.composition_offset_entries = self
                        .composition_offset_entries
                        .wrapping_sub(entries.wrapping_sub(1));
                }
            }
        }
        if self.composition_offset_entries == 0 {
            self.ctts = None;
            return;
        }
        let t = self.ctts.as_ref().expect("checked");
        self.size += 16 + 8 * (t.last - t.pos) as u64;
    }

    fn update_stsz(&mut self, at: Interval, file_end: u64) -> Result<(), Mp4Error> {
        let Some(Sizes::Table(t)) = self.stsz.as_mut() else {
            // Uniform sizes: nginx leaves the box and the chunk sizes alone.
            return Ok(());
        };
        let mut entries = self.sample_sizes_entries;
        if self.start_sample > entries {
            return err("start time is out mp4 stsz samples");
        }
        entries -= self.start_sample;
        t.pos += self.start_sample as usize;
        self.start_chunk_samples_size = sum_before(t, t.pos, self.start_chunk_samples)?;
        if self.start_chunk_samples_size > file_end {
            return err("too large mp4 start samples size");
        }
        if at.length != 0 {
            if self.end_sample - self.start_sample > entries {
                return err("end time is out mp4 stsz samples");
            }
            entries = self.end_sample - self.start_sample;
            t.last = t.pos + entries as usize;
            self.end_chunk_samples_size = sum_before(t, t.last, self.end_chunk_samples)?;
            if self.end_chunk_samples_size > file_end {
                return err("too large mp4 end samples size");
            }
        }
        set32(&mut t.head, 16, entries as u32);
        self.size += 20 + 4 * (t.last - t.pos) as u64;
        Ok(())
    }

    /// `stco`/`co64`: the first kept chunk starts where the cut does; the
    /// track's media data is `start_offset..end_offset`.
    fn update_chunks(
        &mut self,
        at: Interval,
        file_end: u64,
        mdat_end: u64,
    ) -> Result<(), Mp4Error> {
        if self.start_chunk > self.chunk_count() {
            return err("start time is out mp4 stco chunks");
        }
        if at.length != 0 && self.end_chunk > self.chunk_count() {
            return err("end time is out mp4 stco chunks");
        }
        let cut = OffsetCut {
            start_chunk: self.start_chunk as usize,
            end_chunk: (at.length != 0).then_some(self.end_chunk as usize),
            start_size: self.start_chunk_samples_size,
            end_size: self.end_chunk_samples_size,
            file_end,
            mdat_end,
        };
        let (start, end, entries, row) = match self.chunks.as_mut() {
            Some(Chunks::Stco(t)) => cut.apply(t).map(|(s, e, n)| (s, e, n, 4))?,
            Some(Chunks::Co64(t)) => cut.apply(t).map(|(s, e, n)| (s, e, n, 8))?,
            None => return err("no mp4 stco atoms were found"),
        };
        self.start_offset = start;
        self.end_offset = end;
        self.size += 16 + row * entries;
        Ok(())
    }

    /// Moves every kept chunk offset by `adjustment` (the new moov's size
    /// and the media data cut before the first kept chunk), wrapping as
    /// nginx's fixed-width arithmetic does.
    pub(super) fn adjust(&mut self, adjustment: u64) {
        match self.chunks.as_mut() {
            Some(Chunks::Stco(t)) => {
                let (pos, last) = (t.pos, t.last);
                for o in &mut t.rows[pos..last] {
                    *o = o.wrapping_add(adjustment as u32);
                }
            }
            Some(Chunks::Co64(t)) => {
                let (pos, last) = (t.pos, t.last);
                for o in &mut t.rows[pos..last] {
                    *o = o.wrapping_add(adjustment);
                }
            }
            None => {}
        }
    }

    /// Appends the `trak` box, its boxes in nginx's order.
    pub(super) fn write(&self, out: &mut Vec<u8>) {
        put_header(out, self.size, b"trak");
        put(out, &self.tkhd);
        if self.prefix > 0 {
            put_header(out, EDTS_LEN, b"edts");
            put_header(out, EDTS_LEN - 8, b"elst");
            out.extend_from_slice(&[1, 0, 0, 0]);
            out.extend_from_slice(&1u32.to_be_bytes());
            out.extend_from_slice(&self.movie_duration.to_be_bytes());
            out.extend_from_slice(&self.prefix.to_be_bytes());
            out.extend_from_slice(&[0, 1, 0, 0]);
        }
        let mdia = self.size - 8 - box_len(&self.tkhd) - self.edts_len();
        if self.mdia {
            put_header(out, mdia, b"mdia");
        }
        put(out, &self.mdhd);
        put(out, &self.hdlr);
        let minf = mdia - 8 - box_len(&self.mdhd) - box_len(&self.hdlr);
        if self.minf {
            put_header(out, minf, b"minf");
        }
        put(out, &self.vmhd);
        put(out, &self.smhd);
        put(out, &self.dinf);
        let stbl = minf - 8 - box_len(&self.vmhd) - box_len(&self.smhd) - box_len(&self.dinf);
        if self.stbl {
            put_header(out, stbl, b"stbl");
        }
        put(out, &self.stsd);
        if let Some(t) = &self.stts {
            table(out, t, self.time_to_sample_entries, 8, |o, r| {
                o.extend_from_slice(&r[0].to_be_bytes());
                o.extend_from_slice(&r[1].to_be_bytes());
            });
        }
        if let Some(t) = &self.stss {
            table(out, t, self.sync_samples_entries, 4, |o, r| {
                o.extend_from_slice(&r.to_be_bytes())
            });
        }
        if let Some(t) = &self.ctts {
            table(out, t, self.composition_offset_entries, 8, |o, r| {
                o.extend_from_slice(&r[0].to_be_bytes());
                o.extend_from_slice(&r[1].to_be_bytes());
            });
        }
        if let Some(t) = &self.stsc {
            let mut head = t.head.clone();
            set32(
                &mut head,
                0,
                (16 + self.sample_to_chunk_entries * 12) as u32,
            );
            set32(&mut head, 12, self.sample_to_chunk_entries as u32);
            out.extend_from_slice(&head);
            let rows = self
                .stsc_start
                .iter()
                .chain(t.kept())
                .chain(self.stsc_end.iter());
            for r in rows {
                for v in r {
                    out.extend_from_slice(&v.to_be_bytes());
                }
            }
        }
        match &self.stsz {
            Some(Sizes::Table(t)) => {
                let mut head = t.head.clone();
                set32(&mut head, 0, (20 + 4 * t.kept().len()) as u32);
                out.extend_from_slice(&head);
                for r in t.kept() {
                    out.extend_from_slice(&r.to_be_bytes());
                }
            }
            Some(Sizes::Uniform(atom)) => out.extend_from_slice(atom),
            None => {}
        }
        match &self.chunks {
            Some(Chunks::Stco(t)) => table(out, t, t.kept().len() as u64, 4, |o, r| {
                o.extend_from_slice(&r.to_be_bytes())
            }),
            Some(Chunks::Co64(t)) => table(out, t, t.kept().len() as u64, 8, |o, r| {
                o.extend_from_slice(&r.to_be_bytes())
            }),
            None => {}
        }
    }

    fn edts_len(&self) -> u64 {
        if self.prefix > 0 { EDTS_LEN } else { 0 }
    }
}

/// A chunk offset, 32-bit (`stco`) or 64-bit (`co64`).
trait Offset: Copy {
    const LIMIT: u64;
    fn get(self) -> u64;
    fn new(v: u64) -> Self;
}

impl Offset for u32 {
    const LIMIT: u64 = u32::MAX as u64;
    fn get(self) -> u64 {
        u64::from(self)
    }
    fn new(v: u64) -> u32 {
        v as u32
    }
}

impl Offset for u64 {
    const LIMIT: u64 = u64::MAX;
    fn get(self) -> u64 {
        self
    }
    fn new(v: u64) -> u64 {
        v
    }
}

/// What the sample tables decided for the chunk offsets.
struct OffsetCut {
    start_chunk: usize,
    /// With a length: the chunk after the last one kept.
    end_chunk: Option<usize>,
    /// Bytes of the first kept chunk before the first kept sample.
    start_size: u64,
    /// Bytes of the last kept chunk up to the end of the last kept sample.
    end_size: u64,
    file_end: u64,
    mdat_end: u64,
}

impl OffsetCut {
    /// Crops the table; `(start_offset, end_offset, entries)` (nginx's
    /// `ngx_http_mp4_update_stco_atom`).
    fn apply<T: Offset>(&self, t: &mut Table<T>) -> Result<(u64, u64, u64), Mp4Error> {
        t.pos += self.start_chunk;
        let mut start_offset = 0;
        if t.pos < t.last {
            let offset = t.rows[t.pos].get();
            if offset > self.file_end.wrapping_sub(self.start_size)
                || offset.saturating_add(self.start_size) > T::LIMIT
            {
                return err("start time is out mp4 stco chunks");
            }
            start_offset = offset + self.start_size;
            t.rows[t.pos] = T::new(start_offset);
        }
        let mut end_offset = 0;
        let entries = match self.end_chunk {
            Some(end_chunk) => {
                let n = end_chunk
                    .checked_sub(self.start_chunk)
                    .ok_or_else(|| super::Mp4Error("end time is out mp4 stco chunks".into()))?;
                t.last = t.pos + n;
                if n > 0 {
                    let offset = t.rows[t.last - 1].get();
                    if offset > self.file_end.wrapping_sub(self.end_size)
                        || offset.saturating_add(self.end_size) > T::LIMIT
                    {
                        return err("end time is out mp4 stco chunks");
                    }
                    end_offset = offset + self.end_size;
                }
                n
            }
            None => {
                end_offset = self.mdat_end;
                t.last.saturating_sub(t.pos)
            }
        };
        if entries == 0 {
            return Ok((self.file_end, 0, 0));
        }
        Ok((start_offset, end_offset, entries as u64))
    }
}

/// `edts` (8) + `elst` with one 64-bit entry (36).
const EDTS_LEN: u64 = 44;

fn box_len(b: &Option<Vec<u8>>) -> u64 {
    b.as_ref().map_or(0, |b| b.len() as u64)
}

fn put(out: &mut Vec<u8>, b: &Option<Vec<u8>>) {
    if let Some(b) = b {
        out.extend_from_slice(b);
    }
}

/// A table box: its head (size and count set) and its kept rows; rows are
/// left out when the count is 0, as nginx does for an emptied `stss`.
fn table<T: Copy>(
    out: &mut Vec<u8>,
    t: &Table<T>,
    count: u64,
    row: u64,
    put_row: impl Fn(&mut Vec<u8>, &T),
) {
    let mut head = t.head.clone();
    let rows = if count == 0 { &[][..] } else { t.kept() };
    set32(&mut head, 0, (16 + row * rows.len() as u64) as u32);
    set32(&mut head, 12, count as u32);
    out.extend_from_slice(&head);
    for r in rows {
        put_row(out, r);
    }
}

/// The sizes of the `n` samples before row `at` of `stsz`.
fn sum_before(t: &Table<u32>, at: usize, n: u64) -> Result<u64, Mp4Error> {
    let n = n as usize;
    if n > at || at > t.rows.len() {
        return err("mp4 stsz samples out of the table");
    }
    Ok(t.rows[at - n..at].iter().map(|&s| u64::from(s)).sum())
}

impl Trak {
    /// nginx's `ngx_http_mp4_crop_stsc_data`.
    fn crop_stsc(&mut self, start: bool, at: Interval) -> Result<(), Mp4Error> {
        let mut entries = self.sample_to_chunk_entries.wrapping_sub(1);
        let mut start_sample: u32;
        if start {
            start_sample = self.start_sample as u32;
        } else if at.length != 0 {
            start_sample = (self.end_sample - self.start_sample) as u32;
            if let Some(first) = self.stsc_start.as_mut() {
                let mut samples = first[1];
                entries = entries.wrapping_sub(1);
                if samples > start_sample {
                    samples = start_sample;
                    first[1] = samples;
                }
                start_sample -= samples;
            }
        } else {
            return Ok(());
        }
        let chunk_total = self.chunk_count() as u32;
        let t = self.stsc.as_mut().expect("checked");
        let mut e = t.pos;
        if e >= t.last {
            return err("no mp4 stsc entries");
        }
        let [mut chunk, mut samples, mut id] = t.rows[e];
        let mut prev_samples = 0u32;
        let mut next_chunk;
        e += 1;
        loop {
            if e >= t.last {
                next_chunk = chunk_total.wrapping_add(1);
                let n = next_chunk.wrapping_sub(chunk).wrapping_mul(samples);
                if start_sample > n {
                    return err("start time is out mp4 stsc chunks");
                }
                break;
            }
            next_chunk = t.rows[e][0];
            let n = next_chunk.wrapping_sub(chunk).wrapping_mul(samples);
            if start_sample < n {
                break;
            }
            start_sample -= n;
            prev_samples = samples;
            chunk = next_chunk;
            [_, samples, id] = t.rows[e];
            entries = entries.wrapping_sub(1);
            e += 1;
        }
        entries = entries.wrapping_add(1);
        e -= 1;
        if samples == 0 {
            return err("zero number of samples in mp4 stsc");
        }
        let target_chunk = u64::from(chunk)
            .wrapping_sub(1)
            .wrapping_add(u64::from(start_sample / samples));
        let chunk_samples = start_sample % samples;
        if start {
            t.pos = e;
            self.sample_to_chunk_entries = entries;
            self.start_chunk = target_chunk;
            self.start_chunk_samples = u64::from(chunk_samples);
            t.rows[e][0] = target_chunk.wrapping_add(1) as u32;
            samples -= chunk_samples;
        } else {
            if start_sample != 0 {
                t.last = e + 1;
                self.sample_to_chunk_entries = self
                    .sample_to_chunk_entries
                    .wrapping_sub(entries.wrapping_sub(1));
                self.end_chunk_samples = u64::from(samples);
            } else {
                t.last = e;
                self.sample_to_chunk_entries = self.sample_to_chunk_entries.wrapping_sub(entries);
                self.end_chunk_samples = u64::from(prev_samples);
            }
            if chunk_samples != 0 {
                self.end_chunk = target_chunk.wrapping_add(1);
                self.end_chunk_samples = u64::from(chunk_samples);
            } else {
                self.end_chunk = target_chunk;
            }
            samples = chunk_samples;
            next_chunk = chunk.wrapping_add(1);
        }
        if chunk_samples != 0 && u64::from(next_chunk).wrapping_sub(target_chunk) == 2 {
            t.rows[e][1] = samples;
        } else if chunk_samples != 0 && start {
            self.stsc_start = Some([1, samples, id]);
            t.rows[e][0] = self.start_chunk.wrapping_add(2) as u32;
            self.sample_to_chunk_entries += 1;
        } else if chunk_samples != 0 {
            let first = self.end_chunk.wrapping_sub(self.start_chunk) as u32;
            self.stsc_end = Some([first, samples, id]);
            self.sample_to_chunk_entries += 1;
        }
        Ok(())
    }
}
