//! Route plans: what `validate` compiles a site's routes into and the proxy
//! hooks only execute (see ARCHITECTURE.md, "Routes are compiled plans").
//!
//! Layers point down: `config` and `state` build what lives here, `proxy`
//! runs it; nothing here reaches into `proxy`. [`location`] is one route's
//! path matcher, [`router`] picks the site and route of a request in nginx's
//! order and hands back the regex [`Captures`] that later steps read;
//! [`client_ip`] finds the real client address behind trusted proxies.

pub mod client_ip;
pub mod location;
pub mod router;

/// Capture spans of the regex location that matched, over the request path
/// it was matched against (byte offsets). Index 0 is the whole match, 1… the
/// groups in order; a named group is referred to by its index, which
/// [`location::Location::capture_index`] resolves at load. A group that did
/// not take part in the match is `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Captures {
    /// `(start, end)` per group, `None` when the group did not match.
    pub spans: Vec<Option<(usize, usize)>>,
}

impl Captures {
    /// The text of group `i` within `subject` (the path that was matched);
    /// `None` for a group that did not match or does not exist.
    pub fn get<'s>(&self, i: usize, subject: &'s str) -> Option<&'s str> {
        let (start, end) = (*self.spans.get(i)?)?;
        subject.get(start..end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_read_their_spans_from_the_subject() {
        let c = Captures {
            spans: vec![Some((0, 8)), Some((3, 8)), None],
        };
        assert_eq!(c.get(0, "/u/alice"), Some("/u/alice"));
        assert_eq!(c.get(1, "/u/alice"), Some("alice"));
        assert_eq!(c.get(2, "/u/alice"), None, "group did not take part");
        assert_eq!(c.get(3, "/u/alice"), None, "no such group");
        assert_eq!(c.get(1, "/u"), None, "span outside a shorter subject");
    }
}
