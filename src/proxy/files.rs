//! Serving a `files:` route: finding the file (nginx's `root`/`alias`,
//! `index`, `try_files` order, through [`Files::map`]), then answering with
//! `http_serve`, which does conditional requests (ETag, If-None-Match,
//! If-Modified-Since, If-Range → 304/412), byte ranges (206, multipart,
//! 416) and HEAD. How the body goes out: on plain HTTP/1 a body over
//! [`INLINE`] is handed to the kernel with sendfile(2) (nginx's `sendfile
//! on`; a vendored pingora-core addition, `write_body_file`), no byte
//! through user space. Otherwise (TLS, h2, compression, multipart ranges)
//! the file is read in 64 KiB chunks on the blocking pool as the client
//! takes them: never whole into memory, and HTTP/2 flow control holds the
//! reads back through Pingora's body writes. A body up to [`INLINE`] is read
//! on the request's thread. Finding the file (stat, open) runs inline, as in
//! nginx without `aio threads`.
//!
//! The ETag is nginx's (`"<mtime hex>-<size hex>"`), so caches primed by
//! nginx stay valid after a switch. A path that is a directory without its
//! trailing `/` gets nginx's 301 to the path with it.

use super::RequestCtx;
use crate::plan::files::{Fallback, Files};
use crate::plan::vars::VarCx;
use bytes::Bytes;
use futures_util::stream::{self, Stream, StreamExt};
use http_body_util::BodyExt;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

/// Bytes read from disk per body chunk.
const CHUNK: u64 = 64 * 1024;

/// A body up to this size is read on the request's own thread (one
/// `pread` of a page-cached file costs less than handing it to the blocking
/// pool and back, as nginx reads without `aio threads`) and, on plain
/// HTTP/1, written with the header in one `write`; a larger one goes by
/// sendfile(2) where the connection allows it.
const INLINE: u64 = 16 * 1024;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the lookup found.
enum Found {
    /// A regular file, opened.
    File(Box<Opened>),
    /// A directory named without its trailing slash: 301 to `path/`.
    AddSlash,
    /// An answer by status (404, 403, or try_files' `=CODE`).
    Status(u16),
    /// try_files' `@name`: the named route (its index) answers.
    Named(usize),
    /// try_files' last path: nginx's internal redirect to it.
    Internal(String),
    /// A directory without index file under `autoindex`: its listing.
    Listing(String),
}

/// A file found and opened, with what `stat` said of it.
pub(super) struct Opened {
    path: PathBuf,
    file: File,
    meta: std::fs::Metadata,
    /// On an `mp4` route: its options, and the interval the query asks for.
    mp4: Option<(crate::mp4::Options, Option<crate::mp4::Interval>)>,
}

/// One answer from a file as `http_serve` sees it: `head` (bytes built in
/// memory: the new boxes of a cut MP4; usually empty) then the file's bytes
/// from offset `at`, `len` bytes in all.
struct Entity {
    file: Arc<File>,
    head: Bytes,
    at: u64,
    len: u64,
    mtime: SystemTime,
    content_type: http::HeaderValue,
}

impl http_serve::Entity for Entity {
    type Error = BoxError;
    type Data = Bytes;

    fn len(&self) -> u64 {
        self.len
    }

    fn get_range(
        &self,
        range: std::ops::Range<u64>,
    ) -> Pin<Box<dyn Stream<Item = Result<Bytes, BoxError>> + Send + Sync>> {
        let head_len = self.head.len() as u64;
        let in_file = self.at + range.start.max(head_len) - head_len
            ..self.at + range.end.max(head_len) - head_len;
        let file = file_chunks(Arc::clone(&self.file), in_file);
        if range.start >= head_len {
            return file;
        }
        let from_head = self
            .head
            .slice(range.start as usize..range.end.min(head_len) as usize);
        Box::pin(stream::iter([Ok(from_head)]).chain(file))
    }

    fn add_headers(&self, h: &mut http::HeaderMap) {
        h.insert(http::header::CONTENT_TYPE, self.content_type.clone());
    }

