//! Keys and values of every decoder layer, grown as the conversation grows (never
//! allocated for the whole context up front) and cut back when a new prompt
//! shares only part of what is cached.
//!
//! Two storage formats: the model's own dtype, or INT8 with one f32 scale per
//! token and head (symmetric, absmax / 127), quantised on append and
//! dequantised to the model dtype for attention. A cache can switch from the
//! first to the second at any time (memory pressure); never back.

use candle_core::{DType, Result, Tensor};

/// How the cache stores keys and values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KvFormat {
    /// The model's dtype (bf16/f16 on CUDA, f32 on the CPU).
    Model,
    /// Signed 8-bit values with a per-token, per-head f32 scale.
    Int8,
}

/// Bytes per cached position of one layer, for both keys and values.
pub fn bytes_per_position(format: KvFormat, kv_heads: usize, head_dim: usize, dtype: DType) -> u64 {
    let per_head = match format {
        KvFormat::Model => head_dim * dtype.size_in_bytes(),
        KvFormat::Int8 => head_dim + DType::F32.size_in_bytes(),
    };
    (2 * kv_heads * per_head) as u64
}

/// INT8 codes stored as `u8` with an offset of 128 (candle has no `i8`), and
/// their scales `(b, heads, L, 1)`.
#[derive(Clone)]
struct Quantized {
    codes: Tensor,
    scales: Tensor,
}

const INT8_OFFSET: f64 = 128.0;

impl Quantized {
    fn of(x: &Tensor) -> Result<Quantized> {
        let x = x.to_dtype(DType::F32)?;
        // An all-zero head gets a tiny scale instead of a division by zero.
        let scales = (x.abs()?.max_keepdim(3)?.clamp(1e-30f32, f32::MAX)? / 127.0)?;
        let codes = x
            .broadcast_div(&scales)?
            .round()?
            .clamp(-127f32, 127f32)?
            .affine(1.0, INT8_OFFSET)?
            .to_dtype(DType::U8)?;
        Ok(Quantized { codes, scales })
    }

    fn dequantize(&self, dtype: DType) -> Result<Tensor> {
        self.codes
            .to_dtype(DType::F32)?
            .affine(1.0, -INT8_OFFSET)?
            .broadcast_mul(&self.scales)?
            .to_dtype(dtype)
    }

    fn cat(&self, more: &Quantized) -> Result<Quantized> {
        Ok(Quantized {
            codes: Tensor::cat(&[&self.codes, &more.codes], 2)?,
            scales: Tensor::cat(&[&self.scales, &more.scales], 2)?,
        })
    }

    fn narrow(&self, len: usize) -> Result<Quantized> {
        Ok(Quantized {
            codes: self.codes.narrow(2, 0, len)?,
            scales: self.scales.narrow(2, 0, len)?,
        })
    }

    fn size_in_bytes(&self) -> usize {
        self.codes.elem_count() * self.codes.dtype().size_in_bytes()
            + self.scales.elem_count() * self.scales.dtype().size_in_bytes()
    }
}

#[derive(Clone)]
enum Slot {
    Model(Tensor, Tensor),
    Int8(Quantized, Quantized),
}

pub struct KvCache {
    layers: Vec<Option<Slot>>,
    len: usize,
    format: KvFormat,
}

impl KvCache {
    pub fn new(num_layers: usize) -> Self {
        Self::with_format(num_layers, KvFormat::Model)
    }

    pub fn with_format(num_layers: usize, format: KvFormat) -> Self {
        KvCache {
            layers: vec![None; num_layers],
            len: 0,
            format,
        }
    }

