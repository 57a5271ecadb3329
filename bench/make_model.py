#!/usr/bin/env python3
"""Write a random-weight model directory of a known Qwen-VL configuration.

Speed does not depend on weight values, so benchmarks run on real-size models
with random weights: same shapes, same token counts, same kernels. The
directory is complete (config, safetensors, tokenizer, chat template,
preprocessor and generation configs) and loads in both glimpse and
transformers.

    python bench/make_model.py --config qwen2_vl_2b --tokenizer path/to/tokenizer.json --out /tmp/q2vl2b

Qwen3.5 (`qwen3_5_0_8b`, `qwen3_5_4b`) gets the real Qwen2 tokenizer too, with
the Qwen2 ids of its image and vision tokens; the embedding keeps Qwen3.5's
248 320 rows. tokenizer_config.json declares every added token of the given
tokenizer.json (`<think>` and `</think>` included, where it has them), so
transformers and glimpse split the prompt alike.

Needs torch and transformers (pinned in tests/fixtures/requirements.txt).
"""

import argparse
import json
import shutil
import time
from pathlib import Path

import torch
import transformers

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE.parent / "tests" / "fixtures" / "templates"

# Token ids of the real Qwen2 tokenizer.
IDS = {
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "pad_token_id": 151643,
    "image_token_id": 151655,
    "video_token_id": 151656,
    "vision_start_token_id": 151652,
    "vision_end_token_id": 151653,
}

# Where the vision tokens are, for every family's config.
VISION_TOKEN_IDS = {k: IDS[k] for k in ("image_token_id", "video_token_id", "vision_start_token_id",
                                       "vision_end_token_id")}

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def qwen2_vl(text, vision, tie):
    return "qwen2_vl", transformers.Qwen2VLConfig(
        text_config=dict(
            vocab_size=151936,
            rms_norm_eps=1e-6,
            hidden_act="silu",
            max_position_embeddings=32768,
            rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
            bos_token_id=IDS["bos_token_id"],
            eos_token_id=IDS["eos_token_id"],
        ) | text,
        vision_config=dict(depth=32, embed_dim=1280, num_heads=16, mlp_ratio=4, hidden_act="quick_gelu",
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, in_channels=3) | vision,
        **VISION_TOKEN_IDS,
        tie_word_embeddings=tie,
    )


def qwen2_5_vl(text, vision, tie):
    return "qwen2_5_vl", transformers.Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=151936,
            rms_norm_eps=1e-6,
            hidden_act="silu",
            max_position_embeddings=128000,
            rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
            bos_token_id=IDS["bos_token_id"],
            eos_token_id=IDS["eos_token_id"],
        ) | text,
        vision_config=dict(depth=32, hidden_size=1280, num_heads=16, intermediate_size=3420, hidden_act="silu",
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, in_channels=3,
                           window_size=112, fullatt_block_indexes=[7, 15, 23, 31], tokens_per_second=2) | vision,
        **VISION_TOKEN_IDS,
        tie_word_embeddings=tie,
    )


def qwen3_vl(text, vision, tie, family="qwen3_vl", config_class=transformers.Qwen3VLConfig):
    return family, config_class(
        text_config=dict(
            vocab_size=151936,
            rms_norm_eps=1e-6,
            hidden_act="silu",
            max_position_embeddings=262144,
            head_dim=128,
            rope_parameters={"rope_type": "default", "rope_theta": 5e6, "mrope_section": [24, 20, 20],
                             "mrope_interleaved": True},
            bos_token_id=IDS["bos_token_id"],
            eos_token_id=IDS["eos_token_id"],
        ) | text,
        vision_config=dict(patch_size=16, spatial_merge_size=2, temporal_patch_size=2, in_channels=3,
                           hidden_act="gelu_pytorch_tanh", num_position_embeddings=2304) | vision,
        **VISION_TOKEN_IDS,
        tie_word_embeddings=tie,
    )


def qwen3_vl_moe(text, vision, tie):
    return qwen3_vl(text, vision, tie, "qwen3_vl_moe", transformers.Qwen3VLMoeConfig)


QWEN3_VL_30B_A3B_TEXT = dict(hidden_size=2048, intermediate_size=6144, num_hidden_layers=48, num_attention_heads=32,
                             num_key_value_heads=4, moe_intermediate_size=768, num_experts=128,
                             num_experts_per_tok=8, decoder_sparse_step=1, mlp_only_layers=[],
                             tie_word_embeddings=False)
QWEN3_VL_30B_A3B_VISION = dict(depth=27, hidden_size=1152, num_heads=16, intermediate_size=4304, out_hidden_size=2048,
                               deepstack_visual_indexes=[8, 16, 24])
QWEN3_VL_4B_TEXT = dict(hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
                        num_key_value_heads=8)
QWEN3_VL_4B_VISION = dict(depth=24, hidden_size=1024, num_heads=16, intermediate_size=4096, out_hidden_size=2560,
                          deepstack_visual_indexes=[5, 11, 17])


