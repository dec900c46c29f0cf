"""A synthetic MP4 for the `mp4` probes: nginx's mp4 module and
greenlight's `files: {mp4: true}` cut it at `?start=`/`&end=`, and the
harness compares the two answers byte for byte.

Part of bench/nginx-parity (README.md there: "Static files"). Not a
playable video — neither side decodes samples — but every table the cut
rewrites is there: a video track (25 samples/s, a key frame every 25,
composition offsets, chunks of 4, 4, 5, 3 samples), an audio track
(48 kHz, 1024 samples per frame, chunks of 10), interleaved in one `mdat`;
`udta` and `edts` boxes the cut drops. Deterministic: the same bytes every
run.
"""
import struct


def _box(name, *parts):
    data = b"".join(parts)
    return struct.pack(">I", 8 + len(data)) + name + data


def _full(name, rows, fmt):
    """A version-0 table box: flags, count, rows packed with fmt."""
    return _box(name, struct.pack(">II", 0, len(rows)),
                b"".join(struct.pack(fmt, *(r if isinstance(r, tuple) else (r,))) for r in rows))


def _chunks(n, pattern):
    out, k = [], 0
    while n > 0:
        c = min(pattern[k % len(pattern)], n)
        out.append(c)
        n -= c
        k += 1
    return out


def _tracks(video, audio):
    vid = {"id": 1, "scale": 12800, "delta": 512, "video": True,
           "sizes": [60 + (i * 37) % 90 for i in range(video)], "chunks": _chunks(video, [4, 4, 5, 3])}
    aud = {"id": 2, "scale": 48000, "delta": 1024, "video": False,
           "sizes": [20 + (i * 13) % 17 for i in range(audio)], "chunks": _chunks(audio, [10])}
    return [vid, aud] if audio else [vid]


def _sample(tid, i, size):
    tag = bytes([tid]) + struct.pack(">I", i)
    return (tag * (size // 5 + 1))[:size]


def _trak(t, offsets, co64):
    n = len(t["sizes"])
    media = n * t["delta"]
    tkhd = bytearray(84)
    tkhd[3] = 3
    struct.pack_into(">I", tkhd, 12, t["id"])
    struct.pack_into(">I", tkhd, 20, media * 1000 // t["scale"])
    mdhd = bytearray(24)
    struct.pack_into(">II", mdhd, 12, t["scale"], media)
    struct.pack_into(">H", mdhd, 20, 0x55C4)
    hdlr = bytearray(25)
    hdlr[8:12] = b"vide" if t["video"] else b"soun"
    media_header = _box(b"vmhd", bytes([0, 0, 0, 1]) + bytes(8)) if t["video"] else _box(b"smhd", bytes(8))
    dinf = _box(b"dinf", _box(b"dref", struct.pack(">II", 0, 1), _box(b"url ", bytes([0, 0, 0, 1]))))
    stsd = _box(b"stsd", struct.pack(">II", 0, 1), _box(b"avc1" if t["video"] else b"mp4a", bytes(8)))
    stbl = [stsd, _full(b"stts", [(n, t["delta"])], ">II")]
    if t["video"]:
        stbl.append(_full(b"stss", [i + 1 for i in range(0, n, 25)], ">I"))
        rows, left, k = [], n, 0
        while left > 0:
            c = min(k % 3 + 1, left)
            rows.append((c, (k % 4) * t["delta"]))
            left -= c
            k += 1
        stbl.append(_full(b"ctts", rows, ">II"))
    runs = []
    for c, per in enumerate(t["chunks"]):
        if not runs or runs[-1][1] != per:
            runs.append((c + 1, per, 1))
    stbl.append(_full(b"stsc", runs, ">III"))
    stbl.append(_box(b"stsz", struct.pack(">III", 0, 0, n), b"".join(struct.pack(">I", s) for s in t["sizes"])))
    stbl.append(_full(b"co64", offsets, ">Q") if co64 else _full(b"stco", offsets, ">I"))
    minf = _box(b"minf", media_header, dinf, _box(b"stbl", *stbl))
    mdia = _box(b"mdia", _box(b"mdhd", bytes(mdhd)), _box(b"hdlr", bytes(hdlr)), minf)
    return _box(b"trak", _box(b"tkhd", bytes(tkhd)), _box(b"edts", _box(b"elst", bytes(8))), mdia)


def synthetic(video=250, audio=469, moov_first=True, co64=False):
    """The file's bytes."""
    tracks = _tracks(video, audio)
    ftyp = _box(b"ftyp", b"isom", struct.pack(">I", 512), b"isomiso2mp41")
    data, rel = bytearray(), [[] for _ in tracks]
    nxt = [0] * len(tracks)
    for c in range(max(len(t["chunks"]) for t in tracks)):
        for k, t in enumerate(tracks):
            if c >= len(t["chunks"]):
                continue
            rel[k].append(len(data))
            for _ in range(t["chunks"][c]):
                i = nxt[k]
                data += _sample(t["id"], i, t["sizes"][i])
                nxt[k] += 1

    def moov(base):
        mvhd = bytearray(100)
        struct.pack_into(">III", mvhd, 12, 1000, video * 40, 0x10000)
        struct.pack_into(">I", mvhd, 96, 3)
        traks = [_trak(t, [o + base for o in rel[k]], co64) for k, t in enumerate(tracks)]
        return _box(b"moov", _box(b"mvhd", bytes(mvhd)), *traks, _box(b"udta", _box(b"free", b"dropped")))

    base = len(ftyp) + (len(moov(0)) if moov_first else 0) + 8
    mdat = _box(b"mdat", bytes(data))
    return ftyp + (moov(base) + mdat if moov_first else mdat + moov(base))


# name -> bytes, written into every served directory of a location with `mp4`
FILES = {
    "parity.mp4": synthetic(),
    "parity-late.mp4": synthetic(moov_first=False),
    "parity-co64.mp4": synthetic(video=120, audio=0, co64=True),
}
