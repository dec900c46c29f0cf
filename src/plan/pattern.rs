//! A condition regex that also takes PCRE's look-around and
//! back-references, as nginx's `if ($var ~ re)` does.
//!
//! Most patterns compile with the `regex` crate (linear time, the common
//! case). One it refuses for a feature it does not have — `(?!…)`, `(?=…)`,
//! `(?<=…)`, `\1` — is compiled with `fancy-regex`, a backtracking engine
//! that hands every part it can to `regex`. Backtracking can be made slow by
//! input crafted against a pattern, and a condition's subject is often a
//! client header (`$http_user_agent`), so each match is bounded by a
//! backtrack limit; a match that hits it counts as no match, and the
//! request goes on as if the condition did not hold.

use super::Captures;

/// Backtracking steps one match may take before it gives up (no match).
const BACKTRACK_LIMIT: usize = 100_000;

/// A compiled condition pattern.
#[derive(Debug)]
pub enum Pattern {
    /// Compiled by `regex`.
    Plain(regex::Regex),
    /// Compiled by `fancy-regex` (look-around, back-references).
    Fancy(Box<fancy_regex::Regex>),
}

impl Pattern {
    /// Compiles `pattern`; the error is `regex`'s own when neither engine
    /// takes it (the clearer of the two for most mistakes).
    pub fn new(pattern: &str) -> Result<Pattern, String> {
        let plain_error = match regex::Regex::new(pattern) {
            Ok(re) => return Ok(Pattern::Plain(re)),
            Err(e) => e.to_string(),
        };
        fancy_regex::RegexBuilder::new(pattern)
            .backtrack_limit(BACKTRACK_LIMIT)
            .build()
            .map(|re| Pattern::Fancy(Box::new(re)))
            .map_err(|_| plain_error)
    }

    /// Named groups with their index (for `$name` in the answer).
    pub fn group_names(&self) -> Vec<(String, usize)> {
        let names: Vec<Option<&str>> = match self {
            Pattern::Plain(re) => re.capture_names().collect(),
            Pattern::Fancy(re) => re.capture_names().collect(),
        };
        names
            .into_iter()
            .enumerate()
            .filter_map(|(i, n)| Some((n?.to_string(), i)))
            .collect()
    }

    /// Whether `s` matches (a fancy match over its limit does not).
    pub fn is_match(&self, s: &str) -> bool {
        match self {
            Pattern::Plain(re) => re.is_match(s),
            Pattern::Fancy(re) => re.is_match(s).unwrap_or(false),
        }
    }

    /// The groups of the first match in `s`, if any.
    pub fn captures(&self, s: &str) -> Option<Captures> {
        match self {
            Pattern::Plain(re) => {
                let mut locs = re.capture_locations();
                re.captures_read(&mut locs, s)?;
                Some(Captures::from_locations(locs))
            }
            Pattern::Fancy(re) => {
                let c = re.captures(s).ok()??;
                let spans = (0..c.len())
                    .map(|i| c.get(i).map(|m| (m.start(), m.end())))
                    .collect();
                Some(Captures::from_spans(spans))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_patterns_stay_with_regex_and_look_around_goes_to_fancy() {
        assert!(matches!(Pattern::new("^/a(b)?$"), Ok(Pattern::Plain(_))));
        let p = Pattern::new(r"^(docker/1\.(3|4|5(?!\.[0-9]-dev))|Go ).*$").expect("fancy");
        assert!(matches!(p, Pattern::Fancy(_)));
        assert!(p.is_match("docker/1.5.0"));
        assert!(!p.is_match("docker/1.5.1-dev"), "the look-ahead refuses it");
        assert!(p.is_match("Go http client"));
        assert!(!p.is_match("docker/1.6"));
        let c = p.captures("docker/1.4").expect("match");
        assert_eq!(c.get(1, "docker/1.4"), Some("docker/1.4"));
        assert_eq!(c.get(2, "docker/1.4"), Some("4"));
    }

    #[test]
    fn back_references_and_names() {
        let p = Pattern::new(r"^(?<w>\w+) \k<w>$").expect("backref");
        assert!(p.is_match("go go"));
        assert!(!p.is_match("go stop"));
        assert_eq!(p.group_names(), vec![("w".to_string(), 1)]);
    }

    #[test]
    fn a_runaway_match_counts_as_no_match() {
        let p = Pattern::new(r"^(a+)+(?!x)b$").expect("fancy");
        let subject = "a".repeat(40);
        assert!(!p.is_match(&subject), "over the limit: no match, no hang");
    }

    #[test]
    fn errors_are_regex_s_own() {
        let e = Pattern::new("a(").expect_err("unclosed");
        assert!(e.contains("unclosed group"), "{e}");
    }
}
