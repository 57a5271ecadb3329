//! How much memory a model will need, worked out before loading it: from the
//! config, the safetensors headers (never the weights) and the settings.
//!
//! total = weights + KV cache + max(vision, prefill) + runtime, where
//! - weights: every checkpoint tensor in the target dtype, the decoder's
//!   linear layers and output head in their quantised format when quantised
//!   (a tied head's quantised copy also serves as the embedding), and on
//!   an x86 CPU the tiles candle's quantised kernels repack them into;
//! - KV cache: layers × 2 × kv_heads × head_dim × context × bytes (INT8: one
//!   byte per value plus a 4-byte scale per token and head);
//! - vision: the tower's peak activations for the largest image allowed;
//! - prefill: the decoder's peak activations when the whole context is one
//!   prompt (attention, the decoder's and the vision tower's, runs in blocks
//!   of at most [`MAX_SCORES`] scores), plus, when quantised on a GPU, the
//!   float copy of the widest projection that a many-row product
//!   dequantises (the CPU runs quantised kernels at every row count);
//! - runtime: the CUDA context and libraries (nothing on the CPU).
//!
//! The vision and prefill peaks never coexist (image features are computed
//! before the prefill), hence the max.

use std::path::Path;

use candle_core::DType;
use serde::Serialize;

use crate::model::attention::{rows_per_block, MAX_SCORES};
use crate::model::config::TextConfig;
use crate::model::kv_cache::{bytes_per_position, KvFormat};
use crate::model::{Family, ModelConfig, ModelError, Quant};
use crate::processor::image::LongEdgeCap;
use crate::processor::resize::smart_resize;
use crate::processor::vision_input::VisionPreprocessConfig;

use super::device::dtype_name;

/// What a CUDA process holds before any tensor: context, cuBLAS, kernels.
pub const CUDA_RUNTIME_BYTES: u64 = 512 << 20;

/// The biggest image the processor lets through, and its patch count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LargestImage {
    pub width: u32,
    pub height: u32,
    pub patches: usize,
}

impl LargestImage {
    /// A square at the long-edge cap's threshold (a square has the most area
    /// for a long edge), or at `max_pixels` without a cap, resized as the
    /// processor would.
    pub fn allowed(pre: &VisionPreprocessConfig, cap: Option<LongEdgeCap>) -> LargestImage {
        let side = match cap {
            Some(c) => c.threshold,
            None => (pre.max_pixels as f64).sqrt().ceil() as u32,
        };
        let (height, width) =
            smart_resize(side, side, pre.factor(), pre.min_pixels, pre.max_pixels)
                .unwrap_or((side, side));
        let p = pre.patch_size.max(1) as u32;
        LargestImage {
            width,
            height,
            patches: ((height / p) * (width / p)) as usize,
        }
    }
}

/// Everything the estimate depends on.
#[derive(Debug, Clone)]
pub struct EstimateInputs<'a> {
    pub config: &'a ModelConfig,
    /// Number of values in all checkpoint tensors.
    pub weight_elements: u64,
    pub dtype: DType,
    pub quant: Quant,
    /// The vision tower's linear layers quantised too.
    pub quant_vision: bool,
    /// Context to reserve for the KV cache and the largest prefill.
    pub context_tokens: usize,
    pub kv_format: KvFormat,
    pub image: LargestImage,
    pub cuda: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemoryEstimate {
    pub total_bytes: u64,
    pub weights_bytes: u64,
    pub kv_cache_bytes: u64,
    pub vision_bytes: u64,
    pub prefill_bytes: u64,
    pub runtime_bytes: u64,
    pub dtype: &'static str,
    pub quant: &'static str,
    pub kv_cache: KvFormat,
    pub context_tokens: usize,
    /// `[width, height]` of the largest image allowed.
    pub largest_image: [u32; 2],
}

