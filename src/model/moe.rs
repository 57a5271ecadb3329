//! The sparse mixture-of-experts MLP block: a router picks `k` of the
//! layer's experts for each token, each chosen expert (a SiLU-gated MLP) runs
//! on exactly the tokens routed to it, and their outputs are summed with the
//! router's weights. Qwen3.5-MoE adds a shared expert every token goes
//! through, scaled by `sigmoid(shared_expert_gate(x))`.
//!
//! Checkpoints store the experts in one of two layouts: one module per
//! expert (`experts.{e}.gate_proj.weight`, Qwen3.5-MoE releases), or fused
//! per layer (`experts.gate_up_proj [experts, hidden, 2·inner]` and
//! `experts.down_proj [experts, inner, hidden]`, Qwen3-VL-MoE releases),
//! which is `[in, out]` per expert and is transposed here at load.
//!
//! Mirrors transformers' `Qwen3VLMoeTextSparseMoeBlock` (with its
//! `Qwen3VLMoeTextTopKRouter` and `Qwen3VLMoeTextExperts`,
//! `models/qwen3_vl_moe/modeling_qwen3_vl_moe.py`) and
//! `Qwen3_5MoeSparseMoeBlock` (`models/qwen3_5_moe/modeling_qwen3_5_moe.py`).

use std::cell::OnceCell;

use candle_core::{DType, Result, Tensor};
use candle_nn::VarBuilder;

use super::config::{MoeConfig, TextConfig};
use super::linear::Linear;
use super::linear::Quantiser;
use super::mlp::Mlp;
use super::quant::Quant;

/// Deliberate departures, for tests that prove the parity tests catch them.
#[derive(Debug, Clone, Copy, Default)]
pub struct MoeAblations {
    /// Weigh the chosen experts by their softmax probabilities as they are,
    /// without renormalising them to sum to one.
    pub unnormalised_routing: bool,
    /// Add the shared expert's output without its sigmoid gate.
    pub ungated_shared_expert: bool,
    /// Read fused expert tensors as if they were already `[out, in]` (at load).
    pub fused_experts_untransposed: bool,
}

struct SharedExpert {
    mlp: Mlp,
    gate: Linear,
}

pub struct SparseMoe {
    /// `[experts, hidden]`, kept in the float dtype: it is small, and the
    /// choice of experts should not move with the quantisation.
    router: Linear,
    experts: Vec<Mlp>,
    top_k: usize,
    shared: Option<SharedExpert>,
    pub ablations: MoeAblations,
}

impl SparseMoe {
    pub fn load(
        cfg: &TextConfig,
        moe: &MoeConfig,
        vb: VarBuilder,
        q: &Quantiser,
        ablations: MoeAblations,
    ) -> Result<Self> {
        let h = cfg.hidden_size;
        let float = Quantiser::new(Quant::None);
        let router = Linear::load(h, moe.num_experts, false, vb.pp("gate"), &float)?;
        let experts = load_experts(moe, h, vb.pp("experts"), &q.for_single_rows(), ablations)?;
        let shared = match moe.shared_expert_intermediate_size {
            Some(inner) => Some(SharedExpert {
                mlp: Mlp::load(h, inner, vb.pp("shared_expert"), q)?,
                gate: Linear::load(h, 1, false, vb.pp("shared_expert_gate"), &float)?,
            }),
            None => None,
        };
        Ok(SparseMoe {
            router,
            experts,
            top_k: moe.experts_per_token,
            shared,
            ablations,
        })
    }

    /// Bytes of the weights that go through [`Linear`]: router, experts and
    /// the shared expert with its gate.
    pub fn weight_bytes(&self) -> usize {
        let shared = self
            .shared
            .as_ref()
            .map_or(0, |s| s.mlp.weight_bytes() + s.gate.weight_bytes());
        self.router.weight_bytes()
            + self.experts.iter().map(Mlp::weight_bytes).sum::<usize>()
            + shared
    }

