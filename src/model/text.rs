//! The language model: Qwen2 blocks (q/k/v bias) or Qwen3 blocks (per-head q/k
//! RMSNorm, explicit head_dim), multimodal rotary positions, a growing KV cache.
//! Qwen3.5 mixes in Gated DeltaNet layers (`delta_net`), gates the attention
//! output, rotates only part of each head and stores norm weights centred on zero.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Embedding, RmsNorm, VarBuilder};
use rayon::prelude::*;

use super::attention::{attention, Scaling, Visibility, MAX_SCORES};
use super::config::{LayerKind, TextConfig};
use super::delta_net::{DeltaNetAblations, GatedDeltaNet};
use super::kv_cache::KvCache;
use super::linear::{Linear, Quantiser};
use super::mlp::Mlp;
use super::moe::{MoeAblations, SparseMoe};
use super::rope::RopeTables;

/// An RMSNorm whose checkpoint weight may be stored centred on zero
/// (applied as `1 + weight`).
struct Norm {
    stored: Tensor,
    norm: RmsNorm,
    eps: f64,
}

impl Norm {
    fn load(size: usize, cfg: &TextConfig, vb: VarBuilder) -> Result<Self> {
        let stored = vb.get(size, "weight")?;
        let applied = if cfg.zero_centred_norms {
            // In f32 like the reference, then back to the model's dtype.
            (stored.to_dtype(DType::F32)? + 1.0)?.to_dtype(stored.dtype())?
        } else {
            stored.clone()
        };
        Ok(Norm {
            norm: RmsNorm::new(applied, cfg.rms_norm_eps),
            stored,
            eps: cfg.rms_norm_eps,
        })
    }

    /// Applies the stored weight as it is (an ablation).
    fn use_stored_weight(&mut self) {
        self.norm = RmsNorm::new(self.stored.clone(), self.eps);
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.norm.forward(x)
    }
}

struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    q_norm: Option<Norm>,
    k_norm: Option<Norm>,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
    rotary_dim: usize,
    /// `q_proj` yields each head's query followed by its output gate.
    output_gate: bool,
    output_gate_ablated: bool,
}

impl Attention {
    fn load(cfg: &TextConfig, vb: VarBuilder, q: &Quantiser) -> Result<Self> {
        let (h, hd) = (cfg.hidden_size, cfg.head_dim);
        let q_out = cfg.num_attention_heads * hd;
        let kv_out = cfg.num_key_value_heads * hd;
        let bias = cfg.attention_bias;
        let (q_norm, k_norm) = if cfg.qk_norm {
            (
                Some(Norm::load(hd, cfg, vb.pp("q_norm"))?),
                Some(Norm::load(hd, cfg, vb.pp("k_norm"))?),
            )
        } else {
            (None, None)
        };
        let q_width = if cfg.attention_output_gate {
            2 * q_out
        } else {
            q_out
        };
        Ok(Attention {
            q_proj: Linear::load(h, q_width, bias, vb.pp("q_proj"), q)?,
            k_proj: Linear::load(h, kv_out, bias, vb.pp("k_proj"), q)?,
            v_proj: Linear::load(h, kv_out, bias, vb.pp("v_proj"), q)?,
            o_proj: Linear::load(q_out, h, false, vb.pp("o_proj"), q)?,
            q_norm,
            k_norm,
            num_heads: cfg.num_attention_heads,
            num_kv_heads: cfg.num_key_value_heads,
            head_dim: hd,
            rotary_dim: cfg.rotary_dim,
            output_gate: cfg.attention_output_gate,
            output_gate_ablated: false,
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
        let [q, k, v]: [Tensor; 3] =
            Linear::forward_shared(&[&self.q_proj, &self.k_proj, &self.v_proj], x)?
                .try_into()
                .expect("three layers, three outputs");
        let (mut q, gate) = if self.output_gate {
            let both = q.reshape((b, l, self.num_heads, 2 * self.head_dim))?;
            let gate = both.narrow(3, self.head_dim, self.head_dim)?;
            (both.narrow(3, 0, self.head_dim)?, Some(gate))
        } else {
            (split(q, self.num_heads)?, None)
        };
        let mut k = split(k, self.num_kv_heads)?;
        let v = split(v, self.num_kv_heads)?;
        if let (Some(qn), Some(kn)) = (&self.q_norm, &self.k_norm) {
            q = qn.forward(&q)?;
            k = kn.forward(&k)?;
        }
        let q = q.transpose(1, 2)?.contiguous()?;
        let k = k.transpose(1, 2)?.contiguous()?;
        let v = v.transpose(1, 2)?.contiguous()?;
        let q = self.rotate(&q, rope)?;
        let k = self.rotate(&k, rope)?;
        let (k, v) = cache.append(layer, &k, &v)?;

        let scale = Scaling::Scores(1.0 / (self.head_dim as f64).sqrt());
        let out = attention(&q, &k, &v, scale, Visibility::Causal { past }, MAX_SCORES)?;
        let mut out = out
            .transpose(1, 2)?
            .reshape((b, l, self.num_heads * self.head_dim))?;
        if let Some(gate) = gate.filter(|_| !self.output_gate_ablated) {
            let gate = gate.reshape((b, l, self.num_heads * self.head_dim))?;
            out = (out * candle_nn::ops::sigmoid(&gate)?)?;
        }
        self.o_proj.forward(&out)
    }

    /// Rotates the first `rotary_dim` slots of each head `(b, heads, L, head_dim)`.
    fn rotate(&self, x: &Tensor, rope: &RopeTables) -> Result<Tensor> {
        if self.rotary_dim == self.head_dim {
            return candle_nn::rotary_emb::rope(x, &rope.cos, &rope.sin);
        }
        let turned = x.narrow(3, 0, self.rotary_dim)?.contiguous()?;
        let turned = candle_nn::rotary_emb::rope(&turned, &rope.cos, &rope.sin)?;
        let kept = x.narrow(3, self.rotary_dim, self.head_dim - self.rotary_dim)?;
        Tensor::cat(&[&turned, &kept], 3)?.contiguous()
    }
}

/// What a layer's MLP is.
// One per layer, never moved after load: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Ffn {
    Dense(Mlp),
    Sparse(SparseMoe),
}

impl Ffn {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Ffn::Dense(m) => m.forward(x),
            Ffn::Sparse(m) => m.forward(x),
        }
    }

    fn weight_bytes(&self) -> usize {
        match self {
            Ffn::Dense(m) => m.weight_bytes(),
            Ffn::Sparse(m) => m.weight_bytes(),
        }
    }
}

