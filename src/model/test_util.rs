//! Helpers the unit tests share.

use std::path::PathBuf;

use candle_core::{Device, Tensor};

/// Every family with a tiny checkpoint in `tests/fixtures/models`.
pub const FIXTURE_FAMILIES: [&str; 6] = [
    "qwen2_vl",
    "qwen2_5_vl",
    "qwen3_vl",
    "qwen3_5",
    "qwen3_vl_moe",
    "qwen3_5_moe",
];

/// The fixture checkpoint of `family`.
pub fn fixture_model(family: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/models")
        .join(family)
}

/// The largest absolute value of `t`.
pub fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .and_then(|a| a.flatten_all())
        .and_then(|a| a.max(0))
        .and_then(|a| a.to_scalar())
        .unwrap()
}

/// The largest absolute difference of `a` and `b`.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    max_abs(&(a - b).unwrap())
}

/// A CPU tensor of deterministic values in [-1, 1) (the CPU device takes no
/// seed).
pub fn uniform(shape: (usize, usize, usize, usize), seed: u64) -> Tensor {
    let n = shape.0 * shape.1 * shape.2 * shape.3;
    let mut x = seed;
    let data: Vec<f32> = (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
        })
        .collect();
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
}
