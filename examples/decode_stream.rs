//! One decoding step's products, a row at a time, through more weights than
//! the CPU's caches hold: how near each weight format's kernel comes to the
//! memory's bandwidth. `examples/matmul_shapes.rs` times one matrix again
//! and again, which a last-level cache of tens of megabytes then serves.
//!
//! `cargo run --release --example decode_stream [hidden intermediate layers]`
//! (default: Qwen2-VL-2B's decoder widths, 8 layers).

mod common;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use glimpse::model::many_rows::{self, WeightPanels};
use glimpse::model::packed::PackedMatrix;

use common::best_ms;

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
    let xs: Vec<Vec<f32>> = [h, i]
        .iter()
        .map(|&k| {
            (0..k)
                .map(|j| ((j * 7919) % 101) as f32 / 50.0 - 1.0)
                .collect()
        })
        .collect();
    let input = |k: usize| if k == h { &xs[0] } else { &xs[1] };
    println!("{layers} layers of {h} wide, {i} intermediate; best pass");
    println!("format   MB read   ms a pass   GB/s");
    for format in [None, Some(GgmlDType::Q8_0), Some(GgmlDType::Q4K)] {
        let runs = match format {
            None => many_rows::available(),
            Some(_) => PackedMatrix::cpu_has_kernels(),
        };
        if !runs {
            continue;
        }
        let mut f32_mats = Vec::new();
        let mut packed = Vec::new();
        for &(k, n) in &shapes {
            let w = Tensor::randn(0f32, 0.02, (n, k), &dev)?;
            match format {
                None => {
                    let ws: Vec<f32> = w.flatten_all()?.to_vec1()?;
                    f32_mats.extend((0..layers).map(|_| WeightPanels::new(&ws, n, k)));
                }
                Some(f) => {
                    let bytes = QTensor::quantize(&w, f)?.data()?.into_owned();
                    for _ in 0..layers {
                        let p = PackedMatrix::from_ggml(f, (n, k), &bytes)
                            .expect("the layer's shapes fit the tiles");
                        packed.push(p);
                    }
                }
            }
        }
        let bytes: usize = f32_mats.iter().map(|m| m.size_in_bytes()).sum::<usize>()
            + packed.iter().map(|m| m.size_in_bytes()).sum::<usize>();
        let ms = best_ms(|| {
            for m in &f32_mats {
                std::hint::black_box(WeightPanels::products(&[m], input(m.dims().1), 1));
            }
            for m in &packed {
                std::hint::black_box(PackedMatrix::matmul_many(&[m], input(m.dims().1), 1));
            }
        });
        let name = format.map_or("f32".to_string(), |f| format!("{f:?}").to_lowercase());
        println!(
            "{name:<6} {:9.0} {:11.2} {:6.1}",
            bytes as f64 / 1e6,
            ms,
            bytes as f64 / ms / 1e6
        );
    }
    Ok(())
}
