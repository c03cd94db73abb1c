//! The options of one run, shared by the single-run command, `bench` and `memory`.

pub use super::norm_choice::{NormChoice, NormParser};
use super::norm_option_args::NormOptionArgs;
use crate::config::{BackendKind, MatmulPrecision, RunConfig, Task};
use crate::data::EvalBatching;
use crate::model::NormPosition;
use crate::norm::NormKind;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// Options of a single run. Each overrides the default (or the value from `--config`).
#[derive(Args, Debug, Default, Clone, PartialEq)]
pub struct RunArgs {
    /// Start from a run's config.toml (e.g. results/<run>/config.toml) to rerun it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Continue the interrupted run in DIR (e.g. results/<run-id>) from its last checkpoint,
    /// with its own config.toml; the result files go on as if it had never stopped.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Stop after step N with a checkpoint, as Ctrl-C would: to train in chunks under a batch
    /// system's time limit (continue with --resume DIR --stop-at-step M).
    #[arg(long, value_name = "N")]
    pub stop_at_step: Option<usize>,
    /// Results folder: receives the run folder <DIR>/<run-id>/ (the folder `ablate report` and
    /// `ablate status` read with --results). `--out` is an older name for it.
    #[arg(long, value_name = "DIR", default_value = "results", alias = "out")]
    pub results: PathBuf,
    /// Do not draw a progress bar.
    #[arg(long)]
    pub quiet: bool,

    /// Normalization in every norm slot of the model: a built-in norm, or one declared in
    /// --norm-file. [default: layer for text, batch for images]
    #[arg(long, value_parser = NormParser, help_heading = "Run")]
    pub norm: Option<NormChoice>,
    /// TOML file of declared norms ([norms.NAME] tables, as in a study file; see
    /// experiments/norms.toml): --norm NAME then picks one.
    #[arg(long, value_name = "FILE", help_heading = "Run")]
    pub norm_file: Option<PathBuf>,
    /// Text: transformer LM on padded sentences. Images: ResNet on Fashion-MNIST. [default: text]
    #[arg(long, value_enum, help_heading = "Run")]
    pub task: Option<Task>,
    /// Training steps (optimizer updates). [default: 400]
    #[arg(long, help_heading = "Run")]
    pub steps: Option<usize>,
    /// Seed of initialization, dropout and batch order. [default: 1]
    #[arg(long, help_heading = "Run")]
    pub seed: Option<u64>,
    /// Compute backend: flex (CPU), ndarray (CPU, slower) or wgpu (GPU, needs a build with --features wgpu). [default: flex]
    #[arg(long, value_enum, help_heading = "Run")]
    pub backend: Option<BackendKind>,
    /// GPU to use with --backend wgpu: 0 = the default adapter, N = the N-th discrete GPU.
    #[arg(long, help_heading = "Run")]
    pub device: Option<usize>,
    /// Precision of the dense layers' and LM head's matrix products: f32, or bf16 (inputs
    /// rounded to bfloat16, float32 sums and weights; flex backend, fast with AVX512_BF16). [default: f32]
    #[arg(long, value_enum, help_heading = "Run")]
    pub matmul_precision: Option<MatmulPrecision>,