def qwen3_5(text, vision, tie):
    layers = text["num_hidden_layers"]
    return "qwen3_5", transformers.Qwen3_5Config(
        text_config=dict(
            # The real vocabulary's size; the Qwen2 tokenizer uses its first 151 657 rows.
            vocab_size=248320,
            rms_norm_eps=1e-6,
            hidden_act="silu",
            max_position_embeddings=262144,
            head_dim=256,
            # Every fourth layer full attention, the rest Gated DeltaNet.
            layer_types=[("full_attention" if (i + 1) % 4 == 0 else "linear_attention") for i in range(layers)],
            linear_num_key_heads=16,
            linear_key_head_dim=128,
            linear_value_head_dim=128,
            linear_conv_kernel_dim=4,
            attention_bias=False,
            rope_parameters={"rope_type": "default", "rope_theta": 1e7, "mrope_section": [11, 11, 10],
                             "mrope_interleaved": True, "partial_rotary_factor": 0.25},
            tie_word_embeddings=tie,
            bos_token_id=IDS["bos_token_id"],
            eos_token_id=IDS["eos_token_id"],
        ) | text,
        vision_config=dict(patch_size=16, spatial_merge_size=2, temporal_patch_size=2, in_channels=3,
                           hidden_act="gelu_pytorch_tanh", num_position_embeddings=2304,
                           out_hidden_size=text["hidden_size"]) | vision,
        **VISION_TOKEN_IDS,
        tie_word_embeddings=tie,
    )


# The released checkpoints' shapes (see the family reference tables; Qwen3.5's
# are the model cards' numbers, `qwen3_5_config` in src/session/registry.rs).
CONFIGS = {
    "qwen2_vl_2b": lambda: qwen2_vl(
        dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
             num_key_value_heads=2), dict(hidden_size=1536), True),
    "qwen2_vl_7b": lambda: qwen2_vl(
        dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
             num_key_value_heads=4), dict(hidden_size=3584), False),
    "qwen2_5_vl_3b": lambda: qwen2_5_vl(
        dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
             num_key_value_heads=2), dict(out_hidden_size=2048), True),
    "qwen3_vl_2b": lambda: qwen3_vl(
        dict(hidden_size=2048, intermediate_size=6144, num_hidden_layers=28, num_attention_heads=16,
             num_key_value_heads=8),
        dict(depth=24, hidden_size=1024, num_heads=16, intermediate_size=4096, out_hidden_size=2048,
             deepstack_visual_indexes=[5, 11, 17]), True),
    "qwen3_vl_4b": lambda: qwen3_vl(QWEN3_VL_4B_TEXT, QWEN3_VL_4B_VISION, True),
    "qwen3_vl_30b_a3b": lambda: qwen3_vl_moe(QWEN3_VL_30B_A3B_TEXT, QWEN3_VL_30B_A3B_VISION, False),
    # Depth-reduced to 4 decoder layers (real widths, vocabulary, vision tower
    # and, for the mixture of experts, 128 experts of which 8 per token), to
    # compare decoding speed where the full 60 GB of random weights do not fit.
    "qwen3_vl_4b_4layers": lambda: qwen3_vl(QWEN3_VL_4B_TEXT | dict(num_hidden_layers=4), QWEN3_VL_4B_VISION, True),
    "qwen3_vl_30b_a3b_4layers": lambda: qwen3_vl_moe(
        QWEN3_VL_30B_A3B_TEXT | dict(num_hidden_layers=4), QWEN3_VL_30B_A3B_VISION, False),
    "qwen3_5_0_8b": lambda: qwen3_5(
        dict(hidden_size=1024, intermediate_size=3584, num_hidden_layers=24, num_attention_heads=8,
             num_key_value_heads=2, linear_num_value_heads=16),
        dict(depth=12, hidden_size=768, intermediate_size=3072, num_heads=12), True),
    "qwen3_5_4b": lambda: qwen3_5(
        dict(hidden_size=2560, intermediate_size=9216, num_hidden_layers=32, num_attention_heads=16,
             num_key_value_heads=4, linear_num_value_heads=32),
        dict(depth=24, hidden_size=1024, intermediate_size=4096, num_heads=16), True),
    # Small enough to benchmark on a laptop CPU, with the real vocabulary.
    "qwen2_vl_cpu_small": lambda: qwen2_vl(
        dict(hidden_size=512, intermediate_size=1408, num_hidden_layers=6, num_attention_heads=8,
             num_key_value_heads=2,
             rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [8, 12, 12]}),
        dict(hidden_size=512, depth=6, embed_dim=256, num_heads=4), True),
    "qwen3_vl_cpu_small": lambda: qwen3_vl(
        dict(hidden_size=512, intermediate_size=1408, num_hidden_layers=6, num_attention_heads=8,
             num_key_value_heads=2, head_dim=64,
             rope_parameters={"rope_type": "default", "rope_theta": 5e6, "mrope_section": [12, 10, 10],
                              "mrope_interleaved": True}),
        dict(depth=6, hidden_size=256, num_heads=4, intermediate_size=1024, out_hidden_size=512,
             deepstack_visual_indexes=[1, 3]), True),
}

