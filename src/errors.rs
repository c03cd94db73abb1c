//! Error wording shared by every command: one line per error, the option named as the user
//! writes it, and a "did you mean" for typos.

use anyhow::{bail, Result};

/// `name must be at least 1 (got 0)` unless `v` is positive.
pub fn ensure_positive(name: &str, v: usize) -> Result<()> {
    if v == 0 {
        bail!("{name} must be at least 1 (got 0)");
    }
    Ok(())
}

/// `name must be a positive number (got v)` unless `v` is finite and above 0.
pub fn ensure_positive_number(name: &str, v: f64) -> Result<()> {
    if !(v.is_finite() && v > 0.0) {
        bail!("{name} must be a positive number (got {v})");
    }
    Ok(())
}

/// `name must be within [lo, hi] (got v)` unless `v` is a finite number in the range.
pub fn ensure_within(name: &str, v: f64, lo: f64, hi: f64) -> Result<()> {
    if !(v.is_finite() && v >= lo && v <= hi) {
        bail!("{name} must be within [{lo}, {hi}] (got {v})");
    }
    Ok(())
}

/// Levenshtein distance, for "did you mean" suggestions.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for j in 0..b.len() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != b[j]))
                .min(row[j] + 1)
                .min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The closest of `candidates` to `word`, if it is close enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Rewrites serde's "unknown field `x`, expected one of `a`, `b`" (and "unknown variant")
/// into a short message that suggests the closest valid name.
pub fn friendly(msg: &str) -> String {
    for kind in ["field", "variant"] {
        let tag = format!("unknown {kind} `");
        let Some(start) = msg.find(&tag) else {
            continue;
        };
        let rest = &msg[start + tag.len()..];
        let Some(end) = rest.find('`') else { continue };
        let word = &rest[..end];
        let expected: Vec<&str> = rest[end..].split('`').skip(2).step_by(2).collect();
        let what = if kind == "field" { "key" } else { "value" };
        let hint = match closest(word, expected.iter().copied()) {
            Some(c) => format!(" (did you mean `{c}`?)"),
            None if !expected.is_empty() => format!(" (valid: {})", expected.join(", ")),
            None => String::new(),
        };
        return format!("{}unknown {what} `{word}`{hint}", &msg[..start]);
    }
    msg.to_string()
}

/// toml's errors span several lines (position, a source excerpt with carets, the message);
/// keep them on one line: `line L, column C: message`.
pub fn one_line(msg: &str) -> String {
    let excerpt = |l: &str| {
        let l = l.trim();
        l.starts_with('|')
            || l.chars().all(|c| c == '^' || c == ' ')
            || l.split_once(" |")
                .is_some_and(|(n, _)| n.trim().chars().all(|c| c.is_ascii_digit()))
    };
    let mut parts: Vec<String> = Vec::new();
    for l in msg
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !excerpt(l))
    {
        match l.strip_prefix("TOML parse error at ") {
            Some(pos) => parts.push(format!("{pos}:")),
            None => parts.push(l.to_string()),
        }
    }
    parts.join(" ")
}

/// Reads `path` (a `what` file: "corpus", "config", ...) whole, refusing one larger than
/// `limit` bytes before reading further: a device such as /dev/zero or a huge file gets a clear
/// error instead of filling the memory.
pub fn read_limited(path: &std::path::Path, limit: u64, what: &str) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context;
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(limit + 1).read_to_end(&mut bytes))
        .with_context(|| format!("cannot read {what} file {}", path.display()))?;
    if bytes.len() as u64 > limit {
        anyhow::bail!(
            "{what} file {} is larger than {}, the most ablate reads for it",
            path.display(),
            if limit >= 1 << 20 {
                format!("{} MiB", limit >> 20)
            } else {
                format!("{} KiB", limit >> 10)
            }
        );
    }
    Ok(bytes)
}

/// [`read_limited`] as UTF-8 text.
pub fn read_text_limited(path: &std::path::Path, limit: u64, what: &str) -> anyhow::Result<String> {
    let bytes = read_limited(path, limit, what)?;
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{what} file {} is not UTF-8 text (first bad byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

/// Largest config or study file read (far above any real one).
pub const MAX_SETTINGS_BYTES: u64 = 16 << 20;