    /// One-sentence-per-line text file to train on instead of the shipped Austen corpus.
    #[arg(long, value_name = "FILE", help_heading = "Data")]
    pub corpus: Option<PathBuf>,
    /// Text: train on this file (one sentence per line, blank lines skipped) and validate on
    /// --valid-file, instead of splitting --corpus. Its SHA-256 enters the run id.
    #[arg(
        long,
        value_name = "FILE",
        help_heading = "Data",
        conflicts_with = "corpus"
    )]
    pub train_file: Option<PathBuf>,
    /// Text: the validation file that goes with --train-file (required with it).
    #[arg(long, value_name = "FILE", help_heading = "Data")]
    pub valid_file: Option<PathBuf>,
    /// Text: the test file that goes with --train-file (optional; read and checked, not
    /// evaluated).
    #[arg(long, value_name = "FILE", help_heading = "Data")]
    pub test_file: Option<PathBuf>,
    /// Fashion-MNIST-style IDX training image file (gzip or raw) for --task images; without
    /// --valid-images every 10th of its images is held out for validation. [default:
    /// data/train-images-idx3-ubyte.gz, Fashion-MNIST's 60,000 training images, fetched at first
    /// use or taken from Debian's dataset-fashion-mnist]
    #[arg(long, value_name = "FILE", help_heading = "Data")]
    pub images: Option<PathBuf>,
    /// IDX label file matching --images. [default: data/train-labels-idx1-ubyte.gz]
    #[arg(long, value_name = "FILE", help_heading = "Data")]
    pub labels: Option<PathBuf>,
    /// IDX validation image file. [default: data/t10k-images-idx3-ubyte.gz, the test split]
    #[arg(long, value_name = "FILE", help_heading = "Data")]
    pub valid_images: Option<PathBuf>,
    /// IDX label file matching --valid-images. [default: data/t10k-labels-idx1-ubyte.gz]
    #[arg(long, value_name = "FILE", help_heading = "Data")]
    pub valid_labels: Option<PathBuf>,
    /// A folder holding Fashion-MNIST's four files under their official names: trains on its
    /// train-* split and validates on its t10k-* split.
    #[arg(long, value_name = "DIR", help_heading = "Data", conflicts_with_all = ["images", "labels", "valid_images", "valid_labels"])]
    pub images_dir: Option<PathBuf>,
    /// Longest input sequence in tokens; longer sentences are truncated (and counted). [default: 64]
    #[arg(long, help_heading = "Data")]
    pub max_len: Option<usize>,
    /// Sentences (text) or images per batch. [default: 32 for text, 64 for images]
    #[arg(long, help_heading = "Data")]
    pub batch_size: Option<usize>,
    /// Text: batch by a padded-token budget (batch x time) instead of a sentence count.
    #[arg(long, help_heading = "Data")]
    pub max_tokens: Option<usize>,
    /// Text: length-bucket sentences within pools of this many batches (0 = random batches). [default: 0]
    #[arg(long, help_heading = "Data")]
    pub bucket_pool: Option<usize>,
    /// Vocabulary size cap, special tokens included. [default: 5000]
    #[arg(long, help_heading = "Data")]
    pub vocab_size: Option<usize>,
    /// Text tokens: words, or bpe (byte-pair-encoding subwords, a vocabulary of --vocab-size
    /// tokens learned from the training split and cached in <results>/tokenizers/). [default: word]
    #[arg(long, value_enum, help_heading = "Data")]
    pub tokenizer: Option<crate::data::TokenizerKind>,
    /// Keep case (the default lowercases the corpus).
    #[arg(long, help_heading = "Data")]
    pub keep_case: bool,

    /// Model width. [default: 128]
    #[arg(long, help_heading = "Model")]
    pub d_model: Option<usize>,
    /// Transformer blocks. [default: 2]
    #[arg(long, help_heading = "Model")]
    pub layers: Option<usize>,
    /// Attention heads (also PowerNorm's GroupScaling groups). [default: 4]
    #[arg(long, help_heading = "Model")]
    pub heads: Option<usize>,
    /// Feed-forward inner width. [default: 512]
    #[arg(long, help_heading = "Model")]
    pub d_ff: Option<usize>,
    /// Dropout probability. [default: 0.1]
    #[arg(long, help_heading = "Model")]
    pub dropout: Option<f64>,
    /// Pre-norm (x + f(norm(x)), final norm) or post-norm (norm(x + f(x))). [default: pre]
    #[arg(long, value_enum, help_heading = "Model")]
    pub norm_position: Option<NormPosition>,
    /// Separate LM head instead of one tied to the token embedding.
    #[arg(long, help_heading = "Model")]
    pub untied_embeddings: bool,
    /// Do not scale the token embedding by sqrt(d-model) (fairseq scales it).
    #[arg(long, help_heading = "Model")]
    pub no_embed_scale: bool,
    /// Images: channels of the stem and of each stage, comma-separated. [default: 16,32,64]
    #[arg(long, value_delimiter = ',', help_heading = "Model")]
    pub cnn_channels: Option<Vec<usize>>,

    /// Peak learning rate (after warm-up; inverse-sqrt decay after). [default: 0.001]
    #[arg(long, help_heading = "Optimization")]
    pub lr: Option<f64>,
    /// Learning-rate warm-up steps. [default: 100]
    #[arg(long, help_heading = "Optimization")]
    pub warmup_steps: Option<usize>,
    /// Global gradient-norm clip, 0 = off. [default: 1.0]
    #[arg(long, help_heading = "Optimization")]
    pub grad_clip: Option<f64>,
    /// Decoupled weight decay (AdamW): each step multiplies every parameter by 1 - lr x this
    /// before Adam's update. [default: 0, none]
    #[arg(long, help_heading = "Optimization")]
    pub weight_decay: Option<f64>,
    /// Learning-rate schedule after the linear warm-up. [default: inverse-sqrt]
    #[arg(long, value_enum, help_heading = "Optimization")]
    pub schedule: Option<crate::config::Schedule>,
    /// Adam's first-moment decay. [default: 0.9]
    #[arg(long, help_heading = "Optimization")]
    pub adam_beta1: Option<f64>,
    /// Adam's second-moment decay. [default: 0.98]
    #[arg(long, help_heading = "Optimization")]
    pub adam_beta2: Option<f64>,
    /// Adam's epsilon. [default: 1e-8]
    #[arg(long, help_heading = "Optimization")]
    pub adam_eps: Option<f64>,

    /// The options of the norms, a flag each (declared in the norms' files).
    #[command(flatten)]
    pub norm_options: NormOptionArgs,

    /// Evaluate on the validation split every N steps (and at the end). [default: 100]
    #[arg(long, help_heading = "Logging")]
    pub eval_every: Option<usize>,
    /// Validation batches per evaluation, 0 = all. [default: 20]
    #[arg(long, help_heading = "Logging")]
    pub eval_batches: Option<usize>,
    /// Text: validation batches in file order (plain) or length-bucketed like training. [default: plain]
    #[arg(long, value_enum, help_heading = "Logging")]
    pub eval_batching: Option<EvalBatching>,
    /// Switch the per-step batch-statistics probes off.
    #[arg(long, help_heading = "Logging")]
    pub no_probes: bool,
    /// Save the complete training state (weights, Adam moments, running statistics, data
    /// position) every N steps into <run>/checkpoints/, keeping the last two; 0 = never. A
    /// stop by Ctrl-C or SIGTERM saves one too. [default: 1000]
    #[arg(long, help_heading = "Logging")]
    pub checkpoint_every: Option<usize>,
}

