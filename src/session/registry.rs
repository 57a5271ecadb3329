//! Model cards: the checkpoints glimpse knows by name, with their size and
//! memory needs. The cards are the TOML files in `models/`, built into the
//! binary.
//!
//! The numbers follow from each model's `config.json` (see the tests):
//! `bf16_gib` = parameters × 2 bytes; `memory_gib` = bf16 weights + a KV cache
//! of 8192 tokens in bf16 + 1 GiB of working memory (activations, the vision
//! tower on a large image, the CUDA context), rounded up to half a GiB. On a CPU
//! glimpse computes in f32, which doubles the weights. `linear_weights` are
//! the decoder matrices (and head) that `--quant` stores in a block format.
//! `thinking` is what the
//! checkpoint's chat template does, checked against the templates in
//! `tests/fixtures/templates` the way the engine reads them at load.

use serde::Deserialize;

use crate::engine::estimate::LinearWeights;
use crate::model::Family;
use crate::processor::thinking::ThinkingMode;

const CARD_FILES: &[(&str, &str)] = &[
    (
        "qwen2-vl-2b-instruct.toml",
        include_str!("../../models/qwen2-vl-2b-instruct.toml"),
    ),
    (
        "qwen2-vl-7b-instruct.toml",
        include_str!("../../models/qwen2-vl-7b-instruct.toml"),
    ),
    (
        "qwen2.5-vl-3b-instruct.toml",
        include_str!("../../models/qwen2.5-vl-3b-instruct.toml"),
    ),
    (
        "qwen2.5-vl-7b-instruct.toml",
        include_str!("../../models/qwen2.5-vl-7b-instruct.toml"),
    ),
    (
        "qwen3-vl-2b-instruct.toml",
        include_str!("../../models/qwen3-vl-2b-instruct.toml"),
    ),
    (
        "qwen3-vl-4b-instruct.toml",
        include_str!("../../models/qwen3-vl-4b-instruct.toml"),
    ),
    (
        "qwen3-vl-8b-instruct.toml",
        include_str!("../../models/qwen3-vl-8b-instruct.toml"),
    ),
    (
        "qwen3.5-0.8b.toml",
        include_str!("../../models/qwen3.5-0.8b.toml"),
    ),
    (
        "qwen3.5-4b.toml",
        include_str!("../../models/qwen3.5-4b.toml"),
    ),
    (
        "qwen3.5-9b.toml",
        include_str!("../../models/qwen3.5-9b.toml"),
    ),
    (
        "qwen3.5-27b.toml",
        include_str!("../../models/qwen3.5-27b.toml"),
    ),
    (
        "qwen3-vl-30b-a3b-instruct.toml",
        include_str!("../../models/qwen3-vl-30b-a3b-instruct.toml"),
    ),
    (
        "qwen3-vl-30b-a3b-thinking.toml",
        include_str!("../../models/qwen3-vl-30b-a3b-thinking.toml"),
    ),
    (
        "qwen3.5-35b-a3b.toml",
        include_str!("../../models/qwen3.5-35b-a3b.toml"),
    ),
];

/// Tokens of context the memory estimate reserves KV cache for.
pub const ESTIMATE_CONTEXT_TOKENS: u64 = 8192;
/// Working memory on top of weights and KV cache in the estimate.
pub const ESTIMATE_OVERHEAD_GIB: f64 = 1.0;

