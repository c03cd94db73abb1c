//! `ablate run study.toml`: every run of a study, skipping finished ones.

use super::EXIT_INTERRUPTED;
use crate::progress::install_stop_handler;
use crate::results::RunStatus;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

#[derive(Args, Debug)]
pub struct StudyArgs {
    /// The study file: base settings plus [[grid]] tables.
    pub study: PathBuf,
    /// Results folder: receives one folder per run, named by the run id, and runs-<study>.csv
    /// (the folder `ablate report` and `ablate status` read with --results). `--out` is an older
    /// name for it.
    #[arg(long, value_name = "DIR", default_value = "results", alias = "out")]
    pub results: PathBuf,
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
    /// Run only shard k of n (e.g. 2/4): the runs are dealt round-robin in grid order, so shard
    /// sizes differ by at most one. For cluster job arrays, see scripts/slurm-array.sh.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// What --shard counts from: 1 (shards 1/n .. n/n) or 0 (0/n .. (n-1)/n, as a Slurm array
    /// --array=0-(n-1) numbers its tasks in $SLURM_ARRAY_TASK_ID).
    #[arg(long, value_name = "0|1", default_value_t = 1)]
    pub shard_base: usize,
    /// Replace a key's value in the study's base and every grid: `--set steps=30`,
    /// `--set lr=[1e-3,2e-3]` (a list adds an axis), `--set norm=batch`. Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// `ablate status`: where each run of a study stands.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The study file.
    pub study: PathBuf,
    /// The folder with the run folders.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results: PathBuf,
    /// The same overrides as the `ablate run` being watched.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// Prints each run's state, progress, last loss and ETA.
pub fn status(args: &StatusArgs) -> Result<i32> {
    let overrides: Vec<_> = args
        .set
        .iter()
        .map(|s| crate::experiment::parse_set(s))
        .collect::<Result<_>>()?;
    let study = crate::experiment::Study::load_with(&args.study, &overrides)?;
    crate::progress::say!(
        "study {} ({}) in {}",
        study.name,
        args.study.display(),
        args.results.display()
    );
    for line in crate::experiment::status_lines(&study, &args.results) {
        crate::progress::say!("{line}");
    }
    Ok(0)
}

/// Runs a study file; the exit code says whether anything failed or was interrupted.
pub fn run(args: &StudyArgs) -> Result<i32> {
    let (study, runs) = load(args)?;
    // Measured on 2 cores: two runs at a time finish a study 17 % sooner than one run at a
    // time using both cores (benches/RESULTS.md). One GPU serves one run at a time.
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let on_gpu = runs.iter().any(|r| r.backend.is_gpu());
    let jobs = args.jobs.unwrap_or(if on_gpu { 1 } else { cores });
    announce(args, &study, &runs);
    if args.dry_run {
        dry_run(args, &runs);
        return Ok(0);
    }
    for r in &runs {
        crate::memory::check_fits(r, None).with_context(|| format!("run {}", r.id()))?;
    }
    std::fs::create_dir_all(&args.results)
        .with_context(|| format!("cannot create output folder {}", args.results.display()))?;
    let stop = install_stop_handler();
    let started = std::time::Instant::now();
    let outcomes = crate::experiment::run_all(
        &runs,
        &args.results,
        jobs,
        args.force,
        args.quiet,
        stop.clone(),
    )?;
    let table = args.results.join(format!("runs-{}.csv", study.name));
    let rows = crate::experiment::runs_table(&study, &args.results);
    // unchanged, it is not rewritten (a study over a read-only copy of finished results)
    if std::fs::read_to_string(&table).ok().as_deref() != Some(rows.as_str()) {
        crate::results::write_atomic(&table, rows.as_bytes())?;
    }
    let stopped = stop.load(Ordering::SeqCst);
    Ok(summarize(
        args,
        &study,
        &outcomes,
        stopped,
        started.elapsed(),
    ))
}

/// The study with `--set` applied, and the runs of this shard.
fn load(args: &StudyArgs) -> Result<(crate::experiment::Study, Vec<crate::config::RunConfig>)> {
    use crate::experiment::{self, Study};
    let shard = args
        .shard
        .as_deref()
        .map(|s| experiment::parse_shard(s, args.shard_base))
        .transpose()?;
    let overrides: Vec<_> = args
        .set
        .iter()
        .map(|s| experiment::parse_set(s))
        .collect::<Result<_>>()?;
    let study = Study::load_with(&args.study, &overrides)?;
    if let Some(warning) = study.size_warning() {
        eprintln!("{warning}");
    }
    if let Some(longest) = study.runs.iter().map(|r| r.id()).max_by_key(|id| id.len()) {
        crate::results::check_path_room(&args.results, &longest)?;
    }
    let runs = match shard {
        Some((k, n)) => study.shard(k, n),
        None => study.runs.clone(),
    };
    Ok((study, runs))
}

/// The study's first line, and the warnings that concern all its runs (once, not per run).
fn announce(args: &StudyArgs, study: &crate::experiment::Study, runs: &[crate::config::RunConfig]) {
    crate::progress::say!(
        "study {} ({}): {} runs{}",
        study.name,
        args.study.display(),
        runs.len(),
        args.shard
            .as_ref()
            .map(|s| format!(" in shard {s}"))
            .unwrap_or_default()
    );
    if let Some(warning) = runs.iter().find_map(|r| r.precision_warning()) {
        eprintln!("{warning}");
    }
    if let Some(warning) = warm_up_warning(runs) {
        eprintln!("{warning}");
    }
}

/// `--dry-run`: each run's id, task, norm, seed and state.
fn dry_run(args: &StudyArgs, runs: &[crate::config::RunConfig]) {
    for r in runs {
        let state = crate::experiment::existing_status(&r.run_dir(&args.results))
            .map(|s| format!("{s:?}").to_lowercase())
            .unwrap_or_else(|| "to run".into());
        crate::progress::say!(
            "  {:<40} {:<7} {:<13} seed {:<3} {}",
            r.id(),
            r.task.name(),
            r.norm_label(),
            r.seed,
            state
        );
    }
}

/// The closing lines (counts, and how to continue or report) and the exit code.
fn summarize(
    args: &StudyArgs,
    study: &crate::experiment::Study,
    outcomes: &[crate::experiment::Outcome],
    stopped: bool,
    took: std::time::Duration,
) -> i32 {
    use crate::experiment::Outcome;
    let count = |f: &dyn Fn(&Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
    let failed = count(&|o| matches!(o, Outcome::Failed(_)));
    let interrupted =
        count(&|o| matches!(o, Outcome::Ran(s, _) if s.status == RunStatus::Interrupted));
    let not_started = match count(&|o| matches!(o, Outcome::NotStarted)) {
        0 => String::new(),
        n => format!(", {n} not started"),
    };
    crate::progress::say!(
        "study {}: {} ran, {} skipped, {} busy, {} failed, {} interrupted{not_started} in {:.0} s; results in {}",
        study.name,
        count(&|o| matches!(o, Outcome::Ran(s, _) if s.status != RunStatus::Interrupted)),
        count(&|o| matches!(o, Outcome::Skipped(_))),
        count(&|o| matches!(o, Outcome::Busy)),
        failed,
        interrupted,
        took.as_secs_f64(),
        args.results.display()
    );
    let set: String = args.set.iter().map(|s| format!(" --set '{s}'")).collect();
    if stopped || interrupted > 0 {
        crate::progress::say!(
            "continue it (interrupted runs resume from their checkpoints): ablate run {} --results {}{set}",
            args.study.display(),
            args.results.display()
        );
        EXIT_INTERRUPTED
    } else {
        crate::progress::say!(
            "report: ablate report {} --results {}{set} --out reports/{}",
            args.study.display(),
            args.results.display(),
            study.name
        );
        if failed > 0 {
            1
        } else {
            0
        }
    }
}

/// A study (often one shrunk with `--set steps=...`) whose runs end inside their learning-rate
/// warm-up: their statistics after warm-up do not exist, so a report gives them no verdict.
pub fn warm_up_warning(runs: &[crate::config::RunConfig]) -> Option<String> {
    let inside = runs.iter().filter(|r| r.steps <= r.warmup_steps).count();
    (inside > 0).then(|| {
        let r = runs.iter().find(|r| r.steps <= r.warmup_steps).expect("counted");
        format!(
            "ablate: warning: {inside} of the {} runs end inside their learning-rate warm-up (e.g. {} steps with warmup_steps = {}): their reports carry numbers but no verdicts; shrink warm-up too (--set warmup_steps=...)",
            runs.len(),
            r.steps,
            r.warmup_steps
        )
    })
}
