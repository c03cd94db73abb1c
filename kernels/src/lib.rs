//! ablate's host compute loops on `f32` slices: the bodies of the custom operations that
//! burn-flex would otherwise run element by element on one thread with scalar `expf`/`erff`.
//!
//! A separate crate so that it is always compiled with optimizations (the workspace's dev
//! profile sets opt-level 3 and no overflow checks for it; loops like these only vectorize from
//! opt-level 2 and without overflow checks), and so that its numerics are tested on their own
//! against float64 references. On x86-64 the loops also run in an AVX-512 or AVX2 copy of
//! themselves where the CPU has it (chosen at run time); no fused multiply-add is used and no
//! reduction's order follows the vector width, so every copy gives identical results.

pub mod math;

use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// A buffer written by disjoint parts from several threads (a matrix by tiles, a batch by its
/// products). Whoever shares one promises that no two tasks write the same element.
pub struct Shared<T>(pub *mut T);
// SAFETY: every task writes a part no other task writes (the users' contract, above)
unsafe impl<T> Sync for Shared<T> {}
unsafe impl<T> Send for Shared<T> {}

impl<T> Shared<T> {
    /// A pointer to element `i` (a method, so that closures capture the whole `Shared`).
    pub fn at(&self, i: usize) -> *mut T {
        self.0.wrapping_add(i)
    }
}

/// Runs `f` on matching chunks of `x` and `out`, over the rayon pool.
fn zip_chunks(x: &[f32], out: &mut [f32], f: impl Fn(&[f32], &mut [f32]) + Sync) {
    assert_eq!(x.len(), out.len());
    out.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(o, x)| f(x, o));
}

/// Calls `$body` (a block using the slices) compiled for AVX2 when the CPU has it.
///
/// `dispatch!(wide (...) -> ... { ... })` also has an AVX-512 copy (F, DQ and VL: 64-bit vector
/// multiplies, which the dropout hash needs to vectorize), taken first where the CPU has it.
/// Only for element-wise loops: each element's arithmetic is the same in every copy (no
/// reduction whose order would follow the vector width, no fused multiply-add), so all give the
/// same bits.
macro_rules! dispatch {
    (( $($arg:ident : $ty:ty),* ) -> $ret:ty $body:block) => {
        #[inline(always)]
        fn generic($($arg: $ty),*) -> $ret $body
        dispatch!(@avx2 ($($arg: $ty),*) -> $ret);
    };
    (wide ( $($arg:ident : $ty:ty),* ) -> $ret:ty $body:block) => {
        #[inline(always)]
        fn generic($($arg: $ty),*) -> $ret $body
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx512dq,avx512vl,avx2")]
        unsafe fn avx512($($arg: $ty),*) -> $ret { generic($($arg),*) }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            // SAFETY: the CPU has these features.
            return unsafe { avx512($($arg),*) };
        }
        dispatch!(@avx2 ($($arg: $ty),*) -> $ret);
    };
    // the AVX2 copy where the CPU has it, else the baseline one (`generic`, defined above)
    (@avx2 ( $($arg:ident : $ty:ty),* ) -> $ret:ty) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        unsafe fn avx2($($arg: $ty),*) -> $ret { generic($($arg),*) }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            return unsafe { avx2($($arg),*) };
        }
        return generic($($arg),*);
    };
}

// after `dispatch!`, which it uses
pub mod bf16;

/// GELU, `0.5 x (1 + erf(x / sqrt 2))`, of every element of `x`, in a new vector (written
/// once, never zeroed first).
pub fn gelu(x: &[f32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    out.spare_capacity_mut()[..x.len()]
        .par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(out, x)| {
            fn run(x: &[f32], out: &mut [MaybeUninit<f32>]) {
                dispatch!(wide (x: &[f32], out: &mut [MaybeUninit<f32>]) -> () {
                    for (o, &v) in out.iter_mut().zip(x) {
                        o.write(0.5 * v * (1.0 + math::erf(v * std::f32::consts::FRAC_1_SQRT_2)));
                    }
                });
            }
            run(x, out)
        });
    // SAFETY: the chunks cover the first x.len() elements, and each was written above
    unsafe { out.set_len(x.len()) };
    out
}

/// The gradient of [`gelu`] at `x` times `grad`, into `grad` (in place):
/// `g (Phi(x) + x phi(x))` with `Phi` the normal distribution function and `phi` its density.
pub fn gelu_backward(x: &[f32], grad: &mut [f32]) {
    zip_chunks(x, grad, |x, grad| {
        fn run(x: &[f32], grad: &mut [f32]) {
            dispatch!(wide (x: &[f32], grad: &mut [f32]) -> () {
                const INV_SQRT_2PI: f32 = 0.398_942_3;
                for (g, &v) in grad.iter_mut().zip(x) {
                    let cdf = 0.5 * (1.0 + math::erf(v * std::f32::consts::FRAC_1_SQRT_2));
                    let pdf = INV_SQRT_2PI * math::exp(-0.5 * v * v);
                    *g *= cdf + v * pdf;
                }
            });
        }
        run(x, grad)
    });
}

