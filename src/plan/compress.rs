//! `compress:`: which responses of a route are compressed, with what, and
//! which precompressed siblings (`FILE.br`, `FILE.zst`, `FILE.gz`) a
//! `files:` route may serve — compiled at load (`config::validate_compress`),
//! read by `proxy::compress`, which holds the encoders.
//!
//! Everything decided per response is decided here, without allocating:
//! the coding ([`negotiate`]: `Accept-Encoding` with its q-values), the
//! type ([`Compress::type_ok`]) and the length ([`Compress::length_ok`]).

/// A content coding greenlight can produce (RFC 9110 §8.4.1, RFC 8878, RFC 7932).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    /// `gzip` (deflate in a gzip frame).
    Gzip,
    /// `br` (Brotli).
    Br,
    /// `zstd` (Zstandard).
    Zstd,
}

impl Coding {
    /// Every coding, in greenlight's default order of preference: the best
    /// ratio first when a client takes several with the same q-value.
    pub const ALL: [Coding; 3] = [Coding::Zstd, Coding::Br, Coding::Gzip];

    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Br => "br",
            Coding::Zstd => "zstd",
        }
    }

    /// The file name suffix of a precompressed sibling (nginx `gzip_static`,
    /// ngx_brotli `brotli_static`, Caddy `precompressed`).
    pub fn suffix(self) -> &'static str {
        match self {
            Coding::Gzip => ".gz",
            Coding::Br => ".br",
            Coding::Zstd => ".zst",
        }
    }

    /// The coding a config word names (`gzip`, `br`/`brotli`, `zstd`).
    pub fn from_word(w: &str) -> Option<Coding> {
        match w.to_ascii_lowercase().as_str() {
            "gzip" => Some(Coding::Gzip),
            "br" | "brotli" => Some(Coding::Br),
            "zstd" => Some(Coding::Zstd),
            _ => None,
        }
    }
}

/// Compression levels, one per coding (their scales differ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Levels {
    /// 1–9; default 1, nginx's `gzip_comp_level`.
    pub gzip: u32,
    /// 0–11; default 6, ngx_brotli's `brotli_comp_level`.
    pub br: u32,
    /// 1–19; default 3, zstd's own default.
    pub zstd: i32,
}

impl Default for Levels {
    fn default() -> Self {
        Levels {
            gzip: 1,
            br: 6,
            zstd: 3,
        }
    }
}

/// One entry of the type list, lower case, without parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypePattern {
    /// `*`: every type.
    Any,
    /// `text/*`: every subtype (kept with its `/`).
    Prefix(Box<str>),
    /// `application/json`.
    Exact(Box<str>),
}

impl TypePattern {
    /// The pattern a config word names.
    pub fn parse(word: &str) -> TypePattern {
        let w = word.trim().to_ascii_lowercase();
        if w == "*" || w == "*/*" {
            TypePattern::Any
        } else if let Some(p) = w.strip_suffix('*') {
            TypePattern::Prefix(p.into())
        } else {
            TypePattern::Exact(w.into())
        }
    }

    fn matches(&self, mime: &str) -> bool {
        match self {
            TypePattern::Any => true,
            TypePattern::Prefix(p) => starts_with_ignore_case(mime, p),
            TypePattern::Exact(e) => mime.eq_ignore_ascii_case(e),
        }
    }
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// The types `compress: true` compresses: text and the text-like
/// application types browsers fetch (Caddy's `encode` list, roughly).
/// nginx compresses only `text/html` unless `gzip_types` says more; the
/// importer writes nginx's list out.
pub const DEFAULT_TYPES: [&str; 12] = [
    "text/*",
    "application/javascript",
    "application/json",
    "application/xml",
    "application/wasm",
    "application/xhtml+xml",
    "application/rss+xml",
    "application/atom+xml",
    "application/ld+json",
    "application/manifest+json",
    "application/x-javascript",
    "image/svg+xml",
];

/// nginx's `gzip_min_length` default: bodies shorter than this are sent as they are.
pub const DEFAULT_MIN_LENGTH: u64 = 20;

/// A compiled `compress:` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compress {
    /// Codings made on the fly, in the server's order of preference;
    /// empty = none (precompressed siblings only, nginx `gzip_static`
    /// without `gzip on`).
    pub codings: Box<[Coding]>,
    /// Levels per coding.
    pub levels: Levels,
    /// Types compressed on the fly.
    pub types: Box<[TypePattern]>,
    /// Responses with a `Content-Length` below this are not compressed.
    pub min_length: u64,
    /// Sibling suffixes a `files:` route serves when present, in order of
    /// preference; empty = none.
    pub precompressed: Box<[Coding]>,
}

