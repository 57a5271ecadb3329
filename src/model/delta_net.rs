//! Gated DeltaNet, the linear-attention layer of Qwen3.5's hybrid decoder:
//! input projections, a short causal depthwise convolution with SiLU,
//! L2-normalised queries and keys, the gated delta rule over a fixed-size
//! state, a gated RMSNorm and the output projection.
//!
//! The delta rule runs in chunks of [`CHUNK`] positions for a prompt and one
//! step at a time while decoding, as transformers' torch fallbacks do; both
//! compute the same state. Everything is tensor ops on the model's device, in
//! f32 like the reference.

use candle_core::{DType, Result, Tensor, D};
use candle_nn::VarBuilder;

use super::config::{LinearAttentionConfig, TextConfig};
use super::linear::{Linear, Quantiser};
use super::recurrent_state::LinearState;

/// Positions per chunk of the prompt form of the delta rule.
pub const CHUNK: usize = 64;

/// What a test may break on purpose (see `Ablations`).
#[derive(Debug, Clone, Copy, Default)]
pub struct DeltaNetAblations {
    /// Start every forward pass from a zero convolution state.
    pub forget_conv_state: bool,
    /// Start every forward pass from a zero recurrent state.
    pub forget_recurrent_state: bool,
}

pub struct GatedDeltaNet {
    in_proj_qkv: Linear,
    in_proj_z: Linear,
    in_proj_b: Linear,
    in_proj_a: Linear,
    /// Convolution taps `(kernel, channels)`, oldest input first.
    conv_taps: Tensor,
    /// `-exp(A_log)`, f32.
    neg_a: Tensor,
    dt_bias: Tensor,
    norm_weight: Tensor,
    out_proj: Linear,
    cfg: LinearAttentionConfig,
    eps: f64,
    pub ablations: DeltaNetAblations,
}

impl GatedDeltaNet {
    pub fn load(
        text: &TextConfig,
        cfg: &LinearAttentionConfig,
        vb: VarBuilder,
        q: &Quantiser,
    ) -> Result<Self> {
        let h = text.hidden_size;
        let key_dim = cfg.num_key_heads * cfg.key_head_dim;
        let value_dim = cfg.num_value_heads * cfg.value_head_dim;
        let conv_dim = cfg.conv_dim();
        let conv = vb.get((conv_dim, 1, cfg.conv_kernel), "conv1d.weight")?;
        let conv_taps = conv.squeeze(1)?.t()?.contiguous()?;
        let a_log = vb.get(cfg.num_value_heads, "A_log")?.to_dtype(DType::F32)?;
        let float = Quantiser::new(super::quant::Quant::None);
        Ok(GatedDeltaNet {
            in_proj_qkv: Linear::load(h, 2 * key_dim + value_dim, false, vb.pp("in_proj_qkv"), q)?,
            in_proj_z: Linear::load(h, value_dim, false, vb.pp("in_proj_z"), q)?,
            in_proj_b: Linear::load(h, cfg.num_value_heads, false, vb.pp("in_proj_b"), &float)?,
            in_proj_a: Linear::load(h, cfg.num_value_heads, false, vb.pp("in_proj_a"), &float)?,
            conv_taps,
            neg_a: a_log.exp()?.neg()?,
            dt_bias: vb
                .get(cfg.num_value_heads, "dt_bias")?
                .to_dtype(DType::F32)?,
            norm_weight: vb.get(cfg.value_head_dim, "norm.weight")?,
            out_proj: Linear::load(value_dim, h, false, vb.pp("out_proj"), q)?,
            cfg: cfg.clone(),
            eps: text.rms_norm_eps,
            ablations: DeltaNetAblations::default(),
        })
    }

    /// Bytes of the projection matrices.
    pub fn weight_bytes(&self) -> usize {
        [
            &self.in_proj_qkv,
            &self.in_proj_z,
            &self.in_proj_b,
            &self.in_proj_a,
            &self.out_proj,
        ]
        .iter()
        .map(|p| p.weight_bytes())
        .sum()
    }

