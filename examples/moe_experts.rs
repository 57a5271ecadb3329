//! Times the routed experts of one mixture-of-experts layer for a decode
//! step (one token, `k` of `E` experts), at Qwen3-VL-30B-A3B's widths, the
//! ways it can run on the CPU: each expert's three products one by one
//! through candle's quantised kernels (which repack a matrix into tiles the
//! first time it is used), the same after every matrix was used once, and
//! every chosen expert's gate and up products fused into one call.
//!
//!     cargo run --release --example moe_experts [-- HIDDEN INNER EXPERTS K QUANT]
//!
//! Defaults: 2048 768 128 8 q4k. Prints milliseconds per step.

use std::time::Instant;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

struct Expert {
    gate: QTensor,
    up: QTensor,
    down: QTensor,
}

/// A deterministic sequence of expert choices, different in every step.
fn choices(steps: usize, experts: usize, k: usize) -> Vec<Vec<usize>> {
    let mut s: u64 = 0x2545_F491_4F6C_DD1D;
    (0..steps)
        .map(|_| {
            let mut picked = Vec::with_capacity(k);
            while picked.len() < k {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let e = (s % experts as u64) as usize;
                if !picked.contains(&e) {
                    picked.push(e);
                }
            }
            picked
        })
        .collect()
}

fn one_by_one(experts: &[Expert], picked: &[usize], x: &Tensor) -> candle_core::Result<Tensor> {
    let mut out = x.zeros_like()?;
    for &e in picked {
        let ex = &experts[e];
        let g = x.apply_op1_no_bwd(&ex.gate)?.silu()?;
        let u = x.apply_op1_no_bwd(&ex.up)?;
        out = (out + (g * u)?.apply_op1_no_bwd(&ex.down)?)?;
    }
    Ok(out)
}

fn fused(experts: &[Expert], picked: &[usize], x: &Tensor) -> candle_core::Result<Tensor> {
    let mats: Vec<&QTensor> = picked
        .iter()
        .flat_map(|&e| [&experts[e].gate, &experts[e].up])
        .collect();
    let Some(outs) = QTensor::gemv_fused_shared_lhs(&mats, x)? else {
        candle_core::bail!("the fused kernel does not take these shapes");
    };
    let mut out = x.zeros_like()?;
    for (i, &e) in picked.iter().enumerate() {
        let act = (outs[2 * i].silu()? * &outs[2 * i + 1])?;
        out = (out + act.apply_op1_no_bwd(&experts[e].down)?)?;
    }
    Ok(out)
}

fn time_steps(
    name: &str,
    steps: &[Vec<usize>],
    mut step: impl FnMut(&[usize]) -> candle_core::Result<Tensor>,
) -> candle_core::Result<Tensor> {
    let mut times = Vec::with_capacity(steps.len());
    let mut last = None;
    for picked in steps {
        let t = Instant::now();
        last = Some(step(picked)?);
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len().max(1) as f64;
    let q = times.len() / 4;
    println!(
        "{name:<28} first quarter {:7.2} ms   last quarter {:7.2} ms   all {:7.2} ms",
        mean(&times[..q]),
        mean(&times[times.len() - q..]),
        mean(&times)
    );
    Ok(last.expect("at least one step"))
}

fn main() -> candle_core::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, d: usize| args.get(i).map_or(d, |a| a.parse().expect("a number"));
    let (h, inner, n_experts, k) = (num(0, 2048), num(1, 768), num(2, 128), num(3, 8));
    let dtype = match args.get(4).map(String::as_str).unwrap_or("q4k") {
        "q4k" => GgmlDType::Q4K,
        "q8_0" => GgmlDType::Q8_0,
        other => panic!("unknown quant {other}"),
    };
    let dev = Device::Cpu;
    let make = |out: usize, inp: usize| {
        QTensor::quantize(&Tensor::randn(0f32, 0.02, (out, inp), &dev)?, dtype)
    };
    let build = || -> candle_core::Result<Vec<Expert>> {
        (0..n_experts)
            .map(|_| {
                Ok(Expert {
                    gate: make(inner, h)?,
                    up: make(inner, h)?,
                    down: make(h, inner)?,
                })
            })
            .collect()
    };
    let x = Tensor::randn(0f32, 1.0, (1, h), &dev)?;
    let steps = choices(64, n_experts, k);
    println!("hidden {h}, expert width {inner}, {k} of {n_experts} experts, {dtype:?}, 64 steps");

    let cold = build()?;
    let a = time_steps("one by one, first use", &steps, |p| {
        one_by_one(&cold, p, &x)
    })?;
    let b = time_steps("one by one, used before", &steps, |p| {
        one_by_one(&cold, p, &x)
    })?;
    let c = time_steps("gate and up fused", &steps, |p| fused(&cold, p, &x))?;
    let diff = |u: &Tensor, v: &Tensor| -> candle_core::Result<f32> {
        (u - v)?.abs()?.max_all()?.to_scalar::<f32>()
    };
    println!(
        "largest difference against one by one: used before {:.2e}, fused {:.2e}",
        diff(&a, &b)?,
        diff(&a, &c)?
    );
    Ok(())
}
