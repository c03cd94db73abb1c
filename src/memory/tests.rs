use super::*;
use crate::norm::NormKind;

#[test]
fn gpt3_preset_reproduces_the_published_figures() {
    let s = Shape::preset("gpt3-175b", 1, 1024).unwrap();
    let phi = s.params();
    assert_eq!(phi, 50257 * 12288 + 96 * (12 * 12288 * 12288 + 13 * 12288));
    assert!((phi as f64 / 1e9 - 174.6).abs() < 0.1, "{phi}");
    // about 350 GB of half-precision parameters
    assert_eq!(human(2 * phi), "349.2 GB");
    // 931 MB a layer, about 90 GB at S = 1024 with B = 1
    assert_eq!(s.activation_bytes_per_layer(), 931_135_488);
    assert_eq!(human(s.activation_bytes()), "89.4 GB");
    // about 3.4 TB at S = 8192
    let long = Shape::preset("gpt3-175b", 1, 8192).unwrap();
    assert_eq!(human(long.activation_bytes()), "3.4 TB");
    // 20 Phi bytes for parameters, gradients and optimizer in mixed precision, 16 of it the optimizer's
    let t = terms(&s);
    assert_eq!(t[0].mixed + t[1].mixed + t[2].mixed, 20 * phi);
    assert_eq!(t[2].mixed, 16 * phi);
    assert!(Shape::preset("gpt5", 1, 1).is_err());
}

#[test]
fn activation_term_grows_with_the_square_of_the_sequence_length() {
    let at = |seq| {
        Shape {
            name: "x".into(),
            vocab: 10,
            hidden: 64,
            layers: 2,
            heads: 4,
            batch: 3,
            seq,
        }
        .activation_bytes()
    };
    // a(S) = aS + bS^2: the second difference is constant and equals 2b
    let (a1, a2, a3) = (at(100), at(200), at(300));
    assert_eq!((a3 - a2) - (a2 - a1), 2 * 2 * 5 * 3 * 4 * 100 * 100);
    assert!(at(2000) > 90 * at(200) / 10);
}

#[test]
fn formula_plus_itemized_differences_equals_the_built_model() {
    #![allow(deprecated)]
    let device = burn::tensor::Device::ndarray();
    let vocab = 300;
    for (norm, position, d_ff, tie) in [
        (NormKind::Layer, NormPosition::Post, 128, true),
        (NormKind::Layer, NormPosition::Pre, 128, true),
        (NormKind::Rms, NormPosition::Pre, 100, false),
        (NormKind::Power, NormPosition::Pre, 128, true),
        (NormKind::None, NormPosition::Post, 64, true),
    ] {
        let config = RunConfig {
            norm,
            norm_position: position,
            d_model: 32,
            heads: 4,
            layers: 3,
            d_ff,
            tie_embeddings: tie,
            max_len: 20,
            ..Default::default()
        };
        let model = config.lm_config(vocab).init(&config.norm_config(), &device);
        let built = burn::module::Module::num_params(&model) as i64;
        let formula = Shape::of_config(&config, vocab as u64).params() as i64;
        let diff: i64 = differences(&config, vocab as u64).iter().map(|d| d.1).sum();
        assert_eq!(
            built,
            formula + diff,
            "{norm} {position:?} ff {d_ff} tie {tie}"
        );
        if norm == NormKind::Layer && position == NormPosition::Post {
            // the formula's own assumptions: only the learned positions differ
            assert_eq!(built - formula, 20 * 32);
        }
    }
}
