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
}

impl ParameterCount {
    pub fn total(&self) -> u64 {
        self.text + self.vision
    }
}

impl ModelConfig {
    pub fn parameter_count(&self) -> ParameterCount {
        ParameterCount {
            text: text_parameters(&self.text),
            vision: vision_parameters(self.family.vision_design(), &self.vision),
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
    let mlp = 3 * linear(h, t.intermediate_size, false);
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
    embedding + layers + t.num_hidden_layers as u64 * (mlp + norms) + h as u64 + head
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
        Family::Qwen2Vl | Family::Qwen3Vl | Family::Qwen35 => 2 * width as u64,
    };
    let patch_embed = linear(
        v.patch_dim(),
        d,
        family != Family::Qwen2Vl && family != Family::Qwen25Vl,
    );
    let position_table = match family {
        Family::Qwen3Vl | Family::Qwen35 => (v.num_position_embeddings * d) as u64,
        Family::Qwen2Vl | Family::Qwen25Vl => 0,
    };
    let mlp = match family {
        Family::Qwen25Vl => {
            2 * linear(d, v.intermediate_size, true) + linear(v.intermediate_size, d, true)
        }
        Family::Qwen2Vl | Family::Qwen3Vl | Family::Qwen35 => {
            linear(d, v.intermediate_size, true) + linear(v.intermediate_size, d, true)
        }
    };
    let block = 2 * norm(d) + linear(d, 3 * d, true) + linear(d, d, true) + mlp;
    let merger_body = linear(merged, merged, true) + linear(merged, v.out_hidden_size, true);
    let merger = norm(d) + merger_body;
    let deepstack = match family {
        Family::Qwen3Vl => v.deepstack_visual_indexes.len() as u64 * (norm(merged) + merger_body),
        Family::Qwen2Vl | Family::Qwen25Vl | Family::Qwen35 => 0,
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
        for family in ["qwen2_vl", "qwen2_5_vl", "qwen3_vl", "qwen3_5"] {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/models")
                .join(family);
            let cfg = ModelConfig::from_model_dir(&dir).unwrap();
            let (text, vision) = tensors_in_checkpoint(&dir);
            let count = cfg.parameter_count();
            assert_eq!(count.text, text, "{family}: text parameters");
            assert_eq!(count.vision, vision, "{family}: vision parameters");
        }
    }
}
