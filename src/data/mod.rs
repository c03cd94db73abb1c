//! Data: the text corpus (vocabulary, split, padded batches with masks) and the image set.

pub mod batcher;
pub mod corpus;
pub mod fetch;
pub mod images;
pub mod vocab;

pub use batcher::{
    BatchPlan, EncodedSplit, EvalBatching, Example, TextBatch, TextTensors, TrainBatches,
};
pub use corpus::{load_corpus, split, Sentence, Splits};
pub use vocab::Vocab;

use anyhow::{bail, Result};
use std::path::Path;

/// Everything a text run needs from its corpus.
pub struct TextData {
    pub vocab: Vocab,
    pub train: EncodedSplit,
    pub valid: EncodedSplit,
    /// Unigram cross-entropy (nats/token) on the validation split: the baseline to beat.
    pub unigram_valid_loss: f64,
}

impl TextData {
    pub fn load(path: &Path, lowercase: bool, vocab_size: usize, max_len: usize) -> Result<Self> {
        let splits = split(load_corpus(path, lowercase)?);
        if splits.train.is_empty() || splits.valid.is_empty() {
            bail!(
                "corpus file {} is too small: it needs at least {} sentences to give a validation split",
                path.display(),
                corpus::VALID_SLOT + 1
            );
        }
        // +1: the model reads <bos> w1 .. wn
        let shortest = splits.train.iter().map(|s| s.len() + 1).min().unwrap_or(0);
        if shortest > max_len {
            bail!(
                "every training sentence of {} is longer than the max length {max_len} (the shortest needs {shortest} tokens): raise --max-len",
                path.display()
            );
        }
        let vocab = Vocab::build(&splits.train, vocab_size)?;
        let unigram_valid_loss = vocab.unigram_cross_entropy(&splits.valid);
        Ok(Self {
            train: batcher::encode_split(&splits.train, &vocab, max_len)?,
            valid: batcher::encode_split(&splits.valid, &vocab, max_len)?,
            vocab,
            unigram_valid_loss,
        })
    }
}