    fn etag(&self) -> Option<http::HeaderValue> {
        let secs = self
            .mtime
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        http::HeaderValue::from_str(&format!("\"{secs:x}-{:x}\"", self.len)).ok()
    }

    fn last_modified(&self) -> Option<SystemTime> {
        Some(self.mtime)
    }
}

/// The file's bytes `range`, read in [`CHUNK`]s as the body is taken.
fn file_chunks(
    file: Arc<File>,
    range: std::ops::Range<u64>,
) -> Pin<Box<dyn Stream<Item = Result<Bytes, BoxError>> + Send + Sync>> {
    Box::pin(stream::unfold((range, file), |(left, file)| async move {
        if left.start >= left.end {
            return None;
        }
        let n = (left.end - left.start).min(CHUNK) as usize;
        let f = Arc::clone(&file);
        let at = left.start;
        let read_chunk = move || {
            let mut buf = vec![0u8; n];
            let got = f.read_at(&mut buf, at)?;
            buf.truncate(got);
            Ok::<_, std::io::Error>(buf)
        };
        let read = if n as u64 <= INLINE {
            Ok(read_chunk())
        } else {
            tokio::task::spawn_blocking(read_chunk).await
        };
        let item = match read {
            Ok(Ok(buf)) if !buf.is_empty() => buf,
            Ok(Ok(_)) => {
                // The file shrank while being sent: end the body short
                // (the client sees a truncated response, not a hang).
                return Some((Err("file shorter than when opened".into()), (at..at, file)));
            }
            Ok(Err(e)) => return Some((Err(e.into()), (at..at, file))),
            Err(e) => return Some((Err(e.into()), (at..at, file))),
        };
        let next = at + item.len() as u64..left.end;
        Some((Ok(Bytes::from(item)), (next, file)))
    }))
}

