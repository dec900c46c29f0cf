use super::atoms::{Flow, be32, be64, walk};
use super::sample::{Spec, sample_bytes, synthetic};
use super::*;
use std::io::Write;

#[test]
fn times_parse_like_nginx() {
    assert_eq!(millis("1.5"), Some(1500));
    assert_eq!(millis("12"), Some(12000));
    assert_eq!(
        millis("0.0019"),
        Some(1),
        "digits past the third decimal are dropped"
    );
    assert_eq!(millis(".25"), Some(250));
    assert_eq!(millis("3."), Some(3000));
    for bad in [
        "",
        "1.2.3",
        "-1",
        "1e3",
        "abc",
        " 1",
        "99999999999999999999",
    ] {
        assert_eq!(millis(bad), None, "{bad:?}");
    }
}

#[test]
fn the_query_names_the_interval() {
    let at = |start, length| Some(Interval { start, length });
    assert_eq!(interval("start=2"), at(2000, 0));
    assert_eq!(interval("START=2.5&x=1"), at(2500, 0));
    assert_eq!(interval("end=5"), at(0, 5000));
    assert_eq!(interval("start=2&end=4.5"), at(2000, 2500));
    assert_eq!(
        interval("start=4&end=2"),
        at(4000, 0),
        "an end before the start: to the end"
    );
    assert_eq!(
        interval("start=x&end=3"),
        at(0, 3000),
        "a bad start with an end: from 0"
    );
    assert_eq!(interval("start=2&end=0"), at(2000, 0));
    assert_eq!(interval(""), None);
    assert_eq!(interval("end=0"), None);
    assert_eq!(interval("start=bad"), None);
    assert_eq!(interval("restart=2"), None);
}

/// Writes `bytes` to a temporary file and cuts it.
fn cut_bytes(bytes: &[u8], at: Interval, opts: &Options) -> Result<Option<Vec<u8>>, Mp4Error> {
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(bytes).unwrap();
    let len = bytes.len() as u64;
    Ok(cut(&f, len, at, opts)?.map(|c| {
        assert!(c.data.start <= c.data.end && c.data.end <= len);
        let mut out = c.head.clone();
        out.extend_from_slice(&bytes[c.data.start as usize..c.data.end as usize]);
        assert_eq!(out.len() as u64, c.len());
        out
    }))
}

/// One track of a file as a player would read it.
#[derive(Debug, Default)]
struct Read {
    id: u32,
    timescale: u32,
    media_duration: u64,
    samples: Vec<Vec<u8>>,
    sync: Vec<u32>,
    elst_media_time: Option<u64>,
}

/// Reads every track's samples through its tables (stsc, stsz, stco/co64).
fn read_tracks(file: &[u8]) -> Vec<Read> {
    let mut out = Vec::new();
    walk(file, |name, d| {
        if name == b"moov" {
            walk(d, |name, d| {
                if name == b"trak" {
                    out.push(read_trak(file, d));
                }
                Ok(Flow::Go)
            })?;
        }
        Ok(Flow::Go)
    })
    .unwrap();
    out
}

