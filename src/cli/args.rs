//! The options of one run, shared by the single-run command, `bench` and `memory`.

pub use super::norm_choice::{NormChoice, NormParser};
use super::option_args::{NormOptionArgs, RunOptionArgs};
use crate::config::{RunConfig, Task};
use crate::errors::{friendly, one_line};
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
    /// A folder holding Fashion-MNIST's four files under their official names: trains on its
    /// train-* split and validates on its t10k-* split.
    #[arg(long, value_name = "DIR", help_heading = "Data", conflicts_with_all = ["images", "labels", "valid_images", "valid_labels"])]
    pub images_dir: Option<PathBuf>,
    /// The run options given as flags (declared once in `config/options.rs`).
    #[command(flatten)]
    pub options: RunOptionArgs,
    /// The options of the norms, a flag each (declared in the norms' files).
    #[command(flatten)]
    pub norm_options: NormOptionArgs,
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

    /// The value of the run option `key` given as a flag.
    pub fn given(&self, key: &str) -> Option<&toml::Value> {
        self.options.given.get(key)
    }

    /// The count option `key` given as a flag (`--steps`, `--batch-size`, ...).
    pub fn given_count(&self, key: &str) -> Option<usize> {
        self.given(key)
            .and_then(|v| v.as_integer())
            .map(|n| n as usize)
    }

    /// The run configuration: defaults (or `--config`) with every given option applied. The
    /// flags are TOML values put into the configuration's table, read as a study file's are.
    pub fn to_config(&self) -> Result<RunConfig> {
        let (mut table, origin) = match &self.config {
            Some(path) => {
                let text = crate::errors::read_text_limited(
                    path,
                    crate::errors::MAX_SETTINGS_BYTES,
                    "config",
                )?;
                let origin = path.display().to_string();
                let table: toml::Table = toml::from_str(&text).map_err(|e| {
                    anyhow::anyhow!("{origin}: {}", friendly(&one_line(&e.to_string())))
                })?;
                (table, format!("{origin}: "))
            }
            None => (toml::Table::new(), String::new()),
        };
        table.extend(self.options.given.clone());
        // the split files are read (for their digests) once the configuration is checked
        let mut c = RunConfig::parse_table(table).map_err(|e| anyhow::anyhow!("{origin}{e}"))?;
        if let Some(choice) = &self.norm {
            self.apply_norm(&mut c, choice)?;
        }
        c.norm_options.extend(&self.norm_options.given);
        // own training files without validation files: hold out every 10th image of them
        if self.given("images").is_some() && self.given("valid_images").is_none() {
            (c.valid_images, c.valid_labels) = (Some(c.images.clone()), Some(c.labels.clone()));
            if let Some(labels) = self.given("valid_labels").and_then(|v| v.as_str()) {
                c.valid_labels = Some(labels.into());
            }
        }
        if let Some(dir) = &self.images_dir {
            let file = |i: usize| dir.join(crate::data::fetch::FASHION_MNIST[i].name);
            (c.images, c.labels) = (file(0), file(1));
            (c.valid_images, c.valid_labels) = (Some(file(2)), Some(file(3)));
        }
        // the image model is there as BatchNorm's vision contrast: its defaults are batch 64, BN
        if c.task == Task::Images && self.config.is_none() {
            if self.given("batch_size").is_none() {
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
