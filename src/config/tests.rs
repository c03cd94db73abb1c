use super::*;
use crate::errors::closest;
use crate::norm::{BackwardMeans, PowerConfig};

#[test]
fn logging_keys_leave_the_id_alone() {
    let c = RunConfig::default();
    for key in logging_keys() {
        assert!(c.value_of(key).is_some(), "{key} is not a config key");
    }
    let logged = RunConfig {
        eval_every: 7,
        probes: false,
        checkpoint_every: 0,
        ..RunConfig::default()
    };
    assert_eq!(logged.id(), c.id());
    assert_ne!(logged.to_toml(), c.to_toml());
    let other = RunConfig {
        lr: 2e-3,
        ..RunConfig::default()
    };
    assert_ne!(other.id(), c.id());
}

#[test]
fn weight_decay_and_schedule_enter_the_id_only_when_they_change_training() {
    let d = RunConfig::default();
    let same = RunConfig {
        weight_decay: Some(0.0),
        schedule: Some(Schedule::InverseSqrt),
        ..RunConfig::default()
    };
    assert_eq!(same.id(), d.id());
    assert_eq!(same.to_toml(), d.to_toml());
    let decay = RunConfig {
        weight_decay: Some(0.01),
        ..RunConfig::default()
    };
    let cosine = RunConfig {
        schedule: Some(Schedule::Cosine),
        ..RunConfig::default()
    };
    assert_ne!(decay.id(), d.id());
    assert_ne!(cosine.id(), d.id());
    assert_ne!(cosine.id(), decay.id());
    let back = RunConfig::from_toml(&cosine.to_toml(), "t").unwrap();
    assert_eq!(back.schedule, Some(Schedule::Cosine));
    let bad = RunConfig {
        weight_decay: Some(-1.0),
        ..RunConfig::default()
    };
    assert!(bad
        .validate()
        .unwrap_err()
        .to_string()
        .contains("weight-decay"));
}