/// What mixes positions in a layer.
enum Mixer {
    Attention(Attention),
    DeltaNet(GatedDeltaNet),
}

struct DecoderLayer {
    input_layernorm: Norm,
    mixer: Mixer,
    post_attention_layernorm: Norm,
    mlp: Ffn,
}

impl DecoderLayer {
    fn load(
        cfg: &TextConfig,
        index: usize,
        vb: VarBuilder,
        q: &Quantiser,
        moe_ablations: MoeAblations,
    ) -> Result<Self> {
        let mlp = match &cfg.moe {
            Some(moe) if moe.sparse_layers[index] => {
                Ffn::Sparse(SparseMoe::load(cfg, moe, vb.pp("mlp"), q, moe_ablations)?)
            }
            _ => Ffn::Dense(Mlp::load(
                cfg.hidden_size,
                cfg.intermediate_size,
                vb.pp("mlp"),
                q,
            )?),
        };
        let mixer = match (cfg.layer_kinds[index], &cfg.linear) {
            (LayerKind::LinearAttention, Some(linear)) => {
                Mixer::DeltaNet(GatedDeltaNet::load(cfg, linear, vb.pp("linear_attn"), q)?)
            }
            _ => Mixer::Attention(Attention::load(cfg, vb.pp("self_attn"), q)?),
        };
        Ok(DecoderLayer {
            input_layernorm: Norm::load(cfg.hidden_size, cfg, vb.pp("input_layernorm"))?,
            mixer,
            post_attention_layernorm: Norm::load(
                cfg.hidden_size,
                cfg,
                vb.pp("post_attention_layernorm"),
            )?,
            mlp,
        })
    }

    fn mix(
        &self,
        x: &Tensor,
        rope: &RopeTables,
        past: usize,
        cache: &mut KvCache,
        layer: usize,
    ) -> Result<Tensor> {
        match &self.mixer {
            Mixer::Attention(a) => a.forward(x, rope, past, cache, layer),
            Mixer::DeltaNet(d) => {
                let (out, state) = d.forward(x, cache.states().get(layer))?;
                cache.states_mut().set(layer, state);
                Ok(out)
            }
        }
    }
}

/// Deliberate departures of the decoder, for tests that prove the parity
/// tests catch them.
#[derive(Debug, Clone, Copy, Default)]
pub struct TextAblations {
    pub delta_net: DeltaNetAblations,
    /// Attention output without its gate.
    pub no_output_gate: bool,
    /// Norm weights applied as stored instead of as `1 + weight`.
    pub stored_norm_weights: bool,
    /// Mixture-of-experts departures.
    pub moe: MoeAblations,
}

/// Extra vision features added to the hidden states of image tokens after the
/// first decoder layers (Qwen3-VL DeepStack).
pub struct DeepstackInjection<'a> {
    /// Row index, within the chunk, of every image token.
    pub rows: &'a Tensor,
    /// One tensor per layer, `(rows, hidden)`.
    pub features: &'a [Tensor],
}

/// The cache's name for an output head that shares the embedding's weights.
const TIED_HEAD: &str = "tied output head";

/// The token embedding: the checkpoint's matrix, or, when a tied output
/// head is quantised, that head's blocks, whose looked-up rows are
/// dequantised; the float matrix is then not kept beside its quantised copy.
enum TokenEmbedding {
    Float(Embedding),
    FromQuantisedHead {
        head: super::linear::QuantisedMatrix,
        dtype: DType,
    },
}

