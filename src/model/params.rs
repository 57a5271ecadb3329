//! How many weights a configuration implies, counted tensor by tensor the way
//! the checkpoints store them. Used for model cards and memory estimates; the
//! tests check the count against the tensors of real checkpoint files.

use super::config::{
    Family, LayerKind, LinearAttentionConfig, ModelConfig, TextConfig, VisionConfig,
};

/// Parameter counts of the two halves of a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParameterCount {
    pub text: u64,
    pub vision: u64,
    /// Of `text`: the routed experts' weights one token does not use (zero
    /// for dense decoders).
    pub idle_experts: u64,
}

impl ParameterCount {
    pub fn total(&self) -> u64 {
        self.text + self.vision
    }

    /// Parameters one token goes through: all but the experts it is not
    /// routed to.
    pub fn active(&self) -> u64 {
        self.total() - self.idle_experts
    }
}

impl ModelConfig {
    pub fn parameter_count(&self) -> ParameterCount {
        let idle_experts = self.text.moe.as_ref().map_or(0, |m| {
            let expert = 3 * linear(self.text.hidden_size, m.expert_intermediate_size, false);
            (m.sparse_layer_count() * (m.num_experts - m.experts_per_token)) as u64 * expert
        });
        ParameterCount {
            text: text_parameters(&self.text),
            vision: vision_parameters(self.family.vision_design(), &self.vision),
            idle_experts,
        }
    }

    /// Bytes of keys and values one token occupies in the KV cache (only
    /// full-attention layers keep them).
    pub fn kv_bytes_per_token(&self, bytes_per_value: u64) -> u64 {
        let t = &self.text;
        2 * (t.full_attention_layers() * t.num_key_value_heads * t.head_dim) as u64
            * bytes_per_value
    }

    /// Bytes of the fixed-size states of all linear-attention layers: the
    /// convolution's last inputs in the model's dtype, the delta rule's
    /// memory in f32. Zero for decoders without such layers.
    pub fn recurrent_state_bytes(&self, bytes_per_value: u64) -> u64 {
        let t = &self.text;
        let Some(l) = &t.linear else { return 0 };
        let layers = (t.num_hidden_layers - t.full_attention_layers()) as u64;
        let conv = ((l.conv_kernel - 1) * l.conv_dim()) as u64 * bytes_per_value;
        let memory = (l.num_value_heads * l.key_head_dim * l.value_head_dim) as u64 * 4;
        layers * (conv + memory)
    }
}

fn linear(inputs: usize, outputs: usize, bias: bool) -> u64 {
    (inputs * outputs + if bias { outputs } else { 0 }) as u64
}

fn text_parameters(t: &TextConfig) -> u64 {
    let h = t.hidden_size;
    let q_width = t.num_attention_heads * t.head_dim;
    let kv_width = t.num_key_value_heads * t.head_dim;
    let gate = if t.attention_output_gate { 2 } else { 1 };
    let attention = linear(h, gate * q_width, t.attention_bias)
        + 2 * linear(h, kv_width, t.attention_bias)
        + linear(q_width, h, false)
        + if t.qk_norm { 2 * t.head_dim as u64 } else { 0 };
    let delta_net = t.linear.as_ref().map_or(0, |l| delta_net_parameters(h, l));
    let norms = 2 * h as u64;
    let embedding = (t.vocab_size * h) as u64;
    let head = if t.tie_word_embeddings { 0 } else { embedding };
    let layers: u64 = t
        .layer_kinds
        .iter()
        .map(|k| match k {
            LayerKind::FullAttention => attention,
            LayerKind::LinearAttention => delta_net,
        })
        .sum();
    embedding + layers + mlp_parameters(t) + t.num_hidden_layers as u64 * norms + h as u64 + head
}

