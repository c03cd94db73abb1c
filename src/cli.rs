//! Command-line interface: parses arguments, calls `train` / `experiment` / `report`,
//! prints, and maps outcomes to exit codes. No training or plotting logic here.

use crate::config::{BackendKind, RunConfig, Task};
use crate::model::NormPosition;
use crate::norm::{BackwardDivisor, BackwardMeans, NormKind};
use crate::train::writer::{RunStatus, Summary};
use crate::train::{self, RunControl};
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Exit code of a run stopped by Ctrl-C / SIGTERM (the shell convention for SIGINT).
pub const EXIT_INTERRUPTED: i32 = 130;
/// Exit code of a run that diverged (non-finite loss, gradient or statistic).
pub const EXIT_DIVERGED: i32 = 3;

#[derive(Parser, Debug)]
#[command(
    name = "ablate",
    version,
    about = "Normalization ablation studies on Burn: LayerNorm, BatchNorm (naive and masked), PowerNorm, PN-V, RMSNorm",
    long_about = "Trains a model with the chosen normalization and logs, at every step, the batch statistics of every \
norm layer to CSV. Without a subcommand, `ablate [OPTIONS]` trains one run, e.g. `ablate --norm batch`.",
    args_conflicts_with_subcommands = true,
    allow_negative_numbers = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run every configuration of a study file (experiments/*.toml), skipping finished runs.
    Run(StudyArgs),
    /// Draw the charts and write REPORT.md from result folders or a study file's results.
    Report(ReportArgs),
    /// Training-memory accounting for the configured model (or a well-known size).
    Memory(MemoryArgs),
    /// Time the training step of the configured model per norm (and the probes' cost).
    Bench(BenchArgs),
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Norms to time, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values = ["layer", "batch", "power"])]
    pub norms: Vec<NormKind>,
    /// Also time each norm with probes off, to measure the probes' overhead.
    #[arg(long)]
    pub probe_overhead: bool,
    #[command(flatten)]
    pub run: RunArgs,
}

fn run_bench(args: &BenchArgs) -> Result<i32> {
    let config = args.run.to_config()?;
    let steps = args.run.steps.unwrap_or(40);
    eprintln!("ablate bench: {} steps per norm (median over the second half), {} task, batch {} x max length {}", steps, config.task.name(), config.batch_size, config.max_len);
    eprintln!("backend {}", config.backend.name());
    let rows = crate::bench::run(&config, &args.norms, steps, args.probe_overhead)?;
    print!("{}", crate::bench::table(&rows));
    Ok(0)
}

#[derive(Args, Debug)]
pub struct MemoryArgs {
    /// A well-known size instead of the configured model: gpt2-small, gpt2-medium, gpt2-xl, gpt3-175b.
    /// Batch and sequence length come from --batch-size (default 1 here) and --max-len (default 1024 here).
    #[arg(long)]
    pub preset: Option<String>,
    /// Train a few real steps on the CPU backend and report the measured peak resident memory.
    #[arg(long)]
    pub measure: bool,
    #[command(flatten)]
    pub run: RunArgs,
}

fn run_memory(args: &MemoryArgs) -> Result<i32> {
    use crate::memory::{self, human, Shape};
    if let Some(name) = &args.preset {
        let shape = Shape::preset(
            name,
            args.run.batch_size.unwrap_or(1) as u64,
            args.run.max_len.unwrap_or(1024) as u64,
        )?;
        print!("{}", memory::table(&shape));
        return Ok(0);
    }
    let mut config = args.run.to_config()?;
    if config.task != Task::Text {
        anyhow::bail!(
            "ablate memory accounts for the text model (a GPT-style transformer); use --task text"
        );
    }
    if args.run.steps.is_none() {
        config.steps = 5;
    }
    let data = train::load_data(&config)?;
    let vocab = match &data {
        train::TaskData::Text(t) => t.vocab.len(),
        train::TaskData::Images { .. } => unreachable!("checked above"),
    };
    let shape = Shape::of_config(&config, vocab as u64);
    print!("{}", memory::table(&shape));
    #[allow(deprecated)]
    let device = burn::tensor::Device::ndarray();
    let model = config.lm_config(vocab).init(&config.norm_config(), &device);
    let built = burn::module::Module::num_params(&model) as i64;
    let formula = shape.params() as i64;
    println!("\nparameter count: formula {formula}, built model {built} (Burn's num_params), difference {}", built - formula);
    for (why, n) in memory::differences(&config, vocab as u64) {
        println!("  {n:>+10}  {why}");
    }
    let (buffers, what) = memory::norm_buffers_per_layer(config.norm, config.d_model as u64);
    let norm_layers =
        2 * config.layers + usize::from(config.norm_position == crate::model::NormPosition::Pre);
    println!(
        "norm state besides parameters ({}): {} floats a layer ({what}), {} in all",
        config.norm,
        buffers,
        human(4 * buffers * norm_layers as u64)
    );
    if args.measure {
        let before = memory::current_rss().unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("ablate-memory-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        config.eval_every = config.steps + 1;
        let summary = train::run(&config, &data, &dir, &RunControl::hidden());
        let _ = std::fs::remove_dir_all(&dir);
        summary?;
        let peak = memory::peak_rss().unwrap_or(0);
        let estimate: u64 = memory::terms(&shape).iter().map(|t| t.fp32).sum();
        println!(
            "\nmeasured on {} training steps ({}, float32): peak resident memory {}, {} above the {} held \
             before training (data, vocabulary); float32 estimate: {}",
            config.steps,
            config.backend.name(),
            human(peak),
            human(peak.saturating_sub(before)),
            human(before),
            human(estimate)
        );
    }
    Ok(0)
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Result folders (a run folder or a folder of runs; several merge shards) or study files.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Report folder (charts + REPORT.md).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Where to look up the runs of a study file (repeat to merge shards).
    #[arg(long, value_name = "DIR", default_values = ["results"])]
    pub results: Vec<PathBuf>,
}

fn run_report(args: &ReportArgs) -> Result<i32> {
    let (study, runs) = crate::report::load_inputs(&args.inputs, &args.results)?;
    let charts = crate::report::write_report(study.as_ref(), &runs, &args.out)?;
    println!(
        "report on {} runs: {} and {} charts in {}",
        runs.len(),
        args.out.join("REPORT.md").display(),
        charts.len(),
        args.out.display()
    );
    Ok(0)
}

#[derive(Args, Debug)]
pub struct StudyArgs {
    /// The study file: base settings plus [[grid]] tables.
    pub study: PathBuf,
    /// Folder that receives one folder per run, named by the run id.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub out: PathBuf,
    /// Runs trained at the same time; they share the cores. Default: one per core on the CPU
    /// backends (the most runs per hour), 1 when runs use the GPU.
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Rerun runs that already finished (their folders are cleared).
    #[arg(long)]
    pub force: bool,
    /// List the runs and whether they are done, without running anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Run only shard k of n (e.g. 2/4), a deterministic share of the grid, for cluster job arrays.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

fn run_study(args: &StudyArgs) -> Result<i32> {
    use crate::experiment::{self, Outcome, Study};
    let shard = args
        .shard
        .as_deref()
        .map(experiment::parse_shard)
        .transpose()?;
    let study = Study::load(&args.study)?;
    let runs = match shard {
        Some((k, n)) => study.shard(k, n),
        None => study.runs.clone(),
    };
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    // Measured on 2 cores: two runs at a time finish a study 17 % sooner than one run at a
    // time using both cores (benches/RESULTS.md). One GPU serves one run at a time.
    let on_gpu = runs
        .iter()
        .any(|r| r.backend == crate::config::BackendKind::Wgpu);
    let jobs = args.jobs.unwrap_or(if on_gpu { 1 } else { cores });
    println!(
        "study {} ({}): {} runs{}",
        study.name,
        args.study.display(),
        runs.len(),
        args.shard
            .as_ref()
            .map(|s| format!(" in shard {s}"))
            .unwrap_or_default()
    );
    if args.dry_run {
        for r in &runs {
            let state = experiment::existing_status(&args.out.join(r.id()))
                .map(|s| format!("{s:?}").to_lowercase())
                .unwrap_or_else(|| "to run".into());
            println!(
                "  {:<40} {:<7} {:<13} seed {:<3} {}",
                r.id(),
                r.task.name(),
                r.norm.name(),
                r.seed,
                state
            );
        }
        return Ok(0);
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create output folder {}", args.out.display()))?;
    let stop = install_stop_handler();
    let started = std::time::Instant::now();
    let outcomes =
        experiment::run_all(&runs, &args.out, jobs, args.force, args.quiet, stop.clone())?;
    let count = |f: &dyn Fn(&Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
    let failed = count(&|o| matches!(o, Outcome::Failed(_)));
    let interrupted =
        count(&|o| matches!(o, Outcome::Ran(s) if s.status == RunStatus::Interrupted));
    println!(
        "study {}: {} ran, {} skipped, {} busy, {} failed, {} interrupted in {:.0} s; results in {}",
        study.name,
        count(&|o| matches!(o, Outcome::Ran(s) if s.status != RunStatus::Interrupted)),
        count(&|o| matches!(o, Outcome::Skipped(_))),
        count(&|o| matches!(o, Outcome::Busy)),
        failed,
        interrupted,
        started.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(if stop.load(Ordering::SeqCst) || interrupted > 0 {
        EXIT_INTERRUPTED
    } else if failed > 0 {
        1
    } else {
        0
    })
}

/// Options of a single run. Each overrides the default (or the value from `--config`).
#[derive(Args, Debug, Default, Clone)]
pub struct RunArgs {
    /// Start from a run's config.toml (e.g. results/<run>/config.toml) to rerun it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Folder that receives the run folder results/<run-id>/.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub out: PathBuf,
    /// Do not draw a progress bar.
    #[arg(long)]
    pub quiet: bool,

    /// Normalization in every norm slot of the model. [default: layer]
    #[arg(long, value_enum, help_heading = "Run")]
    pub norm: Option<NormKind>,
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

    /// One-sentence-per-line text file to train on instead of the shipped Austen corpus.
    #[arg(long, value_name = "FILE", help_heading = "Data")]
    pub corpus: Option<PathBuf>,
    /// Fashion-MNIST-style IDX image file (gzip or raw) for --task images.
    #[arg(long, value_name = "FILE", help_heading = "Data")]
    pub images: Option<PathBuf>,
    /// IDX label file matching --images.
    #[arg(long, value_name = "FILE", help_heading = "Data")]
    pub labels: Option<PathBuf>,
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

    /// Peak learning rate (after warm-up; inverse-sqrt decay after). [default: 0.001]
    #[arg(long, help_heading = "Optimization")]
    pub lr: Option<f64>,
    /// Learning-rate warm-up steps. [default: 100]
    #[arg(long, help_heading = "Optimization")]
    pub warmup_steps: Option<usize>,
    /// Global gradient-norm clip, 0 = off. [default: 1.0]
    #[arg(long, help_heading = "Optimization")]
    pub grad_clip: Option<f64>,

    /// BatchNorm / PN-V running-statistics momentum. [default: 0.1]
    #[arg(long, help_heading = "Norms")]
    pub norm_momentum: Option<f64>,
    /// PowerNorm warm-up steps (batch statistics before running ones). [default: --warmup-steps]
    #[arg(long, help_heading = "Norms")]
    pub pn_warmup: Option<usize>,
    /// PowerNorm GroupScaling groups, 0 = off. [default: --heads]
    #[arg(long, help_heading = "Norms")]
    pub pn_groups: Option<usize>,
    /// PowerNorm forward momentum of the running quadratic mean. [default: 0.9]
    #[arg(long, help_heading = "Norms")]
    pub pn_alpha_fwd: Option<f64>,
    /// PowerNorm backward momentum of nu. [default: 0.9]
    #[arg(long, help_heading = "Norms")]
    pub pn_alpha_bkw: Option<f64>,
    /// PowerNorm backward divisor: batch (authors' code) or running (paper's algorithm). [default: batch]
    #[arg(long, value_enum, help_heading = "Norms")]
    pub pn_backward_divisor: Option<BackwardDivisor>,
    /// PowerNorm backward means (Gamma, Lambda, nu) over real tokens, or over all positions as the authors' code does (diverges under heavy padding). [default: real]
    #[arg(long, value_enum, help_heading = "Norms")]
    pub pn_backward_means: Option<BackwardMeans>,

    /// Evaluate on the validation split every N steps (and at the end). [default: 100]
    #[arg(long, help_heading = "Logging")]
    pub eval_every: Option<usize>,
    /// Validation batches per evaluation, 0 = all. [default: 20]
    #[arg(long, help_heading = "Logging")]
    pub eval_batches: Option<usize>,
    /// Switch the per-step batch-statistics probes off.
    #[arg(long, help_heading = "Logging")]
    pub no_probes: bool,
}

impl RunArgs {
    /// The run configuration: defaults (or `--config`) with every given option applied.
    pub fn to_config(&self) -> Result<RunConfig> {
        let mut c = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                RunConfig::from_toml(&text, &path.display().to_string())?
            }
            None => RunConfig::default(),
        };
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(v) = &self.$field { c.$field = v.clone(); } )* };
        }
        set!(
            norm,
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
            norm_momentum,
            pn_alpha_fwd,
            pn_alpha_bkw,
            pn_backward_divisor,
            eval_every,
            eval_batches,
            bucket_pool
        );
        if self.max_tokens.is_some() {
            c.max_tokens = self.max_tokens;
        }
        if self.pn_backward_means.is_some() {
            c.pn_backward_means = self.pn_backward_means;
        }
        if self.pn_warmup.is_some() {
            c.pn_warmup = self.pn_warmup;
        }
        if self.pn_groups.is_some() {
            c.pn_groups = self.pn_groups;
        }
        if self.keep_case {
            c.lowercase = false;
        }
        if self.no_probes {
            c.probes = false;
        }
        if c.task == Task::Images && self.batch_size.is_none() && self.config.is_none() {
            c.batch_size = 64;
        }
        c.validate()?;
        Ok(c)
    }
}

/// Creates `out/<id>` (or `out/<id>-2`, `-3`, ... if taken) atomically: two processes never
/// get the same folder, and an earlier run is never overwritten.
pub fn claim_fresh_dir(out: &Path, id: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create output folder {}", out.display()))?;
    for n in 1.. {
        let name = if n == 1 {
            id.to_string()
        } else {
            format!("{id}-{n}")
        };
        let dir = out.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot create run folder {}", dir.display()))
            }
        }
    }
    unreachable!()
}

pub fn progress_bar(quiet: bool, prefix: String) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:30.cyan/blue}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(prefix);
    bar
}

/// The stop flag that Ctrl-C and SIGTERM set; a second Ctrl-C exits at once.
pub fn install_stop_handler() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(EXIT_INTERRUPTED);
        }
        eprintln!("ablate: stopping after the current step (Ctrl-C again to quit at once)");
    });
    stop
}

fn print_summary(s: &Summary, dir: &Path) {
    println!(
        "run {} : {:?} after {} of {} steps",
        s.run_id, s.status, s.steps_completed, s.steps_planned
    );
    if let Some(l) = s.final_train_loss {
        println!("  final training loss   {l:.4}");
    }
    if let Some(e) = &s.final_eval {
        match (e.eval_ppl, e.eval_accuracy) {
            (Some(ppl), _) => println!(
                "  validation loss       {:.4} (perplexity {:.1}); training-mode {:.4} (perplexity {:.1})",
                e.eval_loss,
                ppl,
                e.train_mode_loss,
                e.train_mode_ppl.unwrap_or(f64::NAN)
            ),
            (_, Some(acc)) => println!(
                "  validation loss       {:.4}, accuracy {:.2} %; training-mode accuracy {:.2} %",
                e.eval_loss,
                acc * 100.0,
                e.train_mode_accuracy.unwrap_or(f64::NAN) * 100.0
            ),
            _ => {}
        }
    }
    if let Some(u) = s.unigram_valid_loss {
        println!("  unigram baseline      {u:.4} (perplexity {:.1})", u.exp());
    }
    if let (Some(ms), Some(tps)) = (s.median_step_ms, s.tokens_per_s) {
        let unit = if s.task == "text" { "tokens" } else { "images" };
        println!(
            "  speed                 {ms:.0} ms/step (median, second half), {tps:.0} {unit}/s"
        );
    }
    if let Some(d) = &s.divergence {
        println!(
            "  diverged at step {}: non-finite {}{}",
            d.step,
            d.quantity,
            d.layer
                .as_ref()
                .map(|l| format!(" in {l}"))
                .unwrap_or_default()
        );
    }
    println!("  results in            {}", dir.display());
}

/// Exit code for a finished run's status.
pub fn exit_code(status: RunStatus) -> i32 {
    match status {
        RunStatus::Finished => 0,
        RunStatus::Diverged => EXIT_DIVERGED,
        RunStatus::Interrupted => EXIT_INTERRUPTED,
        RunStatus::Running | RunStatus::Failed => 1,
    }
}

/// Runs the CLI; returns the process exit code.
pub fn main_with(cli: Cli) -> Result<i32> {
    match cli.command {
        None => {
            let config = cli.run.to_config()?;
            let data = train::load_data(&config)?;
            let dir = claim_fresh_dir(&cli.run.out, &config.id())?;
            let stop = install_stop_handler();
            let progress = progress_bar(
                cli.run.quiet,
                format!("{}/{}", config.task.name(), config.norm.name()),
            );
            eprintln!(
                "ablate: training {} with {} norm -> {}",
                config.task.name(),
                config.norm.name(),
                dir.display()
            );
            let summary = train::run(
                &config,
                &data,
                &dir,
                &RunControl {
                    progress: progress.clone(),
                    stop,
                },
            )?;
            progress.finish_and_clear();
            print_summary(&summary, &dir);
            Ok(exit_code(summary.status))
        }
        Some(Command::Run(args)) => run_study(&args),
        Some(Command::Report(args)) => run_report(&args),
        Some(Command::Memory(args)) => run_memory(&args),
        Some(Command::Bench(args)) => run_bench(&args),
    }
}

/// Turns a clap error into one line: the message and any tip, without usage boilerplate.
pub fn clap_error_line(e: &clap::Error) -> String {
    e.to_string()
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information")
        })
        .collect::<Vec<_>>()
        .join("; ")
}
