//! A norm with one option, written as the recipe in `norm/mod.rs` says and registered for the
//! unit tests only: LayerNorm whose output is shifted by `fixture_shift`. Its tests check that
//! the declaration alone gives the option a flag, `--help`, config and study keys, a range
//! check, a refusal for other norms and a place in the run id, and that it trains.

use super::{no_checks, no_note, BatchStats, Bound, Norm, NormCtx, NormDef, NormInfo};
use super::{NormOption, OptionKind, Written};
use burn::module::{Module, Param};
use burn::tensor::Tensor;

#[derive(Module, Debug)]
pub struct ShiftedLayerNorm {
    pub gamma: Param<Tensor<1>>,
    pub beta: Param<Tensor<1>>,
    pub eps: f64,
    pub shift: f64,
}

/// The fixture's one option.
pub const SHIFT: NormOption = NormOption {
    key: "fixture_shift",
    help: "shifted-layer: added to every output.",
    kind: OptionKind::Number {
        default: 0.0,
        bound: Bound::Within(-10.0, 10.0),
    },
    written: Written::WhenSet,
};

pub const SHIFTED_LAYER: NormDef<ShiftedLayerNorm> = NormDef {
    info: NormInfo {
        name: "shifted-layer",
        help: "LayerNorm plus a constant (a test fixture)",
        statistic: None,
        params_per_feature: 2,
        buffers_per_feature: 0,
        buffers_per_position: false,
        buffers: "none",
        options: &[super::EPS, SHIFT],
    },
    build: |c, d, device| ShiftedLayerNorm {
        gamma: Param::from_tensor(Tensor::ones([d], device)),
        beta: Param::from_tensor(Tensor::zeros([d], device)),
        eps: c.eps(),
        shift: c.number(&SHIFT),
    },
    validate: no_checks,
    note: no_note,
};

impl Norm for ShiftedLayerNorm {
    fn forward(&self, x: Tensor<3>, _ctx: &NormCtx) -> (Tensor<3>, Option<BatchStats>) {
        let (var, mean) = x.clone().var_mean_bias(2);
        let z = (x - mean) / var.add_scalar(self.eps).sqrt();
        let y = z * super::per_feature(self.gamma.val()) + super::per_feature(self.beta.val());
        (y.add_scalar(self.shift), None)
    }
}

#[cfg(test)]
mod tests {
    use super::SHIFT;
    use crate::cli::Cli;
    use crate::config::RunConfig;
    use crate::norm::{NormKind, OptionValue};
    use clap::Parser;

    fn config(args: &[&str]) -> anyhow::Result<RunConfig> {
        let mut argv = vec!["ablate"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).map_err(|e| anyhow::anyhow!("{e}"))?;
        cli.run.to_config()
    }

    #[test]
    fn its_option_has_a_flag_help_a_range_and_a_place_in_the_id() {
        let shifted = config(&["--norm", "shifted-layer", "--fixture-shift", "0.5"]).unwrap();
        assert_eq!(shifted.norm_config().number(&SHIFT), 0.5);
        assert!(shifted.to_toml().contains("fixture_shift = 0.5"));
        // set, it changes the id; unset, it is not written, so no earlier id changes
        let plain = config(&["--norm", "shifted-layer"]).unwrap();
        assert_ne!(shifted.id(), plain.id());
        assert!(!plain.to_toml().contains("fixture_shift"));
        assert!(!RunConfig::default().to_toml().contains("fixture_shift"));
        // a study file's key reaches the same config
        let mut table: toml::Table = toml::from_str(&plain.to_toml()).unwrap();
        table.insert("fixture_shift".into(), toml::Value::Float(0.5));
        assert_eq!(RunConfig::from_table(table).unwrap().id(), shifted.id());
        // its range, and a norm that does not read it
        let err = config(&["--norm", "shifted-layer", "--fixture-shift", "11"]).unwrap_err();
        assert!(err.to_string().contains("fixture-shift must be within [-10, 10]"), "{err}");
        // (`ablate` refuses it with one line; a study grid leaves it out of that run's id)
        let layer = config(&["--norm", "layer", "--fixture-shift", "0.5"]).unwrap();
        assert_eq!(layer.inapplicable_norm_options(), ["fixture_shift"]);
        assert_eq!(layer.id(), config(&["--norm", "layer"]).unwrap().id());
        let help = Cli::try_parse_from(["ablate", "--help"]).unwrap_err().to_string();
        assert!(help.contains("--fixture-shift"), "{help}");
        assert!(help.contains("shifted-layer: added to every output. [default: 0.0]"), "{help}");
    }

    #[test]
    fn it_trains_three_steps_through_the_run_path() {
        let out = std::env::temp_dir().join(format!("ablate-fixture-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).unwrap();
        let mut c = config(&[
            "--norm",
            "shifted-layer",
            "--fixture-shift",
            "0.25",
            "--steps",
            "3",
            "--d-model",
            "16",
            "--heads",
            "2",
            "--d-ff",
            "32",
            "--max-len",
            "12",
            "--batch-size",
            "4",
            "--vocab-size",
            "200",
            "--eval-batches",
            "1",
        ])
        .unwrap();
        c.checkpoint_every = 0;
        assert_eq!(c.norm, NormKind::ShiftedLayer);
        assert_eq!(c.norm_options.get("fixture_shift"), Some(OptionValue::Number(0.25)));
        let data = crate::train::load_data(&c).unwrap();
        let control = crate::progress::RunControl::hidden();
        let summary = crate::train::run(&c, &data, &out, &control).unwrap();
        assert_eq!(summary.steps_completed, 3);
        let steps = std::fs::read_to_string(&out.join("steps.csv")).unwrap();
        assert_eq!(steps.lines().count(), 4, "{steps}");
        std::fs::remove_dir_all(&out).unwrap();
    }
}
