//! Hostile input, table-driven: every row is a command line (with any files it needs) that must
//! end with one clear line on stderr, the expected exit code, no panic, and no run folder left
//! behind.

mod common;

use common::{ablate, bin, stderr, temp_dir};
use std::io::Write;
use std::path::Path;

/// `ablate args`, killed after `seconds` (a hostile input must never hang the tool).
fn ablate_within(args: &[&str], seconds: u64) -> Option<std::process::Output> {
    use std::process::Stdio;
    let mut child = bin()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed().as_secs() >= seconds {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Some(child.wait_with_output().unwrap())
}

/// An IDX image file with the given header and pixel bytes, and its label file.
fn idx(
    dir: &Path,
    name: &str,
    n: u32,
    rows: u32,
    cols: u32,
    pixels: usize,
    labels: &[u8],
) -> (String, String) {
    let images = dir.join(format!("{name}-images.idx"));
    let mut f = std::fs::File::create(&images).unwrap();
    for v in [0x0803u32, n, rows, cols] {
        f.write_all(&v.to_be_bytes()).unwrap();
    }
    f.write_all(&vec![7u8; pixels]).unwrap();
    let lab = dir.join(format!("{name}-labels.idx"));
    let mut f = std::fs::File::create(&lab).unwrap();
    for v in [0x0801u32, labels.len() as u32] {
        f.write_all(&v.to_be_bytes()).unwrap();
    }
    f.write_all(labels).unwrap();
    (
        images.to_str().unwrap().into(),
        lab.to_str().unwrap().into(),
    )
}

#[test]
fn hostile_inputs_get_one_clear_line_and_leave_no_run_folder() {
    let dir = temp_dir("hostile");
    let out = dir.join("results");
    let big = "18446744073709551615";
    let (lab10_i, lab10_l) = idx(
        &dir,
        "label10",
        20,
        2,
        2,
        80,
        &[3; 19].iter().copied().chain([10]).collect::<Vec<_>>(),
    );
    let (huge_i, huge_l) = idx(&dir, "huge", u32::MAX, u32::MAX, u32::MAX, 4, &[1, 2]);
    let (empty_i, empty_l) = idx(&dir, "empty", 0, 28, 28, 0, &[]);
    let (few_i, few_l) = idx(&dir, "few", 12, 2, 2, 48, &[1; 12]);
    let rows: Vec<(&str, Vec<String>, i32, &str)> = vec![
        (
            "seed beyond TOML",
            vec!["--seed".into(), big.into()],
            2,
            "for '--seed <",
        ),
        (
            "steps beyond TOML",
            vec!["--steps".into(), big.into()],
            2,
            "for '--steps <",
        ),
        (
            "max-tokens beyond TOML",
            vec!["--max-tokens".into(), big.into()],
            2,
            "for '--max-tokens <",
        ),
        (
            "eval-batches beyond TOML",
            vec!["--eval-batches".into(), big.into()],
            2,
            "for '--eval-batches <",
        ),
        (
            "bucket-pool beyond TOML",
            vec!["--bucket-pool".into(), big.into()],
            2,
            "for '--bucket-pool <",
        ),
        (
            "negative adam eps",
            vec!["--adam-eps".into(), "-1".into()],
            1,
            "adam-eps must be a positive number",
        ),
        (
            "zero norm eps",
            vec!["--norm-eps".into(), "0".into()],
            1,
            "norm-eps must be a positive number",
        ),
        (
            "momentum above 1",
            vec!["--norm-momentum".into(), "1.5".into()],
            1,
            "norm-momentum must be within [0, 1]",
        ),
        (
            "position-batch on images",
            vec![
                "--task".into(),
                "images".into(),
                "--norm".into(),
                "position-batch".into(),
            ],
            1,
            "use --task text",
        ),
        (
            "bucketed evaluation of images",
            vec![
                "--task".into(),
                "images".into(),
                "--eval-batching".into(),
                "bucketed".into(),
            ],
            1,
            "applies to text",
        ),
        (
            "image label 10",
            vec![
                "--task".into(),
                "images".into(),
                "--images".into(),
                lab10_i,
                "--labels".into(),
                lab10_l,
            ],
            1,
            "label 10 of image 19 is outside the 10 classes",
        ),
        (
            "image header overflow",
            vec![
                "--task".into(),
                "images".into(),
                "--images".into(),
                huge_i,
                "--labels".into(),
                huge_l,
            ],
            1,
            "is truncated or padded",
        ),
        (
            "zero images",
            vec![
                "--task".into(),
                "images".into(),
                "--images".into(),
                empty_i,
                "--labels".into(),
                empty_l,
            ],
            1,
            "holds no image",
        ),
        (
            "fewer images than a batch",
            vec![
                "--task".into(),
                "images".into(),
                "--images".into(),
                few_i,
                "--labels".into(),
                few_l,
                "--batch-size".into(),
                "16".into(),
            ],
            1,
            "fewer than one training batch",
        ),
        (
            "memory preset overflow",
            vec![
                "memory".into(),
                "--preset".into(),
                "gpt3-175b".into(),
                "--max-len".into(),
                "1000000000".into(),
            ],
            1,
            "must be within [1, 1048576]",
        ),
        (
            "shard out of range",
            vec![
                "run".into(),
                "experiments/padding.toml".into(),
                "--shard".into(),
                "0/8".into(),
                "--dry-run".into(),
            ],
            1,
            "--shard expects k/n with 1 <= k <= n",
        ),
        (
            "shard base 2",
            vec![
                "run".into(),
                "experiments/padding.toml".into(),
                "--shard".into(),
                "1/8".into(),
                "--shard-base".into(),
                "2".into(),
                "--dry-run".into(),
            ],
            1,
            "--shard-base must be 0 or 1",
        ),
        (
            "override without value",
            vec![
                "run".into(),
                "experiments/padding.toml".into(),
                "--set".into(),
                "steps".into(),
                "--dry-run".into(),
            ],
            1,
            "--set expects key=value",
        ),
        (
            "override of an unknown key",
            vec![
                "run".into(),
                "experiments/padding.toml".into(),
                "--set".into(),
                "stpes=3".into(),
                "--dry-run".into(),
            ],
            1,
            "did you mean `steps`",
        ),
    ];
    let mut rows = rows;
    let long = dir.join("long.txt");
    std::fs::write(
        &long,
        format!("{}\n{}", "w ".repeat(150_000), "a b c d e\n".repeat(60)),
    )
    .unwrap();
    let zero_ckpt = dir.join("zero.toml");
    std::fs::write(&zero_ckpt, "checkpoint_every = 0\n").unwrap();
    let wrong_type = dir.join("type.toml");
    std::fs::write(&wrong_type, "steps = \"ten\"\n").unwrap();
    let unknown_key = dir.join("unknown.toml");
    std::fs::write(&unknown_key, "stpes = 3\n").unwrap();
    let (lab_i, _) = idx(&dir, "labels-missing", 20, 2, 2, 80, &[1; 20]);
    let long_s = long.to_str().unwrap().to_string();
    let simple: Vec<(&str, &str, i32, &str)> = vec![
        ("d-model 0", "--d-model 0", 1, "d-model must be at least 1"),
        ("layers 0", "--layers 0", 1, "layers must be at least 1"),
        ("heads 0", "--heads 0", 1, "heads must be at least 1"),
        ("d-ff 0", "--d-ff 0", 1, "d-ff must be at least 1"),
        (
            "dropout 1",
            "--dropout 1",
            1,
            "dropout must be within [0, 0.999]",
        ),
        (
            "dropout negative",
            "--dropout -0.1",
            1,
            "dropout must be within",
        ),
        (
            "adam beta1 1",
            "--adam-beta1 1",
            1,
            "adam-beta1 must be within",
        ),
        (
            "adam beta2 negative",
            "--adam-beta2 -0.1",
            1,
            "adam-beta2 must be within",
        ),
        ("lr 0", "--lr 0", 1, "lr must be a positive number"),
        ("lr negative", "--lr -1", 1, "lr must be a positive number"),
        (
            "lr NaN",
            "--lr nan",
            1,
            "lr must be a positive number (got NaN)",
        ),
        (
            "lr infinite",
            "--lr inf",
            1,
            "lr must be a positive number (got inf)",
        ),
        (
            "lr text",
            "--lr fast",
            2,
            "invalid value 'fast' for '--lr <LR>'",
        ),
        (
            "grad-clip negative",
            "--grad-clip -1",
            1,
            "grad-clip must be a finite number >= 0",
        ),
        (
            "grad-clip NaN",
            "--grad-clip nan",
            1,
            "grad-clip must be a finite number >= 0",
        ),
        (
            "eval-every 0",
            "--eval-every 0",
            1,
            "eval-every must be at least 1",
        ),
        (
            "norm-eps infinite",
            "--norm-eps inf",
            1,
            "norm-eps must be a positive number",
        ),
        (
            "momentum NaN",
            "--norm-momentum nan",
            1,
            "norm-momentum must be within [0, 1]",
        ),
        (
            "pn alpha above 1",
            "--norm power --pn-alpha-fwd 1.5",
            1,
            "pn-alpha-fwd must be within [0, 1]",
        ),
        (
            "pn alpha negative",
            "--norm power --pn-alpha-bkw -1",
            1,
            "pn-alpha-bkw must be within [0, 1]",
        ),
        (
            "pn groups not dividing d",
            "--norm power --pn-groups 3",
            1,
            "must divide the model width",
        ),
        (
            "cnn channel 0",
            "--task images --cnn-channels 0",
            1,
            "cnn-channels must list at least one positive",
        ),
        (
            "cnn channels huge",
            "--task images --cnn-channels 100000",
            1,
            "cnn-channels must be at most 4096",
        ),
        (
            "device without GPU backend",
            "--device 2",
            1,
            "selects a GPU, but the backend is flex",
        ),
        (
            "model beyond memory",
            "--d-model 200000 --heads 2",
            1,
            "more than the",
        ),
        (
            "batch beyond memory",
            "--batch-size 100000000",
            1,
            "more than the",
        ),
        (
            "checkpoint every negative",
            "--checkpoint-every -1",
            2,
            "invalid value '-1' for '--checkpoint-every",
        ),
        (
            "seed text",
            "--seed abc",
            2,
            "invalid value 'abc' for '--seed <SEED>'",
        ),
        (
            "seed negative",
            "--seed -1",
            2,
            "invalid value '-1' for '--seed <SEED>'",
        ),
        (
            "unknown option",
            "--stpes 3",
            2,
            "a similar argument exists: '--steps'",
        ),
        (
            "unknown norm position",
            "--norm-position middle",
            2,
            "invalid value 'middle'",
        ),
        (
            "corpus /dev/zero",
            "--corpus /dev/zero",
            1,
            "corpus file /dev/zero is larger than 1024 MiB",
        ),
        (
            "corpus is a folder",
            "--corpus /tmp",
            1,
            "cannot read corpus file /tmp",
        ),
        (
            "images /dev/zero",
            "--task images --images /dev/zero",
            1,
            "image file /dev/zero is larger than",
        ),
        (
            "labels missing",
            "--task images --labels /nonexistent/l.idx",
            1,
            "cannot read label file /nonexistent/l.idx",
        ),
        (
            "labels /dev/zero",
            "--task images --labels /dev/zero",
            1,
            "label file /dev/zero is larger than",
        ),
        (
            "config /dev/zero",
            "--config /dev/zero",
            1,
            "config file /dev/zero is larger than 16 MiB",
        ),
        (
            "config missing",
            "--config /nonexistent/c.toml",
            1,
            "cannot read config file /nonexistent/c.toml",
        ),
        (
            "config is a folder",
            "--config /tmp",
            1,
            "cannot read config file /tmp",
        ),
        (
            "study /dev/zero",
            "run /dev/zero --dry-run",
            1,
            "study file /dev/zero is larger than 16 MiB",
        ),
        (
            "report of an empty folder",
            "report /tmp/ablate-no-such-results --out /tmp/ablate-no-report",
            1,
            "is neither a results folder nor a study file",
        ),
        (
            "resume a missing folder",
            "--resume /nonexistent/run",
            1,
            "/nonexistent/run is not a run folder",
        ),
        (
            "resume with other options",
            "--resume /nonexistent/run --lr 0.1",
            1,
            "give no other run options",
        ),
        (
            "memory of images",
            "memory --task images",
            1,
            "accounts for the text model",
        ),
        (
            "memory of a billion layers",
            "memory --layers 1000000000",
            1,
            "for its float32 weights alone, more than the",
        ),
        (
            "memory measured of a model beyond memory",
            "memory --measure --d-model 65536 --heads 1 --d-ff 32 --layers 1",
            1,
            "for its float32 weights alone, more than the",
        ),
        (
            "bench of a model beyond memory",
            "bench --d-model 65536 --heads 1 --d-ff 32 --layers 1",
            1,
            "more than the",
        ),
        (
            "memory of a width beyond 64-bit accounting",
            "memory --d-model 1000000000000 --heads 1",
            1,
            "beyond what this table counts (16 EiB)",
        ),
        (
            "memory of a preset with a batch beyond 64-bit accounting",
            "memory --preset gpt3-175b --max-len 1048576 --batch-size 1048576",
            1,
            "beyond what this table counts (16 EiB)",
        ),
        (
            "memory of a run given by --resume",
            "memory --resume /tmp/some-run",
            1,
            "ablate memory does not continue runs: for the configuration of the run in /tmp/some-run, give --config /tmp/some-run/config.toml",
        ),
        (
            "memory told to stop at a step",
            "memory --stop-at-step 3",
            1,
            "ablate memory does not take --stop-at-step",
        ),
        (
            "bench of a run given by --resume",
            "bench --resume /tmp/some-run",
            1,
            "ablate bench does not continue runs",
        ),
        (
            "bench told to stop at a step",
            "bench --stop-at-step 3",
            1,
            "ablate bench does not take --stop-at-step",
        ),
    ];
    for (name, args, code, message) in simple {
        rows.push((
            name,
            args.split_whitespace().map(String::from).collect(),
            code,
            message,
        ));
    }
    // 20 folders of 200 letters: a valid path, too long for a checkpoint's files inside it
    let deep = format!("/tmp/{}", vec!["a".repeat(200); 20].join("/"));
    let files: Vec<(&str, Vec<String>, i32, &str)> = vec![
        (
            "study into a results path too long for its checkpoints",
            vec![
                "run".into(),
                "experiments/default-config.toml".into(),
                "--results".into(),
                deep.clone(),
                "--dry-run".into(),
            ],
            1,
            "the results folder's path is too long",
        ),
        (
            "sentence beyond memory",
            vec![
                "--corpus".into(),
                long_s,
                "--max-len".into(),
                "100000".into(),
            ],
            1,
            "of a 32 x 100000 batch",
        ),
        (
            "stop without checkpoints",
            vec![
                "--config".into(),
                zero_ckpt.to_str().unwrap().into(),
                "--stop-at-step".into(),
                "2".into(),
            ],
            1,
            "--stop-at-step needs checkpoints",
        ),
        (
            "config value of the wrong type",
            vec!["--config".into(), wrong_type.to_str().unwrap().into()],
            1,
            "invalid type: string \"ten\", expected usize",
        ),
        (
            "config key misspelt",
            vec!["--config".into(), unknown_key.to_str().unwrap().into()],
            1,
            "unknown key `stpes` (did you mean `steps`?)",
        ),
        (
            "label file missing for real images",
            vec![
                "--task".into(),
                "images".into(),
                "--images".into(),
                lab_i,
                "--labels".into(),
                "/nonexistent/x".into(),
            ],
            1,
            "cannot read label file /nonexistent/x",
        ),
    ];
    rows.extend(files);
    rows.extend(checkpoint_lock_path_rows(&dir));
    let mut failures = Vec::new();
    for (name, args, code, message) in &rows {
        let mut full: Vec<&str> = args.iter().map(String::as_str).collect();
        if !matches!(
            full.first(),
            Some(&"memory") | Some(&"run") | Some(&"report") | Some(&"bench") | Some(&"status")
        ) && !full.contains(&"--resume")
            && !full.contains(&"--results")
        {
            full.extend(["--results", out.to_str().unwrap(), "--quiet"]);
        }
        // every file and folder the rows' fixtures live in, as they were
        let before = tree(&dir);
        let Some(o) = ablate_within(&full, 60) else {
            failures.push(format!("{name}: still running after 60 s (killed)"));
            continue;
        };
        let err = stderr(&o);
        let changed = changes(&before, &tree(&dir));
        let ok = o.status.code() == Some(*code)
            && err.contains(message)
            && err.lines().count() == 1
            && !err.contains("panicked")
            && !err.contains("internal error")
            && !out.exists()
            && changed.is_empty();
        if !ok {
            failures.push(format!(
                "{name}: exit {:?}, stderr {err:?}, run folder left: {}, files changed: {changed:?}",
                o.status.code(),
                out.exists()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Paths under a folder with their size and modification time (folders: none).
type Tree = std::collections::BTreeMap<std::path::PathBuf, Option<(u64, std::time::SystemTime)>>;

/// A row of the hostile table: name, arguments, exit code, message fragment.
type Row = (&'static str, Vec<String>, i32, &'static str);

/// Every file and folder under `dir`: its size and modification time (folders: none).
fn tree(dir: &Path) -> Tree {
    let mut found = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if m.is_dir() {
                stack.push(p.clone());
                found.insert(p, None);
            } else {
                found.insert(p, Some((m.len(), m.modified().unwrap())));
            }
        }
    }
    found
}

/// The paths that appeared, went or changed between two [`tree`]s.
fn changes(before: &Tree, after: &Tree) -> Vec<String> {
    let mut changed: Vec<String> = before
        .iter()
        .filter(|(p, v)| after.get(*p) != Some(v))
        .map(|(p, _)| format!("{} changed or gone", p.display()))
        .collect();
    changed.extend(
        after
            .keys()
            .filter(|p| !before.contains_key(*p))
            .map(|p| format!("{} appeared", p.display())),
    );
    changed
}

/// The start time of this test process (field 22 of /proc/self/stat), as a run lock names its
/// owner.
fn own_start_time() -> String {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    rest.split_whitespace().nth(19).unwrap().to_string()
}

/// A tiny run stopped at step 20 of 40 with checkpoints at 10 and 20, in `dir/<name>/`.
fn stopped_tiny_run(dir: &Path, name: &str, more: &[&str]) -> std::path::PathBuf {
    let out = dir.join(name);
    let mut args = common::args_with(
        common::TINY_TEXT,
        &[
            "--steps",
            "40",
            "--eval-every",
            "10",
            "--checkpoint-every",
            "10",
            "--results",
            out.to_str().unwrap(),
            "--quiet",
        ],
    );
    args.extend_from_slice(more);
    let o = ablate(&args);
    assert!(
        matches!(o.status.code(), Some(0) | Some(130)),
        "{}",
        stderr(&o)
    );
    common::run_dirs(&out).remove(0)
}

/// Copies the run folder `run` (with its checkpoints) to `dir/<name>/run`.
fn copy_run(run: &Path, dir: &Path, name: &str) -> std::path::PathBuf {
    fn copy_all(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let p = e.unwrap().path();
            let target = to.join(p.file_name().unwrap());
            if p.is_dir() {
                copy_all(&p, &target);
            } else {
                std::fs::copy(&p, &target).unwrap();
            }
        }
    }
    let to = dir.join(name).join("run");
    copy_all(run, &to);
    to
}

/// Rows aimed at checkpoints, locks, paths, `memory`, `bench`, `report`, `status` and study
/// files; their fixtures (run folders trained here, damaged copies of them) live in `dir`.
fn checkpoint_lock_path_rows(dir: &Path) -> Vec<Row> {
    let stopped = stopped_tiny_run(dir, "stopped", &["--stop-at-step", "20"]);
    let finished = stopped_tiny_run(dir, "finished", &[]);
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let empty_dir = dir.join("empty-folder");
    std::fs::create_dir_all(&empty_dir).unwrap();
    let a_file = dir.join("a-file");
    std::fs::write(&a_file, "x").unwrap();
    let damaged = copy_run(&stopped, dir, "damaged-config");
    std::fs::write(damaged.join("config.toml"), "steps = [\n").unwrap();
    let emptied = copy_run(&stopped, dir, "empty-config");
    std::fs::write(emptied.join("config.toml"), "").unwrap();
    let images = copy_run(&stopped, dir, "images-config");
    let config = std::fs::read_to_string(images.join("config.toml")).unwrap();
    assert!(config.contains("task = \"text\""), "{config}");
    std::fs::write(
        images.join("config.toml"),
        config.replace("task = \"text\"", "task = \"images\""),
    )
    .unwrap();
    let no_checkpoints = copy_run(&stopped, dir, "no-checkpoints");
    std::fs::remove_dir_all(no_checkpoints.join("checkpoints")).unwrap();
    let held = copy_run(&stopped, dir, "held");
    std::fs::write(
        held.join(".lock"),
        format!("{} {}", std::process::id(), own_start_time()),
    )
    .unwrap();
    let held_pid_only = copy_run(&stopped, dir, "held-pid-only");
    std::fs::write(held_pid_only.join(".lock"), std::process::id().to_string()).unwrap();
    let link = dir.join("link-to-run");
    std::os::unix::fs::symlink(&stopped, &link).unwrap();
    let results = stopped.parent().unwrap().to_path_buf();
    let study = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        s(&p)
    };
    let slash = study("slash.toml", "name = \"a/b\"\n[[grid]]\nnorm = \"batch\"\n");
    let dots = study("dots.toml", "name = \"..\"\n[[grid]]\nnorm = \"batch\"\n");
    let long_name = study(
        "long-name.toml",
        &format!(
            "name = \"{}\"\n[[grid]]\nnorm = \"batch\"\n",
            "n".repeat(101)
        ),
    );
    let no_name = study("no-name.toml", "name = \"\"\n[[grid]]\nnorm = \"batch\"\n");
    let empty_grid = study("empty-grid.toml", "name = \"s\"\ngrid = []\n");
    let no_grid = study("no-grid.toml", "name = \"s\"\n[base]\nsteps = 3\n");
    let empty_study = study("empty-study.toml", "");
    let study_results = s(&dir.join("study-results"));
    let deep = format!("/tmp/{}", vec!["a".repeat(200); 20].join("/"));
    let (big, max) = ("18446744073709551615", "9223372036854775807");
    let resume = |run: &Path, more: &[&str]| {
        let mut v = vec!["--resume".to_string(), s(run)];
        v.extend(more.iter().map(|m| m.to_string()));
        v
    };
    let words = |line: &str| {
        line.split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let mut rows: Vec<Row> = vec![
        // checkpoints and locks
        ("resume of an empty folder", resume(&empty_dir, &[]), 1, "is not a run folder"),
        ("resume of a file", resume(&a_file, &[]), 1, "is not a run folder"),
        (
            "resume of a run's checkpoints folder",
            resume(&stopped.join("checkpoints"), &[]),
            1,
            "is not a run folder",
        ),
        (
            "resume of a run whose config.toml is damaged",
            resume(&damaged, &[]),
            1,
            "config.toml: line 1, column",
        ),
        (
            "resume of a run whose config.toml is empty",
            resume(&emptied, &[]),
            1,
            "not of this configuration (text-layer-s1-",
        ),
        (
            "resume of a run whose config.toml is of another task",
            resume(&images, &[]),
            1,
            "not of this configuration (images-",
        ),
        (
            "resume of a run without checkpoints",
            resume(&no_checkpoints, &[]),
            1,
            "has no checkpoint to resume from",
        ),
        (
            "resume of a finished run",
            resume(&finished, &[]),
            1,
            "has already finished (40 of 40 steps): nothing to resume",
        ),
        (
            "resume of a run held by a live process",
            resume(&held, &[]),
            1,
            "is being trained by another ablate process",
        ),
        (
            "resume of a run held by a live process (pid-only lock)",
            resume(&held_pid_only, &[]),
            1,
            "is being trained by another ablate process",
        ),
        (
            "resume through a symbolic link",
            resume(&link, &[]),
            1,
            "is a symbolic link: give the run folder itself",
        ),
        (
            "resume stopping at step 0",
            resume(&stopped, &["--stop-at-step", "0"]),
            1,
            "--stop-at-step must be at least 1",
        ),
        (
            "resume stopping at the checkpoint's step",
            resume(&stopped, &["--stop-at-step", "20"]),
            1,
            "--stop-at-step 20 is not after the checkpoint's step 20",
        ),
        (
            "resume stopping before the checkpoint's step",
            resume(&stopped, &["--stop-at-step", "5"]),
            1,
            "--stop-at-step 5 is not after the checkpoint's step 20",
        ),
        (
            "resume stopping beyond 64 bits",
            resume(&stopped, &["--stop-at-step", "18446744073709551616"]),
            2,
            "invalid value '18446744073709551616' for '--stop-at-step <N>'",
        ),
        (
            "stop at step 0",
            words("--stop-at-step 0"),
            1,
            "--stop-at-step must be at least 1",
        ),
        (
            "stop with checkpoints off",
            words("--checkpoint-every 0 --stop-at-step 2"),
            1,
            "--stop-at-step needs checkpoints to continue from: give --checkpoint-every > 0",
        ),
        (
            "checkpoint-every beyond TOML",
            vec!["--checkpoint-every".into(), big.into()],
            2,
            "for '--checkpoint-every <",
        ),
        (
            "stop-at-step text",
            words("--stop-at-step soon"),
            2,
            "invalid value 'soon' for '--stop-at-step <N>'",
        ),
        // paths
        (
            "results folder is a file",
            vec!["--results".into(), s(&a_file)],
            1,
            "cannot create output folder",
        ),
        (
            "results folder under /proc",
            words("--results /proc/ablate-results"),
            1,
            "cannot create output folder /proc/ablate-results",
        ),
        (
            "results folder with a 300-letter name",
            vec!["--results".into(), s(&dir.join("b".repeat(300)))],
            1,
            "File name too long",
        ),
        (
            "results path too long for a run's checkpoints",
            vec!["--results".into(), deep],
            1,
            "the results folder's path is too long",
        ),
        (
            "results folder empty",
            vec!["--results".into(), String::new()],
            2,
            "a value is required for '--results <DIR>'",
        ),
        // memory
        (
            "memory preset with batch 0",
            words("memory --preset gpt2-small --batch-size 0"),
            1,
            "must be within [1, 1048576] for a preset (got 0 and 1024)",
        ),
        (
            "memory preset with length 0",
            words("memory --preset gpt2-xl --max-len 0"),
            1,
            "must be within [1, 1048576] for a preset (got 1 and 0)",
        ),
        (
            "memory preset with a 64-bit batch",
            vec![
                "memory".into(),
                "--preset".into(),
                "gpt2-medium".into(),
                "--batch-size".into(),
                big.into(),
            ],
            2,
            "is not in 0..=9223372036854775807",
        ),
        (
            "memory preset measured",
            words("memory --preset gpt2-small --measure"),
            1,
            "--measure trains the configured model, not a preset",
        ),
        (
            "memory preset with a model option",
            words("memory --preset gpt2-small --d-model 64"),
            1,
            "of the run options it takes only --batch-size and --max-len",
        ),
        (
            "memory with heads not dividing d-model",
            words("memory --heads 3"),
            1,
            "heads (3) must divide d-model (128)",
        ),
        ("memory with 0 heads", words("memory --heads 0"), 1, "heads must be at least 1"),
        ("memory with d-model 0", words("memory --d-model 0"), 1, "d-model must be at least 1"),
        (
            "memory with batch 0",
            words("memory --batch-size 0"),
            1,
            "batch-size must be at least 1",
        ),
        ("memory with length 0", words("memory --max-len 0"), 1, "max-len must be at least 1"),
        (
            "memory with 64-bit layers",
            vec!["memory".into(), "--layers".into(), big.into()],
            2,
            "for '--layers <",
        ),
        (
            "memory with the largest width and heads",
            vec![
                "memory".into(),
                "--d-model".into(),
                max.into(),
                "--heads".into(),
                max.into(),
            ],
            1,
            "beyond what this table counts (16 EiB)",
        ),
        (
            "memory with the largest feed-forward width",
            vec!["memory".into(), "--d-ff".into(), max.into()],
            1,
            "for its float32 weights alone, more than the",
        ),
        (
            "memory measured over the largest step count",
            common::args_with(&["memory", "--measure", "--steps", max], common::TINY_TEXT)
                .into_iter()
                .map(String::from)
                .collect(),
            1,
            "ablate memory --measure trains at most 10000 steps (the peak is reached within the first few); got --steps 9223372036854775807",
        ),
        (
            "memory measured of a batch beyond memory",
            words("memory --measure --batch-size 100000000"),
            1,
            "more than the",
        ),
        (
            "memory with a token budget below the length",
            words("memory --max-tokens 5 --max-len 64"),
            1,
            "max-tokens (5) must be at least max-len (64)",
        ),
        // bench
        (
            "bench of an unknown norm",
            words("bench --norms btach"),
            2,
            "a similar value exists: 'batch'",
        ),
        (
            "bench given --norm",
            words("bench --norm batch"),
            1,
            "ablate bench times the norms given by --norms",
        ),
        ("bench of 0 steps", words("bench --steps 0"), 1, "steps must be at least 1"),
        (
            "bench of the largest step count",
            vec!["bench".into(), "--steps".into(), max.into()],
            1,
            "ablate bench times at most 10000 steps per norm",
        ),
        ("bench of batch 0", words("bench --batch-size 0"), 1, "batch-size must be at least 1"),
        (
            "bench with heads not dividing d-model",
            words("bench --heads 3"),
            1,
            "heads (3) must divide d-model (128)",
        ),
        (
            "bench of a length beyond memory",
            words("bench --max-len 100000000"),
            1,
            "more than the",
        ),
        (
            "bench of images without channels",
            words("bench --task images --cnn-channels 0"),
            1,
            "cnn-channels must list at least one positive",
        ),
        // report and status
        (
            "report of a real empty folder",
            vec![
                "report".into(),
                s(&empty_dir),
                "--out".into(),
                s(&dir.join("report")),
            ],
            1,
            "no runs found in",
        ),
        (
            "report of a file",
            vec![
                "report".into(),
                s(&a_file),
                "--out".into(),
                s(&dir.join("report")),
            ],
            1,
            "is neither a results folder nor a study file",
        ),
        (
            "report into a run folder",
            vec!["report".into(), s(&results), "--out".into(), s(&finished)],
            1,
            "is inside the run folder",
        ),
        (
            "report into a folder inside a run folder",
            vec![
                "report".into(),
                s(&results),
                "--out".into(),
                s(&stopped.join("report")),
            ],
            1,
            "is inside the run folder",
        ),
        (
            "report into the results folder it reads",
            vec!["report".into(), s(&results), "--out".into(), s(&results)],
            1,
            "is the results folder",
        ),
        (
            "report into a file",
            vec!["report".into(), s(&results), "--out".into(), s(&a_file)],
            1,
            "cannot create report folder",
        ),
        (
            "status of a missing study",
            vec!["status".into(), s(&dir.join("missing.toml"))],
            1,
            "cannot read study file",
        ),
        (
            "status of a folder",
            vec!["status".into(), s(&empty_dir)],
            1,
            "cannot read study file",
        ),
        // study files
        (
            "study named with a slash",
            vec!["run".into(), slash, "--results".into(), study_results.clone()],
            1,
            "study name \"a/b\" must be 1-100 letters",
        ),
        (
            "study named ..",
            vec!["run".into(), dots, "--results".into(), study_results.clone()],
            1,
            "study name \"..\" must be 1-100 letters",
        ),
        (
            "study name of 101 letters",
            vec!["run".into(), long_name, "--results".into(), study_results.clone()],
            1,
            "must be 1-100 letters",
        ),
        (
            "study with an empty name",
            vec!["run".into(), no_name, "--results".into(), study_results.clone()],
            1,
            "study name \"\" must be 1-100 letters",
        ),
        (
            "study with an empty grid list",
            vec!["run".into(), empty_grid, "--results".into(), study_results.clone()],
            1,
            "the study has no [[grid]] table, so it has no runs",
        ),
        (
            "study without a grid",
            vec!["run".into(), no_grid, "--results".into(), study_results.clone()],
            1,
            "the study has no [[grid]] table, so it has no runs",
        ),
        (
            "empty study file",
            vec!["run".into(), empty_study, "--results".into(), study_results.clone()],
            1,
            "missing field `name`",
        ),
        (
            "study file is a folder",
            vec!["run".into(), s(&empty_dir), "--results".into(), study_results],
            1,
            "cannot read study file",
        ),
    ];
    // each row of a fresh run trains the tiny model (never the default one)
    for row in &mut rows {
        if !row.1.iter().any(|a| {
            a == "--resume"
                || a == "memory"
                || a == "bench"
                || a == "report"
                || a == "status"
                || a == "run"
        }) {
            row.1
                .extend(common::TINY_TEXT.iter().map(|a| a.to_string()));
        }
    }
    rows
}

/// A tiny study of `norms` written into `dir`, trained into `dir/results`.
fn tiny_study(dir: &Path, norms: &str) -> (String, std::path::PathBuf) {
    let study = dir.join("s.toml");
    std::fs::write(
        &study,
        format!(
            "name = \"s\"\n[base]\n{}steps = 12\neval_every = 6\nwarmup_steps = 3\n[[grid]]\nnorm = [{norms}]\n",
            common::TINY_TEXT_TOML
        ),
    )
    .unwrap();
    let out = dir.join("results");
    common::run_study(&study, &out);
    (study.to_str().unwrap().to_string(), out)
}

fn run_folder(out: &Path, prefix: &str) -> std::path::PathBuf {
    common::run_dirs(out)
        .into_iter()
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with(prefix))
        .unwrap_or_else(|| panic!("no run {prefix}* in {}", out.display()))
}

/// Damaged result folders, one kind of damage per row: `ablate report` names each damaged or
/// missing file and each planned run without a finished result, touches none of them, and
/// reports on the rest.
#[test]
fn report_names_damaged_and_missing_results_and_goes_on() {
    let dir = temp_dir("damaged");
    let (study, out) = tiny_study(
        &dir,
        "\"batch\", \"layer\", \"power\", \"rms\", \"masked-batch\", \"pn-v\"",
    );
    let damage: Vec<(&str, &str, Box<dyn Fn(&Path)>, &str)> = vec![
        (
            "corrupt summary",
            "text-batch-",
            Box::new(|d| std::fs::write(d.join("summary.json"), "{\"run_id\": ").unwrap()),
            "summary.json is not a valid run summary",
        ),
        (
            "deleted eval.csv",
            "text-layer-",
            Box::new(|d| std::fs::remove_file(d.join("eval.csv")).unwrap()),
            "eval.csv is missing",
        ),
        (
            "deleted config.toml",
            "text-power-",
            Box::new(|d| std::fs::remove_file(d.join("config.toml")).unwrap()),
            "have no results in",
        ),
        (
            "number cut mid-digit",
            "text-rms-",
            Box::new(|d| {
                let p = d.join("steps.csv");
                let len = std::fs::metadata(&p).unwrap().len();
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .unwrap()
                    .set_len(len - 3)
                    .unwrap();
            }),
            "steps.csv ends in a row cut short",
        ),
        (
            "run folder deleted",
            "text-masked-batch-",
            Box::new(|d| std::fs::remove_dir_all(d).unwrap()),
            "text-masked-batch-s1-",
        ),
        (
            "unfinished run",
            "text-pn-v-",
            Box::new(|d| std::fs::remove_file(d.join("summary.json")).unwrap()),
            "has no finished result (running, 12 of 12 steps)",
        ),
    ];
    for (_, prefix, f, _) in &damage {
        f(&run_folder(&out, prefix));
    }
    let snapshot = |out: &Path| -> Vec<(std::path::PathBuf, Vec<u8>)> {
        let mut files = Vec::new();
        for d in std::fs::read_dir(out).unwrap() {
            let d = d.unwrap().path();
            if d.is_dir() {
                for f in std::fs::read_dir(&d).unwrap() {
                    let f = f.unwrap().path();
                    files.push((f.clone(), std::fs::read(&f).unwrap()));
                }
            }
        }
        files.sort();
        files
    };
    let before = snapshot(&out);
    let report = dir.join("report");
    let o = ablate(&[
        "report",
        &study,
        "--results",
        out.to_str().unwrap(),
        "--out",
        report.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    let mut failures = Vec::new();
    for (name, _, _, message) in &damage {
        if !err
            .lines()
            .any(|l| l.starts_with("warning:") && l.contains(message))
        {
            failures.push(format!("{name}: no warning containing {message:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\nstderr:\n{err}",
        failures.join("\n")
    );
    assert!(
        !err.contains("panicked") && !err.contains("internal error"),
        "{err}"
    );
    assert_eq!(snapshot(&out), before, "report changed result files");
    let md = std::fs::read_to_string(report.join("REPORT.md")).unwrap();
    assert!(
        md.contains("layer"),
        "the report goes on with the readable runs"
    );
    // the folder itself, without the study: the run without config.toml is named, not dropped
    let o = ablate(&[
        "report",
        out.to_str().unwrap(),
        "--out",
        dir.join("report-folder").to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.lines().any(|l| l.starts_with("warning: left out")
            && l.contains("text-power-")
            && l.contains("holds results but no config.toml")),
        "{err}"
    );
}

/// A run interrupted in `<id>` and finished again by a single run in `<id>-2`: the report uses
/// the finished folder.
#[test]
fn report_prefers_the_finished_folder_of_a_run_id() {
    let dir = temp_dir("rerun-folder");
    let (study, out) = tiny_study(&dir, "\"batch\"");
    let first = run_folder(&out, "text-batch-");
    let second = out.join(format!(
        "{}-2",
        first.file_name().unwrap().to_str().unwrap()
    ));
    copy_dir(&first, &second);
    // the first folder now looks interrupted half-way
    let summary = std::fs::read_to_string(first.join("summary.json")).unwrap();
    std::fs::write(
        first.join("summary.json"),
        summary.replace("\"finished\"", "\"interrupted\""),
    )
    .unwrap();
    let report = dir.join("report");
    let o = ablate(&[
        "report",
        &study,
        "--results",
        out.to_str().unwrap(),
        "--out",
        report.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("has no finished result"),
        "{}",
        stderr(&o)
    );
    let md = std::fs::read_to_string(report.join("REPORT.md")).unwrap();
    assert!(
        md.contains("finished") && !md.contains("interrupted"),
        "{md}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in std::fs::read_dir(from).unwrap() {
        let f = f.unwrap().path();
        if f.is_file() {
            std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
        }
    }
}

/// Symbolic links: a study never trains into (or clears) a linked run folder, and a report
/// never writes a chart through a link.
#[test]
fn symlinks_are_never_written_through() {
    use std::os::unix::fs::symlink;
    let dir = temp_dir("symlinks");
    let (study, out) = tiny_study(&dir, "\"batch\"");
    // a chart whose name is a link to a file elsewhere
    let report = dir.join("report");
    let o = ablate(&[
        "report",
        &study,
        "--results",
        out.to_str().unwrap(),
        "--out",
        report.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let chart = std::fs::read_dir(&report)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "png"))
        .expect("a chart");
    let elsewhere = dir.join("precious.txt");
    std::fs::write(&elsewhere, "keep me").unwrap();
    std::fs::remove_file(&chart).unwrap();
    symlink(&elsewhere, &chart).unwrap();
    let o = ablate(&[
        "report",
        &study,
        "--results",
        out.to_str().unwrap(),
        "--out",
        report.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "keep me");
    assert!(!chart.is_symlink() && chart.is_file());

    // a run folder that is a link to a folder elsewhere: refused, nothing there deleted
    let run = run_folder(&out, "text-batch-");
    let target = dir.join("target");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("notes.txt"), "mine").unwrap();
    std::fs::remove_dir_all(&run).unwrap();
    symlink(&target, &run).unwrap();
    let o = ablate(&["run", &study, "--results", out.to_str().unwrap(), "--quiet"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(said.contains("is a symbolic link"), "{said}");
    assert_eq!(
        std::fs::read_to_string(target.join("notes.txt")).unwrap(),
        "mine"
    );
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 1);
}

/// A run folder held by a live process (its lock) is left alone by a study: "busy", files
/// untouched.
#[test]
fn a_study_leaves_a_locked_run_alone() {
    let dir = temp_dir("locked");
    let (study, out) = tiny_study(&dir, "\"batch\"");
    let run = run_folder(&out, "text-batch-");
    std::fs::remove_file(run.join("summary.json")).unwrap();
    std::fs::write(run.join(".lock"), std::process::id().to_string()).unwrap();
    let steps = std::fs::read(run.join("steps.csv")).unwrap();
    let o = ablate(&["run", &study, "--results", out.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("busy"));
    assert_eq!(std::fs::read(run.join("steps.csv")).unwrap(), steps);
    assert!(run.join(".lock").exists());
}

/// `ablate run ... | head -1`: the reader goes away, the study still trains every run and
/// says so by its exit code.
#[test]
fn a_closed_pipe_does_not_end_a_study_early() {
    use std::process::Stdio;
    let dir = temp_dir("pipe");
    let study = dir.join("s.toml");
    std::fs::write(
        &study,
        format!(
            "name = \"s\"\n[base]\n{}steps = 12\n[[grid]]\nseed = [1, 2, 3]\n",
            common::TINY_TEXT_TOML
        ),
    )
    .unwrap();
    let out = dir.join("results");
    let mut child = bin()
        .args([
            "run",
            study.to_str().unwrap(),
            "--results",
            out.to_str().unwrap(),
            "--quiet",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader closes the pipe at once
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let finished = common::run_dirs(&out)
        .iter()
        .filter(|p| {
            std::fs::read_to_string(p.join("summary.json"))
                .is_ok_and(|s| s.contains("\"finished\""))
        })
        .count();
    assert_eq!(finished, 3);
}

/// `--steps 1000000000000` on the tiny model: once its first steps are timed, the run says how
/// long that would take (one warning line), and stops with a checkpoint as asked.
#[test]
fn a_run_of_absurd_length_says_how_long_it_would_take() {
    let dir = temp_dir("absurd-steps");
    let out = dir.join("results");
    let args = common::args_with(
        common::TINY_TEXT,
        &[
            "--steps",
            "1000000000000",
            "--stop-at-step",
            "30",
            "--results",
            out.to_str().unwrap(),
            "--quiet",
        ],
    );
    let o = ablate(&args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(130), "{err}");
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    let w = warnings[0];
    assert!(
        w.starts_with("ablate: warning: at ")
            && w.contains(" ms/step, 1000000000000 steps take about ")
            && w.contains(" years; Ctrl-C stops the run with a checkpoint"),
        "{w}"
    );
    let run = common::run_dirs(&out).remove(0);
    assert!(run.join("checkpoints").join("step-000000030").is_dir());
    // a run of sensible length says nothing of the kind
    let args = common::args_with(
        common::TINY_TEXT,
        &[
            "--steps",
            "30",
            "--results",
            out.to_str().unwrap(),
            "--quiet",
        ],
    );
    let o = ablate(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("take about"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--vocab-size` is a cap: far beyond what the corpus gives, the memory check counts the
/// vocabulary the corpus gives (its distinct words and the 4 special tokens; BPE: what its
/// merges reach) and the run trains.
#[test]
fn a_vocabulary_cap_beyond_the_corpus_trains_on_the_corpus_vocabulary() {
    let dir = temp_dir("huge-vocab");
    let corpus = dir.join("five-words.txt");
    std::fs::write(&corpus, "a b c d e\n".repeat(60)).unwrap();
    // BPE: the specials, the alphabet (the word mark and a-e) and the merges ▁a .. ▁e
    for (tokenizer, expected) in [("word", 4 + 5), ("bpe", 4 + 6 + 5)] {
        let out = dir.join(format!("results-{tokenizer}"));
        let o = ablate(&[
            "--d-model",
            "16",
            "--layers",
            "1",
            "--heads",
            "2",
            "--d-ff",
            "32",
            "--batch-size",
            "8",
            "--max-len",
            "12",
            "--steps",
            "5",
            "--vocab-size",
            "1000000000000",
            "--tokenizer",
            tokenizer,
            "--corpus",
            corpus.to_str().unwrap(),
            "--results",
            out.to_str().unwrap(),
            "--quiet",
        ]);
        assert!(o.status.success(), "{tokenizer}: {}", stderr(&o));
        let run = common::run_dirs(&out)
            .into_iter()
            .find(|p| p.file_name().unwrap() != "tokenizers")
            .unwrap();
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap())
                .unwrap();
        assert_eq!(summary["status"], "finished", "{tokenizer}");
        assert_eq!(summary["vocab_size"], expected, "{tokenizer}");
    }
    // the capped BPE vocabulary is the one a sensible cap gives
    let sensible = dir.join("results-sensible");
    let o = ablate(&[
        "--d-model",
        "16",
        "--layers",
        "1",
        "--heads",
        "2",
        "--d-ff",
        "32",
        "--batch-size",
        "8",
        "--max-len",
        "12",
        "--steps",
        "5",
        "--vocab-size",
        "1000",
        "--tokenizer",
        "bpe",
        "--corpus",
        corpus.to_str().unwrap(),
        "--results",
        sensible.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let tokenizer = |out: &Path| {
        let dir = out.join("tokenizers");
        let file = std::fs::read_dir(&dir)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        std::fs::read_to_string(file).unwrap()
    };
    assert_eq!(tokenizer(&sensible), tokenizer(&dir.join("results-bpe")));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A lock being written (empty) keeps a resume out; a lock whose text is no pid, or whose pid
/// is dead, is stale: the resume takes it over, finishes the run and leaves no lock.
#[test]
fn a_resume_takes_over_stale_locks_only() {
    let dir = temp_dir("stale-locks");
    let stopped = stopped_tiny_run(&dir, "stopped", &["--stop-at-step", "20"]);
    let writing = copy_run(&stopped, &dir, "writing");
    std::fs::write(writing.join(".lock"), "").unwrap();
    let o = ablate(&["--resume", writing.to_str().unwrap(), "--quiet"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is being trained by another ablate process"),
        "{}",
        stderr(&o)
    );
    assert!(writing.join(".lock").exists());
    for (name, lock) in [("garbage", "not a pid\n"), ("dead", "4194999 12345")] {
        let run = copy_run(&stopped, &dir, name);
        std::fs::write(run.join(".lock"), lock).unwrap();
        let o = ablate(&["--resume", run.to_str().unwrap(), "--quiet"]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let summary = std::fs::read_to_string(run.join("summary.json")).unwrap();
        assert!(summary.contains("\"finished\""), "{name}: {summary}");
        assert!(!run.join(".lock").exists(), "{name}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
