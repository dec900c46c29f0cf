//! Compressing responses of routes with `compress:` (gzip, brotli, zstd),
//! and the precompressed siblings of `files:` routes.
//!
//! Why not Pingora's own module (`ResponseCompressionCtx`)? Installed as a
//! downstream module it costs every request of every route a boxed context
//! and filter calls (`init_downstream_modules` installs nothing, on
//! purpose). Used directly, it still lacks what this needs: it ignores
//! q-values (`gzip;q=0` would get gzip), its type list and minimum length
//! are fixed, and it does not flush per chunk, so Server-Sent Events would
//! sit in the encoder until enough text piled up. The encoders below are
//! the same crates Pingora builds (flate2 on zlib-rs, brotli, zstd): a
//! route that compresses keeps one [`Encoder`] in its request ctx, made in
//! `response_filter` (or by `files::send`), fed by `response_body_filter`;
//! every other route pays one `Option` check.
//!
//! Each upstream chunk is compressed and flushed at once (a sync flush:
//! zlib's `Z_SYNC_FLUSH`, brotli's `FLUSH`, a zstd block end), so a stream
//! reaches the client as it reaches greenlight, event by event; a flush
//! per chunk costs a few bytes per chunk, not per event.
//!
//! Never compressed, whatever the config (as nginx's gzip filter): a HEAD,
//! an HTTP/1.0 request (no chunked framing; nginx's `gzip_http_version
//! 1.1`), statuses other than 200/403/404 (so never 101, 204, 206, 304), a
//! response that has a `Content-Encoding` or `Content-Range` already, or
//! says `Cache-Control: no-transform`. A compressed response loses
//! `Content-Length` and `Accept-Ranges`, and its strong ETag becomes weak.

use super::RequestCtx;
use crate::plan::compress::{Coding, Compress, Levels, negotiate};
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use std::io::Write;

/// One response's encoder; output is taken after each chunk.
pub(super) struct Encoder {
    inner: Option<Inner>,
}

enum Inner {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Br(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

/// Brotli's window (log2 bytes): 512 KiB, ngx_brotli's `brotli_window`
/// default; brotli's own 4 MiB would cost each compressed answer megabytes.
const BROTLI_LGWIN: u32 = 19;
/// Brotli's internal buffer.
const BROTLI_BUFFER: usize = 16 * 1024;

impl Encoder {
    /// An encoder for `coding` at the configured level.
    pub(super) fn new(coding: Coding, levels: &Levels) -> std::io::Result<Encoder> {
        let inner = match coding {
            Coding::Gzip => Inner::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(levels.gzip),
            )),
            Coding::Br => Inner::Br(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                BROTLI_BUFFER,
                levels.br,
                BROTLI_LGWIN,
            ))),
            Coding::Zstd => {
                Inner::Zstd(zstd::stream::write::Encoder::new(Vec::new(), levels.zstd)?)
            }
        };
        Ok(Encoder { inner: Some(inner) })
    }

    /// Compresses `input` and returns what is ready: everything given so
    /// far (flushed) or, at `end`, the rest and the coding's trailer.
    pub(super) fn encode(&mut self, input: &[u8], end: bool) -> std::io::Result<Bytes> {
        let Some(inner) = self.inner.as_mut() else {
            return Ok(Bytes::new());
        };
        if !input.is_empty() {
            match inner {
                Inner::Gzip(e) => e.write_all(input)?,
                Inner::Br(e) => e.write_all(input)?,
                Inner::Zstd(e) => e.write_all(input)?,
            }
        }
        if end {
            let out = match self.inner.take().expect("checked above") {
                Inner::Gzip(e) => e.finish()?,
                Inner::Br(e) => e.into_inner(),
                Inner::Zstd(e) => e.finish()?,
            };
            return Ok(Bytes::from(out));
        }
        if input.is_empty() {
            return Ok(Bytes::new());
        }
        let buf = match inner {
            Inner::Gzip(e) => {
                e.flush()?;
                e.get_mut()
            }
            Inner::Br(e) => {
                e.flush()?;
                e.get_mut()
            }
            Inner::Zstd(e) => {
                e.flush()?;
                e.get_mut()
            }
        };
        Ok(Bytes::from(std::mem::take(buf)))
    }
}