impl MemoryEstimate {
    /// `9.1 GiB (weights 8.3 GiB, KV cache 0.6 GiB for 8192 tokens, activations 0.2 GiB)`.
    pub fn summary(&self) -> String {
        let g = crate::human::gib;
        let mut s = format!(
            "{} (weights {}, KV cache {} for {} tokens, activations {}",
            g(self.total_bytes),
            g(self.weights_bytes),
            g(self.kv_cache_bytes),
            self.context_tokens,
            g(self.vision_bytes.max(self.prefill_bytes)),
        );
        if self.runtime_bytes > 0 {
            s.push_str(&format!(", CUDA runtime {}", g(self.runtime_bytes)));
        }
        s.push(')');
        s
    }
}

pub fn estimate(i: &EstimateInputs) -> MemoryEstimate {
    let b = i.dtype.size_in_bytes() as u64;
    let t = &i.config.text;
    let weights_bytes = weights_bytes(i, b);
    // Only full-attention layers grow with the context; linear-attention
    // layers hold a fixed-size state instead.
    let kv_cache_bytes = t.full_attention_layers() as u64
        * bytes_per_position(i.kv_format, t.num_key_value_heads, t.head_dim, i.dtype)
        * i.context_tokens as u64
        + i.config.recurrent_state_bytes(b);
    let vision_bytes = vision_peak(i.config, i.image.patches as u64, b);
    let dequantised = match i.quant {
        Quant::None => 0,
        _ if !i.cuda => 0,
        _ => (t.hidden_size * mlp_widths(t).0) as u64 * b,
    };
    let prefill_bytes = prefill_peak(i.config, i.context_tokens as u64, b) + dequantised;
    let runtime_bytes = if i.cuda { CUDA_RUNTIME_BYTES } else { 0 };
    MemoryEstimate {
        total_bytes: weights_bytes
            + kv_cache_bytes
            + vision_bytes.max(prefill_bytes)
            + runtime_bytes,
        weights_bytes,
        kv_cache_bytes,
        vision_bytes,
        prefill_bytes,
        runtime_bytes,
        dtype: dtype_name(i.dtype),
        quant: i.quant.name(),
        kv_cache: i.kv_format,
        context_tokens: i.context_tokens,
        largest_image: [i.image.width, i.image.height],
    }
}

/// Every checkpoint value in the dtype, except that quantised linear layers
/// and head take their format's bytes per weight.
fn weights_bytes(i: &EstimateInputs, b: u64) -> u64 {
    let mut linear = linear_weights(&i.config.text);
    if i.quant_vision {
        linear.layers += vision_linear_weights(i.config, i.quant);
    }
    let tiles = if i.cuda {
        0
    } else {
        // The head only ever sees one row: no prompt tiles.
        let (few, prompt) = cpu_tile_bytes_per_weight(i.quant);
        ((linear.layers + linear.head) as f64 * few + linear.layers as f64 * prompt).ceil() as u64
    };
    stored_weights_bytes(i.weight_elements, b, linear, i.quant) + tiles
}