/// Rows per parallel task of the row-wise kernels.
const ROWS: usize = 16;

/// For each row of `logits` (`[n, v]`, row-major): its log-sum-exp, and the cross-entropy
/// `lse - logits[target]`. Returns `(lse, loss)`, each of length `n`.
pub fn cross_entropy_rows(logits: &[f32], v: usize, targets: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let n = targets.len();
    assert_eq!(logits.len(), n * v);
    let mut lse = vec![0.0f32; n];
    let mut loss = vec![0.0f32; n];
    lse.par_chunks_mut(ROWS)
        .zip(loss.par_chunks_mut(ROWS))
        .enumerate()
        .for_each(|(c, (lse, loss))| {
            for k in 0..lse.len() {
                let r = c * ROWS + k;
                let row = &logits[r * v..][..v];
                lse[k] = log_sum_exp(row);
                loss[k] = lse[k] - row[targets[r]];
            }
        });
    (lse, loss)
}

fn log_sum_exp(row: &[f32]) -> f32 {
    dispatch!(wide (row: &[f32]) -> f32 {
        let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        // eight partial sums: a vectorizable reduction with a fixed order
        let mut acc = [0.0f32; 8];
        let mut chunks = row.chunks_exact(8);
        for c in &mut chunks {
            for j in 0..8 {
                acc[j] += math::exp(c[j] - m);
            }
        }
        let mut sum: f32 = chunks.remainder().iter().map(|&z| math::exp(z - m)).sum();
        sum += acc.iter().sum::<f32>();
        m + sum.ln()
    });
}

/// In place on `logits` (`[n, v]`): `(softmax(row) - onehot(target)) * scale`, the gradient of
/// the mean cross-entropy when `scale = g / n`. `lse` is [`cross_entropy_rows`]'s.
pub fn cross_entropy_backward(
    logits: &mut [f32],
    v: usize,
    lse: &[f32],
    targets: &[usize],
    scale: f32,
) {
    assert_eq!(logits.len(), targets.len() * v);
    logits
        .par_chunks_mut(ROWS * v)
        .enumerate()
        .for_each(|(c, rows)| {
            for (k, row) in rows.chunks_mut(v).enumerate() {
                let r = c * ROWS + k;
                softmax_scaled(row, lse[r], scale);
                row[targets[r]] -= scale;
            }
        });
}

fn softmax_scaled(row: &mut [f32], lse: f32, scale: f32) {
    dispatch!(wide (row: &mut [f32], lse: f32, scale: f32) -> () {
        for z in row.iter_mut() {
            *z = math::exp(*z - lse) * scale;
        }
    });
}

/// Attention weights, in place: each row of `scores` (`[batch, heads, t, t]`, row-major) becomes
/// `softmax(scale * row + bias_row)`, where the bias (`[batch, 1, t, t]`) is shared by the heads.
pub fn attention_softmax(scores: &mut [f32], bias: &[f32], heads: usize, t: usize, scale: f32) {
    assert_eq!(scores.len(), bias.len() * heads);
    scores
        .par_chunks_mut(ROWS * t)
        .enumerate()
        .for_each(|(c, block)| softmax_rows(bias, heads, t, scale, c * ROWS, block));
}

/// Rows `first..` of [`attention_softmax`], in place (whole rows).
fn softmax_rows(bias: &[f32], heads: usize, t: usize, scale: f32, first: usize, rows: &mut [f32]) {
    dispatch!(wide (bias: &[f32], heads: usize, t: usize, scale: f32, first: usize, rows: &mut [f32]) -> () {
        for (k, row) in rows.chunks_mut(t).enumerate() {
            let r = first + k;
            // row r is (batch b, head, query i): its bias row is (b, i)
            let (b, i) = (r / (heads * t), r % t);
            for (o, &b) in row.iter_mut().zip(&bias[(b * t + i) * t..][..t]) {
                *o = *o * scale + b;
            }
            let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            for o in row.iter_mut() {
                *o = math::exp(*o - m);
            }
            // summed in order in a loop of its own: fused with the exponentials, the in-order
            // sum kept them scalar
            let sum = row.iter().fold(0.0f32, |sum, &o| sum + o);
            let inv = 1.0 / sum;
            for o in row.iter_mut() {
                *o *= inv;
            }
        }
    });
}

