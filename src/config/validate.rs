//! Checks of a run configuration before anything is trained or written: every setting's range,
//! the rules between options, and the split files' digests.

use super::*;
use crate::errors::{ensure_positive, ensure_positive_number, ensure_within};

impl RunConfig {
    /// Checks every setting; the message names the option.
    pub fn validate(&self) -> Result<()> {
        self.validate_shape()?;
        self.validate_optimization()?;
        self.validate_backend()?;
        self.validate_text_files()?;
        self.validate_cnn()?;
        self.validate_norm()
    }

    /// Counts within what TOML holds, and a model that can be built.
    fn validate_shape(&self) -> Result<()> {
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
        Ok(())
    }

    /// Batching, dropout and the optimizer's settings.
    fn validate_optimization(&self) -> Result<()> {
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
        Ok(())
    }

    /// The backend, the device, the matrix products' precision, and evaluation batching that
    /// fits the task.
    fn validate_backend(&self) -> Result<()> {
        if self.device != 0 && !self.backend.is_gpu() {
            bail!(
                "device {} selects a GPU, but the backend is {} (the CPU); use --backend wgpu or leave --device out",
                self.device,
                self.backend.name()
            );
        }
        if let Some(why) = self.backend.missing_from_build() {
            bail!("{why}");
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
        Ok(())
    }

    /// The image model's channels.
    fn validate_cnn(&self) -> Result<()> {
        if self.cnn_channels.is_empty() || self.cnn_channels.contains(&0) {
            bail!("cnn-channels must list at least one positive channel count");
        }
        // the image model is a small ResNet on 28 x 28 images: far wider stages are a typo, and
        // their weights alone (9 c^2 floats per convolution) would not fit in memory
        if let Some(&c) = self.cnn_channels.iter().find(|&&c| c > 4096) {
            bail!("cnn-channels must be at most 4096 per stage (got {c})");
        }
        Ok(())
    }

    /// The norm: a declaration where it needs one, and its options for every width it sees.
    fn validate_norm(&self) -> Result<()> {
        let widths: Vec<usize> = match self.task {
            Task::Text => vec![self.d_model],
            Task::Images => self.cnn_channels.clone(),
        };
        match (&self.norm_decl, self.norm == NormKind::DECLARED) {
            (Some(_), false) => bail!(
                "a norm declaration (norm_decl) goes with norm = \"{}\", not norm = \"{}\"",
                NormKind::DECLARED,
                self.norm
            ),
            (None, true) => bail!("norm {} is declared in TOML: give --norm-file F --norm NAME, or a [norms.NAME] table in a study file", self.norm),
            _ => {}
        }
        if let Some(decl) = &self.norm_decl {
            let resolved = decl
                .clone()
                .resolve()
                .map_err(|e| anyhow::anyhow!("norm {}: {e}", self.norm_label()))?;
            if &resolved != decl {
                bail!("norm {}: the declaration in norm_decl is not resolved (write it as [norms.NAME] in a study file or --norm-file)", self.norm_label());
            }
        }
        for d in widths {
            self.norm_config().validate(d)?;
        }
        Ok(())
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
}
