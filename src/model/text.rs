//! The language model: Qwen2 blocks (q/k/v bias) or Qwen3 blocks (per-head q/k
//! RMSNorm, explicit head_dim), multimodal rotary positions, a growing KV cache.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Embedding, RmsNorm, VarBuilder};
use rayon::prelude::*;

use super::attention::{attention, Scaling, Visibility, MAX_SCORES};
use super::config::TextConfig;
use super::kv_cache::KvCache;
use super::linear::Linear;
use super::quant::Quant;
use super::rope::RopeTables;

struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    q_norm: Option<RmsNorm>,
    k_norm: Option<RmsNorm>,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    fn load(cfg: &TextConfig, vb: VarBuilder, quant: Quant) -> Result<Self> {
        let (h, hd) = (cfg.hidden_size, cfg.head_dim);
        let q_out = cfg.num_attention_heads * hd;
        let kv_out = cfg.num_key_value_heads * hd;
        let bias = cfg.attention_bias;
        let (q_norm, k_norm) = if cfg.qk_norm {
            (
                Some(candle_nn::rms_norm(hd, cfg.rms_norm_eps, vb.pp("q_norm"))?),
                Some(candle_nn::rms_norm(hd, cfg.rms_norm_eps, vb.pp("k_norm"))?),
            )
        } else {
            (None, None)
        };
        Ok(Attention {
            q_proj: Linear::load(h, q_out, bias, vb.pp("q_proj"), quant)?,
            k_proj: Linear::load(h, kv_out, bias, vb.pp("k_proj"), quant)?,
            v_proj: Linear::load(h, kv_out, bias, vb.pp("v_proj"), quant)?,
            o_proj: Linear::load(q_out, h, false, vb.pp("o_proj"), quant)?,
            q_norm,
            k_norm,
            num_heads: cfg.num_attention_heads,
            num_kv_heads: cfg.num_key_value_heads,
            head_dim: hd,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        rope: &RopeTables,
        past: usize,
        cache: &mut KvCache,
        layer: usize,
    ) -> Result<Tensor> {
        let (b, l, _) = x.dims3()?;
        let split = |t: Tensor, heads: usize| t.reshape((b, l, heads, self.head_dim));
        let mut q = split(self.q_proj.forward(x)?, self.num_heads)?;
        let mut k = split(self.k_proj.forward(x)?, self.num_kv_heads)?;
        let v = split(self.v_proj.forward(x)?, self.num_kv_heads)?;
        if let (Some(qn), Some(kn)) = (&self.q_norm, &self.k_norm) {
            q = qn.forward(&q)?;
            k = kn.forward(&k)?;
        }
        let q = q.transpose(1, 2)?.contiguous()?;
        let k = k.transpose(1, 2)?.contiguous()?;
        let v = v.transpose(1, 2)?.contiguous()?;
        let q = candle_nn::rotary_emb::rope(&q, &rope.cos, &rope.sin)?;
        let k = candle_nn::rotary_emb::rope(&k, &rope.cos, &rope.sin)?;
        let (k, v) = cache.append(layer, &k, &v)?;

        let scale = Scaling::Scores(1.0 / (self.head_dim as f64).sqrt());
        let out = attention(&q, &k, &v, scale, Visibility::Causal { past }, MAX_SCORES)?;
        let out = out
            .transpose(1, 2)?
            .reshape((b, l, self.num_heads * self.head_dim))?;
        self.o_proj.forward(&out)
    }
}

struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl Mlp {
    fn load(cfg: &TextConfig, vb: VarBuilder, quant: Quant) -> Result<Self> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Mlp {
            gate_proj: Linear::load(h, i, false, vb.pp("gate_proj"), quant)?,
            up_proj: Linear::load(h, i, false, vb.pp("up_proj"), quant)?,
            down_proj: Linear::load(i, h, false, vb.pp("down_proj"), quant)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gate = self.gate_proj.forward(x)?.silu()?;
        self.down_proj.forward(&(gate * self.up_proj.forward(x)?)?)
    }
}

struct DecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

impl DecoderLayer {
    fn load(cfg: &TextConfig, vb: VarBuilder, quant: Quant) -> Result<Self> {
        Ok(DecoderLayer {
            input_layernorm: candle_nn::rms_norm(
                cfg.hidden_size,
                cfg.rms_norm_eps,
                vb.pp("input_layernorm"),
            )?,
            self_attn: Attention::load(cfg, vb.pp("self_attn"), quant)?,
            post_attention_layernorm: candle_nn::rms_norm(
                cfg.hidden_size,
                cfg.rms_norm_eps,
                vb.pp("post_attention_layernorm"),
            )?,
            mlp: Mlp::load(cfg, vb.pp("mlp"), quant)?,
        })
    }
}

/// Extra vision features added to the hidden states of image tokens after the
/// first decoder layers (Qwen3-VL DeepStack).
pub struct DeepstackInjection<'a> {
    /// Row index, within the chunk, of every image token.
    pub rows: &'a Tensor,
    /// One tensor per layer, `(rows, hidden)`.
    pub features: &'a [Tensor],
}