    /// Runs `x` `(b, L, hidden)` on from `state` (none: the start of the
    /// sequence); returns the layer output and the state after the last position.
    pub fn forward(
        &self,
        x: &Tensor,
        state: Option<&LinearState>,
    ) -> Result<(Tensor, LinearState)> {
        let (b, l, _) = x.dims3()?;
        let c = &self.cfg;
        let (conv_prev, recurrent) = match state {
            Some(s) => (
                (!self.ablations.forget_conv_state).then_some(&s.conv),
                (!self.ablations.forget_recurrent_state).then_some(&s.recurrent),
            ),
            None => (None, None),
        };
        let [qkv, z, b_proj, a]: [Tensor; 4] = Linear::forward_shared(
            &[
                &self.in_proj_qkv,
                &self.in_proj_z,
                &self.in_proj_b,
                &self.in_proj_a,
            ],
            x,
        )?
        .try_into()
        .expect("four layers, four outputs");
        let (mixed, conv) = self.causal_conv(&qkv, conv_prev)?;
        let key_dim = c.num_key_heads * c.key_head_dim;
        let q = mixed
            .narrow(2, 0, key_dim)?
            .reshape((b, l, c.num_key_heads, c.key_head_dim))?;
        let k =
            mixed
                .narrow(2, key_dim, key_dim)?
                .reshape((b, l, c.num_key_heads, c.key_head_dim))?;
        let v = mixed
            .narrow(2, 2 * key_dim, c.num_value_heads * c.value_head_dim)?
            .reshape((b, l, c.num_value_heads, c.value_head_dim))?;
        let beta = candle_nn::ops::sigmoid(&b_proj)?;
        let a = a.to_dtype(DType::F32)?;
        let g = softplus(&a.broadcast_add(&self.dt_bias)?)?.broadcast_mul(&self.neg_a)?;
        let (q, k) = (self.repeat_heads(&q)?, self.repeat_heads(&k)?);

        // (b, heads, L, ·) in f32.
        let to_heads = |t: &Tensor| t.transpose(1, 2)?.to_dtype(DType::F32)?.contiguous();
        let q = l2norm(&to_heads(&q)?)?.affine((c.key_head_dim as f64).powf(-0.5), 0.0)?;
        let k = l2norm(&to_heads(&k)?)?;
        let v = to_heads(&v)?;
        let beta = beta.to_dtype(DType::F32)?.transpose(1, 2)?.contiguous()?;
        let g = g.transpose(1, 2)?.contiguous()?;
        let (core, recurrent) = match recurrent {
            Some(s) if l == 1 => recurrent_step(&q, &k, &v, &g, &beta, s)?,
            _ => chunked(&q, &k, &v, &g, &beta, recurrent)?,
        };
        // Back to (b, L, heads, value_head_dim) for the gated norm.
        let core = core.transpose(1, 2)?.to_dtype(x.dtype())?;
        let z = z.reshape((b, l, c.num_value_heads, c.value_head_dim))?;
        let normed = self.gated_norm(&core, &z)?;
        let out = self.out_proj.forward(&normed.reshape((
            b,
            l,
            c.num_value_heads * c.value_head_dim,
        ))?)?;
        Ok((out, LinearState { conv, recurrent }))
    }

    /// Depthwise causal convolution over `(b, L, channels)` continuing from
    /// the previous inputs `prev` `(b, kernel - 1, channels)`, then SiLU;
    /// returns the output and the new previous inputs.
    fn causal_conv(&self, x: &Tensor, prev: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let (b, l, channels) = x.dims3()?;
        let keep = self.cfg.conv_kernel - 1;
        let prev = match prev {
            Some(p) => p.to_dtype(x.dtype())?,
            None => Tensor::zeros((b, keep, channels), x.dtype(), x.device())?,
        };
        let full = Tensor::cat(&[&prev, x], 1)?;
        let taps = self.conv_taps.to_dtype(x.dtype())?;
        let mut out = full.narrow(1, 0, l)?.broadcast_mul(&taps.get(0)?)?;
        for j in 1..self.cfg.conv_kernel {
            out = (out + full.narrow(1, j, l)?.broadcast_mul(&taps.get(j)?)?)?;
        }
        let state = full.narrow(1, l, keep)?.contiguous()?;
        Ok((out.silu()?, state))
    }

