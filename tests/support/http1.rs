//! Minimal HTTP/1.1 message framing shared by the test upstream and the raw
//! client: reading a message head, and reading bodies framed by
//! `Content-Length`, chunked transfer coding, or connection close.
//!
//! It is deliberately strict and small: tests want to see exactly what went
//! over the wire, so nothing is normalised except header-name lookups.

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt};

/// Largest accepted message head (start line plus headers).
const MAX_HEAD: usize = 64 * 1024;

/// Largest accepted body, to keep a misbehaving peer from eating memory.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// A parsed message head: the start line and the headers in wire order.
#[derive(Debug, Clone)]
pub struct Head {
    /// Request line or status line, without the CRLF.
    pub start_line: String,
    /// Header fields in the order received, names as sent.
    pub headers: Vec<(String, String)>,
}

/// Returns the first value of header `name` (case-insensitive).
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Whether any `name` header contains `token` in its comma-separated list
/// (case-insensitive), e.g. `Connection: keep-alive, Upgrade`.
pub fn has_token(headers: &[(String, String)], name: &str, token: &str) -> bool {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Reads one CRLF- (or LF-) terminated line, without the terminator.
/// Returns `None` on EOF before any byte.
async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    budget: &mut usize,
) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = (&mut *r)
        .take(*budget as u64 + 1)
        .read_until(b'\n', &mut buf)
        .await?;
    if n == 0 {
        return Ok(None);
    }
    if n > *budget {
        return Err(bad("message head too large"));
    }
    *budget -= n;
    if buf.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed mid-line",
        ));
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| bad("non-UTF-8 bytes in message head"))
}

/// Reads a message head. Returns `Ok(None)` if the peer closed the connection
/// cleanly before sending anything (the normal end of a keep-alive connection).
pub async fn read_head<R: AsyncBufRead + Unpin>(r: &mut R) -> io::Result<Option<Head>> {
    let mut budget = MAX_HEAD;
    let start_line = loop {
        match read_line(r, &mut budget).await? {
            None => return Ok(None),
            // Tolerate stray empty lines between messages (RFC 9112 §2.2).
            Some(line) if line.is_empty() => continue,
            Some(line) => break line,
        }
    };
    let mut headers = Vec::new();
    loop {
        let line = read_line(r, &mut budget)
            .await?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "EOF inside headers"))?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad(format!("malformed header line {line:?}")))?;
        if name.is_empty() || name.ends_with([' ', '\t']) {
            return Err(bad(format!("malformed header name in {line:?}")));
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    Ok(Some(Head {
        start_line,
        headers,
    }))
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body at all.
    Empty,
    /// Exactly this many bytes.
    Length(usize),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the peer closes (responses only).
    UntilClose,
}

/// Determines body framing from headers, per RFC 9112 §6.3. `default` is used
/// when neither `Transfer-Encoding` nor `Content-Length` is present.
pub fn body_kind(headers: &[(String, String)], default: BodyKind) -> io::Result<BodyKind> {
    if headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
    {
        return if has_token(headers, "transfer-encoding", "chunked") {
            Ok(BodyKind::Chunked)
        } else {
            Ok(BodyKind::UntilClose)
        };
    }
    let mut lengths = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .flat_map(|(_, v)| v.split(','))
        .map(|v| v.trim().parse::<usize>());
    match lengths.next() {
        None => Ok(default),
        Some(first) => {
            let first = first.map_err(|_| bad("invalid Content-Length"))?;
            for other in lengths {
                if other.ok() != Some(first) {
                    return Err(bad("conflicting Content-Length values"));
                }
            }
            Ok(BodyKind::Length(first))
        }
    }
}

/// Reads a body of the given kind. Trailers of a chunked body are discarded.
pub async fn read_body<R: AsyncBufRead + Unpin>(r: &mut R, kind: BodyKind) -> io::Result<Vec<u8>> {
    match kind {
        BodyKind::Empty => Ok(Vec::new()),
        BodyKind::Length(n) => {
            if n > MAX_BODY {
                return Err(bad("body too large"));
            }
            let mut body = vec![0; n];
            r.read_exact(&mut body).await?;
            Ok(body)
        }
        BodyKind::Chunked => read_chunked(r).await,
        BodyKind::UntilClose => {
            let mut body = Vec::new();
            (&mut *r)
                .take(MAX_BODY as u64)
                .read_to_end(&mut body)
                .await?;
            Ok(body)
        }
    }
}

async fn read_chunked<R: AsyncBufRead + Unpin>(r: &mut R) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let eof = || io::Error::new(io::ErrorKind::UnexpectedEof, "EOF inside chunked body");
    loop {
        let mut budget = MAX_HEAD;
        let line = read_line(r, &mut budget).await?.ok_or_else(eof)?;
        let size_hex = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| bad(format!("invalid chunk size line {line:?}")))?;
        if size == 0 {
            // Trailer section, ended by an empty line.
            loop {
                let trailer = read_line(r, &mut budget).await?.ok_or_else(eof)?;
                if trailer.is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(bad("body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..]).await?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf).await?;
        if &crlf != b"\r\n" {
            return Err(bad("chunk not followed by CRLF"));
        }
    }
}

/// Encodes `data` as a chunked body split into chunks of at most `chunk` bytes,
/// including the terminating zero-size chunk.
pub fn encode_chunked(data: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 32);
    for piece in data.chunks(chunk.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Reads one byte-ish probe to tell whether the peer has closed: returns true
/// on EOF (or a reset), false if data arrived (which is then lost to the caller).
pub async fn peer_closed<R: AsyncRead + Unpin>(r: &mut R) -> bool {
    let mut probe = [0u8; 1];
    !matches!(r.read(&mut probe).await, Ok(n) if n > 0)
}
