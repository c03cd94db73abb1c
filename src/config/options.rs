//! Every run option, declared once: its key and type, its default, its command-line flag and
//! `--help` line, and what it does to the run id ([`Identity`]). The configuration struct,
//! its defaults, the flags (`cli`), the id rules (`id.rs`) and the options table of
//! `docs/options.md` are all made from the [`run_options!`] list below; the norms' options are
//! declared in the norms' files ([`crate::norm::NormOption`]) and sit in `norm_options`.
//!
//! Adding a run option: one line in the list (and the code that reads it). Pick its
//! [`Identity`]: an option that changes training and did not exist before must be
//! `WhenChanged` on an `Option<T>` field, so that every earlier run keeps its id.

use super::flags::{flag_arg, flag_value, FlagValue};
use super::{BackendKind, MatmulPrecision, Schedule, Task, TokenizerKind};
use super::{DEFAULT_CORPUS, DEFAULT_IMAGES, DEFAULT_LABELS};
use super::{DEFAULT_VALID_IMAGES, DEFAULT_VALID_LABELS};
use crate::data::EvalBatching;
use crate::model::NormPosition;
use crate::norm::{NormDecl, NormKind, NormOptions};
use clap::{ArgMatches, Command};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What an option does to the run id (a hash of config.toml as [`super::RunConfig::to_toml`]
/// writes it, after [`super::RunConfig::identity`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// Changes the training trajectory: hashed as set.
    Trajectory,
    /// An option added after ids began (an `Option`): written, and so hashed, only when set to
    /// something other than its type's default, so the runs from before it keep their ids.
    WhenChanged,
    /// Changes what is logged, not what is trained: recorded, at its default in the id (so
    /// changing it never retrains a study).
    Logging,
    /// Labels the run (a declared norm's name): recorded, left out of the id.
    Label,
    /// A file of the image task: a text run's id hashes it at the value it had when ids began,
    /// so a change of image defaults never retrains text runs.
    ImageFile,
    /// The norms' options: each as its declaration says ([`crate::norm::Written`]).
    NormOptions,
}

/// One run option as the command line, the docs and the id rules see it.
#[derive(Debug, Clone, Copy)]
pub struct RunOption {
    pub key: &'static str,
    /// Its flag without the dashes (`None`: set otherwise, as `norm` by `--norm`, or not a
    /// flag, as the split files' digests). A flag on a `bool` sets the opposite of its default.
    pub flag: Option<&'static str>,
    pub heading: &'static str,
    /// `--help`'s line; the default is appended unless the line states it.
    pub help: &'static str,
    pub identity: Identity,
}

/// The flag of an option line: `-` for none.
macro_rules! flag_of {
    (-) => {
        None
    };
    ($flag:literal) => {
        Some($flag)
    };
}

/// Adds an option's flag to `cmd` (nothing for `-`).
macro_rules! add_flag {
    (-, $ty:ty, $cmd:expr, $option:expr) => {
        $cmd
    };
    ($flag:literal, $ty:ty, $cmd:expr, $option:expr) => {
        $cmd.arg(<$ty as FlagValue>::arg(flag_arg($option)))
    };
}

/// Puts a given flag's value into `table` (nothing for `-`).
macro_rules! take_flag {
    (-, $ty:ty, $m:expr, $table:expr, $option:expr, $default:expr) => {};
    ($flag:literal, $ty:ty, $m:expr, $table:expr, $option:expr, $default:expr) => {
        if let Some(v) = <$ty as FlagValue>::given($m, $option.key) {
            $table.insert($option.key.to_string(), flag_value(v, &$default));
        }
    };
}

/// `v` unless it is its type's default.
fn unless_default<T: Default + PartialEq>(v: Option<T>) -> Option<T> {
    v.filter(|v| *v != T::default())
}

