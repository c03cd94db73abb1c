//! Data: the text corpus (vocabulary, split, padded batches with masks) and the image set.
//!
//! Text comes from one corpus split deterministically ([`split`]) or from split files of the
//! user's own ([`TextSource::Files`]), and is cut into words or BPE subwords ([`TokenizerKind`]).

pub mod batcher;
pub mod bpe;
pub mod corpus;
pub mod fetch;
pub mod files;
pub mod images;
pub mod vocab;

pub use batcher::{
    BatchPlan, EncodedSplit, EvalBatching, Example, TextBatch, TextTensors, TrainBatches,
};
pub use bpe::Bpe;
pub use corpus::{load_corpus, load_text_file, split, Sentence, Splits};
pub use vocab::Vocab;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// How text is cut into the tokens the model reads.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum TokenizerKind {
    /// Whitespace-separated words: the most frequent training words, the rest `<unk>`.
    #[default]
    Word,
    /// Byte-pair-encoding subwords learned from the training split: a rare word is spelled
    /// out in pieces instead of becoming `<unk>`.
    Bpe,
}

impl TokenizerKind {
    pub fn name(&self) -> &'static str {
        match self {
            TokenizerKind::Word => "word",
            TokenizerKind::Bpe => "bpe",
        }
    }
}

/// Where a text run's sentences come from.
#[derive(Debug, Clone, Copy)]
pub enum TextSource<'a> {
    /// One corpus, split every [`corpus::SPLIT_PERIOD`] lines into train, valid and test.
    Corpus(&'a Path),
    /// Split files (`train-file`, `valid-file`, optional `test-file`), one sentence per line.
    Files {
        train: &'a Path,
        valid: &'a Path,
        test: Option<&'a Path>,
    },
}

/// How text becomes token ids.
#[derive(Debug, Clone, Copy)]
pub struct TextOptions<'a> {
    pub lowercase: bool,
    /// Vocabulary cap, specials included.
    pub vocab_size: usize,
    pub max_len: usize,
    pub tokenizer: TokenizerKind,
    /// The results folder, where a BPE tokenizer is cached (`tokenizers/`); `None`: trained
    /// in memory.
    pub cache: Option<&'a Path>,
}

/// Everything a text run needs from its corpus.
pub struct TextData {
    pub vocab: Vocab,
    pub train: EncodedSplit,
    pub valid: EncodedSplit,
    /// The test file's sentences, encoded (`test-file`; nothing evaluates them yet).
    pub test: Option<EncodedSplit>,
    /// Unigram cross-entropy (nats/token) on the validation split: the baseline to beat.
    pub unigram_valid_loss: f64,
}

impl TextData {
    pub fn load(source: TextSource, opts: &TextOptions) -> Result<Self> {
        let (train, valid, test, name) = match source {
            TextSource::Corpus(path) => {
                let splits = split(load_corpus(path, opts.lowercase)?);
                if splits.train.is_empty() || splits.valid.is_empty() {
                    bail!(
                        "corpus file {} is too small: it needs at least {} sentences to give a validation split",
                        path.display(),
                        corpus::VALID_SLOT + 1
                    );
                }
                (splits.train, splits.valid, None, path.display().to_string())
            }
            TextSource::Files { train, valid, test } => {
                let load = |option, path| load_text_file(option, path, opts.lowercase);
                (
                    load("train-file", train)?,
                    load("valid-file", valid)?,
                    test.map(|t| load("test-file", t)).transpose()?,
                    format!("train-file {}", train.display()),
                )
            }
        };
        let (vocab, train, valid, test) = match opts.tokenizer {
            TokenizerKind::Word => (Vocab::build(&train, opts.vocab_size)?, train, valid, test),
            TokenizerKind::Bpe => {
                let bpe = Bpe::obtain(&train, opts.vocab_size, opts.cache)?;
                let train = bpe.pieces(&train)?;
                let valid = bpe.pieces(&valid)?;
                let test = test.map(|t| bpe.pieces(&t)).transpose()?;
                (
                    Vocab::from_tokens(bpe.tokens()?, &train)?,
                    train,
                    valid,
                    test,
                )
            }
        };
        // +1: the model reads <bos> w1 .. wn
        let shortest = train.iter().map(|s| s.len() + 1).min().unwrap_or(0);
        if shortest > opts.max_len {
            let unit = match opts.tokenizer {
                TokenizerKind::Word => "",
                TokenizerKind::Bpe => " subword",
            };
            bail!(
                "every training sentence of {name} is longer than the max length {} (the shortest needs {shortest}{unit} tokens): raise --max-len",
                opts.max_len
            );
        }
        let unigram_valid_loss = vocab.unigram_cross_entropy(&valid);
        Ok(Self {
            train: batcher::encode_split(&train, &vocab, opts.max_len)?,
            valid: batcher::encode_split(&valid, &vocab, opts.max_len)?,
            test: test
                .map(|t| batcher::encode_split(&t, &vocab, opts.max_len))
                .transpose()?,
            vocab,
            unigram_valid_loss,
        })
    }
}
