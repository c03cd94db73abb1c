//! The configuration of one run: everything needed to reproduce it. Written to
//! `results/<run-id>/config.toml`; experiment files set the same keys.

pub use crate::backend::BackendKind;
pub use crate::data::TokenizerKind;
use crate::data::{BatchPlan, EvalBatching};
use crate::errors::{ensure_positive, ensure_positive_number, ensure_within, friendly, one_line};
use crate::model::{CnnConfig, LmConfig, NormPosition};
use crate::norm::{BackwardDivisor, BackwardMeans, NormConfig, NormKind, PowerConfig};
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
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    pub task: Task,
    pub norm: NormKind,
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
    pub norm_eps: f64,
    /// BatchNorm / PN-V running-statistics momentum.
    pub norm_momentum: f64,
    pub pn_alpha_fwd: f64,
    pub pn_alpha_bkw: f64,
    /// PowerNorm warm-up steps (default: the learning-rate warm-up).
    pub pn_warmup: Option<usize>,
    /// GroupScaling groups (default: the number of heads; 0: off).
    pub pn_groups: Option<usize>,
    pub pn_backward_divisor: BackwardDivisor,
    /// Positions PowerNorm's backward means (Gamma, Lambda, nu) average over; unset means
    /// real tokens. Written to config.toml (and so into the run id) for PowerNorm runs only:
    /// other norms keep the ids they had before the option existed, and PowerNorm runs from
    /// before the default changed (all positions, no key) never pass for runs of the new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pn_backward_means: Option<BackwardMeans>,

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
    /// saves it too unless 0). Last field: config.toml files from before it lack its line.
    pub checkpoint_every: usize,
}

/// Keys that change what is logged but not the training trajectory: recorded in config.toml,
/// left out of the run id (so changing them does not retrain a study).
pub const LOGGING_KEYS: [&str; 3] = ["eval_every", "probes", "checkpoint_every"];

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            task: Task::Text,
            norm: NormKind::Layer,
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
            norm_eps: 1e-5,
            norm_momentum: 0.1,
            pn_alpha_fwd: 0.9,
            pn_alpha_bkw: 0.9,
            pn_warmup: None,
            pn_groups: None,
            pn_backward_divisor: BackwardDivisor::Batch,
            pn_backward_means: None,
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
        }
    }
}