    /// `x` is `(…, hidden)`; each token goes through its own experts only.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let hidden = *dims.last().unwrap_or(&0);
        let rows = x.elem_count() / hidden.max(1);
        let x = x.reshape((rows, hidden))?;
        let logits: Vec<Vec<f32>> = self.router.forward(&x)?.to_dtype(DType::F32)?.to_vec2()?;
        if let [row] = logits.as_slice() {
            return self.one_token(&x, row)?.reshape(dims);
        }
        let mut by_expert: Vec<(Vec<u32>, Vec<f32>)> = vec![(vec![], vec![]); self.experts.len()];
        for (token, row) in logits.iter().enumerate() {
            for (expert, weight) in route(row, self.top_k, !self.ablations.unnormalised_routing) {
                by_expert[expert].0.push(token as u32);
                by_expert[expert].1.push(weight);
            }
        }
        // Each expert over its tokens, in expert order; one scatter adds
        // them up, token by token in that same order.
        let (mut outputs, mut targets) = (vec![], vec![]);
        for (expert, (tokens, weights)) in self.experts.iter().zip(&by_expert) {
            if tokens.is_empty() {
                continue;
            }
            let index = Tensor::new(tokens.as_slice(), x.device())?;
            let y = expert.forward(&x.index_select(&index, 0)?)?;
            let w = Tensor::new(weights.as_slice(), x.device())?
                .to_dtype(x.dtype())?
                .unsqueeze(1)?;
            outputs.push(y.broadcast_mul(&w)?);
            targets.extend_from_slice(tokens);
        }
        let mut out = Tensor::zeros((rows, hidden), x.dtype(), x.device())?;
        if !outputs.is_empty() {
            let targets = Tensor::new(targets.as_slice(), x.device())?;
            out = out.index_add(&targets, &Tensor::cat(&outputs, 0)?, 0)?;
        }
        if let Some(shared) = &self.shared {
            let [gate, up] = shared.mlp.gate_and_up(&x)?;
            out = (out + self.shared_output(shared, &x, &gate, &up)?)?;
        }
        out.reshape(dims)
    }

    /// One token (decoding): no gather or scatter, and the gate and up
    /// projections of every chosen expert and of the shared expert in one
    /// call. The outputs add up in expert order from zero, as in the
    /// general path, so the sums are the same to the bit.
    fn one_token(&self, x: &Tensor, logits: &[f32]) -> Result<Tensor> {
        let mut chosen = route(logits, self.top_k, !self.ablations.unnormalised_routing);
        chosen.sort_by_key(|&(expert, _)| expert);
        let mut layers: Vec<&Linear> = chosen
            .iter()
            .flat_map(|&(e, _)| self.experts[e].gate_and_up_layers())
            .collect();
        if let Some(shared) = &self.shared {
            layers.extend(shared.mlp.gate_and_up_layers());
        }
        let projected = Linear::forward_shared(&layers, x)?;
        let mut out = x.zeros_like()?;
        for (i, &(e, weight)) in chosen.iter().enumerate() {
            let y = self.experts[e].down(&projected[2 * i], &projected[2 * i + 1])?;
            let w = Tensor::new(&[weight], x.device())?.to_dtype(x.dtype())?;
            out = (out + y.broadcast_mul(&w)?)?;
        }
        if let Some(shared) = &self.shared {
            let n = 2 * chosen.len();
            out = (out + self.shared_output(shared, x, &projected[n], &projected[n + 1])?)?;
        }
        Ok(out)
    }

    /// The shared expert's output from its gate and up projections, scaled
    /// by its sigmoid gate.
    fn shared_output(
        &self,
        shared: &SharedExpert,
        x: &Tensor,
        gate: &Tensor,
        up: &Tensor,
    ) -> Result<Tensor> {
        let y = shared.mlp.down(gate, up)?;
        if self.ablations.ungated_shared_expert {
            return Ok(y);
        }
        y.broadcast_mul(&candle_nn::ops::sigmoid(&shared.gate.forward(x)?)?)
    }
}

