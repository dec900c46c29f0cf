// greenlight patch (new file): the wire case of header names, kept only
// where it is not the default.
//
// Pingora kept a second `HeaderMap` holding the received spelling of every
// header name, in lockstep with the value map: every insert, append, remove,
// clone and wire write of a case-preserving header went through both maps
// (about 8,900 of 85,600 instructions of a proxied HTTP/1.1 request,
// callgrind). A peer spells nearly all of its names in one style: title
// case (`Content-Type`, `X-Forwarded-For`: browsers, curl, most servers) or
// lowercase (HAProxy, load balancers, HTTP/2 tooling). So a header now takes
// the style of the first spelled name it is given and writes every name in
// it, unless it recorded another spelling for that name (`ETag`,
// `WWW-Authenticate`, `x-Custom`): a short list that is usually empty and
// then costs nothing.
//
// What changes for callers: one spelling per name (the first unusual one
// seen is kept for all of its values, where Pingora kept one per value), and
// a name given without a spelling of its own (a typed `HeaderName`, or a
// lowercase `&'static str`, which is the form `http`'s constants take) is
// written in the spelling the name already has on that header, else in the
// header's style (title case until a spelled name says otherwise; Pingora
// wrote such a name lowercase unless it was one of a dozen names it knew).
//
// The list is shared between copies of a header (a proxy copies every
// request header it forwards) and copied only when a copy records a
// spelling of its own.

use crate::case_header_name::CaseHeaderName;
use bytes::BufMut;
use http::HeaderName;
use std::sync::Arc;

/// Names and their unusual spellings.
type Odd = Vec<(HeaderName, CaseHeaderName)>;

/// A case-preserving header's style, and the names whose wire spelling is
/// not in that style, with that spelling.
#[derive(Debug, Clone, Default)]
pub(crate) struct CaseForms {
    style: Style,
    odd: Option<Arc<Odd>>,
}

/// How names without a spelling of their own are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Style {
    /// No spelled name yet: title case.
    #[default]
    Unset,
    /// `Content-Type`.
    Title,
    /// `content-type`.
    Lower,
}

impl CaseForms {
    /// `name` got a value written as `form` (`None`: no spelling of its
    /// own, so a recorded one stays). `replace`: the value replaced all the
    /// name's others (insert), so its spelling replaces theirs; else
    /// (append) a recorded spelling stays.
    #[inline]
    pub(crate) fn note(&mut self, name: &HeaderName, form: Option<CaseHeaderName>, replace: bool) {
        let Some(form) = form else {
            return;
        };
        if self.fits(name, form.as_slice()) {
            self.styled(name, replace);
        } else {
            self.keep(name, form, replace);
        }
    }

    /// As [`Self::note`] for a name spelled `spelled`, whose case form
    /// `make` gives only if it has to be kept (a name read off the wire:
    /// its bytes are looked at in place, and a `Bytes` of them is made only
    /// for an unusual spelling).
    #[inline]
    pub(crate) fn note_spelled(
        &mut self,
        name: &HeaderName,
        spelled: &[u8],
        make: impl FnOnce() -> CaseHeaderName,
        replace: bool,
    ) {
        if self.fits(name, spelled) {
            self.styled(name, replace);
        } else {
            self.keep(name, make(), replace);
        }
    }

    /// `name` got a value in the header's style: a recorded spelling goes
    /// on insert.
    #[inline]
    fn styled(&mut self, name: &HeaderName, replace: bool) {
        if replace && self.form(name).is_some() {
            self.odd_mut().retain(|(n, _)| n != name);
        }
    }

    /// `name` got a value spelled `form`, not in the header's style.
    fn keep(&mut self, name: &HeaderName, form: CaseHeaderName, replace: bool) {
        let odd = self.odd_mut();
        match odd.iter_mut().find(|(n, _)| n == name) {
            Some(slot) if replace => slot.1 = form,
            Some(_) => {}
            None => odd.push((name.clone(), form)),
        }
    }