impl RunConfig {
    /// Checks every setting; the message names the option.
    pub fn validate(&self) -> Result<()> {
        // a config file (TOML) holds integers up to i64::MAX
        let counts = [
            ("seed", self.seed as u128),
            ("steps", self.steps as u128),
            ("max-len", self.max_len as u128),
            ("batch-size", self.batch_size as u128),
            ("max-tokens", self.max_tokens.unwrap_or(0) as u128),
            ("bucket-pool", self.bucket_pool as u128),
            ("vocab-size", self.vocab_size as u128),
            ("d-model", self.d_model as u128),
            ("layers", self.layers as u128),
            ("heads", self.heads as u128),
            ("d-ff", self.d_ff as u128),
            ("warmup-steps", self.warmup_steps as u128),
            ("eval-every", self.eval_every as u128),
            ("checkpoint-every", self.checkpoint_every as u128),
            ("eval-batches", self.eval_batches as u128),
            ("pn-warmup", self.pn_warmup.unwrap_or(0) as u128),
            ("pn-groups", self.pn_groups.unwrap_or(0) as u128),
            ("device", self.device as u128),
        ];
        for (name, v) in counts {
            if v > i64::MAX as u128 {
                bail!("{name} must be at most {} (got {v})", i64::MAX);
            }
        }
        ensure_positive("steps", self.steps)?;
        ensure_positive("max-len", self.max_len)?;
        ensure_positive("batch-size", self.batch_size)?;
        ensure_positive("d-model", self.d_model)?;
        ensure_positive("layers", self.layers)?;
        ensure_positive("heads", self.heads)?;
        ensure_positive("d-ff", self.d_ff)?;
        ensure_positive("eval-every", self.eval_every)?;
        if !self.d_model.is_multiple_of(self.heads) {
            bail!(
                "heads ({}) must divide d-model ({})",
                self.heads,
                self.d_model
            );
        }
        if self.vocab_size <= crate::data::vocab::SPECIALS.len() {
            bail!(
                "vocab-size must exceed the {} special tokens (got {})",
                crate::data::vocab::SPECIALS.len(),
                self.vocab_size
            );
        }
        self.batch_plan().validate()?;
        ensure_within("dropout", self.dropout, 0.0, 0.999)?;
        ensure_positive_number("lr", self.lr)?;
        ensure_within("adam-beta1", self.adam_beta1, 0.0, 0.999999)?;
        ensure_within("adam-beta2", self.adam_beta2, 0.0, 0.999999)?;
        ensure_positive_number("adam-eps", self.adam_eps)?;
        if let Some(w) = self.weight_decay {
            if !(w >= 0.0 && w.is_finite()) {
                bail!("weight-decay must be a finite number >= 0 (got {w})");
            }
            if w * self.lr >= 1.0 {
                bail!(
                    "weight-decay times lr must be below 1 (got {} x {}): each step multiplies the weights by 1 - lr x weight-decay",
                    w,
                    self.lr
                );
            }
        }
        if !(self.grad_clip >= 0.0 && self.grad_clip.is_finite()) {
            bail!(
                "grad-clip must be a finite number >= 0 (0 switches clipping off; got {})",
                self.grad_clip
            );
        }
        if self.device != 0 && self.backend != BackendKind::Wgpu {
            bail!(
                "device {} selects a GPU, but the backend is {} (the CPU); use --backend wgpu or leave --device out",
                self.device,
                self.backend.name()
            );
        }
        if self.backend == BackendKind::Wgpu && !cfg!(feature = "wgpu") {
            bail!(
                "this build has no GPU backend: rebuild with the wgpu feature, e.g. `cargo run --features wgpu --bin ablate -- --backend wgpu ...`"
            );
        }
        if self.matmul_precision() == MatmulPrecision::Bf16 && self.backend != BackendKind::Flex {
            bail!(
                "matmul-precision bf16 is a mode of the flex backend (the CPU step), not of {}; use --backend flex",
                self.backend.name()
            );
        }
        if self.task == Task::Images && self.eval_batching == Some(EvalBatching::Bucketed) {
            bail!("eval-batching bucketed applies to text (sentences of different lengths), not to images");
        }
        self.validate_text_files()?;
        if self.cnn_channels.is_empty() || self.cnn_channels.contains(&0) {
            bail!("cnn-channels must list at least one positive channel count");
        }
        // the image model is a small ResNet on 28 x 28 images: far wider stages are a typo, and
        // their weights alone (9 c^2 floats per convolution) would not fit in memory
        if let Some(&c) = self.cnn_channels.iter().find(|&&c| c > 4096) {
            bail!("cnn-channels must be at most 4096 per stage (got {c})");
        }
        let widths: Vec<usize> = match self.task {
            Task::Text => vec![self.d_model],
            Task::Images => self.cnn_channels.clone(),
        };
        for d in widths {
            self.norm_config().validate(d)?;
        }
        Ok(())
    }

