//! Training on split files of the user's own (`--train-file`, `--valid-file`, `--test-file`)
//! and on BPE subwords (`--tokenizer bpe`), end to end through the binary.

mod common;

use common::{ablate, args_with, run_dirs, stderr, temp_dir};
use std::path::{Path, PathBuf};

/// `n` short sentences over a small vocabulary, the same for the same `seed`.
fn sentences(n: usize, seed: u64) -> String {
    const WORDS: [&str; 24] = [
        "the", "a", "cat", "dog", "bird", "walked", "talked", "played", "reading", "jumping",
        "quickly", "slowly", "garden", "house", "river", "under", "over", "near", "happy",
        "unhappy", "happily", "teacher", "teachers", "teaching",
    ];
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = |m: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as usize) % m
    };
    let mut text = String::new();
    for i in 0..n {
        let len = 3 + next(5);
        let words: Vec<&str> = (0..len).map(|_| WORDS[next(WORDS.len())]).collect();
        text.push_str(&words.join(" "));
        text.push_str(" .\n");
        if i % 50 == 0 {
            // blank lines are skipped
            text.push('\n');
        }
    }
    text
}

/// train.txt (300 sentences), valid.txt and test.txt (40 each) in `dir`.
fn split_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let files = (
        dir.join("train.txt"),
        dir.join("valid.txt"),
        dir.join("test.txt"),
    );
    std::fs::write(&files.0, sentences(300, 1)).unwrap();
    std::fs::write(&files.1, sentences(40, 2)).unwrap();
    std::fs::write(&files.2, sentences(40, 3)).unwrap();
    files
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A 4-step BPE run of the tiny model on the split files into `out`.
fn bpe_run(out: &Path, train: &Path, valid: &Path, test: &Path) -> std::process::Output {
    ablate(&args_with(
        &[
            "--train-file",
            s(train),
            "--valid-file",
            s(valid),
            "--test-file",
            s(test),
            "--tokenizer",
            "bpe",
            "--steps",
            "4",
            "--warmup-steps",
            "2",
            "--eval-every",
            "2",
            "--eval-batches",
            "2",
            "--results",
            s(out),
            "--quiet",
        ],
        // --vocab-size 200 among them
        common::TINY_TEXT,
    ))
}

