//! The fixed-size state of Gated DeltaNet layers, and checkpoints of it.
//!
//! A key/value cache can be cut back to any prefix; a recurrent state cannot:
//! it summarises every position seen. So the cache keeps copies of all linear
//! layers' states at a few positions (where a prompt or an answer ended), and
//! going back means returning to the latest checkpoint at or before the
//! wanted position. States are never written in place (every step makes new
//! tensors), so a checkpoint shares its tensors with the live state and costs
//! nothing until the live state moves on.

use candle_core::Tensor;

/// Most checkpoints kept; the oldest goes first. Two per turn (the prompt's
/// end and the answer's) cover a follow-up question and a regenerated answer.
pub const MAX_CHECKPOINTS: usize = 4;

/// One linear layer's state after some position.
#[derive(Clone)]
pub struct LinearState {
    /// The last `kernel - 1` inputs of the causal convolution, `(b, kernel - 1, channels)`.
    pub conv: Tensor,
    /// The delta rule's memory, `(b, value_heads, key_head_dim, value_head_dim)`, f32.
    pub recurrent: Tensor,
}

impl LinearState {
    fn size_in_bytes(&self) -> usize {
        [&self.conv, &self.recurrent]
            .iter()
            .map(|t| t.elem_count() * t.dtype().size_in_bytes())
            .sum()
    }
}

#[derive(Clone, Default)]
pub struct RecurrentStates {
    /// One slot per decoder layer; `None` for full-attention layers and
    /// before the first position.
    live: Vec<Option<LinearState>>,
    /// `(position, states)`, positions increasing.
    checkpoints: Vec<(usize, Vec<Option<LinearState>>)>,
}

impl RecurrentStates {
    pub fn new(num_layers: usize) -> Self {
        RecurrentStates {
            live: vec![None; num_layers],
            checkpoints: Vec::new(),
        }
    }

    pub fn get(&self, layer: usize) -> Option<&LinearState> {
        self.live.get(layer).and_then(Option::as_ref)
    }

    pub fn set(&mut self, layer: usize, state: LinearState) {
        self.live[layer] = Some(state);
    }

    /// Whether any layer holds a state, i.e. positions cannot simply be cut.
    pub fn is_used(&self) -> bool {
        self.live.iter().any(Option::is_some)
    }

    /// Remembers the live states as those after `position`.
    pub fn checkpoint(&mut self, position: usize) {
        if !self.is_used() {
            return;
        }
        self.checkpoints.retain(|(p, _)| *p < position);
        self.checkpoints.push((position, self.live.clone()));
        if self.checkpoints.len() > MAX_CHECKPOINTS {
            self.checkpoints.remove(0);
        }
    }

    /// The furthest position at or before `len` the states can return to,
    /// given that the live states are those after `current`.
    pub fn reachable(&self, len: usize, current: usize) -> usize {
        if len >= current || !self.is_used() {
            return len.min(current);
        }
        self.checkpoints
            .iter()
            .rev()
            .map(|(p, _)| *p)
            .find(|&p| p <= len)
            .unwrap_or(0)
    }

    /// Returns to the checkpoint at `position` (0: no state at all); the
    /// position must come from [`Self::reachable`].
    pub fn restore(&mut self, position: usize) {
        self.checkpoints.retain(|(p, _)| *p <= position);
        match self.checkpoints.last() {
            Some((p, states)) if *p == position => self.live = states.clone(),
            _ => self.clear(),
        }
    }

    pub fn clear(&mut self) {
        self.live.iter_mut().for_each(|s| *s = None);
        self.checkpoints.clear();
    }

    /// Bytes of the live states (checkpoints share or add at most as much each).
    pub fn size_in_bytes(&self) -> usize {
        self.live
            .iter()
            .flatten()
            .map(LinearState::size_in_bytes)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;
    use crate::model::KvCache;

    fn state(value: f32) -> LinearState {
        let t = |shape: (usize, usize, usize)| Tensor::full(value, shape, &Device::Cpu).unwrap();
        LinearState {
            conv: t((1, 3, 4)),
            recurrent: t((1, 2, 2)).unsqueeze(0).unwrap(),
        }
    }

    fn live_value(cache: &KvCache) -> Option<f32> {
        cache
            .states()
            .get(1)
            .map(|s| s.recurrent.flatten_all().unwrap().to_vec1::<f32>().unwrap()[0])
    }

    /// Feeds `n` positions whose state is `value` (layer 1 is linear).
    fn feed(cache: &mut KvCache, n: usize, value: f32) {
        cache.states_mut().set(1, state(value));
        cache.advance(n);
    }

    #[test]
    fn truncating_returns_to_the_latest_checkpoint_at_or_before_the_length() {
        let mut cache = KvCache::new(2);
        feed(&mut cache, 10, 1.0);
        cache.checkpoint();
        feed(&mut cache, 5, 2.0);
        cache.checkpoint();
        feed(&mut cache, 7, 3.0);
        assert_eq!(
            cache.reachable(22),
            22,
            "the live state needs no checkpoint"
        );
        assert_eq!(cache.reachable(20), 15);
        assert_eq!(cache.truncate(20).unwrap(), 15);
        assert_eq!((cache.len(), live_value(&cache)), (15, Some(2.0)));
        assert_eq!(cache.truncate(12).unwrap(), 10);
        assert_eq!(live_value(&cache), Some(1.0));
        assert_eq!(cache.truncate(9).unwrap(), 0, "nothing before the first");
        assert_eq!(live_value(&cache), None);
    }

    #[test]
    fn checkpoints_are_bounded_and_a_cache_without_states_truncates_anywhere() {
        let mut cache = KvCache::new(2);
        for i in 0..(MAX_CHECKPOINTS + 2) {
            feed(&mut cache, 1, i as f32);
            cache.checkpoint();
        }
        let oldest_kept = cache.len() - MAX_CHECKPOINTS + 1;
        assert_eq!(cache.reachable(oldest_kept), oldest_kept);
        assert_eq!(cache.reachable(oldest_kept - 1), 0);
        let mut plain = KvCache::new(2);
        plain.advance(9);
        assert_eq!(plain.truncate(4).unwrap(), 4);
    }
}
