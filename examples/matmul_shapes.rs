//! Times the ways a projection can run, at the shapes of a real-size decoder,
//! for the row counts of decoding and of prompts: candle's matmul (gemm), the
//! few-row streaming kernel, f32 weights in panels laid out at load (where
//! the CPU has AVX-512), and quantised weights through candle's quantised
//! kernels or through glimpse's packed ones (where the CPU has AVX-512
//! VNNI). The choices in `src/model/linear.rs` come from this table.
//!
//!     cargo run --release --example matmul_shapes [-- HIDDEN INTERMEDIATE VOCAB]
//!
//! Defaults are Qwen2-VL-2B's (1536, 8960, 151936); `1280 5120 3840` gives
//! its vision tower's (the MLP and the fused q/k/v). Prints milliseconds
//! per product, best of several runs.

mod common;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use glimpse::model::few_rows;
use glimpse::model::many_rows::{self, WeightPanels};
use glimpse::model::packed::PackedMatrix;

use common::best_ms;

/// Outputs past which the third matrix is an output head.
const HEAD_OUTPUTS: usize = 32_768;

fn main() -> candle_core::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("sizes are numbers"))
        .collect();
    let (h, i, v) = match args[..] {
        [h, i, v] => (h, i, v),
        _ => (1536, 8960, 151_936),
    };
    let dev = Device::Cpu;
    println!("shape (in→out)   rows   gemm   few-row    panels   q8_0 candle   q8_0 packed   q4k candle   q4k packed  (ms)");
    for (k, n) in [(h, h), (h, i), (i, h), (h, v)] {
        let w = Tensor::randn(0f32, 0.02, (n, k), &dev)?;
        let wt = w.t()?;
        let q8 = QTensor::quantize(&w, GgmlDType::Q8_0)?;
        let q4 = QTensor::quantize(&w, GgmlDType::Q4K)?;
        let ws: Vec<f32> = w.flatten_all()?.to_vec1()?;
        let panels = many_rows::available().then(|| WeightPanels::new(&ws, n, k));
        for rows in [1, 2, 4, 8, 16, 64, 219, 512, 768] {
            if n == v && v > HEAD_OUTPUTS && rows > 8 {
                continue; // the head only ever sees the last row
            }
            let x = Tensor::randn(0f32, 1.0, (rows, k), &dev)?;
            let xs: Vec<f32> = x.flatten_all()?.to_vec1()?;
            let gemm = best_ms(|| {
                x.matmul(&wt).unwrap();
            });
            let few = if rows <= few_rows::MAX_ROWS {
                let mut y = vec![0f32; rows * n];
                format!(
                    "{:9.2}",
                    best_ms(|| few_rows::matmul_t(&xs, rows, &ws, n, &mut y))
                )
            } else {
                format!("{:>9}", "-")
            };
            let many = match &panels {
                Some(p) => format!(
                    "{:9.2}",
                    best_ms(|| {
                        WeightPanels::products(&[p], &xs, rows);
                    })
                ),
                None => format!("{:>9}", "-"),
            };
            let kernel = |q: &QTensor| {
                best_ms(|| {
                    x.apply_op1_no_bwd(q).unwrap();
                })
            };
            let packed = |q: &QTensor| match PackedMatrix::from_ggml(
                q.dtype(),
                (n, k),
                &q.data().unwrap(),
            ) {
                Some(p) if PackedMatrix::cpu_has_kernels() => best_ms(|| {
                    PackedMatrix::matmul_many(&[&p], &xs, rows);
                }),
                _ => f64::NAN,
            };
            println!(
                "{:>6}→{:<7} {:>6} {:7.2} {few} {many} {:13.2} {:14.2} {:12.2} {:13.2}",
                k,
                n,
                rows,
                gemm,
                kernel(&q8),
                packed(&q8),
                kernel(&q4),
                packed(&q4)
            );
        }
    }
    Ok(())
}
