//! `y = x · Wᵀ` for a handful of rows of `x` on the CPU, with `W` stored
//! `[out, in]` as checkpoints keep it. Decoding multiplies one row by every
//! weight matrix, so the time goes into reading `W` once: each thread streams
//! its own band of output rows of `W` straight from memory, with no copy or
//! transpose, and dots it against every row of `x` while it is in cache.
//! General matmul kernels pack `W` first, which for one row costs more than
//! the product.

use half::{bf16, f16};
use rayon::prelude::*;

/// Output features one rayon task computes: enough work to amortise the task,
/// small enough that two cores share even the narrowest projection.
const BAND: usize = 64;

/// A weight element the kernel can read as f32.
pub trait WeightElement: Copy + Send + Sync + 'static {
    /// Dots `w` with every row of `x` (each `w.len()` long), into `out`.
    fn dot_rows(x: &[f32], w: &[Self], out: &mut [f32]);

    /// Dots one row `x` with four weight rows at once (`w` holds them back to
    /// back): four independent sums keep the FMA units and the memory system
    /// busier than one sum at a time.
    fn dot_four(x: &[f32], w: &[Self]) -> [f32; 4] {
        let k = x.len();
        let mut out = [0f32; 4];
        for (j, y) in out.iter_mut().enumerate() {
            Self::dot_rows(x, &w[j * k..(j + 1) * k], std::slice::from_mut(y));
        }
        out
    }
}

impl WeightElement for f32 {
    fn dot_rows(x: &[f32], w: &[f32], out: &mut [f32]) {
        dispatch(x, w, out, |v: f32| v)
    }

    fn dot_four(x: &[f32], w: &[f32]) -> [f32; 4] {
        dot_four_f32(x, w)
    }
}

/// bf16 is the top half of an f32: a shift the vectoriser understands.
#[inline(always)]
fn widen_bf16(v: bf16) -> f32 {
    f32::from_bits((v.to_bits() as u32) << 16)
}

impl WeightElement for bf16 {
    fn dot_rows(x: &[f32], w: &[bf16], out: &mut [f32]) {
        dispatch(x, w, out, widen_bf16)
    }
}

impl WeightElement for f16 {
    fn dot_rows(x: &[f32], w: &[f16], out: &mut [f32]) {
        // f16 → f32 is not a plain shift; widen a slice at a time (F16C where
        // the CPU has it) and dot the widened copy.
        use half::slice::HalfFloatSliceExt;
        const CHUNK: usize = 512;
        let k = w.len();
        let rows = out.len();
        out.fill(0.0);
        let mut wide = [0f32; CHUNK];
        let mut partial = [0f32; MAX_ROWS];
        for start in (0..k).step_by(CHUNK) {
            let end = (start + CHUNK).min(k);
            let wide = &mut wide[..end - start];
            w[start..end].convert_to_f32_slice(wide);
            for r in 0..rows {
                let xr = &x[r * k + start..r * k + end];
                dispatch(xr, wide, &mut partial[r..r + 1], |v: f32| v);
                out[r] += partial[r];
            }
        }
    }
}

/// The most rows of `x` the kernel takes; more rows reuse each weight enough
/// for a packing matmul to win.
pub const MAX_ROWS: usize = 8;

