//! Softmax over the last dimension. On the CPU in f32 it runs a vectorisable
//! `exp` (Cephes' polynomial, within 2 ulp of the exact value) instead of one
//! libm call per element: attention over a large image computes tens of
//! millions of them per block, which made the vision tower slower than
//! torch's vectorised kernels. Other devices and dtypes use candle's kernel.

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    match (x.device(), x.dtype()) {
        (Device::Cpu, DType::F32) => x.contiguous()?.apply_op1_no_bwd(&CpuSoftmax),
        _ => candle_nn::ops::softmax_last_dim(x),
    }
}

struct CpuSoftmax;

impl CustomOp1 for CpuSoftmax {
    fn name(&self) -> &'static str {
        "cpu-softmax-last-dim"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let row = layout.dims().last().copied().unwrap_or(1).max(1);
        map_in_parallel(storage, layout, "softmax", row, softmax_row)
    }
}

/// `f` over a contiguous f32 CPU tensor, `chunk` elements at a time in
/// parallel, into a new tensor of the same shape; `what` names the op in
/// its errors.
pub(crate) fn map_in_parallel(
    storage: &CpuStorage,
    layout: &Layout,
    what: &str,
    chunk: usize,
    f: impl Fn(&[f32], &mut [f32]) + Sync + Send,
) -> Result<(CpuStorage, Shape)> {
    let CpuStorage::F32(all) = storage else {
        candle_core::bail!("the CPU {what} takes f32 only");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("the CPU {what} needs a contiguous input");
    };
    let src = &all[start..end];
    let mut dst = vec![0f32; src.len()];
    dst.par_chunks_mut(chunk)
        .zip(src.par_chunks(chunk))
        .for_each(|(d, s)| f(s, d));
    Ok((CpuStorage::F32(dst), layout.shape().clone()))
}

fn softmax_row(src: &[f32], dst: &mut [f32]) {
    dst.copy_from_slice(src);
    softmax_in_place(dst);
}

/// The softmax of `row`, written over it.
pub(crate) fn softmax_in_place(row: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has just been seen to support it.
        unsafe { softmax_in_place_avx512(row) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has just been seen to support both features.
        unsafe { softmax_in_place_avx2(row) };
        return;
    }
    softmax_in_place_portable(row);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_in_place_avx2(row: &mut [f32]) {
    softmax_in_place_portable(row)
}

/// The same loops in 16 lanes: the same operations on each element, so the
/// same results.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn softmax_in_place_avx512(row: &mut [f32]) {
    softmax_in_place_portable(row)
}

/// Written so the compiler vectorises each loop (no calls, no branches).
#[inline(always)]
fn softmax_in_place_portable(row: &mut [f32]) {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    if max == f32::NEG_INFINITY {
        // Nothing visible: torch gives NaN, and so does this.
        row.fill(f32::NAN);
        return;
    }
    let sum = exp_and_sum(row, max);
    let inv = 1.0 / sum;
    for d in row.iter_mut() {
        *d *= inv;
    }
}

/// Writes `exp(x - max)` over each `x` of `row` and returns their sum,
/// summed in sixteen interleaved lanes as they are made. A separate pass
/// over eight lanes waited on its one chain of additions; this took a tenth
/// off the vision tower's softmax.
#[inline(always)]
fn exp_and_sum(row: &mut [f32], max: f32) -> f32 {
    let mut lanes = [0f32; 16];
    let mut chunks = row.chunks_exact_mut(16);
    for c in &mut chunks {
        for (l, d) in lanes.iter_mut().zip(c.iter_mut()) {
            *d = exp_non_positive(*d - max);
            *l += *d;
        }
    }
    let mut sum = lanes.iter().sum::<f32>();
    for d in chunks.into_remainder() {
        *d = exp_non_positive(*d - max);
        sum += *d;
    }
    sum
}

/// `exp(x)` for `x <= 0` (differences from a row's maximum). Below
/// ln(f32::MIN_POSITIVE) it returns 0, where the exact value is subnormal.
#[inline(always)]
pub(crate) fn exp_non_positive(x: f32) -> f32 {
    const LOWEST: f32 = -87.336_55;
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two, so that n·ln2 is subtracted without rounding error.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5·2²³ rounds to the nearest integer in the low mantissa bits.
    const ROUNDER: f32 = 12_582_912.0;
    let visible = if x >= LOWEST { 1.0 } else { 0.0 };
    let x = x.clamp(LOWEST, 0.0);
    let shifted = x * LOG2_E + ROUNDER;
    let n = shifted - ROUNDER;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    // n is in [-126, 0]: 2ⁿ is a normal float built from its exponent bits.
    let exponent = (shifted.to_bits() as i32 - ROUNDER.to_bits() as i32 + 127) as u32;
    e * f32::from_bits(exponent << 23) * visible
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn exp_is_within_two_ulps_over_the_whole_range() {
        let mut worst = 0;
        let mut x = 0.0f32;
        while x > -87.0 {
            let exact = (x as f64).exp() as f32;
            worst = worst.max(ulps(exp_non_positive(x), exact));
            x -= 0.000_37;
        }
        assert!(worst <= 2, "{worst} ulps");
        assert_eq!(exp_non_positive(0.0), 1.0);
        assert_eq!(exp_non_positive(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_non_positive(-200.0), 0.0);
    }

    #[test]
    fn rows_match_candles_softmax() {
        let data: Vec<f32> = (0..7 * 37)
            .map(|i| ((i * 7919 % 613) as f32 - 300.0) * 0.05)
            .collect();
        let mut x = Tensor::from_vec(data, (7, 37), &Device::Cpu).unwrap();
        // A masked row and a row with a single visible key.
        let mut masked = vec![f32::NEG_INFINITY; 37];
        masked[..20].fill(0.5);
        let mut single = vec![f32::NEG_INFINITY; 37];
        single[3] = -4.0;
        for extra in [masked, single] {
            let row = Tensor::from_vec(extra, (1, 37), &Device::Cpu).unwrap();
            x = Tensor::cat(&[&x, &row], 0).unwrap();
        }
        let ours: Vec<Vec<f32>> = softmax_last_dim(&x).unwrap().to_vec2().unwrap();
        let candle: Vec<Vec<f32>> = candle_nn::ops::softmax_last_dim(&x)
            .unwrap()
            .to_vec2()
            .unwrap();
        for (a, b) in ours.iter().flatten().zip(candle.iter().flatten()) {
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1e-30), "{a} vs {b}");
        }
        assert_eq!(ours[8][3], 1.0);
        assert_eq!(ours[7][25], 0.0);
        // A transposed (non-contiguous) input is made contiguous first.
        let t = x.t().unwrap();
        let want = candle_nn::ops::softmax_last_dim(&t.contiguous().unwrap()).unwrap();
        let got = softmax_last_dim(&t).unwrap();
        let diff = crate::model::test_util::max_abs_diff(&got, &want);
        assert!(diff < 1e-6, "{diff}");
    }
}
