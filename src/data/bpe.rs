//! Byte-pair-encoding (BPE) subwords for `--tokenizer bpe`: a vocabulary of `--vocab-size`
//! tokens learned from the run's training split with Hugging Face's `tokenizers`, kept as
//! tokenizer JSON in the results folder so the runs of a study train it once.
//!
//! A sentence (its words as [`load_corpus`](super::load_corpus) read them, lowercased unless
//! `--keep-case`) is cut into subword tokens, and from there on the tokens are what words are
//! to the word tokenizer: the same [`Vocab`](super::Vocab) (specials `<pad>` `<unk>` `<bos>`
//! `<eos>` at ids 0-3), the same `<bos> t1 .. tn <eos>` encoding, padding and masks.
//!
//! Words are marked as SentencePiece marks them: each starts with `▁` (U+2581), so a token
//! never spans two words and decoding gives the words back with single spaces between them.
//! The alphabet is every character of the training words (and `▁`), the most frequent when there
//! are more than the vocabulary has room for (the rest become `<unk>`); merges fill the rest of
//! the vocabulary, fewer when the training text runs out of pairs. Training is deterministic:
//! the same sentences and size give the same tokenizer JSON.

use super::corpus::Sentence;
use super::vocab::{SPECIALS, UNK};
use anyhow::{anyhow, bail, Result};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tokenizers::models::bpe::{BpeTrainer, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::{AddedToken, Tokenizer};

/// The mark at the start of every word's first token.
pub const WORD_START: char = '\u{2581}';

/// What the cache name hashes besides the data and the size: changes to how the tokenizer is
/// trained must change it, so that no cache of an earlier scheme is taken for a new one.
const SCHEME: &str = "ablate-bpe-1 tokenizers-0.23 metaspace <pad> <unk> <bos> <eos>";

/// The results folder's subfolder for cached tokenizers (no config.toml: not a run folder).
pub const CACHE_FOLDER: &str = "tokenizers";

/// Sentences per call into the tokenizer when encoding (bounds its per-token bookkeeping).
const ENCODE_CHUNK: usize = 4096;

/// A trained BPE tokenizer.
pub struct Bpe {
    tokenizer: Tokenizer,
}

/// Held while a tokenizer is trained and cached: the jobs of a study that need the same one
/// wait for the first to write it, and then read it.
static CACHING: Mutex<()> = Mutex::new(());

impl Bpe {
    /// Trains a vocabulary of at most `vocab_size` tokens (the four specials included) on
    /// `train`.
    pub fn train(train: &[Sentence], vocab_size: usize) -> Result<Self> {
        if vocab_size <= SPECIALS.len() {
            bail!(
                "vocabulary size {vocab_size} leaves no room for tokens: it must exceed the {} special tokens",
                SPECIALS.len()
            );
        }
        let specials = SPECIALS
            .iter()
            .map(|s| AddedToken::from(*s, true))
            .collect();
        let mut chars: HashMap<char, u64> = HashMap::new();
        let mut words: HashSet<&str> = HashSet::new();
        for word in train.iter().flatten() {
            *chars.entry(WORD_START).or_default() += 1;
            for c in word.chars() {
                *chars.entry(c).or_default() += 1;
            }
            words.insert(word.as_str());
        }
        // the word mark first: without it no word could start
        chars.insert(WORD_START, u64::MAX);
        // vocab-size is a cap: the text gives at most its characters and one merge per
        // character of each distinct word (the trainer stops there), so a larger cap gives the
        // same tokenizer; the trainer reserves room for the whole cap, which a huge one would
        // not find in memory
        let can_give =
            SPECIALS.len() + chars.len() + words.iter().map(|w| w.chars().count()).sum::<usize>();
        let vocab_size = vocab_size.min(can_give);
        let mut builder = BpeTrainer::builder()
            .vocab_size(vocab_size)
            .show_progress(false)
            .special_tokens(specials);
        // more characters than room: keep the most frequent (ties by code point) ourselves, so
        // the choice does not depend on hash order as the trainer's own cut would
        let budget = vocab_size - SPECIALS.len();
        if chars.len() > budget {
            let mut by_count: Vec<(char, u64)> = chars.into_iter().collect();
            by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let kept: HashSet<char> = by_count[..budget].iter().map(|&(c, _)| c).collect();
            builder = builder.initial_alphabet(kept).limit_alphabet(budget);
        }
        let model = BPE::builder()
            .unk_token(SPECIALS[UNK].to_string())
            .build()
            .map_err(|e| anyhow!("cannot set up the BPE model: {e}"))?;
        let mut tokenizer = Tokenizer::new(model);
        let metaspace = Metaspace::new(WORD_START, PrependScheme::Always, true);
        tokenizer.with_pre_tokenizer(Some(metaspace.clone()));
        tokenizer.with_decoder(Some(metaspace));
        let mut trainer: TrainerWrapper = builder.build().into();
        tokenizer
            .train(&mut trainer, train.iter().map(|s| s.join(" ")))
            .map_err(|e| anyhow!("training the BPE vocabulary failed: {e}"))?;
        Self::checked(tokenizer, vocab_size)
    }

    /// The tokenizer for `train` and `vocab_size`: read from `results/tokenizers/` when a run
    /// trained it before, else trained and written there. `results: None` trains it without
    /// caching. A cache file that cannot be read is trained again; one that cannot be written
    /// leaves a warning.
    pub fn obtain(train: &[Sentence], vocab_size: usize, results: Option<&Path>) -> Result<Self> {
        let Some(results) = results else {
            return Self::train(train, vocab_size);
        };
        let path = cache_path(results, train, vocab_size);
        let _held = CACHING.lock().unwrap_or_else(|p| p.into_inner());
        if path.is_file() {
            let cached = std::fs::read(&path)
                .map_err(anyhow::Error::from)
                .and_then(|bytes| Self::from_json(&bytes, vocab_size));
            match cached {
                Ok(bpe) => return Ok(bpe),
                Err(e) => eprintln!(
                    "ablate: warning: cached tokenizer {} is unusable ({}); training it again",
                    path.display(),
                    crate::errors::one_line(&format!("{e:#}"))
                ),
            }
        }
        let bpe = Self::train(train, vocab_size)?;
        let written = bpe.to_json().and_then(|json| {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            write_atomic(&path, json.as_bytes())
        });
        if let Err(e) = written {
            eprintln!(
                "ablate: warning: cannot cache the tokenizer as {} ({}); the next run trains it again",
                path.display(),
                crate::errors::one_line(&format!("{e:#}"))
            );
        }
        Ok(bpe)
    }

    /// A tokenizer from its JSON, checked as a trained one is.
    pub fn from_json(bytes: &[u8], vocab_size: usize) -> Result<Self> {
        let tokenizer = Tokenizer::from_bytes(bytes).map_err(|e| anyhow!("{e}"))?;
        Self::checked(tokenizer, vocab_size)
    }

    /// The tokenizer as Hugging Face's tokenizer JSON (`Tokenizer.from_file` reads it).
    pub fn to_json(&self) -> Result<String> {
        self.tokenizer
            .to_string(false)
            .map_err(|e| anyhow!("cannot serialize the tokenizer: {e}"))
    }

    /// Refuses a tokenizer whose first ids are not the specials, in order, or that is larger
    /// than `vocab_size`.
    fn checked(tokenizer: Tokenizer, vocab_size: usize) -> Result<Self> {
        let bpe = Self { tokenizer };
        let len = bpe.len();
        if len > vocab_size {
            bail!("the tokenizer has {len} tokens, more than the vocabulary size {vocab_size}");
        }
        for (id, special) in SPECIALS.iter().enumerate() {
            let got = bpe.tokenizer.id_to_token(id as u32);
            if got.as_deref() != Some(*special) {
                bail!("the tokenizer's id {id} is {got:?}, not {special}");
            }
        }
        Ok(bpe)
    }

    /// Tokens, specials included.
    pub fn len(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every token in id order (the specials first).
    pub fn tokens(&self) -> Result<Vec<String>> {
        (0..self.len())
            .map(|id| {
                self.tokenizer
                    .id_to_token(id as u32)
                    .ok_or_else(|| anyhow!("the tokenizer has no token of id {id}"))
            })
            .collect()
    }

    /// Each sentence as its subword tokens (`<unk>` for characters outside the alphabet).
    pub fn pieces(&self, sentences: &[Sentence]) -> Result<Vec<Sentence>> {
        let tokens = self.tokens()?;
        let mut out = Vec::with_capacity(sentences.len());
        for chunk in sentences.chunks(ENCODE_CHUNK) {
            let text: Vec<String> = chunk.iter().map(|s| s.join(" ")).collect();
            // the fast encoding leaves the token strings out: they are looked up by id
            let encodings = self
                .tokenizer
                .encode_batch_fast(text, false)
                .map_err(|e| anyhow!("BPE encoding failed: {e}"))?;
            for e in encodings {
                let sentence = e
                    .get_ids()
                    .iter()
                    .map(|&id| {
                        tokens.get(id as usize).cloned().ok_or_else(|| {
                            anyhow!("BPE encoding gave id {id}, outside the vocabulary")
                        })
                    })
                    .collect::<Result<Sentence>>()?;
                out.push(sentence);
            }
        }
        Ok(out)
    }

    /// Token ids back to text (specials left out): the words separated by single spaces.
    pub fn decode(&self, ids: &[usize]) -> Result<String> {
        let ids: Vec<u32> = ids.iter().map(|&i| i as u32).collect();
        self.tokenizer
            .decode(&ids, true)
            .map_err(|e| anyhow!("BPE decoding failed: {e}"))
    }
}

/// `results/tokenizers/bpe-<size>-<digest>.json`: the digest is SHA-256 of the training
/// sentences (as read: lowercased unless --keep-case), the size and the training scheme.
pub fn cache_path(results: &Path, train: &[Sentence], vocab_size: usize) -> PathBuf {
    let mut h = Sha256::new();
    h.update(SCHEME.as_bytes());
    h.update(format!("\nvocab_size={vocab_size}\n").as_bytes());
    for sentence in train {
        for (i, word) in sentence.iter().enumerate() {
            if i > 0 {
                h.update(b" ");
            }
            h.update(word.as_bytes());
        }
        h.update(b"\n");
    }
    let digest = super::files::hex(h);
    results
        .join(CACHE_FOLDER)
        .join(format!("bpe-{vocab_size}-{}.json", &digest[..16]))
}

/// Writes `contents` through a temporary file (`<path>.tmp.<pid>`) and a rename, so a reader
/// never sees half a tokenizer, and two processes writing the same one leave one whole file.
fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("json.tmp.{}", std::process::id()));
    let written = std::fs::write(&tmp, contents).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(written?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::vocab::{Vocab, BOS, EOS};

    /// Short sentences over a small vocabulary with shared stems, so merges have work to do.
    fn sentences(n: usize) -> Vec<Sentence> {
        let stems = [
            "walk", "talk", "play", "read", "jump", "cook", "paint", "sing",
        ];
        let ends = ["", "s", "ed", "ing", "er", "ers"];
        let nouns = [
            "the cat",
            "a dog",
            "my friend",
            "the teacher",
            "her brother",
        ];
        (0..n)
            .map(|i| {
                let text = format!(
                    "{} {}{} {} today .",
                    nouns[i % nouns.len()],
                    stems[(i * 7) % stems.len()],
                    ends[(i * 5) % ends.len()],
                    if i % 3 == 0 { "quickly" } else { "slowly" }
                );
                text.split_whitespace().map(String::from).collect()
            })
            .collect()
    }

    #[test]
    fn encoding_then_decoding_gives_the_sentence_back_and_the_size_is_capped() {
        let train = sentences(300);
        let bpe = Bpe::train(&train, 60).unwrap();
        // the trainer stops at the size asked for, or earlier when no pair is left to merge
        assert!(bpe.len() <= 60, "{}", bpe.len());
        assert!(bpe.len() > SPECIALS.len() + 20, "{}", bpe.len());
        assert_eq!(&bpe.tokens().unwrap()[..4], &SPECIALS);
        let pieces = bpe.pieces(&train).unwrap();
        let vocab = Vocab::from_tokens(bpe.tokens().unwrap(), &pieces).unwrap();
        assert_eq!(vocab.len(), bpe.len());
        for (sentence, tokens) in train.iter().zip(&pieces).take(20) {
            assert!(tokens[0].starts_with(WORD_START), "{tokens:?}");
            assert!(tokens.len() >= sentence.len());
            let ids = vocab.encode(tokens);
            assert_eq!((ids[0], *ids.last().unwrap()), (BOS, EOS));
            assert!(!ids.contains(&UNK), "{tokens:?}");
            assert_eq!(bpe.decode(&ids).unwrap(), sentence.join(" "));
        }
        // a size larger than the data supports: every pair merged, fewer tokens than asked
        let all = Bpe::train(&train, 10_000).unwrap();
        assert!(all.len() < 10_000);
        let whole = all.pieces(&train[..5]).unwrap();
        for (s, p) in train[..5].iter().zip(&whole) {
            assert_eq!(p.len(), s.len(), "every word one token: {p:?}");
        }
    }

    #[test]
    fn training_is_deterministic_and_round_trips_through_json() {
        let train = sentences(200);
        let a = Bpe::train(&train, 50).unwrap();
        let b = Bpe::train(&train, 50).unwrap();
        assert_eq!(a.to_json().unwrap(), b.to_json().unwrap());
        let back = Bpe::from_json(a.to_json().unwrap().as_bytes(), 50).unwrap();
        assert_eq!(back.tokens().unwrap(), a.tokens().unwrap());
        assert_eq!(back.pieces(&train).unwrap(), a.pieces(&train).unwrap());
        assert!(Bpe::from_json(a.to_json().unwrap().as_bytes(), 10).is_err());
        assert!(Bpe::train(&train, 4).is_err());
    }

    #[test]
    fn a_small_vocabulary_keeps_the_most_frequent_characters_and_the_rest_is_unknown() {
        let train: Vec<Sentence> = vec![
            vec!["aaaa".into(), "bbb".into()],
            vec!["aab".into(), "c".into()],
        ];
        // room for 2 characters besides the specials: `▁` (always) and `a` (6 times); `b`
        // (4) and `c` (1) become `<unk>`
        let bpe = Bpe::train(&train, 6).unwrap();
        assert_eq!(bpe.len(), 6);
        assert_eq!(&bpe.tokens().unwrap()[4..], &["a", "▁"]);
        let pieces = bpe.pieces(&[vec!["ab".into()]]).unwrap();
        assert_eq!(pieces[0], vec!["▁", "a", "<unk>"]);
    }

    #[test]
    fn the_cache_is_written_once_and_read_back() {
        let dir = std::env::temp_dir().join(format!("ablate-bpe-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let train = sentences(100);
        let path = cache_path(&dir, &train, 40);
        assert!(path.starts_with(dir.join(CACHE_FOLDER)));
        let a = Bpe::obtain(&train, 40, Some(&dir)).unwrap();
        let json = std::fs::read_to_string(&path).unwrap();
        assert_eq!(json, a.to_json().unwrap());
        let b = Bpe::obtain(&train, 40, Some(&dir)).unwrap();
        assert_eq!(b.tokens().unwrap(), a.tokens().unwrap());
        // other data or another size: another file
        assert_ne!(cache_path(&dir, &train[1..], 40), path);
        assert_ne!(cache_path(&dir, &train, 41), path);
        // a damaged cache is trained again and rewritten
        std::fs::write(&path, "{").unwrap();
        let c = Bpe::obtain(&train, 40, Some(&dir)).unwrap();
        assert_eq!(c.tokens().unwrap(), a.tokens().unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), json);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
