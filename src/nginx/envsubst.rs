//! nginx configurations that are `envsubst` templates.
//!
//! The official nginx Docker image runs `envsubst` over
//! `/etc/nginx/templates/*.template` before nginx starts, so a site can take
//! its host names and upstream URLs from the container's environment:
//! `server_name ${DOMAIN};`, `set $app ${APP_URL}; proxy_pass $app;`. Such a
//! file is recognised by `${NAME}` references whose name is upper case
//! (nginx's own variables are written in lower case). greenlight reads the
//! environment itself (`{$NAME}` in its YAML, `src/config/env.rs`), so the
//! importer keeps each reference as one: the converted site takes the same
//! values from the same environment, at load instead of at container start.

/// The name of an envsubst reference `${NAME}` starting at the beginning of
/// `s`, and the reference's length.
fn reference(s: &str) -> Option<(&str, usize)> {
    let body = s.strip_prefix("${")?;
    let end = body.find('}')?;
    let name = &body[..end];
    // At least one letter: `${_}` is not an envsubst name anyone writes.
    let upper = crate::config::env::is_name(name) && name.bytes().any(|b| b.is_ascii_uppercase());
    upper.then_some((name, 2 + end + 1))
}

/// True when `text` holds at least one envsubst reference.
pub(super) fn has_refs(text: &str) -> bool {
    text.match_indices("${")
        .any(|(i, _)| reference(&text[i..]).is_some())
}

/// `text` with every `${NAME}` written as greenlight's `{$NAME}`.
pub(super) fn to_greenlight(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        match reference(&rest[i..]) {
            Some((name, len)) => {
                out.push_str("{$");
                out.push_str(name);
                out.push('}');
                rest = &rest[i + len..];
            }
            None => {
                out.push_str("${");
                rest = &rest[i + 2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The name when `text` is one envsubst reference and nothing else.
pub(super) fn whole(text: &str) -> Option<&str> {
    reference(text).and_then(|(name, len)| (len == text.len()).then_some(name))
}

/// True when `text`, with its envsubst references taken out, has no nginx
/// variable left (only then is it a literal once the environment is read).
pub(super) fn literal_but_refs(text: &str) -> bool {
    let mut rest = text;
    loop {
        match rest.find('$') {
            None => return true,
            Some(i) => match reference(&rest[i..]) {
                Some((_, len)) => rest = &rest[i + len..],
                None => return false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_case_references_are_envsubst_and_become_greenlights() {
        assert!(has_refs("de.${GW2T_DOMAIN}"));
        assert!(!has_refs("${request_uri}") && !has_refs("$HOST") && !has_refs("${_}"));
        assert_eq!(
            to_greenlight("pma.${DOMAIN}:${PORT2}/${uri}"),
            "pma.{$DOMAIN}:{$PORT2}/${uri}"
        );
        assert_eq!(whole("${APP_URL}"), Some("APP_URL"));
        assert_eq!(whole("${APP_URL}/x"), None);
        assert!(literal_but_refs("www.${DOMAIN}"));
        assert!(!literal_but_refs("${DOMAIN}$request_uri"));
    }
}
