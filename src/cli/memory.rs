//! `ablate memory`: training-memory accounting, formulas against the built model and, with
//! `--measure`, against a few real steps.

use super::args::RunArgs;
use crate::config::Task;
use anyhow::Result;
use clap::Args;

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

pub fn run(args: &MemoryArgs) -> Result<i32> {
    use crate::memory::{self, Shape};
    args.run.refuse_run_folder_options("memory")?;
    if let Some(name) = &args.preset {
        // the preset is the model: other options would be left out of the table unsaid
        let mut shape_only = RunArgs {
            results: args.run.results.clone(),
            quiet: args.run.quiet,
            ..RunArgs::default()
        };
        for key in ["batch_size", "max_len"] {
            if let Some(v) = args.run.given(key) {
                shape_only.options.given.insert(key.into(), v.clone());
            }
        }
        if args.measure {
            anyhow::bail!("--measure trains the configured model, not a preset: leave out --preset {name} (or --measure)");
        }
        if args.run != shape_only {
            anyhow::bail!("--preset {name} gives the whole model: of the run options it takes only --batch-size and --max-len");
        }
        let shape = Shape::preset(
            name,
            args.run.given_count("batch_size").unwrap_or(1) as u64,
            args.run.given_count("max_len").unwrap_or(1024) as u64,
        )?;
        shape.check()?;
        crate::progress::say_raw!("{}", memory::table(&shape));
        return Ok(0);
    }
    args.run.refuse_unpicked_norm_file()?;
    let mut config = args.run.to_config()?;
    if config.task != Task::Text {
        anyhow::bail!(
            "ablate memory accounts for the text model (a GPT-style transformer); use --task text"
        );
    }
    if args.run.given("steps").is_none() {
        config.steps = 5;
    }
    if args.measure && config.steps > memory::MAX_MEASURED_STEPS {
        anyhow::bail!(
            "ablate memory --measure trains at most {} steps (the peak is reached within the first few); got --steps {}",
            memory::MAX_MEASURED_STEPS,
            config.steps
        );
    }
    let data = crate::train::load_data(&config)?;
    let crate::train::TaskData::Text(text) = &data else {
        unreachable!("checked above")
    };
    crate::progress::say_raw!("{}", memory::config_report(&config, text.vocab.len())?);
    if args.measure {
        // it trains: the same memory check as a run
        memory::check_fits(&config, Some(&data))?;
        crate::progress::say_raw!("{}", memory::measure(&config, &data)?);
    }
    Ok(0)
}
