//! `scripts/load_results.py` on a results folder made here: a study with a text and an image run
//! loads into pandas frames holding every row, with numeric columns in both kinds of run.
//!
//! Needs a Python with pandas (`$PYTHON`, default `python3`). Where it has none the test says so
//! and passes, unless `ABLATE_REQUIRE_PANDAS=1` (CI sets it, after installing pandas).

mod common;

use common::{run_study, temp_dir, TINY_TEXT_TOML};
use std::path::Path;
use std::process::Command;

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

fn has_pandas() -> bool {
    let ok = Command::new(python())
        .args(["-c", "import pandas"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok && std::env::var("ABLATE_REQUIRE_PANDAS").as_deref() == Ok("1") {
        panic!(
            "ABLATE_REQUIRE_PANDAS=1 but {} cannot import pandas",
            python()
        );
    }
    ok
}

/// Runs `scripts/<script>` with `args`; its standard output, after checking it succeeded.
fn run_script(script: &str, args: &[&std::ffi::OsStr]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(script);
    let o = Command::new(python())
        .arg(&path)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{script}: {stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    stdout
}

#[test]
fn results_load_into_pandas_frames() {
    if !has_pandas() {
        eprintln!("skipped: {} cannot import pandas (set PYTHON)", python());
        return;
    }
    let dir = temp_dir("load-results");
    let study = dir.join("mixed.toml");
    std::fs::write(
        &study,
        format!(
            "name = \"mixed\"\n[base]\nsteps = 4\neval_every = 2\neval_batches = 1\nwarmup_steps = 2\ncnn_channels = [4, 8, 8]\n{TINY_TEXT_TOML}\
             [[grid]]\ntask = [\"text\"]\nnorm = [\"batch\", \"layer\"]\n[[grid]]\ntask = [\"images\"]\nnorm = [\"batch\"]\n"
        ),
    )
    .unwrap();
    let out = dir.join("results");
    run_study(&study, &out);
    // no empty cells (polars would type an empty column as text): NaN where a number does not apply
    for run in common::run_dirs(&out) {
        let eval = std::fs::read_to_string(run.join("eval.csv")).unwrap();
        for line in eval.lines() {
            assert!(
                !line.contains(",,") && !line.ends_with(','),
                "{}: {line}",
                run.display()
            );
        }
    }
    let stdout = run_script("load_results.py", &[out.as_os_str(), "--check".as_ref()]);
    // 3 runs (a LayerNorm run's probes.csv holds its header only); 4 steps each; evaluations at
    // steps 2 and 4 for all three
    for want in [
        "runs: 3 rows",
        "steps: 12 rows",
        "eval: 6 rows",
        "status: finished 3",
        "check: every row",
    ] {
        assert!(stdout.contains(want), "{want} in:\n{stdout}");
    }
    // the documented call, and the study's name from runs-mixed.csv
    let code = format!(
        "import sys; sys.path.insert(0, {:?}); from load_results import load_results; \
         r = load_results({:?}); \
         assert set(r.runs.study) == {{'mixed'}}, r.runs.study; \
         assert sorted(r.runs.task) == ['images', 'text', 'text']; \
         e = r.eval.merge(r.runs[['run_id', 'task']], on='run_id'); \
         assert e[e.task.eq('text')].eval_accuracy.isna().all() and e[e.task.eq('text')].eval_ppl.gt(1).all(); \
         assert e[e.task.eq('images')].eval_ppl.isna().all() and e[e.task.eq('images')].eval_accuracy.between(0, 1).all(); \
         assert r.probes.name.str.startswith('dist_').any()",
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts"),
        out
    );
    let o = Command::new(python()).args(["-c", &code]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // damage: text in a loss cell of one run, an unreadable config.toml in a copy of the other
    let runs = common::run_dirs(&out);
    let steps = runs[0].join("steps.csv");
    let text = std::fs::read_to_string(&steps).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let loss_at = lines[0].split(',').position(|c| c == "loss").unwrap();
    let mut cells: Vec<&str> = lines[2].split(',').collect();
    cells[loss_at] = "oops";
    lines[2] = cells.join(",");
    std::fs::write(&steps, lines.join("\n") + "\n").unwrap();
    let broken = out.join("broken-copy");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("config.toml"), "norm = [unclosed").unwrap();
    let o = Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/load_results.py"))
        .arg(&out)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert_eq!(o.status.code(), Some(1), "{stdout}{stderr}");
    // each damaged file named, and everything else loaded: both runs, all 8 steps, loss numeric
    assert!(
        stderr.contains(&format!(
            "{}: column 'loss': 1 cell(s) not a number (first 'oops' on line 3)",
            steps.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{}: not read",
            broken.join("config.toml").display()
        )),
        "{stderr}"
    );
    assert!(
        stdout.contains("runs: 3 rows") && stdout.contains("steps: 12 rows"),
        "{stdout}"
    );
    let code = format!(
        "import sys; sys.path.insert(0, {:?}); from load_results import load_results; \
         r = load_results({:?}); import pandas as pd; \
         assert pd.api.types.is_numeric_dtype(r.steps.loss) and r.steps.loss.isna().sum() == 1; \
         assert len(r.problems) == 2, r.problems",
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts"),
        out
    );
    let o = Command::new(python()).args(["-c", &code]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn precision_comparison_reads_a_study_of_both_precisions() {
    if !has_pandas() {
        eprintln!("skipped: {} cannot import pandas (set PYTHON)", python());
        return;
    }
    let dir = temp_dir("compare-precision");
    let study = dir.join("precision.toml");
    std::fs::write(
        &study,
        format!(
            "name = \"precision\"\n[base]\nsteps = 6\neval_every = 3\neval_batches = 1\nwarmup_steps = 2\n{TINY_TEXT_TOML}\
             [[grid]]\ntask = \"text\"\nnorm = [\"layer\", \"batch\"]\nmatmul_precision = [\"f32\", \"bf16\"]\nseed = [1, 2]\n"
        ),
    )
    .unwrap();
    let out = dir.join("results");
    run_study(&study, &out);
    let stdout = run_script(
        "compare_precision.py",
        &[out.as_os_str(), "--study".as_ref(), "precision".as_ref()],
    );
    assert!(
        stdout.contains("study precision: 8 finished runs"),
        "{stdout}"
    );
    // a row per evaluation and norm, and a verdict per norm
    for norm in ["layer", "batch"] {
        assert!(
            stdout.contains(&format!("### {norm}: validation loss")),
            "{stdout}"
        );
        assert_eq!(
            stdout
                .lines()
                .filter(|l| l.starts_with(&format!("| {norm} | ")))
                .filter(|l| l.ends_with(" |") && (l.contains("| yes |") || l.contains("| no |")))
                .count(),
            1,
            "{stdout}"
        );
    }
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.starts_with("| 3 | ") || l.starts_with("| 6 | "))
            .count(),
        4,
        "{stdout}"
    );
    // BatchNorm's statistics in both precisions
    assert!(stdout.contains("| batch | bf16 | dist_var |"), "{stdout}");
    // a study that is not there is a one-line error
    let o = Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/compare_precision.py"))
        .arg(&out)
        .args(["--study", "nothing"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no finished runs of study nothing"));
}
