//! The training step's matrix products, one by one, in float32 (burn-flex's gemm, as the step
//! runs them) and with bfloat16 inputs (`--matmul-precision bf16`), on the step's real shapes.
//!
//!     cargo run --example products -- [--d 128] [--ff 512] [--layers 2] [--tokens 2048]
//!         [--real 800] [--vocab 5000] [--rounds 5]
//!
//! For every dense product of a block (QKV, output projection, the two FFN layers) and the LM
//! head, the forward product and its two backward products (the input's and the weight's
//! gradient, with the transposes the step uses) are timed through `ablate::ops::matmul` on
//! burn-flex, float32 and bfloat16 interleaved, best of `--rounds`. `tokens` is the positions of
//! a batch (padding included), `real` the non-pad tokens the LM head sees. The last lines add up
//! the products of one step (blocks times `--layers`, plus the head).

use ablate::ops::{matmul, with_bf16_products};
use burn::tensor::{Device, Tensor};
use std::time::Instant;

// the allocator of the `ablate` binary, so fresh outputs cost what they cost in a step
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Times each matrix product of a training step (forward, input gradient and weight gradient of
/// QKV, attention output, both FFN layers and the LM head) in float32 and with bfloat16 inputs.
#[derive(clap::Parser)]
#[command(name = "products")]
struct Args {
    /// Model width.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..))]
    d: u32,
    /// FFN width [default: 4 d].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    ff: Option<u32>,
    /// Blocks (each block's products count this many times in the step's total).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    layers: u32,
    /// Positions of a batch, padding included.
    #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(u32).range(1..))]
    tokens: u32,
    /// Real (non-pad) tokens, the rows of the LM head's products.
    #[arg(long, default_value_t = 800, value_parser = clap::value_parser!(u32).range(1..))]
    real: u32,
    /// Vocabulary size.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..))]
    vocab: u32,
    /// Timed calls per product and precision (the best counts).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
}

/// Best time (ms) of `rounds` calls of `op(a) op(b)`, in float32 and in bfloat16, interleaved.
fn time(a: &Tensor<2>, b: &Tensor<2>, ta: bool, tb: bool, rounds: usize) -> (f64, f64) {
    let mut best = [f64::MAX; 2];
    for _ in 0..rounds {
        for (i, bf16) in [false, true].into_iter().enumerate() {
            let start = Instant::now();
            let c = with_bf16_products(bf16, || matmul(a.clone(), b.clone(), ta, tb));
            drop(c);
            best[i] = best[i].min(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    (best[0], best[1])
}

fn main() {
    let args = <Args as clap::Parser>::parse();
    let d = args.d as usize;
    let ff = args.ff.map_or(4 * d, |f| f as usize);
    let layers = args.layers as usize;
    let n = args.tokens as usize;
    let real = args.real as usize;
    let vocab = args.vocab as usize;
    let rounds = args.rounds as usize;
    let device = Device::flex();
    let random = |rows: usize, cols: usize| {
        Tensor::<2>::random(
            [rows, cols],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        )
    };
    // (name, rows of the input, d_in, d_out, weight stored [d_out, d_in] (the tied LM head), per step)
    let products = [
        ("qkv", n, d, 3 * d, false, layers),
        ("attention out", n, d, d, false, layers),
        ("ffn in", n, d, ff, false, layers),
        ("ffn out", n, ff, d, false, layers),
        ("lm head", real, d, vocab, true, 1),
    ];
    println!(
        "products of one step on {} threads, best of {rounds}: d {d}, ffn {ff}, {layers} layers, {n} positions, {real} real tokens, vocab {vocab}",
        rayon::current_num_threads()
    );
    println!("| product | pass | m x k x n | f32 ms | bf16 ms | f32 GFLOP/s | bf16 GFLOP/s | f32 / bf16 |");
    println!("|---|---|---|---|---|---|---|---|");
    let (mut total32, mut total16) = (0.0, 0.0);
    for (name, rows, d_in, d_out, stored_t, count) in products {
        let x = random(rows, d_in);
        let w = if stored_t {
            random(d_out, d_in)
        } else {
            random(d_in, d_out)
        };
        let g = random(rows, d_out);
        // forward x W, input gradient g W^T, weight gradient x^T g (g^T x for a stored transpose)
        let passes = [
            ("forward", &x, &w, false, stored_t, (rows, d_in, d_out)),
            ("input grad", &g, &w, false, !stored_t, (rows, d_out, d_in)),
            if stored_t {
                ("weight grad", &g, &x, true, false, (d_out, rows, d_in))
            } else {
                ("weight grad", &x, &g, true, false, (d_in, rows, d_out))
            },
        ];
        for (pass, a, b, ta, tb, (m, k, nn)) in passes {
            let (t32, t16) = time(a, b, ta, tb, rounds);
            let gflop = 2.0 * (m * k * nn) as f64 / 1e9;
            println!(
                "| {name} | {pass} | {m} x {k} x {nn} | {t32:.3} | {t16:.3} | {:.0} | {:.0} | {:.2} |",
                gflop / t32 * 1e3,
                gflop / t16 * 1e3,
                t32 / t16
            );
            total32 += t32 * count as f64;
            total16 += t16 * count as f64;
        }
    }
    println!(
        "\none step's products: f32 {total32:.1} ms, bf16 {total16:.1} ms ({:.2} x)",
        total32 / total16
    );
    if let Some(peak) = fma_peak() {
        println!(
            "float32 FMA peak of this machine, measured ({} threads at once): {peak:.0} GFLOP/s",
            rayon::current_num_threads()
        );
    }
}

/// The float32 multiply-add rate of every rayon thread at once (GFLOP/s): ten independent
/// chains of 512-bit FMAs per thread, enough to keep the FMA units busy, with no memory access.
/// The ceiling for any float32 matrix product here. None without AVX-512.
fn fma_peak() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return None;
        }
        #[target_feature(enable = "avx512f")]
        unsafe fn chains(iters: usize) -> f32 {
            use std::arch::x86_64::*;
            let (b, c) = (_mm512_set1_ps(1.000_000_1), _mm512_set1_ps(-1.0e-7));
            let mut a = [_mm512_setzero_ps(); 10];
            for _ in 0..iters {
                for x in a.iter_mut() {
                    *x = _mm512_fmadd_ps(*x, b, c);
                }
            }
            a.iter().map(|&x| _mm512_reduce_add_ps(x)).sum()
        }
        let iters = 100_000_000;
        let start = Instant::now();
        // SAFETY: the CPU has AVX-512F (checked above)
        let sums = rayon::broadcast(|_| unsafe { chains(iters) });
        let s = start.elapsed().as_secs_f64();
        std::hint::black_box(sums);
        Some((rayon::current_num_threads() * iters * 10 * 32) as f64 / s / 1e9)
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}