impl RunArgs {
    /// Refuses the options that steer a training run's folder (`--resume`, `--stop-at-step`)
    /// in a command that trains nothing into one (`memory`, `bench`).
    pub fn refuse_run_folder_options(&self, command: &str) -> Result<()> {
        if let Some(dir) = &self.resume {
            anyhow::bail!(
                "ablate {command} does not continue runs: for the configuration of the run in {0}, give --config {0}/config.toml",
                dir.display()
            );
        }
        if self.stop_at_step.is_some() {
            anyhow::bail!("ablate {command} does not take --stop-at-step (it saves no run); give --steps for the number of steps");
        }
        Ok(())
    }

    /// The run configuration: defaults (or `--config`) with every given option applied.
    pub fn to_config(&self) -> Result<RunConfig> {
        let mut c = match &self.config {
            Some(path) => {
                let text = crate::errors::read_text_limited(
                    path,
                    crate::errors::MAX_SETTINGS_BYTES,
                    "config",
                )?;
                RunConfig::from_toml(&text, &path.display().to_string())?
            }
            None => RunConfig::default(),
        };
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(v) = &self.$field { c.$field = v.clone(); } )* };
        }
        if let Some(choice) = &self.norm {
            self.apply_norm(&mut c, choice)?;
        }
        set!(
            task,
            steps,
            seed,
            backend,
            device,
            corpus,
            images,
            labels,
            max_len,
            batch_size,
            vocab_size,
            d_model,
            layers,
            heads,
            d_ff,
            dropout,
            norm_position,
            lr,
            warmup_steps,
            grad_clip,
            adam_beta1,
            adam_beta2,
            adam_eps,
            cnn_channels,
            eval_every,
            eval_batches,
            bucket_pool,
            checkpoint_every
        );
        // own training files without validation files: hold out every 10th image of them
        if self.images.is_some() && self.valid_images.is_none() {
            (c.valid_images, c.valid_labels) = (Some(c.images.clone()), Some(c.labels.clone()));
        }
        if self.valid_images.is_some() {
            c.valid_images = self.valid_images.clone();
        }
        if self.valid_labels.is_some() {
            c.valid_labels = self.valid_labels.clone();
        }
        if let Some(dir) = &self.images_dir {
            let file = |i: usize| dir.join(crate::data::fetch::FASHION_MNIST[i].name);
            (c.images, c.labels) = (file(0), file(1));
            (c.valid_images, c.valid_labels) = (Some(file(2)), Some(file(3)));
        }
        if self.train_file.is_some() {
            c.train_file = self.train_file.clone();
        }
        if self.valid_file.is_some() {
            c.valid_file = self.valid_file.clone();
        }
        if self.test_file.is_some() {
            c.test_file = self.test_file.clone();
        }
        if self.tokenizer.is_some() {
            c.tokenizer = self.tokenizer;
        }
        if self.max_tokens.is_some() {
            c.max_tokens = self.max_tokens;
        }
        if self.eval_batching.is_some() {
            c.eval_batching = self.eval_batching;
        }
        if self.matmul_precision.is_some() {
            c.matmul_precision = self.matmul_precision;
        }
        if self.weight_decay.is_some() {
            c.weight_decay = self.weight_decay;
        }
        if self.schedule.is_some() {
            c.schedule = self.schedule;
        }
        c.norm_options.extend(&self.norm_options.given);
        if self.untied_embeddings {
            c.tie_embeddings = false;
        }
        if self.no_embed_scale {
            c.embed_scale = false;
        }
        if self.keep_case {
            c.lowercase = false;
        }
        if self.no_probes {
            c.probes = false;
        }
        // the image model is there as BatchNorm's vision contrast: its defaults are batch 64, BN
        if c.task == Task::Images && self.config.is_none() {
            if self.batch_size.is_none() {
                c.batch_size = 64;
            }
            if self.norm.is_none() {
                c.norm = NormKind::Batch;
            }
        }
        c.validate()?;
        c.record_file_digests()?;
        Ok(c)
    }
}
