//! Keys and values of every decoder layer, grown as the conversation grows (never
//! allocated for the whole context up front) and cut back when a new prompt
//! shares only part of what is cached.

use candle_core::{Result, Tensor};

pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    len: usize,
}

impl KvCache {
    pub fn new(num_layers: usize) -> Self {
        KvCache {
            layers: vec![None; num_layers],
            len: 0,
        }
    }

    /// Number of positions cached.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends a chunk's keys and values `(b, kv_heads, L, head_dim)` for one layer
    /// and returns everything cached for it, the chunk included.
    pub fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let slot = &mut self.layers[layer];
        let (k, v) = match slot.take() {
            None => (k.clone(), v.clone()),
            Some((pk, pv)) => (Tensor::cat(&[&pk, k], 2)?, Tensor::cat(&[&pv, v], 2)?),
        };
        *slot = Some((k.clone(), v.clone()));
        Ok((k, v))
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
            if let Some((k, v)) = slot.take() {
                if len > 0 {
                    *slot = Some((k.narrow(2, 0, len)?, v.narrow(2, 0, len)?));
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
            .map(|(k, v)| (k.elem_count() + v.elem_count()) * k.dtype().size_in_bytes())
            .sum()
    }
}