/// The gradient of [`attention_softmax`] with respect to the scores, in place on `grad`
/// (`dL/dp`, same shape as the weights `p`): `scale * p * (grad - sum(grad * p))` per row.
pub fn attention_softmax_backward(p: &[f32], grad: &mut [f32], t: usize, scale: f32) {
    assert_eq!(p.len(), grad.len());
    grad.par_chunks_mut(ROWS * t)
        .zip(p.par_chunks(ROWS * t))
        .for_each(|(g, p)| softmax_rows_backward(p, g, t, scale));
}

fn softmax_rows_backward(p: &[f32], g: &mut [f32], t: usize, scale: f32) {
    dispatch!((p: &[f32], g: &mut [f32], t: usize, scale: f32) -> () {
        for (g, p) in g.chunks_mut(t).zip(p.chunks(t)) {
            let dot: f32 = g.iter().zip(p).map(|(g, p)| g * p).sum();
            for (g, &p) in g.iter_mut().zip(p) {
                *g = scale * p * (*g - dot);
            }
        }
    });
}

/// SplitMix64's output function: a bijective mixer whose outputs on consecutive inputs pass
/// BigCrush (Steele, Lea and Flood 2014).
#[inline(always)]
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The golden-ratio increment of SplitMix64.
pub const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// Whether dropout keeps element `i`: the top 32 bits of `mix(key ^ i * GOLDEN)` are at least
/// `threshold` (`prob * 2^32`).
#[inline(always)]
fn kept(key: u64, i: u64, threshold: u64) -> bool {
    mix(key ^ i.wrapping_mul(GOLDEN)) >> 32 >= threshold
}

fn threshold(prob: f64) -> u64 {
    (prob * 4_294_967_296.0).round() as u64
}

/// `x[j] *= keep` where dropout keeps element `base + j`, else `x[j] = 0`: branch-free, so that
/// the hash of a whole vector of indices is computed at once.
fn dropout_chunk(key: u64, base: u64, threshold: u64, keep: f32, x: &mut [f32]) {
    dispatch!(wide (key: u64, base: u64, threshold: u64, keep: f32, x: &mut [f32]) -> () {
        for (j, v) in x.iter_mut().enumerate() {
            let product = *v * keep;
            *v = if kept(key, base + j as u64, threshold) { product } else { 0.0 };
        }
    });
}

/// A dropout mask: element `i` is `0` (dropped) when the top 32 bits of
/// `mix(key ^ i * GOLDEN)` fall below `prob * 2^32`, else `1 / (1 - prob)`.
pub fn dropout_mask(key: u64, n: usize, prob: f64) -> Vec<f32> {
    let mut mask = vec![1.0f32; n];
    dropout(key, prob, &mut mask);
    mask
}

/// `x` times [`dropout_mask`]`(key, x.len(), prob)`, in place, without building the mask.
/// Also the backward pass: the gradient times the same mask.
pub fn dropout(key: u64, prob: f64, x: &mut [f32]) {
    let threshold = threshold(prob);
    let keep = (1.0 / (1.0 - prob)) as f32;
    x.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, x)| dropout_chunk(key, (c * CHUNK) as u64, threshold, keep, x));
}

/// The scalars of one Adam step, computed as burn-optim 0.22's `Adam` computes them (float32).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamScalars {
    pub beta_1: f32,
    pub beta_2: f32,
    /// `1 - beta_1`
    pub one_minus_beta_1: f32,
    /// `1 - beta_2`
    pub one_minus_beta_2: f32,
    /// `sqrt(1 - beta_2^t) / (1 - beta_1^t)`
    pub combined_factor: f32,
    /// `epsilon * sqrt(1 - beta_2^t)`
    pub epsilon: f32,
    /// the learning rate, rounded to float32 as Burn's `mul_scalar` rounds it
    pub lr: f32,
    /// the first step (`t = 1`): the moments start from the gradient alone
    pub first: bool,
}

/// One Adam step in place, element by element in Burn's order of operations (so with the same
/// bits as burn-optim's tensor version): `m = m b1 + g (1 - b1)` (`g (1 - b1)` on the first
/// step), `v = v b2 + g² (1 - b2)`, `p = p - (m cf / (sqrt(v) + eps)) lr`.
pub fn adam(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: AdamScalars) {
    assert!(g.len() == p.len() && m.len() == p.len() && v.len() == p.len());
    p.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK)))
        .for_each(|((p, g), (m, v))| adam_chunk(p, g, m, v, k));
}

fn adam_chunk(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: AdamScalars) {
    dispatch!(wide (p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: AdamScalars) -> () {
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            let (gm, gv) = (g * k.one_minus_beta_1, (g * g) * k.one_minus_beta_2);
            (*m, *v) = if k.first { (gm, gv) } else { (*m * k.beta_1 + gm, *v * k.beta_2 + gv) };
            *p -= ((*m * k.combined_factor) / (v.sqrt() + k.epsilon)) * k.lr;
        }
    });
}

#[cfg(test)]
mod tests;
