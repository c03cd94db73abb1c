//! A declared norm's batch statistics over its axes, shaped to broadcast over `[batch, time, d]`
//! (`[1, 1, d]` pooled over the batch, `[1, time, d]` per position). Each axis computes them
//! with the same operations as the built-in norm that takes them (so a declared twin of a
//! built-in norm agrees with it bit for bit).

use super::decl::{Axes, NormDecl, Positions, Scale};
use crate::norm::{feature_mean, masked_feature_mean, per_feature, NormCtx};
use burn::tensor::Tensor;

/// A batch's statistics, before the forward pass picks batch or running ones.
pub(super) struct Batch {
    /// The mean, where the declaration centres or takes a variance.
    pub mean: Option<Tensor<3>>,
    /// The variance or quadratic mean (`None` for `scale = "none"`).
    pub second: Option<Tensor<3>>,
    /// Positions (times features, per group) behind one statistic, for the unbiased variance.
    pub count: f64,
}

/// The running values a position falls back on when it has too few real tokens.
pub(super) struct Fallback {
    pub mean: Option<Tensor<3>>,
    pub second: Option<Tensor<3>>,
}

/// A position needs this many real tokens for batch statistics (as `position-batch`).
pub const MIN_TOKENS: f64 = crate::norm::position_batch::MIN_TOKENS;

pub(super) fn batch_statistics(
    decl: &NormDecl,
    x: Tensor<3>,
    ctx: &NormCtx,
    fallback: Fallback,
) -> Batch {
    match decl.axes {
        Axes::Position => per_position(decl, x, ctx, fallback),
        Axes::Batch | Axes::Group | Axes::Token => pooled(decl, x, ctx),
    }
}

/// Per feature over batch x time (`axes = "batch"`), or per group of features (`"group"`).
fn pooled(decl: &NormDecl, x: Tensor<3>, ctx: &NormCtx) -> Batch {
    let [b, t, d] = x.dims();
    let real = decl.positions == Some(Positions::Real);
    let groups = match decl.axes {
        Axes::Group => decl.groups.unwrap_or(1),
        _ => 1,
    };
    let feature = |v: Tensor<3>| -> Tensor<1> {
        let m = if real {
            masked_feature_mean(v, ctx)
        } else {
            feature_mean(v)
        };
        if decl.axes == Axes::Group {
            group_mean(m, groups)
        } else {
            m
        }
    };
    let mean = decl.has_mean().then(|| feature(x.clone()));
    let second = match decl.scale {
        Scale::Variance => {
            let mean = mean.clone().expect("a variance has a mean");
            Some(feature((x - per_feature(mean)).square()))
        }
        Scale::QuadraticMean => Some(feature(x.square())),
        Scale::None => None,
    };
    let n = if real { ctx.n_real } else { b * t };
    let features = if decl.axes == Axes::Group { d / groups } else { 1 };
    Batch {
        mean: mean.map(per_feature),
        second: second.map(per_feature),
        count: (n * features) as f64,
    }
}

/// The mean of each group of `d / groups` features, repeated over the group's features.
fn group_mean(v: Tensor<1>, groups: usize) -> Tensor<1> {
    let [d] = v.dims();
    v.reshape([groups, d / groups])
        .mean_dim(1)
        .repeat_dim(1, d / groups)
        .reshape([d])
}

/// Per (position, feature) over the batch's real tokens at that position (all positions with
/// `positions = "all"`); a position with fewer than [`MIN_TOKENS`] falls back on its running
/// values, as `position-batch` does.
fn per_position(decl: &NormDecl, x: Tensor<3>, ctx: &NormCtx, fallback: Fallback) -> Batch {
    let [b, t, _] = x.dims();
    let mask = match (decl.positions, ctx.mask) {
        (Some(Positions::Real), Some(m)) => m.clone(),
        _ => Tensor::ones([b, t, 1], &x.device()),
    };
    let count = mask.clone().sum_dim(0); // [1, t, 1]
    let denom = count.clone().clamp_min(1.0);
    let usable = count.greater_equal_elem(MIN_TOKENS).float();
    let unusable = usable.clone().neg().add_scalar(1.0);
    let with_fallback = |batch: Tensor<3>, running: Option<Tensor<3>>| match running {
        Some(r) => batch * usable.clone() + r * unusable.clone(),
        None => batch,
    };
    let mean = decl
        .has_mean()
        .then(|| (x.clone() * mask.clone()).sum_dim(0) / denom.clone());
    let second = match decl.scale {
        Scale::Variance => {
            let mean = mean.clone().expect("a variance has a mean");
            Some(((x - mean).square() * mask).sum_dim(0) / denom)
        }
        Scale::QuadraticMean => Some((x.square() * mask).sum_dim(0) / denom),
        Scale::None => None,
    };
    Batch {
        mean: mean.map(|m| with_fallback(m, fallback.mean)),
        second: second.map(|s| with_fallback(s, fallback.second)),
        count: b as f64,
    }
}

/// The padded rows replaced by the real-token mean of each feature (`positions = "filled"`).
pub(super) fn fill_padding(x: Tensor<3>, ctx: &NormCtx) -> Tensor<3> {
    match ctx.mask {
        Some(mask) => {
            let mean = per_feature(masked_feature_mean(x.clone(), ctx));
            x * mask.clone() + mean * mask.clone().neg().add_scalar(1.0)
        }
        None => x,
    }
}