#[test]
fn folders_named_by_earlier_builds_are_found() {
    // the ids build f674c5a gave these configurations (its `ablate run --dry-run`)
    assert_eq!(RunConfig::default().legacy_id(), "text-layer-s1-584a8770");
    let power = RunConfig {
        norm: NormKind::Power,
        steps: 7,
        eval_every: 3,
        ..RunConfig::default()
    };
    assert_eq!(power.legacy_id(), "text-power-s1-8ad6dbef");
    let out = std::env::temp_dir().join(format!("ablate-legacy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(out.join(power.legacy_id())).unwrap();
    assert_eq!(power.run_dir(&out), out.join(power.legacy_id()));
    std::fs::create_dir_all(out.join(power.id())).unwrap();
    assert_eq!(power.run_dir(&out), out.join(power.id()));
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn config_round_trips_through_toml_and_id_is_stable() {
    let mut c = RunConfig {
        norm: NormKind::Power,
        ..Default::default()
    }
    .with_norm_option("pn_groups", OptionValue::Count(2));
    let back = RunConfig::from_toml(&c.to_toml(), "test").unwrap();
    // the written file names PowerNorm's resolved backward means
    assert_eq!(
        back.norm_options.get("pn_backward_means"),
        Some(OptionValue::Choice("real"))
    );
    let mut unset = back.clone();
    unset.norm_options.unset("pn_backward_means");
    assert_eq!(unset, c);
    assert_eq!(back.id(), c.id());
    c.seed = 2;
    assert_ne!(back.id(), c.id());
}

#[test]
fn powernorm_backward_means_default_to_real_and_enter_only_powernorm_ids() {
    let power = RunConfig {
        norm: NormKind::Power,
        ..Default::default()
    };
    assert_eq!(
        PowerConfig::of(&power.norm_config()).backward_means,
        BackwardMeans::Real
    );
    assert!(power.to_toml().contains("pn_backward_means = \"real\""));
    let all = power
        .clone()
        .with_norm_option("pn_backward_means", OptionValue::Choice("all"));
    assert_ne!(all.id(), power.id());
    // a PowerNorm config.toml from before the key existed ran the authors' means: its id
    // (hash of a file without the key) must differ from every run of the new default
    let old_text: String = power
        .to_toml()
        .lines()
        .filter(|l| !l.starts_with("pn_backward_means"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(
        fnv1a(old_text.as_bytes()),
        fnv1a(power.to_toml().as_bytes())
    );
    assert_ne!(fnv1a(old_text.as_bytes()), fnv1a(all.to_toml().as_bytes()));
    // other norms ignore the option: same file, same id
    let layer = RunConfig::default();
    let layer_all =
        RunConfig::default().with_norm_option("pn_backward_means", OptionValue::Choice("all"));
    assert!(!layer.to_toml().contains("pn_backward_means"));
    assert_eq!(layer.id(), layer_all.id());
}

#[test]
fn plain_evaluation_batching_keeps_the_ids_of_runs_from_before_the_option() {
    let plain = RunConfig::default();
    let explicit = RunConfig {
        eval_batching: Some(EvalBatching::Plain),
        ..Default::default()
    };
    let bucketed = RunConfig {
        eval_batching: Some(EvalBatching::Bucketed),
        ..Default::default()
    };
    assert!(!plain.to_toml().contains("eval_batching"));
    assert_eq!(plain.id(), explicit.id());
    assert!(bucketed.to_toml().contains("eval_batching = \"bucketed\""));
    assert_ne!(plain.id(), bucketed.id());
    let images = RunConfig {
        task: Task::Images,
        ..bucketed
    };
    assert!(images.validate().is_err());
}

#[test]
fn float32_products_keep_their_ids_and_bf16_is_a_flex_mode() {
    let plain = RunConfig::default();
    let explicit = RunConfig {
        matmul_precision: Some(MatmulPrecision::F32),
        ..Default::default()
    };
    let bf16 = RunConfig {
        matmul_precision: Some(MatmulPrecision::Bf16),
        ..Default::default()
    };
    assert!(!plain.to_toml().contains("matmul_precision"));
    assert_eq!(plain.id(), explicit.id());
    assert!(bf16.to_toml().contains("matmul_precision = \"bf16\""));
    assert_ne!(plain.id(), bf16.id());
    assert!(bf16.validate().is_ok());
    // tables and labels name both precisions
    assert_eq!(
        plain.value_of("matmul_precision").unwrap().as_str(),
        Some("f32")
    );
    assert_eq!(
        bf16.value_of("matmul_precision").unwrap().as_str(),
        Some("bf16")
    );
    let ndarray = RunConfig {
        backend: BackendKind::Ndarray,
        ..bf16.clone()
    };
    let err = ndarray.validate().unwrap_err().to_string();
    assert!(
        err.contains("matmul-precision bf16") && err.contains("flex"),
        "{err}"
    );
    assert_eq!(
        RunConfig::from_toml("matmul_precision = \"bf16\"\n", "x.toml").unwrap(),
        bf16
    );
}

#[test]
fn split_files_and_bpe_enter_the_id_only_when_set() {
    let d = RunConfig::default();
    let toml = d.to_toml();
    assert!(
        !toml.contains("tokenizer") && !toml.contains("_file"),
        "{toml}"
    );
    let word = RunConfig {
        tokenizer: Some(TokenizerKind::Word),
        ..Default::default()
    };
    assert_eq!((word.to_toml(), word.id()), (toml, d.id()));
    assert_eq!(d.value_of("tokenizer").unwrap().as_str(), Some("word"));
    let bpe = RunConfig {
        tokenizer: Some(TokenizerKind::Bpe),
        ..Default::default()
    };
    assert!(bpe.to_toml().contains("tokenizer = \"bpe\""));
    assert_ne!(bpe.id(), d.id());
    assert_eq!(bpe.value_of("tokenizer").unwrap().as_str(), Some("bpe"));

    let dir = std::env::temp_dir().join(format!("ablate-config-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (train, valid) = (dir.join("train.txt"), dir.join("valid.txt"));
    std::fs::write(&train, "a b c\n").unwrap();
    std::fs::write(&valid, "a c\n").unwrap();
    let mut files = RunConfig {
        train_file: Some(train.clone()),
        valid_file: Some(valid.clone()),
        ..Default::default()
    };
    files.validate().unwrap();
    files.record_file_digests().unwrap();
    assert_eq!(
        files.train_file_sha256.as_deref(),
        Some(crate::results::digest::sha256_hex(b"a b c\n").as_str())
    );
    assert!(files.valid_file_sha256.is_some() && files.test_file_sha256.is_none());
    assert!(files.to_toml().contains("train_file_sha256 = "));
    assert_eq!(RunConfig::from_toml(&files.to_toml(), "t").unwrap(), files);
    // the same path with other content: another id
    std::fs::write(&train, "a b c d\n").unwrap();
    let mut changed = files.clone();
    changed.record_file_digests().unwrap();
    assert_ne!(changed.id(), files.id());
    // a study's table records the digests as it is read
    let table: toml::Table = toml::from_str(&files.to_toml()).unwrap();
    assert_eq!(RunConfig::from_table(table).unwrap().id(), changed.id());

    let err = |c: RunConfig| c.validate().unwrap_err().to_string();
    let no_valid = RunConfig {
        valid_file: None,
        ..files.clone()
    };
    assert!(err(no_valid).starts_with("train-file needs valid-file"));
    let no_train = RunConfig {
        train_file: None,
        ..files.clone()
    };
    assert!(err(no_train).starts_with("valid-file goes with train-file"));
    let images = RunConfig {
        task: Task::Images,
        ..files.clone()
    };
    assert!(err(images).starts_with("train-file applies to text"));
    let images_bpe = RunConfig {
        task: Task::Images,
        ..bpe
    };
    assert!(err(images_bpe).starts_with("tokenizer bpe applies to text"));
    let corpus = RunConfig {
        corpus: "other.txt".into(),
        ..files.clone()
    };
    assert!(err(corpus).starts_with("corpus and train-file"));
    let mut missing = RunConfig {
        test_file: Some(dir.join("nope.txt")),
        ..files
    };
    let e = missing.record_file_digests().unwrap_err().to_string();
    assert!(
        e.starts_with("test-file ") && e.ends_with("nope.txt: no such file"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unknown_keys_and_bad_values_are_rejected() {
    let err = RunConfig::from_toml("nrom = \"batch\"\n", "x.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("x.toml") && err.contains("unknown key `nrom` (did you mean `norm`?)"),
        "{err}"
    );
    let err = RunConfig::from_toml("norm = \"btach\"\n", "x.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown value `btach` (did you mean `batch`?)"),
        "{err}"
    );
    assert_eq!(closest("stpes", ["steps", "seed"]), Some("steps"));
    assert_eq!(closest("zzzzzz", ["steps", "seed"]), None);
    for bad in [
        RunConfig {
            steps: 0,
            ..Default::default()
        },
        RunConfig {
            max_len: 0,
            ..Default::default()
        },
        RunConfig {
            heads: 3,
            ..Default::default()
        },
        RunConfig {
            norm: NormKind::Power,
            ..Default::default()
        }
        .with_norm_option("pn_groups", OptionValue::Count(3)),
        RunConfig::default().with_norm_option("norm_momentum", OptionValue::Number(-0.1)),
        RunConfig {
            norm: NormKind::Power,
            ..Default::default()
        }
        .with_norm_option("pn_alpha_bkw", OptionValue::Number(1.5)),
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
    }
    RunConfig::default().validate().unwrap();
}

#[test]
fn norm_options_the_norm_does_not_read_leave_the_id_alone() {
    let layer = RunConfig {
        norm: NormKind::Layer,
        ..Default::default()
    };
    let changed = layer
        .clone()
        .with_norm_option("norm_momentum", OptionValue::Number(0.5))
        .with_norm_option("pn_alpha_fwd", OptionValue::Number(0.5));
    // LayerNorm reads neither: the same run, and the options are named
    assert_eq!(changed.id(), layer.id());
    assert_eq!(
        changed.inapplicable_norm_options(),
        vec!["norm_momentum", "pn_alpha_fwd"]
    );
    // BatchNorm reads the momentum: another run; PowerNorm reads alpha: another run
    for norm in [NormKind::Batch, NormKind::Power] {
        let base = RunConfig {
            norm,
            ..Default::default()
        };
        let other = base
            .clone()
            .with_norm_option("norm_momentum", OptionValue::Number(0.5))
            .with_norm_option("pn_alpha_fwd", OptionValue::Number(0.5));
        assert_ne!(other.id(), base.id(), "{norm}");
    }
    // an option changed for the norm that reads it is not inapplicable
    let eps = layer
        .clone()
        .with_norm_option("norm_eps", OptionValue::Number(1e-3));
    assert!(eps.inapplicable_norm_options().is_empty());
    assert_ne!(eps.id(), layer.id());
}

/// A value for `key` other than its default that a run accepts, as a flag's text and as
/// TOML: twice the default for numbers (one for a zero count), another named value for enums,
/// and files that exist for paths.
fn sample_value(key: &str, corpus: &str) -> (String, toml::Value) {
    use clap::CommandFactory;
    let defaults = toml::Table::try_from(RunConfig::default()).unwrap();
    let path = |p: &str| (p.to_string(), toml::Value::String(p.into()));
    match key {
        "corpus" | "train_file" | "valid_file" | "test_file" => return path(corpus),
        "images" | "valid_images" => return path(DEFAULT_VALID_IMAGES),
        "labels" | "valid_labels" => return path(DEFAULT_VALID_LABELS),
        "max_tokens" => return ("2048".into(), toml::Value::Integer(2048)),
        "weight_decay" => return ("0.01".into(), toml::Value::Float(0.01)),
        _ => {}
    }
    match defaults.get(key) {
        Some(toml::Value::Integer(0)) => ("1".into(), toml::Value::Integer(1)),
        Some(toml::Value::Integer(n)) => ((2 * n).to_string(), toml::Value::Integer(2 * n)),
        Some(toml::Value::Float(f)) => ((f / 2.0).to_string(), toml::Value::Float(f / 2.0)),
        Some(toml::Value::Boolean(b)) => (String::new(), toml::Value::Boolean(!b)),
        Some(toml::Value::Array(_)) => (
            "8,16".into(),
            toml::Value::Array(vec![toml::Value::Integer(8), toml::Value::Integer(16)]),
        ),
        _ => {
            // a named value: the first the flag offers that is not the default
            let cmd = crate::cli::Cli::command();
            let arg = cmd.get_arguments().find(|a| a.get_id() == key).unwrap();
            let default = defaults.get(key).and_then(|v| v.as_str().map(String::from));
            let name = arg
                .get_possible_values()
                .into_iter()
                .map(|v| v.get_name().to_string())
                .find(|n| {
                    Some(n) != default.as_ref()
                        && n != "f32"
                        && n != "word"
                        && n != "plain"
                        && n != "inverse-sqrt"
                })
                .unwrap_or_else(|| panic!("{key}: no other value"));
            (name.clone(), toml::Value::String(name))
        }
    }
}

#[test]
fn every_option_reaches_the_config_from_the_command_line_and_a_study_file() {
    use clap::Parser;
    let dir = std::env::temp_dir().join(format!("ablate-every-option-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let corpus = dir.join("corpus.txt");
    std::fs::write(&corpus, "a b c\n".repeat(60)).unwrap();
    let corpus = corpus.to_str().unwrap().to_string();
    let flagged: Vec<&RunOption> = RUN_OPTIONS.iter().filter(|o| o.flag.is_some()).collect();
    assert!(flagged.len() > 40, "{}", flagged.len());
    let norm_flags = crate::norm::all_options().iter().map(|o| (o.key, o.flag()));
    let flags = flagged.iter().map(|o| (o.key, o.flag.unwrap().to_string()));
    for (key, flag) in flags.chain(norm_flags) {
        let (text, value) = match crate::norm::find_option(key) {
            Some(o) => match o.kind {
                crate::norm::OptionKind::Number { .. } => ("0.5".into(), toml::Value::Float(0.5)),
                crate::norm::OptionKind::Count { .. } => ("2".into(), toml::Value::Integer(2)),
                crate::norm::OptionKind::Choice { values, default } => {
                    let other = values.iter().find(|(n, _)| *n != default).unwrap().0;
                    (other.to_string(), toml::Value::String(other.into()))
                }
            },
            None => sample_value(key, &corpus),
        };
        // the options a sample needs beside it (a norm that reads the option; a training file
        // needs a validation file)
        let norm = NormKind::ALL
            .iter()
            .find(|k| k.info().options.iter().any(|o| o.key == key))
            .unwrap_or(&NormKind::Power)
            .name();
        let mut companions: Vec<(&str, toml::Value)> =
            vec![("norm", toml::Value::String(norm.into()))];
        if ["train_file", "test_file", "valid_file"].contains(&key) {
            for k in ["train_file", "valid_file"] {
                companions.push((k, toml::Value::String(corpus.clone())));
            }
        }
        // (the command line's rules for images: own training files hold out validation images
        // unless validation files are given, and the image task's batch is 64 unless given)
        if ["images", "labels"].contains(&key) {
            companions.push(("valid_images", DEFAULT_VALID_IMAGES.into()));
            companions.push(("valid_labels", DEFAULT_VALID_LABELS.into()));
        }
        if key == "task" {
            companions.push(("batch_size", toml::Value::Integer(32)));
        }
        // the command line
        let mut argv = vec!["ablate".to_string(), format!("--{flag}")];
        if !text.is_empty() {
            argv.push(text.clone());
        }
        for (k, v) in &companions {
            if *k != key {
                argv.push(format!("--{}", k.replace('_', "-")));
                argv.push(match v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
            }
        }
        let cli =
            crate::cli::Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        if key == "device" {
            // a GPU index needs the GPU backend, which this build may lack: the flag's value
            // reaches the configuration, which a run without wgpu then refuses
            let c = RunConfig::from_table(cli.run.options.given.clone()).unwrap();
            assert_eq!(c.device, 1);
            assert!(cli
                .run
                .to_config()
                .unwrap_err()
                .to_string()
                .contains("--backend wgpu"));
            continue;
        }
        let from_cli = cli
            .run
            .to_config()
            .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        let written: toml::Table = toml::from_str(&from_cli.to_toml()).unwrap();
        assert_eq!(
            written.get(key),
            Some(&value),
            "{argv:?} did not reach `{key}`"
        );
        // a study file's [base]
        let mut base = toml::Table::new();
        base.insert(key.into(), value.clone());
        for (k, v) in &companions {
            base.entry(k.to_string()).or_insert(v.clone());
        }
        let study =
            format!("name = \"every-option\"\n\n[base]\n{base}\n[[grid]]\nnorm = [\"{norm}\"]\n");
        let study = crate::experiment::Study::parse(&study, &dir.join("s.toml"))
            .unwrap_or_else(|e| panic!("{key} in a study: {e}"));
        assert_eq!(
            study.runs[0].id(),
            from_cli.id(),
            "{key}: study and command line differ"
        );
        assert_eq!(study.runs[0].to_toml(), from_cli.to_toml(), "{key}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// docs/options.md is the table the declarations make (`ABLATE_WRITE_DOCS=1` rewrites it).
#[test]
fn options_table_in_the_docs_is_generated_from_the_declarations() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/options.md");
    let want = super::options_table::options_markdown();
    if std::env::var_os("ABLATE_WRITE_DOCS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "docs/options.md is not the table the declarations make: run ABLATE_WRITE_DOCS=1 cargo test --lib options_table"
    );
}

/// A norm option's flag at its default overrides a config file's other value, and counts as
/// given (so `--resume` refuses it).
#[test]
fn a_norm_option_flag_at_its_default_overrides_a_config_file() {
    use clap::Parser;
    let dir = std::env::temp_dir().join(format!("ablate-flag-default-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("config.toml");
    let set = RunConfig::default().with_norm_option("norm_eps", OptionValue::Number(1e-3));
    std::fs::write(&file, set.to_toml()).unwrap();
    let path = file.to_str().unwrap();
    let parse = |args: &[&str]| crate::cli::Cli::try_parse_from(args).unwrap().run;
    let from_file = parse(&["ablate", "--config", path]).to_config().unwrap();
    assert_eq!(from_file.norm_config().eps(), 1e-3);
    let flagged = parse(&["ablate", "--config", path, "--norm-eps", "1e-5"]);
    assert_eq!(flagged.to_config().unwrap().norm_config().eps(), 1e-5);
    assert_eq!(flagged.to_config().unwrap().id(), RunConfig::default().id());
    let resume = parse(&["ablate", "--resume", path, "--norm-eps", "1e-5"]);
    assert_ne!(resume.norm_options, Default::default());
    std::fs::remove_dir_all(&dir).unwrap();
}
