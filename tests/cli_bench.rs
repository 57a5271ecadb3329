//! `glimpse bench` through the real binary on the tiny models: the fields of
//! its JSON, and what a follow-up question and a regenerated answer reuse of
//! the conversation before them. No timing is judged, only that each stage
//! was timed and which stages ran.

mod common;

use std::process::{Command, Output};

use common::fixtures;
use serde_json::Value;

fn bench(family: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_glimpse"))
        .args([
            "bench",
            "--device",
            "cpu",
            "--new-tokens",
            "4",
            "--repeats",
            "1",
        ])
        .arg("--model")
        .arg(fixtures().join("models").join(family))
        .arg("--image")
        .arg(fixtures().join("images/checker_200x150.png"))
        .args(extra)
        .env("GLIMPSE_CONFIG", fixtures().join("config/none.toml"))
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap()
}

fn bench_json(family: &str, extra: &[&str]) -> Value {
    let out = bench(family, &[&["--json"], extra].concat());
    assert!(
        out.status.success(),
        "{family}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn count(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count: {v}"))
}

fn seconds(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number: {v}"))
}

#[test]
fn a_follow_up_and_a_regeneration_reuse_the_conversation_before_them() {
    // A plain decoder (cut back anywhere) and a hybrid one (back to a checkpoint).
    for family in ["qwen3_vl", "qwen3_5"] {
        let v = bench_json(family, &["--follow-up", "And what colours are there?"]);
        let first = count(&v, "prompt_tokens");
        let image = count(&v, "image_tokens");
        assert!(image > 0 && first > image, "{family}: {v}");
        assert!(seconds(&v, "vision_s") > 0.0, "{family}: {v}");

        let follow = &v["follow_up"];
        let regen = &v["regenerate"];
        let asked = count(follow, "prompt_tokens");
        assert!(
            asked > first,
            "{family}: the follow-up holds the first turn: {v}"
        );
        assert_eq!(count(regen, "prompt_tokens"), asked, "{family}: {v}");
        for (name, turn) in [("follow_up", follow), ("regenerate", regen)] {
            // The image is in the reused part: the vision tower does not run again.
            assert!(count(turn, "reused_tokens") > image, "{family} {name}: {v}");
            assert_eq!(seconds(turn, "vision_s"), 0.0, "{family} {name}: {v}");
            assert!(seconds(turn, "prefill_s") > 0.0, "{family} {name}: {v}");
            assert!(seconds(turn, "ttft_s") > 0.0, "{family} {name}: {v}");
            assert!(seconds(turn, "decode_tok_s") > 0.0, "{family} {name}: {v}");
        }
        // The first turn is not prefilled again; regenerating keeps the
        // follow-up question too, and always leaves something to run.
        let reused = count(follow, "reused_tokens");
        let again = count(regen, "reused_tokens");
        assert!(reused + 8 >= first, "{family}: {v}");
        assert!(again > reused && again < asked, "{family}: {v}");
    }
}

#[test]
fn without_a_follow_up_only_the_first_answer_is_reported() {
    let v = bench_json("qwen3_vl", &[]);
    for key in ["load_s", "vision_s", "prefill_s", "ttft_s", "decode_tok_s"] {
        assert!(seconds(&v, key) > 0.0, "{key}: {v}");
    }
    assert_eq!(count(&v, "new_tokens"), 4);
    assert!(
        v.get("follow_up").is_none() && v.get("regenerate").is_none(),
        "{v}"
    );
}

#[test]
fn the_table_names_the_follow_up_and_an_empty_one_is_refused() {
    let out = bench("qwen3_5", &["--follow-up", "Why?"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    for label in ["first token", "follow-up", "regenerate"] {
        assert!(text.contains(label), "{label}: {text}");
    }

    let out = bench("qwen3_5", &["--follow-up", "  "]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--follow-up needs a question"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
