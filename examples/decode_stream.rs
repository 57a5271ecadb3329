//! One decoding step's products, a row at a time, through more weights than
//! the CPU's caches hold: how near each weight format's kernel comes to the
//! memory's bandwidth. `examples/matmul_shapes.rs` times one matrix again
//! and again, which a last-level cache of tens of megabytes then serves.
//!
//! `cargo run --release --example decode_stream [hidden intermediate layers]`
//! (default: Qwen2-VL-2B's decoder widths, 8 layers).

use std::time::Instant;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use glimpse::model::many_rows::{self, WeightPanels};
use glimpse::model::packed::PackedMatrix;

/// Best of this many passes over all the layers.
const PASSES: usize = 7;

fn main() -> candle_core::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("sizes are numbers"))
        .collect();
    let (h, i, layers) = match args[..] {
        [h, i, l] => (h, i, l),
        _ => (1536, 8960, 8),
    };
    let dev = Device::Cpu;
    // A layer's products: q/k/v (as one), o, gate and up (as one), down.
    let shapes = [(h, h + h / 3), (h, h), (h, 2 * i), (i, h)];
    println!("{layers} layers of {h} wide, {i} intermediate; best of {PASSES} passes");
    println!("format   MB read   ms a pass   GB/s");
    for format in [None, Some(GgmlDType::Q8_0), Some(GgmlDType::Q4K)] {
        let mut f32_mats = Vec::new();
        let mut packed = Vec::new();
        for &(k, n) in &shapes {
            let w = Tensor::randn(0f32, 0.02, (n, k), &dev)?;
            match format {
                None if many_rows::available() => {
                    let ws: Vec<f32> = w.flatten_all()?.to_vec1()?;
                    for _ in 0..layers {
                        f32_mats.push(WeightPanels::new(&ws, n, k));
                    }
                }
                None => return Ok(()),
                Some(f) => {
                    let q = QTensor::quantize(&w, f)?;
                    let bytes = q.data()?;
                    for _ in 0..layers {
                        match PackedMatrix::from_ggml(f, (n, k), &bytes) {
                            Some(p) if PackedMatrix::cpu_has_kernels() => packed.push(p),
                            _ => return Ok(()),
                        }
                    }
                }
            }
        }
        let bytes: usize = f32_mats.iter().map(|m| m.size_in_bytes()).sum::<usize>()
            + packed.iter().map(|m| m.size_in_bytes()).sum::<usize>();
        let xs: Vec<Vec<f32>> = [h, i]
            .iter()
            .map(|&k| {
                (0..k)
                    .map(|j| ((j * 7919) % 101) as f32 / 50.0 - 1.0)
                    .collect()
            })
            .collect();
        let input = |k: usize| if k == h { &xs[0] } else { &xs[1] };
        let mut best = f64::INFINITY;
        for _ in 0..PASSES {
            let start = Instant::now();
            for m in &f32_mats {
                std::hint::black_box(WeightPanels::products(&[m], input(m.dims().1), 1));
            }
            for m in &packed {
                std::hint::black_box(PackedMatrix::matmul_many(&[m], input(m.dims().1), 1));
            }
            best = best.min(start.elapsed().as_secs_f64());
        }
        let name = format.map_or("f32".to_string(), |f| format!("{f:?}").to_lowercase());
        println!(
            "{name:<6} {:9.0} {:11.2} {:6.1}",
            bytes as f64 / 1e6,
            best * 1e3,
            bytes as f64 / best / 1e9
        );
    }
    Ok(())
}