/// The `k` experts with the highest softmax probability over `logits`, with
/// their weights: the probabilities, renormalised over the chosen ones when
/// `renormalise`.
fn route(logits: &[f32], k: usize, renormalise: bool) -> Vec<(usize, f32)> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    let mut order: Vec<usize> = (0..logits.len()).collect();
    // Highest first; ties keep the lower index first.
    order.sort_by(|&a, &b| exps[b].total_cmp(&exps[a]).then(a.cmp(&b)));
    order.truncate(k);
    let chosen: Vec<(usize, f32)> = order.iter().map(|&e| (e, exps[e] / sum)).collect();
    if !renormalise {
        return chosen;
    }
    let total: f32 = chosen.iter().map(|(_, p)| p).sum();
    chosen.into_iter().map(|(e, p)| (e, p / total)).collect()
}

fn load_experts(
    moe: &MoeConfig,
    hidden: usize,
    vb: VarBuilder,
    q: &Quantiser,
    ablations: MoeAblations,
) -> Result<Vec<Mlp>> {
    let (n, inner) = (moe.num_experts, moe.expert_intermediate_size);
    if !vb.contains_tensor("gate_up_proj") {
        return (0..n)
            .map(|e| Mlp::load(hidden, inner, vb.pp(e), q))
            .collect();
    }
    // The layer's fused tensors are read once, and only if some expert's
    // matrix is not in the weights cache: a cached load reads none of them
    // (they are the bulk of the checkpoint, and read whole they doubled the
    // memory peak of a load).
    let fused: OnceCell<(Tensor, Tensor)> = OnceCell::new();
    let tensors = || -> Result<&(Tensor, Tensor)> {
        if fused.get().is_none() {
            let gate_up = vb.get((n, hidden, 2 * inner), "gate_up_proj")?;
            let down = vb.get((n, inner, hidden), "down_proj")?;
            let _ = fused.set((gate_up, down));
        }
        Ok(fused.get().expect("set above"))
    };
    let untransposed = ablations.fused_experts_untransposed;
    let dims = [(inner, hidden), (inner, hidden), (hidden, inner)];
    (0..n)
        .map(|e| {
            let read = |part: usize| -> Result<Tensor> {
                let (gate_up, down) = tensors()?;
                if part == 2 {
                    return out_in(&down.get(e)?, hidden, inner, untransposed);
                }
                // The first half of the outputs is the gate, the second the
                // up projection: each half is taken before it is laid out
                // `[out, in]`, with storage of its own, since quantising
                // reads a tensor's whole storage.
                let gate_up = gate_up.get(e)?;
                let half = if untransposed {
                    gate_up
                        .force_contiguous()?
                        .reshape((2 * inner, hidden))?
                        .narrow(0, part * inner, inner)?
                } else {
                    gate_up.narrow(1, part * inner, inner)?.t()?
                };
                half.force_contiguous()
            };
            Mlp::from_parts(&format!("{}.{e}", vb.prefix()), dims, read, q)
        })
        .collect()
}

/// One expert's stored `[in, out]` matrix as `[out, in]`.
fn out_in(stored: &Tensor, out: usize, inputs: usize, untransposed: bool) -> Result<Tensor> {
    if untransposed {
        stored.force_contiguous()?.reshape((out, inputs))
    } else {
        stored.t()?.contiguous()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_picks_the_largest_and_renormalises_them() {
        let logits = [0.0, 2.0, 1.0, -1.0];
        let picked = route(&logits, 2, true);
        assert_eq!(picked.iter().map(|p| p.0).collect::<Vec<_>>(), vec![1, 2]);
        let e = std::f32::consts::E;
        assert!((picked[0].1 - e / (e + 1.0)).abs() < 1e-6);
        assert!((picked[0].1 + picked[1].1 - 1.0).abs() < 1e-6);
        let raw = route(&logits, 2, false);
        let sum: f32 = logits.iter().map(|l| l.exp()).sum();
        assert!((raw[0].1 - 2f32.exp() / sum).abs() < 1e-6);
        assert!(raw[0].1 + raw[1].1 < 0.95);
    }
}
