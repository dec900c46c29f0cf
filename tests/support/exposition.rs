//! A strict reader of the Prometheus text exposition format (0.0.4), for
//! checking what `/metrics` serves: a standard parser (prometheus-parse)
//! skips or misreads what it cannot parse — a label value holding `=` or an
//! escaped `\\`, for one — so tests that must not be fooled read samples and
//! `# TYPE` lines here.

use std::collections::{BTreeMap, HashMap, HashSet};

/// What [`check_exposition`] read.
#[derive(Debug)]
pub struct Exposition {
    /// Every sample line.
    pub sample_lines: usize,
    /// Histogram `_bucket` lines and summary quantile lines.
    pub grouped_lines: usize,
    /// Distinct series those lines belong to (name and labels but `le`/`quantile`).
    pub groups: usize,
    /// Every family's `# TYPE`: name to `counter`, `gauge`, `histogram`, ...
    pub types: BTreeMap<String, String>,
    /// Every sample: its name (with `_bucket`/`_sum`/`_count` for a
    /// histogram), its labels (unescaped) and its value.
    pub samples: Vec<(String, Labels, f64)>,
}

impl Exposition {
    /// The sum of the samples named `name` whose labels include every pair
    /// of `want` (0 when none does).
    pub fn value(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, labels, _)| {
                n == name
                    && want
                        .iter()
                        .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }
}

fn valid_metric_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !n.starts_with("__")
}

/// A Go-style float as the format allows it: digits, sign, point, exponent,
/// or exactly `+Inf`, `-Inf`, `NaN`.
fn valid_value(v: &str) -> bool {
    matches!(v, "+Inf" | "-Inf" | "NaN")
        || (!v.is_empty()
            && v.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c))
            && v.chars().any(|c| c.is_ascii_digit())
            && v.parse::<f64>().is_ok())
}

/// A sample's labels, in order.
pub type Labels = Vec<(String, String)>;

/// Parses `{` already consumed: `name="value",...}`; returns the labels and
/// the rest of the line, or why it is malformed.
fn parse_labels(s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Labels::new();
    let mut rest = s;
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let (name, after) = rest.split_once('=').ok_or("label without `=`")?;
        if !valid_label_name(name) {
            return Err(format!("invalid label name {name:?}"));
        }
        if labels.iter().any(|(n, _)| n == name) {
            return Err(format!("label {name:?} twice"));
        }
        let mut chars = after
            .strip_prefix('"')
            .ok_or_else(|| format!("label {name:?}: value not quoted"))?
            .char_indices();
        let mut value = String::new();
        let end = loop {
            match chars.next() {
                None => return Err(format!("label {name:?}: unterminated value")),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next().map(|(_, c)| c) {
                    Some('n') => value.push('\n'),
                    Some('\\') => value.push('\\'),
                    Some('"') => value.push('"'),
                    other => return Err(format!("label {name:?}: bad escape \\{other:?}")),
                },
                Some((_, c)) => value.push(c),
            }
        };
        labels.push((name.to_string(), value));
        rest = &after[1 + end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if !rest.starts_with('}') {
            return Err("labels not separated by `,`".into());
        }
    }
}