impl Default for Compress {
    /// `compress: true`.
    fn default() -> Self {
        Compress {
            codings: Coding::ALL.into(),
            levels: Levels::default(),
            types: DEFAULT_TYPES
                .iter()
                .map(|t| TypePattern::parse(t))
                .collect(),
            min_length: DEFAULT_MIN_LENGTH,
            precompressed: Box::new([]),
        }
    }
}

impl Compress {
    /// Whether a response of this `Content-Type` is compressed (its
    /// parameters ignored); a response without one is not.
    pub fn type_ok(&self, content_type: Option<&[u8]>) -> bool {
        let Some(ct) = content_type.and_then(|c| std::str::from_utf8(c).ok()) else {
            return false;
        };
        let mime = ct.split(';').next().unwrap_or("").trim();
        self.types.iter().any(|p| p.matches(mime))
    }

    /// Whether a body of this `Content-Length` is long enough; an unknown
    /// length (a stream) always is.
    pub fn length_ok(&self, content_length: Option<&[u8]>) -> bool {
        match content_length
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            Some(n) => n >= self.min_length,
            None => true,
        }
    }
}

/// The q-value of one `Accept-Encoding` entry, in thousandths (RFC 9110
/// §12.4.2: at most three decimals); `None` when it does not parse.
fn qvalue(params: &str) -> Option<u16> {
    let mut q = 1000;
    for p in params.split(';') {
        let p = p.trim();
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        if !k.trim().eq_ignore_ascii_case("q") {
            continue;
        }
        let v = v.trim();
        let (int, frac) = v.split_once('.').unwrap_or((v, ""));
        if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let whole = match int {
            "0" => 0,
            "1" => 1000,
            _ => return None,
        };
        let mut thousandths = 0u16;
        for (i, b) in frac.bytes().enumerate() {
            thousandths += u16::from(b - b'0') * [100, 10, 1][i];
        }
        q = whole + thousandths;
        if q > 1000 {
            return None;
        }
    }
    Some(q)
}

