//! Backend parity: the same configuration and seed on two backends start from the same weights
//! and batches, so after a few training steps their losses, gradient norms and probes agree
//! within float32 tolerance: loss and gradient norm to 1e-3 relative, probe values to 1e-2
//! (5e-2 for gradients of statistics and PowerNorm's nu and Lambda; `ablate::gpucheck::parity`
//! states them). ndarray against flex here; with `--features wgpu`, ndarray against wgpu as well.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn train(backend: &str, norm: &str, task: &str, out: &Path) -> PathBuf {
    train_with(backend, norm, task, out, &[])
}

fn train_with(backend: &str, norm: &str, task: &str, out: &Path, extra: &[&str]) -> PathBuf {
    let out = out.join(format!("{backend}-{norm}-{task}"));
    let mut args = vec![
        "--quiet",
        "--backend",
        backend,
        "--norm",
        norm,
        "--task",
        task,
        "--steps",
        "6",
        "--warmup-steps",
        "3",
        "--dropout",
        "0",
        "--eval-every",
        "6",
        "--eval-batches",
        "1",
        "--results",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    if task == "text" {
        args.extend_from_slice(common::TINY_TEXT);
    } else {
        args.extend_from_slice(&["--batch-size", "16"]);
    }
    let o = Command::new(env!("CARGO_BIN_EXE_ablate"))
        .args(&args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{backend} {norm} {task}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::read_dir(&out)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
}

/// The tolerances are `ablate::gpucheck::parity`'s, the ones `ablate gpu-check` applies.
fn compare(reference: &Path, other: &Path, what: &str) {
    let c = ablate::gpucheck::parity::compare_runs(reference, other).unwrap();
    assert!(
        c.steps > 0 && c.mismatches.is_empty(),
        "{what}: {:?}",
        c.mismatches
    );
}

fn parity(other: &str) {
    let out = std::env::temp_dir().join(format!("ablate-parity-{other}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    // every registered norm
    for norm in ablate::norm::NormKind::ALL.iter().map(|k| k.name()) {
        let a = train("ndarray", norm, "text", &out);
        let b = train(other, norm, "text", &out);
        compare(&a, &b, &format!("text {norm} ndarray vs {other}"));
    }
    let a = train("ndarray", "batch", "images", &out);
    let b = train(other, "batch", "images", &out);
    compare(&a, &b, &format!("images batch ndarray vs {other}"));
    // norms declared in TOML: the worked example's (fitted to the tiny model's 2 heads and
    // 3 warm-up steps) and PowerNorm's twin, with its approximate backward
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut declared = String::new();
    for file in ["experiments/composed.toml", "experiments/norms.toml"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let start = text.find("\n[norms.").unwrap() + 1;
        let end = text[start..]
            .find("[[grid]]")
            .map_or(text.len(), |e| start + e);
        declared += &text[start..end]
            .replace("groups = 4", "groups = 2")
            .replace("warmup = 100", "warmup = 3");
    }
    let file = out.join("declared.toml");
    std::fs::write(&file, declared).unwrap();
    let extra = ["--norm-file", file.to_str().unwrap()];
    for norm in [
        "group-bn",
        "scaled-rms-bn",
        "power-autodiff",
        "power-twin",
        "position-batch-twin",
    ] {
        let a = train_with("ndarray", norm, "text", &out, &extra);
        let b = train_with(other, norm, "text", &out, &extra);
        compare(
            &a,
            &b,
            &format!("text {norm} (declared) ndarray vs {other}"),
        );
    }
}

#[test]
fn flex_matches_ndarray_for_every_norm() {
    parity("flex");
}

#[cfg(feature = "wgpu")]
#[test]
fn wgpu_matches_ndarray_for_every_norm() {
    parity("wgpu");
}
