//! Rotary tables. Angles are computed in f32 on the host exactly as transformers
//! does (inverse frequencies in f32, one product per angle), so the tables agree
//! with the reference bit for bit before `cos`/`sin`.

use candle_core::{DType, Device, Result, Tensor};

use super::config::MropeLayout;

/// `1 / theta^(2i/dim)` for `i` in `0..dim/2`, in f32 like transformers.
pub fn inv_freq(theta: f64, dim: usize) -> Vec<f32> {
    (0..dim / 2)
        .map(|i| {
            let exponent = (2 * i) as f32 / dim as f32;
            1.0f32 / (theta as f32).powf(exponent)
        })
        .collect()
}

/// Which position axis (0 = t, 1 = h, 2 = w) drives each frequency slot.
pub fn mrope_axes(section: [usize; 3], layout: MropeLayout) -> Vec<usize> {
    let half: usize = section.iter().sum();
    match layout {
        MropeLayout::Chunked => (0..half)
            .map(|i| {
                if i < section[0] {
                    0
                } else if i < section[0] + section[1] {
                    1
                } else {
                    2
                }
            })
            .collect(),
        MropeLayout::Interleaved => (0..half)
            .map(|i| {
                if i % 3 == 1 && i < 3 * section[1] {
                    1
                } else if i % 3 == 2 && i < 3 * section[2] {
                    2
                } else {
                    0
                }
            })
            .collect(),
    }
}

/// Half-width cos/sin tables, one row per token, as candle's `rope` expects.
pub struct RopeTables {
    pub cos: Tensor,
    pub sin: Tensor,
}

impl RopeTables {
    fn from_angles(angles: Vec<f32>, rows: usize, dtype: DType, device: &Device) -> Result<Self> {
        let half = angles.len() / rows.max(1);
        let cos: Vec<f32> = angles.iter().map(|a| a.cos()).collect();
        let sin: Vec<f32> = angles.iter().map(|a| a.sin()).collect();
        Ok(RopeTables {
            cos: Tensor::from_vec(cos, (rows, half), device)?.to_dtype(dtype)?,
            sin: Tensor::from_vec(sin, (rows, half), device)?.to_dtype(dtype)?,
        })
    }
}

/// Multimodal rotary tables for the decoder: each slot takes its axis' position.
pub fn mrope_tables(
    positions: &[[i64; 3]],
    inv_freq: &[f32],
    axes: &[usize],
    dtype: DType,
    device: &Device,
) -> Result<RopeTables> {
    let mut angles = Vec::with_capacity(positions.len() * inv_freq.len());
    for p in positions {
        for (f, &axis) in inv_freq.iter().zip(axes) {
            angles.push(p[axis] as f32 * f);
        }
    }
    RopeTables::from_angles(angles, positions.len(), dtype, device)
}

/// 2-D rotary tables of the vision tower: the first half of the slots rotate by
/// the patch row, the second half by its column. Always f32: the angles reach
/// hundreds of radians for large images.
pub fn vision_tables(
    rows_cols: &[(usize, usize)],
    head_dim: usize,
    device: &Device,
) -> Result<RopeTables> {
    let freqs = inv_freq(10000.0, head_dim / 2);
    let mut angles = Vec::with_capacity(rows_cols.len() * freqs.len() * 2);
    for &(r, c) in rows_cols {
        angles.extend(freqs.iter().map(|f| r as f32 * f));
        angles.extend(freqs.iter().map(|f| c as f32 * f));
    }
    RopeTables::from_angles(angles, rows_cols.len(), DType::F32, device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_and_interleaved_layouts_match_the_reference_pattern() {
        let chunked: String = mrope_axes([16, 24, 24], MropeLayout::Chunked)
            .iter()
            .map(|a| char::from(b'0' + *a as u8))
            .collect();
        assert_eq!(
            chunked,
            "0000000000000000111111111111111111111111222222222222222222222222"
        );
        let inter: String = mrope_axes([24, 20, 20], MropeLayout::Interleaved)
            .iter()
            .map(|a| char::from(b'0' + *a as u8))
            .collect();
        assert_eq!(
            inter,
            "0120120120120120120120120120120120120120120120120120120120120000"
        );
        let axes = mrope_axes([24, 20, 20], MropeLayout::Interleaved);
        assert_eq!(axes.iter().filter(|&&a| a == 0).count(), 24);
        assert_eq!(axes.iter().filter(|&&a| a == 1).count(), 20);
    }

    #[test]
    fn text_positions_reduce_to_plain_rope() {
        let f = inv_freq(1e6, 8);
        let axes = mrope_axes([2, 1, 1], MropeLayout::Chunked);
        let t = mrope_tables(&[[3, 3, 3]], &f, &axes, DType::F32, &Device::Cpu).unwrap();
        let cos: Vec<f32> = t.cos.flatten_all().unwrap().to_vec1().unwrap();
        let expect: Vec<f32> = f.iter().map(|x| (3.0 * x).cos()).collect();
        assert_eq!(cos, expect);
    }
}