    /// Each key head serves `value_heads / key_heads` value heads in a row.
    fn repeat_heads(&self, t: &Tensor) -> Result<Tensor> {
        let c = &self.cfg;
        let r = c.num_value_heads / c.num_key_heads;
        if r == 1 {
            return Ok(t.clone());
        }
        let (b, l, h, d) = t.dims4()?;
        t.unsqueeze(3)?
            .broadcast_as((b, l, h, r, d))?
            .reshape((b, l, h * r, d))
    }

    /// RMSNorm over each head's values (plain weight, not centred), times SiLU(z).
    fn gated_norm(&self, x: &Tensor, z: &Tensor) -> Result<Tensor> {
        let dtype = x.dtype();
        let xf = x.to_dtype(DType::F32)?;
        let var = xf.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = xf
            .broadcast_div(&(var + self.eps)?.sqrt()?)?
            .to_dtype(dtype)?;
        let weighted = normed.broadcast_mul(&self.norm_weight.to_dtype(dtype)?)?;
        let gate = z.to_dtype(DType::F32)?.silu()?;
        weighted.to_dtype(DType::F32)?.mul(&gate)?.to_dtype(dtype)
    }
}

/// `log(1 + exp(x))`, linear above 20 like torch.
fn softplus(x: &Tensor) -> Result<Tensor> {
    let soft = (x.clamp(f32::MIN, 20f32)?.exp()? + 1.0)?.log()?;
    x.gt(20f64)?.where_cond(x, &soft)
}

fn l2norm(x: &Tensor) -> Result<Tensor> {
    let inv = (x.sqr()?.sum_keepdim(D::Minus1)? + 1e-6)?.sqrt()?.recip()?;
    x.broadcast_mul(&inv)
}

/// One position: decay the state, write the corrected value for the key,
/// read with the query. Inputs `(b, h, 1, ·)`; state `(b, h, dk, dv)`.
fn recurrent_step(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    g: &Tensor,
    beta: &Tensor,
    state: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let decay = g.exp()?.unsqueeze(D::Minus1)?; // (b, h, 1, 1)
    let s = state.broadcast_mul(&decay)?;
    let remembered = mm(k, &s)?; // (b, h, 1, dv)
    let delta = (v - remembered)?.broadcast_mul(&beta.unsqueeze(D::Minus1)?)?;
    let s = (s + mm(&k.transpose(2, 3)?.contiguous()?, &delta)?)?;
    let out = mm(q, &s)?;
    Ok((out, s))
}

