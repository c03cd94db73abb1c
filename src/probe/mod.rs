//! Probes: turn the statistics each norm returns into named per-layer scalars.
//!
//! All scalars of a step are computed on the device and concatenated, so a step costs one
//! device-to-host read however many layers there are.
//!
//! With `d` features, `s` the second-order statistic (`var` for BatchNorm, `psi2` for PN-V
//! and PowerNorm) and `r` the running value *before* this step's update (the value an
//! evaluation before this step would have used):
//!
//! | name | value |
//! |---|---|
//! | `dist_mean` | `‖mu_B − mu_r‖₂ / d` (BatchNorm): the paper's measure, which shrinks like 1/√d |
//! | `dist_var` / `dist_psi2` | `‖s_B − s_r‖₂ / d` |
//! | `rms_dist_mean`, `rms_dist_var` / `rms_dist_psi2` | `‖·‖₂ / √d`: the per-feature RMS distance, comparable across widths |
//! | `rel_dist_mean` | `‖mu_B − mu_r‖₂ / ‖sqrt(var_r)‖₂` (scale-free, BatchNorm) |
//! | `rel_dist_var` / `rel_dist_psi2` | `‖s_B − s_r‖₂ / ‖s_r‖₂` (scale-free) |
//! | `med_rel_mean` | `median_j |mu_B,j − mu_r,j| / sqrt(var_r,j)` (BatchNorm): per-feature, so a few wide features do not decide |
//! | `med_rel_var` / `med_rel_psi2` | `median_j |s_B,j / s_r,j − 1|` (per-feature, scale-free) |
//! | `var_mean` / `psi2_mean`, `var_max` / `psi2_max` | mean and max over features of `s_B` |
//! | `grad_mean` | `‖dL/dmu_B‖₂ / d` (BatchNorm) |
//! | `grad_var` / `grad_psi2` | `‖dL/ds_B‖₂ / d` (BatchNorm, PN-V; PowerNorm's statistic gets no gradient) |
//! | `nu_norm`, `nu_max` | PowerNorm: `‖nu‖₂` and `max |nu|` after this step's update |
//! | `pn_gamma`, `pn_gamma_max` | PowerNorm: mean and max over features of `Gamma = mean(z²)` |
//! | `pn_lambda` | PowerNorm: mean over features of `Lambda = mean(g z)` |

use crate::norm::{BatchStats, GradStats};
use burn::tensor::Tensor;

// Probe names as written in probes.csv. Everything that reads probes (reports, scripts'
// tests, parity tests) names them through these, so a rename here reaches every reader; a test
// checks that every name the report asks for is one some norm writes.
pub const DIST_MEAN: &str = "dist_mean";
pub const RMS_DIST_MEAN: &str = "rms_dist_mean";
pub const REL_DIST_MEAN: &str = "rel_dist_mean";
pub const MED_REL_MEAN: &str = "med_rel_mean";
pub const GRAD_MEAN: &str = "grad_mean";
pub const DIST_VAR: &str = "dist_var";
pub const RMS_DIST_VAR: &str = "rms_dist_var";
pub const REL_DIST_VAR: &str = "rel_dist_var";
pub const MED_REL_VAR: &str = "med_rel_var";
pub const GRAD_VAR: &str = "grad_var";
pub const DIST_PSI2: &str = "dist_psi2";
pub const REL_DIST_PSI2: &str = "rel_dist_psi2";
pub const GRAD_PSI2: &str = "grad_psi2";
pub const NU_NORM: &str = "nu_norm";
pub const NU_MAX: &str = "nu_max";
pub const PN_GAMMA: &str = "pn_gamma";
pub const PN_GAMMA_MAX: &str = "pn_gamma_max";
pub const PN_LAMBDA: &str = "pn_lambda";

