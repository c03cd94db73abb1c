//! The position claim: per-position statistics against pooled ones and the two controls.

use super::*;

/// Per-position against pooled BatchNorm statistics, and against the control: random groups of
/// real tokens with the same sizes (`random-group-batch`).
pub(super) fn position(runs: &[RunResult]) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for p in text_runs(runs, NormKind::PositionBatch) {
        let pooled = matching(runs, &p.config, |w| w.norm = NormKind::MaskedBatch);
        let per = matching(runs, &p.config, |w| w.norm = NormKind::PositionBatch);
        let control = matching(runs, &p.config, |w| w.norm = NormKind::RandomGroupBatch);
        let pooled_first = matching(runs, &p.config, |w| {
            w.norm = NormKind::PositionBatchPooledFirst
        });
        if pooled.is_empty() || !seen.insert(p.config.bucket_pool) {
            continue;
        }
        let (pl, ml, cl) = (
            final_losses(&per),
            final_losses(&pooled),
            final_losses(&control),
        );
        let c = compare("per-position", &pl, "pooled", &ml);
        let (pt, mt) = (
            final_train_mode_losses(&per),
            final_train_mode_losses(&pooled),
        );
        let train_c = compare("per-position", &pt, "pooled", &mt);
        let mut text = format!(
            "Claim: tokens at the same position of different sentences are unrelated, so per-position batch statistics \
             help nothing. Final validation loss (evaluation mode, running statistics): per-position BN {}, pooled \
             (masked) BN {}",
            pm_seeds(&pl),
            pm_seeds(&ml)
        );
        if !cl.is_empty() {
            text += &format!(
                ", random groups of the same sizes (the control) {}",
                pm_seeds(&cl)
            );
        }
        text += &format!(
            ". In training mode (each batch's own statistics): per-position {}, pooled {}; {}.\n{}",
            pm_seeds(&pt),
            pm_seeds(&mt),
            train_c.estimate,
            claim_verdict(
                "per-position statistics do worse than pooled ones, final validation loss in evaluation mode",
                &c,
                "worse when the interval of per-position − pooled lies above 0, better below 0, not resolved when it contains 0",
                ["worse than pooled", "better than pooled", "not resolved"],
                None,
            )
        );
        text += &control_verdict(&pl, &cl);
        text += &position0_verdict(&final_losses(&pooled_first), &ml);
        out.push(text);
    }
    out
}

/// The control: per-position against random groups of real tokens with the positions' sizes, or
/// why the claim is not tested without it.
fn control_verdict(pl: &[f64], cl: &[f64]) -> String {
    if cl.is_empty() {
        "\n- Without the control (`random-group-batch`: random groups of real tokens with the sizes of the \
                 positions) a worse loss may come from the small groups alone: the claim is not tested by this \
                 comparison."
            .to_string()
    } else {
        let vs = compare("per-position", pl, "random groups", cl);
        format!(
            "\n{}",
            claim_verdict(
                "positions carry no shared statistics: final validation loss in evaluation mode, per-position − random groups of the same sizes (unrelated positions predict no difference; related ones, per-position better)",
                &vs,
                "contradicted when the interval lies below 0 (position grouping beats chance grouping); consistent when it contains 0; above 0, position grouping is worse than chance (something about positions hurts, e.g. position 0 is the same <bos> everywhere)",
                [
                    "consistent, and position grouping is worse than chance",
                    "contradicted (position grouping beats chance grouping)",
                    "consistent (no difference from chance grouping)",
                ],
                None,
            )
        )
    }
}

/// Whether position 0 (the same <bos> everywhere) explains per-position BN's deficit: its
/// variant with position 0 pooled against pooled BN, when the study has it.
fn position0_verdict(fl: &[f64], ml: &[f64]) -> String {
    if fl.is_empty() {
        return String::new();
    }
    let vs = compare("position 0 pooled", fl, "pooled", ml);
    format!(
        "\n{}",
        claim_verdict(
            "position 0 (the same <bos> in every sentence, a group without variance) explains per-position BN's deficit: final validation loss in evaluation mode, per-position with position 0 pooled over all real tokens − pooled",
            &vs,
            "not explained when the interval lies above 0 (still worse than pooled without position 0's group); explained when it contains 0; below 0, better than pooled",
            [
                "not explained by position 0",
                "explained, and better than pooled",
                "explained (no difference from pooled once position 0 is pooled)",
            ],
            None,
        )
    )
}
