//! `files: {autoindex: true}` (nginx `autoindex on`): the HTML listing of a
//! directory that has no index file, in nginx's layout — `../` first, then
//! directories, then files, each group sorted by name byte order; name,
//! modification time (UTC) and exact size (`-` for directories).
//!
//! Safety: names starting with `.` are never listed (nginx hides them too),
//! nor entries whose real path (symlinks resolved) is outside the served
//! directory — the same rule `files.rs` applies before serving a file.
//! Names are percent-encoded in links and HTML-escaped in text.

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use std::fmt::Write as _;
use std::path::Path;
use std::time::SystemTime;

/// What is escaped in a link to an entry (one path segment, kept
/// readable): everything that would end or change the segment or the
/// attribute.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'\'')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// Width of the name column, as nginx's listing.
const NAME_WIDTH: usize = 50;

/// One listed entry.
struct Entry {
    name: String,
    dir: bool,
    size: u64,
    mtime: SystemTime,
}

/// The listing of directory `dir` (inside `root`) for request path `uri`
/// (ending in `/`), as an HTML page.
pub(super) fn render(root: &Path, dir: &Path, uri: &str) -> std::io::Result<String> {
    let real_root = root.canonicalize()?;
    let mut entries = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let Ok(name) = e.file_name().into_string() else {
            continue; // not UTF-8: no link could name it
        };
        if name.starts_with('.') {
            continue;
        }
        let path = e.path();
        // Resolved: a symlink is listed only when it stays inside the root.
        let Ok(real) = path.canonicalize() else {
            continue; // dangling symlink
        };
        if !real.starts_with(&real_root) {
            continue;
        }
        let Ok(meta) = std::fs::metadata(&real) else {
            continue;
        };
        entries.push(Entry {
            name,
            dir: meta.is_dir(),
            size: meta.len(),
            mtime: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        });
    }
    entries.sort_by(|a, b| b.dir.cmp(&a.dir).then_with(|| a.name.cmp(&b.name)));
    let title = html(&percent_encoding::percent_decode_str(uri).decode_utf8_lossy());
    let mut out = format!(
        "<html>\r\n<head><title>Index of {title}</title></head>\r\n<body>\r\n<h1>Index of {title}</h1><hr><pre><a href=\"../\">../</a>\r\n"
    );
    for e in &entries {
        let slash = if e.dir { "/" } else { "" };
        let link = utf8_percent_encode(&e.name, SEGMENT);
        let shown = format!("{}{slash}", e.name);
        // Cut long names by characters, never inside one.
        let cut: String = if shown.chars().count() > NAME_WIDTH {
            let mut s: String = shown.chars().take(NAME_WIDTH - 3).collect();
            s.push_str("..>");
            s
        } else {
            shown
        };
        let pad = NAME_WIDTH + 1 - cut.chars().count();
        let size = if e.dir {
            "-".to_string()
        } else {
            e.size.to_string()
        };
        let _ = write!(
            out,
            "<a href=\"{link}{slash}\">{}</a>{:pad$}{} {size:>19}\r\n",
            html(&cut),
            "",
            date(e.mtime),
        );
    }
    out.push_str("</pre><hr></body>\r\n</html>\r\n");
    Ok(out)
}

/// Sends a listing made by [`render`] (no body for HEAD).
pub(super) async fn send(
    session: &mut pingora::proxy::Session,
    ctx: &super::RequestCtx,
    page: String,
) -> pingora::Result<bool> {
    let mut resp = pingora::http::ResponseHeader::build(200, Some(3))?;
    resp.insert_header(http::header::CONTENT_TYPE, "text/html")?;
    resp.insert_header(http::header::CONTENT_LENGTH, page.len().to_string())?;
    super::steps::to_client(session, &mut resp, ctx)?;
    let head = session.req_header().method == http::Method::HEAD;
    session.write_response_header(Box::new(resp), head).await?;
    if !head {
        session
            .write_response_body(Some(bytes::Bytes::from(page)), true)
            .await?;
    }
    Ok(true)
}

/// `07-Dec-2026 04:16` (UTC), from the HTTP date's fixed layout
/// (`Mon, 07 Dec 2026 04:16:00 GMT`).
fn date(t: SystemTime) -> String {
    let d = httpdate::fmt_http_date(t.max(SystemTime::UNIX_EPOCH));
    match (d.get(5..7), d.get(8..11), d.get(12..16), d.get(17..22)) {
        (Some(day), Some(mon), Some(year), Some(hm)) => format!("{day}-{mon}-{year} {hm}"),
        _ => d,
    }
}

/// Escapes text for HTML content and attributes.
pub(super) fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_directories_first_sorted_escaped_without_dotfiles() {
        let root = tempfile::tempdir().expect("tempdir");
        let d = root.path().join("pub");
        std::fs::create_dir_all(d.join("zdir")).expect("dir");
        std::fs::create_dir_all(d.join("adir")).expect("dir");
        std::fs::write(d.join("b.txt"), "12345").expect("file");
        std::fs::write(d.join("A.txt"), "1").expect("file");
        std::fs::write(d.join("<x> & \"y\".html"), "").expect("file");
        std::fs::write(d.join(".secret"), "no").expect("file");
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("passwd"), "root").expect("file");
        std::os::unix::fs::symlink(outside.path().join("passwd"), d.join("leak")).expect("ln");
        std::os::unix::fs::symlink(d.join("b.txt"), d.join("same")).expect("ln");
        let page = render(root.path(), &d, "/pub/").expect("render");
        assert!(page.contains("<title>Index of /pub/</title>"), "{page}");
        let order: Vec<usize> = ["adir/", "zdir/", ">&lt;x&gt;", ">A.txt", ">b.txt", ">same<"]
            .iter()
            .map(|n| page.find(n).unwrap_or_else(|| panic!("{n} in {page}")))
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{page}");
        assert!(
            page.contains("href=\"%3Cx%3E%20%26%20%22y%22.html\""),
            "{page}"
        );
        assert!(
            !page.contains(".secret") && !page.contains("leak"),
            "{page}"
        );
        assert!(
            page.contains("                  5\r\n"),
            "exact size: {page}"
        );
    }

    #[test]
    fn long_names_are_cut_and_dates_are_nginx_s() {
        let root = tempfile::tempdir().expect("tempdir");
        let long = "x".repeat(60);
        std::fs::write(root.path().join(&long), "").expect("file");
        let page = render(root.path(), root.path(), "/").expect("render");
        assert!(
            page.contains(&format!(">{}..&gt;</a>", "x".repeat(47))),
            "{page}"
        );
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        assert_eq!(date(t), "15-Jan-2027 08:00");
    }
}
