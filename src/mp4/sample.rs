//! A synthetic MP4 for tests: a video track (key frame every `gop`
//! samples, composition offsets) and an audio track, their chunks
//! interleaved in one `mdat`. Every sample's bytes name it — the track id,
//! then the sample's index as 4 big-endian bytes, repeated — so a test can
//! tell which samples a cut answer carries by reading them through the new
//! tables. Not a playable video: nothing in greenlight decodes samples.

/// The shape of the file.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Video samples (25 per second).
    pub video: u32,
    /// A key frame every `gop` video samples.
    pub gop: u32,
    /// Audio samples (1024 per 48 kHz: 46.875 per second); 0: no audio.
    pub audio: u32,
    /// `moov` before `mdat` (a "fast start" file).
    pub moov_first: bool,
    /// 64-bit chunk offsets (`co64`).
    pub co64: bool,
    /// One size for every audio sample (an `stsz` without table).
    pub uniform_audio: bool,
}

impl Default for Spec {
    fn default() -> Spec {
        Spec {
            video: 250,
            gop: 25,
            audio: 469,
            moov_first: true,
            co64: false,
            uniform_audio: false,
        }
    }
}

struct Track {
    id: u8,
    timescale: u32,
    delta: u32,
    sizes: Vec<u32>,
    /// Samples per chunk, by chunk (runs become `stsc` rows).
    chunking: Vec<u32>,
    video: bool,
    uniform: bool,
}

/// Splits `n` samples into chunks of a repeating 4, 4, 5, 3 pattern, so
/// `stsc` has runs of different lengths.
fn chunking(n: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut left = n;
    let pattern = [4, 4, 5, 3];
    let mut k = 0;
    while left > 0 {
        let c = pattern[k % pattern.len()].min(left);
        out.push(c);
        left -= c;
        k += 1;
    }
    out
}

/// The bytes of sample `index` of track `id`.
pub fn sample_bytes(id: u8, index: u32, size: u32) -> Vec<u8> {
    let tag = [
        id,
        (index >> 24) as u8,
        (index >> 16) as u8,
        (index >> 8) as u8,
        index as u8,
    ];
    tag.iter().copied().cycle().take(size as usize).collect()
}

/// The file `spec` describes.
pub fn synthetic(spec: &Spec) -> Vec<u8> {
    let mut tracks = vec![Track {
        id: 1,
        timescale: 12800,
        delta: 512,
        sizes: (0..spec.video).map(|i| 60 + (i * 37) % 90).collect(),
        chunking: chunking(spec.video),
        video: true,
        uniform: false,
    }];
    if spec.audio > 0 {
        tracks.push(Track {
            id: 2,
            timescale: 48000,
            delta: 1024,
            sizes: (0..spec.audio)
                .map(|i| {
                    if spec.uniform_audio {
                        24
                    } else {
                        20 + (i * 13) % 17
                    }
                })
                .collect(),
            chunking: vec![10; spec.audio.div_ceil(10) as usize]
                .into_iter()
                .enumerate()
                .map(|(k, n)| n.min(spec.audio - 10 * k as u32))
                .collect(),
            video: false,
            uniform: spec.uniform_audio,
        });
    }
    let ftyp = atom(
        b"ftyp",
        &[b"isom".as_slice(), &512u32.to_be_bytes(), b"isomiso2mp41"].concat(),
    );
    // The mdat: chunks interleaved (video 0, audio 0, video 1, ...).
    let mut mdat_data = Vec::new();
    let mut offsets: Vec<Vec<u64>> = vec![Vec::new(); tracks.len()];
    let most = tracks.iter().map(|t| t.chunking.len()).max().unwrap_or(0);
    let mut next = vec![0u32; tracks.len()];
    for c in 0..most {
        for (k, t) in tracks.iter().enumerate() {
            let Some(&n) = t.chunking.get(c) else {
                continue;
            };
            offsets[k].push(mdat_data.len() as u64);
            for _ in 0..n {
                let i = next[k];
                mdat_data.extend(sample_bytes(t.id, i, t.sizes[i as usize]));
                next[k] += 1;
            }
        }
    }
    let mdat = atom(b"mdat", &mdat_data);
    // The moov's size does not depend on the offsets' values: build it once
    // to learn where mdat's data starts, then for real.
    let moov_len = moov(spec, &tracks, &offsets, 0).len() as u64;
    let base = ftyp.len() as u64 + if spec.moov_first { moov_len } else { 0 } + 8;
    let moov = moov(spec, &tracks, &offsets, base);
    let mut out = ftyp;
    if spec.moov_first {
        out.extend(moov);
        out.extend(mdat);
    } else {
        out.extend(mdat);
        out.extend(moov);
    }
    out
}

fn moov(spec: &Spec, tracks: &[Track], offsets: &[Vec<u64>], base: u64) -> Vec<u8> {
    let movie_ms = u64::from(spec.video) * 40;
    let mut mvhd = vec![0u8; 100];
    mvhd[12..16].copy_from_slice(&1000u32.to_be_bytes());
    mvhd[16..20].copy_from_slice(&(movie_ms as u32).to_be_bytes());
    mvhd[20..24].copy_from_slice(&0x0001_0000u32.to_be_bytes());
    mvhd[96..100].copy_from_slice(&3u32.to_be_bytes());
    let mut body = atom(b"mvhd", &mvhd);
    for (k, t) in tracks.iter().enumerate() {
        body.extend(trak(spec, t, &offsets[k], base));
    }
    body.extend(atom(b"udta", &atom(b"free", b"dropped by the cut")));
    atom(b"moov", &body)
}

