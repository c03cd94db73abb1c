//! The configuration of one run: everything needed to reproduce it. Written to
//! `results/<run-id>/config.toml`; experiment files set the same keys.

pub use crate::backend::BackendKind;
pub use crate::data::TokenizerKind;
use crate::data::{BatchPlan, EvalBatching};
use crate::errors::{friendly, one_line};
use crate::model::{CnnConfig, LmConfig};
use crate::norm::{
    find_option, NormConfig, NormDecl, NormInfo, NormKind, NormOptions, OptionValue,
};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What is trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    /// Transformer language model on padded variable-length sentences.
    Text,
    /// Small ResNet on Fashion-MNIST (the vision contrast).
    Images,
}

impl Task {
    pub fn name(&self) -> &'static str {
        match self {
            Task::Text => "text",
            Task::Images => "images",
        }
    }
}

/// Precision of the matrix products of the dense layers and the LM head, forward and backward.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum MatmulPrecision {
    /// float32 throughout (the default).
    #[default]
    F32,
    /// Inputs rounded to bfloat16, products summed in float32; weights, gradients and Adam stay
    /// float32. Fast on CPUs with AVX512_BF16 (flex backend only).
    Bf16,
}

impl MatmulPrecision {
    pub fn name(&self) -> &'static str {
        match self {
            MatmulPrecision::F32 => "f32",
            MatmulPrecision::Bf16 => "bf16",
        }
    }
}

/// The learning-rate schedule after the linear warm-up.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// `peak * sqrt(warmup / step)` (fairseq's inverse_sqrt, the PowerNorm paper's; the default).
    #[default]
    InverseSqrt,
    /// Cosine decay from the peak to zero at the last step.
    Cosine,
    /// The peak, held.
    Constant,
}

/// Default corpus and image files, relative to the working directory (the repository root).
/// The training images are Fashion-MNIST's 60,000-image training split, fetched at first use
/// (`data::fetch`); validation is its test split, shipped in `data/`.
pub const DEFAULT_CORPUS: &str = "data/austen.sents.txt";
pub const DEFAULT_IMAGES: &str = "data/train-images-idx3-ubyte.gz";
pub const DEFAULT_LABELS: &str = "data/train-labels-idx1-ubyte.gz";
pub const DEFAULT_VALID_IMAGES: &str = "data/t10k-images-idx3-ubyte.gz";
pub const DEFAULT_VALID_LABELS: &str = "data/t10k-labels-idx1-ubyte.gz";
/// The image files builds before the 60,000-image default trained on (the test split, every
/// 10th image held out). A text run's id hashes these in place of its image keys, so a change
/// of image defaults never changes a text run's id.
const ID_IMAGES: &str = "data/t10k-images-idx3-ubyte.gz";
const ID_LABELS: &str = "data/t10k-labels-idx1-ubyte.gz";

/// Keys that change what is logged but not the training trajectory: recorded in config.toml,
/// left out of the run id (so changing them does not retrain a study).
pub fn logging_keys() -> impl Iterator<Item = &'static str> {
    RUN_OPTIONS
        .iter()
        .filter(|o| o.identity == Identity::Logging)
        .map(|o| o.key)
}

mod flags;
mod id;
mod keys;
mod options;
mod options_table;
mod validate;

pub use flags::{help_text, FlagValue};
pub use id::{fnv1a, varying_keys};
pub use options::{add_run_flags, given_run_flags, Identity, RunConfig, RunOption, RUN_OPTIONS};
pub use options_table::options_markdown;

impl RunConfig {
    pub fn norm_config(&self) -> NormConfig {
        NormConfig {
            kind: self.norm,
            options: self.norm_options.clone(),
            heads: self.heads,
            lr_warmup: self.warmup_steps,
            max_positions: (self.task == Task::Text).then_some(self.max_len),
            decl: self.norm_decl.clone(),
        }
    }

    /// Sets the norm option `key`, which some norm declares (a builder for tests and callers).
    pub fn with_norm_option(mut self, key: &str, value: OptionValue) -> Self {
        let option = find_option(key).unwrap_or_else(|| panic!("no norm declares {key}"));
        self.norm_options.set(option, value);
        self
    }

    /// The norm's facts (a declared norm's from its declaration).
    pub fn norm_info(&self) -> NormInfo {
        self.norm_config().info()
    }

    /// The norm's name in labels: a declared norm's own name, else the registry's.
    pub fn norm_label(&self) -> String {
        match &self.norm_name {
            Some(name) if self.norm == NormKind::DECLARED => name.clone(),
            _ => self.norm.name().to_string(),
        }
    }

    /// Makes this run's norm the declared one, `name` with `decl`.
    pub fn set_declared_norm(&mut self, name: &str, decl: NormDecl) {
        self.norm = NormKind::DECLARED;
        self.norm_name = Some(name.to_string());
        self.norm_decl = Some(decl);
    }

    /// How training batches are cut (text).
    pub fn batch_plan(&self) -> BatchPlan {
        BatchPlan {
            sentences: self.batch_size,
            max_tokens: self.max_tokens,
            bucket_pool: self.bucket_pool,
            max_len: self.max_len,
        }
    }

    pub fn lm_config(&self, vocab: usize) -> LmConfig {
        LmConfig {
            vocab,
            max_len: self.max_len,
            d_model: self.d_model,
            layers: self.layers,
            heads: self.heads,
            d_ff: self.d_ff,
            dropout: self.dropout,
            norm_position: self.norm_position,
            tie_embeddings: self.tie_embeddings,
            embed_scale: self.embed_scale,
        }
    }

    pub fn cnn_config(&self) -> CnnConfig {
        CnnConfig {
            channels: self.cnn_channels.clone(),
            classes: 10,
        }
    }

    /// The tokenizer, resolved: words unless set.
    pub fn tokenizer(&self) -> TokenizerKind {
        self.tokenizer.unwrap_or_default()
    }

    /// The matrix products' precision, resolved: float32 unless set.
    pub fn matmul_precision(&self) -> MatmulPrecision {
        self.matmul_precision.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
