//! `ablate [OPTIONS]`: one training run into a fresh folder.

use super::args::RunArgs;
use super::{EXIT_DIVERGED, EXIT_INTERRUPTED};
use crate::config::MatmulPrecision;
use crate::progress::{install_stop_handler, RunControl};
use crate::results::{RunLock, RunStatus, Summary};
use crate::train;
use crate::train::checkpoint::{Checkpoint, Latest};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Trains the run `args` describe; returns the exit code of its status.
pub fn run(args: &RunArgs) -> Result<i32> {
    if args.stop_at_step == Some(0) {
        bail!("--stop-at-step must be at least 1: a stop before the first step trains and saves nothing");
    }
    if let Some(dir) = &args.resume {
        return resume(args, dir);
    }
    args.refuse_unpicked_norm_file()?;
    let config = args.to_config()?;
    if let Some(key) = config.inapplicable_norm_options().first() {
        let reads: Vec<String> = config
            .norm
            .info()
            .options
            .iter()
            .map(|o| format!("--{}", o.flag()))
            .collect();
        bail!(
            "--{} does not apply to --norm {} (it reads {}): the run would be the one without it",
            key.replace('_', "-"),
            config.norm_label(),
            if config.norm_decl.is_some() {
                "no option: its declaration sets eps, momentum and the rest".to_string()
            } else if reads.is_empty() {
                "no option".to_string()
            } else {
                reads.join(", ")
            }
        );
    }
    if config_stop_unsaved(args, &Some(config.clone())) {
        bail!("--stop-at-step needs checkpoints to continue from: give --checkpoint-every > 0");
    }
    let data = train::load_data_in(&config, Some(&args.results))?;
    crate::memory::check_fits(&config, Some(&data))?;
    crate::results::check_path_room(&args.results, &config.id())?;
    let dir = claim_fresh_dir(&args.results, &config.id())?;
    // the folder is new, so no one else holds it; the lock tells studies it is taken
    let Some(_lock) = RunLock::acquire(&dir)? else {
        bail!("{} was taken by another ablate process", dir.display());
    };
    // the messages come before the progress bar exists: a bar drawn before it knows its length
    // would be left on screen as a stale `0/0` line above them
    if let Some(warning) = config.precision_warning() {
        eprintln!("{warning}");
    }
    if config.steps <= config.warmup_steps {
        eprintln!(
            "ablate: warning: all {} steps are inside the {}-step learning-rate warm-up: the learning rate never reaches its peak (--lr {}); use more --steps or fewer --warmup-steps",
            config.steps, config.warmup_steps, config.lr
        );
    }
    let precision = match config.matmul_precision() {
        MatmulPrecision::F32 => "",
        MatmulPrecision::Bf16 => ", bfloat16 matrix products",
    };
    eprintln!(
        "ablate: training {} with {} norm{precision} -> {}",
        config.task.name(),
        config.norm_label(),
        dir.display()
    );
    let control = run_control(args, &config);
    let summary = train::run(&config, &data, &dir, &control)?;
    control.progress.finish_and_clear();
    print_summary(&summary, &dir);
    Ok(exit_code(summary.status))
}

/// The newest usable checkpoint of the run in `dir` (saying which newer ones it passed over).
fn latest_checkpoint(dir: &Path) -> Result<Checkpoint> {
    let Latest {
        checkpoint,
        passed_over,
    } = Checkpoint::latest(dir)?;
    let Some(checkpoint) = checkpoint else {
        if let Some(why) = passed_over.first() {
            bail!(
                "{} has no usable checkpoint ({why}); rerun it with `ablate --config {}`",
                dir.display(),
                dir.join(crate::results::CONFIG_FILE).display()
            );
        }
        bail!(
            "{} has no checkpoint to resume from (checkpoints are saved every --checkpoint-every steps and on Ctrl-C); rerun it with `ablate --config {}`",
            dir.display(),
            dir.join(crate::results::CONFIG_FILE).display()
        );
    };
    for why in &passed_over {
        eprintln!(
            "ablate: {why}; continuing from step {}",
            checkpoint.state.step
        );
    }
    Ok(checkpoint)
}

