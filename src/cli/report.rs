//! `ablate report`: charts and REPORT.md from result folders or a study's results.

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

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
