//! The shipped study files: every one expands into valid runs, and the paper-scale study (meant
//! for a GPU) starts and trains on the CPU backend.

mod common;

use ablate::experiment::Study;
use common::{ablate, stderr, temp_dir};
use std::path::Path;

fn experiments() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_shipped_study_expands_into_valid_runs() {
    let files = experiments();
    assert!(files.len() >= 5, "{files:?}");
    for f in files {
        let study = Study::load(&f).unwrap_or_else(|e| panic!("{}: {e:#}", f.display()));
        assert!(!study.runs.is_empty(), "{}", f.display());
    }
}

/// The committed reports name their runs by id: the ids every committed study gave when its
/// report was made must stay planned (a changed id retrains the study and leaves its results unreachable), also
/// when the image task's defaults change (a text run's id leaves the image keys out).
#[test]
fn committed_studies_keep_their_run_ids() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let pinned = std::fs::read_to_string(dir.join("tests/fixtures/study-run-ids.txt")).unwrap();
    let mut want: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for line in pinned.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (study, id) = line.split_once(' ').unwrap();
        want.entry(study).or_default().push(id);
    }
    assert!(want.len() >= 8);
    for (study, ids) in want {
        let s = Study::load(&dir.join(format!("experiments/{study}.toml"))).unwrap();
        // a study may grow (new grid values); the runs its committed report used stay
        let got: std::collections::BTreeSet<String> = s.runs.iter().map(|r| r.id()).collect();
        let missing: Vec<&&str> = ids.iter().filter(|id| !got.contains(**id)).collect();
        assert!(missing.is_empty(), "{study}: {missing:?} no longer planned");
        // and the folders those ids name are where the runs are looked for
        for r in &s.runs {
            assert_eq!(r.run_dir(Path::new("R")), Path::new("R").join(r.id()));
        }
    }
    // a text run's id ignores the image keys entirely
    let text = ablate::config::RunConfig::default();
    let other_images = ablate::config::RunConfig {
        images: "elsewhere/images.gz".into(),
        labels: "elsewhere/labels.gz".into(),
        valid_images: None,
        valid_labels: None,
        ..Default::default()
    };
    assert_eq!(text.id(), other_images.id());
    assert_eq!(text.legacy_id(), other_images.legacy_id());
}

#[test]
fn paper_scale_study_trains_two_steps_on_the_cpu() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/paper-scale.toml");
    let study = Study::load(&path).unwrap();
    let run = study
        .runs
        .iter()
        .find(|r| r.task == ablate::config::Task::Text)
        .expect("a text run");
    assert_eq!(
        (run.d_model, run.layers, run.max_tokens),
        (512, 6, Some(4096))
    );
    let dir = temp_dir("paper-scale");
    let config = dir.join("config.toml");
    std::fs::write(&config, run.to_toml()).unwrap();
    let out = dir.join("results");
    let o = ablate(&[
        "--config",
        config.to_str().unwrap(),
        "--backend",
        "flex",
        "--steps",
        "2",
        "--eval-batches",
        "1",
        "--quiet",
        "--results",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("finished after 2 of 2 steps"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// README's table of norms and `--help` name every registered norm.
#[test]
fn every_registered_norm_is_documented() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let help = ablate(&["--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    for kind in ablate::norm::NormKind::ALL {
        let name = kind.name();
        assert!(readme.contains(&format!("| `{name}` |")), "README's norm table lacks {name}");
        assert!(help.contains(name), "--help lacks {name}");
    }
}