    pub fn norm_config(&self) -> NormConfig {
        NormConfig {
            kind: self.norm,
            eps: self.norm_eps,
            momentum: self.norm_momentum,
            power: PowerConfig {
                alpha_fwd: self.pn_alpha_fwd,
                alpha_bkw: self.pn_alpha_bkw,
                warmup: self.pn_warmup.unwrap_or(self.warmup_steps),
                groups: self.pn_groups.unwrap_or(self.heads),
                backward_divisor: self.pn_backward_divisor,
                backward_means: self.backward_means(),
            },
            max_positions: (self.task == Task::Text).then_some(self.max_len),
        }
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

    /// A warning when bfloat16 products were asked for on a CPU that cannot compute them
    /// natively (they then run in a portable kernel, slower than float32).
    pub fn precision_warning(&self) -> Option<String> {
        (self.matmul_precision() == MatmulPrecision::Bf16
            && !ablate_kernels::bf16::native_available())
        .then(|| {
            "ablate: warning: this CPU has no AVX512_BF16: bf16 products run in a portable kernel, slower than f32 ones (the numbers are those of the bf16 mode)".to_string()
        })
    }

    /// The split files' rules: text only, a training file with a validation file, the
    /// validation and test files only with a training file, no corpus besides.
    fn validate_text_files(&self) -> Result<()> {
        let files = [
            ("train-file", &self.train_file),
            ("valid-file", &self.valid_file),
            ("test-file", &self.test_file),
        ];
        let given = files
            .iter()
            .find(|(_, f)| f.is_some())
            .map(|(name, _)| *name);
        if self.task == Task::Images {
            if let Some(name) = given {
                bail!("{name} applies to text (--task text), not to images: image runs read --images/--labels and --valid-images/--valid-labels");
            }
            if self.tokenizer() != TokenizerKind::Word {
                bail!(
                    "tokenizer {} applies to text (--task text), not to images",
                    self.tokenizer().name()
                );
            }
            return Ok(());
        }
        match (&self.train_file, given) {
            (Some(_), _) if self.valid_file.is_none() => bail!(
                "train-file needs valid-file: name the validation text too (--valid-file FILE, one sentence per line)"
            ),
            (Some(_), _) if self.corpus.as_path() != Path::new(DEFAULT_CORPUS) => bail!(
                "corpus and train-file both name the training text ({} and {}): give one",
                self.corpus.display(),
                self.train_file.as_ref().map_or(String::new(), |f| f.display().to_string())
            ),
            (None, Some(name)) => bail!(
                "{name} goes with train-file: without one, validation and test sentences are split from the corpus (give --train-file FILE)"
            ),
            _ => Ok(()),
        }
    }

    /// Records the SHA-256 of the split files (`train_file`, `valid_file`, `test_file`) in their
    /// `*_sha256` keys, so that the run id changes with their content; a file that does not
    /// exist or is empty is refused with its option named. Called where a configuration is made
    /// from options or a study, not where one is read back from a results folder (whose
    /// config.toml holds the digests its id was made from). Image runs are left alone
    /// ([`RunConfig::validate`] refuses the keys there).
    pub fn record_file_digests(&mut self) -> Result<()> {
        if self.task != Task::Text {
            return Ok(());
        }
        let digest = |option: &str, file: &Option<PathBuf>| {
            file.as_ref()
                .map(|f| {
                    crate::data::files::text_file_sha256(
                        option,
                        &crate::data::files::resolve_data_path(f),
                    )
                })
                .transpose()
        };
        self.train_file_sha256 = digest("train-file", &self.train_file)?;
        self.valid_file_sha256 = digest("valid-file", &self.valid_file)?;
        self.test_file_sha256 = digest("test-file", &self.test_file)?;
        Ok(())
    }

    /// The tokenizer, resolved: words unless set.
    pub fn tokenizer(&self) -> TokenizerKind {
        self.tokenizer.unwrap_or_default()
    }

    /// The matrix products' precision, resolved: float32 unless set.
    pub fn matmul_precision(&self) -> MatmulPrecision {
        self.matmul_precision.unwrap_or_default()
    }

    /// PowerNorm's backward means, resolved: `BackwardMeans`' default (real tokens) unless set.
    pub fn backward_means(&self) -> BackwardMeans {
        self.pn_backward_means.unwrap_or_default()
    }

    /// The configuration as TOML; this text is what the run id hashes.
    pub fn to_toml(&self) -> String {
        let mut c = self.clone();
        // written (and so hashed into the id) only for the norms that read it
        let reads_means = self.norm.info().options.contains(&"pn_backward_means");
        c.pn_backward_means = reads_means.then(|| self.backward_means());
        c.eval_batching = self.eval_batching.filter(|b| *b != EvalBatching::Plain);
        c.matmul_precision = self.matmul_precision.filter(|p| *p != MatmulPrecision::F32);
        c.weight_decay = self.weight_decay.filter(|w| *w != 0.0);
        c.schedule = self.schedule.filter(|s| *s != Schedule::InverseSqrt);
        c.tokenizer = self.tokenizer.filter(|t| *t != TokenizerKind::Word);
        toml::to_string(&c).expect("a run config always serializes")
    }

    /// Images: true when validation is every 10th image of the training files (no separate
    /// validation files, or the training files named again).
    pub fn held_out_validation(&self) -> bool {
        let same = |v: &Option<PathBuf>, t: &PathBuf| v.as_ref().is_none_or(|v| v == t);
        same(&self.valid_images, &self.images) && same(&self.valid_labels, &self.labels)
    }

    /// The configuration as the run id hashes it: the logging keys ([`LOGGING_KEYS`]) at their
    /// defaults and, for a text run, the image keys at the values they had when ids began.
    /// Reports group and compare runs by it, so a run written before a default changed still
    /// matches a run of the same trajectory written after.
    pub fn identity(&self) -> RunConfig {
        let mut c = self.clone();
        let d = RunConfig::default();
        (c.eval_every, c.probes, c.checkpoint_every) = (d.eval_every, d.probes, d.checkpoint_every);
        c.pin_image_keys();
        c
    }

    /// Leaves out of the id what did not exist when ids began: the validation files of a run
    /// that holds out every 10th training image, and a text run's image files.
    fn pin_image_keys(&mut self) {
        if self.task == Task::Text {
            (self.images, self.labels) = (ID_IMAGES.into(), ID_LABELS.into());
        }
        if self.task == Task::Text || self.held_out_validation() {
            (self.valid_images, self.valid_labels) = (None, None);
        }
    }

    /// Parses a config file's text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self> {
        toml::from_str(text)
            .map_err(|e| anyhow::anyhow!("{origin}: {}", friendly(&one_line(&e.to_string()))))
    }

