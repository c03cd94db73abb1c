//! The vocabulary: the words (or, with `--tokenizer bpe`, the subword tokens) a model reads,
//! built from the training split only.

use super::corpus::Sentence;
use anyhow::{bail, Result};
use std::collections::HashMap;

pub const PAD: usize = 0;
pub const UNK: usize = 1;
pub const BOS: usize = 2;
pub const EOS: usize = 3;
pub const SPECIALS: [&str; 4] = ["<pad>", "<unk>", "<bos>", "<eos>"];

#[derive(Debug, Clone)]
pub struct Vocab {
    words: Vec<String>,
    index: HashMap<String, usize>,
    /// Training-split count of each id (specials: <eos> counts one per sentence, others 0);
    /// used for the unigram baseline.
    counts: Vec<u64>,
}

impl Vocab {
    /// The `max_size` (specials included) most frequent training words; ties broken
    /// alphabetically so the vocabulary does not depend on hash order.
    pub fn build(train: &[Sentence], max_size: usize) -> Result<Self> {
        if max_size <= SPECIALS.len() {
            bail!(
                "vocabulary size {max_size} leaves no room for words: it must exceed the {} special tokens",
                SPECIALS.len()
            );
        }
        let mut freq: HashMap<&str, u64> = HashMap::new();
        for s in train {
            for w in s {
                *freq.entry(w.as_str()).or_default() += 1;
            }
        }
        // a special token written in the text (`<unk>` in WikiText's files) is that token, not
        // a word beside it
        // (`<pad>`, `<bos>`, `<eos>` written in the text read as `<unk>`: see `id`)
        let literal_specials: u64 = SPECIALS.iter().filter_map(|s| freq.get(s)).sum();
        let mut by_freq: Vec<(&str, u64)> = freq
            .into_iter()
            .filter(|(w, _)| !SPECIALS.contains(w))
            .collect();
        by_freq.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let mut words: Vec<String> = SPECIALS.iter().map(|s| s.to_string()).collect();
        let mut counts = vec![0u64; SPECIALS.len()];
        let mut unk_count = literal_specials;
        for (i, (w, c)) in by_freq.iter().enumerate() {
            if i < max_size - SPECIALS.len() {
                words.push(w.to_string());
                counts.push(*c);
            } else {
                unk_count += c;
            }
        }
        counts[UNK] = unk_count;
        counts[EOS] = train.len() as u64;
        let index = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i))
            .collect();
        Ok(Self {
            words,
            index,
            counts,
        })
    }

    /// The vocabulary of a subword tokenizer: its `tokens` in id order, which must begin with
    /// [`SPECIALS`] in order, and counts from the training split cut into those tokens (for the
    /// unigram baseline, as [`Vocab::build`] counts words).
    pub fn from_tokens(tokens: Vec<String>, train: &[Sentence]) -> Result<Self> {
        if tokens.len() <= SPECIALS.len() || tokens[..SPECIALS.len()] != SPECIALS {
            bail!(
                "a subword vocabulary must begin with the special tokens {SPECIALS:?} (it begins {:?})",
                &tokens[..tokens.len().min(SPECIALS.len())]
            );
        }
        let index: HashMap<String, usize> = tokens
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i))
            .collect();
        if index.len() != tokens.len() {
            bail!("a subword vocabulary names a token twice");
        }
        let mut counts = vec![0u64; tokens.len()];
        for w in train.iter().flatten() {
            counts[*index.get(w).unwrap_or(&UNK)] += 1;
        }
        counts[EOS] += train.len() as u64;
        Ok(Self {
            words: tokens,
            index,
            counts,
        })
    }

    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// A word's id; `<unk>` for a word outside the vocabulary and for `<pad>`, `<bos>` or
    /// `<eos>` written in the text (which must not pass for padding or a sentence boundary).
    pub fn id(&self, word: &str) -> usize {
        match self.index.get(word) {
            Some(&i) if i >= SPECIALS.len() || i == UNK => i,
            _ => UNK,
        }
    }

    pub fn word(&self, id: usize) -> &str {
        &self.words[id]
    }

    /// `<bos> w1 .. wn <eos>` as ids.
    pub fn encode(&self, sentence: &Sentence) -> Vec<usize> {
        let mut ids = Vec::with_capacity(sentence.len() + 2);
        ids.push(BOS);
        ids.extend(sentence.iter().map(|w| self.id(w)));
        ids.push(EOS);
        ids
    }

    /// Cross-entropy (nats per token) of a unigram model fitted on the training counts,
    /// evaluated on `sentences` (every predicted token: words and `<eos>`). This is the
    /// baseline a language model must beat.
    pub fn unigram_cross_entropy(&self, sentences: &[Sentence]) -> f64 {
        let total: u64 = self.counts.iter().sum();
        // add-one smoothing so an id absent from training has finite loss
        let denom = (total + self.counts.len() as u64) as f64;
        let mut nll = 0.0;
        let mut n = 0usize;
        for s in sentences {
            for &id in &self.encode(s)[1..] {
                nll -= ((self.counts[id] + 1) as f64 / denom).ln();
                n += 1;
            }
        }
        nll / n.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(s: &str) -> Sentence {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn vocabulary_is_deterministic_and_capped() {
        let train = vec![sent("b a c a"), sent("c a d"), sent("e")];
        let v = Vocab::build(&train, 6).unwrap();
        // a:3, c:2, then b, d, e tie at 1 -> alphabetical, only "b" fits
        assert_eq!(v.len(), 6);
        assert_eq!(v.word(4), "a");
        assert_eq!(v.word(5), "c");
        assert_eq!(v.id("b"), UNK);
        assert_eq!(v.encode(&sent("a zzz c")), vec![BOS, 4, UNK, 5, EOS]);
        let again = Vocab::build(&train, 6).unwrap();
        assert_eq!(v.words, again.words);
        assert!(Vocab::build(&train, 4).is_err());
    }

    #[test]
    fn special_tokens_written_in_the_text_read_as_unknown() {
        let train = vec![sent("a <unk> b <pad> a"), sent("<eos> a")];
        let v = Vocab::build(&train, 10).unwrap();
        // no second "<unk>" (or "<pad>") word beside the specials
        assert_eq!(v.len(), 4 + 2);
        assert_eq!(v.id("<unk>"), UNK);
        assert_eq!(v.id("<pad>"), UNK);
        assert_eq!(v.id("<eos>"), UNK);
        assert_eq!(v.encode(&sent("a <pad> b")), vec![BOS, 4, UNK, 5, EOS]);
        // the three written specials count as unknown words
        assert_eq!(v.counts[UNK], 3);
    }

    #[test]
    fn unigram_cross_entropy_by_hand() {
        let train = vec![sent("a a b")];
        let v = Vocab::build(&train, 10).unwrap();
        // counts: pad 0, unk 0, bos 0, eos 1, a 2, b 1 -> total 4, +6 smoothing = 10
        let ce = v.unigram_cross_entropy(&[sent("a")]);
        let expect = -((3.0f64 / 10.0).ln() + (2.0f64 / 10.0).ln()) / 2.0;
        assert!((ce - expect).abs() < 1e-12, "{ce} vs {expect}");
    }
}