/// A strict reading of the text exposition format 0.0.4: every non-empty,
/// non-`#` line is `name{labels} value [timestamp]` with a valid metric name,
/// well-formed quoted and escaped label values and a float value; every
/// family has exactly one `# HELP` and one `# TYPE`, both before its
/// samples, and its samples form one group; no series appears twice.
pub fn check_exposition(text: &str) -> Result<Exposition, String> {
    let mut help: HashSet<&str> = HashSet::new();
    let mut types: HashMap<&str, &str> = HashMap::new();
    let mut finished: HashSet<&str> = HashSet::new();
    let mut current: Option<&str> = None;
    let mut series: HashSet<String> = HashSet::new();
    let mut groups: HashSet<String> = HashSet::new();
    let mut out = Exposition {
        sample_lines: 0,
        grouped_lines: 0,
        groups: 0,
        types: BTreeMap::new(),
        samples: Vec::new(),
    };
    for (n, line) in text.lines().enumerate() {
        let at = |why: String| format!("line {}: {why}: {line:?}", n + 1);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let mut words = rest.trim_start().splitn(3, ' ');
            let (kind, name, tail) = (words.next(), words.next(), words.next());
            let Some(name) = name.filter(|_| matches!(kind, Some("HELP" | "TYPE"))) else {
                continue; // a plain comment
            };
            if !valid_metric_name(name) {
                return Err(at(format!("invalid family name {name:?}")));
            }
            if finished.contains(name) || current == Some(name) {
                return Err(at(format!("{name}: HELP/TYPE after its samples")));
            }
            if kind == Some("HELP") {
                if !help.insert(name) {
                    return Err(at(format!("{name}: HELP twice")));
                }
            } else {
                let ty = tail.unwrap_or("");
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&ty) {
                    return Err(at(format!("unknown type {ty:?}")));
                }
                if types.insert(name, ty).is_some() {
                    return Err(at(format!("{name}: TYPE twice")));
                }
            }
            continue;
        }
        let name_end = line
            .find(['{', ' ', '\t'])
            .ok_or_else(|| at("no value".into()))?;
        let name = &line[..name_end];
        if !valid_metric_name(name) {
            return Err(at(format!("invalid metric name {name:?}")));
        }
        let (labels, rest) = match line[name_end..].strip_prefix('{') {
            Some(r) => parse_labels(r).map_err(at)?,
            None => (Vec::new(), &line[name_end..]),
        };
        if !rest.starts_with([' ', '\t']) {
            return Err(at("no blank before the value".into()));
        }
        let mut fields = rest.split([' ', '\t']).filter(|f| !f.is_empty());
        let value = fields.next().unwrap_or("");
        if !valid_value(value) {
            return Err(at(format!("value {value:?} is not a float")));
        }
        let number: f64 = value.parse().unwrap_or(f64::NAN);
        if let Some(ts) = fields.next()
            && ts.parse::<i64>().is_err()
        {
            return Err(at(format!("timestamp {ts:?} is not an integer")));
        }
        if fields.next().is_some() {
            return Err(at("trailing text".into()));
        }
        let family = if types.contains_key(name) {
            name
        } else {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    let base = name.strip_suffix(suffix)?;
                    let ty = *types.get(base)?;
                    let ok = ty == "histogram" || (ty == "summary" && *suffix != "_bucket");
                    ok.then_some(base)
                })
                .ok_or_else(|| at(format!("{name}: sample before its # TYPE")))?
        };
        if !help.contains(family) {
            return Err(at(format!("{family}: sample before its # HELP")));
        }
        if current != Some(family) {
            if finished.contains(family) {
                return Err(at(format!("{family}: samples not in one group")));
            }
            if let Some(previous) = current.replace(family) {
                finished.insert(previous);
            }
        }
        let mut sorted = labels.clone();
        sorted.sort();
        if !series.insert(format!("{name}{sorted:?}")) {
            return Err(at("the same series twice".into()));
        }
        out.sample_lines += 1;
        out.samples.push((name.to_string(), labels.clone(), number));
        let grouping = match types[family] {
            "histogram" if name.ends_with("_bucket") => Some("le"),
            "summary" if name == family => Some("quantile"),
            _ => None,
        };
        if let Some(key) = grouping {
            let bound = labels.iter().find(|(k, _)| k == key);
            if !bound.is_some_and(|(_, v)| valid_value(v)) {
                return Err(at(format!("{name}: no valid `{key}` label")));
            }
            sorted.retain(|(k, _)| k != key);
            groups.insert(format!("{name}{sorted:?}"));
            out.grouped_lines += 1;
        }
    }
    if let Some(name) = types.keys().find(|t| !help.contains(*t)) {
        return Err(format!("{name}: TYPE without HELP"));
    }
    if let Some(name) = help.iter().find(|h| !types.contains_key(*h)) {
        return Err(format!("{name}: HELP without TYPE"));
    }
    out.groups = groups.len();
    out.types = types
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Ok(out)
}