/// The `compress:` of the request's route, if it has one.
fn compress_of(ctx: &RequestCtx) -> Option<&Compress> {
    let snap = ctx.snapshot.as_deref()?;
    snap.config
        .sites
        .get(ctx.site?)?
        .routes
        .get(ctx.route?)?
        .plan
        .compress()
}

/// Adds `Vary: Accept-Encoding` unless the response varies on it already.
fn add_vary(resp: &mut ResponseHeader) -> Result<()> {
    let has = resp.headers.get_all(http::header::VARY).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|t| t.trim() == "*" || t.trim().eq_ignore_ascii_case("accept-encoding"))
        })
    });
    if !has {
        resp.append_header(http::header::VARY, "Accept-Encoding")?;
    }
    Ok(())
}

/// Whether this response may be compressed at all (see the module header).
fn transformable(req: &RequestHeader, resp: &ResponseHeader, end: bool) -> bool {
    let h = &resp.headers;
    // An empty body stays empty (a coding's frame around nothing is not).
    let empty = h
        .get(http::header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() == b"0");
    !end && !empty
        && req.method != http::Method::HEAD
        && req.version >= http::Version::HTTP_11
        && matches!(resp.status.as_u16(), 200 | 403 | 404)
        && h.get(http::header::CONTENT_ENCODING)
            .is_none_or(|v| v.as_bytes().is_empty())
        && !h.contains_key(http::header::CONTENT_RANGE)
        && !h.get_all(http::header::CACHE_CONTROL).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.to_ascii_lowercase().contains("no-transform"))
        })
}

/// Decides for one response: when it will be compressed, adjusts its
/// header and returns the encoder; `end` says the response has no body.
pub(super) fn start(
    c: &Compress,
    req: &RequestHeader,
    resp: &mut ResponseHeader,
    end: bool,
) -> Result<Option<Box<Encoder>>> {
    if c.codings.is_empty() || !transformable(req, resp, end) {
        return Ok(None);
    }
    let h = &resp.headers;
    if !c.type_ok(h.get(http::header::CONTENT_TYPE).map(|v| v.as_bytes()))
        || !c.length_ok(h.get(http::header::CONTENT_LENGTH).map(|v| v.as_bytes()))
    {
        return Ok(None);
    }
    // From here the answer depends on Accept-Encoding, taken or not.
    add_vary(resp)?;
    let accept = req
        .headers
        .get(http::header::ACCEPT_ENCODING)
        .map(|v| v.as_bytes());
    let Some(coding) = negotiate(accept, &c.codings) else {
        return Ok(None);
    };
    let encoder = Encoder::new(coding, &c.levels)
        .map_err(|e| Error::because(ErrorType::InternalError, "starting a compressor", e))?;
    resp.insert_header(http::header::CONTENT_ENCODING, coding.token())?;
    resp.remove_header(&http::header::CONTENT_LENGTH);
    resp.remove_header(&http::header::ACCEPT_RANGES);
    // The length is known at the end only: chunked on HTTP/1.1 (Pingora's
    // HTTP/2 side drops this and frames the body itself).
    resp.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
    // RFC 9110 §8.8.1: another representation, so the validator is weak
    // (as nginx does); an ETag that is not a quoted string is dropped.
    if let Some(etag) = resp.headers.get(http::header::ETAG) {
        let b = etag.as_bytes();
        if b.starts_with(b"\"") {
            let weak = http::HeaderValue::from_bytes(&[b"W/", b].concat())
                .map_err(|e| Error::because(ErrorType::InternalError, "weak etag", e))?;
            resp.insert_header(http::header::ETAG, weak)?;
        } else if !b.starts_with(b"W/") {
            resp.remove_header(&http::header::ETAG);
        }
    }
    Ok(Some(Box::new(encoder)))
}

/// `response_filter` of a proxied response: starts compressing it when
/// its route compresses and the response qualifies.
pub(super) fn proxied(
    session: &Session,
    resp: &mut ResponseHeader,
    ctx: &mut RequestCtx,
) -> Result<()> {
    let Some(c) = compress_of(ctx) else {
        return Ok(());
    };
    // A 1xx is not the final answer; a 101 is checked by status in `start`.
    if resp.status.is_informational() {
        return Ok(());
    }
    let encoder = start(c, session.req_header(), resp, false)?;
    ctx.encoder = encoder;
    Ok(())
}

