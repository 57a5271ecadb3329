//! The vision towers' GELU approximations, both `x · sigmoid(z(x))`:
//! Qwen2-VL's quick GELU (`z = 1.702 x`) and Qwen3-VL's tanh GELU
//! (`½(1 + tanh u) = sigmoid(2u)`, `u = √(2/π)(x + 0.044715 x³)`). On the
//! CPU in f32 each is one pass with the softmax's vectorised `exp`; as
//! candle ops quick GELU was three passes over the tower's widest
//! activations (768 × 5120 floats a layer for a 448×336 image), each into a
//! fresh tensor with one libm `exp` per element, and tanh GELU one libm
//! `tanh` per element.

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor};

use super::softmax::{exp_non_positive, map_in_parallel};

/// Which approximation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gelu {
    Quick,
    Tanh,
}

pub fn gelu(x: &Tensor, kind: Gelu) -> Result<Tensor> {
    match (x.device(), x.dtype()) {
        (Device::Cpu, DType::F32) => x.contiguous()?.apply_op1_no_bwd(&CpuGelu(kind)),
        _ => general(x, kind),
    }
}

/// The activation as candle ops, for every device and dtype.
fn general(x: &Tensor, kind: Gelu) -> Result<Tensor> {
    match kind {
        Gelu::Quick => x * candle_nn::ops::sigmoid(&(x * 1.702)?)?,
        Gelu::Tanh => x.gelu(),
    }
}

struct CpuGelu(Gelu);

/// Elements a rayon task takes: enough to amortise the task.
const CHUNK: usize = 1 << 14;

impl CustomOp1 for CpuGelu {
    fn name(&self) -> &'static str {
        "cpu-sigmoid-gelu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let kind = self.0;
        map_in_parallel(storage, layout, "GELU", CHUNK, |s, d| apply(s, d, kind))
    }
}

/// The activation of each float of `xs`, written over it: the same floats
/// [`gelu`] gives.
pub fn gelu_in_place(xs: &mut [f32], kind: Gelu) {
    // Through a copy of a few hundred floats at a time, which stays in L1.
    let mut copy = [0f32; 256];
    for part in xs.chunks_mut(copy.len()) {
        let src = &mut copy[..part.len()];
        src.copy_from_slice(part);
        apply(src, part, kind);
    }
}

fn apply(src: &[f32], dst: &mut [f32], kind: Gelu) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has just been seen to support it.
        unsafe { apply_avx512(src, dst, kind) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: as above.
        unsafe { apply_avx2(src, dst, kind) };
        return;
    }
    apply_portable(src, dst, kind);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn apply_avx512(src: &[f32], dst: &mut [f32], kind: Gelu) {
    apply_portable(src, dst, kind)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn apply_avx2(src: &[f32], dst: &mut [f32], kind: Gelu) {
    apply_portable(src, dst, kind)
}

/// Without branches inside the loops, so the compiler vectorises them: the
/// same operations on each element in any number of lanes.
#[inline(always)]
fn apply_portable(src: &[f32], dst: &mut [f32], kind: Gelu) {
    // √(2/π), doubled: sigmoid(2u) = ½(1 + tanh u).
    const TWO_SQRT_2_OVER_PI: f32 = 2.0 * 0.797_884_6;
    match kind {
        Gelu::Quick => {
            for (d, &x) in dst.iter_mut().zip(src) {
                *d = x * sigmoid(x * 1.702);
            }
        }
        Gelu::Tanh => {
            for (d, &x) in dst.iter_mut().zip(src) {
                *d = x * sigmoid(TWO_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x));
            }
        }
    }
}

#[inline(always)]
fn sigmoid(z: f32) -> f32 {
    // exp(-|z|) is at most 1: the sigmoid from it, either side of zero.
    let e = exp_non_positive(-z.abs());
    (if z >= 0.0 { 1.0 } else { e }) / (1.0 + e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_candle_ops() {
        let xs: Vec<f32> = (-2000..=2000)
            .map(|i| i as f32 * 0.0125)
            .chain([0.0, -0.0, 1e-30, -1e-30, 60.0, -60.0, 200.0, -200.0])
            .collect();
        let t = Tensor::from_slice(&xs, xs.len(), &Device::Cpu).unwrap();
        // Quick GELU to a few ulps. tanh GELU's reference takes 1 + tanh u,
        // which for very negative x cancels to a few bits; the sigmoid form
        // does not, so they agree to an absolute 1e-7 of x there.
        for (kind, relative, of_x) in [
            (Gelu::Quick, 4.0 * f32::EPSILON, 0.0),
            (Gelu::Tanh, 4.0 * f32::EPSILON, 1e-7),
        ] {
            let got: Vec<f32> = gelu(&t, kind).unwrap().to_vec1().unwrap();
            let mut in_place = xs.clone();
            gelu_in_place(&mut in_place, kind);
            assert_eq!(in_place, got, "{kind:?} in place");
            let want: Vec<f32> = general(&t, kind).unwrap().to_vec1().unwrap();
            for ((x, g), w) in xs.iter().zip(&got).zip(&want) {
                let tolerance = relative * w.abs() + of_x * x.abs() + 1e-37;
                assert!(
                    (g - w).abs() <= tolerance,
                    "{kind:?} x = {x}: {g} against {w}"
                );
            }
        }
    }

    #[test]
    fn infinities_and_nan_behave_as_in_torch() {
        let xs = [f32::INFINITY, f32::NEG_INFINITY, f32::NAN];
        let t = Tensor::from_slice(&xs, 3, &Device::Cpu).unwrap();
        for kind in [Gelu::Quick, Gelu::Tanh] {
            let got: Vec<f32> = gelu(&t, kind).unwrap().to_vec1().unwrap();
            assert_eq!(got[0], f32::INFINITY, "{kind:?}");
            // -inf · sigmoid(-inf) = -inf · 0
            assert!(got[1].is_nan(), "{kind:?}");
            assert!(got[2].is_nan(), "{kind:?}");
        }
    }
}
