//! Matrix products with bfloat16 inputs and float32 accumulation: `c = op(a) · op(b)` where every
//! element of `a` and `b` is first rounded to bfloat16 (round to nearest even), the products of
//! those are exact in float32, and the sums are float32.
//!
//! This is the opt-in reduced-precision mode of the CPU step (`matmul_precision = "bf16"`):
//! CPUs with AVX512_BF16 multiply-add 32 bfloat16 pairs per instruction (`vdpbf16ps`), twice the
//! products of a float32 fused multiply-add of the same width. Elsewhere a portable kernel
//! computes the same products (slower than float32; the mode is meant for CPUs that have it).
//!
//! The structure is the usual one for a matrix-product kernel: both operands are packed once per
//! call into bfloat16 pairs (`a` in panels of [`MR`] rows, `b` in panels of [`NR`] columns, two
//! consecutive `k` in each 32-bit word, the even one in the low half as `vdpbf16ps` pairs them),
//! each read in the order it lies in memory, into buffers kept per thread; then tiles of `c` are
//! computed in parallel over rayon, each as blocks of `KCP` depth pairs of an `MR x NR`
//! micro-kernel that keeps its accumulators in registers. Measured on the step's shapes:
//! `cargo run --example products` and benches/RESULTS.md.

use crate::Shared;
use rayon::prelude::*;

/// Rows of `c` one micro-kernel call computes (accumulators: `MR x 2` vector registers).
pub const MR: usize = 12;
/// Columns of `c` one micro-kernel call computes: two vectors of 16 float32.
pub const NR: usize = 32;
/// `k`-pairs per block: a packed `b` panel block (`KCP x NR` words, 16 KiB) stays in L1.
const KCP: usize = 128;
/// Row panels and column panels per parallel tile (48 x 128 elements of `c`): small enough that
/// the weight gradients (`d x d_ff` matrices) still split into a dozen tasks.
const TILE_M: usize = 4;
const TILE_N: usize = 4;

/// `x` rounded to bfloat16 (to nearest, ties to even), as its 16 bits.
#[inline(always)]
pub fn to_bf16(x: f32) -> u16 {
    // branch-free, so that packing loops vectorize
    let b = x.to_bits();
    let rounded = b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16;
    // a NaN stays a NaN (quiet) whatever its payload
    let nan = (b & 0x7fff_ffff) > 0x7f80_0000;
    (if nan { (b >> 16) | 0x40 } else { rounded }) as u16
}

/// The float32 value of bfloat16 bits.
#[inline(always)]
pub fn from_bf16(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

#[inline(always)]
fn pair(even: f32, odd: f32) -> u32 {
    to_bf16(even) as u32 | (to_bf16(odd) as u32) << 16
}

/// Packs an operand of `count` lines whose element (line `x`, depth `kk`) is
/// `src[x * xs + kk * ks]`, where one of the strides is 1 (the operands are row-major), into
/// panels of `width` lines (`kp * width` words each): word `q * width + x` of panel `p` holds
/// line `p * width + x`'s depths `2q` (low half) and `2q + 1` (zero past `k`); lines past
/// `count` are zero. Every word of `out` is written, so it may hold anything before.
fn pack(src: &[f32], xs: usize, ks: usize, count: usize, k: usize, out: &mut [u32], width: usize) {
    let kp = k.div_ceil(2);
    let panels = count.div_ceil(width);
    assert_eq!(out.len(), panels * kp * width);
    if xs == 1 {
        // each depth's lines are contiguous: tasks take blocks of depth pairs, convert their
        // rows whole (in order, in full vectors), then copy a slice to every panel
        const PAIRS: usize = 8;
        let dst = Shared(out.as_mut_ptr());
        (0..kp.div_ceil(PAIRS)).into_par_iter().for_each(|blk| {
            let mut row = vec![0u32; panels * width];
            for q in blk * PAIRS..((blk + 1) * PAIRS).min(kp) {
                let even = &src[2 * q * ks..][..count];
                let odd = (2 * q + 1 < k).then(|| &src[(2 * q + 1) * ks..][..count]);
                // zero past `count`: the last panel's missing lines
                pair_lines(even, odd, &mut row);
                for (p, part) in row.chunks_exact(width).enumerate() {
                    // SAFETY: word q of each panel belongs to this task's depth pairs alone
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            part.as_ptr(),
                            dst.at((p * kp + q) * width),
                            width,
                        )
                    };
                }
            }
        });
    } else {
        // each line is contiguous in depth: a task per panel converts its lines, then spreads
        // their words
        out.par_chunks_mut(kp * width)
            .enumerate()
            .for_each(|(p, panel)| {
                let lines = width.min(count - p * width);
                pack_depth_lines(&src[p * width * xs..], xs, lines, k, panel, width)
            });
    }
}

