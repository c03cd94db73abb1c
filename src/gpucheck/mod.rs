//! `ablate gpu-check`'s parity part: every norm (and the image model with BatchNorm) trained a
//! few steps on a small model on the CPU reference backend (ndarray) and on the GPU, in this one
//! process, their results compared with the tolerances of [`parity`].

pub mod parity;

use crate::config::{BackendKind, RunConfig};
use crate::norm::NormKind;
use crate::progress::RunControl;
use crate::train;
use anyhow::Result;
use std::path::Path;

/// The smallest text model the parity runs (and the end-to-end tests) train: model and data
/// shape as command-line options, seconds per run.
pub const TINY_TEXT: &[&str] = &[
    "--d-model",
    "16",
    "--layers",
    "1",
    "--heads",
    "2",
    "--d-ff",
    "32",
    "--vocab-size",
    "200",
    "--batch-size",
    "8",
    "--max-len",
    "12",
];

/// One compared pair of runs.
pub struct ParityRow {
    pub task: String,
    pub norm: NormKind,
    pub comparison: parity::Comparison,
    /// Median step time on the reference and on the GPU, milliseconds.
    pub reference_ms: Option<f64>,
    pub gpu_ms: Option<f64>,
}

/// The runs to compare: every registered norm on `text`, and BatchNorm on `images`.
pub fn cases(text: &RunConfig, images: &RunConfig) -> Vec<RunConfig> {
    let mut out: Vec<RunConfig> = NormKind::ALL
        .iter()
        .map(|&norm| RunConfig {
            norm,
            ..text.clone()
        })
        .collect();
    out.push(RunConfig {
        norm: NormKind::Batch,
        ..images.clone()
    });
    out
}

/// Trains each case on ndarray and on `backend` (device `index`) in folders under `work`, and
/// compares them; `each` is called with every row as it is done.
pub fn run(
    cases: &[RunConfig],
    backend: BackendKind,
    index: usize,
    work: &Path,
    mut each: impl FnMut(&ParityRow),
) -> Result<Vec<ParityRow>> {
    let mut out = Vec::new();
    let mut data = None;
    for (i, case) in cases.iter().enumerate() {
        // the text cases share their data; the image case loads its own
        let reload = data
            .as_ref()
            .is_none_or(|(task, _)| *task != case.task.name());
        if reload {
            data = Some((case.task.name(), train::load_data(case)?));
        }
        let task_data = &data.as_ref().expect("loaded above").1;
        let mut summaries = Vec::new();
        for (side, kind, device) in [("cpu", BackendKind::Ndarray, 0), ("gpu", backend, index)] {
            let config = RunConfig {
                backend: kind,
                device,
                ..case.clone()
            };
            config.validate()?;
            let dir = work.join(format!("{i}-{}-{side}", case.norm.name()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)?;
            summaries.push((
                dir.clone(),
                train::run(&config, task_data, &dir, &RunControl::hidden())?,
            ));
        }
        let row = ParityRow {
            task: case.task.name().to_string(),
            norm: case.norm,
            comparison: parity::compare_runs(&summaries[0].0, &summaries[1].0)?,
            reference_ms: summaries[0].1.median_step_ms,
            gpu_ms: summaries[1].1.median_step_ms,
        };
        each(&row);
        out.push(row);
    }
    Ok(out)
}