#[derive(Debug, Clone, PartialEq)]
pub struct ModelCard {
    /// Hugging Face hub id, e.g. `Qwen/Qwen3-VL-4B-Instruct`.
    pub id: String,
    pub family: Family,
    pub parameters: u64,
    /// Parameters one token goes through (fewer than `parameters` for a
    /// mixture of experts).
    pub active_parameters: u64,
    /// Size of the weights in bf16 (as downloaded).
    pub bf16_gib: f64,
    /// GPU memory to expect in bf16 for a typical conversation.
    pub memory_gib: f64,
    /// Longest context the model was trained for, in tokens.
    pub context: u64,
    /// The matrices quantising stores in a block format.
    pub linear_weights: LinearWeights,
    /// Decoder layers.
    pub layers: usize,
    /// Decoder layers whose keys and values grow with the context (all but
    /// the linear-attention layers of a hybrid model).
    pub context_layers: usize,
    /// What the checkpoint's chat template does about thinking.
    pub thinking: ThinkingMode,
    pub notes: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCard {
    id: String,
    family: String,
    parameters: u64,
    #[serde(default)]
    active_parameters: Option<u64>,
    bf16_gib: f64,
    memory_gib: f64,
    context: u64,
    linear_weights: LinearWeights,
    layers: usize,
    context_layers: usize,
    thinking: String,
    notes: String,
}

fn parse_card(file: &str, text: &str) -> Result<ModelCard, String> {
    let raw: RawCard = toml::from_str(text).map_err(|e| format!("models/{file}: {e}"))?;
    let family = Family::from_model_type(&raw.family).ok_or_else(|| {
        format!(
            "models/{file}: unknown family {:?}; use qwen2_vl, qwen2_5_vl, qwen3_vl, qwen3_vl_moe, qwen3_5 or qwen3_5_moe",
            raw.family
        )
    })?;
    let thinking = THINKING_WORDS
        .iter()
        .find(|(word, _)| *word == raw.thinking)
        .map(|(_, mode)| *mode)
        .ok_or_else(|| {
            format!(
                "models/{file}: unknown thinking {:?}; use never, always, on by default or off by default",
                raw.thinking
            )
        })?;
    Ok(ModelCard {
        id: raw.id,
        family,
        parameters: raw.parameters,
        active_parameters: raw.active_parameters.unwrap_or(raw.parameters),
        bf16_gib: raw.bf16_gib,
        memory_gib: raw.memory_gib,
        context: raw.context,
        linear_weights: raw.linear_weights,
        layers: raw.layers,
        context_layers: raw.context_layers,
        thinking,
        notes: raw.notes,
    })
}

/// A card's `thinking`, as written in the card and shown by `glimpse models`.
const THINKING_WORDS: [(&str, ThinkingMode); 4] = [
    ("never", ThinkingMode::None),
    ("always", ThinkingMode::Always),
    (
        "on by default",
        ThinkingMode::Switchable { default_on: true },
    ),
    (
        "off by default",
        ThinkingMode::Switchable { default_on: false },
    ),
];

/// How `glimpse models` says what a checkpoint does about thinking.
pub fn thinking_words(mode: ThinkingMode) -> &'static str {
    THINKING_WORDS
        .iter()
        .find(|(_, m)| *m == mode)
        .map_or("never", |(word, _)| word)
}

/// Every card, smallest first within each family, families oldest first.
pub fn cards() -> Vec<ModelCard> {
    let mut cards: Vec<ModelCard> = CARD_FILES
        .iter()
        .map(|(file, text)| {
            parse_card(file, text).expect("the built-in model cards are checked by tests")
        })
        .collect();
    let family_order = |f: Family| match f {
        Family::Qwen2Vl => 0,
        Family::Qwen25Vl => 1,
        Family::Qwen3Vl => 2,
        Family::Qwen3VlMoe => 3,
        Family::Qwen35 => 4,
        Family::Qwen35Moe => 5,
    };
    cards.sort_by_key(|c| (family_order(c.family), c.parameters));
    cards
}

