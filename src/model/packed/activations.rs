//! The input rows of a product, quantised to signed bytes with one f32
//! scale per 256 values, as ggml's q8_K does for its k-quant products; the
//! sums of every 32 quantised values come along, for the weights' offsets
//! (q4k's mins, q8_0's +128).

use super::layout::SUPER;

pub struct Activations {
    pub rows: usize,
    pub inputs: usize,
    /// `rows × inputs`.
    pub qs: Vec<i8>,
    /// Per row, per 256 values.
    pub scales: Vec<f32>,
    /// Per row, per 32 values (at most 32 × 127: 16 bits hold them, and two
    /// side by side feed one 16-bit multiply-add).
    pub sums: Vec<i16>,
}

impl Activations {
    /// Where rows `m0..m0 + M` of `qs` start, for the kernels (a plain loop:
    /// `array::from_fn` here would be an out-of-line call in the hot loop).
    #[inline(always)]
    pub fn row_starts<const M: usize>(&self, m0: usize) -> [*const i8; M] {
        assert!(m0 + M <= self.rows, "rows {m0}.. of {}", self.rows);
        let mut a = [std::ptr::null(); M];
        for (m, a) in a.iter_mut().enumerate() {
            *a = self.qs[(m0 + m) * self.inputs..].as_ptr();
        }
        a
    }

    pub fn quantise(x: &[f32], rows: usize, inputs: usize) -> Self {
        assert!(inputs.is_multiple_of(SUPER), "inputs in whole blocks");
        let mut qs = vec![0i8; rows * inputs];
        let mut scales = vec![0f32; rows * inputs / SUPER];
        let mut sums = vec![0i16; rows * inputs / 32];
        for (((x, q), scale), sums) in x
            .chunks_exact(SUPER)
            .zip(qs.chunks_exact_mut(SUPER))
            .zip(scales.iter_mut())
            .zip(sums.chunks_exact_mut(SUPER / 32))
        {
            // `f32::max` would pass over a NaN; keep it, to be seen below.
            let amax = x.iter().fold(0f32, |m, v| {
                if v.is_nan() || v.abs() > m {
                    v.abs()
                } else {
                    m
                }
            });
            if amax == 0.0 || !amax.is_finite() {
                // Zeros stay zero; a non-finite input makes a non-finite
                // output, as the float product would.
                *scale = if amax == 0.0 { 0.0 } else { f32::NAN };
                continue;
            }
            let inv = 127.0 / amax;
            for (q, v) in q.iter_mut().zip(x) {
                *q = (v * inv).round() as i8;
            }
            *scale = amax / 127.0;
            for (s, q) in sums.iter_mut().zip(q.chunks_exact(32)) {
                *s = q.iter().map(|&v| v as i16).sum();
            }
        }
        Activations {
            rows,
            inputs,
            qs,
            scales,
            sums,
        }
    }
}