pub struct TextModel {
    embed_tokens: Embedding,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    lm_head: Linear,
    pub cfg: TextConfig,
}

impl TextModel {
    /// Loads the decoder, its linear layers and output head stored as `quant`
    /// says; `progress` hears of each layer done (layers load in parallel,
    /// since quantising them is the slow part).
    pub fn load(
        cfg: &TextConfig,
        vb: VarBuilder,
        lm_head_vb: Option<VarBuilder>,
        quant: Quant,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Self> {
        let embed_tokens =
            candle_nn::embedding(cfg.vocab_size, cfg.hidden_size, vb.pp("embed_tokens"))?;
        let total = cfg.num_hidden_layers + 1;
        let done = std::sync::atomic::AtomicUsize::new(0);
        let tick = || {
            progress(
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
                total,
            )
        };
        let layers = (0..cfg.num_hidden_layers)
            .into_par_iter()
            .map(|i| {
                let layer = DecoderLayer::load(cfg, vb.pp(format!("layers.{i}")), quant);
                tick();
                layer
            })
            .collect::<Result<Vec<_>>>()?;
        let norm = candle_nn::rms_norm(cfg.hidden_size, cfg.rms_norm_eps, vb.pp("norm"))?;
        let lm_head = match lm_head_vb {
            Some(vb) => Linear::load(cfg.hidden_size, cfg.vocab_size, false, vb, quant)?,
            None => Linear::new(embed_tokens.embeddings().clone(), None, quant)?,
        };
        tick();
        Ok(TextModel {
            embed_tokens,
            layers,
            norm,
            lm_head,
            cfg: cfg.clone(),
        })
    }

    /// Bytes of the weights that go through [`Linear`] (projections and head).
    pub fn linear_bytes(&self) -> usize {
        let layer = |l: &DecoderLayer| {
            let (a, m) = (&l.self_attn, &l.mlp);
            [
                &a.q_proj,
                &a.k_proj,
                &a.v_proj,
                &a.o_proj,
                &m.gate_proj,
                &m.up_proj,
                &m.down_proj,
            ]
            .iter()
            .map(|p| p.weight_bytes())
            .sum::<usize>()
        };
        self.layers.iter().map(layer).sum::<usize>() + self.lm_head.weight_bytes()
    }

    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        self.embed_tokens.forward(ids)
    }

    /// Runs the decoder over `embeds` `(1, L, hidden)` appended to the cache and
    /// returns the f32 logits of the last position.
    pub fn forward_embeds(
        &self,
        embeds: &Tensor,
        rope: &RopeTables,
        cache: &mut KvCache,
        deepstack: Option<DeepstackInjection>,
    ) -> Result<Tensor> {
        let (_, l, _) = embeds.dims3()?;
        let past = cache.len();
        let mut h = embeds.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            let residual = h.clone();
            let x = layer.input_layernorm.forward(&h)?;
            let x = layer.self_attn.forward(&x, rope, past, cache, i)?;
            let h1 = (residual + x)?;
            let x = layer.post_attention_layernorm.forward(&h1)?;
            h = (h1.clone() + layer.mlp.forward(&x)?)?;
            if let Some(ds) = &deepstack {
                if let Some(feat) = ds.features.get(i) {
                    let rows = h
                        .squeeze(0)?
                        .index_add(ds.rows, &feat.to_dtype(h.dtype())?, 0)?;
                    h = rows.unsqueeze(0)?;
                }
            }
        }
        cache.advance(l);
        let last = h.narrow(1, l - 1, 1)?;
        let last = self.norm.forward(&last)?;
        self.lm_head
            .forward(&last)?
            .squeeze(0)?
            .squeeze(0)?
            .to_dtype(DType::F32)
    }
}