/// `words[x] = pair(even[x], odd[x])` (odd: zeros when `None`), then zeros to the end.
fn pair_lines(even: &[f32], odd: Option<&[f32]>, words: &mut [u32]) {
    dispatch!(wide (even: &[f32], odd: Option<&[f32]>, words: &mut [u32]) -> () {
        match odd {
            Some(odd) => {
                for ((w, &e), &o) in words.iter_mut().zip(even).zip(odd) {
                    *w = pair(e, o);
                }
            }
            None => {
                for (w, &e) in words.iter_mut().zip(even) {
                    *w = pair(e, 0.0);
                }
            }
        }
        words[even.len()..].fill(0);
    });
}

/// One panel of an operand whose lines are contiguous in depth: line `x` (of `lines`, then
/// zeros up to `width`) starts at `src[x * xs]`.
fn pack_depth_lines(src: &[f32], xs: usize, lines: usize, k: usize, out: &mut [u32], width: usize) {
    dispatch!(wide (src: &[f32], xs: usize, lines: usize, k: usize, out: &mut [u32], width: usize) -> () {
        let kp = k.div_ceil(2);
        let mut words = [0u32; 256];
        for x in 0..width {
            for q0 in (0..kp).step_by(words.len()) {
                let n = words.len().min(kp - q0);
                if x < lines {
                    let line = &src[x * xs + 2 * q0..][..(2 * n).min(k - 2 * q0)];
                    line_words(line, &mut words[..n]);
                } else {
                    words[..n].fill(0);
                }
                for (q, &w) in words[..n].iter().enumerate() {
                    out[(q0 + q) * width + x] = w;
                }
            }
        }
    });
}

/// `line` (consecutive depths) as pair words: word `q` holds depths `2q` and `2q + 1` (zero
/// past the end).
#[inline(always)]
fn line_words(line: &[f32], words: &mut [u32]) {
    let full = line.len() / 2;
    for (w, two) in words.iter_mut().zip(line.chunks_exact(2)) {
        *w = pair(two[0], two[1]);
    }
    if line.len() % 2 == 1 {
        words[full] = pair(line[line.len() - 1], 0.0);
    }
}

/// Which micro-kernel computes the products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// `vdpbf16ps` (AVX512_BF16).
    Native,
    /// Plain float32 arithmetic on the bfloat16 values, for CPUs without AVX512_BF16.
    Portable,
}

