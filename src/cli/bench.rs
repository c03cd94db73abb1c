//! `ablate bench`: the training step's time per norm.

use super::args::{NormChoice, RunArgs};
use crate::config::RunConfig;
use crate::norm::NormKind;
use anyhow::Result;
use clap::Args;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Norms to time, comma-separated. [default: layer,batch,power; none with --declared]
    #[arg(long, value_enum, value_delimiter = ',')]
    pub norms: Vec<NormKind>,
    /// Norms declared in --norm-file to time after --norms, comma-separated, e.g.
    /// `--norms layer --declared layer-twin --norm-file experiments/norms.toml`.
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pub declared: Vec<String>,
    /// Also time each norm with probes off, to measure the probes' overhead.
    #[arg(long)]
    pub probe_overhead: bool,
    #[command(flatten)]
    pub run: RunArgs,
}

/// The norms timed when neither `--norms` nor `--declared` is given.
const DEFAULT_NORMS: [NormKind; 3] = [NormKind::Layer, NormKind::Batch, NormKind::Power];

pub fn run(args: &BenchArgs) -> Result<i32> {
    args.run.refuse_run_folder_options("bench")?;
    if args.run.norm.is_some() {
        anyhow::bail!(
            "ablate bench times the norms given by --norms (e.g. --norms batch,power), not --norm"
        );
    }
    let config = args.run.to_config()?;
    let builtin = match (args.norms.is_empty(), args.declared.is_empty()) {
        (true, true) => DEFAULT_NORMS.to_vec(),
        _ => args.norms.clone(),
    };
    let mut norms: Vec<RunConfig> = builtin
        .iter()
        .map(|&norm| RunConfig {
            norm,
            ..config.clone()
        })
        .collect();
    for name in &args.declared {
        let mut c = config.clone();
        args.run.apply_norm(&mut c, &NormChoice(name.clone()))?;
        if c.norm != NormKind::DECLARED {
            anyhow::bail!("--declared {name}: a built-in norm; give it in --norms");
        }
        c.validate()?;
        norms.push(c);
    }
    // it trains every norm: the same memory check as a run, before any allocation
    for c in &norms {
        crate::memory::check_fits(c, None)?;
    }
    let steps = args.run.given_count("steps").unwrap_or(40);
    if steps > crate::memory::MAX_MEASURED_STEPS {
        anyhow::bail!(
            "ablate bench times at most {} steps per norm (the median settles within a few dozen); got --steps {steps}",
            crate::memory::MAX_MEASURED_STEPS
        );
    }
    eprintln!("ablate bench: {} steps per norm (median over the second half), {} task, batch {} x max length {}", steps, config.task.name(), config.batch_size, config.max_len);
    eprintln!(
        "backend {}, {} matrix products",
        config.backend.name(),
        config.matmul_precision().name()
    );
    if let Some(warning) = config.precision_warning() {
        eprintln!("{warning}");
    }
    let rows = crate::bench::run(&norms, steps, args.probe_overhead)?;
    crate::progress::say_raw!("{}", crate::bench::table(&rows));
    Ok(0)
}