/// The identity rules that act on one field.
macro_rules! drop_unchanged {
    (WhenChanged, $field:expr) => {
        $field = unless_default($field.take())
    };
    ($other:ident, $field:expr) => {};
}
macro_rules! reset_unhashed {
    (Logging, $field:expr, $default:expr) => {
        $field = $default
    };
    (Label, $field:expr, $default:expr) => {
        $field = $default
    };
    ($other:ident, $field:expr, $default:expr) => {};
}

/// The list: `[Heading] key: Type = default, Identity, "flag" or -, "help";`, with the
/// field's doc comment and serde attributes before it.
macro_rules! run_options {
    ($($(#[$attr:meta])* [$heading:ident] $key:ident : $ty:ty = $default:expr, $identity:ident, $flag:tt, $help:literal;)*) => {
        /// The configuration of one run: everything needed to reproduce it (see
        /// [`run_options!`] for each key).
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(remote = "Self", deny_unknown_fields, default)]
        pub struct RunConfig {
            $(#[doc = $help] $(#[$attr])* pub $key: $ty,)*
        }

        impl Default for RunConfig {
            fn default() -> Self {
                Self { $($key: $default,)* }
            }
        }

        /// Every run option, in config.toml's order.
        pub const RUN_OPTIONS: &[RunOption] = &[$(RunOption {
            key: stringify!($key),
            flag: flag_of!($flag),
            heading: stringify!($heading),
            help: $help,
            identity: Identity::$identity,
        },)*];

        impl RunConfig {
            /// Unsets the `WhenChanged` options that are set to their type's default.
            pub(super) fn drop_unchanged(&mut self) {
                $(drop_unchanged!($identity, self.$key);)*
            }

            /// Puts the `Logging` and `Label` options at their defaults.
            pub(super) fn reset_unhashed(&mut self) {
                let _d = RunConfig::default();
                $(reset_unhashed!($identity, self.$key, _d.$key);)*
            }
        }

        /// Adds a flag for every run option that has one.
        pub fn add_run_flags(cmd: Command) -> Command {
            let mut options = RUN_OPTIONS.iter();
            $(
                let _option = options.next().unwrap();
                let cmd = add_flag!($flag, $ty, cmd, _option);
            )*
            cmd
        }

        /// The run options given as flags, as TOML values by key.
        pub fn given_run_flags(m: &ArgMatches) -> toml::Table {
            let (mut table, d) = (toml::Table::new(), RunConfig::default());
            let mut options = RUN_OPTIONS.iter();
            $(
                let _option = options.next().unwrap();
                take_flag!($flag, $ty, m, table, _option, toml::Value::try_from(&d.$key).ok());
            )*
            table
        }
    };
}

run_options! {
    [Run] task: Task = Task::Text, Trajectory, "task",
        "Text: transformer LM on padded sentences. Images: ResNet on Fashion-MNIST.";
    [Run] norm: NormKind = NormKind::Layer, Trajectory, -,
        "Normalization in every norm slot (set by --norm).";
    /// A declared norm's name (with `norm = "composed"`): labels reports, left out of the run
    /// id (which hashes the declaration, `norm_decl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    [Run] norm_name: Option<String> = None, Label, -,
        "A declared norm's name (set by --norm with --norm-file).";
    [Run] backend: BackendKind = BackendKind::Flex, Trajectory, "backend",
        "Compute backend: flex (CPU), ndarray (CPU, slower) or wgpu (GPU, needs a build with --features wgpu).";
    [Run] device: usize = 0, Trajectory, "device",
        "GPU to use with --backend wgpu: 0 = the default adapter, N = the N-th discrete GPU.";
    #[serde(default, skip_serializing_if = "Option::is_none")]
    [Run] matmul_precision: Option<MatmulPrecision> = None, WhenChanged, "matmul-precision",
        "Precision of the dense layers' and LM head's matrix products: f32, or bf16 (inputs rounded to bfloat16, float32 sums and weights; flex backend, fast with AVX512_BF16). [default: f32]";
    [Run] seed: u64 = 1, Trajectory, "seed",
        "Seed of initialization, dropout and batch order.";
    [Run] steps: usize = 400, Trajectory, "steps",
        "Training steps (optimizer updates).";

    /// Unused when `train_file` is set.
    [Data] corpus: PathBuf = DEFAULT_CORPUS.into(), Trajectory, "corpus",
        "One-sentence-per-line text file, split into train, valid and test every 20 lines.";
    /// With its SHA-256 (`train_file_sha256`, filled in by
    /// [`RunConfig::record_file_digests`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    [Data] train_file: Option<PathBuf> = None, Trajectory, "train-file",
        "Text: train on this file (one sentence per line, blank lines skipped) and validate on --valid-file, instead of splitting --corpus. Its SHA-256 enters the run id.";
    #[serde(default, skip_serializing_if = "Option::is_none")]
    [Data] train_file_sha256: Option<String> = None, Trajectory, -, "The training file's SHA-256.";
    #[serde(default, skip_serializing_if = "Option::is_none")]
    [Data] valid_file: Option<PathBuf> = None, Trajectory, "valid-file",
        "Text: the validation file that goes with --train-file (required with it).";
    #[serde(default, skip_serializing_if = "Option::is_none")]
    [Data] valid_file_sha256: Option<String> = None, Trajectory, -, "The validation file's SHA-256.";
    #[serde(default, skip_serializing_if = "Option::is_none")]
    [Data] test_file: Option<PathBuf> = None, Trajectory, "test-file",
        "Text: the test file that goes with --train-file (optional; read and checked, not evaluated).";
    #[serde(default, skip_serializing_if = "Option::is_none")]
    [Data] test_file_sha256: Option<String> = None, Trajectory, -, "The test file's SHA-256.";
    [Data] images: PathBuf = DEFAULT_IMAGES.into(), ImageFile, "images",
        "Fashion-MNIST-style IDX training image file (gzip or raw) for --task images; without --valid-images every 10th of its images is held out for validation. [default: data/train-images-idx3-ubyte.gz, Fashion-MNIST's 60,000 training images, fetched at first use or taken from Debian's dataset-fashion-mnist]";
    [Data] labels: PathBuf = DEFAULT_LABELS.into(), ImageFile, "labels",
        "IDX label file matching --images.";
    /// When they are the training files, every 10th training image is held out instead; a
    /// config file without them means the test split.
    #[serde(skip_serializing_if = "Option::is_none")]
    [Data] valid_images: Option<PathBuf> = Some(DEFAULT_VALID_IMAGES.into()), ImageFile, "valid-images",
        "IDX validation image file. [default: data/t10k-images-idx3-ubyte.gz, the test split]";
    #[serde(skip_serializing_if = "Option::is_none")]
    [Data] valid_labels: Option<PathBuf> = Some(DEFAULT_VALID_LABELS.into()), ImageFile, "valid-labels",
        "IDX label file matching --valid-images. [default: data/t10k-labels-idx1-ubyte.gz]";
    [Data] lowercase: bool = true, Trajectory, "keep-case",
        "Keep case (the default lowercases the corpus).";
    [Data] vocab_size: usize = 5000, Trajectory, "vocab-size",
        "Vocabulary size cap, special tokens included.";
    #[serde(default, skip_serializing_if = "Option::is_none")]
    [Data] tokenizer: Option<TokenizerKind> = None, WhenChanged, "tokenizer",
        "Text tokens: words, or bpe (byte-pair-encoding subwords, a vocabulary of --vocab-size tokens learned from the training split and cached in <results>/tokenizers/). [default: word]";
    [Data] max_len: usize = 64, Trajectory, "max-len",
        "Longest input sequence in tokens; longer sentences are truncated (and counted).";
    [Data] batch_size: usize = 32, Trajectory, "batch-size",
        "Sentences (text) or images per batch. [default: 32 for text, 64 for images]";
    [Data] max_tokens: Option<usize> = None, Trajectory, "max-tokens",
        "Text: batch by a padded-token budget (batch x time) instead of a sentence count.";
    [Data] bucket_pool: usize = 0, Trajectory, "bucket-pool",
        "Text: length-bucket sentences within pools of this many batches (0 = random batches).";

    [Model] d_model: usize = 128, Trajectory, "d-model", "Model width.";
    [Model] layers: usize = 2, Trajectory, "layers", "Transformer blocks.";
    [Model] heads: usize = 4, Trajectory, "heads",
        "Attention heads (also PowerNorm's GroupScaling groups).";
    [Model] d_ff: usize = 512, Trajectory, "d-ff", "Feed-forward inner width.";
    [Model] dropout: f64 = 0.1, Trajectory, "dropout", "Dropout probability.";
    [Model] norm_position: NormPosition = NormPosition::Pre, Trajectory, "norm-position",
        "Pre-norm (x + f(norm(x)), final norm) or post-norm (norm(x + f(x))).";
    [Model] tie_embeddings: bool = true, Trajectory, "untied-embeddings",
        "Separate LM head instead of one tied to the token embedding.";
    [Model] embed_scale: bool = true, Trajectory, "no-embed-scale",
        "Do not scale the token embedding by sqrt(d-model) (fairseq scales it).";
    [Model] cnn_channels: Vec<usize> = vec![16, 32, 64], Trajectory, "cnn-channels",
        "Images: channels of the stem and of each stage, comma-separated.";

    /// In config.toml each option is a key of its own here, as [`crate::norm::Written`] says.
    #[serde(flatten, skip_deserializing)]
    [Norms] norm_options: NormOptions = NormOptions::default(), NormOptions, -,
        "The norms' options (declared in the norms' files; a flag each).";

    [Optimization] lr: f64 = 1e-3, Trajectory, "lr",
        "Peak learning rate (after warm-up; inverse-sqrt decay after).";
    [Optimization] warmup_steps: usize = 100, Trajectory, "warmup-steps",
        "Learning-rate warm-up steps.";
    [Optimization] adam_beta1: f64 = 0.9, Trajectory, "adam-beta1", "Adam's first-moment decay.";
    [Optimization] adam_beta2: f64 = 0.98, Trajectory, "adam-beta2",
        "Adam's second-moment decay.";
    [Optimization] adam_eps: f64 = 1e-8, Trajectory, "adam-eps", "Adam's epsilon.";
    [Optimization] grad_clip: f64 = 1.0, Trajectory, "grad-clip",
        "Global gradient-norm clip, 0 = off.";
    #[serde(default, skip_serializing_if = "Option::is_none")]
    [Optimization] weight_decay: Option<f64> = None, WhenChanged, "weight-decay",
        "Decoupled weight decay (AdamW): each step multiplies every parameter by 1 - lr x this before Adam's update. [default: 0, none]";
    #[serde(default, skip_serializing_if = "Option::is_none")]
    [Optimization] schedule: Option<Schedule> = None, WhenChanged, "schedule",
        "Learning-rate schedule after the linear warm-up. [default: inverse-sqrt]";

    [Logging] eval_every: usize = 100, Logging, "eval-every",
        "Evaluate on the validation split every N steps (and at the end).";
    [Logging] eval_batches: usize = 20, Trajectory, "eval-batches",
        "Validation batches per evaluation, 0 = all.";
    #[serde(default, skip_serializing_if = "Option::is_none")]
    [Logging] eval_batching: Option<EvalBatching> = None, WhenChanged, "eval-batching",
        "Text: validation batches in file order (plain) or length-bucketed like training. [default: plain]";
    [Logging] probes: bool = true, Logging, "no-probes",
        "Switch the per-step batch-statistics probes off.";
    /// Config.toml files from before it lack its line.
    [Logging] checkpoint_every: usize = 1000, Logging, "checkpoint-every",
        "Save the complete training state (weights, Adam moments, running statistics, data position) every N steps into <run>/checkpoints/, keeping the last two; 0 = never. A stop by Ctrl-C or SIGTERM saves one too.";
    /// Last, as it is a table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    [Run] norm_decl: Option<NormDecl> = None, Trajectory, -,
        "A declared norm's parts, resolved (set by --norm with --norm-file).";
}
