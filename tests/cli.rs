//! End-to-end tests through the `ablate` binary on tiny configurations.

mod common;

use common::{ablate, stderr, temp_dir};
use std::path::{Path, PathBuf};

/// A model small enough to train in seconds.
const TINY: &[&str] = &[
    "--quiet",
    "--d-model",
    "32",
    "--layers",
    "1",
    "--heads",
    "2",
    "--d-ff",
    "64",
    "--vocab-size",
    "400",
    "--batch-size",
    "16",
    "--max-len",
    "24",
    "--lr",
    "0.003",
    "--warmup-steps",
    "5",
    "--eval-every",
    "20",
    "--eval-batches",
    "4",
];

fn run_dir(out: &Path) -> PathBuf {
    let dirs: Vec<_> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "one run folder in {}", out.display());
    dirs[0].clone()
}

#[test]
fn tiny_text_run_learns_and_writes_every_result_file() {
    let out = temp_dir("tiny");
    let mut args = vec![
        "--norm",
        "batch",
        "--steps",
        "40",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(TINY);
    let o = ablate(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let dir = run_dir(&out);
    for f in [
        "config.toml",
        "steps.csv",
        "probes.csv",
        "eval.csv",
        "summary.json",
    ] {
        assert!(dir.join(f).is_file(), "missing {f}");
    }
    let steps = std::fs::read_to_string(dir.join("steps.csv")).unwrap();
    let header = steps.lines().next().unwrap();
    assert_eq!(
        header,
        "step,loss,lr,grad_norm,tokens,batch,time,padding_fraction,step_ms,wall_s"
    );
    let losses: Vec<f64> = steps
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(losses.len(), 40);
    let first: f64 = losses[..5].iter().sum::<f64>() / 5.0;
    let last: f64 = losses[35..].iter().sum::<f64>() / 5.0;
    assert!(
        last < first - 0.5,
        "loss must fall: first {first:.3}, last {last:.3}"
    );
    let probes = std::fs::read_to_string(dir.join("probes.csv")).unwrap();
    assert_eq!(probes.lines().next().unwrap(), "step,layer,name,value");
    assert!(probes.contains("1,block0.attn_norm,dist_var,"));
    assert!(probes.contains(",final_norm,grad_mean,"));
    let eval = std::fs::read_to_string(dir.join("eval.csv")).unwrap();
    assert_eq!(
        eval.lines().next().unwrap(),
        "step,eval_loss,eval_ppl,train_mode_loss,train_mode_ppl,eval_accuracy,train_mode_accuracy,tokens"
    );
    assert_eq!(eval.lines().count(), 3, "evaluations at steps 20 and 40");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["status"], "finished");
    assert_eq!(summary["steps_completed"], 40);
    // the printed summary names the folder
    assert!(String::from_utf8_lossy(&o.stdout).contains(dir.to_str().unwrap()));
    // config.toml reruns the same configuration into a new folder, never over the old one
    let config = dir.join("config.toml");
    let o = ablate(&[
        "--config",
        config.to_str().unwrap(),
        "--steps",
        "2",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 2);
    assert_eq!(
        std::fs::read_to_string(dir.join("steps.csv")).unwrap(),
        steps,
        "first run untouched"
    );
}

#[test]
fn bench_times_each_norm_with_and_without_probes() {
    let o = ablate(&common::args_with(
        &[
            "bench",
            "--steps",
            "6",
            "--norms",
            "batch,power",
            "--probe-overhead",
        ],
        common::TINY_TEXT,
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 4, "{out}");
    assert!(
        rows[0].starts_with("batch") && rows[0].contains(" on ") && rows[0].contains("% ("),
        "{out}"
    );
    assert!(
        rows[3].starts_with("power") && rows[3].contains(" off "),
        "{out}"
    );
}

#[test]
fn memory_table_for_the_default_model_and_a_preset() {
    let o = ablate(&["memory", "--preset", "gpt3-175b"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("parameters             698.3 GB     349.2 GB"),
        "{out}"
    );
    assert!(
        out.contains("activations per layer: 931.1 MB (mixed)"),
        "{out}"
    );
    let o = ablate(&[
        "memory",
        "--norm",
        "batch",
        "--measure",
        "--steps",
        "2",
        "--d-model",
        "32",
        "--heads",
        "2",
        "--d-ff",
        "128",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("running mean and variance of 5 norm layers"),
        "{out}"
    );
    assert!(out.contains("measured on 2 training steps"), "{out}");
}