    /// Builds a configuration from a TOML table (study files), with the digests of its split
    /// files recorded ([`RunConfig::record_file_digests`]); the error is the bare message.
    pub fn from_table(table: toml::Table) -> Result<Self> {
        let mut c: RunConfig =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| {
                    anyhow::anyhow!("{}", friendly(&one_line(e.message())))
                })?;
        c.record_file_digests()?;
        Ok(c)
    }

    /// Stable identity from what changes the training trajectory: the same trajectory always
    /// gets the same id, whatever the logging keys ([`LOGGING_KEYS`]) say.
    pub fn id(&self) -> String {
        self.id_of(&self.identity().to_toml())
    }

    /// The id that builds up to f674c5a gave this configuration: a hash of all of config.toml
    /// as written then (no `checkpoint_every` line), logging keys included. Result folders
    /// named so are still found ([`RunConfig::run_dir`]).
    pub fn legacy_id(&self) -> String {
        let mut c = self.clone();
        c.pin_image_keys();
        let toml = c.to_toml();
        let old: String = toml
            .lines()
            .filter(|l| !l.starts_with("checkpoint_every ="))
            .map(|l| format!("{l}\n"))
            .collect();
        self.id_of(&old)
    }

    fn id_of(&self, toml: &str) -> String {
        format!(
            "{}-{}-s{}-{:08x}",
            self.task.name(),
            self.norm.name(),
            self.seed,
            fnv1a(toml.as_bytes()) as u32
        )
    }

    /// This run's folder in `out`: `out/<id>`, or the folder an earlier build named by
    /// [`RunConfig::legacy_id`] when only that one exists.
    pub fn run_dir(&self, out: &std::path::Path) -> PathBuf {
        let dir = out.join(self.id());
        if !dir.exists() {
            let legacy = out.join(self.legacy_id());
            if legacy.is_dir() {
                return legacy;
            }
        }
        dir
    }
}

/// FNV-1a 64-bit: a stable hash for run identities (std's hasher may change between releases).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Config keys (as in config.toml) whose values differ between `configs`, seeds aside; a key
/// that some configurations leave out (an unset option) counts as differing from a set one.
pub fn varying_keys(configs: &[&RunConfig]) -> Vec<String> {
    let tables: Vec<toml::Table> = configs
        .iter()
        .filter_map(|c| toml::from_str(&c.identity().to_toml()).ok())
        .collect();
    let Some(first) = tables.first() else {
        return vec![];
    };
    let mut keys: Vec<String> = tables.iter().flat_map(|t| t.keys().cloned()).collect();
    keys.sort();
    keys.dedup();
    // in config.toml order
    let order: Vec<&String> = first.keys().collect();
    keys.sort_by_key(|k| order.iter().position(|o| *o == k).unwrap_or(usize::MAX));
    keys.into_iter()
        .filter(|k| k != "seed")
        .filter(|k| tables.iter().any(|t| t.get(k) != first.get(k)))
        .collect()
}

