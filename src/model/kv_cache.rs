//! Keys and values of every decoder layer, grown as the conversation grows (never
//! allocated for the whole context up front) and cut back when a new prompt
//! shares only part of what is cached.
//!
//! In the model's dtype the cache is a buffer with room to spare, grown in
//! whole [`CHUNK`]s of positions: each step writes its keys and values in
//! place and attention reads a view of the filled part, so a decode step
//! copies one position per layer instead of the whole cache.
//!
//! Two storage formats: the model's own dtype, or INT8 with one f32 scale per
//! token and head (symmetric, absmax / 127), quantised on append and
//! dequantised to the model dtype for attention. A cache can switch from the
//! first to the second at any time (memory pressure); never back.

use candle_core::{DType, Result, Tensor};

use super::recurrent_state::RecurrentStates;

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

/// Positions a model-dtype buffer grows by when it is full.
pub const CHUNK: usize = 512;

/// Keys and values `(b, kv_heads, capacity, head_dim)`, contiguous; the first
/// `KvCache::len` positions are filled.
struct Buffers {
    k: Tensor,
    v: Tensor,
}

impl Buffers {
    fn capacity(&self) -> usize {
        self.k.dim(2).unwrap_or(0)
    }

    /// Room for at least `need` positions, keeping the first `filled`.
    fn with_room(self, filled: usize, need: usize, limit: usize) -> Result<Buffers> {
        if need <= self.capacity() {
            return Ok(self);
        }
        // A quarter more at least, so that a long conversation is copied a
        // bounded number of times per position, with at most a quarter spare.
        let ahead = need
            .max(self.capacity() + self.capacity() / 4)
            .div_ceil(CHUNK)
            * CHUNK;
        let capacity = ahead.min(limit).max(need);
        let grow = |t: &Tensor| -> Result<Tensor> {
            let (b, h, _, d) = t.dims4()?;
            let fresh = Tensor::zeros((b, h, capacity, d), t.dtype(), t.device())?;
            if filled > 0 {
                fresh.slice_set(&t.narrow(2, 0, filled)?.contiguous()?, 2, 0)?;
            }
            Ok(fresh)
        };
        Ok(Buffers {
            k: grow(&self.k)?,
            v: grow(&self.v)?,
        })
    }

    fn empty_like(k: &Tensor, v: &Tensor) -> Result<Buffers> {
        let zero = |t: &Tensor| -> Result<Tensor> {
            let (b, h, _, d) = t.dims4()?;
            Tensor::zeros((b, h, 0, d), t.dtype(), t.device())
        };
        Ok(Buffers {
            k: zero(k)?,
            v: zero(v)?,
        })
    }

    /// The filled part, as views of the buffers.
    fn filled(&self, len: usize) -> Result<(Tensor, Tensor)> {
        Ok((self.k.narrow(2, 0, len)?, self.v.narrow(2, 0, len)?))
    }

    fn size_in_bytes(&self) -> usize {
        (self.k.elem_count() + self.v.elem_count()) * self.k.dtype().size_in_bytes()
    }
}

enum Slot {
    Model(Buffers),
    Int8(Quantized, Quantized),
}

pub struct KvCache {
    layers: Vec<Option<Slot>>,
    /// Gated DeltaNet layers' states (hybrid decoders); unused otherwise.
    states: RecurrentStates,
    len: usize,
    format: KvFormat,
    /// Most positions a buffer makes room for ahead of need.
    limit: usize,
}

impl KvCache {
    pub fn new(num_layers: usize) -> Self {
        Self::with_format(num_layers, KvFormat::Model)
    }

    pub fn with_format(num_layers: usize, format: KvFormat) -> Self {
        KvCache {
            layers: (0..num_layers).map(|_| None).collect(),
            states: RecurrentStates::new(num_layers),
            len: 0,
            format,
            limit: usize::MAX,
        }
    }

