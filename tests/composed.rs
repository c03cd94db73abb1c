//! Declared norms end to end: each built-in norm's twin from `experiments/norms.toml` trains
//! as the built-in norm does (losses, gradient norms, evaluations and every probe, bit for bit);
//! a study declares norms in `[norms.NAME]` tables; run ids hash the declaration, not its name;
//! reports label runs with the name and list the declaration; bad declarations are refused in
//! one line before anything trains.

mod common;

use common::{
    ablate, args_with, numeric_rows, run_dirs, stderr, temp_dir, TINY_TEXT, TINY_TEXT_TOML,
};
use std::path::{Path, PathBuf};

/// `experiments/norms.toml` fitted to the tiny model: GroupScaling over its 2 heads, PowerNorm's
/// warm-up at its 4 learning-rate warm-up steps (the built-in norm's defaults there).
fn twins_file(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/norms.toml"),
    )
    .unwrap();
    let fitted = text
        .replace("groups = 4", "groups = 2")
        .replace("warmup = 100", "warmup = 4");
    assert_ne!(fitted, text);
    let path = dir.join("twins.toml");
    std::fs::write(&path, fitted).unwrap();
    path
}

const STEPS: &[&str] = &[
    "--steps",
    "12",
    "--warmup-steps",
    "4",
    "--eval-every",
    "6",
    "--eval-batches",
    "2",
    "--quiet",
];