/// What the CPU's quantised kernels keep per weight beside the blocks, for
/// products of a few rows and for prompts. Where glimpse's packed kernels
/// run (AVX-512 VNNI or AVX2), q4k and q8_0 matrices are kept once, as tiles in
/// place of the blocks (q4k's tiles hold 2 368 bytes per 4 096 weights where
/// its blocks held 2 304; q8_0's the same bytes). Elsewhere candle's kernels
/// repack a matrix into tiles beside its blocks (q4k: 16-row tiles of
/// unpacked scales, 3 072 bytes per 4 096 weights, and 5 120 more for the
/// AMX kernel of prompts where the CPU has AMX; q6k: 5 120 for prompts;
/// q8_0: 544 per 512, for both, where the CPU has VNNI). Other CPUs and
/// formats keep none.
fn cpu_tile_bytes_per_weight(quant: Quant) -> (f64, f64) {
    if crate::model::packed::PackedMatrix::cpu_has_kernels() {
        match quant {
            Quant::Q4K => return (64.0 / 4096.0, 0.0),
            Quant::Q8_0 => return (0.0, 0.0),
            _ => {}
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if !(has!("avx2") && has!("fma")) {
            return (0.0, 0.0);
        }
        let vnni = has!("avx512vnni") || has!("avxvnni");
        // CPUID leaf 7 (every CPU with AVX2 has it): AMX-INT8 (bit 25) and
        // AMX-TILE (bit 24) in EDX.
        let edx = std::arch::x86_64::__cpuid_count(7, 0).edx;
        let amx = has!("avx512vnni") && edx & (1 << 25) != 0 && edx & (1 << 24) != 0;
        match quant {
            Quant::Q4K => (3072.0 / 4096.0, if amx { 5120.0 / 4096.0 } else { 0.0 }),
            Quant::Q6K => (0.0, 5120.0 / 4096.0),
            Quant::Q8_0 if vnni => (544.0 / 512.0, 0.0),
            _ => (0.0, 0.0),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = quant;
        (0.0, 0.0)
    }
}

/// The weights that quantising stores in a block format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub struct LinearWeights {
    /// The linear layers' matrices.
    pub layers: u64,
    /// The output head's matrix.
    pub head: u64,
    /// The head is the embedding's matrix: quantised, it also serves as the
    /// embedding and the float one is not kept.
    pub tied: bool,
}

/// Bytes of `elements` checkpoint values at `b` bytes each, with `linear`
/// stored as `quant`: the one sum behind the estimate and the model cards.
pub fn stored_weights_bytes(elements: u64, b: u64, linear: LinearWeights, quant: Quant) -> u64 {
    let float = elements * b;
    let Some(per_weight) = quant.bytes_per_weight() else {
        return float;
    };
    let LinearWeights { layers, head, .. } = linear;
    let quantised = (((layers + head) as f64) * per_weight).ceil() as u64;
    float - (layers + head) * b + quantised
}

/// Weights of the decoder's quantisable linear layers (every MLP and every
/// expert, the attention layers' projections) and of its output head.
/// Gated DeltaNet layers keep their b and a gates in the float dtype, sparse
/// blocks their router and shared-expert gate.
pub fn linear_weights(t: &TextConfig) -> LinearWeights {
    let h = t.hidden_size as u64;
    let q = (t.num_attention_heads * t.head_dim) as u64;
    let kv = (t.num_key_value_heads * t.head_dim) as u64;
    // With an output gate, q_proj yields the gate too.
    let q_proj = if t.attention_output_gate { 2 * q } else { q };
    let attention = h * q_proj + h * q + h * kv * 2;
    let dense = 3 * h * t.intermediate_size as u64;
    let mlps = match &t.moe {
        None => t.num_hidden_layers as u64 * dense,
        Some(m) => {
            let sparse = 3
                * h
                * (m.num_experts * m.expert_intermediate_size
                    + m.shared_expert_intermediate_size.unwrap_or(0)) as u64;
            let sparse_layers = m.sparse_layer_count() as u64;
            sparse_layers * sparse + (t.num_hidden_layers as u64 - sparse_layers) * dense
        }
    };
    // Gated DeltaNet layers: q, k and v, z, the output (the small b and a
    // gates stay float).
    let delta_net = t.linear.as_ref().map_or(0, |c| {
        let value = (c.num_value_heads * c.value_head_dim) as u64;
        h * c.conv_dim() as u64 + 2 * h * value
    });
    let linear_layers = (t.num_hidden_layers - t.full_attention_layers()) as u64;
    LinearWeights {
        layers: t.full_attention_layers() as u64 * attention + linear_layers * delta_net + mlps,
        head: t.vocab_size as u64 * h,
        tied: t.tie_word_embeddings,
    }
}

/// Weights of the vision tower's matrices whose rows `quant` can store
/// (blocks, mergers; the patch embedding stays float).
fn vision_linear_weights(cfg: &ModelConfig, quant: Quant) -> u64 {
    let v = &cfg.vision;
    let (d, i) = (v.hidden_size, v.intermediate_size);
    let group = d * v.spatial_merge_size * v.spatial_merge_size;
    let matrix = |inputs: usize, outputs: usize| {
        quant
            .format_for(inputs)
            .map_or(0, |_| (inputs * outputs) as u64)
    };
    let gated = cfg.family == Family::Qwen25Vl;
    let mlp = matrix(d, i) * if gated { 2 } else { 1 } + matrix(i, d);
    let block = matrix(d, 3 * d) + matrix(d, d) + mlp;
    let merger = matrix(group, group) + matrix(group, v.out_hidden_size);
    let deepstack = match cfg.family {
        Family::Qwen3Vl | Family::Qwen3VlMoe => v.deepstack_visual_indexes.len() as u64,
        _ => 0,
    };
    v.depth as u64 * block + (1 + deepstack) * merger
}

/// Bytes of one block of attention scores over `keys` keys: the products and
/// a second copy in the model dtype (the decoder adds its mask), the f32 copy
/// and its softmax, and the softmax back in the model dtype.
fn score_block_bytes(heads: u64, queries: u64, keys: u64, b: u64) -> u64 {
    let rows =
        (rows_per_block(MAX_SCORES, heads as usize, keys as usize) as u64).min(queries.max(1));
    rows * heads * keys * (3 * b + 2 * 4)
}

/// Peak activations of the vision tower on `n` patches.
fn vision_peak(cfg: &ModelConfig, n: u64, b: u64) -> u64 {
    let v = &cfg.vision;
    let (d, i) = (v.hidden_size as u64, v.intermediate_size as u64);
    // pixel_values in f32 and in the model dtype, the hidden state alive
    // throughout, rotary tables (f32 cos and sin).
    let resident = n * v.patch_dim() as u64 * (4 + b) + n * d * b + 2 * n * v.head_dim() as u64 * 4;
    // Attention: norm, qkv, q and k in f32 before and after the rotation and
    // back in the dtype, contiguous v, per-block outputs and their
    // concatenation, the projection.
    let attention = n * d * (b + 3 * b + 2 * (4 + 4 + b) + b + 2 * b + b)
        + score_block_bytes(v.num_heads as u64, n, n, b);
    // MLP: norm, the wide layer(s) and the activation's temporaries, output.
    let wide = match cfg.family {
        Family::Qwen25Vl => 4,
        _ => 3,
    };
    let mlp = n * d * 2 * b + n * i * wide * b;
    // Merged tokens of the main merger and the DeepStack mergers.
    let merged = (n / (v.spatial_merge_size * v.spatial_merge_size).max(1) as u64)
        * v.out_hidden_size as u64
        * b
        * (1 + v.deepstack_visual_indexes.len() as u64);
    resident + attention.max(mlp) + merged
}

/// Peak activations of the decoder running `n` new tokens at once into a
/// cache that will hold `n` positions.
fn prefill_peak(cfg: &ModelConfig, n: u64, b: u64) -> u64 {
    let t = &cfg.text;
    let (h, hd) = (t.hidden_size as u64, t.head_dim as u64);
    let (heads, kv_heads) = (t.num_attention_heads as u64, t.num_key_value_heads as u64);
    // Embeddings (text rows, image rows, the merged copy), the residual
    // stream, its norm and the layer output; rotary tables; the last logits.
    let resident = 4 * n * h * b + 2 * n * hd * b + t.vocab_size as u64 * 4;
    // q, k, v projected and made contiguous after the transpose and rotation;
    // the layer's cache concatenation; the scores and the output (query heads
    // share their kv head's keys and values: nothing is repeated).
    let qkv = 2 * n * (heads + 2 * kv_heads) * hd * b;
    let cat = 2 * n * kv_heads * hd * b;
    let attention = qkv + cat + score_block_bytes(heads, n, n, b) + 2 * n * heads * hd * b;
    let mlp = 3 * n * mlp_widths(t).1 as u64 * b;
    resident + attention.max(mlp)
}

/// Inner widths of the widest MLP: of one matrix, and of one token's
/// activations (a sparse block's chosen experts and shared expert together).
fn mlp_widths(t: &TextConfig) -> (usize, usize) {
    let sparse_layers = t.moe.as_ref().map_or(0, |m| m.sparse_layer_count());
    let dense = if sparse_layers < t.num_hidden_layers {
        t.intermediate_size
    } else {
        0
    };
    let (matrix, token) = t.moe.as_ref().map_or((0, 0), |m| {
        let shared = m.shared_expert_intermediate_size.unwrap_or(0);
        (
            m.expert_intermediate_size.max(shared),
            m.experts_per_token * m.expert_intermediate_size + shared,
        )
    });
    (dense.max(matrix), dense.max(token))
}

/// Number of values in all tensors of a model directory's safetensors files,
/// read from their headers.
pub fn checkpoint_elements(dir: &Path) -> Result<u64, ModelError> {
    let mut total = 0;
    for file in crate::model::weights::safetensors_files(dir)? {
        total += crate::model::weights::header_elements(&file)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const GIB: u64 = 1 << 30;

    fn released_config(name: &str) -> ModelConfig {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/configs")
            .join(name);
        let json = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        ModelConfig::from_json(&json).unwrap()
    }

    /// A checkpoint directory whose one safetensors file has a real header
    /// listing `tensors` and no data: the estimate must never need the data.
    fn header_only_checkpoint(tag: &str, tensors: &[(&str, &[u64])]) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("glimpse-estimate-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut header = serde_json::Map::new();
        let mut offset = 0u64;
        for (name, shape) in tensors {
            let bytes = shape.iter().product::<u64>() * 2;
            header.insert(
                name.to_string(),
                serde_json::json!({"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + bytes]}),
            );
            offset += bytes;
        }
        let text = serde_json::to_vec(&header).unwrap();
        let mut file = (text.len() as u64).to_le_bytes().to_vec();
        file.extend_from_slice(&text);
        std::fs::write(dir.join("model.safetensors"), file).unwrap();
        dir
    }

    fn qwen2_defaults() -> VisionPreprocessConfig {
        VisionPreprocessConfig::qwen2_vl_defaults()
    }

    #[test]
    fn qwen2_vl_2b_in_bf16_by_hand() {
        let cfg = released_config("qwen2_vl_2b_instruct.json");
        // Parameters, from the config (tied embeddings: no separate lm_head).
        // Decoder layer: q 1536·1536+1536, k and v 1536·256+256 each, o 1536·1536,
        // MLP 3·1536·8960, two norms 2·1536 = 46 797 824.
        // Vision block: two LayerNorms 2·2560, qkv 1280·3840+3840, proj
        // 1280·1280+1280, fc1 1280·5120+5120, fc2 5120·1280+1280 = 19 677 440.
        // Merger: LayerNorm 2560, 5120·5120+5120, 5120·1536+1536 = 34 087 936.
        let dir = header_only_checkpoint(
            "q2",
            &[
                ("model.embed_tokens.weight", &[151_936, 1536]),
                ("model.layers", &[28, 46_797_824]),
                ("model.norm.weight", &[1536]),
                ("visual.patch_embed.proj.weight", &[1280, 3, 2, 14, 14]),
                ("visual.blocks", &[32, 19_677_440]),
                ("visual.merger", &[34_087_936]),
            ],
        );
        let elements = checkpoint_elements(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        // 2 208 985 600: the published size of Qwen2-VL-2B-Instruct (2.21B).
        assert_eq!(elements, 2_208_985_600);

        // The largest image under the default 2000 px cap: 2000/28 = 71.4 → 71
        // → 1988 px a side, 142 × 142 = 20 164 patches.
        let image = LargestImage::allowed(&qwen2_defaults(), Some(LongEdgeCap::default()));
        assert_eq!(
            image,
            LargestImage {
                width: 1988,
                height: 1988,
                patches: 20_164
            }
        );

        let e = estimate(&EstimateInputs {
            config: &cfg,
            weight_elements: elements,
            dtype: DType::BF16,
            quant: Quant::None,
            quant_vision: false,
            context_tokens: 32_768,
            kv_format: KvFormat::Model,
            image,
            cuda: true,
        });
        assert_eq!(e.weights_bytes, 2_208_985_600 * 2);
        // 28 layers × (k, v) × 2 kv heads × 128 × 2 bytes × 32 768 tokens = 0.875 GiB.
        assert_eq!(e.kv_cache_bytes, 28 * 2 * 2 * 128 * 2 * 32_768);
        let n = 20_164u64;
        // Vision: pixel values (1176 values in f32 and bf16), hidden state, rotary
        // tables; attention 36 bytes per patch and channel (1280) plus one block of
        // scores (208 rows × 16 heads × 20 164 keys × 14 bytes); merged tokens.
        let vision = n * (1176 * 6 + 1280 * 2 + 2 * 80 * 4)
            + n * 1280 * 36
            + 208 * 16 * n * 14
            + (n / 4) * 1536 * 2;
        assert_eq!(e.vision_bytes, vision);
        // Prefill of 32 768 tokens: residual stream etc. 4 × 1536 × 2 bytes, rotary
        // tables, last logits; then the MLP (3 × 8960 × 2 bytes per token) beats
        // attention.
        let t = 32_768u64;
        let resident = t * (4 * 1536 * 2 + 2 * 128 * 2) + 151_936 * 4;
        let attention =
            t * 2 * 16 * 128 * 2 + t * 2 * 2 * 128 * 2 + 170 * 12 * t * 14 + t * 2 * 12 * 128 * 2;
        let mlp = t * 3 * 8960 * 2;
        assert!(mlp > attention);
        assert_eq!(e.prefill_bytes, resident + mlp);
        assert_eq!(
            e.total_bytes,
            e.weights_bytes + e.kv_cache_bytes + e.prefill_bytes + (512 << 20)
        );
        assert_eq!(e.total_bytes, 8_076_012_032); // 7.52 GiB
        assert!(e
            .summary()
            .starts_with("7.5 GiB (weights 4.1 GiB, KV cache 896 MiB for 32768 tokens"));
    }

    #[test]
    fn qwen3_vl_4b_in_bf16_by_hand() {
        let cfg = released_config("qwen3_vl_4b_instruct.json");
        // Decoder layer (no biases, q/k norms of 128): q 2560·4096, k and v
        // 2560·1024 each, o 4096·2560, norms 2·128 + 2·2560, MLP 3·2560·9728
        // = 100 930 816.
        // Vision: patch embedding 1024·1536 + 1024, position table 2304·1024,
        // block 2·2048 + 1024·3072+3072 + 1024·1024+1024 + 1024·4096+4096 +
        // 4096·1024+1024 = 12 596 224, merger 2048 + 4096·4096+4096 +
        // 4096·2560+2560 = 27 271 680, three DeepStack mergers (norm over 4096)
        // 27 277 824 each.
        let dir = header_only_checkpoint(
            "q3",
            &[
                ("model.language_model.embed_tokens.weight", &[151_936, 2560]),
                ("model.language_model.layers", &[36, 100_930_816]),
                ("model.language_model.norm.weight", &[2560]),
                (
                    "model.visual.patch_embed.proj.weight",
                    &[1024, 3, 2, 16, 16],
                ),
                ("model.visual.patch_embed.proj.bias", &[1024]),
                ("model.visual.pos_embed.weight", &[2304, 1024]),
                ("model.visual.blocks", &[24, 12_596_224]),
                ("model.visual.merger", &[27_271_680]),
                ("model.visual.deepstack_merger_list", &[3, 27_277_824]),
            ],
        );
        let elements = checkpoint_elements(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        // The published size of Qwen3-VL-4B-Instruct (4.44B).
        assert_eq!(elements, 4_437_815_808);

        // 2000/32 = 62.5 → 62 (ties to even) → 1984 px, 124 × 124 = 15 376 patches.
        let image = LargestImage::allowed(
            &VisionPreprocessConfig::qwen3_vl_defaults(),
            Some(LongEdgeCap::default()),
        );
        assert_eq!(
            image,
            LargestImage {
                width: 1984,
                height: 1984,
                patches: 15_376
            }
        );

        let inputs = EstimateInputs {
            config: &cfg,
            weight_elements: elements,
            dtype: DType::BF16,
            quant: Quant::None,
            quant_vision: false,
            context_tokens: 32_768,
            kv_format: KvFormat::Model,
            image,
            cuda: true,
        };
        let e = estimate(&inputs);
        assert_eq!(e.weights_bytes, 8_875_631_616);
        // 36 × 2 × 8 kv heads × 128 × 2 bytes × 32 768 = 4.5 GiB.
        assert_eq!(e.kv_cache_bytes, 36 * 2 * 8 * 128 * 2 * 32_768);
        let n = 15_376u64;
        let vision = n * (1536 * 6 + 1024 * 2 + 2 * 64 * 4)
            + n * 1024 * 36
            + 272 * 16 * n * 14
            + (n / 4) * 2560 * 2 * 4;
        assert_eq!(e.vision_bytes, vision);
        // Prefill: with 32 query heads over 8 kv heads, attention (q/k/v, the
        // cache concatenation, 64-row score blocks, the output)
        // beats the MLP.
        let t = 32_768u64;
        let resident = t * (4 * 2560 * 2 + 2 * 128 * 2) + 151_936 * 4;
        let attention =
            t * 2 * 48 * 128 * 2 + t * 2 * 8 * 128 * 2 + 64 * 32 * t * 14 + t * 2 * 32 * 128 * 2;
        assert!(attention > t * 3 * 9728 * 2);
        assert_eq!(e.prefill_bytes, resident + attention);
        assert_eq!(e.total_bytes, 17_348_733_440); // 16.16 GiB
        assert!(e.total_bytes > 16 * GIB && e.total_bytes < 17 * GIB);

        // INT8 keys and values: 128 one-byte values plus a 4-byte scale per
        // token and head instead of 256 bytes: 51.6 % of the bf16 cache.
        let int8 = estimate(&EstimateInputs {
            kv_format: KvFormat::Int8,
            ..inputs.clone()
        });
        assert_eq!(int8.kv_cache_bytes, 36 * 2 * 8 * (128 + 4) * 32_768);
        assert_eq!(
            e.total_bytes - int8.total_bytes,
            36 * 2 * 8 * (256 - 132) * 32_768
        );

        // On the CPU in f32 there is no CUDA runtime and everything doubles.
        let cpu = estimate(&EstimateInputs {
            dtype: DType::F32,
            cuda: false,
            ..inputs
        });
        assert_eq!(cpu.runtime_bytes, 0);
        assert_eq!(cpu.weights_bytes, 2 * e.weights_bytes);
        assert_eq!(cpu.kv_cache_bytes, 2 * e.kv_cache_bytes);

        // q4k: the 36 layers' projections (q and o 2560 × 4096, k and v
        // 2560 × 1024, three 2560 × 9728) and the tied head (151 936 × 2560,
        // which serves as the embedding too) at 144 bytes per 256 weights. A
        // prefill on the GPU dequantises one 2560 × 9728 matrix; the CPU's
        // quantised kernels need no float copy.
        let q4 = estimate(&EstimateInputs {
            quant: Quant::Q4K,
            quant_vision: false,
            ..inputs.clone()
        });
        let q4_cpu = estimate(&EstimateInputs {
            quant: Quant::Q4K,
            cuda: false,
            ..inputs.clone()
        });
        let f32_cpu = estimate(&EstimateInputs {
            cuda: false,
            ..inputs.clone()
        });
        assert_eq!(q4_cpu.prefill_bytes, f32_cpu.prefill_bytes);
        let layers = 36 * (2560 * 4096 * 2 + 2560 * 1024 * 2 + 3 * 2560 * 9728);
        let head = 151_936 * 2560;
        assert_eq!(
            q4.weights_bytes,
            8_875_631_616 - (layers + head) * 2 + (layers + head) / 256 * 144
        );
        assert_eq!(q4.weights_bytes, 3_093_615_616);
        // On a CPU with glimpse's packed kernels, their tiles replace the
        // blocks and keep the scales as bytes (2 368 bytes per 4 096 weights
        // where the blocks take 2 304); on another x86 CPU the tiles of
        // candle's kernels come on top of the blocks.
        if crate::model::packed::PackedMatrix::cpu_has_kernels() {
            assert_eq!(
                q4_cpu.weights_bytes,
                q4.weights_bytes + (layers + head) / 64
            );
        } else {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                assert!(q4_cpu.weights_bytes >= q4.weights_bytes + (layers + head) * 3 / 4);
            }
        }
        assert_eq!(q4.prefill_bytes, e.prefill_bytes + 2560 * 9728 * 2);
        assert_eq!(q4.quant, "q4k");

        // --quant-vision: the tower's 24 blocks (qkv 1024 × 3072, proj
        // 1024 × 1024, fc1 and fc2 1024 × 4096) and its merger and three
        // DeepStack mergers (4096 × 4096, 4096 × 2560) take q4k too.
        let q4v = estimate(&EstimateInputs {
            quant: Quant::Q4K,
            quant_vision: true,
            ..inputs.clone()
        });
        let vision =
            24 * (1024 * 3072 + 1024 * 1024 + 2 * 1024 * 4096) + 4 * (4096 * 4096 + 4096 * 2560);
        assert_eq!(
            q4.weights_bytes - q4v.weights_bytes,
            vision * 2 - vision / 256 * 144
        );
    }

    #[test]
    fn a_mixture_of_experts_counts_every_expert_at_its_quantised_size() {
        let cfg = released_config("qwen3_vl_30b_a3b_instruct.json");
        let params = cfg.parameter_count().total();
        let inputs = EstimateInputs {
            config: &cfg,
            weight_elements: params,
            dtype: DType::BF16,
            quant: Quant::Q4K,
            quant_vision: false,
            context_tokens: 8192,
            kv_format: KvFormat::Model,
            image: LargestImage::allowed(
                &VisionPreprocessConfig::qwen3_vl_defaults(),
                Some(LongEdgeCap::default()),
            ),
            cuda: true,
        };
        let e = estimate(&inputs);
        // 48 layers of attention (q and o 2048 × 4096, k and v 2048 × 512)
        // and 128 experts of three 2048 × 768 matrices, and the untied head,
        // at 144 bytes per 256 weights; routers, embedding, norms and the
        // vision tower stay bf16.
        let layers = 48 * (2048 * 4096 * 2 + 2048 * 512 * 2 + 128 * 3 * 2048 * 768);
        let head = 151_936 * 2048;
        assert_eq!(
            e.weights_bytes,
            (params - layers - head) * 2 + (layers + head) / 256 * 144
        );
        // A prefill runs each token through its 8 experts of 768, wider than
        // the unused dense width, and dequantises one expert matrix at a time.
        let bf16 = estimate(&EstimateInputs {
            quant: Quant::None,
            ..inputs
        });
        assert_eq!(bf16.weights_bytes, params * 2);
        assert_eq!(e.prefill_bytes, bf16.prefill_bytes + 2048 * 768 * 2);
    }

    #[test]
    fn without_a_cap_the_largest_image_is_max_pixels() {
        // 12 845 056 = 3584²: 128 × 128 merged tokens of 28 px, 256² patches.
        let image = LargestImage::allowed(&qwen2_defaults(), None);
        assert_eq!(
            image,
            LargestImage {
                width: 3584,
                height: 3584,
                patches: 65_536
            }
        );
    }
}
