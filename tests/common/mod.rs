//! Helpers shared by the end-to-end tests that drive the `ablate` binary.
#![allow(dead_code)] // each test file uses its own subset

use std::path::PathBuf;
use std::process::{Command, Output};

/// The smallest text model the end-to-end tests train (seconds per run): model and data shape.
pub const TINY_TEXT: &[&str] = ablate::gpucheck::TINY_TEXT;

/// The same configuration as study-file keys.
pub const TINY_TEXT_TOML: &str =
    "d_model = 16\nlayers = 1\nheads = 2\nd_ff = 32\nvocab_size = 200\nbatch_size = 8\nmax_len = 12\n";

/// `args` followed by `more`.
pub fn args_with<'a>(args: &[&'a str], more: &[&'a str]) -> Vec<&'a str> {
    let mut v = args.to_vec();
    v.extend_from_slice(more);
    v
}

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ablate"))
}

pub fn ablate(args: &[&str]) -> Output {
    bin().args(args).output().expect("run ablate")
}

/// A fresh, empty temporary folder unique to this test process.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ablate-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim().to_string()
}

/// The run folders in a results folder (a study also writes its runs-<study>.csv there), sorted.
pub fn run_dirs(out: &std::path::Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap_or_else(|e| panic!("{}: {e}", out.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// `ablate run STUDY --results OUT --quiet`, which must succeed.
pub fn run_study(study: &std::path::Path, out: &std::path::Path) -> Output {
    let o = ablate(&[
        "run",
        study.to_str().unwrap(),
        "--results",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    o
}

/// The run folders of `out`, none when it does not exist (yet).
pub fn run_dirs_if_any(out: &std::path::Path) -> Vec<PathBuf> {
    if out.is_dir() {
        run_dirs(out)
    } else {
        Vec::new()
    }
}

/// Every row of a CSV file without the timing columns (which measure this process, not the
/// run's numbers).
pub fn numeric_rows(path: &std::path::Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let keep: Vec<usize> = (0..header.len())
        .filter(|&i| header[i] != "step_ms" && header[i] != "wall_s")
        .collect();
    lines
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            keep.iter().map(|&i| cells[i].to_string()).collect()
        })
        .collect()
}
