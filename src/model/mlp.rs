//! The SiLU-gated MLP of every decoder layer, routed expert and shared
//! expert: `down(silu(gate(x)) · up(x))`.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::linear::{Linear, Quantiser};

pub struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl Mlp {
    /// Loads `gate_proj`, `up_proj` and `down_proj` under `vb`.
    pub fn load(hidden: usize, inner: usize, vb: VarBuilder, q: &Quantiser) -> Result<Self> {
        Ok(Mlp {
            gate_proj: Linear::load(hidden, inner, false, vb.pp("gate_proj"), q)?,
            up_proj: Linear::load(hidden, inner, false, vb.pp("up_proj"), q)?,
            down_proj: Linear::load(inner, hidden, false, vb.pp("down_proj"), q)?,
        })
    }

    /// From weights already in `[out, in]` form, cached under
    /// `{prefix}.gate_proj.weight` and so on, as if stored one by one.
    /// The MLP of matrices `[gate, up, down]`, shaped `[outputs, inputs]` as
    /// `dims` says, that `read(i)` gives for matrix `i`; it is called only
    /// for matrices the quantiser's cache does not hold.
    pub fn from_parts(
        prefix: &str,
        dims: [(usize, usize); 3],
        read: impl Fn(usize) -> Result<Tensor>,
        q: &Quantiser,
    ) -> Result<Self> {
        let linear = |i: usize, name: &str| {
            Linear::load_lazily(&format!("{prefix}.{name}.weight"), dims[i], || read(i), q)
        };
        Ok(Mlp {
            gate_proj: linear(0, "gate_proj")?,
            up_proj: linear(1, "up_proj")?,
            down_proj: linear(2, "down_proj")?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let [gate, up] = self.gate_and_up(x)?;
        self.down(&gate, &up)
    }

    /// The gate and up projections of `x`.
    pub fn gate_and_up(&self, x: &Tensor) -> Result<[Tensor; 2]> {
        Ok(Linear::forward_shared(&self.gate_and_up_layers(), x)?
            .try_into()
            .expect("two layers, two outputs"))
    }

    /// The gate and up layers, for running beside others over the same input.
    pub fn gate_and_up_layers(&self) -> [&Linear; 2] {
        [&self.gate_proj, &self.up_proj]
    }

    /// The block's output from its gate and up projections.
    pub fn down(&self, gate: &Tensor, up: &Tensor) -> Result<Tensor> {
        self.down_proj.forward(&(gate.silu()? * up)?)
    }

    pub fn weight_bytes(&self) -> usize {
        [&self.gate_proj, &self.up_proj, &self.down_proj]
            .iter()
            .map(|p| p.weight_bytes())
            .sum()
    }
}