/// `y[r, o] = Σᵢ x[r, i] · w[o, i]` for `rows` rows of `x` (`rows × k`) and
/// `w` (`n × k`); `y` is `rows × n`.
///
/// # Panics
/// If the slice lengths do not match `rows`, `k` and `n`, or `rows` exceeds
/// [`MAX_ROWS`].
pub fn matmul_t<W: WeightElement>(x: &[f32], rows: usize, w: &[W], n: usize, y: &mut [f32]) {
    let k = x.len() / rows.max(1);
    assert!((1..=MAX_ROWS).contains(&rows), "{rows} rows");
    assert_eq!(x.len(), rows * k, "x is rows × k");
    assert_eq!(w.len(), n * k, "w is n × k");
    assert_eq!(y.len(), rows * n, "y is rows × n");
    if rows == 1 {
        y.par_chunks_mut(BAND).enumerate().for_each(|(b, ys)| {
            let first = b * BAND;
            let done = first + ys.len() / 4 * 4;
            let mut quads = ys.chunks_exact_mut(4);
            for (q, y4) in quads.by_ref().enumerate() {
                let o = first + 4 * q;
                y4.copy_from_slice(&W::dot_four(x, &w[o * k..(o + 4) * k]));
            }
            for (j, y) in quads.into_remainder().iter_mut().enumerate() {
                let o = done + j;
                W::dot_rows(x, &w[o * k..(o + 1) * k], std::slice::from_mut(y));
            }
        });
        return;
    }
    // Bands of output features, each holding its `rows` results side by side;
    // transposed into `y` at the end (rows × n values, nothing next to W).
    let mut by_feature = vec![0f32; n * rows];
    by_feature
        .par_chunks_mut(BAND * rows)
        .enumerate()
        .for_each(|(b, band)| {
            for (j, out) in band.chunks_mut(rows).enumerate() {
                let o = b * BAND + j;
                W::dot_rows(x, &w[o * k..(o + 1) * k], out);
            }
        });
    for (o, vals) in by_feature.chunks(rows).enumerate() {
        for (r, v) in vals.iter().enumerate() {
            y[r * n + o] = *v;
        }
    }
}

