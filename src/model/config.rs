//! `config.json` in every layout the Qwen-VL checkpoints ship in: flat text
//! fields (Qwen2-VL/2.5-VL), nested `text_config` (transformers ≥ 4.52 re-saves,
//! Qwen3-VL), `rope_scaling` or `rope_parameters`. Missing fields fall back to the
//! values of the real released models, never to transformers' class defaults
//! (several of those are the 72B sizes).

use std::path::Path;

use serde_json::Value;

use super::ModelError;

/// The supported families, chosen by `model_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Qwen2Vl,
    Qwen25Vl,
    Qwen3Vl,
    /// Qwen3.5 (dense): a hybrid decoder of Gated DeltaNet and gated full
    /// attention layers over the Qwen3-VL vision tower without DeepStack.
    Qwen35,
    /// Qwen3-VL whose decoder MLPs are sparse mixture-of-experts blocks.
    Qwen3VlMoe,
    /// Qwen3.5 whose MLPs are sparse mixture-of-experts blocks with a shared expert.
    Qwen35Moe,
}

impl Family {
    pub fn from_model_type(model_type: &str) -> Option<Family> {
        match model_type {
            "qwen2_vl" => Some(Family::Qwen2Vl),
            "qwen2_5_vl" => Some(Family::Qwen25Vl),
            "qwen3_vl" => Some(Family::Qwen3Vl),
            "qwen3_5" => Some(Family::Qwen35),
            "qwen3_vl_moe" => Some(Family::Qwen3VlMoe),
            "qwen3_5_moe" => Some(Family::Qwen35Moe),
            _ => None,
        }
    }

    pub fn model_type(self) -> &'static str {
        match self {
            Family::Qwen2Vl => "qwen2_vl",
            Family::Qwen25Vl => "qwen2_5_vl",
            Family::Qwen3Vl => "qwen3_vl",
            Family::Qwen35 => "qwen3_5",
            Family::Qwen3VlMoe => "qwen3_vl_moe",
            Family::Qwen35Moe => "qwen3_5_moe",
        }
    }

    pub fn display_name(self) -> &'static str {
        match self {
            Family::Qwen2Vl => "Qwen2-VL",
            Family::Qwen25Vl => "Qwen2.5-VL",
            Family::Qwen3Vl => "Qwen3-VL",
            Family::Qwen35 => "Qwen3.5",
            Family::Qwen3VlMoe => "Qwen3-VL-MoE",
            Family::Qwen35Moe => "Qwen3.5-MoE",
        }
    }

    /// The dense family with the same attention, vision tower and
    /// preprocessing: a mixture-of-experts family differs from it only in
    /// its MLPs.
    pub fn dense(self) -> Family {
        match self {
            Family::Qwen3VlMoe => Family::Qwen3Vl,
            Family::Qwen35Moe => Family::Qwen35,
            other => other,
        }
    }

    pub fn is_moe(self) -> bool {
        self.dense() != self
    }

    /// The family whose vision tower this family's checkpoints carry.
    pub fn vision_design(self) -> Family {
        match self.dense() {
            Family::Qwen35 => Family::Qwen3Vl,
            other => other,
        }
    }
}

/// What mixes tokens in one decoder layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// Softmax attention over a growing key/value cache.
    FullAttention,
    /// Gated DeltaNet: a fixed-size recurrent state per layer.
    LinearAttention,
}

/// The Gated DeltaNet layers of a hybrid decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearAttentionConfig {
    pub num_key_heads: usize,
    pub num_value_heads: usize,
    pub key_head_dim: usize,
    pub value_head_dim: usize,
    pub conv_kernel: usize,
}

impl LinearAttentionConfig {
    /// Channels of the causal convolution: queries, keys and values.
    pub fn conv_dim(&self) -> usize {
        2 * self.num_key_heads * self.key_head_dim + self.num_value_heads * self.value_head_dim
    }
}

/// How the rotary frequency slots are shared among the (t, h, w) axes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MropeLayout {
    /// Contiguous sections: all t slots, then h, then w (Qwen2-VL, Qwen2.5-VL).
    Chunked,
    /// t, h, w interleaved slot by slot, remaining slots t (Qwen3-VL).
    Interleaved,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub mrope_section: [usize; 3],
    pub mrope_layout: MropeLayout,
    pub max_position_embeddings: usize,
    pub attention_bias: bool,
    /// Per-head RMSNorm of q and k before the rotation (Qwen3 decoder).
    pub qk_norm: bool,
    pub tie_word_embeddings: bool,
    /// Leading slots of each head that rotate (all of them before Qwen3.5).
    pub rotary_dim: usize,
    /// One entry per layer.
    pub layer_kinds: Vec<LayerKind>,
    /// Present when some layers are linear attention.
    pub linear: Option<LinearAttentionConfig>,
    /// Qwen3.5: `q_proj` also yields a gate; attention output × sigmoid(gate).
    pub attention_output_gate: bool,
    /// Qwen3.5: RMSNorm weights are stored centred on zero and applied as `1 + weight`.
    pub zero_centred_norms: bool,
    /// Present for mixture-of-experts decoders.
    pub moe: Option<MoeConfig>,
}

