//! Reliability through the binary: bad input, divergence, interruption, concurrency and
//! reproducibility.

mod common;

use common::{ablate, args_with, bin, stderr, temp_dir, TINY_TEXT, TINY_TEXT_TOML};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The tiny text model with quiet output and short evaluations.
const TINY_LOGGING: &[&str] = &["--quiet", "--eval-every", "50", "--eval-batches", "2"];

fn tiny_toml() -> String {
    format!("{TINY_TEXT_TOML}eval_batches = 2\n")
}

fn with_tiny<'a>(args: &[&'a str]) -> Vec<&'a str> {
    args_with(&args_with(args, TINY_TEXT), TINY_LOGGING)
}

#[test]
fn bad_inputs_each_give_one_line_and_a_nonzero_exit() {
    let dir = temp_dir("bad");
    let p = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_string()
    };
    let empty = p("empty.txt", b"\n\n");
    let binary = p("binary.txt", &[0x7f, b'E', b'L', b'F', 0, 0, 1]);
    let latin1 = p("latin1.txt", b"caf\xe9 au lait\n");
    let long = p(
        "long.txt",
        "a b c d e f g h i j k l m n o p\n".repeat(40).as_bytes(),
    );
    let not_idx = p("images.idx", b"this is not an image file at all");
    let labels = dir.join("labels.idx");
    std::fs::write(&labels, [0, 0, 8, 1, 0, 0, 0, 1, 3]).unwrap();
    let mut truncated =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/t10k-images-idx3-ubyte.gz"))
            .unwrap();
    truncated.truncate(truncated.len() / 2);
    let truncated = p("trunc.gz", &truncated);
    let a_file = p("plain-file", b"x");
    let syntax = p("syntax.toml", b"name = \"s\"\n[base\nsteps = 3\n");
    let unknown = p(
        "unknown.toml",
        b"name = \"s\"\n[base]\nstpes = 3\n[[grid]]\nseed = [1]\n",
    );
    let unknown_norm = p(
        "norm.toml",
        b"name = \"s\"\n[[grid]]\nnorm = [\"layer\", \"btach\"]\n",
    );
    let empty_grid = p("empty-grid.toml", b"name = \"s\"\n[[grid]]\nnorm = []\n");
    let out = dir.join("out");
    let out_s = out.to_str().unwrap();
    let unwritable = format!("{a_file}/sub");
    let labels_s = labels.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--norm", "btach"], "a similar value exists: 'batch'"),
        (vec!["--task", "imgaes"], "a similar value exists: 'images'"),
        (vec!["--nrom", "batch"], "unexpected argument '--nrom'"),
        (
            vec!["--steps", "0", "--results", out_s],
            "steps must be at least 1",
        ),
        (
            vec!["--max-len", "0", "--results", out_s],
            "max-len must be at least 1",
        ),
        (
            vec!["--corpus", "/nonexistent/c.txt", "--results", out_s],
            "cannot read corpus file /nonexistent/c.txt",
        ),
        (
            vec!["--corpus", &empty, "--results", out_s],
            "holds no sentences",
        ),
        (
            vec!["--corpus", &binary, "--results", out_s],
            "looks binary",
        ),
        (
            vec!["--corpus", &latin1, "--results", out_s],
            "is not valid UTF-8",
        ),
        (
            vec!["--corpus", &long, "--max-len", "8", "--results", out_s],
            "every training sentence",
        ),
        (
            vec!["--vocab-size", "3", "--results", out_s],
            "vocab-size must exceed the 4 special tokens",
        ),
        (
            vec!["--max-tokens", "10", "--max-len", "64", "--results", out_s],
            "max-tokens (10) must be at least max-len",
        ),
        (
            vec!["--batch-size", "0", "--results", out_s],
            "batch-size must be at least 1",
        ),
        (
            vec!["--heads", "3", "--results", out_s],
            "heads (3) must divide d-model",
        ),
        (
            vec!["--results", &unwritable],
            "cannot create output folder",
        ),
        (
            vec![
                "--task",
                "images",
                "--images",
                &not_idx,
                "--labels",
                labels_s,
                "--results",
                out_s,
            ],
            "is not an IDX image file",
        ),
        (
            vec![
                "--task",
                "images",
                "--images",
                &truncated,
                "--results",
                out_s,
            ],
            "not a complete gzip stream",
        ),
        (
            vec!["--backend", "wgpu", "--results", out_s],
            "rebuild with the wgpu feature",
        ),
        (
            vec!["--backend", "cuda", "--results", out_s],
            "this build has no CUDA backend",
        ),
        (
            vec!["bench", "--backend", "cuda", "--steps", "2"],
            "this build has no CUDA backend",
        ),
        (
            vec!["gpu-check", "--backend", "cuda"],
            "this build has no CUDA backend",
        ),
        (
            vec!["gpu-check", "--backend", "flex"],
            "checks a GPU backend (wgpu), not flex",
        ),
        (
            vec!["gpu-check", "--steps", "1"],
            "--steps must be 2 to 100",
        ),
        (vec!["run", &syntax], "syntax.toml: "),
        (
            vec!["run", &unknown],
            "unknown.toml: [base] (line 3): unknown key `stpes` (did you mean `steps`?)",
        ),
        (
            vec!["run", &unknown_norm],
            "(line 3): unknown value `btach` (did you mean `batch`?)",
        ),
        (vec!["run", &empty_grid], "key `norm` has an empty list"),
        (
            vec!["run", "/nonexistent/study.toml"],
            "cannot read study file",
        ),
        (
            vec!["run", &syntax, "--shard", "5/4"],
            "--shard expects k/n",
        ),
        (
            vec!["report", "/nonexistent/results", "--out", out_s],
            "is neither a results folder nor a study file",
        ),
        (vec!["memory", "--preset", "gpt5"], "unknown preset"),
    ];
    let mut failures = Vec::new();
    for (args, expect) in &cases {
        let o = ablate(args);
        let err = stderr(&o);
        let one_line = err.lines().count() == 1;
        if o.status.success() || !err.contains(expect) || !one_line || err.contains("panicked") {
            failures.push(format!(
                "{args:?}: exit {:?}, stderr {err:?}, expected {expect:?}",
                o.status.code()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    if cfg!(not(feature = "wgpu")) {
        // nothing was written for inputs rejected before training
        assert!(!out.exists() || std::fs::read_dir(&out).unwrap().count() == 0);
    }
}

/// Every column of a run's steps.csv but the timings (step_ms, wall_s).
fn deterministic_columns(run: &Path) -> Vec<String> {
    std::fs::read_to_string(run.join("steps.csv"))
        .unwrap()
        .lines()
        .map(|l| l.split(',').take(8).collect::<Vec<_>>().join(","))
        .collect()
}

fn read_summary(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn divergence_is_recorded_and_the_study_goes_on() {
    let dir = temp_dir("diverge");
    let study = dir.join("study.toml");
    std::fs::write(&study, format!("name = \"div\"\n[base]\nsteps = 20\nwarmup_steps = 2\ngrad_clip = 0.0\n{}[[grid]]\nnorm = \"power\"\nlr = [1e6, 1e-3]\n", tiny_toml())).unwrap();
    let out = dir.join("results");
    common::run_study(&study, &out);
    let runs = common::run_dirs(&out);
    assert_eq!(runs.len(), 2);
    let summaries: Vec<serde_json::Value> = runs.iter().map(|r| read_summary(r)).collect();
    let diverged = summaries
        .iter()
        .find(|s| s["status"] == "diverged")
        .expect("one run diverged");
    let finished = summaries
        .iter()
        .find(|s| s["status"] == "finished")
        .expect("the other finished");
    assert_eq!(finished["steps_completed"], 20);
    let div = &diverged["divergence"];
    let step = div["step"].as_u64().unwrap();
    assert!(step >= 1 && step < 20, "{div}");
    assert!(div["quantity"].is_string());
    assert_eq!(diverged["steps_completed"].as_u64().unwrap(), step);
    // the CSVs are kept, up to the diverging step
    let d = runs
        .iter()
        .find(|r| read_summary(r)["status"] == "diverged")
        .unwrap();
    let rows = std::fs::read_to_string(d.join("steps.csv"))
        .unwrap()
        .lines()
        .count()
        - 1;
    assert_eq!(rows as u64, step);
    // the report shows it instead of dropping it
    let report = dir.join("report");
    let o = ablate(&[
        "report",
        out.to_str().unwrap(),
        "--out",
        report.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let md = std::fs::read_to_string(report.join("REPORT.md")).unwrap();
    assert!(md.contains(&format!("diverged at step {step}")), "{md}");
    // a single diverging run exits with code 3
    let single = dir.join("single");
    let o = bin()
        .args(with_tiny(&[
            "--norm",
            "power",
            "--lr",
            "1e6",
            "--grad-clip",
            "0",
            "--warmup-steps",
            "2",
            "--steps",
            "20",
            "--results",
            single.to_str().unwrap(),
        ]))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
}

fn wait_for_rows(path: &Path, rows: usize, timeout: Duration) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if std::fs::read_to_string(path)
            .map(|s| s.lines().count() > rows)
            .unwrap_or(false)
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{} did not reach {rows} rows", path.display());
}

#[test]
fn sigint_marks_the_run_interrupted_and_a_rerun_completes_it() {
    let dir = temp_dir("sigint");
    let study = dir.join("study.toml");
    // eval_every is large so the CSV flush every 50 steps is what makes rows visible
    std::fs::write(&study, format!("name = \"int\"\n[base]\nsteps = 3000\neval_every = 100000\n{}[[grid]]\nnorm = \"batch\"\n[[grid]]\nnorm = \"layer\"\nsteps = 20\n", tiny_toml())).unwrap();
    let out = dir.join("results");
    let args = [
        "run",
        study.to_str().unwrap(),
        "--results",
        out.to_str().unwrap(),
        "--quiet",
        "--jobs",
        "1",
    ];
    let child = bin()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let run_dir = {
        let start = Instant::now();
        loop {
            if let Some(e) = std::fs::read_dir(&out).ok().and_then(|mut d| d.next()) {
                break e.unwrap().path();
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no run folder appeared"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for_rows(&run_dir.join("steps.csv"), 60, Duration::from_secs(120));
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130));
    // the second run never started: it is neither failed nor interrupted
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        said.contains("0 failed, 1 interrupted, 1 not started"),
        "{said}"
    );
    let s = read_summary(&run_dir);
    assert_eq!(s["status"], "interrupted");
    let done = s["steps_completed"].as_u64().unwrap();
    assert!(done >= 50 && done < 3000, "{done}");
    let rows = std::fs::read_to_string(run_dir.join("steps.csv"))
        .unwrap()
        .lines()
        .count() as u64
        - 1;
    assert_eq!(rows, done, "every completed step was flushed");
    assert!(!run_dir.join(".lock").exists());
    // rerun: the interrupted run is redone to the end; a third invocation skips it
    let o = ablate(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read_summary(&run_dir)["status"], "finished");
    let o = ablate(&args);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("2 skipped"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn concurrent_processes_never_share_a_run_folder() {
    let dir = temp_dir("concurrent");
    let out = dir.join("results");
    let args = with_tiny(&[
        "--norm",
        "layer",
        "--steps",
        "30",
        "--results",
        out.to_str().unwrap(),
    ]);
    let children: Vec<_> = (0..2)
        .map(|_| {
            bin()
                .args(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let runs: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        // run folders (a study also writes its runs-<study>.csv table here)
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(runs.len(), 2, "two folders for two processes");
    for r in &runs {
        assert_eq!(read_summary(r)["status"], "finished");
        assert_eq!(
            std::fs::read_to_string(r.join("steps.csv"))
                .unwrap()
                .lines()
                .count(),
            31
        );
    }
    // two study processes on one results folder: each run is trained once, never twice at a time
    let study = dir.join("study.toml");
    std::fs::write(&study, format!("name = \"c\"\n[base]\nsteps = 200\n{}[[grid]]\nnorm = [\"layer\", \"batch\", \"rms\"]\n", tiny_toml())).unwrap();
    let sout = dir.join("study-results");
    let sargs = [
        "run",
        study.to_str().unwrap(),
        "--results",
        sout.to_str().unwrap(),
        "--quiet",
        "--jobs",
        "1",
    ];
    let children: Vec<_> = (0..2)
        .map(|_| {
            bin()
                .args(sargs)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<String> = children
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "{}", stderr(&o));
            String::from_utf8_lossy(&o.stdout).to_string()
        })
        .collect();
    let trained: usize = outputs
        .iter()
        .map(|o| {
            o.lines()
                .filter(|l| l.trim_start().starts_with("finished"))
                .count()
        })
        .sum();
    assert_eq!(trained, 3, "each run trained exactly once: {outputs:?}");
    for r in std::fs::read_dir(&sout).unwrap() {
        let r = r.unwrap().path();
        if !r.is_dir() {
            continue; // the study's runs-<study>.csv
        }
        assert_eq!(read_summary(&r)["status"], "finished");
        assert_eq!(
            std::fs::read_to_string(r.join("steps.csv"))
                .unwrap()
                .lines()
                .count(),
            201
        );
    }
}

#[test]
fn same_configuration_and_seed_reproduce_the_loss_columns() {
    let dir = temp_dir("repro");
    let out = dir.join("results");
    for _ in 0..2 {
        let o = bin()
            .args(with_tiny(&[
                "--norm",
                "power",
                "--steps",
                "25",
                "--warmup-steps",
                "5",
                "--results",
                out.to_str().unwrap(),
            ]))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let mut runs: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        // run folders (a study also writes its runs-<study>.csv table here)
        .filter(|p| p.is_dir())
        .collect();
    runs.sort();
    assert_eq!(runs.len(), 2);
    assert_eq!(
        deterministic_columns(&runs[0]),
        deterministic_columns(&runs[1])
    );
    let read = |r: &Path, f: &str| std::fs::read_to_string(r.join(f)).unwrap();
    assert_eq!(read(&runs[0], "probes.csv"), read(&runs[1], "probes.csv"));
    assert_eq!(read(&runs[0], "eval.csv"), read(&runs[1], "eval.csv"));
    assert_eq!(read(&runs[0], "config.toml"), read(&runs[1], "config.toml"));
    // a different seed gives a different run
    let o = bin()
        .args(with_tiny(&[
            "--norm",
            "power",
            "--steps",
            "25",
            "--warmup-steps",
            "5",
            "--seed",
            "2",
            "--results",
            dir.join("other").to_str().unwrap(),
        ]))
        .output()
        .unwrap();
    assert!(o.status.success());
    let other = std::fs::read_dir(dir.join("other"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_ne!(
        deterministic_columns(&runs[0]),
        deterministic_columns(&other)
    );
}

#[test]
fn runs_trained_side_by_side_reproduce_runs_trained_alone() {
    // `--jobs 2` trains two runs in one process at once: their weights, batches and dropout
    // masks must not depend on what the other run draws.
    let dir = temp_dir("jobs");
    let study = dir.join("side.toml");
    std::fs::write(
        &study,
        format!(
            "name = \"side\"\n[base]\nsteps = 12\nwarmup_steps = 3\neval_every = 12\n{}[[grid]]\nnorm = [\"layer\", \"power\"]\nseed = [1, 2]\n",
            tiny_toml()
        ),
    )
    .unwrap();
    let mut outputs = Vec::new();
    for jobs in ["1", "2"] {
        let out = dir.join(format!("jobs{jobs}"));
        let o = bin()
            .args([
                "run",
                study.to_str().unwrap(),
                "--quiet",
                "--jobs",
                jobs,
                "--results",
                out.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        outputs.push(out);
    }
    let mut ids: Vec<String> = std::fs::read_dir(&outputs[0])
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    ids.sort();
    assert_eq!(ids.len(), 4, "{ids:?}");
    for id in &ids {
        let (a, b) = (outputs[0].join(id), outputs[1].join(id));
        assert_eq!(
            deterministic_columns(&a),
            deterministic_columns(&b),
            "{id}: steps.csv"
        );
        for f in ["probes.csv", "eval.csv"] {
            assert_eq!(
                std::fs::read_to_string(a.join(f)).unwrap(),
                std::fs::read_to_string(b.join(f)).unwrap(),
                "{id}: {f}"
            );
        }
    }
}