/// Runs the dot products with the widest vector unit the CPU has.
#[inline(always)]
fn dispatch<W: Copy>(x: &[f32], w: &[W], out: &mut [f32], widen: impl Fn(W) -> f32 + Copy) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has just been found to support AVX-512F.
            return unsafe { dot_rows_avx512(x, w, out, widen) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has just been found to support AVX2 and FMA.
            return unsafe { dot_rows_avx2(x, w, out, widen) };
        }
    }
    dot_rows_portable(x, w, out, widen)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dot_rows_avx512<W: Copy>(
    x: &[f32],
    w: &[W],
    out: &mut [f32],
    widen: impl Fn(W) -> f32 + Copy,
) {
    dot_rows_portable(x, w, out, widen)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_rows_avx2<W: Copy>(
    x: &[f32],
    w: &[W],
    out: &mut [f32],
    widen: impl Fn(W) -> f32 + Copy,
) {
    dot_rows_portable(x, w, out, widen)
}

/// Four f32 weight rows against one `x` row: AVX-512 where the CPU has it
/// (written out, since the compiler keeps the four sums in memory when left
/// to vectorise the generic loop), one row at a time elsewhere.
#[inline(always)]
fn dot_four_f32(x: &[f32], w: &[f32]) -> [f32; 4] {
    let k = x.len();
    assert_eq!(w.len(), 4 * k, "four rows of k");
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports AVX-512F, and the lengths were checked.
        return unsafe { dot_four_f32_avx512(x, w) };
    }
    std::array::from_fn(|j| {
        let mut y = 0f32;
        dispatch(
            x,
            &w[j * k..(j + 1) * k],
            std::slice::from_mut(&mut y),
            |v| v,
        );
        y
    })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dot_four_f32_avx512(x: &[f32], w: &[f32]) -> [f32; 4] {
    use std::arch::x86_64::*;
    let k = x.len();
    let body = k / 16 * 16;
    let (xp, wp) = (x.as_ptr(), w.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    while i < body {
        let xv = _mm512_loadu_ps(xp.add(i));
        for (j, a) in acc.iter_mut().enumerate() {
            *a = _mm512_fmadd_ps(xv, _mm512_loadu_ps(wp.add(j * k + i)), *a);
        }
        i += 16;
    }
    std::array::from_fn(|j| {
        let mut sum = _mm512_reduce_add_ps(acc[j]);
        for i in body..k {
            sum += x[i] * w[j * k + i];
        }
        sum
    })
}

/// Sixteen independent partial sums per row: the loop the compiler turns into
/// vector code for whatever unit the caller enabled.
#[inline(always)]
fn dot_rows_portable<W: Copy>(
    x: &[f32],
    w: &[W],
    out: &mut [f32],
    widen: impl Fn(W) -> f32 + Copy,
) {
    const LANES: usize = 16;
    let k = w.len();
    let body = k / LANES * LANES;
    for (r, y) in out.iter_mut().enumerate() {
        let xr = &x[r * k..(r + 1) * k];
        let mut acc = [0f32; LANES];
        for (xc, wc) in xr[..body]
            .chunks_exact(LANES)
            .zip(w[..body].chunks_exact(LANES))
        {
            let xc: &[f32; LANES] = xc.try_into().expect("chunks are LANES long");
            let wc: &[W; LANES] = wc.try_into().expect("chunks are LANES long");
            for ((a, &xv), &wv) in acc.iter_mut().zip(xc).zip(wc) {
                *a += xv * widen(wv);
            }
        }
        let mut sum = 0f32;
        for a in acc {
            sum += a;
        }
        for (&xv, &wv) in xr[body..].iter().zip(&w[body..]) {
            sum += xv * widen(wv);
        }
        *y = sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1) without a random-number crate.
    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).max(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn reference(x: &[f32], rows: usize, w: &[f32], n: usize) -> Vec<f64> {
        let k = x.len() / rows;
        let mut y = vec![0f64; rows * n];
        for r in 0..rows {
            for o in 0..n {
                y[r * n + o] = (0..k)
                    .map(|i| x[r * k + i] as f64 * w[o * k + i] as f64)
                    .sum();
            }
        }
        y
    }

    fn assert_close(got: &[f32], want: &[f64], k: usize, what: &str) {
        // Each product is below 1, so k of them round to within k·ε.
        let tol = k as f64 * f32::EPSILON as f64 * 4.0;
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (*g as f64 - w).abs() <= tol,
                "{what}: element {i} is {g}, expected {w}"
            );
        }
    }

    #[test]
    fn f32_weights_match_a_double_precision_product_for_awkward_shapes() {
        // k not a multiple of the vector width, n not a multiple of the band.
        for (rows, k, n) in [
            (1, 37, 5),
            (1, 50, 71),
            (1, 1536, 200),
            (3, 100, 129),
            (8, 257, 65),
        ] {
            let x = values(rows * k, 1);
            let w = values(n * k, 2);
            let mut y = vec![f32::NAN; rows * n];
            matmul_t(&x, rows, &w, n, &mut y);
            assert_close(
                &y,
                &reference(&x, rows, &w, n),
                k,
                &format!("{rows}×{k}×{n}"),
            );
        }
    }

    #[test]
    fn half_precision_weights_are_widened_exactly() {
        for (rows, k, n) in [(1, 1100, 70), (2, 1100, 70)] {
            let x = values(rows * k, 3);
            let w = values(n * k, 4);
            let w_bf: Vec<bf16> = w.iter().map(|&v| bf16::from_f32(v)).collect();
            let w_h: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect();
            let as_bf: Vec<f32> = w_bf.iter().map(|v| v.to_f32()).collect();
            let as_h: Vec<f32> = w_h.iter().map(|v| v.to_f32()).collect();
            let mut y = vec![0f32; rows * n];
            matmul_t(&x, rows, &w_bf, n, &mut y);
            assert_close(&y, &reference(&x, rows, &as_bf, n), k, "bf16");
            matmul_t(&x, rows, &w_h, n, &mut y);
            assert_close(&y, &reference(&x, rows, &as_h, n), k, "f16");
        }
    }

    #[test]
    #[should_panic(expected = "rows")]
    fn more_rows_than_the_kernel_takes_is_refused() {
        let rows = MAX_ROWS + 1;
        let mut y = vec![0f32; rows];
        matmul_t(&vec![0f32; rows * 4], rows, &[0f32; 4], 1, &mut y);
    }
}
