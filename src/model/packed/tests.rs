use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

use super::*;

/// Deterministic values in [-1, 1), some rows scaled up so blocks differ in
/// their scales.
fn random(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..rows * cols)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let v = (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
            v * (1 + (i / cols) % 3) as f32
        })
        .collect()
}

fn quantised(w: &[f32], dims: (usize, usize), format: GgmlDType) -> QTensor {
    let t = Tensor::from_slice(w, dims, &Device::Cpu).unwrap();
    QTensor::quantize(&t, format).unwrap()
}

#[test]
fn packing_keeps_every_byte_of_the_blocks() {
    for format in [GgmlDType::Q4K, GgmlDType::Q8_0] {
        let dims = (48, 768);
        let q = quantised(&random(dims.0, dims.1, 1), dims, format);
        let blocks = q.data().unwrap();
        let packed = PackedMatrix::from_ggml(format, dims, &blocks).unwrap();
        assert_eq!(packed.to_ggml_bytes(), blocks.as_ref(), "{format:?}");
        assert_eq!(packed.format(), format);
        assert_eq!(packed.dims(), dims);
    }
}

#[test]
fn rows_widen_as_candles_dequantisation_does() {
    for format in [GgmlDType::Q4K, GgmlDType::Q8_0] {
        let dims = (32, 512);
        let q = quantised(&random(dims.0, dims.1, 2), dims, format);
        let packed = PackedMatrix::from_ggml(format, dims, &q.data().unwrap()).unwrap();
        let all: Vec<Vec<f32>> = q.dequantize(&Device::Cpu).unwrap().to_vec2().unwrap();
        let ids = [0u32, 17, 31, 5];
        let rows = packed.rows(&ids).unwrap();
        for (got, &id) in rows.chunks(dims.1).zip(&ids) {
            assert_eq!(got, all[id as usize].as_slice(), "{format:?} row {id}");
        }
        assert!(
            packed.rows(&[32]).is_err(),
            "a row past the end is an error"
        );
    }
}

#[test]
fn shapes_that_do_not_fill_tiles_are_not_packed() {
    assert!(PackedMatrix::fits(GgmlDType::Q4K, (32, 512)));
    assert!(!PackedMatrix::fits(GgmlDType::Q4K, (40, 512)));
    assert!(!PackedMatrix::fits(GgmlDType::Q8_0, (32, 96)));
    assert!(!PackedMatrix::fits(GgmlDType::Q6K, (32, 512)));
}

/// The product with the weights dequantised and the inputs as quantised
/// (`scale · q` per 256 values), in f64: what the kernels compute, up to
/// the rounding of their float steps.
fn exact(w: &[f32], x: &[f32], rows: usize, (n, k): (usize, usize)) -> Vec<f32> {
    let acts = Activations::quantise(x, rows, k);
    let xs: Vec<f64> = (0..rows * k)
        .map(|i| f64::from(acts.scales[i / layout::SUPER]) * f64::from(acts.qs[i]))
        .collect();
    (0..rows * n)
        .map(|i| {
            let (r, o) = (i / n, i % n);
            let row = &xs[r * k..][..k];
            let weights = &w[o * k..][..k];
            row.iter()
                .zip(weights)
                .map(|(x, w)| x * f64::from(*w))
                .sum::<f64>() as f32
        })
        .collect()
}