/// `response_body_filter`: replaces a chunk by its compressed form.
pub(super) fn body(encoder: &mut Encoder, body: &mut Option<Bytes>, end: bool) -> Result<()> {
    let input = body.as_deref().unwrap_or(&[]);
    let out = encoder
        .encode(input, end)
        .map_err(|e| Error::because(ErrorType::InternalError, "compressing a response", e))?;
    // An empty chunk would read as the end of a chunked body.
    *body = (!out.is_empty()).then_some(out);
    Ok(())
}

/// A precompressed sibling of `path` the client takes, when the route
/// serves them: its coding, the opened file and what `stat` said of it.
pub(super) fn sibling(
    session: &Session,
    ctx: &RequestCtx,
    path: &std::path::Path,
) -> std::io::Result<Option<(Coding, std::fs::File, std::fs::Metadata)>> {
    let Some(c) = compress_of(ctx).filter(|c| !c.precompressed.is_empty()) else {
        return Ok(None);
    };
    let Some(root) = ctx
        .snapshot
        .as_deref()
        .and_then(|s| super::steps::files_of(s, ctx))
        .map(|f| f.dir())
    else {
        return Ok(None);
    };
    let accept = session
        .req_header()
        .headers
        .get(http::header::ACCEPT_ENCODING)
        .map(|v| v.as_bytes());
    let mut left: Vec<Coding> = c.precompressed.to_vec();
    // At most one try per coding: the client's best that exists wins.
    while let Some(coding) = negotiate(accept, &left) {
        let mut name = path.as_os_str().to_owned();
        name.push(coding.suffix());
        if let Some((f, m)) = super::files::open_inside(root, std::path::Path::new(&name))? {
            return Ok(Some((coding, f, m)));
        }
        left.retain(|c| *c != coding);
    }
    Ok(None)
}

