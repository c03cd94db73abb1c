//! `ablate gpu-check`: names the GPU adapter, refuses a software one (unless allowed), and checks
//! every norm on the GPU against the CPU reference backend. `scripts/gpu-check.sh` runs it before
//! the benchmarks.

use super::args::RunArgs;
use crate::config::{BackendKind, RunConfig};
use anyhow::{Context, Result};
use clap::{Args, Parser};
use std::path::PathBuf;

/// Exit code when the adapter is software and `--allow-software-adapter` was not given.
pub const EXIT_SOFTWARE_ADAPTER: i32 = 5;
/// Exit code when a norm's results on the GPU differ from the CPU's beyond the tolerances.
pub const EXIT_PARITY: i32 = 4;

#[derive(Args, Debug)]
pub struct GpuCheckArgs {
    /// The GPU backend to check.
    #[arg(long, value_enum, default_value = "wgpu")]
    pub backend: BackendKind,
    /// 0 = the default adapter, N = the N-th discrete GPU.
    #[arg(long, default_value_t = 0)]
    pub device: usize,
    /// Check a software adapter (Mesa's lavapipe/llvmpipe, SwiftShader) as if it were a GPU:
    /// for testing the check where there is no GPU.
    #[arg(long)]
    pub allow_software_adapter: bool,
    /// Only name the adapter (and refuse a software one); no parity runs.
    #[arg(long)]
    pub adapter_only: bool,
    /// Norms to check, comma-separated [default: every norm, and the image model's BatchNorm].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub norms: Vec<crate::norm::NormKind>,
    /// Training steps of each parity run.
    #[arg(long, default_value_t = 6)]
    pub steps: usize,
    /// Write the adapter (adapter.json) and the parity table (parity.md) into DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// A wrapper to parse run options from a list, as the command line would.
#[derive(Parser)]
struct Options {
    #[command(flatten)]
    run: RunArgs,
}

/// The parity runs' configurations: the smallest text model of the tests and a small image batch.
fn configs(steps: usize) -> Result<(RunConfig, RunConfig)> {
    let (n, warmup) = (steps.to_string(), (steps / 2).max(1).to_string());
    let common: [&str; 12] = [
        "--steps",
        &n,
        "--warmup-steps",
        &warmup,
        "--dropout",
        "0",
        "--eval-every",
        &n,
        "--eval-batches",
        "1",
        "--checkpoint-every",
        "0",
    ];
    // the shipped test split: the training split may be neither installed nor downloadable there
    let images = [
        "--task",
        "images",
        "--batch-size",
        "16",
        "--images",
        crate::config::DEFAULT_VALID_IMAGES,
        "--labels",
        crate::config::DEFAULT_VALID_LABELS,
    ];
    let parse = |extra: &[&str]| -> Result<RunConfig> {
        let args = std::iter::once("ablate".to_string())
            .chain(common.iter().map(|s| s.to_string()))
            .chain(extra.iter().map(|s| s.to_string()));
        Options::try_parse_from(args)
            .map_err(|e| anyhow::anyhow!(super::clap_error_line(&e)))?
            .run
            .to_config()
    };
    Ok((parse(crate::gpucheck::TINY_TEXT)?, parse(&images)?))
}

pub fn run(args: &GpuCheckArgs) -> Result<i32> {
    if !args.backend.is_gpu() {
        anyhow::bail!(
            "ablate gpu-check checks a GPU backend (wgpu), not {}",
            args.backend.name()
        );
    }
    if args.steps < 2 || args.steps > 100 {
        anyhow::bail!(
            "--steps must be 2 to 100 (a few steps compare backends); got {}",
            args.steps
        );
    }
    if let Some(why) = args.backend.missing_from_build() {
        anyhow::bail!("{why}");
    }
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    }
    let device = crate::backend::device(args.backend, args.device)?;
    let info = crate::backend::adapter_info(args.backend, &device)?;
    crate::progress::say!(
        "adapter: {} | vendor {} | {} | driver {} | {}",
        info.name,
        info.vendor,
        info.device_type,
        info.driver,
        info.api
    );
    if let Some(out) = &args.out {
        std::fs::write(
            out.join("adapter.json"),
            serde_json::to_string_pretty(&info)? + "\n",
        )?;
    }
    if let Some(why) = info.software() {
        if !args.allow_software_adapter {
            eprintln!("error: software adapter: {} ({why}), not a GPU; pass --allow-software-adapter to check it anyway", info.name);
            return Ok(EXIT_SOFTWARE_ADAPTER);
        }
        crate::progress::say!("software adapter ({why}): checked as allowed");
    }
    if args.adapter_only {
        return Ok(0);
    }
    parity(args)
}

/// The parity table, printed row by row (and written to `--out`); its exit code.
fn parity(args: &GpuCheckArgs) -> Result<i32> {
    let (text, images) = configs(args.steps)?;
    let mut cases = crate::gpucheck::cases(&text, &images);
    if !args.norms.is_empty() {
        cases.retain(|c| c.task == crate::config::Task::Text && args.norms.contains(&c.norm));
    }
    let work = std::env::temp_dir().join(format!("ablate-gpu-check-{}", std::process::id()));
    let mut table = format!(
        "| task | norm | steps | probes | worst loss/grad-norm rel. dev. | worst probe rel. dev. | ms/step ndarray | ms/step {} | agrees |\n|---|---|---|---|---|---|---|---|---|\n",
        args.backend.name()
    );
    crate::progress::say_raw!("{table}");
    let rows = crate::gpucheck::run(&cases, args.backend, args.device, &work, |r| {
        let c = &r.comparison;
        let ms = |m: Option<f64>| m.map(|m| format!("{m:.1}")).unwrap_or_default();
        let line = format!(
            "| {} | {} | {} | {} | {:.1e} | {:.1e} | {} | {} | {} |\n",
            r.task,
            r.norm.name(),
            c.steps,
            c.probes,
            c.worst_loss_rel,
            c.worst_probe_rel,
            ms(r.reference_ms),
            ms(r.gpu_ms),
            if c.mismatches.is_empty() {
                "yes".to_string()
            } else {
                format!("no: {}", c.mismatches[0])
            }
        );
        crate::progress::say_raw!("{line}");
        table += &line;
    });
    let _ = std::fs::remove_dir_all(&work);
    let rows = rows?;
    let failed = rows
        .iter()
        .filter(|r| !r.comparison.mismatches.is_empty())
        .count();
    if let Some(out) = &args.out {
        std::fs::write(out.join("parity.md"), &table)?;
    }
    if failed > 0 {
        eprintln!(
            "error: {failed} of {} runs on {} differ from ndarray beyond the tolerances of tests/parity.rs",
            rows.len(),
            args.backend.name()
        );
        return Ok(EXIT_PARITY);
    }
    Ok(0)
}