fn read_trak(file: &[u8], d: &[u8]) -> Read {
    let mut r = Read::default();
    let (mut stsc, mut sizes, mut offsets) = (Vec::new(), Vec::new(), Vec::new());
    let mut uniform = 0;
    fn nested<'a>(d: &'a [u8], f: &mut dyn FnMut(&[u8; 4], &'a [u8])) {
        walk(d, |name, b| {
            f(name, b);
            Ok(Flow::Go)
        })
        .unwrap();
    }
    let mut visit = |name: &[u8; 4], b: &[u8]| match name {
        b"tkhd" => r.id = be32(b, 12),
        b"mdhd" => {
            r.timescale = be32(b, 12);
            r.media_duration = u64::from(be32(b, 16));
        }
        b"elst" => r.elst_media_time = Some(be64(b, 16)),
        b"stss" => {
            r.sync = (0..be32(b, 4) as usize)
                .map(|i| be32(b, 8 + 4 * i))
                .collect()
        }
        b"stsc" => {
            stsc = (0..be32(b, 4) as usize)
                .map(|i| (be32(b, 8 + 12 * i), be32(b, 12 + 12 * i)))
                .collect()
        }
        b"stsz" => {
            uniform = be32(b, 4);
            sizes = (0..be32(b, 8) as usize)
                .map(|i| {
                    if uniform != 0 {
                        uniform
                    } else {
                        be32(b, 12 + 4 * i)
                    }
                })
                .collect()
        }
        b"stco" => {
            offsets = (0..be32(b, 4) as usize)
                .map(|i| u64::from(be32(b, 8 + 4 * i)))
                .collect()
        }
        b"co64" => {
            offsets = (0..be32(b, 4) as usize)
                .map(|i| be64(b, 8 + 8 * i))
                .collect()
        }
        _ => {}
    };
    let mut stack: Vec<&[u8]> = vec![d];
    while let Some(level) = stack.pop() {
        nested(level, &mut |name, b| {
            if matches!(name, b"mdia" | b"minf" | b"stbl" | b"edts") {
                stack.push(b);
            } else {
                visit(name, b);
            }
        });
    }
    // Samples per chunk from the stsc runs.
    let mut sample = 0usize;
    for (c, &offset) in offsets.iter().enumerate() {
        let chunk = c as u32 + 1;
        let per = stsc
            .iter()
            .rev()
            .find(|(first, _)| *first <= chunk)
            .map_or(0, |r| r.1);
        let mut at = offset as usize;
        for _ in 0..per {
            if sample >= sizes.len() {
                break;
            }
            let n = sizes[sample] as usize;
            r.samples.push(file[at..at + n].to_vec());
            at += n;
            sample += 1;
        }
    }
    r
}

/// Asserts that track `t` holds samples `first..first+count` of the file.
fn holds(t: &Read, first: u32, count: usize) {
    assert_eq!(t.samples.len(), count, "track {}: sample count", t.id);
    for (k, s) in t.samples.iter().enumerate() {
        let want = sample_bytes(t.id as u8, first + k as u32, s.len() as u32);
        assert_eq!(
            s,
            &want,
            "track {} sample {k} should be sample {}",
            t.id,
            first + k as u32
        );
    }
}

fn opts() -> Options {
    Options::default()
}

#[test]
fn no_cut_for_start_0_on_a_fast_start_file() {
    let file = synthetic(&Spec::default());
    let at = Interval {
        start: 0,
        length: 0,
    };
    assert!(cut_bytes(&file, at, &opts()).unwrap().is_none());
    // moov after mdat: start=0 moves the moov to the front.
    let late = synthetic(&Spec {
        moov_first: false,
        ..Spec::default()
    });
    let out = cut_bytes(&late, at, &opts()).unwrap().expect("cut");
    assert_eq!(&out[4..8], b"ftyp");
    let tracks = read_tracks(&out);
    holds(&tracks[0], 0, 250);
    holds(&tracks[1], 0, 469);
}

#[test]
fn start_keeps_the_samples_from_that_time() {
    for spec in [
        Spec::default(),
        Spec {
            co64: true,
            ..Spec::default()
        },
        Spec {
            moov_first: false,
            ..Spec::default()
        },
    ] {
        let file = synthetic(&spec);
        // 2 s: video sample 50 (25/s), audio sample 93 (2 * 48000 / 1024).
        let out = cut_bytes(
            &file,
            Interval {
                start: 2000,
                length: 0,
            },
            &opts(),
        )
        .unwrap()
        .expect("cut");
        let tracks = read_tracks(&out);
        assert_eq!(tracks.len(), 2, "{spec:?}");
        holds(&tracks[0], 50, 200);
        holds(&tracks[1], 93, 469 - 93);
        assert_eq!(tracks[0].media_duration, 200 * 512);
        // Sync samples renumbered from the new first sample (1-based).
        assert_eq!(tracks[0].sync[..3], [1, 26, 51]);
        assert!(out.len() < file.len());
        assert!(!out.windows(4).any(|w| w == b"udta"), "udta is dropped");
    }
}