fn trak(spec: &Spec, t: &Track, offsets: &[u64], base: u64) -> Vec<u8> {
    let n = t.sizes.len() as u32;
    let media = u64::from(n) * u64::from(t.delta);
    let movie = media * 1000 / u64::from(t.timescale);
    let mut tkhd = vec![0u8; 84];
    tkhd[3] = 3;
    tkhd[12..16].copy_from_slice(&u32::from(t.id).to_be_bytes());
    tkhd[20..24].copy_from_slice(&(movie as u32).to_be_bytes());
    let mut mdhd = vec![0u8; 24];
    mdhd[12..16].copy_from_slice(&t.timescale.to_be_bytes());
    mdhd[16..20].copy_from_slice(&(media as u32).to_be_bytes());
    mdhd[20..22].copy_from_slice(&0x55c4u16.to_be_bytes());
    let mut hdlr = vec![0u8; 25];
    hdlr[8..12].copy_from_slice(if t.video { b"vide" } else { b"soun" });
    let header = if t.video {
        atom(b"vmhd", &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    } else {
        atom(b"smhd", &[0; 8])
    };
    let dref = atom(
        b"dref",
        &[
            &[0u8, 0, 0, 0, 0, 0, 0, 1][..],
            &atom(b"url ", &[0, 0, 0, 1]),
        ]
        .concat(),
    );
    let entry = atom(if t.video { b"avc1" } else { b"mp4a" }, &[0u8; 8]);
    let stsd = atom(b"stsd", &[&[0u8, 0, 0, 0, 0, 0, 0, 1][..], &entry].concat());
    let stts = full(b"stts", &[[n, t.delta]], |r| {
        r.iter().flat_map(|v| v.to_be_bytes()).collect()
    });
    let mut stbl = [stsd, stts].concat();
    if t.video {
        let keys: Vec<u32> = (0..n)
            .step_by(spec.gop.max(1) as usize)
            .map(|i| i + 1)
            .collect();
        stbl.extend(full(b"stss", &keys, |v| v.to_be_bytes().to_vec()));
        // Composition offsets in runs of 1, 2 and 3 samples.
        let mut rows = Vec::new();
        let mut left = n;
        let mut k = 0u32;
        while left > 0 {
            let c = (k % 3 + 1).min(left);
            rows.push([c, (k % 4) * t.delta]);
            left -= c;
            k += 1;
        }
        stbl.extend(full(b"ctts", &rows, |r| {
            r.iter().flat_map(|v| v.to_be_bytes()).collect()
        }));
    }
    let mut runs: Vec<[u32; 3]> = Vec::new();
    for (c, &per) in t.chunking.iter().enumerate() {
        if runs.last().is_none_or(|r| r[1] != per) {
            runs.push([c as u32 + 1, per, 1]);
        }
    }
    stbl.extend(full(b"stsc", &runs, |r| {
        r.iter().flat_map(|v| v.to_be_bytes()).collect()
    }));
    let mut stsz = vec![0u8; 4];
    if t.uniform {
        stsz.extend(t.sizes[0].to_be_bytes());
        stsz.extend(n.to_be_bytes());
    } else {
        stsz.extend(0u32.to_be_bytes());
        stsz.extend(n.to_be_bytes());
        stsz.extend(t.sizes.iter().flat_map(|s| s.to_be_bytes()));
    }
    stbl.extend(atom(b"stsz", &stsz));
    let abs: Vec<u64> = offsets.iter().map(|o| o + base).collect();
    if spec.co64 {
        stbl.extend(full(b"co64", &abs, |v| v.to_be_bytes().to_vec()));
    } else {
        stbl.extend(full(b"stco", &abs, |v| (*v as u32).to_be_bytes().to_vec()));
    }
    let minf = atom(
        b"minf",
        &[header, atom(b"dinf", &dref), atom(b"stbl", &stbl)].concat(),
    );
    let mdia = atom(
        b"mdia",
        &[atom(b"mdhd", &mdhd), atom(b"hdlr", &hdlr), minf].concat(),
    );
    // An edit list the cut drops (nginx keeps no edts of the file's).
    let edts = atom(b"edts", &atom(b"elst", &[0u8; 8]));
    atom(b"trak", &[atom(b"tkhd", &tkhd), edts, mdia].concat())
}

fn atom(name: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = ((8 + data.len()) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(name);
    out.extend_from_slice(data);
    out
}

/// A full box with version 0, a count and `rows`.
fn full<T>(name: &[u8; 4], rows: &[T], bytes: impl Fn(&T) -> Vec<u8>) -> Vec<u8> {
    let mut data = vec![0u8; 4];
    data.extend((rows.len() as u32).to_be_bytes());
    for r in rows {
        data.extend(bytes(r));
    }
    atom(name, &data)
}