/// Whether this CPU multiplies bfloat16 natively (AVX512_BF16), which is what makes the mode
/// faster than float32.
pub fn native_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `op(a) · op(b)` into a new `m x n` row-major matrix, with bfloat16 products (see the module
/// documentation). `a` is row-major `[m, k]` (`[k, m]` when `ta`), `b` is `[k, n]` (`[n, k]`
/// when `tb`). The native kernel where the CPU has one, else the portable one.
pub fn matmul_bf16(
    a: &[f32],
    b: &[f32],
    (m, k, n): (usize, usize, usize),
    ta: bool,
    tb: bool,
) -> Vec<f32> {
    let kernel = if native_available() {
        Kernel::Native
    } else {
        Kernel::Portable
    };
    matmul_bf16_with(kernel, a, b, (m, k, n), ta, tb)
}

/// [`matmul_bf16`] with a chosen kernel (`Native` panics where the CPU lacks AVX512_BF16).
pub fn matmul_bf16_with(
    kernel: Kernel,
    a: &[f32],
    b: &[f32],
    (m, k, n): (usize, usize, usize),
    ta: bool,
    tb: bool,
) -> Vec<f32> {
    assert_eq!(a.len(), m * k, "a has {} elements, not {m} x {k}", a.len());
    assert_eq!(b.len(), k * n, "b has {} elements, not {k} x {n}", b.len());
    assert!(
        kernel == Kernel::Portable || native_available(),
        "this CPU has no AVX512_BF16"
    );
    if m == 0 || n == 0 || k == 0 {
        return vec![0.0; m * n];
    }
    let kp = k.div_ceil(2);
    // element (i, kk) of op(a) is a[i * ars + kk * acs]; (kk, j) of op(b) is b[kk * brs + j * bcs]
    let (ars, acs) = if ta { (1, m) } else { (k, 1) };
    let (brs, bcs) = if tb { (1, k) } else { (n, 1) };
    let row_panels = m.div_ceil(MR);
    let col_panels = n.div_ceil(NR);
    with_buffers(row_panels * kp * MR, col_panels * kp * NR, |pa, pb| {
        pack(a, ars, acs, m, k, pa, MR);
        pack(b, bcs, brs, n, k, pb, NR);

        // every element of c is written by the first depth block before any block adds to it
        let mut c = Vec::<f32>::with_capacity(m * n);
        // parallel tiles of TILE_M row panels x TILE_N column panels; each task writes only its
        // own rectangle of c
        let out = Shared(c.as_mut_ptr());
        let (row_tiles, col_tiles) = (row_panels.div_ceil(TILE_M), col_panels.div_ceil(TILE_N));
        (0..row_tiles * col_tiles).into_par_iter().for_each(|t| {
            let (rt, ct) = (t / col_tiles, t % col_tiles);
            let rps = rt * TILE_M..((rt + 1) * TILE_M).min(row_panels);
            let cps = ct * TILE_N..((ct + 1) * TILE_N).min(col_panels);
            for q0 in (0..kp).step_by(KCP) {
                let depth = KCP.min(kp - q0);
                for cp in cps.clone() {
                    let bp = &pb[(cp * kp + q0) * NR..];
                    let cols = NR.min(n - cp * NR);
                    for rp in rps.clone() {
                        let ap = &pa[(rp * kp + q0) * MR..];
                        let rows = MR.min(m - rp * MR);
                        // SAFETY: rows rp*MR.. and columns cp*NR.. of c (clipped to m, n) lie
                        // in this task's tile, which no other task touches; the first block
                        // (q0 = 0) writes them before later blocks read and add
                        unsafe {
                            micro(
                                kernel,
                                depth,
                                ap,
                                bp,
                                out.at(rp * MR * n + cp * NR),
                                n,
                                rows,
                                cols,
                                q0 > 0,
                            )
                        };
                    }
                }
            }
        });
        // SAFETY: the tiles cover every element of the m x n matrix and wrote each
        unsafe { c.set_len(m * n) };
        c
    })
}

/// Writes (`add`: adds) the `rows x cols` corner of the `MR x NR` product of one `depth`-pair
/// block of packed panels to `c` (row stride `ldc`). The first block writes rather than adds,
/// so the output needs no zeroing first.
///
/// # Safety
/// `c` must be valid for writes of `rows` rows of `cols` elements at stride `ldc`, and for
/// reads too (initialized) when `add`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn micro(
    kernel: Kernel,
    depth: usize,
    a: &[u32],
    b: &[u32],
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    add: bool,
) {
    assert!(a.len() >= depth * MR && b.len() >= depth * NR && rows <= MR && cols <= NR);
    let mut tile = [0.0f32; MR * NR];
    match kernel {
        #[cfg(target_arch = "x86_64")]
        Kernel::Native => {
            // SAFETY: `matmul_bf16_with` checked that the CPU has AVX512F and AVX512_BF16; the
            // assert above bounds every read
            unsafe { native(depth, a.as_ptr(), b.as_ptr(), &mut tile) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        Kernel::Native => unreachable!("checked by matmul_bf16_with"),
        Kernel::Portable => portable(depth, a, b, &mut tile),
    }
    for r in 0..rows {
        let part = &tile[r * NR..r * NR + cols];
        // SAFETY: the caller's contract
        unsafe {
            let row = c.add(r * ldc);
            if add {
                for (o, v) in std::slice::from_raw_parts_mut(row, cols)
                    .iter_mut()
                    .zip(part)
                {
                    *o += v;
                }
            } else {
                std::ptr::copy_nonoverlapping(part.as_ptr(), row, cols);
            }
        }
    }
}

thread_local! {
    /// The packed operands of the last product on this thread, kept for the next one: packing
    /// overwrites every word, so they need no zeroing, and their pages stay mapped.
    static PACKED: std::cell::RefCell<(Vec<u32>, Vec<u32>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// Runs `f` on packing buffers of `la` and `lb` words (contents unspecified): this thread's
/// kept ones, or fresh ones if those are in use (a product started inside another's wait).
fn with_buffers<R>(la: usize, lb: usize, f: impl FnOnce(&mut [u32], &mut [u32]) -> R) -> R {
    PACKED.with(|cell| match cell.try_borrow_mut() {
        Ok(mut kept) => {
            let (pa, pb) = &mut *kept;
            if pa.len() < la {
                pa.resize(la, 0);
            }
            if pb.len() < lb {
                pb.resize(lb, 0);
            }
            f(&mut pa[..la], &mut pb[..lb])
        }
        Err(_) => f(&mut vec![0; la], &mut vec![0; lb]),
    })
}

/// The portable micro-kernel: `tile = a_panel · b_panel` over `depth` pairs, in float32 (the
/// product of two bfloat16 is exact in float32).
fn portable(depth: usize, a: &[u32], b: &[u32], tile: &mut [f32; MR * NR]) {
    for q in 0..depth {
        let bq = &b[q * NR..(q + 1) * NR];
        for r in 0..MR {
            let w = a[q * MR + r];
            let (ae, ao) = (from_bf16(w as u16), from_bf16((w >> 16) as u16));
            let out = &mut tile[r * NR..(r + 1) * NR];
            for (o, &v) in out.iter_mut().zip(bq) {
                *o += ae * from_bf16(v as u16) + ao * from_bf16((v >> 16) as u16);
            }
        }
    }
}

/// The AVX512_BF16 micro-kernel: `MR x 2` accumulators, per `k`-pair two loads of `b` and, per
/// row, one broadcast of `a`'s pair and two `vdpbf16ps`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn native(depth: usize, a: *const u32, b: *const u32, tile: &mut [f32; MR * NR]) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    for q in 0..depth {
        let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(q * NR).cast()));
        let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(q * NR + 16).cast()));
        for (r, acc) in acc.iter_mut().enumerate() {
            let w: __m512bh = std::mem::transmute(_mm512_set1_epi32(*a.add(q * MR + r) as i32));
            acc[0] = _mm512_dpbf16_ps(acc[0], w, b0);
            acc[1] = _mm512_dpbf16_ps(acc[1], w, b1);
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        _mm512_storeu_ps(tile.as_mut_ptr().add(r * NR), acc[0]);
        _mm512_storeu_ps(tile.as_mut_ptr().add(r * NR + 16), acc[1]);
    }
}