impl RunConfig {
    /// The value of `key` as config.toml writes it (`None`: an unset option left out), except
    /// that float32 products and the word tokenizer, which config.toml leaves out, read as `f32`
    /// beside `bf16` and `word` beside `bpe`.
    pub fn value_of(&self, key: &str) -> Option<toml::Value> {
        toml::from_str::<toml::Table>(&self.to_toml())
            .ok()
            .and_then(|mut t| t.remove(key))
            .or_else(|| match key {
                "matmul_precision" => {
                    Some(toml::Value::String(self.matmul_precision().name().into()))
                }
                "tokenizer" => Some(toml::Value::String(self.tokenizer().name().into())),
                _ => None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::closest;

    #[test]
    fn logging_keys_leave_the_id_alone() {
        let c = RunConfig::default();
        for key in LOGGING_KEYS {
            assert!(c.value_of(key).is_some(), "{key} is not a config key");
        }
        let logged = RunConfig {
            eval_every: 7,
            probes: false,
            checkpoint_every: 0,
            ..RunConfig::default()
        };
        assert_eq!(logged.id(), c.id());
        assert_ne!(logged.to_toml(), c.to_toml());
        let other = RunConfig {
            lr: 2e-3,
            ..RunConfig::default()
        };
        assert_ne!(other.id(), c.id());
    }

    #[test]
    fn weight_decay_and_schedule_enter_the_id_only_when_they_change_training() {
        let d = RunConfig::default();
        let same = RunConfig {
            weight_decay: Some(0.0),
            schedule: Some(Schedule::InverseSqrt),
            ..RunConfig::default()
        };
        assert_eq!(same.id(), d.id());
        assert_eq!(same.to_toml(), d.to_toml());
        let decay = RunConfig {
            weight_decay: Some(0.01),
            ..RunConfig::default()
        };
        let cosine = RunConfig {
            schedule: Some(Schedule::Cosine),
            ..RunConfig::default()
        };
        assert_ne!(decay.id(), d.id());
        assert_ne!(cosine.id(), d.id());
        assert_ne!(cosine.id(), decay.id());
        let back = RunConfig::from_toml(&cosine.to_toml(), "t").unwrap();
        assert_eq!(back.schedule, Some(Schedule::Cosine));
        let bad = RunConfig {
            weight_decay: Some(-1.0),
            ..RunConfig::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("weight-decay"));
    }

    #[test]
    fn folders_named_by_earlier_builds_are_found() {
        // the ids build f674c5a gave these configurations (its `ablate run --dry-run`)
        assert_eq!(RunConfig::default().legacy_id(), "text-layer-s1-584a8770");
        let power = RunConfig {
            norm: NormKind::Power,
            steps: 7,
            eval_every: 3,
            ..RunConfig::default()
        };
        assert_eq!(power.legacy_id(), "text-power-s1-8ad6dbef");
        let out = std::env::temp_dir().join(format!("ablate-legacy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(out.join(power.legacy_id())).unwrap();
        assert_eq!(power.run_dir(&out), out.join(power.legacy_id()));
        std::fs::create_dir_all(out.join(power.id())).unwrap();
        assert_eq!(power.run_dir(&out), out.join(power.id()));
        std::fs::remove_dir_all(&out).unwrap();
    }

    #[test]
    fn config_round_trips_through_toml_and_id_is_stable() {
        let mut c = RunConfig {
            norm: NormKind::Power,
            pn_groups: Some(2),
            ..Default::default()
        };
        let back = RunConfig::from_toml(&c.to_toml(), "test").unwrap();
        // the written file names PowerNorm's resolved backward means
        assert_eq!(back.pn_backward_means, Some(BackwardMeans::Real));
        assert_eq!(
            RunConfig {
                pn_backward_means: None,
                ..back.clone()
            },
            c
        );
        assert_eq!(back.id(), c.id());
        c.seed = 2;
        assert_ne!(back.id(), c.id());
    }

    #[test]
    fn powernorm_backward_means_default_to_real_and_enter_only_powernorm_ids() {
        let power = RunConfig {
            norm: NormKind::Power,
            ..Default::default()
        };
        assert_eq!(power.backward_means(), BackwardMeans::Real);
        assert_eq!(
            power.norm_config().power.backward_means,
            BackwardMeans::Real
        );
        assert!(power.to_toml().contains("pn_backward_means = \"real\""));
        let all = RunConfig {
            pn_backward_means: Some(BackwardMeans::All),
            ..power.clone()
        };
        assert_ne!(all.id(), power.id());
        // a PowerNorm config.toml from before the key existed ran the authors' means: its id
        // (hash of a file without the key) must differ from every run of the new default
        let old_text: String = power
            .to_toml()
            .lines()
            .filter(|l| !l.starts_with("pn_backward_means"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_ne!(
            fnv1a(old_text.as_bytes()),
            fnv1a(power.to_toml().as_bytes())
        );
        assert_ne!(fnv1a(old_text.as_bytes()), fnv1a(all.to_toml().as_bytes()));
        // other norms ignore the option: same file, same id
        let layer = RunConfig::default();
        let layer_all = RunConfig {
            pn_backward_means: Some(BackwardMeans::All),
            ..Default::default()
        };
        assert!(!layer.to_toml().contains("pn_backward_means"));
        assert_eq!(layer.id(), layer_all.id());
    }

    #[test]
    fn plain_evaluation_batching_keeps_the_ids_of_runs_from_before_the_option() {
        let plain = RunConfig::default();
        let explicit = RunConfig {
            eval_batching: Some(EvalBatching::Plain),
            ..Default::default()
        };
        let bucketed = RunConfig {
            eval_batching: Some(EvalBatching::Bucketed),
            ..Default::default()
        };
        assert!(!plain.to_toml().contains("eval_batching"));
        assert_eq!(plain.id(), explicit.id());
        assert!(bucketed.to_toml().contains("eval_batching = \"bucketed\""));
        assert_ne!(plain.id(), bucketed.id());
        let images = RunConfig {
            task: Task::Images,
            ..bucketed
        };
        assert!(images.validate().is_err());
    }

    #[test]
    fn float32_products_keep_their_ids_and_bf16_is_a_flex_mode() {
        let plain = RunConfig::default();
        let explicit = RunConfig {
            matmul_precision: Some(MatmulPrecision::F32),
            ..Default::default()
        };
        let bf16 = RunConfig {
            matmul_precision: Some(MatmulPrecision::Bf16),
            ..Default::default()
        };
        assert!(!plain.to_toml().contains("matmul_precision"));
        assert_eq!(plain.id(), explicit.id());
        assert!(bf16.to_toml().contains("matmul_precision = \"bf16\""));
        assert_ne!(plain.id(), bf16.id());
        assert!(bf16.validate().is_ok());
        // tables and labels name both precisions
        assert_eq!(
            plain.value_of("matmul_precision").unwrap().as_str(),
            Some("f32")
        );
        assert_eq!(
            bf16.value_of("matmul_precision").unwrap().as_str(),
            Some("bf16")
        );
        let ndarray = RunConfig {
            backend: BackendKind::Ndarray,
            ..bf16.clone()
        };
        let err = ndarray.validate().unwrap_err().to_string();
        assert!(
            err.contains("matmul-precision bf16") && err.contains("flex"),
            "{err}"
        );
        assert_eq!(
            RunConfig::from_toml("matmul_precision = \"bf16\"\n", "x.toml").unwrap(),
            bf16
        );
    }

    #[test]
    fn split_files_and_bpe_enter_the_id_only_when_set() {
        let d = RunConfig::default();
        let toml = d.to_toml();
        assert!(
            !toml.contains("tokenizer") && !toml.contains("_file"),
            "{toml}"
        );
        let word = RunConfig {
            tokenizer: Some(TokenizerKind::Word),
            ..Default::default()
        };
        assert_eq!((word.to_toml(), word.id()), (toml, d.id()));
        assert_eq!(d.value_of("tokenizer").unwrap().as_str(), Some("word"));
        let bpe = RunConfig {
            tokenizer: Some(TokenizerKind::Bpe),
            ..Default::default()
        };
        assert!(bpe.to_toml().contains("tokenizer = \"bpe\""));
        assert_ne!(bpe.id(), d.id());
        assert_eq!(bpe.value_of("tokenizer").unwrap().as_str(), Some("bpe"));

        let dir = std::env::temp_dir().join(format!("ablate-config-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (train, valid) = (dir.join("train.txt"), dir.join("valid.txt"));
        std::fs::write(&train, "a b c\n").unwrap();
        std::fs::write(&valid, "a c\n").unwrap();
        let mut files = RunConfig {
            train_file: Some(train.clone()),
            valid_file: Some(valid.clone()),
            ..Default::default()
        };
        files.validate().unwrap();
        files.record_file_digests().unwrap();
        assert_eq!(
            files.train_file_sha256.as_deref(),
            Some(crate::results::digest::sha256_hex(b"a b c\n").as_str())
        );
        assert!(files.valid_file_sha256.is_some() && files.test_file_sha256.is_none());
        assert!(files.to_toml().contains("train_file_sha256 = "));
        assert_eq!(RunConfig::from_toml(&files.to_toml(), "t").unwrap(), files);
        // the same path with other content: another id
        std::fs::write(&train, "a b c d\n").unwrap();
        let mut changed = files.clone();
        changed.record_file_digests().unwrap();
        assert_ne!(changed.id(), files.id());
        // a study's table records the digests as it is read
        let table: toml::Table = toml::from_str(&files.to_toml()).unwrap();
        assert_eq!(RunConfig::from_table(table).unwrap().id(), changed.id());

        let err = |c: RunConfig| c.validate().unwrap_err().to_string();
        let no_valid = RunConfig {
            valid_file: None,
            ..files.clone()
        };
        assert!(err(no_valid).starts_with("train-file needs valid-file"));
        let no_train = RunConfig {
            train_file: None,
            ..files.clone()
        };
        assert!(err(no_train).starts_with("valid-file goes with train-file"));
        let images = RunConfig {
            task: Task::Images,
            ..files.clone()
        };
        assert!(err(images).starts_with("train-file applies to text"));
        let images_bpe = RunConfig {
            task: Task::Images,
            ..bpe
        };
        assert!(err(images_bpe).starts_with("tokenizer bpe applies to text"));
        let corpus = RunConfig {
            corpus: "other.txt".into(),
            ..files.clone()
        };
        assert!(err(corpus).starts_with("corpus and train-file"));
        let mut missing = RunConfig {
            test_file: Some(dir.join("nope.txt")),
            ..files
        };
        let e = missing.record_file_digests().unwrap_err().to_string();
        assert!(
            e.starts_with("test-file ") && e.ends_with("nope.txt: no such file"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected() {
        let err = RunConfig::from_toml("nrom = \"batch\"\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("x.toml") && err.contains("unknown key `nrom` (did you mean `norm`?)"),
            "{err}"
        );
        let err = RunConfig::from_toml("norm = \"btach\"\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown value `btach` (did you mean `batch`?)"),
            "{err}"
        );
        assert_eq!(closest("stpes", ["steps", "seed"]), Some("steps"));
        assert_eq!(closest("zzzzzz", ["steps", "seed"]), None);
        for bad in [
            RunConfig {
                steps: 0,
                ..Default::default()
            },
            RunConfig {
                max_len: 0,
                ..Default::default()
            },
            RunConfig {
                heads: 3,
                ..Default::default()
            },
            RunConfig {
                norm: NormKind::Power,
                pn_groups: Some(3),
                ..Default::default()
            },
            RunConfig {
                norm_momentum: -0.1,
                ..Default::default()
            },
            RunConfig {
                norm: NormKind::Power,
                pn_alpha_bkw: 1.5,
                ..Default::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        RunConfig::default().validate().unwrap();
    }
}
