use super::*;
use crate::norm::NormKind;
use crate::results::RunStatus;
use anyhow::Result;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

fn parse(text: &str) -> Result<Study> {
    Study::parse(text, Path::new("experiments/test.toml"))
}

const STUDY: &str = r#"
name = "t"
[base]
steps = 7
[[grid]]
norm = ["layer", "batch"]
seed = [1, 2, 3]
[[grid]]
task = "images"
norm = "batch"
"#;

#[test]
fn grid_expands_to_the_product_and_ids_are_stable() {
    let s = parse(STUDY).unwrap();
    assert_eq!(s.runs.len(), 7);
    assert!(s.runs.iter().all(|r| r.steps == 7));
    let text_batch: Vec<_> = s
        .runs
        .iter()
        .filter(|r| r.norm == NormKind::Batch && r.task == crate::config::Task::Text)
        .collect();
    assert_eq!(text_batch.len(), 3);
    let again = parse(STUDY).unwrap();
    let ids: Vec<String> = s.runs.iter().map(|r| r.id()).collect();
    assert_eq!(ids, again.runs.iter().map(|r| r.id()).collect::<Vec<_>>());
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        7,
        "different configurations get different ids"
    );
}

#[test]
fn shards_partition_the_runs() {
    let s = parse(STUDY).unwrap();
    for n in 1..=4 {
        let mut all: Vec<String> = (1..=n)
            .flat_map(|k| s.shard(k, n))
            .map(|r| r.id())
            .collect();
        all.sort();
        let mut ids: Vec<String> = s.runs.iter().map(|r| r.id()).collect();
        ids.sort();
        assert_eq!(all, ids, "shards of {n} cover every run exactly once");
    }
    // balanced: sizes differ by at most one, for grids of many sizes
    for runs in [1usize, 7, 24, 25, 100] {
        let text = format!(
            "name = \"b\"\n[base]\nsteps = 5\n[[grid]]\nseed = [{}]\n",
            (1..=runs)
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let s = parse(&text).unwrap();
        assert_eq!(s.runs.len(), runs);
        for n in [1, 2, 3, 8, 30] {
            let sizes: Vec<usize> = (1..=n).map(|k| s.shard(k, n).len()).collect();
            let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(hi - lo <= 1, "{runs} runs in {n} shards: {sizes:?}");
            assert_eq!(sizes.iter().sum::<usize>(), runs);
        }
    }
    assert_eq!(parse_shard("2/4", 1).unwrap(), (2, 4));
    assert_eq!(parse_shard("0/4", 0).unwrap(), (1, 4));
    assert_eq!(parse_shard("3/4", 0).unwrap(), (4, 4));
    for bad in ["0/4", "5/4", "x", "1/0"] {
        assert!(parse_shard(bad, 1).is_err(), "{bad}");
    }
    for bad in ["4/4", "x/4", "0/0"] {
        assert!(parse_shard(bad, 0).is_err(), "{bad}");
    }
    assert!(parse_shard("1/4", 2).is_err());
}

#[test]
fn bad_study_files_name_the_file_and_the_key() {
    let err = parse("name = \"t\"\n[base\nsteps = 1\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("experiments/test.toml:") && err.contains("line 2"),
        "{err}"
    );
    let err = parse("name = \"t\"\n[base]\nstpes = 1\n[[grid]]\nseed = [1]\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "experiments/test.toml: [base] (line 3): unknown key `stpes` (did you mean `steps`?)"
        ),
        "{err}"
    );
    let err = parse("name = \"t\"\n[[grid]]\nnorm = [\"layer\", \"btach\"]\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("experiments/test.toml: [[grid]] #1 (line 3): unknown value `btach` (did you mean `batch`?)"), "{err}");
    let err = parse("name = \"t\"\n[[grid]]\nnorm = []\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("empty list") && err.contains("line 3") && err.contains("norm"),
        "{err}"
    );
    let err = parse("name = \"t\"\n[base]\nsteps = 3\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("no [[grid]]"), "{err}");
    let err = parse("name = \"t\"\n[[grid]]\nheads = 3\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("heads (3) must divide"), "{err}");
}

fn tiny_study(extra: &str) -> String {
    format!(
        r#"
name = "tiny"
[base]
steps = 6
d_model = 16
layers = 1
heads = 2
d_ff = 32
vocab_size = 200
batch_size = 8
max_len = 12
eval_every = 3
eval_batches = 2
[[grid]]
norm = ["layer", "power"]
{extra}
"#
    )
}

#[test]
fn runner_skips_finished_runs_reruns_with_force_and_survives_a_failure() {
    let out = std::env::temp_dir().join(format!("ablate-study-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let mut study = parse(&tiny_study("")).unwrap();
    // one run that cannot start: its corpus does not exist
    let mut broken = study.runs[0].clone();
    broken.corpus = "/nonexistent/corpus.txt".into();
    study.runs.push(broken);
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = run_all(&study.runs, &out, 2, false, true, stop.clone()).unwrap();
    assert!(matches!(&outcomes[0], Outcome::Ran(s, _) if s.status == RunStatus::Finished));
    assert!(matches!(&outcomes[1], Outcome::Ran(s, _) if s.status == RunStatus::Finished));
    assert!(matches!(&outcomes[2], Outcome::Failed(e) if e.contains("/nonexistent/corpus.txt")));
    let steps = out.join(study.runs[0].id()).join("steps.csv");
    let modified = std::fs::metadata(&steps).unwrap().modified().unwrap();
    let again = run_all(&study.runs[..2], &out, 1, false, true, stop.clone()).unwrap();
    assert!(again.iter().all(|o| matches!(o, Outcome::Skipped(_))));
    assert_eq!(
        std::fs::metadata(&steps).unwrap().modified().unwrap(),
        modified
    );
    let forced = run_all(&study.runs[..1], &out, 1, true, true, stop).unwrap();
    assert!(matches!(&forced[0], Outcome::Ran(..)));
    assert!(
        !out.join(study.runs[0].id()).join(".lock").exists(),
        "lock released"
    );
}

#[test]
fn a_study_name_cannot_leave_the_results_folder() {
    for bad in [
        "x/../../escaped",
        "../up",
        "/abs",
        ".hidden",
        "",
        "a b",
        "a\\b",
    ] {
        let text = STUDY.replacen("name = \"t\"", &format!("name = {bad:?}"), 1);
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("must be 1-100 letters"), "{bad}: {err}");
        assert!(!err.contains('\n'));
    }
    for good in ["bn-variants", "lr_sweep.v2"] {
        let text = STUDY.replacen("name = \"t\"", &format!("name = {good:?}"), 1);
        assert_eq!(parse(&text).unwrap().name, good);
    }
}

#[test]
fn set_reads_bare_word_lists_as_strings() {
    let (k, v) = parse_set("norm=[batch,layer]").unwrap();
    assert_eq!(k, "norm");
    assert_eq!(v, toml::Value::Array(vec!["batch".into(), "layer".into()]));
    let (_, v) = parse_set("lr=[1e-3, 2e-3]").unwrap();
    assert_eq!(v, toml::Value::Array(vec![1e-3.into(), 2e-3.into()]));
    let (_, v) = parse_set("norm=batch").unwrap();
    assert_eq!(v, toml::Value::String("batch".into()));
    let (_, v) = parse_set("seed=[1, 2]").unwrap();
    assert_eq!(v, toml::Value::Array(vec![1.into(), 2.into()]));
}

#[test]
fn set_errors_name_the_set_and_oversized_grids_are_refused_or_warned() {
    let path = std::path::Path::new("experiments/test.toml");
    let study = "name = \"t\"\n[[grid]]\nnorm = [\"layer\", \"batch\"]\n";
    let bad = |k: &str, v: &str| -> String {
        let set = crate::experiment::parse_set(&format!("{k}={v}")).unwrap();
        Study::parse_with(study, path, &[set])
            .unwrap_err()
            .to_string()
    };
    let err = bad("heads", "3");
    assert!(
        err.contains("--set heads=3: heads (3) must divide"),
        "{err}"
    );
    assert!(!err.contains("[[grid]]"), "{err}");
    let err = bad("norm", "\"btach\"");
    assert!(err.contains("--set norm=\"btach\""), "{err}");
    // a million combinations of one grid: refused before they are built
    let lists = (0..4)
        .map(|i| {
            let v: Vec<String> = (1..=100).map(|x| x.to_string()).collect();
            format!(
                "{} = [{}]\n",
                ["seed", "steps", "eval_every", "d_ff"][i],
                v.join(", ")
            )
        })
        .collect::<String>();
    let err = Study::parse_with(&format!("name = \"t\"\n[[grid]]\n{lists}"), path, &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("more than 1000000 combinations"), "{err}");
    // ten thousand and one: listed with a warning
    let seeds: Vec<String> = (1..=10_001).map(|x| x.to_string()).collect();
    let s = Study::parse_with(
        &format!("name = \"t\"\n[[grid]]\nseed = [{}]\n", seeds.join(", ")),
        path,
        &[],
    )
    .unwrap();
    assert!(s.size_warning().unwrap().contains("has 10001 runs"));
    assert!(Study::parse_with(study, path, &[])
        .unwrap()
        .size_warning()
        .is_none());
}