MODEL_CLASSES = {
    "qwen2_vl": transformers.Qwen2VLForConditionalGeneration,
    "qwen2_5_vl": transformers.Qwen2_5_VLForConditionalGeneration,
    "qwen3_vl": transformers.Qwen3VLForConditionalGeneration,
    "qwen3_5": transformers.Qwen3_5ForConditionalGeneration,
    "qwen3_vl_moe": transformers.Qwen3VLMoeForConditionalGeneration,
}

# The 0.8B and 2B checkpoints ship the Qwen3.5 template with its generation
# block inverted: they think only when asked (tests/fixtures/README.md).
THINKS_BY_DEFAULT = ("{%- if enable_thinking is defined and enable_thinking is false %}\n"
                     "        {{- '<think>\\n\\n</think>\\n\\n' }}\n    {%- else %}\n        {{- '<think>\\n' }}")
THINKS_WHEN_ASKED = ("{%- if enable_thinking is defined and enable_thinking is true %}\n"
                     "        {{- '<think>\\n' }}\n    {%- else %}\n        {{- '<think>\\n\\n</think>\\n\\n' }}")


def chat_template(config: str, family: str) -> str:
    name = {"qwen3_vl": "qwen3_vl.jinja", "qwen3_vl_moe": "qwen3_vl.jinja", "qwen3_5": "qwen3_5.jinja"}.get(family, "qwen2_vl.jinja")
    template = (TEMPLATES / name).read_text()
    if config == "qwen3_5_0_8b":
        assert THINKS_BY_DEFAULT in template, "the Qwen3.5 template's generation block was not found"
        template = template.replace(THINKS_BY_DEFAULT, THINKS_WHEN_ASKED)
    return template


def tokenizer_config(tokenizer: Path) -> dict:
    # Every added token of tokenizer.json, as the released configs list them:
    # transformers reads them from here, glimpse from tokenizer.json, and
    # `<think>` must be one token to both.
    added = {
        str(t["id"]): {k: t[k] for k in ("content", "lstrip", "normalized", "rstrip", "single_word", "special")}
        for t in json.loads(tokenizer.read_text())["added_tokens"]
    }
    return {
        "add_prefix_space": False,
        "added_tokens_decoder": added,
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "errors": "replace",
        "model_max_length": 131072,
        "clean_up_tokenization_spaces": False,
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
    }


def fuse_experts_as_released(out: Path) -> None:
    """save_pretrained writes a freshly built model's fused experts as
    transformers holds them, [experts, out, in]; the released Qwen3-VL-MoE
    checkpoints store [experts, in, out] (see tests/fixtures/generate.py)."""
    from safetensors.torch import load_file, save_file

    for shard in sorted(out.glob("*.safetensors")):
        tensors = load_file(str(shard))
        for name in tensors:
            if name.endswith(("mlp.experts.gate_up_proj", "mlp.experts.down_proj")):
                tensors[name] = tensors[name].transpose(1, 2).contiguous()
        save_file(tensors, str(shard), metadata={"format": "pt"})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", choices=sorted(CONFIGS), required=True)
    ap.add_argument("--tokenizer", type=Path, required=True, help="the real Qwen2 tokenizer.json")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--dtype", choices=["bfloat16", "float32"], default="bfloat16")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    start = time.time()
    family, config = CONFIGS[args.config]()
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    with torch.device(args.device):
        model = MODEL_CLASSES[family](config).to(dtype)
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out, safe_serialization=True, max_shard_size="4GB")
    del model
    if family == "qwen3_vl_moe":
        fuse_experts_as_released(args.out)

    shutil.copy(args.tokenizer, args.out / "tokenizer.json")
    (args.out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(args.tokenizer), indent=2))
    template = chat_template(args.config, family)
    (args.out / "chat_template.json").write_text(json.dumps({"chat_template": template}, indent=2))
    if family in ("qwen3_vl", "qwen3_vl_moe", "qwen3_5"):
        pre = {"size": {"shortest_edge": 65536, "longest_edge": 16777216}, "patch_size": 16,
               "temporal_patch_size": 2, "merge_size": 2, "image_mean": [0.5] * 3, "image_std": [0.5] * 3,
               "image_processor_type": "Qwen2VLImageProcessorFast", "processor_class": "Qwen3VLProcessor"}
    else:
        pre = {"min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2,
               "merge_size": 2, "image_mean": CLIP_MEAN, "image_std": CLIP_STD,
               "image_processor_type": "Qwen2VLImageProcessor",
               "processor_class": "Qwen2_5_VLProcessor" if family == "qwen2_5_vl" else "Qwen2VLProcessor"}
    (args.out / "preprocessor_config.json").write_text(json.dumps(pre, indent=2))
    gen = {"bos_token_id": 151643, "pad_token_id": 151643, "eos_token_id": [151645, 151643],
           "do_sample": False, "repetition_penalty": 1.0}
    (args.out / "generation_config.json").write_text(json.dumps(gen, indent=2))
    print(json.dumps({"config": args.config, "out": str(args.out), "seconds": round(time.time() - start, 1)}))


if __name__ == "__main__":
    main()
