//! Hostile input, table-driven: every row is a command line (with any files it needs) that must
//! end with one clear line on stderr, the expected exit code, no panic, and no run folder left
//! behind.

mod common;

use common::{ablate, stderr, temp_dir};
use std::io::Write;
use std::path::Path;

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
            1,
            "seed must be at most",
        ),
        (
            "steps beyond TOML",
            vec!["--steps".into(), big.into()],
            1,
            "steps must be at most",
        ),
        (
            "max-tokens beyond TOML",
            vec!["--max-tokens".into(), big.into()],
            1,
            "max-tokens must be at most",
        ),
        (
            "eval-batches beyond TOML",
            vec!["--eval-batches".into(), big.into()],
            1,
            "eval-batches must be at most",
        ),
        (
            "bucket-pool beyond TOML",
            vec!["--bucket-pool".into(), big.into()],
            1,
            "bucket-pool must be at most",
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
    let mut failures = Vec::new();
    for (name, args, code, message) in &rows {
        let mut full: Vec<&str> = args.iter().map(String::as_str).collect();
        if !matches!(full.first(), Some(&"memory") | Some(&"run")) {
            full.extend(["--out", out.to_str().unwrap(), "--quiet"]);
        }
        let o = ablate(&full);
        let err = stderr(&o);
        let ok = o.status.code() == Some(*code)
            && err.contains(message)
            && err.lines().count() == 1
            && !err.contains("panicked")
            && !err.contains("internal error")
            && !out.exists();
        if !ok {
            failures.push(format!(
                "{name}: exit {:?}, stderr {err:?}, run folder left: {}",
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
