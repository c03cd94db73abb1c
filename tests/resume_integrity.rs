//! A resume that cannot lie: a checkpoint whose files disagree (an edited state.json, a damaged
//! tensor file, CSV rows changed before its step, a step that disagrees with steps.csv) is passed
//! over for the previous one, and the resume says so; data that changed since refuses it.

mod common;

use ablate::results::digest::sha256_hex;
use common::{ablate, args_with, stderr, temp_dir, TINY_TEXT};
use std::path::{Path, PathBuf};

/// A run of 60 steps stopped at step 30, checkpoints at 20 and 30, trained on a copy of the
/// corpus in `dir`: `(run folder, corpus copy)`.
fn stopped_run(dir: &Path) -> (PathBuf, PathBuf) {
    let corpus = dir.join("corpus.txt");
    let text = std::fs::read_to_string("data/austen.sents.txt").unwrap();
    let head: Vec<&str> = text.lines().take(3000).collect();
    std::fs::write(&corpus, head.join("\n") + "\n").unwrap();
    let out = dir.join("results");
    let args = args_with(
        TINY_TEXT,
        &[
            "--norm",
            "batch",
            "--steps",
            "60",
            "--checkpoint-every",
            "10",
            "--eval-every",
            "50",
            "--eval-batches",
            "2",
            "--warmup-steps",
            "5",
            "--quiet",
            "--stop-at-step",
            "30",
        ],
    );
    let (c, o) = (corpus.to_str().unwrap(), out.to_str().unwrap());
    let o = ablate(&args_with(&args, &["--corpus", c, "--results", o]));
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let run = common::run_dirs(&out).remove(0);
    (run, corpus)
}

fn checkpoint(run: &Path, step: usize) -> PathBuf {
    run.join("checkpoints").join(format!("step-{step:09}"))
}

/// Rewrites the newest checkpoint's state.json with `edit`, and its digest too when `consistent`
/// (a lie told with care).
fn edit_state(run: &Path, consistent: bool, edit: impl Fn(&str) -> String) {
    let dir = checkpoint(run, 30);
    let state = std::fs::read_to_string(dir.join("state.json")).unwrap();
    let edited = edit(&state);
    assert_ne!(state, edited, "the edit changed nothing");
    std::fs::write(dir.join("state.json"), &edited).unwrap();
    if consistent {
        let digest = sha256_hex(edited.as_bytes());
        std::fs::write(dir.join("state.sha256"), format!("{digest}\n")).unwrap();
    }
}

/// The step column of steps.csv.
fn steps_column(run: &Path) -> Vec<usize> {
    let text = std::fs::read_to_string(run.join("steps.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect()
}

/// Resumes `run` and expects it to pass over the newest checkpoint for `why`, continue from
/// step 20 and finish with one row per step.
fn falls_back(run: &Path, why: &str) {
    let o = ablate(&["--resume", run.to_str().unwrap(), "--quiet"]);
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    assert!(
        e.contains("step-000000030 passed over") && e.contains(why),
        "{e}"
    );
    assert!(e.contains("continuing from step 20"), "{e}");
    assert_eq!(steps_column(run), (1..=60).collect::<Vec<_>>());
    let summary = std::fs::read_to_string(run.join("summary.json")).unwrap();
    assert!(summary.contains("\"status\": \"finished\""), "{summary}");
}

#[test]
fn an_edited_state_falls_back_to_the_previous_checkpoint_and_says_so() {
    let dir = temp_dir("integrity-state");
    let (run, _) = stopped_run(&dir);
    edit_state(&run, false, |s| s.replace("\"step\": 30", "\"step\": 25"));
    falls_back(&run, "state.json does not match state.sha256");
}

#[test]
fn a_step_that_disagrees_with_the_rows_is_caught_even_with_a_matching_digest() {
    for (name, step) in [("back", 25), ("zero", 0), ("beyond", 100)] {
        let dir = temp_dir(&format!("integrity-step-{name}"));
        let (run, _) = stopped_run(&dir);
        edit_state(&run, true, |s| {
            s.replace("\"step\": 30", &format!("\"step\": {step}"))
        });
        falls_back(
            &run,
            &format!(
                "holds 30 rows before the checkpoint's length, the checkpoint is at step {step}"
            ),
        );
    }
}

#[test]
fn edited_file_lengths_are_caught_by_the_prefix_digests() {
    let dir = temp_dir("integrity-lengths");
    let (run, _) = stopped_run(&dir);
    edit_state(&run, true, |s| {
        let at = s.find("\"probes\": ").unwrap() + "\"probes\": ".len();
        let end = at + s[at..].find(|c: char| !c.is_ascii_digit()).unwrap();
        format!("{}100{}", &s[..at], &s[end..])
    });
    falls_back(&run, "probes.csv does not begin with the 100 bytes");
    // the probes of steps 1-30 were kept, not cut
    let probes = std::fs::read_to_string(run.join("probes.csv")).unwrap();
    assert!(
        probes.lines().nth(1).unwrap().starts_with("1,"),
        "{probes:.200}"
    );
}

#[test]
fn a_damaged_model_file_falls_back_to_the_previous_checkpoint() {
    let dir = temp_dir("integrity-model");
    let (run, _) = stopped_run(&dir);
    let model = checkpoint(&run, 30).join("model.bpk");
    let mut bytes = std::fs::read(&model).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&model, bytes).unwrap();
    falls_back(&run, "model.bpk does not match the digest");
}

#[test]
fn rows_changed_before_every_checkpoint_leave_nothing_to_resume() {
    let dir = temp_dir("integrity-rows");
    let (run, _) = stopped_run(&dir);
    let path = run.join("steps.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    // step 5's row edited in place, same length
    let row = text.lines().nth(5).unwrap();
    let edited_row = row.replacen("5,", "5,9", 1);
    let edited = text.replacen(row, &edited_row[..row.len()], 1);
    assert_ne!(text, edited);
    std::fs::write(&path, &edited).unwrap();
    let o = ablate(&["--resume", run.to_str().unwrap(), "--quiet"]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.contains("has no usable checkpoint") && e.contains("steps.csv does not begin with"),
        "{e}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        edited,
        "results touched"
    );
}

#[test]
fn a_corpus_changed_since_the_checkpoint_refuses_the_resume() {
    let dir = temp_dir("integrity-corpus");
    let (run, corpus) = stopped_run(&dir);
    let text = std::fs::read_to_string(&corpus).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.reverse();
    std::fs::write(&corpus, lines.join("\n") + "\n").unwrap();
    let before = std::fs::read(run.join("steps.csv")).unwrap();
    let o = ablate(&["--resume", run.to_str().unwrap(), "--quiet"]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.contains("corpus.txt changed since") && e.contains("would train on other data"),
        "{e}"
    );
    assert_eq!(std::fs::read(run.join("steps.csv")).unwrap(), before);
    // restored, it resumes
    std::fs::write(&corpus, text).unwrap();
    let o = ablate(&["--resume", run.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(steps_column(&run), (1..=60).collect::<Vec<_>>());
}