fn train(out: &Path, args: &[&str]) -> PathBuf {
    let all = args_with(
        &args_with(TINY_TEXT, STEPS),
        &args_with(args, &["--results", out.to_str().unwrap()]),
    );
    let o = ablate(&all);
    assert!(o.status.success(), "{all:?}: {}", stderr(&o));
    let dirs = run_dirs(out);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

#[test]
fn declared_twins_train_exactly_as_their_built_in_norms() {
    let dir = temp_dir("composed-twins");
    let twins = twins_file(&dir);
    let norms = [
        "layer",
        "rms",
        "batch",
        "masked-batch",
        "scaled-batch",
        "position-batch",
        "pn-v",
        "power",
    ];
    for norm in norms {
        let builtin = train(&dir.join(format!("{norm}-builtin")), &["--norm", norm]);
        let twin_name = format!("{norm}-twin");
        let twin_args = ["--norm-file", twins.to_str().unwrap(), "--norm", &twin_name];
        let twin = train(&dir.join(format!("{norm}-twin")), &twin_args);
        for file in ["steps.csv", "probes.csv", "eval.csv"] {
            let (a, b) = (
                numeric_rows(&builtin.join(file)),
                numeric_rows(&twin.join(file)),
            );
            assert!(
                file == "probes.csv" || a.len() > 1,
                "{norm}: {file} is empty"
            );
            assert_eq!(
                a, b,
                "{norm}: {file} differs between the built-in norm and its twin"
            );
        }
        // the twin's run is labelled with its name and identified by its declaration
        let id = twin.file_name().unwrap().to_str().unwrap().to_string();
        assert!(id.starts_with("text-composed-s1-"), "{id}");
        let config = std::fs::read_to_string(twin.join("config.toml")).unwrap();
        assert!(
            config.contains(&format!("norm_name = \"{twin_name}\"")),
            "{config}"
        );
        assert!(config.contains("[norm_decl]"), "{config}");
        let summary = std::fs::read_to_string(twin.join("summary.json")).unwrap();
        assert!(
            summary.contains(&format!("\"norm\": \"{twin_name}\"")),
            "{summary}"
        );
    }
}

fn study(dir: &Path, norms: &str, grid: &str) -> PathBuf {
    let path = dir.join("s.toml");
    let text = format!("name = \"s\"\n[base]\nsteps = 6\neval_every = 3\neval_batches = 2\n{TINY_TEXT_TOML}{norms}\n[[grid]]\n{grid}\n");
    std::fs::write(&path, text).unwrap();
    path
}

const GROUP_BN: &str = "axes = \"group\"\ngroups = 2\nscale = \"variance\"\n";

#[test]
fn a_run_id_hashes_the_declaration_not_its_name() {
    let dir = temp_dir("composed-ids");
    let load = |norms: &str, grid: &str| {
        ablate::experiment::Study::load(&study(&dir, norms, grid))
            .unwrap_or_else(|e| panic!("{e:#}"))
    };
    let one = load(&format!("[norms.a]\n{GROUP_BN}"), "norm = \"a\"");
    // the same norm under another name, its defaults written out
    let spelled = format!(
        "[norms.b]\n{GROUP_BN}positions = \"real\"\ncentre = true\nmomentum = 0.1\neps = 1e-5\n"
    );
    let renamed = load(&spelled, "norm = \"b\"");
    assert_eq!(one.runs[0].id(), renamed.runs[0].id());
    assert_eq!(one.runs[0].norm_label(), "a");
    assert_eq!(renamed.runs[0].norm_label(), "b");
    // another part, another id
    let other = load(
        &format!("[norms.a]\n{GROUP_BN}momentum = 0.2\n"),
        "norm = \"a\"",
    );
    assert_ne!(one.runs[0].id(), other.runs[0].id());
    // both names in one grid: one run
    let both = load(
        &format!("[norms.a]\n{GROUP_BN}{spelled}"),
        "norm = [\"a\", \"b\", \"layer\"]",
    );
    assert_eq!(both.runs.len(), 2);
}

#[test]
fn a_study_trains_reports_and_labels_its_declared_norms() {
    let dir = temp_dir("composed-study");
    let path = study(
        &dir,
        &format!("[norms.group-bn]\n{GROUP_BN}"),
        "norm = [\"layer\", \"group-bn\"]",
    );
    let out = dir.join("out");
    let o = ablate(&[
        "run",
        path.to_str().unwrap(),
        "--results",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(run_dirs(&out).len(), 2);
    let report = dir.join("report");
    let o = ablate(&[
        "report",
        path.to_str().unwrap(),
        "--results",
        out.to_str().unwrap(),
        "--out",
        report.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let md = std::fs::read_to_string(report.join("REPORT.md")).unwrap();
    assert!(md.contains("text group-bn"), "{md}");
    assert!(md.contains("| `group-bn` | `{ "), "{md}");
    assert!(md.contains("axes = \"group\""), "{md}");
    // the runs table names the declared norm
    let table = std::fs::read_to_string(out.join("runs-s.csv")).unwrap();
    assert!(table.contains(",group-bn,"), "{table}");
}

#[test]
fn bad_declarations_and_names_are_refused_in_one_line_before_training() {
    let dir = temp_dir("composed-refused");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[norms.pn-ln]\naxes = \"token\"\ncentre = false\nscale = \"quadratic-mean\"\nbackward = \"approximate\"\n").unwrap();
    let twins = twins_file(&dir);
    let out = dir.join("out");
    let o_s = out.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--norm-file", bad.to_str().unwrap(), "--norm", "pn-ln"],
            "norms.pn-ln: backward = \"approximate\" needs axes = \"batch\"",
        ),
        (
            vec![
                "--norm-file",
                twins.to_str().unwrap(),
                "--norm",
                "layr-twin",
            ],
            "declares no such norm",
        ),
        (
            vec!["--norm-file", twins.to_str().unwrap()],
            "--norm-file needs --norm NAME",
        ),
        (
            vec!["--norm", "group-bn"],
            "no --norm-file FILE declares it",
        ),
        (
            vec!["--norm", "composed"],
            "no --norm-file FILE declares it",
        ),
        (
            vec![
                "--norm-file",
                twins.to_str().unwrap(),
                "--norm",
                "layer-twin",
                "--norm-eps",
                "1e-3",
            ],
            "--norm-eps does not apply",
        ),
        (
            vec!["--norm-file", "/nonexistent/n.toml", "--norm", "x"],
            "cannot read norm file",
        ),
    ];
    for (args, want) in cases {
        let o = ablate(&args_with(&args, &["--results", o_s]));
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {e}");
        assert!(
            e.contains(want) && e.trim().lines().count() == 1,
            "{args:?}: {e}"
        );
    }
    assert!(!out.exists() || run_dirs(&out).is_empty(), "nothing trains");
    // in a study: the line and the part
    let path = study(&dir, "[norms.rms-bn]\naxes = \"batch\"\nscale = \"quadratic-mean\"\nrunning-variance = \"unbiased\"\n", "norm = \"rms-bn\"");
    let o = ablate(&["run", path.to_str().unwrap(), "--results", o_s]);
    assert!(
        stderr(&o).contains("norms.rms-bn: running-variance does not apply"),
        "{}",
        stderr(&o)
    );
    let path = study(
        &dir,
        "[norms.layer]\naxes = \"token\"\nscale = \"variance\"\n",
        "norm = \"layer\"",
    );
    let o = ablate(&["run", path.to_str().unwrap(), "--results", o_s]);
    assert!(
        stderr(&o).contains("the name is a built-in norm's"),
        "{}",
        stderr(&o)
    );
}
