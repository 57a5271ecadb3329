//! The SiLU-gated MLP of every decoder layer, routed expert and shared
//! expert: `down(silu(gate(x)) · up(x))`.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::linear::Linear;
use super::quant::Quant;

pub struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl Mlp {
    /// Loads `gate_proj`, `up_proj` and `down_proj` under `vb`.
    pub fn load(hidden: usize, inner: usize, vb: VarBuilder, quant: Quant) -> Result<Self> {
        Ok(Mlp {
            gate_proj: Linear::load(hidden, inner, false, vb.pp("gate_proj"), quant)?,
            up_proj: Linear::load(hidden, inner, false, vb.pp("up_proj"), quant)?,
            down_proj: Linear::load(inner, hidden, false, vb.pp("down_proj"), quant)?,
        })
    }

    /// From weights already in `[out, in]` form.
    pub fn from_weights(gate: Tensor, up: Tensor, down: Tensor, quant: Quant) -> Result<Self> {
        Ok(Mlp {
            gate_proj: Linear::new(gate, None, quant)?,
            up_proj: Linear::new(up, None, quant)?,
            down_proj: Linear::new(down, None, quant)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gate = self.gate_proj.forward(x)?.silu()?;
        self.down_proj.forward(&(gate * self.up_proj.forward(x)?)?)
    }

    pub fn weight_bytes(&self) -> usize {
        [&self.gate_proj, &self.up_proj, &self.down_proj]
            .iter()
            .map(|p| p.weight_bytes())
            .sum()
    }
}