impl TokenEmbedding {
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        match self {
            TokenEmbedding::Float(e) => e.forward(ids),
            TokenEmbedding::FromQuantisedHead { head, dtype } => {
                head.embedding(ids)?.to_dtype(*dtype)
            }
        }
    }
}

/// The token embedding and output head. A tied head that is quantised
/// serves as the embedding too, so the float matrix is read only where the
/// cache lacks the head, and not kept; a float tied head shares the
/// embedding's storage.
fn load_embedding_and_head(
    cfg: &TextConfig,
    vb: &VarBuilder,
    lm_head_vb: Option<VarBuilder>,
    q: &Quantiser,
) -> Result<(TokenEmbedding, Linear)> {
    let (vocab, hidden) = (cfg.vocab_size, cfg.hidden_size);
    let head_q = q.for_single_rows();
    let embedding = || candle_nn::embedding(vocab, hidden, vb.pp("embed_tokens"));
    match lm_head_vb {
        Some(head_vb) => {
            let head = Linear::load(hidden, vocab, false, head_vb, &head_q)?;
            Ok((TokenEmbedding::Float(embedding()?), head))
        }
        None if head_q.quantises(TIED_HEAD, hidden) => {
            let read = || vb.pp("embed_tokens").get((vocab, hidden), "weight");
            let head = Linear::load_lazily(TIED_HEAD, (vocab, hidden), read, &head_q)?;
            let matrix = head
                .quantised()
                .ok_or_else(|| candle_core::Error::Msg("the tied head was not quantised".into()))?;
            let embedding = TokenEmbedding::FromQuantisedHead {
                head: matrix,
                dtype: vb.dtype(),
            };
            Ok((embedding, head))
        }
        None => {
            let embedding = embedding()?;
            let head = Linear::tied(TIED_HEAD, embedding.embeddings(), &head_q)?;
            Ok((TokenEmbedding::Float(embedding), head))
        }
    }
}

pub struct TextModel {
    embed_tokens: TokenEmbedding,
    layers: Vec<DecoderLayer>,
    norm: Norm,
    lm_head: Linear,
    pub cfg: TextConfig,
}

impl TextModel {
    /// Loads the decoder, its linear layers and output head stored as `q`
    /// says; `progress` hears of each layer done (layers load in parallel,
    /// since quantising them is the slow part). `moe_ablations` reach the
    /// sparse blocks at load, where the expert layout is read.
    pub fn load(
        cfg: &TextConfig,
        vb: VarBuilder,
        lm_head_vb: Option<VarBuilder>,
        q: &Quantiser,
        moe_ablations: MoeAblations,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Self> {
        let total = cfg.num_hidden_layers + 1;
        let done = std::sync::atomic::AtomicUsize::new(0);
        let tick = || {
            progress(
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
                total,
            )
        };
        // The embedding and head first: a float matrix of the vocabulary
        // read to be quantised is dropped before the layers take its place,
        // rather than adding to the peak once they are all in.
        let (embed_tokens, lm_head) = load_embedding_and_head(cfg, &vb, lm_head_vb, q)?;
        tick();
        let layers = cfg
            .layer_kinds
            .par_iter()
            .enumerate()
            .map(|(i, _)| {
                let layer =
                    DecoderLayer::load(cfg, i, vb.pp(format!("layers.{i}")), q, moe_ablations);
                tick();
                layer
            })
            .collect::<Result<Vec<_>>>()?;
        let norm = Norm::load(cfg.hidden_size, cfg, vb.pp("norm"))?;
        Ok(TextModel {
            embed_tokens,
            layers,
            norm,
            lm_head,
            cfg: cfg.clone(),
        })
    }

    pub fn ablate(&mut self, a: TextAblations) {
        for layer in &mut self.layers {
            match &mut layer.mixer {
                Mixer::Attention(att) => {
                    att.output_gate_ablated = a.no_output_gate;
                    if a.stored_norm_weights {
                        att.q_norm.iter_mut().for_each(Norm::use_stored_weight);
                        att.k_norm.iter_mut().for_each(Norm::use_stored_weight);
                    }
                }
                Mixer::DeltaNet(d) => d.ablations = a.delta_net,
            }
            if let Ffn::Sparse(moe) = &mut layer.mlp {
                moe.ablations = a.moe;
            }
            if a.stored_norm_weights {
                layer.input_layernorm.use_stored_weight();
                layer.post_attention_layernorm.use_stored_weight();
            }
        }
        if a.stored_norm_weights {
            self.norm.use_stored_weight();
        }
    }

    /// Bytes of the weights that go through [`Linear`] (projections, MLPs
    /// and experts, head).
    pub fn linear_bytes(&self) -> usize {
        let layer = |l: &DecoderLayer| {
            let attention = match &l.mixer {
                Mixer::Attention(a) => [&a.q_proj, &a.k_proj, &a.v_proj, &a.o_proj]
                    .iter()
                    .map(|p| p.weight_bytes())
                    .sum(),
                Mixer::DeltaNet(d) => d.weight_bytes(),
            };
            attention + l.mlp.weight_bytes()
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
            let x = layer.mix(&x, rope, past, cache, i)?;
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