    /// Number of positions cached.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn format(&self) -> KvFormat {
        self.format
    }

    /// Appends a chunk's keys and values `(b, kv_heads, L, head_dim)` for one layer
    /// and returns everything cached for it, the chunk included, in the chunk's dtype.
    pub fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let slot = &mut self.layers[layer];
        match self.format {
            KvFormat::Model => {
                let (k, v) = match slot.take() {
                    None => (k.clone(), v.clone()),
                    Some(Slot::Model(pk, pv)) => {
                        (Tensor::cat(&[&pk, k], 2)?, Tensor::cat(&[&pv, v], 2)?)
                    }
                    Some(Slot::Int8(..)) => {
                        candle_core::bail!("an INT8 KV cache cannot go back to the model dtype")
                    }
                };
                *slot = Some(Slot::Model(k.clone(), v.clone()));
                Ok((k, v))
            }
            KvFormat::Int8 => {
                let (qk, qv) = (Quantized::of(k)?, Quantized::of(v)?);
                let (qk, qv) = match slot.take() {
                    None => (qk, qv),
                    Some(Slot::Int8(pk, pv)) => (pk.cat(&qk)?, pv.cat(&qv)?),
                    Some(Slot::Model(pk, pv)) => {
                        (Quantized::of(&pk)?.cat(&qk)?, Quantized::of(&pv)?.cat(&qv)?)
                    }
                };
                let out = (qk.dequantize(k.dtype())?, qv.dequantize(v.dtype())?);
                *slot = Some(Slot::Int8(qk, qv));
                Ok(out)
            }
        }
    }

    /// Re-stores everything cached as INT8; later appends are quantised too.
    pub fn convert_to_int8(&mut self) -> Result<()> {
        for slot in self.layers.iter_mut() {
            if let Some(Slot::Model(k, v)) = slot.take() {
                *slot = Some(Slot::Int8(Quantized::of(&k)?, Quantized::of(&v)?));
            }
        }
        self.format = KvFormat::Int8;
        Ok(())
    }

    /// Called once per forward pass, after every layer appended `n` positions.
    pub fn advance(&mut self, n: usize) {
        self.len += n;
    }

    /// Keeps the first `len` positions.
    pub fn truncate(&mut self, len: usize) -> Result<()> {
        if len >= self.len {
            return Ok(());
        }
        for slot in self.layers.iter_mut() {
            if let Some(s) = slot.take() {
                if len > 0 {
                    *slot = Some(match s {
                        Slot::Model(k, v) => {
                            Slot::Model(k.narrow(2, 0, len)?, v.narrow(2, 0, len)?)
                        }
                        Slot::Int8(k, v) => Slot::Int8(k.narrow(len)?, v.narrow(len)?),
                    });
                }
            }
        }
        self.len = len;
        Ok(())
    }

    pub fn clear(&mut self) {
        self.layers.iter_mut().for_each(|s| *s = None);
        self.len = 0;
    }

    /// Bytes held by the cached tensors.
    pub fn size_in_bytes(&self) -> usize {
        self.layers
            .iter()
            .flatten()
            .map(|s| match s {
                Slot::Model(k, v) => (k.elem_count() + v.elem_count()) * k.dtype().size_in_bytes(),
                Slot::Int8(k, v) => k.size_in_bytes() + v.size_in_bytes(),
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn ramp(shape: (usize, usize, usize, usize), scale: f32) -> Tensor {
        let n = shape.0 * shape.1 * shape.2 * shape.3;
        let data: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * scale)
            .collect();
        Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
    }

    fn max_abs(t: &Tensor) -> f32 {
        t.abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    #[test]
    fn int8_round_trip_is_within_half_a_step_of_each_heads_scale() {
        // Heads of very different magnitude: each keeps its own precision.
        let small = ramp((1, 1, 3, 16), 0.001);
        let large = ramp((1, 1, 3, 16), 10.0);
        let x = Tensor::cat(&[&small, &large], 1).unwrap();
        let back = Quantized::of(&x).unwrap().dequantize(DType::F32).unwrap();
        for (h, t) in [(0, &small), (1, &large)] {
            let step = max_abs(t) / 127.0;
            let err = max_abs(&(back.narrow(1, h, 1).unwrap() - t).unwrap());
            assert!(
                err <= 0.5 * step * 1.0001,
                "head {h}: error {err} vs step {step}"
            );
        }
        let zeros = Tensor::zeros((1, 2, 2, 8), DType::F32, &Device::Cpu).unwrap();
        let back = Quantized::of(&zeros)
            .unwrap()
            .dequantize(DType::F32)
            .unwrap();
        assert_eq!(max_abs(&back), 0.0);
    }

    #[test]
    fn converting_keeps_the_positions_and_shrinks_the_cache() {
        let mut cache = KvCache::new(2);
        for layer in 0..2 {
            let k = ramp((1, 2, 5, 32), 0.1);
            cache.append(layer, &k, &k).unwrap();
        }
        cache.advance(5);
        let full = cache.size_in_bytes();
        assert_eq!(full, 2 * 2 * (2 * 5 * 32) * 4);
        cache.convert_to_int8().unwrap();
        assert_eq!(cache.format(), KvFormat::Int8);
        // 32 one-byte codes plus one 4-byte scale per token and head.
        assert_eq!(cache.size_in_bytes(), 2 * 2 * (2 * 5 * (32 + 4)));
        let more = ramp((1, 2, 1, 32), 0.2);
        let (k, _) = cache.append(0, &more, &more).unwrap();
        assert_eq!(k.dims(), [1, 2, 6, 32]);
        assert_eq!(k.dtype(), DType::F32);
        cache.truncate(3).unwrap();
        assert_eq!(cache.size_in_bytes(), 2 * 2 * (2 * 3 * (32 + 4)));
        assert_eq!(
            bytes_per_position(KvFormat::Int8, 2, 32, DType::F32) * 3 * 2,
            cache.size_in_bytes() as u64
        );
    }
}