/// The sparse MLP blocks of a mixture-of-experts decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct MoeConfig {
    pub num_experts: usize,
    /// Experts each token is routed to.
    pub experts_per_token: usize,
    /// Width of each routed expert's gated MLP.
    pub expert_intermediate_size: usize,
    /// Qwen3.5-MoE: width of the expert every token also goes through.
    pub shared_expert_intermediate_size: Option<usize>,
    /// One entry per layer: whether its MLP is the sparse block (the others
    /// are dense MLPs of `intermediate_size`).
    pub sparse_layers: Vec<bool>,
}

impl MoeConfig {
    pub fn sparse_layer_count(&self) -> usize {
        self.sparse_layers.iter().filter(|s| **s).count()
    }
}

impl TextConfig {
    /// Layers whose key/value cache grows with the context.
    pub fn full_attention_layers(&self) -> usize {
        self.layer_kinds
            .iter()
            .filter(|k| **k == LayerKind::FullAttention)
            .count()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisionAct {
    QuickGelu,
    Silu,
    GeluTanh,
    GeluErf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VisionConfig {
    pub depth: usize,
    /// Width of the vision transformer.
    pub hidden_size: usize,
    pub num_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: VisionAct,
    pub patch_size: usize,
    pub spatial_merge_size: usize,
    pub temporal_patch_size: usize,
    pub in_channels: usize,
    /// Width of the merger output = the decoder's hidden size.
    pub out_hidden_size: usize,
    /// Qwen2.5-VL window attention: window side in pixels, and blocks with full attention.
    pub window_size: usize,
    pub fullatt_block_indexes: Vec<usize>,
    /// Qwen3-VL learned position table size (a square grid) and DeepStack taps.
    pub num_position_embeddings: usize,
    pub deepstack_visual_indexes: Vec<usize>,
}

impl VisionConfig {
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }

    /// Number of values in one row of `pixel_values`.
    pub fn patch_dim(&self) -> usize {
        self.in_channels * self.temporal_patch_size * self.patch_size * self.patch_size
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub family: Family,
    pub text: TextConfig,
    pub vision: VisionConfig,
    pub image_token_id: u32,
    pub video_token_id: u32,
    pub vision_start_token_id: u32,
    pub vision_end_token_id: u32,
    pub eos_token_ids: Vec<u32>,
}

/// Field lookup that prefers the nested object and falls back to the top level.
struct Fields<'a> {
    primary: &'a Value,
    fallback: Option<&'a Value>,
}

impl<'a> Fields<'a> {
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.primary.get(key).filter(|v| !v.is_null()).or_else(|| {
            self.fallback
                .and_then(|f| f.get(key))
                .filter(|v| !v.is_null())
        })
    }

    fn usize(&self, key: &str) -> Result<Option<usize>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(|x| Some(x as usize))
                .ok_or_else(|| format!("\"{key}\" must be a non-negative integer, found {v}")),
        }
    }

    fn f64(&self, key: &str) -> Result<Option<f64>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| format!("\"{key}\" must be a number, found {v}")),
        }
    }

    fn bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(Value::as_bool)
    }

    fn usize_list(&self, key: &str) -> Result<Option<Vec<usize>>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_u64()
                        .map(|x| x as usize)
                        .ok_or_else(|| format!("\"{key}\" must be a list of integers"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(v) => Err(format!("\"{key}\" must be a list of integers, found {v}")),
        }
    }
}

/// Values of the smallest released checkpoint of each family, used for fields a
/// config leaves out.
struct TextDefaults {
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: usize,
    rope_theta: f64,
    mrope_section: [usize; 3],
    max_position_embeddings: usize,
}

