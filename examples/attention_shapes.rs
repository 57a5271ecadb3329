//! Times attention at the shapes of real-size models: the vision towers of
//! Qwen3-VL-4B (16 heads × 560 patches × 64) and Qwen2-VL-2B (16 × 768 ×
//! 80), and the prompts of Qwen2-VL-2B (12 heads over 2 kv heads × 219 ×
//! 128) and Qwen3-VL-4B (32 over 8 × 156 × 128). Prints milliseconds per
//! layer, best of runs over half a second.
//!
//!     cargo run --release --example attention_shapes

mod common;

use candle_core::{Device, Tensor};
use glimpse::model::attention::{attention, Scaling, Visibility, MAX_SCORES};

use common::best_ms;

fn main() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    println!("case                      heads  kv  rows    d    ms");
    let cases = [
        ("Qwen3-VL-4B tower", 16, 16, 560, 64, Visibility::All),
        ("Qwen2-VL-2B tower", 16, 16, 768, 80, Visibility::All),
        (
            "Qwen2-VL-2B prompt",
            12,
            2,
            219,
            128,
            Visibility::Causal { past: 0 },
        ),
        (
            "Qwen3-VL-4B prompt",
            32,
            8,
            156,
            128,
            Visibility::Causal { past: 0 },
        ),
    ];
    for (name, heads, kv, rows, d, vis) in cases {
        let q = Tensor::randn(0f32, 1.0, (1, heads, rows, d), &dev)?;
        let k = Tensor::randn(0f32, 1.0, (1, kv, rows, d), &dev)?;
        let v = Tensor::randn(0f32, 1.0, (1, kv, rows, d), &dev)?;
        let scale = match vis {
            Visibility::All => Scaling::Queries(1.0 / (d as f64).sqrt()),
            Visibility::Causal { .. } => Scaling::Scores(1.0 / (d as f64).sqrt()),
        };
        let ms = best_ms(|| {
            attention(&q, &k, &v, scale, vis, MAX_SCORES).unwrap();
        });
        println!("{name:<24} {heads:>6} {kv:>3} {rows:>5} {d:>4} {ms:>6.2}");
    }
    Ok(())
}