/// The card of a hub id, compared without regard to case.
pub fn card(id: &str) -> Option<ModelCard> {
    cards().into_iter().find(|c| c.id.eq_ignore_ascii_case(id))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::ModelConfig;
    use crate::processor::template::ChatTemplate;
    use crate::processor::thinking::small_qwen3_5_template;

    const GIB: f64 = (1u64 << 30) as f64;

    /// A config.json with the values of qwen-vl-family §2.2 (text) and §2.3
    /// (vision) for one released checkpoint.
    fn released_config(id: &str) -> ModelConfig {
        if id.starts_with("Qwen/Qwen3.5-35B-A3B") {
            return qwen3_5_35b_a3b_config();
        }
        if id.starts_with("Qwen/Qwen3-VL-30B-A3B-") {
            return qwen3_vl_30b_a3b_config();
        }
        if id.starts_with("Qwen/Qwen3.5-") {
            return qwen3_5_config(id);
        }
        // (model_type, vocab, hidden, intermediate, layers, heads, kv heads, tied, max_pos)
        let text = match id {
            "Qwen/Qwen2-VL-2B-Instruct" => ("qwen2_vl", 151936, 1536, 8960, 28, 12, 2, true, 32768),
            "Qwen/Qwen2-VL-7B-Instruct" => {
                ("qwen2_vl", 152064, 3584, 18944, 28, 28, 4, false, 32768)
            }
            "Qwen/Qwen2.5-VL-3B-Instruct" => {
                ("qwen2_5_vl", 151936, 2048, 11008, 36, 16, 2, true, 128000)
            }
            "Qwen/Qwen2.5-VL-7B-Instruct" => {
                ("qwen2_5_vl", 152064, 3584, 18944, 28, 28, 4, false, 128000)
            }
            "Qwen/Qwen3-VL-2B-Instruct" => {
                ("qwen3_vl", 151936, 2048, 6144, 28, 16, 8, true, 262144)
            }
            "Qwen/Qwen3-VL-4B-Instruct" => {
                ("qwen3_vl", 151936, 2560, 9728, 36, 32, 8, true, 262144)
            }
            "Qwen/Qwen3-VL-8B-Instruct" => {
                ("qwen3_vl", 151936, 4096, 12288, 36, 32, 8, false, 262144)
            }
            other => panic!("no config values for {other}"),
        };
        let (model_type, vocab, hidden, inter, layers, heads, kv, tied, max_pos) = text;
        let text_fields = json!({
            "vocab_size": vocab, "hidden_size": hidden, "intermediate_size": inter,
            "num_hidden_layers": layers, "num_attention_heads": heads,
            "num_key_value_heads": kv, "head_dim": 128, "tie_word_embeddings": tied,
            "max_position_embeddings": max_pos,
        });
        let vision = match (model_type, id) {
            ("qwen2_vl", _) => json!({
                "depth": 32, "embed_dim": 1280, "num_heads": 16, "mlp_ratio": 4,
                "hidden_size": hidden, "patch_size": 14, "spatial_merge_size": 2,
                "temporal_patch_size": 2, "in_chans": 3,
            }),
            ("qwen2_5_vl", _) => json!({
                "depth": 32, "hidden_size": 1280, "num_heads": 16, "intermediate_size": 3420,
                "out_hidden_size": hidden, "patch_size": 14, "spatial_merge_size": 2,
                "temporal_patch_size": 2, "in_channels": 3, "hidden_act": "silu",
            }),
            (_, "Qwen/Qwen3-VL-8B-Instruct") => json!({
                "depth": 27, "hidden_size": 1152, "num_heads": 16, "intermediate_size": 4304,
                "out_hidden_size": hidden, "patch_size": 16, "spatial_merge_size": 2,
                "temporal_patch_size": 2, "in_channels": 3, "num_position_embeddings": 2304,
                "deepstack_visual_indexes": [8, 16, 24], "hidden_act": "gelu_pytorch_tanh",
            }),
            _ => json!({
                "depth": 24, "hidden_size": 1024, "num_heads": 16, "intermediate_size": 4096,
                "out_hidden_size": hidden, "patch_size": 16, "spatial_merge_size": 2,
                "temporal_patch_size": 2, "in_channels": 3, "num_position_embeddings": 2304,
                "deepstack_visual_indexes": [5, 11, 17], "hidden_act": "gelu_pytorch_tanh",
            }),
        };
        let mut cfg = json!({"model_type": model_type, "vision_config": vision});
        if model_type == "qwen3_vl" {
            cfg["text_config"] = text_fields;
            cfg["tie_word_embeddings"] = json!(tied);
        } else {
            for (k, v) in text_fields.as_object().unwrap() {
                cfg[k] = v.clone();
            }
        }
        ModelConfig::from_json(&cfg).unwrap()
    }

    /// The released Qwen3.5 configs (text and vision fields that differ by size).
    fn qwen3_5_config(id: &str) -> ModelConfig {
        // (hidden, intermediate, layers, heads, kv heads, linear value heads, tied),
        // (vision depth, width, MLP, heads)
        let (text, vision) = match id {
            "Qwen/Qwen3.5-0.8B" => ((1024, 3584, 24, 8, 2, 16, true), (12, 768, 3072, 12)),
            "Qwen/Qwen3.5-4B" => ((2560, 9216, 32, 16, 4, 32, true), (24, 1024, 4096, 16)),
            "Qwen/Qwen3.5-9B" => ((4096, 12288, 32, 16, 4, 32, false), (27, 1152, 4304, 16)),
            "Qwen/Qwen3.5-27B" => ((5120, 17408, 64, 24, 4, 48, false), (27, 1152, 4304, 16)),
            other => panic!("no config values for {other}"),
        };
        let (hidden, inter, layers, heads, kv, value_heads, tied) = text;
        let (depth, width, mlp, vision_heads) = vision;
        ModelConfig::from_json(&json!({
            "model_type": "qwen3_5", "tie_word_embeddings": tied,
            "text_config": {
                "vocab_size": 248320, "hidden_size": hidden, "intermediate_size": inter,
                "num_hidden_layers": layers, "num_attention_heads": heads,
                "num_key_value_heads": kv, "head_dim": 256, "full_attention_interval": 4,
                "linear_num_key_heads": 16, "linear_num_value_heads": value_heads,
                "linear_key_head_dim": 128, "linear_value_head_dim": 128,
                "linear_conv_kernel_dim": 4, "max_position_embeddings": 262144,
                "tie_word_embeddings": tied,
                "rope_parameters": {"rope_type": "default", "rope_theta": 10000000,
                    "mrope_section": [11, 11, 10], "mrope_interleaved": true,
                    "partial_rotary_factor": 0.25},
            },
            "vision_config": {
                "depth": depth, "hidden_size": width, "intermediate_size": mlp,
                "num_heads": vision_heads, "out_hidden_size": hidden, "patch_size": 16,
                "spatial_merge_size": 2, "temporal_patch_size": 2, "in_channels": 3,
                "num_position_embeddings": 2304, "hidden_act": "gelu_pytorch_tanh",
            },
        }))
        .unwrap()
    }

    /// Qwen3-VL-30B-A3B-Instruct and -Thinking share this config.json.
    fn qwen3_vl_30b_a3b_config() -> ModelConfig {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/configs/qwen3_vl_30b_a3b_instruct.json");
        let text = std::fs::read_to_string(path).unwrap();
        ModelConfig::from_json(&serde_json::from_str(&text).unwrap()).unwrap()
    }

    fn qwen3_5_35b_a3b_config() -> ModelConfig {
        ModelConfig::from_json(&json!({
            "model_type": "qwen3_5_moe", "tie_word_embeddings": false,
            "text_config": {
                "vocab_size": 248320, "hidden_size": 2048, "num_hidden_layers": 40,
                "num_attention_heads": 16, "num_key_value_heads": 2, "head_dim": 256,
                "full_attention_interval": 4, "linear_num_key_heads": 16,
                "linear_num_value_heads": 32, "linear_key_head_dim": 128,
                "linear_value_head_dim": 128, "linear_conv_kernel_dim": 4,
                "num_experts": 256, "num_experts_per_tok": 8, "moe_intermediate_size": 512,
                "shared_expert_intermediate_size": 512, "max_position_embeddings": 262144,
                "rope_parameters": {"rope_type": "default", "rope_theta": 10000000,
                    "mrope_section": [11, 11, 10], "mrope_interleaved": true,
                    "partial_rotary_factor": 0.25},
            },
            "vision_config": {
                "depth": 27, "hidden_size": 1152, "num_heads": 16, "intermediate_size": 4304,
                "out_hidden_size": 2048, "patch_size": 16, "spatial_merge_size": 2,
                "temporal_patch_size": 2, "in_channels": 3, "num_position_embeddings": 2304,
                "hidden_act": "gelu_pytorch_tanh",
            },
        }))
        .unwrap()
    }

    #[test]
    fn card_numbers_follow_from_the_released_configs() {
        let cards = cards();
        assert_eq!(cards.len(), 14);
        for card in &cards {
            let cfg = released_config(&card.id);
            assert_eq!(cfg.family, card.family, "{}", card.id);
            let count = cfg.parameter_count();
            let params = count.total();
            assert_eq!(card.parameters, params, "{}: parameters", card.id);
            assert_eq!(
                card.active_parameters,
                count.active(),
                "{}: active parameters",
                card.id
            );
            let weights = params as f64 * 2.0 / GIB;
            assert_eq!(
                card.bf16_gib,
                (weights * 10.0).round() / 10.0,
                "{}: bf16_gib",
                card.id
            );
            let kv = (cfg.kv_bytes_per_token(2) * ESTIMATE_CONTEXT_TOKENS
                + cfg.recurrent_state_bytes(2)) as f64
                / GIB;
            let memory = ((weights + kv + ESTIMATE_OVERHEAD_GIB) * 2.0).ceil() / 2.0;
            assert_eq!(card.memory_gib, memory, "{}: memory_gib", card.id);
            assert_eq!(
                card.linear_weights,
                crate::engine::estimate::linear_weights(&cfg.text),
                "{}: linear_weights",
                card.id
            );
            assert_eq!(
                card.context, cfg.text.max_position_embeddings as u64,
                "{}",
                card.id
            );
            assert_eq!(card.layers, cfg.text.num_hidden_layers, "{}", card.id);
            assert_eq!(
                card.context_layers,
                cfg.text.full_attention_layers(),
                "{}",
                card.id
            );
        }
    }

    /// The multi-token-prediction layer Qwen3.5 checkpoints carry and glimpse
    /// does not load: a full-attention decoder layer, a projection from twice
    /// the width, and three norms.
    fn mtp_parameters(cfg: &ModelConfig) -> u64 {
        let t = &cfg.text;
        let (h, q, kv) = (
            t.hidden_size as u64,
            (t.num_attention_heads * t.head_dim) as u64,
            (t.num_key_value_heads * t.head_dim) as u64,
        );
        let attention = h * 2 * q + 2 * h * kv + q * h + 2 * t.head_dim as u64;
        let mlp = 3 * h * t.intermediate_size as u64;
        2 * h * h + attention + mlp + 5 * h
    }

    #[test]
    fn large_qwen3_5_cards_match_the_published_sizes() {
        // Qwen3.5-9B's safetensors index: total_size 19 306 216 416 bytes, in
        // bf16 but for each linear layer's A_log and gated norm (32 + 128
        // values), which are kept in f32 (`mamba_ssm_dtype`).
        let nine = card("Qwen/Qwen3.5-9B").unwrap();
        let mtp = mtp_parameters(&released_config(&nine.id));
        assert_eq!(mtp, 243_290_624);
        let f32_extra = 24 * (32 + 128) * 2;
        assert_eq!((nine.parameters + mtp) * 2 + f32_extra, 19_306_216_416);
        // Qwen3.5-27B is published as 27B parameters, about 54 GB in bf16.
        let big = card("Qwen/Qwen3.5-27B").unwrap();
        let total = big.parameters + mtp_parameters(&released_config(&big.id));
        assert!((27.0e9..28.0e9).contains(&(total as f64)), "{total}");
    }

    /// What each checkpoint ships as its chat template (tests/fixtures/README.md).
    fn released_template(card: &ModelCard) -> ChatTemplate {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/templates");
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
        let source = match card.family {
            Family::Qwen2Vl | Family::Qwen25Vl => read("qwen2_vl.jinja"),
            Family::Qwen3Vl | Family::Qwen3VlMoe if card.id.ends_with("-Thinking") => {
                read("qwen3_vl_thinking.jinja")
            }
            Family::Qwen3Vl | Family::Qwen3VlMoe => read("qwen3_vl.jinja"),
            Family::Qwen35
                if ["Qwen/Qwen3.5-0.8B", "Qwen/Qwen3.5-2B"].contains(&card.id.as_str()) =>
            {
                small_qwen3_5_template(&read("qwen3_5.jinja"))
            }
            Family::Qwen35 | Family::Qwen35Moe => read("qwen3_5.jinja"),
        };
        ChatTemplate::from_source(&source).unwrap()
    }

    #[test]
    fn card_thinking_is_what_the_released_template_does() {
        for card in cards() {
            let mode = ThinkingMode::of(&released_template(&card));
            assert_eq!(card.thinking, mode, "{}", card.id);
        }
        assert_eq!(
            thinking_words(ThinkingMode::Switchable { default_on: false }),
            "off by default"
        );
        let bad = include_str!("../../models/qwen3.5-4b.toml").replace("on by default", "maybe");
        let err = parse_card("x.toml", &bad).unwrap_err();
        assert!(err.contains("unknown thinking \"maybe\""), "{err}");
    }

    /// The count for the default model, written out term by term.
    #[test]
    fn qwen3_vl_4b_by_hand() {
        // Text: 36 layers of hidden 2560, 32 query heads and 8 kv heads of 128.
        let attention = 2560 * 4096 // q_proj
            + 2 * 2560 * 1024 // k_proj, v_proj
            + 4096 * 2560 // o_proj
            + 2 * 128; // q_norm, k_norm
        let mlp = 3 * 2560 * 9728; // gate, up, down
        let layer = attention + mlp + 2 * 2560; // two RMSNorms
        let text = 151936 * 2560 + 36 * layer + 2560; // tied embedding, final norm
        assert_eq!(text, 4_022_468_096u64);
        // Vision: 24 blocks of width 1024, MLP 4096, patches 3·2·16·16 = 1536.
        let block = 2 * 2 * 1024 // two LayerNorms
            + (1024 * 3072 + 3072) // qkv
            + (1024 * 1024 + 1024) // proj
            + (1024 * 4096 + 4096) // fc1
            + (4096 * 1024 + 1024); // fc2
        let merger_body = (4096 * 4096 + 4096) + (4096 * 2560 + 2560);
        let vision = (1536 * 1024 + 1024) // patch embedding with bias
            + 2304 * 1024 // 48×48 position table
            + 24 * block
            + (2 * 1024 + merger_body) // merger, norm before the 2×2 shuffle
            + 3 * (2 * 4096 + merger_body); // DeepStack mergers, norm after it
        assert_eq!(vision, 415_347_712u64);
        assert_eq!(text + vision, 4_437_815_808);
        let count = released_config("Qwen/Qwen3-VL-4B-Instruct").parameter_count();
        assert_eq!((count.text, count.vision), (text, vision));
    }

    /// The 30B mixture of experts, its experts written out: 48 sparse
    /// layers of 128 experts, 8 per token, each a gated MLP 2048 → 768 → 2048.
    #[test]
    fn qwen3_vl_30b_a3b_by_hand() {
        let attention = 2048 * 4096 + 2 * 2048 * 512 + 4096 * 2048 + 2 * 128;
        let expert = 3 * 2048 * 768;
        let sparse = 2048 * 128 + 128 * expert; // router, experts
        let layer = attention + sparse + 2 * 2048;
        let text: u64 = 2 * 151936 * 2048 + 48 * layer + 2048; // untied head
        let count = qwen3_vl_30b_a3b_config().parameter_count();
        assert_eq!(count.text, text);
        assert_eq!(count.idle_experts, 48 * 120 * expert);
        // Published as 31.07B in total; about 3.3B of the decoder per token.
        assert_eq!(count.total() / 10_000_000, 3107);
        assert_eq!((count.text - count.idle_experts) / 100_000_000, 33);
    }

    #[test]
    fn every_file_in_models_is_built_in() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".toml"))
            .collect();
        on_disk.sort();
        let mut built_in: Vec<String> = CARD_FILES.iter().map(|(f, _)| f.to_string()).collect();
        built_in.sort();
        assert_eq!(on_disk, built_in);
    }

    #[test]
    fn lookup_ignores_case_and_the_default_model_has_a_card() {
        assert!(card("qwen/qwen3-vl-4b-instruct").is_some());
        assert!(card(crate::session::config::DEFAULT_MODEL).is_some());
        assert!(card("Qwen/Qwen9-VL").is_none());
    }
}