#[test]
fn start_and_end_keep_an_interval_with_cuts_inside_chunks() {
    let file = synthetic(&Spec::default());
    // 1.3 s .. 3.9 s: video samples 32..97 (chunks of 4, 4, 5, 3 split at
    // both ends); audio from sample 60 (1.28 s) for 2.6 s of samples: 121,
    // as nginx counts the length from the first kept sample.
    let out = cut_bytes(
        &file,
        Interval {
            start: 1300,
            length: 2600,
        },
        &opts(),
    )
    .unwrap()
    .expect("cut");
    let tracks = read_tracks(&out);
    holds(&tracks[0], 32, 97 - 32);
    holds(&tracks[1], 60, 121);
    // Every start inside the file cuts to the right sample.
    for ms in (0..10_000).step_by(370) {
        let out = cut_bytes(
            &file,
            Interval {
                start: ms,
                length: 1000,
            },
            &opts(),
        )
        .unwrap()
        .expect("cut");
        let tracks = read_tracks(&out);
        let first = (ms * 25 / 1000) as u32;
        let last = (((ms + 1000) * 25 / 1000) as u32).min(250);
        holds(&tracks[0], first, (last - first) as usize);
    }
}

#[test]
fn start_key_frame_starts_on_the_key_frame_before() {
    let file = synthetic(&Spec::default());
    let o = Options {
        start_key_frame: true,
        ..opts()
    };
    // 2.3 s is video sample 57; the key frame before is 50.
    let out = cut_bytes(
        &file,
        Interval {
            start: 2300,
            length: 0,
        },
        &o,
    )
    .unwrap()
    .expect("cut");
    let tracks = read_tracks(&out);
    holds(&tracks[0], 50, 200);
    assert_eq!(tracks[0].sync[0], 1);
    // The edit list hides the 7 frames before 2.3 s.
    assert_eq!(tracks[0].elst_media_time, Some(7 * 512));
    assert_eq!(tracks[1].elst_media_time, None, "audio has no sync table");
}

#[test]
fn a_short_track_is_dropped_and_bad_input_is_an_error() {
    // Audio of 1 s, video of 10 s: from 5 s only the video is left.
    let file = synthetic(&Spec {
        audio: 40,
        ..Spec::default()
    });
    let out = cut_bytes(
        &file,
        Interval {
            start: 5000,
            length: 0,
        },
        &opts(),
    )
    .unwrap()
    .expect("cut");
    let tracks = read_tracks(&out);
    assert_eq!(tracks.len(), 1);
    holds(&tracks[0], 125, 125);
    // Past the end of the movie.
    let e = cut_bytes(
        &file,
        Interval {
            start: 20_000,
            length: 0,
        },
        &opts(),
    )
    .unwrap_err();
    assert!(e.0.contains("exceeds file duration"), "{e}");
    // A moov over max_buffer_size.
    let small = Options {
        buffer_size: 64,
        max_buffer_size: 128,
        ..opts()
    };
    let e = cut_bytes(
        &file,
        Interval {
            start: 1000,
            length: 0,
        },
        &small,
    )
    .unwrap_err();
    assert!(e.0.contains("mp4_max_buffer_size"), "{e}");
    // Truncated inside the moov; not an MP4 at all.
    let e = cut_bytes(
        &file[..600],
        Interval {
            start: 1000,
            length: 0,
        },
        &opts(),
    )
    .unwrap_err();
    assert!(
        e.0.contains("too large") || e.0.contains("truncated"),
        "{e}"
    );
    let e = cut_bytes(
        b"just some text, not a video",
        Interval {
            start: 1000,
            length: 0,
        },
        &opts(),
    )
    .unwrap_err();
    assert!(!e.0.is_empty());
}

#[test]
fn damaged_files_are_errors_or_cuts_never_a_panic() {
    // Deterministic damage (a small LCG) to the boxes and tables of a file
    // with every table kind: each cut must return, whatever it returns.
    let file = synthetic(&Spec {
        video: 60,
        audio: 50,
        ..Spec::default()
    });
    let moov_end = file.windows(4).position(|w| w == b"mdat").expect("mdat");
    let mut seed = 0x2545_f491_u64;
    let mut next = move || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (seed >> 33) as usize
    };
    for round in 0..1500 {
        let mut damaged = file.clone();
        for _ in 0..1 + round % 4 {
            let at = next() % moov_end;
            damaged[at] = match next() % 4 {
                0 => 0,
                1 => 0xff,
                2 => damaged[at].wrapping_add(1),
                _ => (next() % 256) as u8,
            };
        }
        let start = (next() % 3000) as u64;
        let length = [0, 500, 2000][next() % 3];
        for key in [false, true] {
            let o = Options {
                start_key_frame: key,
                ..opts()
            };
            let _ = cut_bytes(&damaged, Interval { start, length }, &o);
        }
    }
}
