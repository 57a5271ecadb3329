//! The `glimpse ask --json` contract, end to end through the real binary:
//! the same prompt ids, grids and greedy tokens as transformers recorded.

mod common;

use std::process::Command;

use common::{as_u32s, fixtures, Reference};
use serde_json::Value;

fn ask_json(r: &Reference, extra: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_glimpse"))
        .args(["ask", "--json", "--temperature", "0", "--max-tokens", "24"])
        // transformers drops the alpha channel of transparent images.
        .args(["--alpha", "drop"])
        .arg("--model")
        .arg(r.model_dir())
        .arg("--conversation")
        .arg(r.conversation_path())
        .args(extra)
        .env("GLIMPSE_CONFIG", fixtures().join("config/none.toml"))
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        r.name,
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.trim().lines().count(),
        1,
        "one JSON object on stdout"
    );
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn ask_json_reproduces_transformers_for_every_family() {
    for name in [
        "qwen2_vl__two_images",
        "qwen2_5_vl__system_prompt",
        "qwen3_vl__two_turns",
        "qwen3_vl__text_only",
    ] {
        let r = Reference::by_name(name);
        let greedy = ask_json(&r, &["--repetition-penalty", "1"]);
        assert_eq!(
            as_u32s(&greedy["prompt_tokens"]),
            r.u32s("input_ids"),
            "{name}"
        );
        assert_eq!(greedy["image_grid_thw"], r.json["image_grid_thw"], "{name}");
        assert_eq!(
            as_u32s(&greedy["tokens"]),
            as_u32s(&r.json["greedy"]["tokens"]),
            "{name}: greedy tokens"
        );
        for key in ["finish_reason", "text", "timings"] {
            assert!(!greedy[key].is_null(), "{name}: {key} missing");
        }
        let defaults = ask_json(&r, &[]);
        assert_eq!(
            as_u32s(&defaults["tokens"]),
            as_u32s(&r.json["greedy_generation_config"]["tokens"]),
            "{name}: tokens with the generation_config defaults"
        );
    }
}
