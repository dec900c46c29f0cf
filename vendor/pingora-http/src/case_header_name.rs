// Copyright 2026 Cloudflare, Inc.
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
// http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

use crate::*;
use bytes::Bytes;
use http::header;

#[derive(Debug, Clone)]
pub struct CaseHeaderName(CaseRepr);

/// greenlight patch: a typed `HeaderName` without a title-case form is
/// written as it is (lowercase), so its case form is the name itself,
/// cloned (a reference count, or nothing for a static name) rather than
/// copied into new bytes on every insert.
#[derive(Debug, Clone)]
enum CaseRepr {
    Bytes(Bytes),
    Name(HeaderName),
}

impl CaseHeaderName {
    pub fn new(name: String) -> Self {
        CaseHeaderName(CaseRepr::Bytes(name.into()))
    }
}

impl CaseHeaderName {
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            CaseRepr::Bytes(b) => b,
            CaseRepr::Name(n) => n.as_str().as_bytes(),
        }
    }

    pub fn from_slice(buf: &[u8]) -> Self {
        CaseHeaderName(CaseRepr::Bytes(Bytes::copy_from_slice(buf)))
    }

    /// greenlight patch: the case form of a typed name (see [`CaseRepr`]).
    fn of_name(name: &HeaderName) -> Self {
        CaseHeaderName(match titled_header_name_str(name) {
            Some(t) => CaseRepr::Bytes(Bytes::from_static(t.as_bytes())),
            None => CaseRepr::Name(name.clone()),
        })
    }
}

/// A trait that converts into case-sensitive header names.
pub trait IntoCaseHeaderName {
    fn into_case_header_name(self) -> CaseHeaderName;

    /// greenlight patch: the name both header maps are keyed by and, only
    /// when `case` (the header keeps a case map), its case form. The
    /// default parses the case form as before; a typed `HeaderName` is not
    /// parsed again, and a lowercase `&'static str` becomes a static
    /// `HeaderName` without copying. Pingora parsed every name given to
    /// `insert_header`/`append_header` (copying a custom one) and built its
    /// case form even without a case map.
    #[inline]
    fn into_header_names(self, case: bool) -> Result<(HeaderName, Option<CaseHeaderName>)>
    where
        Self: Sized,
    {
        let case_name = self.into_case_header_name();
        let name = HeaderName::from_bytes(case_name.as_slice())
            .or_err(InvalidHTTPHeader, "invalid header name")?;
        Ok((name, case.then_some(case_name)))
    }
}

impl IntoCaseHeaderName for CaseHeaderName {
    fn into_case_header_name(self) -> CaseHeaderName {
        self
    }
}

impl IntoCaseHeaderName for String {
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName(CaseRepr::Bytes(self.into()))
    }
}

impl IntoCaseHeaderName for &'static str {
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName(CaseRepr::Bytes(self.into()))
    }

    // greenlight patch: see the trait method.
    #[inline]
    fn into_header_names(self, case: bool) -> Result<(HeaderName, Option<CaseHeaderName>)> {
        if !is_lowercase_token(self) {
            let case_name = self.into_case_header_name();
            let name = HeaderName::from_bytes(case_name.as_slice())
                .or_err(InvalidHTTPHeader, "invalid header name")?;
            return Ok((name, case.then_some(case_name)));
        }
        // Checked above: `from_static` cannot panic. A lowercase name (the
        // form of `http`'s constants) carries no spelling of its own: it is
        // written in the header's style (`case_forms.rs`).
        Ok((HeaderName::from_static(self), None))
    }
}

/// greenlight patch: `s` is a header name `HeaderName::from_static` takes
/// as it is (non-empty, lowercase token characters only).
fn is_lowercase_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

impl IntoCaseHeaderName for HeaderName {
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName::of_name(&self)
    }

    // greenlight patch: see the trait method.
    #[inline]
    fn into_header_names(self, _case: bool) -> Result<(HeaderName, Option<CaseHeaderName>)> {
        // No spelling of its own: the header's style on the wire (`case_forms.rs`).
        Ok((self, None))
    }
}

impl IntoCaseHeaderName for &HeaderName {
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName::of_name(self)
    }

    // greenlight patch: see the trait method.
    #[inline]
    fn into_header_names(self, _case: bool) -> Result<(HeaderName, Option<CaseHeaderName>)> {
        Ok((self.clone(), None))
    }
}

impl IntoCaseHeaderName for Bytes {
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName(CaseRepr::Bytes(self))
    }

    // greenlight patch: a name read off the wire is parsed straight from
    // its bytes (the provided method would go through `as_slice`'s match).
    #[inline]
    fn into_header_names(self, case: bool) -> Result<(HeaderName, Option<CaseHeaderName>)> {
        let name =
            HeaderName::from_bytes(&self).or_err(InvalidHTTPHeader, "invalid header name")?;
        Ok((name, case.then_some(CaseHeaderName(CaseRepr::Bytes(self)))))
    }
}

pub(crate) fn titled_header_name_str(header_name: &HeaderName) -> Option<&'static str> {
    Some(match *header_name {
        header::ACCEPT_RANGES => "Accept-Ranges",
        header::AGE => "Age",
        header::CACHE_CONTROL => "Cache-Control",
        header::CONNECTION => "Connection",
        header::CONTENT_TYPE => "Content-Type",
        header::CONTENT_ENCODING => "Content-Encoding",
        header::CONTENT_LENGTH => "Content-Length",
        header::DATE => "Date",
        header::TRANSFER_ENCODING => "Transfer-Encoding",
        header::HOST => "Host",
        header::SERVER => "Server",
        header::SET_COOKIE => "Set-Cookie",
        // TODO: add more const header here to map to their titled case
        // TODO: automatically upper case the first letter?
        _ => {
            return None;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_case_header_name() {
        assert_eq!("FoO".into_case_header_name().as_slice(), b"FoO");
        assert_eq!("FoO".to_string().into_case_header_name().as_slice(), b"FoO");
        assert_eq!(header::SERVER.into_case_header_name().as_slice(), b"Server");
    }
}
