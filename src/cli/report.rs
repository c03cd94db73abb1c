//! `ablate report`: charts and REPORT.md from result folders or a study's results.

use anyhow::Result;
use clap::Args;
use std::path::{Path, PathBuf};

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
    /// The same overrides as the `ablate run` that made the results: `--set steps=60`. A study
    /// changed so gets numbers and no verdicts.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

pub fn run(args: &ReportArgs) -> Result<i32> {
    check_out(args)?;
    let overrides: Vec<_> = args
        .set
        .iter()
        .map(|s| crate::experiment::parse_set(s))
        .collect::<Result<_>>()?;
    let (study, runs) = crate::report::load_inputs_with(&args.inputs, &args.results, &overrides)?;
    let charts = crate::report::write_report(study.as_ref(), &runs, &args.out)?;
    crate::progress::say!(
        "report on {} run{}: {} and {} charts (PNG and SVG) in {}",
        runs.len(),
        if runs.len() == 1 { "" } else { "s" },
        args.out.join("REPORT.md").display(),
        charts.len(),
        args.out.display()
    );
    Ok(0)
}

/// Refuses a report folder that is a run folder or inside one, or that is a folder of results
/// the report reads: its charts and REPORT.md would land among the results.
fn check_out(args: &ReportArgs) -> Result<()> {
    let out = resolved(&args.out);
    for dir in out.ancestors() {
        let has = |f: &str| dir.join(f).is_file();
        use crate::results::{CONFIG_FILE, STEPS_FILE, SUMMARY_FILE};
        if has(STEPS_FILE) && (has(CONFIG_FILE) || has(SUMMARY_FILE)) {
            anyhow::bail!(
                "--out {} is inside the run folder {}: give the report a folder of its own (e.g. reports/<study>)",
                args.out.display(),
                dir.display()
            );
        }
    }
    let read = args
        .inputs
        .iter()
        .filter(|p| p.is_dir())
        .chain(&args.results);
    if let Some(folder) = read.into_iter().find(|p| resolved(p) == out) {
        anyhow::bail!(
            "--out {} is the results folder {}: give the report a folder of its own (e.g. reports/<study>)",
            args.out.display(),
            folder.display()
        );
    }
    Ok(())
}

/// `path` made absolute with its existing part's links resolved (the rest need not exist).
fn resolved(path: &Path) -> PathBuf {
    let absolute = std::env::current_dir()
        .map(|cwd| cwd.join(path))
        .unwrap_or_else(|_| path.to_path_buf());
    for base in absolute.ancestors() {
        if let Ok(real) = base.canonicalize() {
            return match absolute.strip_prefix(base) {
                Ok(rest) if !rest.as_os_str().is_empty() => real.join(rest),
                _ => real,
            };
        }
    }
    absolute
}