/// `ablate --resume DIR`: continues an interrupted run from its newest checkpoint.
fn resume(args: &RunArgs, dir: &Path) -> Result<i32> {
    let bare = RunArgs {
        resume: args.resume.clone(),
        stop_at_step: args.stop_at_step,
        quiet: args.quiet,
        results: args.results.clone(),
        ..RunArgs::default()
    };
    if *args != bare {
        bail!("--resume continues a run with its own config.toml: give no other run options (only --quiet and --stop-at-step)");
    }
    if config_stop_unsaved(args, &crate::results::read_config(dir).ok()) {
        bail!(
            "--stop-at-step needs checkpoints to continue from: this run has checkpoint_every = 0"
        );
    }
    if dir.is_symlink() {
        bail!(
            "{} is a symbolic link: give the run folder itself",
            dir.display()
        );
    }
    let config = crate::results::read_config(dir)
        .with_context(|| format!("{} is not a run folder", dir.display()))?;
    let Some(_lock) = RunLock::acquire(dir)? else {
        bail!(
            "{} is being trained by another ablate process",
            dir.display()
        );
    };
    if let Ok(s) = crate::results::read_summary(dir) {
        if matches!(s.status, RunStatus::Finished | RunStatus::Diverged) {
            bail!(
                "{} has already {} ({} of {} steps): nothing to resume",
                dir.display(),
                format!("{:?}", s.status).to_lowercase(),
                s.steps_completed,
                s.steps_planned
            );
        }
    }
    let checkpoint = latest_checkpoint(dir)?;
    checkpoint.check_compatible(&config)?;
    if let Some(stop) = args.stop_at_step.filter(|&s| s <= checkpoint.state.step) {
        bail!(
            "--stop-at-step {stop} is not after the checkpoint's step {}: nothing would train; give a later step",
            checkpoint.state.step
        );
    }
    let data = train::load_data_in(&config, dir.parent())?;
    let control = run_control(args, &config);
    eprintln!(
        "ablate: resuming {} from step {} of {}",
        dir.display(),
        checkpoint.state.step,
        config.steps
    );
    let summary = train::resume(&config, &data, dir, &checkpoint, &control)?;
    control.progress.finish_and_clear();
    print_summary(&summary, dir);
    Ok(exit_code(summary.status))
}

/// The run's progress display, stop handler (Ctrl-C, SIGTERM) and `--stop-at-step`.
fn run_control(args: &RunArgs, config: &crate::config::RunConfig) -> RunControl {
    let mut control = RunControl::new(
        args.quiet,
        format!("{}/{}", config.task.name(), config.norm_label()),
        config.steps,
        install_stop_handler(),
    );
    control.stop_at = args.stop_at_step;
    control
}

/// `--stop-at-step` with checkpoints off: the stop would leave nothing to resume from.
fn config_stop_unsaved(args: &RunArgs, config: &Option<crate::config::RunConfig>) -> bool {
    args.stop_at_step.is_some() && config.as_ref().is_some_and(|c| c.checkpoint_every == 0)
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

fn print_summary(s: &Summary, dir: &Path) {
    crate::progress::say!(
        "run {} : {} after {} of {} steps",
        s.run_id,
        format!("{:?}", s.status).to_lowercase(),
        s.steps_completed,
        s.steps_planned
    );
    if let Some(l) = s.final_train_loss {
        crate::progress::say!("  final training loss   {l:.4}");
    }
    if let Some(e) = &s.final_eval {
        match (e.eval_ppl, e.eval_accuracy) {
            (Some(ppl), _) => crate::progress::say!(
                "  validation loss       {:.4} (perplexity {:.1}); training-mode {:.4} (perplexity {:.1})",
                e.eval_loss,
                ppl,
                e.train_mode_loss,
                e.train_mode_ppl.unwrap_or(f64::NAN)
            ),
            (_, Some(acc)) => crate::progress::say!(
                "  validation loss       {:.4}, accuracy {:.2} %; training-mode accuracy {:.2} %",
                e.eval_loss,
                acc * 100.0,
                e.train_mode_accuracy.unwrap_or(f64::NAN) * 100.0
            ),
            _ => {}
        }
    }
    if let Some(u) = s.unigram_valid_loss {
        crate::progress::say!("  unigram baseline      {u:.4} (perplexity {:.1})", u.exp());
    }
    if let (Some(ms), Some(tps)) = (s.median_step_ms, s.tokens_per_s) {
        let unit = if s.task == "text" { "tokens" } else { "images" };
        crate::progress::say!(
            "  speed                 {ms:.0} ms/step (median, second half), {tps:.0} {unit}/s"
        );
    }
    if let Some(d) = &s.divergence {
        let what = match d.value {
            Some(v) => format!("{} {v:.4e} above the divergence limit", d.quantity),
            None => format!("non-finite {}", d.quantity),
        };
        crate::progress::say!(
            "  diverged at step {}: {what}{}",
            d.step,
            d.layer
                .as_ref()
                .map(|l| format!(" in {l}"))
                .unwrap_or_default()
        );
    }
    crate::progress::say!("  results in            {}", dir.display());
    if s.status == RunStatus::Interrupted {
        crate::progress::say!("  continue it with      ablate --resume {}", dir.display());
    }
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