#[test]
fn bpe_run_on_split_files_finishes_records_them_and_changes_id_with_their_content() {
    let dir = temp_dir("data-files");
    let (train, valid, test) = split_files(&dir);
    let out = dir.join("results");
    let o = bpe_run(&out, &train, &valid, &test);
    assert!(o.status.success(), "{}", stderr(&o));
    let runs = run_dirs(&out);
    // the run folder and the tokenizer cache (no config.toml: not a run)
    let run: Vec<&PathBuf> = runs
        .iter()
        .filter(|d| d.join("config.toml").is_file())
        .collect();
    assert_eq!(run.len(), 1, "{runs:?}");
    let first = run[0].clone();

    let eval = std::fs::read_to_string(first.join("eval.csv")).unwrap();
    let losses: Vec<f64> = eval
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(losses.len(), 2, "{eval}");
    assert!(losses.iter().all(|l| l.is_finite() && *l > 0.0), "{eval}");

    let config = std::fs::read_to_string(first.join("config.toml")).unwrap();
    for want in [
        format!("train_file = {:?}", s(&train)),
        format!("valid_file = {:?}", s(&valid)),
        format!("test_file = {:?}", s(&test)),
        "train_file_sha256 = \"".to_string(),
        "valid_file_sha256 = \"".to_string(),
        "test_file_sha256 = \"".to_string(),
        "tokenizer = \"bpe\"".to_string(),
        "vocab_size = 200".to_string(),
    ] {
        assert!(config.contains(&want), "missing {want:?} in\n{config}");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(first.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["status"], "finished");
    let vocab = summary["vocab_size"].as_u64().unwrap();
    assert!((30..=200).contains(&vocab), "vocab {vocab}");

    // the tokenizer is cached as tokenizer JSON beside the runs
    let cached: Vec<PathBuf> = std::fs::read_dir(out.join("tokenizers"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    let name = cached[0].file_name().unwrap().to_str().unwrap();
    assert!(
        name.starts_with("bpe-200-") && name.ends_with(".json"),
        "{name}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cached[0]).unwrap()).unwrap();
    assert_eq!(json["model"]["type"], "BPE");
    assert_eq!(json["model"]["vocab"]["<pad>"], 0);
    assert_eq!(json["model"]["vocab"]["<eos>"], 3);

    // the same path with one more sentence: another run id (and another tokenizer)
    let mut text = std::fs::read_to_string(&train).unwrap();
    text.push_str("the cat walked near the river .\n");
    std::fs::write(&train, text).unwrap();
    let o = bpe_run(&out, &train, &valid, &test);
    assert!(o.status.success(), "{}", stderr(&o));
    let runs: Vec<PathBuf> = run_dirs(&out)
        .into_iter()
        .filter(|d| d.join("config.toml").is_file())
        .collect();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(runs.contains(&first));
    assert_eq!(
        std::fs::read_dir(out.join("tokenizers")).unwrap().count(),
        2
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The error of a run that must not start: one line naming the option, no panic.
fn refused(args: &[&str]) -> String {
    let o = ablate(args);
    let err = stderr(&o);
    assert!(!o.status.success(), "{args:?} succeeded");
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn split_file_mistakes_are_refused_in_one_line() {
    let dir = temp_dir("data-files-errors");
    let (train, valid, _) = split_files(&dir);
    let out = dir.join("results");
    let results = ["--results", s(&out), "--quiet"];

    let err = refused(&args_with(&["--train-file", s(&train)], &results));
    assert!(err.contains("train-file needs valid-file"), "{err}");

    let missing = dir.join("missing.txt");
    let err = refused(&args_with(
        &["--train-file", s(&missing), "--valid-file", s(&valid)],
        &results,
    ));
    assert!(
        err.contains(&format!("train-file {}: no such file", s(&missing))),
        "{err}"
    );

    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let err = refused(&args_with(
        &["--train-file", s(&train), "--valid-file", s(&empty)],
        &results,
    ));
    assert!(
        err.contains(&format!("valid-file {} is empty", s(&empty))),
        "{err}"
    );

    let blank = dir.join("blank.txt");
    std::fs::write(&blank, "\n  \n").unwrap();
    let err = refused(&args_with(
        &[
            "--train-file",
            s(&train),
            "--valid-file",
            s(&valid),
            "--test-file",
            s(&blank),
        ],
        &results,
    ));
    assert!(
        err.contains(&format!("test-file {} holds no sentences", s(&blank))),
        "{err}"
    );

    let err = refused(&args_with(&["--valid-file", s(&valid)], &results));
    assert!(err.contains("valid-file goes with train-file"), "{err}");

    let err = refused(&args_with(
        &["--task", "images", "--train-file", "x"],
        &results,
    ));
    assert!(err.contains("train-file applies to text"), "{err}");
    let err = refused(&args_with(
        &["--task", "images", "--tokenizer", "bpe"],
        &results,
    ));
    assert!(err.contains("tokenizer bpe applies to text"), "{err}");

    // nothing was trained
    assert!(!out.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn studies_take_the_split_files_and_tokenizer_as_keys_and_through_set() {
    let dir = temp_dir("data-files-study");
    let (train, valid, _) = split_files(&dir);
    let study = dir.join("files.toml");
    std::fs::write(
        &study,
        format!(
            "name = \"files\"\n[base]\nsteps = 4\ntrain_file = {:?}\nvalid_file = {:?}\n{}[[grid]]\nnorm = [\"layer\", \"batch\"]\n",
            s(&train),
            s(&valid),
            common::TINY_TEXT_TOML
        ),
    )
    .unwrap();
    let out = dir.join("results");
    let dry = |set: &[&str]| {
        let o = ablate(&args_with(
            &["run", s(&study), "--results", s(&out), "--dry-run"],
            set,
        ));
        assert!(o.status.success(), "{}", stderr(&o));
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let mut ids: Vec<String> = text
            .lines()
            .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("text-")))
            .map(String::from)
            .collect();
        ids.sort();
        ids
    };
    let word = dry(&[]);
    assert_eq!(word.len(), 2, "{word:?}");
    let bpe = dry(&["--set", "tokenizer=bpe"]);
    assert_eq!(bpe.len(), 2, "{bpe:?}");
    assert!(bpe.iter().all(|id| !word.contains(id)), "{word:?} {bpe:?}");
    // a file that is not there is named, with the --set that put it there
    let o = ablate(&[
        "run",
        s(&study),
        "--results",
        s(&out),
        "--dry-run",
        "--set",
        &format!("valid_file={}", s(&dir.join("nope.txt"))),
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("--set valid_file=") && err.contains("nope.txt: no such file"),
        "{err}"
    );
    // the same study on other content: other ids
    std::fs::write(&train, sentences(301, 1)).unwrap();
    let changed = dry(&[]);
    assert!(changed.iter().all(|id| !word.contains(id)), "{changed:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bpe_run_on_split_files_resumes_exactly_and_refuses_changed_files() {
    let dir = temp_dir("data-files-resume");
    let (train, valid, test) = split_files(&dir);
    let base = [
        "--train-file",
        s(&train),
        "--valid-file",
        s(&valid),
        "--test-file",
        s(&test),
        "--tokenizer",
        "bpe",
        "--steps",
        "6",
        "--warmup-steps",
        "2",
        "--eval-every",
        "3",
        "--checkpoint-every",
        "3",
        "--quiet",
    ];
    let tiny = args_with(&base, common::TINY_TEXT);
    let whole = dir.join("whole");
    let o = ablate(&args_with(&tiny, &["--results", s(&whole)]));
    assert!(o.status.success(), "{}", stderr(&o));
    let parts = dir.join("parts");
    let o = ablate(&args_with(
        &tiny,
        &["--results", s(&parts), "--stop-at-step", "3"],
    ));
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let run = |out: &Path| {
        run_dirs(out)
            .into_iter()
            .find(|d| d.join("config.toml").is_file())
            .unwrap()
    };
    let stopped = run(&parts);
    // without its cached tokenizer the resumed run trains the same one again
    std::fs::remove_dir_all(parts.join("tokenizers")).unwrap();
    let o = ablate(&["--resume", s(&stopped), "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    for file in ["steps.csv", "eval.csv"] {
        assert_eq!(
            common::numeric_rows(&run(&whole).join(file)),
            common::numeric_rows(&stopped.join(file)),
            "{file}"
        );
    }

    // a split file changed since the checkpoint: the resume is refused
    let again = dir.join("again");
    let o = ablate(&args_with(
        &tiny,
        &["--results", s(&again), "--stop-at-step", "3"],
    ));
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    std::fs::write(&valid, sentences(41, 2)).unwrap();
    let o = ablate(&["--resume", s(&run(&again)), "--quiet"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("valid.txt changed since") && err.lines().count() == 1,
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