/// Opens `path` if it is a regular file inside `root` (symlinks resolved);
/// `Ok(None)` when it does not exist or is not a file.
pub(super) fn open_inside(
    root: &Path,
    path: &Path,
) -> std::io::Result<Option<(File, std::fs::Metadata)>> {
    let meta = match std::fs::metadata(path) {
        Ok(m) if m.is_file() => m,
        Ok(_) => return Ok(None),
        Err(e) if is_missing(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    // Both resolved per request, on purpose: deploys swap a symlinked root
    // (`/srv/current` -> `releases/N`) and must take effect at once.
    let real = path.canonicalize()?;
    let real_root = root.canonicalize()?;
    if !real.starts_with(&real_root) {
        log::warn!(
            "refused {}: it resolves to {}, outside {}",
            path.display(),
            real.display(),
            real_root.display()
        );
        return Ok(None);
    }
    Ok(Some((File::open(&real)?, meta)))
}

fn opened(path: PathBuf, file: File, meta: std::fs::Metadata) -> Box<Opened> {
    Box::new(Opened {
        path,
        file,
        meta,
        mp4: None,
    })
}

fn is_missing(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    )
}

/// The first index file of directory `dir`.
fn index_in(
    files: &Files,
    dir: &Path,
) -> std::io::Result<Option<(PathBuf, File, std::fs::Metadata)>> {
    for name in files.index.iter() {
        let p = dir.join(name.as_ref());
        if let Some((f, m)) = open_inside(files.dir(), &p)? {
            return Ok(Some((p, f, m)));
        }
    }
    Ok(None)
}

/// A directory without index file: its listing under `autoindex`, else
/// nginx's 403.
fn no_index(files: &Files, dir: &Path, uri: &str) -> std::io::Result<Found> {
    if !files.autoindex {
        return Ok(Found::Status(403));
    }
    super::autoindex::render(files.dir(), dir, uri).map(Found::Listing)
}

/// nginx's lookup for one request path (no `try_files`).
fn lookup(files: &Files, cx: &VarCx<'_>) -> std::io::Result<Found> {
    let uri = cx.uri;
    let Ok(path) = files.map_request(uri, cx) else {
        return Ok(Found::Status(404));
    };
    if uri.ends_with('/') {
        return Ok(match index_in(files, &path)? {
            Some((p, f, m)) => Found::File(opened(p, f, m)),
            None if path.is_dir() => no_index(files, &path, uri)?,
            None => Found::Status(404),
        });
    }
    if let Some((f, m)) = open_inside(files.dir(), &path)? {
        return Ok(Found::File(opened(path, f, m)));
    }
    Ok(if path.is_dir() {
        Found::AddSlash
    } else {
        Found::Status(404)
    })
}

/// Whether a `try_files` candidate tests a directory (written with a
/// trailing `/`, as `$uri/`): what the template says, not what a request
/// path ending in `/` renders `$uri` to.
fn names_dir(t: &crate::plan::template::Template) -> bool {
    matches!(
        t.segments().last(),
        Some(crate::plan::template::Segment::Literal(l)) if l.ends_with('/')
    )
}

/// nginx's `try_files`: candidates in order, then the fallback.
fn try_files(files: &Files, cx: &VarCx<'_>) -> std::io::Result<Found> {
    let Some(tf) = &files.try_files else {
        return lookup(files, cx);
    };
    for c in tf.candidates.iter() {
        let uri = c.render(cx);
        let Ok(path) = files.map(&uri) else { continue };
        if names_dir(c) {
            // nginx: `$uri/` matches an existing directory: named without
            // its slash, the 301 adding it; else its index file, listing or
            // 403 (no further candidate is tried).
            if path.is_dir() {
                if !cx.uri.ends_with('/') {
                    return Ok(Found::AddSlash);
                }
                return Ok(match index_in(files, &path)? {
                    Some((p, f, m)) => Found::File(opened(p, f, m)),
                    None => no_index(files, &path, cx.uri)?,
                });
            }
        } else if let Some((f, m)) = open_inside(files.dir(), &path)? {
            return Ok(Found::File(opened(path, f, m)));
        }
    }
    match &tf.fallback {
        Fallback::Status(n) => Ok(Found::Status(*n)),
        // Linked at load (validate refuses an unknown name).
        Fallback::Named(n) => Ok(n
            .route
            .get()
            .map_or(Found::Status(500), |r| Found::Named(*r))),
        // nginx routes the request again with this path (its location's
        // own steps, `expires`, or its upstream then apply).
        Fallback::Path(t) => Ok(Found::Internal(t.render(cx))),
    }
}

/// What a `files:` route answers, found before anything is written.
pub(super) enum Outcome {
    /// Send this file.
    File(Box<Opened>),
    /// 301 to this location (a directory named without its `/`).
    Redirect(String),
    /// Answer this status with its short page.
    Status(u16),
    /// Hand the request to the site's named route (this index).
    Named(usize),
    /// Route the request again with this path (and `?query`, if any).
    Internal(String),
    /// A directory listing (HTML).
    Listing(String),
}

/// Looks the request up in `files` (method checked first).
pub(super) fn find(files: &Files, cx: &VarCx<'_>) -> Outcome {
    let read = cx.req.method == http::Method::GET || cx.req.method == http::Method::HEAD;
    // With a named fallback, nginx looks for the file whatever the method:
    // what is not a file (`POST /api/login`) goes on to the app.
    if !read && files.named_fallback().is_none() {
        return Outcome::Status(405);
    }
    // stat/open inline, as nginx does without `aio threads`: local-disk
    // metadata calls are short; the reads themselves go to the blocking pool.
    match try_files(files, cx) {
        Ok(Found::Named(route)) => Outcome::Named(route),
        Ok(Found::Internal(uri)) => Outcome::Internal(uri),
        Ok(_) if !read => Outcome::Status(405),
        Ok(Found::File(mut o)) => {
            // nginx's mp4 handler serves whatever file the lookup found
            // (an index file too), cut when the query asks for it.
            o.mp4 = files
                .mp4
                .map(|opts| (opts, cx.args.and_then(crate::mp4::interval)));
            Outcome::File(o)
        }
        Ok(Found::Listing(page)) => Outcome::Listing(page),
        Ok(Found::AddSlash) => {
            let mut to = format!("{}/", cx.uri);
            if let Some(q) = cx.args.filter(|q| !q.is_empty()) {
                to.push('?');
                to.push_str(q);
            }
            Outcome::Redirect(crate::plan::answer::absolute(to, cx))
        }
        Ok(Found::Status(code)) => Outcome::Status(code),
        Err(e) => {
            log::error!("files: {}: {e}", cx.uri);
            Outcome::Status(500)
        }
    }
}

/// The bytes of the file a `200` or single-range `206` answer carries (its
/// `Content-Length` agreeing); `None` for anything else (multipart ranges,
/// 304, 412, 416), whose body only `http_serve` knows how to build.
fn single_range(parts: &http::response::Parts, len: u64) -> Option<std::ops::Range<u64>> {
    let range = match parts.status {
        http::StatusCode::OK => 0..len,
        http::StatusCode::PARTIAL_CONTENT => {
            // `bytes FIRST-LAST/LEN`, as http_serve writes it.
            let v = parts
                .headers
                .get(http::header::CONTENT_RANGE)?
                .to_str()
                .ok()?;
            let (first, last) = v
                .strip_prefix("bytes ")?
                .split_once('/')?
                .0
                .split_once('-')?;
            first.parse().ok()?..last.parse::<u64>().ok()?.checked_add(1)?
        }
        _ => return None,
    };
    let cl: u64 = parts
        .headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    (range.start <= range.end && range.end <= len && cl == range.end - range.start).then_some(range)
}

/// Sends what [`find`] decided; `Ok(true)` always (the request is done).
pub(super) async fn send(
    session: &mut Session,
    ctx: &RequestCtx,
    outcome: Outcome,
) -> Result<bool> {
    let Opened {
        path,
        file,
        meta,
        mp4,
    } = match outcome {
        Outcome::File(o) => *o,
        Outcome::Redirect(to) => {
            // An HTML page, as nginx's static module sends for a directory
            // named without its `/` (a browser shows it if it does not follow).
            let link = super::autoindex::html(&to);
            let body = format!(
                "<!doctype html>\n<title>301 Moved Permanently</title>\n<p>Moved to <a href=\"{link}\">{link}</a>.</p>\n"
            );
            let headers = [("content-type", "text/html".to_string()), ("location", to)];
            return super::respond(session, ctx, 301, body, &headers, false).await;
        }
        Outcome::Status(405) => {
            let body = "405 Method Not Allowed: this path serves files (GET, HEAD)\n";
            let allow = [("allow", "GET, HEAD".to_string())];
            return super::respond(session, ctx, 405, body.into(), &allow, false).await;
        }
        Outcome::Listing(page) => return super::autoindex::send(session, ctx, page).await,
        // `named::serve_files` takes these before sending.
        Outcome::Named(_) | Outcome::Internal(_) => {
            let body = super::answers::plain_status(500);
            return super::respond(session, ctx, 500, body, &[], false).await;
        }
        Outcome::Status(code) => {
            let body = super::answers::plain_status(code);
            return super::respond(session, ctx, code, body, &[], false).await;
        }
    };
    // A precompressed sibling keeps the original's type (`compress::sibling`);
    // nginx's mp4 handler sends no sibling.
    let sibling = match mp4 {
        Some(_) => Ok(None),
        None => super::compress::sibling(session, ctx, &path),
    };
    let (coding, file, meta) = match sibling {
        Ok(Some((c, f, m))) => (Some(c), f, m),
        Ok(None) => (None, file, meta),
        Err(e) => {
            log::warn!("files: sibling of {}: {e}", path.display());
            (None, file, meta)
        }
    };
    let content_type = mime_guess::from_path(&path).first_raw().map_or_else(
        || http::HeaderValue::from_static("application/octet-stream"),
        http::HeaderValue::from_static,
    );
    let file = Arc::new(file);
    let mut len = meta.len();
    let (mut head, mut at) = (Bytes::new(), 0);
    if let Some((opts, Some(interval))) = mp4 {
        let f = Arc::clone(&file);
        let cut = tokio::task::spawn_blocking(move || crate::mp4::cut(&f, len, interval, &opts))
            .await
            .map_err(|e| Error::because(ErrorType::InternalError, "mp4 cut", e))?;
        match cut {
            Ok(None) => {}
            Ok(Some(cut)) => {
                len = cut.len();
                at = cut.data.start;
                head = Bytes::from(cut.head);
            }
            Err(e) => {
                log::error!("files: {}: {e}", path.display());
                let body = super::answers::plain_status(500);
                return super::respond(session, ctx, 500, body, &[], false).await;
            }
        }
    }
    // A cut MP4 answers one range at most (nginx's `single_range`): a
    // request for several gets the whole answer.
    let one_range_only = !head.is_empty();
    let head_len = head.len() as u64;
    let entity = Entity {
        file: Arc::clone(&file),
        head,
        at,
        len,
        // Whole seconds, as Last-Modified carries them: else a file's own
        // date in If-Modified-Since reads as older than the file (200, not 304).
        mtime: meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(SystemTime::UNIX_EPOCH, |d| {
                SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(d.as_secs())
            }),
        content_type,
    };
    let method = session.req_header().method.clone();
    let mut req = http::Request::builder().method(method.clone());
    for (k, v) in session.req_header().headers.iter() {
        if one_range_only && k == http::header::RANGE && v.as_bytes().contains(&b',') {
            continue;
        }
        req = req.header(k, v);
    }
    let req = req
        .body(())
        .map_err(|e| Error::because(ErrorType::InternalError, "files request", e))?;
    let (parts, mut body) = http_serve::serve(entity, &req).into_parts();
    let mut resp = ResponseHeader::build(parts.status, Some(parts.headers.len() + 4))?;
    for (k, v) in parts.headers.iter() {
        resp.append_header(k.clone(), v.clone())?;
    }
    if parts.status == http::StatusCode::RANGE_NOT_SATISFIABLE {
        // nginx's range filter turns the file's 200 into 416 after its
        // header filters ran: that 416 carries the 200's add_header and
        // expires, and so does this one.
        resp.set_status(200)?;
        super::steps::to_client(session, &mut resp, ctx)?;
        resp.set_status(416)?;
    } else {
        super::steps::to_client(session, &mut resp, ctx)?;
    }
    let empty = method == http::Method::HEAD || hyper::body::Body::is_end_stream(&body);
    let range = single_range(&parts, len);
    let mut encoder = super::compress::file_answer(session, ctx, &mut resp, coding, empty)?;
    // Write errors are the client's doing (gone, reset, too slow): marked
    // so, they end the request quietly instead of as a 500 and an ERROR.
    session
        .write_response_header(Box::new(resp), empty)
        .await
        .map_err(|e| e.into_down())?;
    if empty {
        return Ok(true);
    }
    // Plain HTTP/1: the kernel sends a larger body (nginx's `sendfile on`).
    if let Some(range) = range
        && encoder.is_none()
        && range.start >= head_len
        && range.end - range.start > INLINE
        && let pingora::protocols::http::ServerSession::H1(h1) = session.as_downstream_mut()
        && h1.can_write_body_file()
    {
        let n = (range.end - range.start) as usize;
        h1.write_body_file(&file, at + range.start - head_len, n)
            .await
            .map_err(|e| e.into_down())?;
        session
            .write_response_body(None, true)
            .await
            .map_err(|e| e.into_down())?;
        return Ok(true);
    }
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            log::warn!("files: {}: {e}", path.display());
            Error::explain(ErrorType::ReadError, "reading a served file")
        })?;
        if let Ok(data) = frame.into_data() {
            let mut data = Some(data);
            if let Some(e) = encoder.as_mut() {
                super::compress::body(e, &mut data, false)?;
            }
            if data.is_some() {
                session
                    .write_response_body(data, false)
                    .await
                    .map_err(|e| e.into_down())?;
            }
        }
    }
    let mut tail = None;
    if let Some(e) = encoder.as_mut() {
        super::compress::body(e, &mut tail, true)?;
    }
    session
        .write_response_body(tail, true)
        .await
        .map_err(|e| e.into_down())?;
    Ok(true)
}
