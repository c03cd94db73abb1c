//! Backend parity: the same configuration and seed on two backends start from the same weights
//! and batches, so after a few training steps their losses, gradient norms and probes agree
//! within float32 tolerance. The one statement of the tolerances, used by `tests/parity.rs` and
//! by `ablate gpu-check`.

use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::Path;

/// Loss and gradient norm: relative tolerance (and absolute floor).
pub const LOSS_REL: f64 = 1e-3;
pub const LOSS_ABS: f64 = 1e-5;
/// Probe values: relative tolerance (and absolute floor).
pub const PROBE_REL: f64 = 1e-2;
pub const PROBE_ABS: f64 = 1e-7;
/// Gradients of statistics, per-feature medians and PowerNorm's nu and Lambda.
pub const LOOSE_PROBE_REL: f64 = 5e-2;

/// The relative tolerance of a probe. Distances are differences of nearly equal statistics, and
/// gradients of statistics small sums of large terms: float32 rounding differences between
/// backends, grown over a few Adam steps, move them more than the loss; a per-feature median is
/// one feature's difference, not a norm over all of them, so it moves more than the L2 distances.
pub fn probe_rel(name: &str) -> f64 {
    let loose = ["grad_", "med_rel_", "pn_lambda", "nu_"];
    if loose.iter().any(|p| name.starts_with(p)) {
        LOOSE_PROBE_REL
    } else {
        PROBE_REL
    }
}

fn close(a: f64, b: f64, rel: f64, abs: f64) -> bool {
    (a - b).abs() <= abs + rel * a.abs().max(b.abs())
}

/// |a - b| / max(|a|, |b|), 0 for two zeros.
fn rel_dev(a: f64, b: f64) -> f64 {
    let scale = a.abs().max(b.abs());
    if scale == 0.0 {
        0.0
    } else {
        (a - b).abs() / scale
    }
}

/// How two runs' results compare.
#[derive(Debug, Default, Clone)]
pub struct Comparison {
    /// Steps compared and probe values compared.
    pub steps: usize,
    pub probes: usize,
    /// The largest relative deviation of loss and gradient norm, and of any probe.
    pub worst_loss_rel: f64,
    pub worst_probe_rel: f64,
    /// Every value outside its tolerance (empty: the runs agree).
    pub mismatches: Vec<String>,
}

/// Rows of a CSV file as column name -> value.
fn rows(path: &Path) -> Result<Vec<HashMap<String, String>>> {
    crate::results::read_csv(path)
}

fn number(row: &HashMap<String, String>, col: &str, file: &str) -> Result<f64> {
    let v = row
        .get(col)
        .with_context(|| format!("{file} has no column {col}"))?;
    v.parse()
        .with_context(|| format!("{file}: {col} = {v:?} is not a number"))
}

/// Compares the run folder `other` against `reference` (steps.csv and probes.csv).
pub fn compare_runs(reference: &Path, other: &Path) -> Result<Comparison> {
    let mut c = Comparison::default();
    let (ra, rb) = (
        rows(&reference.join("steps.csv"))?,
        rows(&other.join("steps.csv"))?,
    );
    if ra.len() != rb.len() {
        c.mismatches
            .push(format!("steps: {} vs {} rows", ra.len(), rb.len()));
    }
    for (a, b) in ra.iter().zip(&rb) {
        c.steps += 1;
        for col in ["loss", "grad_norm"] {
            let (x, y) = (number(a, col, "steps.csv")?, number(b, col, "steps.csv")?);
            c.worst_loss_rel = c.worst_loss_rel.max(rel_dev(x, y));
            if !close(x, y, LOSS_REL, LOSS_ABS) {
                c.mismatches
                    .push(format!("step {}: {col} {x} vs {y}", a["step"]));
            }
        }
        if a.get("tokens") != b.get("tokens") {
            c.mismatches
                .push(format!("step {}: different batches", a["step"]));
        }
    }
    let (pa, pb) = (
        rows(&reference.join("probes.csv"))?,
        rows(&other.join("probes.csv"))?,
    );
    if pa.len() != pb.len() {
        c.mismatches
            .push(format!("probes: {} vs {} rows", pa.len(), pb.len()));
    }
    for (a, b) in pa.iter().zip(&pb) {
        let key = |r: &HashMap<String, String>| {
            ["step", "layer", "name"].map(|k| r.get(k).cloned().unwrap_or_default())
        };
        if key(a) != key(b) {
            c.mismatches
                .push(format!("probe rows differ: {:?} vs {:?}", key(a), key(b)));
            continue;
        }
        c.probes += 1;
        let (x, y) = (
            number(a, "value", "probes.csv")?,
            number(b, "value", "probes.csv")?,
        );
        c.worst_probe_rel = c.worst_probe_rel.max(rel_dev(x, y));
        if !close(x, y, probe_rel(&a["name"]), PROBE_ABS) {
            let [step, layer, name] = key(a);
            c.mismatches
                .push(format!("step {step} layer {layer} {name}: {x} vs {y}"));
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_run(dir: &Path, loss: f64, probe: f64) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(
            dir.join("steps.csv"),
            format!("step,loss,grad_norm,tokens\n1,{loss},2.0,64\n2,{loss},2.0,60\n"),
        )
        .unwrap();
        std::fs::write(
            dir.join("probes.csv"),
            format!("step,layer,name,value\n1,0,mean_dist,{probe}\n1,0,grad_mean,{probe}\n"),
        )
        .unwrap();
    }

    #[test]
    fn runs_within_tolerance_agree_and_others_do_not() {
        let dir = std::env::temp_dir().join(format!("ablate-parity-unit-{}", std::process::id()));
        write_run(&dir.join("a"), 3.0, 1.0);
        write_run(&dir.join("b"), 3.0 * (1.0 + 5e-4), 1.0 + 5e-3);
        write_run(&dir.join("c"), 3.0 * (1.0 + 5e-3), 1.0 + 3e-2);
        let ok = compare_runs(&dir.join("a"), &dir.join("b")).unwrap();
        assert!(ok.mismatches.is_empty(), "{:?}", ok.mismatches);
        assert_eq!((ok.steps, ok.probes), (2, 2));
        assert!(ok.worst_loss_rel > 4e-4 && ok.worst_loss_rel < 6e-4);
        let bad = compare_runs(&dir.join("a"), &dir.join("c")).unwrap();
        // both losses, and the plain probe (1e-2) but not the gradient probe (5e-2)
        assert_eq!(bad.mismatches.len(), 3, "{:?}", bad.mismatches);
        assert!(bad.mismatches[2].contains("mean_dist"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn gradient_and_median_probes_get_the_loose_tolerance() {
        assert_eq!(probe_rel("grad_mean_norm"), LOOSE_PROBE_REL);
        assert_eq!(probe_rel("nu_mean"), LOOSE_PROBE_REL);
        assert_eq!(probe_rel("mean_dist"), PROBE_REL);
    }
}