/// The coding to answer with, from the request's `Accept-Encoding` and the
/// codings on `offer` (in the server's order of preference): the highest
/// q-value wins, ties go to the server's order; `q=0` refuses a coding,
/// `*` stands for every coding not named, and an `identity` preferred over
/// every offered coding means none. No header (or an empty one) means none:
/// RFC 9110 allows any coding then, but clients that send nothing are
/// mostly tools that would not decode it.
pub fn negotiate(accept: Option<&[u8]>, offer: &[Coding]) -> Option<Coding> {
    let accept = std::str::from_utf8(accept?).ok()?;
    // q per offered coding (by position in `offer`), `*`, `identity`.
    let mut named: [Option<u16>; 3] = [None; 3];
    let mut star = None;
    let mut identity = None;
    for entry in accept.split(',') {
        let (name, params) = entry.split_once(';').unwrap_or((entry, ""));
        let name = name.trim();
        if name.is_empty() {
            continue;
        }
        let Some(q) = qvalue(params) else { continue };
        if name == "*" {
            star = Some(q);
        } else if name.eq_ignore_ascii_case("identity") {
            identity = Some(q);
        } else if let Some(i) = offer
            .iter()
            .position(|c| name.eq_ignore_ascii_case(c.token()))
            .filter(|i| *i < named.len())
        {
            named[i] = Some(q);
        }
    }
    let mut best: Option<(Coding, u16)> = None;
    for (i, c) in offer.iter().enumerate().take(named.len()) {
        let q = named[i].or(star).unwrap_or(0);
        if q > 0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((*c, q));
        }
    }
    let (coding, q) = best?;
    match identity.or(star) {
        Some(iq) if iq > q => None,
        _ => Some(coding),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Coding::*;

    fn pick(ae: &str) -> Option<Coding> {
        negotiate(Some(ae.as_bytes()), &Coding::ALL)
    }

    #[test]
    fn accept_encoding_picks_by_q_value_then_server_order() {
        assert_eq!(negotiate(None, &Coding::ALL), None, "no header: identity");
        assert_eq!(pick(""), None);
        assert_eq!(pick("gzip"), Some(Gzip));
        assert_eq!(
            pick("gzip, deflate, br, zstd"),
            Some(Zstd),
            "ties: server order"
        );
        assert_eq!(pick("gzip, deflate, br"), Some(Br));
        assert_eq!(pick("GZIP"), Some(Gzip), "tokens are case-insensitive");
        assert_eq!(pick("br;q=0.5, gzip;q=0.8"), Some(Gzip));
        assert_eq!(pick("br;q=1.0, gzip;q=0.999"), Some(Br));
        assert_eq!(pick("zstd;q=0, br;q=0.1"), Some(Br), "q=0 refuses");
        assert_eq!(pick("gzip;q=0"), None);
        assert_eq!(pick("gzip;Q=0.000"), None);
        assert_eq!(pick("*"), Some(Zstd), "* stands for every coding");
        assert_eq!(pick("*;q=0.5, br"), Some(Br));
        assert_eq!(pick("*;q=0"), None);
        assert_eq!(pick("br;q=0, *"), Some(Zstd));
        assert_eq!(pick("identity"), None);
        assert_eq!(pick("gzip;q=0.5, identity"), None, "identity preferred");
        assert_eq!(pick("gzip, identity;q=0.5"), Some(Gzip));
        assert_eq!(
            pick("gzip;q=2, br"),
            Some(Br),
            "a bad q-value drops its entry"
        );
        assert_eq!(pick("gzip;q=0.1234"), None);
        assert_eq!(pick("compress, deflate"), None, "nothing greenlight makes");
        assert_eq!(
            negotiate(Some(b"br, gzip"), &[Gzip]),
            Some(Gzip),
            "only what is offered"
        );
        assert_eq!(negotiate(Some(b"gzip, br"), &[Gzip, Br]), Some(Gzip));
        assert_eq!(negotiate(Some(b"gzip"), &[]), None);
    }

    #[test]
    fn types_match_without_parameters_and_case() {
        let c = Compress::default();
        assert!(c.type_ok(Some(b"text/html; charset=utf-8")));
        assert!(c.type_ok(Some(b"Text/Event-Stream")));
        assert!(c.type_ok(Some(b"application/json")));
        assert!(!c.type_ok(Some(b"image/png")));
        assert!(!c.type_ok(Some(b"application/jsonx")));
        assert!(!c.type_ok(None), "no Content-Type: not compressed");
        let any = Compress {
            types: [TypePattern::parse("*")].into(),
            ..Compress::default()
        };
        assert!(any.type_ok(Some(b"image/png")));
        assert_eq!(
            TypePattern::parse("Text/*"),
            TypePattern::Prefix("text/".into())
        );
    }

    #[test]
    fn length_below_the_minimum_is_not_compressed_and_unknown_is() {
        let c = Compress {
            min_length: 100,
            ..Compress::default()
        };
        assert!(!c.length_ok(Some(b"99")));
        assert!(c.length_ok(Some(b"100")));
        assert!(c.length_ok(None), "a stream of unknown length");
        assert!(c.length_ok(Some(b"junk")));
    }

    #[test]
    fn config_words_name_codings() {
        assert_eq!(Coding::from_word("brotli"), Some(Br));
        assert_eq!(Coding::from_word("BR"), Some(Br));
        assert_eq!(Coding::from_word("zstd"), Some(Zstd));
        assert_eq!(Coding::from_word("deflate"), None);
        assert_eq!(Zstd.suffix(), ".zst");
    }
}