fn text_defaults(family: Family) -> TextDefaults {
    match family {
        // Qwen2-VL-2B-Instruct
        Family::Qwen2Vl => TextDefaults {
            vocab_size: 151936,
            hidden_size: 1536,
            intermediate_size: 8960,
            num_hidden_layers: 28,
            num_attention_heads: 12,
            num_key_value_heads: 2,
            rope_theta: 1e6,
            mrope_section: [16, 24, 24],
            max_position_embeddings: 32768,
        },
        // Qwen2.5-VL-3B-Instruct
        Family::Qwen25Vl => TextDefaults {
            vocab_size: 151936,
            hidden_size: 2048,
            intermediate_size: 11008,
            num_hidden_layers: 36,
            num_attention_heads: 16,
            num_key_value_heads: 2,
            rope_theta: 1e6,
            mrope_section: [16, 24, 24],
            max_position_embeddings: 128000,
        },
        // Qwen3-VL-4B-Instruct
        Family::Qwen3Vl => TextDefaults {
            vocab_size: 151936,
            hidden_size: 2560,
            intermediate_size: 9728,
            num_hidden_layers: 36,
            num_attention_heads: 32,
            num_key_value_heads: 8,
            rope_theta: 5e6,
            mrope_section: [24, 20, 20],
            max_position_embeddings: 262144,
        },
        // Qwen3-VL-30B-A3B-Instruct
        Family::Qwen3VlMoe => TextDefaults {
            vocab_size: 151936,
            hidden_size: 2048,
            intermediate_size: 6144,
            num_hidden_layers: 48,
            num_attention_heads: 32,
            num_key_value_heads: 4,
            rope_theta: 5e6,
            mrope_section: [24, 20, 20],
            max_position_embeddings: 262144,
        },
        // Qwen3.5-35B-A3B (transformers' own defaults describe it; every
        // layer is sparse, so the dense width is never used)
        Family::Qwen35Moe => TextDefaults {
            vocab_size: 248320,
            hidden_size: 2048,
            intermediate_size: 5632,
            num_hidden_layers: 40,
            num_attention_heads: 16,
            num_key_value_heads: 2,
            rope_theta: 1e7,
            mrope_section: [11, 11, 10],
            max_position_embeddings: 262144,
        },
        // Qwen3.5-9B (transformers' own defaults describe it)
        Family::Qwen35 => TextDefaults {
            vocab_size: 248320,
            hidden_size: 4096,
            intermediate_size: 12288,
            num_hidden_layers: 32,
            num_attention_heads: 16,
            num_key_value_heads: 4,
            rope_theta: 1e7,
            mrope_section: [11, 11, 10],
            max_position_embeddings: 262144,
        },
    }
}

