//! Minimal YAML text output: scalar quoting and comment sanitizing.

/// Words a YAML 1.1 or 1.2 reader may take for something other than a string.
const RESERVED: &[&str] = &[
    "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~",
];

/// A YAML scalar for `s`: plain when that reads back as the same string,
/// double-quoted otherwise. Safe inside flow sequences (`[a, b]`) too.
pub(crate) fn scalar(s: &str) -> String {
    if is_plain_safe(s) {
        s.to_string()
    } else {
        quoted(s)
    }
}

fn is_plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if !(first.is_ascii_alphanumeric() || first == '/' || first == '.' || first == '_') {
        return false;
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-' | ':' | '+' | '@'))
    {
        return false;
    }
    if s.ends_with(':') || RESERVED.iter().any(|r| r.eq_ignore_ascii_case(s)) {
        return false;
    }
    !looks_numeric(s)
}

/// Numbers, including YAML 1.1 forms (`0x1f`, `1_000`, `1.2.3`, `1:20`
/// sexagesimal, `.5`, `1e3`, `.inf`). Addresses like `127.0.0.1:80` are not.
fn looks_numeric(s: &str) -> bool {
    let t = s.trim_start_matches(['+', '-']);
    if t.parse::<f64>().is_ok() || t.eq_ignore_ascii_case(".inf") || t.eq_ignore_ascii_case(".nan")
    {
        return true;
    }
    let lower = t.to_ascii_lowercase();
    if lower.starts_with("0x") || lower.starts_with("0o") || lower.starts_with("0b") {
        return true;
    }
    if !t.is_empty()
        && t.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '_' | '.'))
    {
        return true;
    }
    // YAML 1.1 sexagesimal: 190:20:30, optionally with a fraction at the end.
    let mut parts = t.split(':');
    let first = parts.next().unwrap_or("");
    let is_int = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit() || c == '_');
    if !t.contains(':') || !is_int(first) {
        return false;
    }
    let rest: Vec<&str> = parts.collect();
    rest.iter().enumerate().all(|(i, p)| {
        let p = if i + 1 == rest.len() {
            p.split_once('.').map(|(a, _)| a).unwrap_or(p)
        } else {
            p
        };
        (1..=2).contains(&p.len())
            && p.chars().all(|c| c.is_ascii_digit())
            && p.parse::<u8>().is_ok_and(|n| n < 60)
    })
}

/// `s` as a double-quoted YAML scalar.
pub(crate) fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            '\u{feff}' => out.push_str("\\ufeff"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Text safe to put after `#`: anything a YAML reader treats as a line
/// break (or other control character) becomes `?`.
pub(crate) fn comment(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') {
                '?'
            } else {
                c
            }
        })
        .collect()
}

/// Builds YAML text line by line.
#[derive(Debug, Default)]
pub(crate) struct Out {
    text: String,
}

impl Out {
    /// Appends `text` at `indent` levels (two spaces each), with an optional
    /// trailing comment.
    pub fn line(&mut self, indent: usize, text: &str, trailing: Option<&str>) {
        for _ in 0..indent {
            self.text.push_str("  ");
        }
        self.text.push_str(text);
        if let Some(c) = trailing {
            self.text.push_str("  # ");
            self.text.push_str(&comment(c));
        }
        self.text.push('\n');
    }

    /// Appends a whole-line comment.
    pub fn comment(&mut self, indent: usize, text: &str) {
        for _ in 0..indent {
            self.text.push_str("  ");
        }
        self.text.push_str("# ");
        self.text.push_str(&comment(text));
        self.text.push('\n');
    }

    /// Appends an empty line.
    pub fn blank(&mut self) {
        self.text.push('\n');
    }

    /// The text built so far.
    pub fn finish(self) -> String {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_quoted() {
        assert_eq!(scalar("example.com"), "example.com");
        assert_eq!(scalar("*.example.com"), "\"*.example.com\"");
        assert_eq!(scalar("[::]:443"), "\"[::]:443\"");
        assert_eq!(scalar("0.0.0.0:80"), "0.0.0.0:80");
        assert_eq!(scalar("localhost:8082"), "localhost:8082");
        assert_eq!(scalar("/etc/x/fullchain.pem"), "/etc/x/fullchain.pem");
        assert_eq!(scalar("EDIT-ME:443"), "EDIT-ME:443");
        assert_eq!(scalar("on"), "\"on\"");
        assert_eq!(scalar("123"), "\"123\"");
        assert_eq!(scalar("1:20"), "\"1:20\"");
        assert_eq!(scalar("190:20:30.5"), "\"190:20:30.5\"");
        assert_eq!(scalar("8080:80"), "8080:80");
        assert_eq!(scalar("127.0.0.1:8082"), "127.0.0.1:8082");
        assert_eq!(scalar("127.0.0.1"), "\"127.0.0.1\"");
        assert_eq!(scalar("1_000"), "\"1_000\"");
        assert_eq!(scalar("0x1f"), "\"0x1f\"");
        assert_eq!(scalar("inf"), "\"inf\"");
        assert_eq!(scalar("1e3"), "\"1e3\"");
        assert_eq!(scalar(""), "\"\"");
        assert_eq!(scalar("a b"), "\"a b\"");
        assert_eq!(scalar("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
        assert_eq!(scalar("x:"), "\"x:\"");
        assert_eq!(scalar("a,b"), "\"a,b\"");
    }

    #[test]
    fn comments_stay_on_one_line() {
        assert_eq!(comment("a\nb\rc\u{2028}d"), "a?b?c?d");
    }
}