/// The header of a file answer (`files::send`): marks a precompressed
/// sibling, adds `Vary`, and starts on-the-fly compression when it applies.
pub(super) fn file_answer(
    session: &Session,
    ctx: &RequestCtx,
    resp: &mut ResponseHeader,
    sibling: Option<Coding>,
    end: bool,
) -> Result<Option<Box<Encoder>>> {
    let Some(c) = compress_of(ctx) else {
        return Ok(None);
    };
    if let Some(coding) = sibling {
        resp.insert_header(http::header::CONTENT_ENCODING, coding.token())?;
    }
    if !c.precompressed.is_empty() && resp.status.as_u16() != 304 {
        add_vary(resp)?;
    }
    start(c, session.req_header(), resp, end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn decode(coding: Coding, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match coding {
            Coding::Gzip => {
                flate2::read::GzDecoder::new(data)
                    .read_to_end(&mut out)
                    .expect("gzip");
            }
            Coding::Br => {
                brotli::Decompressor::new(data, 4096)
                    .read_to_end(&mut out)
                    .expect("br");
            }
            Coding::Zstd => out = zstd::decode_all(data).expect("zstd"),
        }
        out
    }

    #[test]
    fn each_chunk_is_decodable_as_soon_as_it_is_out() {
        for coding in Coding::ALL {
            let mut e = Encoder::new(coding, &Levels::default()).expect("encoder");
            let first = e.encode(b"data: one\n\n", false).expect("encode");
            assert!(!first.is_empty(), "{coding:?}: flushed at once");
            // A streaming decoder sees the first event from the first chunk alone.
            let mut seen = Vec::new();
            match coding {
                Coding::Gzip => {
                    let mut d = flate2::write::GzDecoder::new(Vec::new());
                    d.write_all(&first).expect("gz");
                    d.flush().expect("gz flush");
                    seen = d.get_ref().clone();
                }
                Coding::Br => {
                    let mut d = brotli::DecompressorWriter::new(Vec::new(), 4096);
                    d.write_all(&first).expect("br");
                    d.flush().expect("br flush");
                    seen = d.get_ref().clone();
                }
                Coding::Zstd => {
                    let mut d = zstd::stream::write::Decoder::new(&mut seen).expect("zstd");
                    d.write_all(&first).expect("zstd");
                    d.flush().expect("zstd flush");
                }
            }
            assert_eq!(seen, b"data: one\n\n", "{coding:?}");
            let mut all = first.to_vec();
            all.extend_from_slice(&e.encode(b"data: two\n\n", false).expect("encode"));
            all.extend_from_slice(&e.encode(&[], true).expect("finish"));
            assert_eq!(decode(coding, &all), b"data: one\n\ndata: two\n\n");
            assert!(e.encode(b"late", true).expect("after end").is_empty());
        }
    }

    fn response(status: u16, headers: &[(&'static str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::build(status, None).expect("resp");
        for (k, v) in headers {
            r.append_header(*k, *v).expect("header");
        }
        r
    }

    fn request(method: &str, ae: Option<&str>) -> RequestHeader {
        let mut r = RequestHeader::build(method, b"/", None).expect("req");
        if let Some(ae) = ae {
            r.insert_header("accept-encoding", ae).expect("ae");
        }
        r
    }

    #[test]
    fn a_compressed_answer_loses_its_length_and_its_strong_etag() {
        let c = Compress::default();
        let mut resp = response(
            200,
            &[
                ("content-type", "text/html"),
                ("content-length", "5000"),
                ("accept-ranges", "bytes"),
                ("etag", "\"abc\""),
                ("vary", "Origin"),
            ],
        );
        let e = start(&c, &request("GET", Some("gzip")), &mut resp, false).expect("start");
        assert!(e.is_some());
        let h = &resp.headers;
        assert_eq!(h["content-encoding"], "gzip");
        assert!(h.get("content-length").is_none());
        assert!(h.get("accept-ranges").is_none());
        assert_eq!(h["etag"], "W/\"abc\"");
        let vary: Vec<_> = h.get_all("vary").iter().collect();
        assert_eq!(vary, ["Origin", "Accept-Encoding"]);
    }

    #[test]
    fn what_is_never_compressed() {
        let c = Compress::default();
        let html = [("content-type", "text/html"), ("content-length", "5000")];
        let gz = Some("gzip");
        let none = |req: RequestHeader, status: u16, extra: &[(&'static str, &str)], end: bool| {
            let mut h = html.to_vec();
            h.extend_from_slice(extra);
            let mut resp = response(status, &h);
            start(&c, &req, &mut resp, end).expect("start").is_none()
        };
        assert!(none(request("HEAD", gz), 200, &[], false), "HEAD");
        assert!(none(request("GET", gz), 200, &[], true), "no body");
        let zero = Compress {
            min_length: 0,
            ..Compress::default()
        };
        let mut empty = response(
            200,
            &[("content-type", "text/html"), ("content-length", "0")],
        );
        let e = start(&zero, &request("GET", gz), &mut empty, false).expect("start");
        assert!(e.is_none(), "an empty body");
        for status in [101, 204, 206, 301, 304, 500] {
            assert!(none(request("GET", gz), status, &[], false), "{status}");
        }
        let enc = [("content-encoding", "br")];
        assert!(
            none(request("GET", gz), 200, &enc, false),
            "encoded already"
        );
        let range = [("content-range", "bytes 0-9/5000")];
        assert!(none(request("GET", gz), 200, &range, false), "a range");
        let nt = [("cache-control", "public, No-Transform")];
        assert!(none(request("GET", gz), 200, &nt, false), "no-transform");
        let mut old = request("GET", gz);
        old.set_version(http::Version::HTTP_10);
        assert!(none(old, 200, &[], false), "HTTP/1.0");
        assert!(none(request("GET", None), 200, &[], false), "not accepted");
        let mut small = response(
            200,
            &[("content-type", "text/html"), ("content-length", "19")],
        );
        assert!(
            start(&c, &request("GET", gz), &mut small, false)
                .expect("s")
                .is_none()
        );
        assert!(
            small.headers.get("vary").is_none(),
            "too short: does not vary"
        );
        let mut png = response(200, &[("content-type", "image/png")]);
        assert!(
            start(&c, &request("GET", gz), &mut png, false)
                .expect("s")
                .is_none()
        );
        let mut refused = response(200, &html);
        assert!(
            start(&c, &request("GET", Some("gzip;q=0")), &mut refused, false)
                .expect("s")
                .is_none()
        );
        assert_eq!(
            refused.headers["vary"], "Accept-Encoding",
            "it varies all the same"
        );
        let mut stream = response(200, &[("content-type", "text/event-stream")]);
        assert!(
            start(&c, &request("GET", Some("br")), &mut stream, false)
                .expect("s")
                .is_some(),
            "no length: compressed"
        );
    }
}