impl ModelConfig {
    pub fn from_model_dir(dir: &Path) -> Result<Self, ModelError> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::MissingFile {
            path: path.clone(),
            what: format!("cannot read it ({e}); point --model at a Hugging Face model directory that has config.json"),
        })?;
        let value: Value = serde_json::from_str(&text).map_err(|e| ModelError::BadConfig {
            path: path.clone(),
            what: format!("not valid JSON: {e}"),
        })?;
        Self::from_json(&value).map_err(|what| match what {
            ConfigProblem::UnknownModelType(t) => ModelError::UnknownModelType {
                path: path.clone(),
                model_type: t,
            },
            ConfigProblem::Field(what) => ModelError::BadConfig {
                path: path.clone(),
                what,
            },
        })
    }

    pub fn from_json(cfg: &Value) -> Result<Self, ConfigProblem> {
        let model_type = cfg
            .get("model_type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let family = Family::from_model_type(&model_type)
            .ok_or(ConfigProblem::UnknownModelType(model_type))?;
        let text_value = cfg.get("text_config").filter(|v| v.is_object());
        let text_fields = Fields {
            primary: text_value.unwrap_or(cfg),
            fallback: text_value.map(|_| cfg),
        };
        let text = parse_text(family, &text_fields).map_err(ConfigProblem::Field)?;
        let empty = Value::Object(Default::default());
        let vision_fields = Fields {
            primary: cfg.get("vision_config").unwrap_or(&empty),
            fallback: None,
        };
        let vision =
            parse_vision(family, &vision_fields, text.hidden_size).map_err(ConfigProblem::Field)?;

        let id = |key: &str, default: u32| -> Result<u32, ConfigProblem> {
            Ok(text_fields
                .usize(key)
                .map_err(ConfigProblem::Field)?
                .map(|v| v as u32)
                .unwrap_or(default))
        };
        let eos_token_ids = match text_fields.get("eos_token_id") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_u64)
                .map(|v| v as u32)
                .collect(),
            Some(v) => v.as_u64().map(|v| vec![v as u32]).unwrap_or_default(),
            None => vec![151645],
        };
        Ok(ModelConfig {
            family,
            text,
            vision,
            image_token_id: id("image_token_id", 151655)?,
            video_token_id: id("video_token_id", 151656)?,
            vision_start_token_id: id("vision_start_token_id", 151652)?,
            vision_end_token_id: id("vision_end_token_id", 151653)?,
            eos_token_ids,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ConfigProblem {
    UnknownModelType(String),
    Field(String),
}

fn parse_text(family: Family, f: &Fields) -> Result<TextConfig, String> {
    let d = text_defaults(family);
    let hidden_size = f.usize("hidden_size")?.unwrap_or(d.hidden_size);
    let heads = parse_heads(family, f, &d, hidden_size)?;
    let rotary_dim = rotary_dim(family, f, heads.head_dim)?;
    let (rope_theta, mrope_section) = parse_rope(f, &d, rotary_dim)?;
    let num_hidden_layers = f.usize("num_hidden_layers")?.unwrap_or(d.num_hidden_layers);
    let moe = parse_moe(family, f, num_hidden_layers)?;
    let family = family.dense();
    let hybrid = family == Family::Qwen35;
    let layer_kinds = if hybrid {
        parse_layer_kinds(f, num_hidden_layers)?
    } else {
        vec![LayerKind::FullAttention; num_hidden_layers]
    };
    let linear = if layer_kinds.contains(&LayerKind::LinearAttention) {
        Some(parse_linear(f)?)
    } else {
        None
    };
    let qwen3 = matches!(family, Family::Qwen3Vl | Family::Qwen35);
    Ok(TextConfig {
        vocab_size: f.usize("vocab_size")?.unwrap_or(d.vocab_size),
        hidden_size,
        intermediate_size: f.usize("intermediate_size")?.unwrap_or(d.intermediate_size),
        num_hidden_layers,
        num_attention_heads: heads.attention,
        num_key_value_heads: heads.key_value,
        head_dim: heads.head_dim,
        rms_norm_eps: f.f64("rms_norm_eps")?.unwrap_or(1e-6),
        rope_theta,
        mrope_section,
        mrope_layout: if qwen3 {
            MropeLayout::Interleaved
        } else {
            MropeLayout::Chunked
        },
        max_position_embeddings: f
            .usize("max_position_embeddings")?
            .unwrap_or(d.max_position_embeddings),
        attention_bias: f.bool("attention_bias").unwrap_or(!qwen3),
        qk_norm: qwen3,
        tie_word_embeddings: tied_embeddings(f),
        rotary_dim,
        layer_kinds,
        linear,
        attention_output_gate: hybrid,
        zero_centred_norms: hybrid,
        moe,
    })
}

/// The sparse blocks of the mixture-of-experts families. Qwen3-VL-MoE keeps
/// the layers in `mlp_only_layers`, and those off the `decoder_sparse_step`
/// beat, dense; every Qwen3.5-MoE layer is sparse. Both always renormalise
/// the chosen experts' weights (transformers reads no `norm_topk_prob` for
/// them).
fn parse_moe(family: Family, f: &Fields, layers: usize) -> Result<Option<MoeConfig>, String> {
    // (experts, per token, expert width) of Qwen3-VL-30B-A3B and Qwen3.5-35B-A3B.
    let (experts, per_token, width) = match family {
        Family::Qwen3VlMoe => (128, 8, 768),
        Family::Qwen35Moe => (256, 8, 512),
        _ => return Ok(None),
    };
    let num_experts = match f.usize("num_experts")? {
        Some(n) => n,
        None => f.usize("num_local_experts")?.unwrap_or(experts),
    };
    let experts_per_token = f.usize("num_experts_per_tok")?.unwrap_or(per_token);
    if experts_per_token == 0 || experts_per_token > num_experts {
        return Err(format!(
            "\"num_experts_per_tok\" ({experts_per_token}) must be between 1 and \"num_experts\" ({num_experts})"
        ));
    }
    let sparse_layers = if family == Family::Qwen35Moe {
        vec![true; layers]
    } else {
        let step = f.usize("decoder_sparse_step")?.unwrap_or(1);
        if step == 0 {
            return Err("\"decoder_sparse_step\" must be positive".into());
        }
        let dense = f.usize_list("mlp_only_layers")?.unwrap_or_default();
        (0..layers)
            .map(|i| !dense.contains(&i) && (i + 1) % step == 0)
            .collect()
    };
    Ok(Some(MoeConfig {
        num_experts,
        experts_per_token,
        expert_intermediate_size: f.usize("moe_intermediate_size")?.unwrap_or(width),
        shared_expert_intermediate_size: match family {
            Family::Qwen35Moe => Some(f.usize("shared_expert_intermediate_size")?.unwrap_or(512)),
            _ => None,
        },
        sparse_layers,
    }))
}

/// `head_dim × partial_rotary_factor` (Qwen3.5: a quarter by default); the
/// factor sits in `rope_parameters` (transformers 5) or beside it.
fn rotary_dim(family: Family, f: &Fields, head_dim: usize) -> Result<usize, String> {
    if family.dense() != Family::Qwen35 {
        return Ok(head_dim);
    }
    let in_rope = f
        .get("rope_parameters")
        .or_else(|| f.get("rope_scaling"))
        .and_then(|r| r.get("partial_rotary_factor"))
        .and_then(Value::as_f64);
    let factor = match in_rope {
        Some(x) => x,
        None => f.f64("partial_rotary_factor")?.unwrap_or(0.25),
    };
    let dim = (head_dim as f64 * factor) as usize;
    if !(factor > 0.0 && factor <= 1.0) || dim == 0 || !dim.is_multiple_of(2) {
        return Err(format!(
            "\"partial_rotary_factor\" {factor} must leave an even number of rotary slots of head_dim {head_dim}"
        ));
    }
    Ok(dim)
}

/// `layer_types`, or every `full_attention_interval`-th layer (4 by default)
/// full attention, the rest linear.
fn parse_layer_kinds(f: &Fields, layers: usize) -> Result<Vec<LayerKind>, String> {
    match f.get("layer_types") {
        Some(Value::Array(items)) => {
            if items.len() != layers {
                return Err(format!(
                    "\"layer_types\" lists {} layers but \"num_hidden_layers\" is {layers}",
                    items.len()
                ));
            }
            items
                .iter()
                .map(|v| match v.as_str() {
                    Some("full_attention") => Ok(LayerKind::FullAttention),
                    Some("linear_attention") => Ok(LayerKind::LinearAttention),
                    _ => Err(format!(
                        "\"layer_types\" entry {v} is neither \"full_attention\" nor \"linear_attention\""
                    )),
                })
                .collect()
        }
        Some(v) => Err(format!("\"layer_types\" must be a list, found {v}")),
        None => {
            let interval = f.usize("full_attention_interval")?.unwrap_or(4).max(1);
            Ok((0..layers)
                .map(|i| {
                    if (i + 1) % interval == 0 {
                        LayerKind::FullAttention
                    } else {
                        LayerKind::LinearAttention
                    }
                })
                .collect())
        }
    }
}

fn parse_linear(f: &Fields) -> Result<LinearAttentionConfig, String> {
    let cfg = LinearAttentionConfig {
        num_key_heads: f.usize("linear_num_key_heads")?.unwrap_or(16),
        num_value_heads: f.usize("linear_num_value_heads")?.unwrap_or(32),
        key_head_dim: f.usize("linear_key_head_dim")?.unwrap_or(128),
        value_head_dim: f.usize("linear_value_head_dim")?.unwrap_or(128),
        conv_kernel: f.usize("linear_conv_kernel_dim")?.unwrap_or(4),
    };
    if cfg.num_key_heads == 0 || !cfg.num_value_heads.is_multiple_of(cfg.num_key_heads) {
        return Err(format!(
            "\"linear_num_key_heads\" ({}) must divide \"linear_num_value_heads\" ({})",
            cfg.num_key_heads, cfg.num_value_heads
        ));
    }
    if cfg.conv_kernel < 2 || cfg.key_head_dim == 0 || cfg.value_head_dim == 0 {
        return Err("linear attention head sizes and \"linear_conv_kernel_dim\" must be positive (the kernel at least 2)".into());
    }
    Ok(cfg)
}

/// The decoder's attention heads.
struct Heads {
    attention: usize,
    key_value: usize,
    head_dim: usize,
}

fn parse_heads(
    family: Family,
    f: &Fields,
    d: &TextDefaults,
    hidden_size: usize,
) -> Result<Heads, String> {
    let attention = f
        .usize("num_attention_heads")?
        .unwrap_or(d.num_attention_heads);
    if attention == 0 {
        return Err("\"num_attention_heads\" must be positive".into());
    }
    let key_value = f
        .usize("num_key_value_heads")?
        .unwrap_or(d.num_key_value_heads);
    if key_value == 0 || attention % key_value != 0 {
        return Err(format!(
            "\"num_key_value_heads\" ({key_value}) must divide \"num_attention_heads\" ({attention})"
        ));
    }
    // Qwen2 decoders derive head_dim; Qwen3 states it (4B: 32 × 128 ≠ 2560).
    let head_dim = match family.dense() {
        Family::Qwen3Vl => f.usize("head_dim")?.unwrap_or(128),
        Family::Qwen35 => f.usize("head_dim")?.unwrap_or(256),
        _ => f.usize("head_dim")?.unwrap_or(hidden_size / attention),
    };
    Ok(Heads {
        attention,
        key_value,
        head_dim,
    })
}

/// `rope_theta` and `mrope_section`. Rope settings live in rope_parameters
/// (transformers 5) or rope_scaling, in text_config or at the top level;
/// rope_theta may also sit beside them.
fn parse_rope(
    f: &Fields,
    d: &TextDefaults,
    rotary_dim: usize,
) -> Result<(f64, [usize; 3]), String> {
    let rope_dict = f
        .get("rope_parameters")
        .or_else(|| f.get("rope_scaling"))
        .filter(|v| v.is_object());
    let rope_theta = rope_dict
        .and_then(|r| r.get("rope_theta"))
        .and_then(Value::as_f64)
        .map(Ok)
        .unwrap_or_else(|| f.f64("rope_theta").map(|t| t.unwrap_or(d.rope_theta)))?;
    if let Some(kind) = rope_dict
        .and_then(|r| r.get("rope_type").or_else(|| r.get("type")))
        .and_then(Value::as_str)
    {
        if !matches!(kind, "default" | "mrope") {
            return Err(format!(
                "rope type {kind:?} is not supported (Qwen-VL checkpoints use \"default\"/\"mrope\")"
            ));
        }
    }
    let mrope_section = match rope_dict.and_then(|r| r.get("mrope_section")) {
        Some(Value::Array(items)) if items.len() == 3 => {
            let mut s = [0usize; 3];
            for (slot, v) in s.iter_mut().zip(items) {
                *slot = v
                    .as_u64()
                    .ok_or("\"mrope_section\" must hold three integers")?
                    as usize;
            }
            s
        }
        Some(other) => {
            return Err(format!(
                "\"mrope_section\" must be a list of three integers, found {other}"
            ))
        }
        None => d.mrope_section,
    };
    if mrope_section.iter().sum::<usize>() * 2 != rotary_dim {
        return Err(format!(
            "mrope_section {mrope_section:?} must add up to head_dim/2 = {} (of the rotating part)",
            rotary_dim / 2
        ));
    }
    Ok((rope_theta, mrope_section))
}

/// Either level saying true means tied; the loader also ties when the
/// checkpoint has no lm_head.weight.
fn tied_embeddings(f: &Fields) -> bool {
    let says = |v: Option<&Value>| v.and_then(|t| t.get("tie_word_embeddings")?.as_bool());
    says(Some(f.primary)).unwrap_or(false) || says(f.fallback).unwrap_or(false)
}

fn parse_act(name: &str) -> Result<VisionAct, String> {
    match name {
        "quick_gelu" => Ok(VisionAct::QuickGelu),
        "silu" | "swish" => Ok(VisionAct::Silu),
        "gelu_pytorch_tanh" | "gelu_new" | "gelu_fast" => Ok(VisionAct::GeluTanh),
        "gelu" => Ok(VisionAct::GeluErf),
        other => Err(format!("vision activation {other:?} is not supported")),
    }
}

/// Values of the smallest released vision tower of each family, used for
/// fields a config leaves out.
struct VisionDefaults {
    depth: usize,
    hidden_size: usize,
    intermediate_size: usize,
    hidden_act: &'static str,
    patch_size: usize,
}

fn vision_defaults(family: Family) -> VisionDefaults {
    match family {
        Family::Qwen2Vl => VisionDefaults {
            depth: 32,
            hidden_size: 1280,
            // Not read: Qwen2-VL configs give `mlp_ratio` (4) instead.
            intermediate_size: 5120,
            hidden_act: "quick_gelu",
            patch_size: 14,
        },
        Family::Qwen25Vl => VisionDefaults {
            depth: 32,
            hidden_size: 1280,
            intermediate_size: 3420,
            hidden_act: "silu",
            patch_size: 14,
        },
        Family::Qwen3Vl => VisionDefaults {
            depth: 24,
            hidden_size: 1024,
            intermediate_size: 4096,
            hidden_act: "gelu_pytorch_tanh",
            patch_size: 16,
        },
        Family::Qwen35 | Family::Qwen35Moe | Family::Qwen3VlMoe => VisionDefaults {
            depth: 27,
            hidden_size: 1152,
            intermediate_size: 4304,
            hidden_act: "gelu_pytorch_tanh",
            patch_size: 16,
        },
    }
}

fn parse_vision(family: Family, f: &Fields, text_hidden: usize) -> Result<VisionConfig, String> {
    let d = vision_defaults(family);
    // Qwen3-VL-30B-A3B's tower is the 8B's, tapped at other blocks than the 4B's.
    let deepstack_default = match family {
        Family::Qwen3VlMoe => vec![8, 16, 24],
        _ => vec![5, 11, 17],
    };
    let (hidden_size, intermediate_size, out_hidden_size) =
        vision_widths(family, f, &d, text_hidden)?;
    let in_channels = match f.usize("in_channels")? {
        Some(c) => c,
        None => f.usize("in_chans")?.unwrap_or(3),
    };
    let mut cfg = VisionConfig {
        depth: f.usize("depth")?.unwrap_or(d.depth),
        hidden_size,
        num_heads: f.usize("num_heads")?.unwrap_or(16),
        intermediate_size,
        hidden_act: parse_act(
            f.get("hidden_act")
                .and_then(Value::as_str)
                .unwrap_or(d.hidden_act),
        )?,
        patch_size: f.usize("patch_size")?.unwrap_or(d.patch_size),
        spatial_merge_size: f.usize("spatial_merge_size")?.unwrap_or(2),
        temporal_patch_size: f.usize("temporal_patch_size")?.unwrap_or(2),
        in_channels,
        out_hidden_size,
        window_size: 0,
        fullatt_block_indexes: vec![],
        num_position_embeddings: 0,
        deepstack_visual_indexes: vec![],
    };
    match family {
        Family::Qwen2Vl => {}
        Family::Qwen25Vl => {
            cfg.window_size = f.usize("window_size")?.unwrap_or(112);
            cfg.fullatt_block_indexes = f
                .usize_list("fullatt_block_indexes")?
                .unwrap_or_else(|| vec![7, 15, 23, 31]);
        }
        Family::Qwen3Vl | Family::Qwen3VlMoe => {
            cfg.num_position_embeddings = f.usize("num_position_embeddings")?.unwrap_or(2304);
            cfg.deepstack_visual_indexes = f
                .usize_list("deepstack_visual_indexes")?
                .unwrap_or(deepstack_default);
        }
        // The Qwen3-VL tower without DeepStack: its checkpoints have no
        // deepstack mergers, whatever a config might list.
        Family::Qwen35 | Family::Qwen35Moe => {
            cfg.num_position_embeddings = f.usize("num_position_embeddings")?.unwrap_or(2304);
        }
    }
    check_vision(family.vision_design(), &cfg)?;
    Ok(cfg)
}

/// The tower's width, its MLP's, and the merger's output. Qwen2-VL calls the
/// width `embed_dim` (its `hidden_size` is the merger output) and gives the
/// MLP as a ratio.
fn vision_widths(
    family: Family,
    f: &Fields,
    d: &VisionDefaults,
    text_hidden: usize,
) -> Result<(usize, usize, usize), String> {
    Ok(match family {
        Family::Qwen2Vl => {
            let width = f.usize("embed_dim")?.unwrap_or(d.hidden_size);
            let ratio = f.f64("mlp_ratio")?.unwrap_or(4.0);
            let out = f.usize("hidden_size")?.unwrap_or(text_hidden);
            (width, (width as f64 * ratio) as usize, out)
        }
        _ => (
            f.usize("hidden_size")?.unwrap_or(d.hidden_size),
            f.usize("intermediate_size")?.unwrap_or(d.intermediate_size),
            f.usize("out_hidden_size")?.unwrap_or(text_hidden),
        ),
    })
}

fn check_vision(family: Family, cfg: &VisionConfig) -> Result<(), String> {
    if cfg.num_heads == 0 || !cfg.hidden_size.is_multiple_of(cfg.num_heads) {
        return Err(format!(
            "vision width {} is not divisible by its {} heads",
            cfg.hidden_size, cfg.num_heads
        ));
    }
    if !cfg.head_dim().is_multiple_of(4) {
        return Err(format!(
            "vision head size {} must be a multiple of 4 for the 2-D rotary embedding",
            cfg.head_dim()
        ));
    }
    if family == Family::Qwen3Vl {
        let side = (cfg.num_position_embeddings as f64).sqrt() as usize;
        if side * side != cfg.num_position_embeddings || side < 2 {
            return Err(format!(
                "\"num_position_embeddings\" ({}) must be a square of at least 4",
                cfg.num_position_embeddings
            ));
        }
        if let Some(&bad) = cfg
            .deepstack_visual_indexes
            .iter()
            .find(|&&i| i >= cfg.depth)
        {
            return Err(format!(
                "deepstack layer {bad} is beyond the vision depth {}",
                cfg.depth
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flat_qwen2_vl_config_with_legacy_mrope_type() {
        let cfg = json!({
            "model_type": "qwen2_vl", "hidden_size": 1536, "intermediate_size": 8960,
            "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2,
            "rope_theta": 1000000.0, "vocab_size": 151936, "tie_word_embeddings": true,
            "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
            "vision_config": {"hidden_size": 1536, "in_chans": 3, "model_type": "qwen2_vl", "spatial_patch_size": 14}
        });
        let c = ModelConfig::from_json(&cfg).unwrap();
        assert_eq!(c.family, Family::Qwen2Vl);
        assert_eq!(c.text.head_dim, 128);
        assert!(c.text.attention_bias);
        assert!(c.text.tie_word_embeddings);
        assert_eq!(c.text.mrope_layout, MropeLayout::Chunked);
        assert_eq!(c.vision.hidden_size, 1280);
        assert_eq!(c.vision.out_hidden_size, 1536);
        assert_eq!(c.vision.intermediate_size, 5120);
        assert_eq!(c.vision.hidden_act, VisionAct::QuickGelu);
        assert_eq!(c.image_token_id, 151655);
    }

    #[test]
    fn nested_text_config_with_rope_parameters() {
        let cfg = json!({
            "model_type": "qwen2_5_vl", "tie_word_embeddings": false,
            "text_config": {"hidden_size": 3584, "num_attention_heads": 28, "num_key_value_heads": 4,
                "intermediate_size": 18944, "num_hidden_layers": 28, "vocab_size": 152064,
                "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]}},
            "vision_config": {"hidden_size": 1280, "depth": 32}
        });
        let c = ModelConfig::from_json(&cfg).unwrap();
        assert_eq!(c.text.hidden_size, 3584);
        assert_eq!(c.text.rope_theta, 1e6);
        assert_eq!(
            c.vision.out_hidden_size, 3584,
            "falls back to the text width"
        );
        assert_eq!(c.vision.fullatt_block_indexes, vec![7, 15, 23, 31]);
        assert!(!c.text.tie_word_embeddings);
    }

    #[test]
    fn qwen3_uses_explicit_head_dim_and_interleaved_rope() {
        let cfg = json!({
            "model_type": "qwen3_vl", "tie_word_embeddings": true,
            "text_config": {"hidden_size": 2560, "num_attention_heads": 32, "num_key_value_heads": 8,
                "head_dim": 128, "rope_theta": 5000000,
                "rope_scaling": {"mrope_interleaved": true, "mrope_section": [24, 20, 20], "rope_type": "default"}},
            "vision_config": {"hidden_size": 1024, "out_hidden_size": 2560, "deepstack_visual_indexes": [5, 11, 17]}
        });
        let c = ModelConfig::from_json(&cfg).unwrap();
        assert_eq!(c.text.head_dim, 128);
        assert!(c.text.qk_norm);
        assert!(!c.text.attention_bias);
        assert_eq!(c.text.mrope_layout, MropeLayout::Interleaved);
        assert_eq!(c.text.rope_theta, 5e6);
        assert_eq!(c.vision.patch_size, 16);
        assert_eq!(c.vision.hidden_act, VisionAct::GeluTanh);
    }

    #[test]
    fn qwen3_5_layers_and_partial_rotary() {
        let cfg = json!({
            "model_type": "qwen3_5",
            "text_config": {"hidden_size": 1024, "num_hidden_layers": 8, "num_attention_heads": 8,
                "num_key_value_heads": 2, "head_dim": 256, "linear_num_value_heads": 16,
                "rope_parameters": {"rope_type": "default", "rope_theta": 10000000,
                    "mrope_section": [11, 11, 10], "partial_rotary_factor": 0.25}},
            "vision_config": {"depth": 12, "hidden_size": 768, "num_heads": 12}
        });
        let c = ModelConfig::from_json(&cfg).unwrap();
        assert_eq!(c.family, Family::Qwen35);
        assert_eq!(c.text.rotary_dim, 64);
        assert_eq!(c.text.full_attention_layers(), 2);
        assert_eq!(c.text.layer_kinds[3], LayerKind::FullAttention);
        assert_eq!(c.text.layer_kinds[4], LayerKind::LinearAttention);
        assert!(c.text.attention_output_gate && c.text.zero_centred_norms && c.text.qk_norm);
        assert_eq!(
            c.text.linear.as_ref().unwrap().conv_dim(),
            2 * 16 * 128 + 16 * 128
        );
        assert!(c.vision.deepstack_visual_indexes.is_empty());
    }

    #[test]
    fn qwen3_vl_moe_keeps_mlp_only_and_off_step_layers_dense() {
        let cfg = json!({
            "model_type": "qwen3_vl_moe",
            "text_config": {"num_hidden_layers": 6, "num_experts": 16, "num_experts_per_tok": 4,
                "moe_intermediate_size": 96, "decoder_sparse_step": 2, "mlp_only_layers": [3]},
            "vision_config": {"out_hidden_size": 2048}
        });
        let c = ModelConfig::from_json(&cfg).unwrap();
        assert_eq!(c.family, Family::Qwen3VlMoe);
        assert_eq!(c.family.vision_design(), Family::Qwen3Vl);
        assert_eq!(c.text.mrope_layout, MropeLayout::Interleaved);
        assert!(c.text.qk_norm && !c.text.attention_output_gate);
        let moe = c.text.moe.unwrap();
        assert_eq!(
            moe.sparse_layers,
            vec![false, true, false, false, false, true]
        );
        assert_eq!((moe.num_experts, moe.experts_per_token), (16, 4));
        assert_eq!(moe.expert_intermediate_size, 96);
        assert_eq!(moe.shared_expert_intermediate_size, None);
        assert_eq!(c.vision.deepstack_visual_indexes, vec![8, 16, 24]);
    }

    #[test]
    fn qwen3_5_moe_is_sparse_everywhere_with_a_shared_expert() {
        let cfg = json!({
            "model_type": "qwen3_5_moe",
            "text_config": {"num_hidden_layers": 4, "mlp_only_layers": [0],
                "shared_expert_intermediate_size": 128},
        });
        let c = ModelConfig::from_json(&cfg).unwrap();
        assert_eq!(c.family, Family::Qwen35Moe);
        assert!(c.text.zero_centred_norms && c.text.attention_output_gate);
        assert_eq!(c.text.full_attention_layers(), 1);
        let moe = c.text.moe.unwrap();
        assert_eq!(moe.sparse_layers, vec![true; 4]);
        assert_eq!((moe.num_experts, moe.experts_per_token), (256, 8));
        assert_eq!(moe.shared_expert_intermediate_size, Some(128));
        assert!(ModelConfig::from_json(&json!({"model_type": "qwen3_5"}))
            .unwrap()
            .text
            .moe
            .is_none());
    }

    #[test]
    fn more_experts_per_token_than_experts_is_refused() {
        let cfg = json!({"model_type": "qwen3_vl_moe",
            "text_config": {"num_experts": 4, "num_experts_per_tok": 8}});
        let ConfigProblem::Field(msg) = ModelConfig::from_json(&cfg).unwrap_err() else {
            panic!("expected a field problem")
        };
        assert!(msg.contains("num_experts_per_tok"), "{msg}");
    }

    #[test]
    fn unknown_model_type_and_inconsistent_rope_are_refused() {
        let cfg = json!({"model_type": "llava"});
        assert_eq!(
            ModelConfig::from_json(&cfg).unwrap_err(),
            ConfigProblem::UnknownModelType("llava".into())
        );
        let cfg = json!({"model_type": "qwen2_vl", "hidden_size": 64, "num_attention_heads": 2,
            "num_key_value_heads": 1, "rope_scaling": {"mrope_section": [16, 24, 24]}});
        let ConfigProblem::Field(msg) = ModelConfig::from_json(&cfg).unwrap_err() else {
            panic!("expected a field problem")
        };
        assert!(msg.contains("head_dim/2"), "{msg}");
    }
}