/// `dist_<s>` for the second-order statistic `s` (`var`, `psi2`).
pub fn dist(s: &str) -> String {
    format!("dist_{s}")
}
/// `rms_dist_<s>`.
pub fn rms_dist(s: &str) -> String {
    format!("rms_dist_{s}")
}
/// `rel_dist_<s>`.
pub fn rel_dist(s: &str) -> String {
    format!("rel_dist_{s}")
}
/// `med_rel_<s>`.
pub fn med_rel(s: &str) -> String {
    format!("med_rel_{s}")
}
/// `grad_<s>`.
pub fn grad(s: &str) -> String {
    format!("grad_{s}")
}

/// Names and values (shape `[names.len()]`) of one layer's probes at one step.
pub struct LayerProbes {
    pub names: Vec<String>,
    pub values: Tensor<1>,
}

fn l2(v: Tensor<1>) -> Tensor<1> {
    v.square().sum().sqrt()
}

/// Median of a vector (mean of the two middle values when its length is even), shape `[1]`.
fn median(v: Tensor<1>) -> Tensor<1> {
    let n = v.dims()[0];
    let sorted = v.sort(0);
    if n % 2 == 1 {
        sorted.slice(n / 2..n / 2 + 1)
    } else {
        sorted.slice(n / 2 - 1..n / 2 + 1).mean()
    }
}

/// Running statistics start at 1 and only average positive values; the floor keeps a feature
/// whose running value underflowed from dividing by zero.
const RUNNING_FLOOR: f64 = 1e-12;

