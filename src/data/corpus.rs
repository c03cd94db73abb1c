//! Loading a one-sentence-per-line text corpus and splitting it deterministically.

use anyhow::{bail, Result};
use std::path::Path;

/// A tokenized sentence: words as they appear, separated by whitespace in the file.
pub type Sentence = Vec<String>;

/// The three splits of a corpus.
#[derive(Debug, Clone)]
pub struct Splits {
    pub train: Vec<Sentence>,
    pub valid: Vec<Sentence>,
    pub test: Vec<Sentence>,
}

/// Every `SPLIT_PERIOD` non-empty lines, line `VALID_SLOT` goes to validation and
/// line `TEST_SLOT` to test; the rest (90 %) is training data. Interleaving keeps all
/// six novels in every split, and depends on nothing but the line order.
pub const SPLIT_PERIOD: usize = 20;
pub const VALID_SLOT: usize = 18;
pub const TEST_SLOT: usize = 19;

/// Reads a corpus file: UTF-8 text, one sentence per line, tokens separated by whitespace.
/// Empty lines are skipped; `lowercase` folds case.
/// The largest corpus read (and the most of any file read before saying it is too large, so a
/// device like /dev/zero ends in an error, not an endless read).
pub const MAX_CORPUS_BYTES: u64 = 1 << 30;

pub fn load_corpus(path: &Path, lowercase: bool) -> Result<Vec<Sentence>> {
    let bytes = crate::errors::read_limited(path, MAX_CORPUS_BYTES, "corpus")?;
    parse_text(bytes, lowercase, &format!("corpus file {}", path.display()))
}

/// [`load_corpus`] for a file named by an option (`train-file`, `valid-file`, `test-file`):
/// the errors name the option and the file, and a missing or empty file is one of them.
pub fn load_text_file(option: &str, path: &Path, lowercase: bool) -> Result<Vec<Sentence>> {
    super::files::check_text_file(option, path)?;
    let bytes = crate::errors::read_limited(path, MAX_CORPUS_BYTES, option)?;
    parse_text(bytes, lowercase, &format!("{option} {}", path.display()))
}

/// Sentences of a file's bytes; `what` names the file in errors (`corpus file data/x.txt`).
fn parse_text(bytes: Vec<u8>, lowercase: bool, what: &str) -> Result<Vec<Sentence>> {
    if bytes.contains(&0) {
        bail!(
            "{what} looks binary (it contains NUL bytes); expected UTF-8 text, one sentence per line"
        );
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{what} is not valid UTF-8 (first bad byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })?;
    let sentences: Vec<Sentence> = text
        .lines()
        .map(|line| {
            line.split_whitespace()
                .map(|w| {
                    if lowercase {
                        w.to_lowercase()
                    } else {
                        w.to_string()
                    }
                })
                .collect::<Vec<_>>()
        })
        .filter(|s| !s.is_empty())
        .collect();
    if sentences.is_empty() {
        bail!("{what} holds no sentences (it is empty or only whitespace)");
    }
    Ok(sentences)
}

/// Deterministic interleaved split (see [`SPLIT_PERIOD`]).
pub fn split(sentences: Vec<Sentence>) -> Splits {
    let mut splits = Splits {
        train: Vec::new(),
        valid: Vec::new(),
        test: Vec::new(),
    };
    for (i, s) in sentences.into_iter().enumerate() {
        match i % SPLIT_PERIOD {
            VALID_SLOT => splits.valid.push(s),
            TEST_SLOT => splits.test.push(s),
            _ => splits.train.push(s),
        }
    }
    splits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentences(n: usize) -> Vec<Sentence> {
        (0..n).map(|i| vec![format!("w{i}")]).collect()
    }

    #[test]
    fn split_is_deterministic_and_disjoint() {
        let a = split(sentences(1000));
        let b = split(sentences(1000));
        assert_eq!(a.train, b.train);
        assert_eq!(a.valid, b.valid);
        assert_eq!(a.test, b.test);
        assert_eq!((a.train.len(), a.valid.len(), a.test.len()), (900, 50, 50));
        let mut all: Vec<_> = a
            .train
            .iter()
            .chain(&a.valid)
            .chain(&a.test)
            .cloned()
            .collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 1000, "every sentence lands in exactly one split");
        assert_eq!(a.valid[0], vec!["w18".to_string()]);
        assert_eq!(a.test[0], vec!["w19".to_string()]);
    }

    #[test]
    fn load_rejects_binary_and_empty_files() {
        let dir = std::env::temp_dir().join(format!("ablate-corpus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bin = dir.join("bin.txt");
        std::fs::write(&bin, [0u8, 1, 2, 3]).unwrap();
        let err = load_corpus(&bin, false).unwrap_err().to_string();
        assert!(err.contains("binary"), "{err}");
        let empty = dir.join("empty.txt");
        std::fs::write(&empty, "\n  \n").unwrap();
        let err = load_corpus(&empty, false).unwrap_err().to_string();
        assert!(err.contains("no sentences"), "{err}");
        let latin1 = dir.join("latin1.txt");
        std::fs::write(&latin1, [b'c', b'a', b'f', 0xe9, b'\n']).unwrap();
        let err = load_corpus(&latin1, false).unwrap_err().to_string();
        assert!(err.contains("UTF-8"), "{err}");
        let ok = dir.join("ok.txt");
        std::fs::write(&ok, "The Cat sat .\n\nA dog\n").unwrap();
        let s = load_corpus(&ok, true).unwrap();
        assert_eq!(s, vec![vec!["the", "cat", "sat", "."], vec!["a", "dog"]]);
    }
}