    /// The list, to change: shared no more.
    fn odd_mut(&mut self) -> &mut Odd {
        Arc::make_mut(self.odd.get_or_insert_with(Default::default))
    }

    /// Whether `form`, a spelling of `name`, is what the style would write;
    /// the first spelled name sets the style.
    #[inline]
    fn fits(&mut self, name: &HeaderName, form: &[u8]) -> bool {
        // Lowercase is the name itself: one comparison of bytes.
        let lower = form == name.as_str().as_bytes();
        match self.style {
            Style::Lower => lower,
            Style::Title => is_title_case(form),
            Style::Unset if lower => {
                self.style = Style::Lower;
                true
            }
            Style::Unset => {
                self.style = Style::Title;
                is_title_case(form)
            }
        }
    }

    /// Drops the spellings of names `values` no longer has (after a remove).
    #[inline]
    pub(crate) fn forget_absent<T>(&mut self, values: &http::HeaderMap<T>) {
        let gone = |(n, _): &(HeaderName, CaseHeaderName)| !values.contains_key(n);
        if self.odd.as_deref().is_some_and(|o| o.iter().any(gone)) {
            self.odd_mut().retain(|e| !gone(e));
        }
    }

    /// The recorded spelling of `name`, if it has one.
    #[inline]
    pub(crate) fn form(&self, name: &HeaderName) -> Option<&CaseHeaderName> {
        let odd = self.odd.as_deref()?;
        odd.iter().find(|(n, _)| n == name).map(|(_, f)| f)
    }

    /// Writes `name` as it goes on the wire: its recorded spelling, else
    /// the header's style.
    #[inline]
    pub(crate) fn put_name(&self, name: &HeaderName, buf: &mut impl BufMut) {
        match self.form(name) {
            Some(f) => buf.put_slice(f.as_slice()),
            None if self.style == Style::Lower => buf.put_slice(name.as_str().as_bytes()),
            None => put_title_case(name.as_str().as_bytes(), buf),
        }
    }

    /// `name` as it goes on the wire, as an owned case form (off the hot path).
    pub(crate) fn wire_name(&self, name: &HeaderName) -> CaseHeaderName {
        match self.form(name) {
            Some(f) => f.clone(),
            None => {
                let mut v = Vec::with_capacity(name.as_str().len());
                self.put_name(name, &mut v);
                CaseHeaderName::from_slice(&v)
            }
        }
    }
}

// Eight name bytes at a time ("SWAR"): every mask below has the high bit
// of a byte set where the byte has the property. Header names are tokens,
// ASCII only, which `ge` relies on.
const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Bytes of `x` that are `>= c` (`c <= 0x80`, bytes < 0x80).
#[inline]
fn ge(x: u64, c: u8) -> u64 {
    (x | HIGH).wrapping_sub(ONES * u64::from(c)) & HIGH
}

/// Bytes of `x` that are ASCII letters: (upper case, lower case).
#[inline]
fn letters(x: u64) -> (u64, u64) {
    let upper = ge(x, b'A') & !ge(x, b'Z' + 1);
    let lower = ge(x, b'a') & !ge(x, b'z' + 1);
    (upper, lower)
}

/// Bytes of `x` that are `-`.
#[inline]
fn dashes(x: u64) -> u64 {
    let y = x ^ (ONES * u64::from(b'-'));
    !(((y & !HIGH).wrapping_add(!HIGH)) | y) & HIGH
}

/// The name in words of eight bytes, the last one padded with zeros (no
/// letter, no dash), little-endian: byte 0 is the lowest. (A short tail is
/// gathered byte by byte: `copy_from_slice` of a variable length calls
/// `memcpy`, which costs more than the bytes.)
#[inline]
fn words(name: &[u8]) -> impl Iterator<Item = (u64, usize)> + '_ {
    name.chunks(8).map(|c| match <[u8; 8]>::try_from(c) {
        Ok(w) => (u64::from_le_bytes(w), 8),
        Err(_) => {
            let w = c
                .iter()
                .rev()
                .fold(0u64, |w, &b| (w << 8) | u64::from(b));
            (w, c.len())
        }
    })
}