/// The MLPs of all layers: dense ones, or a sparse block's router, routed
/// experts and shared expert with its one-output gate.
fn mlp_parameters(t: &TextConfig) -> u64 {
    let h = t.hidden_size;
    let dense = 3 * linear(h, t.intermediate_size, false);
    let Some(m) = &t.moe else {
        return t.num_hidden_layers as u64 * dense;
    };
    let shared = m
        .shared_expert_intermediate_size
        .map_or(0, |i| 3 * linear(h, i, false) + linear(h, 1, false));
    let sparse = linear(h, m.num_experts, false)
        + m.num_experts as u64 * 3 * linear(h, m.expert_intermediate_size, false)
        + shared;
    let sparse_layers = m.sparse_layer_count() as u64;
    sparse_layers * sparse + (t.num_hidden_layers as u64 - sparse_layers) * dense
}

/// Projections in (q, k, v; z; b; a), the convolution, the per-head decay
/// parameters (`dt_bias`, `A_log`), the gated norm and the output projection.
fn delta_net_parameters(h: usize, l: &LinearAttentionConfig) -> u64 {
    let value_dim = l.num_value_heads * l.value_head_dim;
    linear(h, l.conv_dim(), false)
        + linear(h, value_dim, false)
        + 2 * linear(h, l.num_value_heads, false)
        + (l.conv_dim() * l.conv_kernel) as u64
        + 2 * l.num_value_heads as u64
        + l.value_head_dim as u64
        + linear(value_dim, h, false)
}

fn vision_parameters(family: Family, v: &VisionConfig) -> u64 {
    let d = v.hidden_size;
    let merged = d * v.spatial_merge_size * v.spatial_merge_size;
    // Qwen2.5-VL normalises with RMSNorm (weight only), the others with LayerNorm.
    let norm = |width: usize| match family {
        Family::Qwen25Vl => width as u64,
        _ => 2 * width as u64,
    };
    let patch_embed = linear(
        v.patch_dim(),
        d,
        family != Family::Qwen2Vl && family != Family::Qwen25Vl,
    );
    let position_table = match family {
        Family::Qwen2Vl | Family::Qwen25Vl => 0,
        _ => (v.num_position_embeddings * d) as u64,
    };
    let mlp = match family {
        Family::Qwen25Vl => {
            2 * linear(d, v.intermediate_size, true) + linear(v.intermediate_size, d, true)
        }
        _ => linear(d, v.intermediate_size, true) + linear(v.intermediate_size, d, true),
    };
    let block = 2 * norm(d) + linear(d, 3 * d, true) + linear(d, d, true) + mlp;
    let merger_body = linear(merged, merged, true) + linear(merged, v.out_hidden_size, true);
    let merger = norm(d) + merger_body;
    let deepstack = match family {
        Family::Qwen3Vl => v.deepstack_visual_indexes.len() as u64 * (norm(merged) + merger_body),
        _ => 0,
    };
    patch_embed + position_table + v.depth as u64 * block + merger + deepstack
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn tensors_in_checkpoint(dir: &Path) -> (u64, u64) {
        let (mut text, mut vision) = (0, 0);
        for file in crate::model::weights::safetensors_files(dir).unwrap() {
            let bytes = std::fs::read(&file).unwrap();
            let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
            for (name, view) in st.tensors() {
                let n: u64 = view.shape().iter().map(|&d| d as u64).product();
                if name.contains("visual.") {
                    vision += n;
                } else {
                    text += n;
                }
            }
        }
        (text, vision)
    }

    #[test]
    fn count_matches_the_tensors_of_every_fixture_checkpoint() {
        for family in crate::model::test_util::FIXTURE_FAMILIES {
            let dir = crate::model::test_util::fixture_model(family);
            let cfg = ModelConfig::from_model_dir(&dir).unwrap();
            let (text, vision) = tensors_in_checkpoint(&dir);
            let count = cfg.parameter_count();
            assert_eq!(count.text, text, "{family}: text parameters");
            assert_eq!(count.vision, vision, "{family}: vision parameters");
        }
    }
}
