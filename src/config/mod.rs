//! The configuration of one run: everything needed to reproduce it. Written to
//! `results/<run-id>/config.toml`; experiment files set the same keys.

pub use crate::backend::BackendKind;
pub use crate::data::TokenizerKind;
use crate::data::{BatchPlan, EvalBatching};
use crate::errors::{friendly, one_line};
use crate::model::{CnnConfig, LmConfig, NormPosition};
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields, default)]
pub struct RunConfig {
    pub task: Task,
    pub norm: NormKind,
    /// A declared norm's name (with `norm = "composed"`): labels reports, left out of the run
    /// id (which hashes the declaration, `norm_decl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub norm_name: Option<String>,
    pub backend: BackendKind,
    /// GPU index for the wgpu backend (0: the default adapter).
    pub device: usize,
    /// Precision of the dense layers' and LM head's matrix products; unset means float32.
    /// Written to config.toml (and so into the run id) only when bfloat16, so float32 runs keep
    /// the ids they had before the option existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matmul_precision: Option<MatmulPrecision>,
    pub seed: u64,
    pub steps: usize,

    // ---- data
    /// One-sentence-per-line text file (words separated by spaces), split into train, valid and
    /// test every 20 lines; unused when `train_file` is set.
    pub corpus: PathBuf,
    /// Text: the training split as a file of its own (one sentence per line, blank lines
    /// skipped) in place of `corpus`; needs `valid_file`. The three files and their SHA-256
    /// (`*_sha256`, filled in by [`RunConfig::record_file_digests`]) are in config.toml, and so
    /// in the run id, only when set: single-corpus runs keep their ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_file_sha256: Option<String>,
    /// Text: the validation split's file (with `train_file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_file_sha256: Option<String>,
    /// Text: the test split's file (optional, with `train_file`): read and checked, not
    /// evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_file_sha256: Option<String>,
    /// Images: the training IDX files.
    pub images: PathBuf,
    pub labels: PathBuf,
    /// Images: the validation IDX files; when they are the training files, every 10th training
    /// image is held out instead (what builds before the 60,000-image default did). A config
    /// file without them means the test split. In the run id only when they differ from the
    /// training files (so the ids of earlier image runs stay).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_images: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_labels: Option<PathBuf>,
    pub lowercase: bool,
    /// Vocabulary cap, special tokens included.
    pub vocab_size: usize,
    /// Text: words or BPE subwords (a vocabulary of `vocab_size` trained on the training split);
    /// unset means words. In config.toml (and the id) only when BPE, so word runs keep their
    /// ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<TokenizerKind>,
    /// Longest input sequence in tokens; longer sentences are truncated.
    pub max_len: usize,
    /// Sentences (text) or images per batch.
    pub batch_size: usize,
    /// Text: padded-token budget per batch instead of a sentence count.
    pub max_tokens: Option<usize>,
    /// Text: 0 = random batches; k > 0 = length-bucketed within pools of k batches.
    pub bucket_pool: usize,

    // ---- model
    pub d_model: usize,
    pub layers: usize,
    pub heads: usize,
    pub d_ff: usize,
    pub dropout: f64,
    pub norm_position: NormPosition,
    pub tie_embeddings: bool,
    pub embed_scale: bool,
    /// Images: channels of the stem and each stage.
    pub cnn_channels: Vec<usize>,

    // ---- norms
    /// The options of the norms (declared in the norms' files, [`crate::norm::NormOption`]),
    /// as set; the others are at their defaults. In config.toml each option is a key of its
    /// own here, as [`crate::norm::Written`] says.
    #[serde(flatten, skip_deserializing)]
    pub norm_options: NormOptions,

    // ---- optimization
    /// Peak learning rate (reached at the end of warm-up, then inverse-sqrt decay).
    pub lr: f64,
    pub warmup_steps: usize,
    pub adam_beta1: f64,
    pub adam_beta2: f64,
    pub adam_eps: f64,
    /// Global gradient-norm clip (0: off).
    pub grad_clip: f64,
    /// Decoupled weight decay (AdamW): every parameter times `1 - lr * weight_decay` before
    /// Adam's update; unset means none. In config.toml (and the id) only when set and nonzero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
    /// The schedule after warm-up; unset means inverse-sqrt. In config.toml (and the id) only
    /// when another one is chosen, so earlier runs keep their ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,

    // ---- evaluation and logging
    pub eval_every: usize,
    /// Validation batches per evaluation (0: the whole split).
    pub eval_batches: usize,
    /// Text: how validation batches are formed; unset means plain. Written to config.toml (and
    /// so into the run id) only when bucketed, so runs from before the option keep their ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_batching: Option<EvalBatching>,
    /// Per-layer batch-statistics probes every step.
    pub probes: bool,
    /// Save the complete training state every N steps (0: never; a stop by Ctrl-C or SIGTERM
    /// saves it too unless 0). Config.toml files from before it lack its line.
    pub checkpoint_every: usize,
    /// A declared norm's parts (with `norm = "composed"`), resolved: hashed into the run id.
    /// Last, as it is a table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub norm_decl: Option<NormDecl>,
}

/// Keys that change what is logged but not the training trajectory: recorded in config.toml,
/// left out of the run id (so changing them does not retrain a study).
pub const LOGGING_KEYS: [&str; 3] = ["eval_every", "probes", "checkpoint_every"];

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            task: Task::Text,
            norm: NormKind::Layer,
            norm_name: None,
            backend: BackendKind::Flex,
            device: 0,
            matmul_precision: None,
            seed: 1,
            steps: 400,
            corpus: DEFAULT_CORPUS.into(),
            train_file: None,
            train_file_sha256: None,
            valid_file: None,
            valid_file_sha256: None,
            test_file: None,
            test_file_sha256: None,
            images: DEFAULT_IMAGES.into(),
            labels: DEFAULT_LABELS.into(),
            valid_images: Some(DEFAULT_VALID_IMAGES.into()),
            valid_labels: Some(DEFAULT_VALID_LABELS.into()),
            lowercase: true,
            vocab_size: 5000,
            tokenizer: None,
            max_len: 64,
            batch_size: 32,
            max_tokens: None,
            bucket_pool: 0,
            d_model: 128,
            layers: 2,
            heads: 4,
            d_ff: 512,
            dropout: 0.1,
            norm_position: NormPosition::Pre,
            tie_embeddings: true,
            embed_scale: true,
            cnn_channels: vec![16, 32, 64],
            norm_options: NormOptions::default(),
            lr: 1e-3,
            warmup_steps: 100,
            adam_beta1: 0.9,
            adam_beta2: 0.98,
            adam_eps: 1e-8,
            grad_clip: 1.0,
            weight_decay: None,
            schedule: None,
            eval_every: 100,
            eval_batches: 20,
            eval_batching: None,
            probes: true,
            checkpoint_every: 1000,
            norm_decl: None,
        }
    }
}

mod id;
mod keys;
mod validate;

pub use id::{fnv1a, varying_keys};

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
