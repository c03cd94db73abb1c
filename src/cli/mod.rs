//! Command-line interface: one module per command. Each parses its arguments, calls the
//! library, prints, and maps outcomes to exit codes; no training or plotting logic here.

mod args;
mod bench;
mod gpu_check;
mod memory;
mod norm_choice;
mod option_args;
mod report;
mod study;
mod train;

pub use args::RunArgs;
pub use bench::BenchArgs;
pub use gpu_check::{GpuCheckArgs, EXIT_PARITY, EXIT_SOFTWARE_ADAPTER};
pub use memory::MemoryArgs;
pub use report::ReportArgs;
pub use study::{StatusArgs, StudyArgs};
pub use train::{claim_fresh_dir, exit_code};

pub use crate::progress::EXIT_INTERRUPTED;
use anyhow::Result;
use clap::{Parser, Subcommand};

/// `--version`: the crate version and the git revision the binary was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("ABLATE_GIT_REVISION"),
    ")"
);

/// Exit code of a run that diverged (a non-finite loss, gradient or statistic, or a loss above
/// the divergence limit).
pub const EXIT_DIVERGED: i32 = 3;

#[derive(Parser, Debug)]
#[command(
    name = "ablate",
    version = VERSION,
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
    #[command(mut_arg("resume", |a| a.hide(true)))]
    #[command(mut_arg("stop_at_step", |a| a.hide(true)))]
    #[command(mut_arg("results", |a| a.hide(true)))]
    Memory(MemoryArgs),
    /// Time the training step of the configured model per norm (and the probes' cost).
    #[command(mut_arg("steps", |a| a.help("Training steps per norm; the median step time is taken over the second half. [default: 40]")))]
    #[command(mut_arg("norm", |a| a.hide(true)))]
    #[command(mut_arg("resume", |a| a.hide(true)))]
    #[command(mut_arg("stop_at_step", |a| a.hide(true)))]
    #[command(mut_arg("results", |a| a.hide(true)))]
    Bench(BenchArgs),
    /// Where each run of a study stands: state, steps, last loss, ETA.
    Status(StatusArgs),
    /// Name the GPU adapter (refusing a software one) and check every norm on it against the CPU.
    GpuCheck(GpuCheckArgs),
}

/// Runs the CLI; returns the process exit code.
pub fn main_with(cli: Cli) -> Result<i32> {
    match cli.command {
        None => train::run(&cli.run),
        Some(Command::Run(args)) => study::run(&args),
        Some(Command::Report(args)) => report::run(&args),
        Some(Command::Memory(args)) => memory::run(&args),
        Some(Command::Bench(args)) => bench::run(&args),
        Some(Command::Status(args)) => study::status(&args),
        Some(Command::GpuCheck(args)) => gpu_check::run(&args),
    }
}

/// Turns a clap error into one line: the message and any tip, without usage boilerplate.
pub fn clap_error_line(e: &clap::Error) -> String {
    let mut line = String::new();
    let mut usage = None;
    for l in e
        .to_string()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        if let Some(u) = l.strip_prefix("Usage: ") {
            usage = Some(u.to_string());
        } else if l.starts_with("For more information") {
        } else if line.is_empty() {
            line = l.to_string();
        } else {
            // "... not provided:" and the list that follows read as one sentence
            line += if line.ends_with(':') { " " } else { "; " };
            line += l;
        }
    }
    match (e.kind(), usage) {
        (clap::error::ErrorKind::MissingRequiredArgument, Some(u)) => {
            format!("{line} (usage: {u})")
        }
        _ => line,
    }
}