/// The product through every kind of kernel this CPU runs, against the
/// exact product of what they multiply, against each other (the same sums
/// to the last bit), against candle's q4k product (which quantises the
/// inputs the same way) and against the float product with the dequantised
/// weights, which differs by the inputs' 8-bit rounding.
#[test]
fn products_match_the_dequantised_weights_for_every_row_count() {
    let kinds = Kernels::available();
    if kinds.is_empty() {
        eprintln!("skipped: this CPU has neither AVX-512 VNNI nor AVX2");
        return;
    }
    let (n, k) = (64, 768);
    for format in [GgmlDType::Q4K, GgmlDType::Q8_0] {
        let q = quantised(&random(n, k, 3), (n, k), format);
        let packed = PackedMatrix::from_ggml(format, (n, k), &q.data().unwrap()).unwrap();
        let w = q.dequantize(&Device::Cpu).unwrap();
        let ws: Vec<f32> = w.flatten_all().unwrap().to_vec1().unwrap();
        for rows in [1, 2, 3, 4, 5, 7, 9] {
            let x = random(rows, k, 4 + rows as u64);
            let xt = Tensor::from_slice(&x, (rows, k), &Device::Cpu).unwrap();
            let float: Vec<f32> = xt
                .matmul(&w.t().unwrap())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let candle: Vec<f32> = xt
                .apply_op1_no_bwd(&q)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let want = exact(&ws, &x, rows, (n, k));
            let size = float.iter().map(|v| v.abs()).sum::<f32>() / float.len() as f32;
            let outs: Vec<Vec<f32>> = kinds
                .iter()
                .map(|&kind| PackedMatrix::matmul_many_with(kind, &[&packed], &x, rows).remove(0))
                .collect();
            for (kind, got) in kinds.iter().zip(&outs) {
                let worst = |other: &[f32]| {
                    got.iter()
                        .zip(other)
                        .map(|(g, w)| (g - w).abs())
                        .fold(0f32, f32::max)
                };
                let case = format!("{kind:?} {format:?}, {rows} rows");
                assert!(
                    worst(&want) < 1e-5 * size,
                    "{case}: off the exact product by {}, values {size}",
                    worst(&want)
                );
                if format == GgmlDType::Q4K {
                    assert!(
                        worst(&candle) < 1e-5 * size,
                        "{case}: off candle's by {}, values {size}",
                        worst(&candle)
                    );
                }
                assert!(
                    worst(&float) < 0.05 * size,
                    "{case}: off the float product by {}, values {size}",
                    worst(&float)
                );
                assert_eq!(got, &outs[0], "{case}: not the sums of {:?}", kinds[0]);
            }
        }
    }
}

#[test]
fn matrices_sharing_an_input_give_what_each_gives_alone() {
    if !PackedMatrix::cpu_has_kernels() {
        eprintln!("skipped: this CPU has neither AVX-512 VNNI nor AVX2");
        return;
    }
    let k = 512;
    let mats: Vec<PackedMatrix> = [
        (32, GgmlDType::Q4K),
        (48, GgmlDType::Q8_0),
        (16, GgmlDType::Q4K),
    ]
    .iter()
    .enumerate()
    .map(|(i, &(n, format))| {
        let q = quantised(&random(n, k, 10 + i as u64), (n, k), format);
        PackedMatrix::from_ggml(format, (n, k), &q.data().unwrap()).unwrap()
    })
    .collect();
    let refs: Vec<&PackedMatrix> = mats.iter().collect();
    for kind in Kernels::available() {
        for rows in [1, 6] {
            let x = random(rows, k, 20);
            let together = PackedMatrix::matmul_many_with(kind, &refs, &x, rows);
            for (m, got) in mats.iter().zip(&together) {
                let alone = PackedMatrix::matmul_many_with(kind, &[m], &x, rows);
                assert_eq!(got, &alone[0], "{kind:?}");
            }
        }
    }
}

#[test]
fn zero_inputs_give_zero_and_a_non_finite_input_is_not_hidden() {
    if !PackedMatrix::cpu_has_kernels() {
        eprintln!("skipped: this CPU has neither AVX-512 VNNI nor AVX2");
        return;
    }
    let (n, k) = (16, 256);
    let q = quantised(&random(n, k, 30), (n, k), GgmlDType::Q4K);
    let packed = PackedMatrix::from_ggml(GgmlDType::Q4K, (n, k), &q.data().unwrap()).unwrap();
    for kind in Kernels::available() {
        let zeros = PackedMatrix::matmul_many_with(kind, &[&packed], &vec![0.0; k], 1);
        assert!(zeros[0].iter().all(|&v| v == 0.0), "{kind:?}");
        for bad in [f32::INFINITY, f32::NAN] {
            let mut x = vec![0.5; k];
            x[7] = bad;
            let out = PackedMatrix::matmul_many_with(kind, &[&packed], &x, 1);
            assert!(out[0].iter().all(|v| !v.is_finite()), "{kind:?} {bad}");
        }
    }
}