/// Whether `form` is in title case: a letter that starts the name or follows
/// a `-` is upper case, every other letter lower case.
#[inline]
fn is_title_case(form: &[u8]) -> bool {
    // The high bit of byte 0 when the word starts a part of the name.
    let mut carry = 0x80;
    for (x, _) in words(form) {
        let (upper, lower) = letters(x);
        let dash = dashes(x);
        let start = (dash << 8) | carry;
        if (lower & start) | (upper & !start) != 0 {
            return false;
        }
        carry = (dash >> 56) & 0x80;
    }
    true
}

/// Writes the lowercase `name` in title case.
#[inline]
pub(crate) fn put_title_case(name: &[u8], buf: &mut impl BufMut) {
    let mut carry = 0x80;
    for (x, n) in words(name) {
        let (_, lower) = letters(x);
        let dash = dashes(x);
        let start = (dash << 8) | carry;
        // Upper case is lower case less 0x20: the high bit moved to 0x20.
        let w = (x - ((lower & start) >> 2)).to_le_bytes();
        buf.put_slice(w.get(..n).unwrap_or(&w));
        carry = (dash >> 56) & 0x80;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header;

    fn title(name: &str) -> String {
        let mut v = Vec::new();
        put_title_case(name.as_bytes(), &mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn title_case_is_recognised_and_written() {
        for yes in ["Host", "Content-Type", "X-Forwarded-For", "X-1-A", "-", "A--B", ""] {
            assert!(is_title_case(yes.as_bytes()), "{yes}");
        }
        for no in ["host", "ETag", "WWW-Authenticate", "x-custom", "Content-type", "X-XSS-Protection"] {
            assert!(!is_title_case(no.as_bytes()), "{no}");
        }
        // Every position of a word and across words, against a plain loop.
        let plain = |f: &[u8]| {
            let mut start = true;
            f.iter().all(|&b| {
                let ok = if start { !b.is_ascii_lowercase() } else { !b.is_ascii_uppercase() };
                start = b == b'-';
                ok
            })
        };
        let alphabet = b"aZ-0_~";
        let mut seed = 7u32;
        for len in 0..40 {
            for _ in 0..200 {
                let f: Vec<u8> = (0..len)
                    .map(|_| {
                        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                        alphabet[(seed >> 16) as usize % alphabet.len()]
                    })
                    .collect();
                assert_eq!(is_title_case(&f), plain(&f), "{:?}", String::from_utf8_lossy(&f));
                let lower = f.to_ascii_lowercase();
                let mut t = Vec::new();
                put_title_case(&lower, &mut t);
                assert!(plain(&t) && t.eq_ignore_ascii_case(&lower), "{t:?}");
            }
        }
        for b in 0u8..0x80 {
            for pos in 0..16 {
                let mut f = vec![b'-'; 16];
                f[pos] = b;
                assert_eq!(is_title_case(&f), plain(&f), "{b} at {pos}");
            }
        }
        assert_eq!(title("content-type"), "Content-Type");
        assert_eq!(title("x-forwarded-for"), "X-Forwarded-For");
        assert_eq!(title("etag"), "Etag");
        assert_eq!(title("a--b"), "A--B");
        // Longer than one stack chunk: the state carries over the boundary.
        let long = format!("{}-b", "a".repeat(63));
        assert_eq!(title(&long), format!("A{}-B", "a".repeat(62)));
        let long = format!("{}-b", "a".repeat(64));
        assert_eq!(title(&long), format!("A{}-B", "a".repeat(63)));
    }

    #[test]
    fn only_unusual_spellings_are_kept_and_insert_replaces_them() {
        let mut f = CaseForms::default();
        f.note(&header::CONTENT_TYPE, Some(CaseHeaderName::from_slice(b"Content-Type")), false);
        f.note(&header::HOST, None, false);
        assert!(f.odd.is_none());
        f.note(&header::ETAG, Some(CaseHeaderName::from_slice(b"ETag")), false);
        assert_eq!(f.form(&header::ETAG).unwrap().as_slice(), b"ETag");
        // An append keeps the first spelling; an insert replaces it.
        f.note(&header::ETAG, Some(CaseHeaderName::from_slice(b"etag")), false);
        assert_eq!(f.form(&header::ETAG).unwrap().as_slice(), b"ETag");
        f.note(&header::ETAG, Some(CaseHeaderName::from_slice(b"etag")), true);
        assert_eq!(f.form(&header::ETAG).unwrap().as_slice(), b"etag");
        // A name without a spelling keeps the recorded one; one in the
        // style replaces it.
        f.note(&header::ETAG, None, true);
        assert_eq!(f.form(&header::ETAG).unwrap().as_slice(), b"etag");
        f.note(&header::ETAG, Some(CaseHeaderName::from_slice(b"Etag")), true);
        assert!(f.form(&header::ETAG).is_none());
        let mut wire = Vec::new();
        f.put_name(&header::ETAG, &mut wire);
        assert_eq!(wire, b"Etag");
    }

    #[test]
    fn the_first_spelled_name_sets_the_style() {
        let mut f = CaseForms::default();
        f.note(&header::HOST, Some(CaseHeaderName::from_slice(b"host")), false);
        f.note(&header::ACCEPT, Some(CaseHeaderName::from_slice(b"accept")), false);
        f.note(&HeaderName::from_static("x-a"), Some(CaseHeaderName::from_slice(b"x-a")), false);
        f.note(&header::ETAG, Some(CaseHeaderName::from_slice(b"ETag")), false);
        f.note(&header::DATE, Some(CaseHeaderName::from_slice(b"Date")), false);
        assert_eq!(f.odd.as_deref().map(Vec::len), Some(2), "{f:?}");
        let mut wire = Vec::new();
        for n in [&header::HOST, &header::USER_AGENT, &header::ETAG, &header::DATE] {
            f.put_name(n, &mut wire);
            wire.push(b' ');
        }
        assert_eq!(wire, b"host user-agent ETag Date ");
        // Title case first: the style is title case.
        let mut f = CaseForms::default();
        f.note(&header::HOST, Some(CaseHeaderName::from_slice(b"Host")), false);
        f.note(&header::ACCEPT, Some(CaseHeaderName::from_slice(b"accept")), false);
        assert_eq!(f.odd.as_deref().map(Vec::len), Some(1));
        let mut wire = Vec::new();
        f.put_name(&header::USER_AGENT, &mut wire);
        f.put_name(&header::ACCEPT, &mut wire);
        assert_eq!(wire, b"User-Agentaccept");
    }

    #[test]
    fn copies_share_the_list_until_one_changes_it() {
        let mut a = CaseForms::default();
        a.note(&header::ETAG, Some(CaseHeaderName::from_slice(b"ETag")), false);
        let mut b = a.clone();
        assert!(Arc::ptr_eq(a.odd.as_ref().unwrap(), b.odd.as_ref().unwrap()));
        b.note(&header::ETAG, Some(CaseHeaderName::from_slice(b"eTag")), true);
        assert_eq!(a.form(&header::ETAG).unwrap().as_slice(), b"ETag");
        assert_eq!(b.form(&header::ETAG).unwrap().as_slice(), b"eTag");
    }

    #[test]
    fn a_removed_name_loses_its_spelling() {
        let mut f = CaseForms::default();
        let mut values = http::HeaderMap::new();
        values.insert(header::ETAG, http::HeaderValue::from_static("x"));
        values.insert("x-a", http::HeaderValue::from_static("y"));
        f.note(&header::ETAG, Some(CaseHeaderName::from_slice(b"ETag")), false);
        f.note(&HeaderName::from_static("x-a"), Some(CaseHeaderName::from_slice(b"x-A")), false);
        values.remove(header::ETAG);
        f.forget_absent(&values);
        assert!(f.form(&header::ETAG).is_none());
        assert_eq!(f.form(&HeaderName::from_static("x-a")).unwrap().as_slice(), b"x-A");
    }
}