    /// Room is never made for more than `positions` (the context limit), so
    /// the spare room stays within what the memory estimate reserved.
    pub fn with_limit(mut self, positions: usize) -> Self {
        self.limit = positions;
        self
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
        let filled = self.len;
        let slot = &mut self.layers[layer];
        match self.format {
            KvFormat::Model => {
                let buffers = match slot.take() {
                    None => Buffers::empty_like(k, v)?,
                    Some(Slot::Model(b)) => b,
                    Some(Slot::Int8(..)) => {
                        candle_core::bail!("an INT8 KV cache cannot go back to the model dtype")
                    }
                };
                let n = k.dim(2)?;
                let buffers = buffers.with_room(filled, filled + n, self.limit)?;
                buffers.k.slice_set(&k.contiguous()?, 2, filled)?;
                buffers.v.slice_set(&v.contiguous()?, 2, filled)?;
                let out = buffers.filled(filled + n)?;
                *slot = Some(Slot::Model(buffers));
                Ok(out)
            }
            KvFormat::Int8 => {
                let (qk, qv) = (Quantized::of(k)?, Quantized::of(v)?);
                let (qk, qv) = match slot.take() {
                    None => (qk, qv),
                    Some(Slot::Int8(pk, pv)) => (pk.cat(&qk)?, pv.cat(&qv)?),
                    Some(Slot::Model(b)) => {
                        let (pk, pv) = b.filled(filled)?;
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
        let filled = self.len;
        for slot in self.layers.iter_mut() {
            match slot.take() {
                Some(Slot::Model(b)) => {
                    let (k, v) = b.filled(filled)?;
                    *slot = Some(Slot::Int8(Quantized::of(&k)?, Quantized::of(&v)?));
                }
                other => *slot = other,
            }
        }
        self.format = KvFormat::Int8;
        Ok(())
    }

    /// Called once per forward pass, after every layer appended `n` positions.
    pub fn advance(&mut self, n: usize) {
        self.len += n;
    }

    pub fn states(&self) -> &RecurrentStates {
        &self.states
    }

    pub fn states_mut(&mut self) -> &mut RecurrentStates {
        &mut self.states
    }

    /// Remembers the recurrent states at the current length, so that a later
    /// [`Self::truncate`] can come back here.
    pub fn checkpoint(&mut self) {
        self.states.checkpoint(self.len);
    }

    /// The most positions up to `len` that [`Self::truncate`] can keep.
    pub fn reachable(&self, len: usize) -> usize {
        self.states.reachable(len, self.len)
    }

    /// Keeps the first `len` positions, or fewer where recurrent states only
    /// go back to an earlier checkpoint; returns how many were kept (a
    /// model-dtype buffer keeps its room; later appends overwrite what was cut).
    pub fn truncate(&mut self, len: usize) -> Result<usize> {
        if len >= self.len {
            return Ok(self.len);
        }
        let len = self.states.reachable(len, self.len);
        if self.states.is_used() {
            self.states.restore(len);
        }
        for slot in self.layers.iter_mut() {
            *slot = match slot.take() {
                _ if len == 0 => None,
                Some(Slot::Int8(k, v)) => Some(Slot::Int8(k.narrow(len)?, v.narrow(len)?)),
                kept => kept,
            };
        }
        self.len = len;
        Ok(len)
    }

    pub fn clear(&mut self) {
        self.layers.iter_mut().for_each(|s| *s = None);
        self.states.clear();
        self.len = 0;
    }

    /// Bytes of the cached positions (what a format costs per position).
    pub fn size_in_bytes(&self) -> usize {
        let filled = self.len;
        self.bytes(|b| b.size_in_bytes() / b.capacity().max(1) * filled)
            + self.states.size_in_bytes()
    }

    /// Bytes the cache holds on its device, spare room included.
    pub fn reserved_bytes(&self) -> usize {
        self.bytes(Buffers::size_in_bytes) + self.states.size_in_bytes()
    }

    fn bytes(&self, of_buffers: impl Fn(&Buffers) -> usize) -> usize {
        self.layers
            .iter()
            .flatten()
            .map(|s| match s {
                Slot::Model(b) => of_buffers(b),
                Slot::Int8(k, v) => k.size_in_bytes() + v.size_in_bytes(),
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_util::max_abs;
    use candle_core::Device;

    fn ramp(shape: (usize, usize, usize, usize), scale: f32) -> Tensor {
        let n = shape.0 * shape.1 * shape.2 * shape.3;
        let data: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * scale)
            .collect();
        Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
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
        assert_eq!(cache.size_in_bytes(), 2 * 2 * (2 * 5 * 32) * 4);
        // Two layers, keys and values, room for one chunk of positions.
        assert_eq!(cache.reserved_bytes(), 2 * 2 * (2 * CHUNK * 32) * 4);
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

    /// Appends `steps` chunks of the given lengths to every layer and returns
    /// layer 0's keys after each.
    fn grow(cache: &mut KvCache, steps: &[usize], seed: f32) -> Vec<Tensor> {
        let mut seen = Vec::new();
        for (i, &n) in steps.iter().enumerate() {
            let k = ramp((1, 2, n, 8), seed + i as f32);
            let v = ramp((1, 2, n, 8), -seed - i as f32);
            for layer in 0..2 {
                let (ck, _) = cache.append(layer, &k, &v).unwrap();
                if layer == 0 {
                    seen.push(ck);
                }
            }
            cache.advance(n);
        }
        seen
    }

    #[test]
    fn writing_in_place_gives_what_concatenation_gives() {
        // A prompt, steps of one, and a prompt that crosses a chunk boundary.
        let steps = [3, 1, 1, CHUNK - 4, 2, 1];
        let mut cache = KvCache::new(2);
        let seen = grow(&mut cache, &steps, 0.01);
        let mut expected: Option<Tensor> = None;
        for (i, (&n, got)) in steps.iter().zip(&seen).enumerate() {
            let k = ramp((1, 2, n, 8), 0.01 + i as f32);
            let all = match expected.take() {
                None => k,
                Some(e) => Tensor::cat(&[&e, &k], 2).unwrap(),
            };
            assert_eq!(got.dims(), all.dims(), "step {i}");
            assert_eq!(max_abs(&(got - &all).unwrap()), 0.0, "step {i}");
            expected = Some(all);
        }
        assert_eq!(cache.len(), CHUNK + 4);
        assert_eq!(cache.size_in_bytes(), 2 * 2 * (2 * (CHUNK + 4) * 8) * 4);
        assert_eq!(cache.reserved_bytes(), 2 * 2 * (2 * 2 * CHUNK * 8) * 4);
    }

    #[test]
    fn room_grows_by_a_quarter_within_the_limit() {
        let mut cache = KvCache::new(2).with_limit(5 * CHUNK + 3);
        grow(&mut cache, &[4 * CHUNK + 1], 0.1);
        let per_position = 2 * 2 * 2 * 8 * 4;
        assert_eq!(cache.reserved_bytes(), 5 * CHUNK * per_position);
        grow(&mut cache, &[CHUNK], 0.1);
        // A quarter more would be 6.25 chunks; the limit stops it.
        assert_eq!(cache.reserved_bytes(), (5 * CHUNK + 3) * per_position);
        // Past the limit (the engine refuses such prompts) it still works.
        grow(&mut cache, &[3], 0.1);
        assert_eq!(cache.len(), 5 * CHUNK + 4);
    }

    #[test]
    fn cut_positions_are_overwritten_and_earlier_views_keep_their_length() {
        let mut cache = KvCache::new(2);
        let first = grow(&mut cache, &[4, 2], 0.5);
        cache.truncate(4).unwrap();
        let again = grow(&mut cache, &[1], 7.0);
        let (k4, k1) = (&first[0], &again[0]);
        assert_eq!(k1.dims(), [1, 2, 5, 8]);
        assert_eq!(max_abs(&(k1.narrow(2, 0, 4).unwrap() - k4).unwrap()), 0.0);
        let fresh = ramp((1, 2, 1, 8), 7.0);
        assert_eq!(
            max_abs(&(k1.narrow(2, 4, 1).unwrap() - fresh).unwrap()),
            0.0
        );
        cache.truncate(0).unwrap();
        assert!(cache.is_empty());
        assert_eq!(cache.reserved_bytes(), 0);
        assert_eq!(grow(&mut cache, &[2], 1.0)[0].dims(), [1, 2, 2, 8]);
    }

    #[test]
    fn converting_a_partly_filled_buffer_quantises_only_the_filled_part() {
        let mut cache = KvCache::new(2);
        grow(&mut cache, &[3], 0.2);
        cache.convert_to_int8().unwrap();
        assert_eq!(cache.size_in_bytes(), 2 * 2 * (2 * 3 * (8 + 4)));
        let (k, _) = cache
            .append(0, &ramp((1, 2, 1, 8), 1.0), &ramp((1, 2, 1, 8), 1.0))
            .unwrap();
        assert_eq!(k.dims(), [1, 2, 4, 8]);
    }
}