/// Computes the probes of one layer from its forward statistics and (on training steps)
/// what the backward pass said about them.
pub fn layer_probes(stats: &BatchStats, grads: Option<&GradStats>) -> LayerProbes {
    let s = stats.kind.probe_name();
    let d = stats.second.dims()[0] as f64;
    let mut names: Vec<String> = Vec::new();
    let mut values: Vec<Tensor<1>> = Vec::new();
    let mut push = |name: String, v: Tensor<1>| {
        names.push(name);
        values.push(v);
    };
    if let (Some(mu), Some(mu_r)) = (&stats.mean, &stats.running_mean) {
        let diff = l2(mu.clone() - mu_r.clone());
        push(DIST_MEAN.into(), diff.clone().div_scalar(d));
        push(RMS_DIST_MEAN.into(), diff.clone().div_scalar(d.sqrt()));
        push(
            REL_DIST_MEAN.into(),
            diff / l2(stats.running_second.clone().sqrt()),
        );
        let sd_r = stats.running_second.clone().clamp_min(RUNNING_FLOOR).sqrt();
        push(
            MED_REL_MEAN.into(),
            median((mu.clone() - mu_r.clone()).abs() / sd_r),
        );
    }
    let diff = l2(stats.second.clone() - stats.running_second.clone());
    push(dist(s), diff.clone().div_scalar(d));
    push(rms_dist(s), diff.clone().div_scalar(d.sqrt()));
    push(rel_dist(s), diff / l2(stats.running_second.clone()));
    let ratio = stats.second.clone() / stats.running_second.clone().clamp_min(RUNNING_FLOOR);
    push(med_rel(s), median(ratio.sub_scalar(1.0).abs()));
    push(format!("{s}_mean"), stats.second.clone().mean());
    push(format!("{s}_max"), stats.second.clone().max());
    if let Some(g) = grads {
        if let Some(dm) = &g.d_mean {
            push(GRAD_MEAN.into(), l2(dm.clone()).div_scalar(d));
        }
        if let Some(ds) = &g.d_second {
            push(grad(s), l2(ds.clone()).div_scalar(d));
        }
        if let Some(p) = &g.power {
            push(NU_NORM.into(), l2(p.nu.clone()));
            push(NU_MAX.into(), p.nu.clone().abs().max());
            push(PN_GAMMA.into(), p.gamma_stat.clone().mean());
            push(PN_GAMMA_MAX.into(), p.gamma_stat.clone().max());
            push(PN_LAMBDA.into(), p.lambda.clone().mean());
        }
    }
    LayerProbes {
        names,
        values: Tensor::cat(values, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::norm::{PowerGrad, StatKind};
    use burn::tensor::{Device, TensorData};

    fn t(v: &[f32]) -> Tensor<1> {
        #[allow(deprecated)]
        let device = Device::ndarray();
        Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), &device)
    }

    #[test]
    fn probes_equal_hand_computed_values() {
        let stats = BatchStats {
            kind: StatKind::Variance,
            mean: Some(t(&[1.0, 2.0])),
            second: t(&[4.0, 1.0]),
            running_mean: Some(t(&[0.0, 0.0])),
            running_second: t(&[1.0, 1.0]),
            power: None,
        };
        let grads = GradStats {
            d_mean: Some(t(&[3.0, 4.0])),
            d_second: Some(t(&[0.0, -2.0])),
            power: None,
        };
        let p = layer_probes(&stats, Some(&grads));
        let v: Vec<f32> = p.values.into_data().try_to_vec::<f32>().unwrap();
        let got: std::collections::HashMap<_, _> = p.names.iter().cloned().zip(v).collect();
        let sqrt5 = 5f32.sqrt();
        let expect = [
            ("dist_mean", sqrt5 / 2.0),
            ("rms_dist_mean", sqrt5 / 2f32.sqrt()),
            ("rel_dist_mean", sqrt5 / 2f32.sqrt()),
            ("dist_var", 3.0 / 2.0),
            ("rms_dist_var", 3.0 / 2f32.sqrt()),
            ("rel_dist_var", 3.0 / 2f32.sqrt()),
            // |mu_B - mu_r| / sd_r = [1, 2]: median 1.5; |var_B / var_r - 1| = [3, 0]: 1.5
            ("med_rel_mean", 1.5),
            ("med_rel_var", 1.5),
            ("var_mean", 2.5),
            ("var_max", 4.0),
            ("grad_mean", 5.0 / 2.0),
            ("grad_var", 2.0 / 2.0),
        ];
        assert_eq!(got.len(), expect.len());
        for (name, want) in expect {
            assert!(
                (got[name] - want).abs() < 1e-6,
                "{name}: {} vs {want}",
                got[name]
            );
        }
    }

    #[test]
    fn medians_ignore_a_few_wide_features() {
        // nine features move by 10 %, one by a factor 100: the L2 measure follows the wide
        // one, the median the nine (ten values: the mean of the 5th and 6th)
        let mut second = vec![1.1f32; 9];
        second.push(100.0);
        let stats = BatchStats {
            kind: StatKind::Variance,
            mean: Some(t(&[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0, 3.0])),
            second: t(&second),
            running_mean: Some(t(&[0.0; 10])),
            running_second: t(&[1.0; 10]),
            power: None,
        };
        let p = layer_probes(&stats, None);
        let v: Vec<f32> = p.values.into_data().try_to_vec::<f32>().unwrap();
        let got: std::collections::HashMap<_, _> = p.names.iter().cloned().zip(v).collect();
        assert!(
            (got["med_rel_var"] - 0.1).abs() < 1e-5,
            "{}",
            got["med_rel_var"]
        );
        assert!(got["rel_dist_var"] > 30.0);
        // even length: mean of the 5th and 6th of [0 x 8, 3, 3] = 0
        assert_eq!(got["med_rel_mean"], 0.0);
    }

    #[test]
    fn power_norm_probes_use_psi2_names() {
        let stats = BatchStats {
            kind: StatKind::QuadraticMean,
            mean: None,
            second: t(&[2.0, 2.0]),
            running_mean: None,
            running_second: t(&[1.0, 1.0]),
            power: None,
        };
        let grads = GradStats {
            d_mean: None,
            d_second: None,
            power: Some(PowerGrad {
                nu: t(&[-3.0, 4.0]),
                gamma_stat: t(&[1.0, 3.0]),
                lambda: t(&[0.5, 1.5]),
            }),
        };
        let p = layer_probes(&stats, Some(&grads));
        let v: Vec<f32> = p.values.into_data().try_to_vec::<f32>().unwrap();
        let got: std::collections::HashMap<_, _> = p.names.iter().cloned().zip(v).collect();
        assert!((got["dist_psi2"] - 2f32.sqrt() / 2.0).abs() < 1e-6);
        assert!((got["med_rel_psi2"] - 1.0).abs() < 1e-6);
        assert!((got["nu_norm"] - 5.0).abs() < 1e-6);
        assert!((got["nu_max"] - 4.0).abs() < 1e-6);
        assert!((got["pn_gamma"] - 2.0).abs() < 1e-6);
        assert!((got["pn_gamma_max"] - 3.0).abs() < 1e-6);
        assert!((got["pn_lambda"] - 1.0).abs() < 1e-6);
        assert!(!got.contains_key("dist_mean"));
    }

    /// Every probe constant is a name some norm writes (a BatchNorm with its mean and both
    /// gradients; a PowerNorm with its quadratic mean and its backward state), and the report
    /// names probes only through these constants and functions, never as a string of its own:
    /// so every probe a report asks for is one that is written.
    #[test]
    fn every_probe_name_a_report_reads_is_written_by_some_norm() {
        let bn = layer_probes(
            &BatchStats {
                kind: StatKind::Variance,
                mean: Some(t(&[1.0, 2.0])),
                second: t(&[4.0, 1.0]),
                running_mean: Some(t(&[0.0, 0.0])),
                running_second: t(&[1.0, 1.0]),
                power: None,
            },
            Some(&GradStats {
                d_mean: Some(t(&[3.0, 4.0])),
                d_second: Some(t(&[0.0, -2.0])),
                power: None,
            }),
        );
        let pn = layer_probes(
            &BatchStats {
                kind: StatKind::QuadraticMean,
                mean: None,
                second: t(&[4.0, 1.0]),
                running_mean: None,
                running_second: t(&[1.0, 1.0]),
                power: None,
            },
            Some(&GradStats {
                d_mean: None,
                d_second: Some(t(&[0.0, -2.0])),
                power: Some(PowerGrad {
                    nu: t(&[-3.0, 4.0]),
                    gamma_stat: t(&[1.0, 3.0]),
                    lambda: t(&[0.5, 1.5]),
                }),
            }),
        );
        let written: std::collections::HashSet<String> =
            bn.names.into_iter().chain(pn.names).collect();
        for name in [
            DIST_MEAN,
            RMS_DIST_MEAN,
            REL_DIST_MEAN,
            MED_REL_MEAN,
            GRAD_MEAN,
            DIST_VAR,
            RMS_DIST_VAR,
            REL_DIST_VAR,
            MED_REL_VAR,
            GRAD_VAR,
            DIST_PSI2,
            REL_DIST_PSI2,
            GRAD_PSI2,
            NU_NORM,
            NU_MAX,
            PN_GAMMA,
            PN_GAMMA_MAX,
            PN_LAMBDA,
        ] {
            assert!(written.contains(name), "{name} is written by no norm");
        }
        for s in ["var", "psi2"] {
            for name in [dist(s), rms_dist(s), rel_dist(s), med_rel(s), grad(s)] {
                assert!(written.contains(&name), "{name} is written by no norm");
            }
        }
        // the report's own code (not its tests) holds no probe name as a string literal
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/report");
        let mut files = vec![root.clone()];
        let mut literals = Vec::new();
        while let Some(path) = files.pop() {
            if path.is_dir() {
                files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            if path.file_name().is_some_and(|n| n == "tests.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap();
            for name in written.iter() {
                for quoted in [format!("\"{name}\""), format!("\"{name}, ")] {
                    if code.contains(&quoted) {
                        literals.push(format!("{}: {quoted}", path.display()));
                    }
                }
            }
            let stems = ["dist_{", "rel_dist_{", "grad_{", "rms_dist_{", "med_rel_{"];
            for stem in stems {
                if code.contains(&format!("\"{stem}")) {
                    literals.push(format!("{}: \"{stem}", path.display()));
                }
            }
        }
        assert!(
            literals.is_empty(),
            "probe names written out in report code:\n{}",
            literals.join("\n")
        );
    }
}