/// The prompt form: within a chunk, the delta rule's updates are solved as a
/// unit lower-triangular system; across chunks, the state carries on.
/// Inputs `(b, h, L, ·)` f32, `g` and `beta` `(b, h, L)`.
fn chunked(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    g: &Tensor,
    beta: &Tensor,
    initial: Option<&Tensor>,
) -> Result<(Tensor, Tensor)> {
    let (b, h, l, dk) = k.dims4()?;
    let dv = v.dim(3)?;
    let pad = (CHUNK - l % CHUNK) % CHUNK;
    let n = (l + pad) / CHUNK;
    let padded = |t: &Tensor| -> Result<Tensor> {
        let t = if pad > 0 {
            t.pad_with_zeros(2, 0, pad)?
        } else {
            t.clone()
        };
        let dims = t.dims().to_vec();
        if dims.len() == 4 {
            t.reshape((b, h, n, CHUNK, dims[3]))
        } else {
            t.reshape((b, h, n, CHUNK))
        }
    };
    let beta_col = beta.unsqueeze(D::Minus1)?;
    let v_beta = padded(&v.broadcast_mul(&beta_col)?)?;
    let k_beta = padded(&k.broadcast_mul(&beta_col)?)?;
    let (q, k) = (padded(q)?, padded(k)?);
    let cum = padded(g)?.cumsum(3)?; // (b, h, n, C)

    let device = q.device();
    let upper = upper_mask(device)?; // (C, C): -inf above the diagonal
    let pairwise = cum
        .unsqueeze(4)?
        .broadcast_sub(&cum.unsqueeze(3)?)?
        .broadcast_add(&upper)?
        .exp()?;
    let kt = k.transpose(3, 4)?.contiguous()?;
    let system = (mm(&k_beta, &kt)? * &pairwise)?;
    let intra = (mm(&q, &kt)? * &pairwise)?;
    let cum_exp = cum.exp()?.unsqueeze(D::Minus1)?;
    let decayed_k_beta = k_beta.broadcast_mul(&cum_exp)?;
    let inverse = unit_lower_inverse(&system)?;
    let new_values = mm(&inverse, &v_beta)?;
    let k_cumdecay = mm(&inverse, &decayed_k_beta)?;

    let last = cum.narrow(3, CHUNK - 1, 1)?; // (b, h, n, 1)
    let q = q.broadcast_mul(&cum_exp)?;
    let k = k.broadcast_mul(&last.broadcast_sub(&cum)?.exp()?.unsqueeze(D::Minus1)?)?;
    let chunk_decay = last.exp()?.unsqueeze(D::Minus1)?; // (b, h, n, 1, 1)

    let mut state = match initial {
        Some(s) => s.clone(),
        None => Tensor::zeros((b, h, dk, dv), DType::F32, device)?,
    };
    let mut outs = Vec::with_capacity(n);
    for i in 0..n {
        let at = |t: &Tensor| t.narrow(2, i, 1)?.squeeze(2)?.contiguous();
        let v_new = (at(&new_values)? - mm(&at(&k_cumdecay)?, &state)?)?;
        let inter = mm(&at(&q)?, &state)?;
        outs.push((inter + mm(&at(&intra)?, &v_new)?)?);
        state = (state.broadcast_mul(&at(&chunk_decay)?)?
            + mm(&at(&k)?.transpose(2, 3)?.contiguous()?, &v_new)?)?;
    }
    let out = Tensor::cat(&outs, 2)?.narrow(2, 0, l)?;
    Ok((out, state))
}

/// Batched matrix product over any leading dimensions, flattened to one
/// (candle's kernels reject some strides of size-1 batch dimensions).
fn mm(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (ad, bd) = (a.dims(), b.dims());
    let r = ad.len();
    let batch: usize = ad[..r - 2].iter().product();
    let a3 = a.reshape((batch, ad[r - 2], ad[r - 1]))?;
    let b3 = b.reshape((batch, bd[r - 2], bd[r - 1]))?;
    let mut dims = ad[..r - 1].to_vec();
    dims.push(bd[r - 1]);
    a3.matmul(&b3)?.reshape(dims)
}

/// `(C, C)`: 0 on and below the diagonal, -inf above.
fn upper_mask(device: &candle_core::Device) -> Result<Tensor> {
    let mask: Vec<f32> = (0..CHUNK * CHUNK)
        .map(|i| {
            if i % CHUNK > i / CHUNK {
                f32::NEG_INFINITY
            } else {
                0.0
            }
        })
        .collect();
    Tensor::from_vec(mask, (CHUNK, CHUNK), device)
}

/// `(I + strictly_lower(a))⁻¹` for every chunk at once, by forward
/// substitution row by row (transformers' solver-free path).
fn unit_lower_inverse(a: &Tensor) -> Result<Tensor> {
    let device = a.device();
    let dims = a.dims().to_vec();
    let lower: Vec<f32> = (0..CHUNK * CHUNK)
        .map(|i| if i % CHUNK < i / CHUNK { -1.0 } else { 0.0 })
        .collect();
    let lower = Tensor::from_vec(lower, (CHUNK, CHUNK), device)?;
    let m = a.broadcast_mul(&lower)?.contiguous()?;
    let last = dims.len() - 1;
    for i in 1..CHUNK {
        let row = m.narrow(last - 1, i, 1)?.narrow(last, 0, i)?.contiguous()?;
        let sub = m.narrow(last - 1, 0, i)?.narrow(last, 0, i)?.contiguous()?;
        let updated = (&row + mm(&row, &sub)?)?;
        let rest = m.narrow(last - 1, i, 1)?.narrow(last, i, CHUNK - i)?;
        let full = Tensor::cat(&[&updated, &rest.contiguous()?], last)?.contiguous()?;
        m.slice_set(&full, last - 1, i)?;
    }
    m.broadcast_add(&Tensor::eye(CHUNK, DType::F32, device)?)
}
