//! `glimpse ask --show` through the real binary with the tiny models: the
//! images in half-blocks with their facts before the answer, the annotated
//! image after it, and nothing drawn (nor asked of a terminal) when stdout
//! is a pipe and no protocol is forced.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{fixtures, successful_stdout};
use serde_json::{json, Value};

const HALF_BLOCK_ROW: &str = "\x1b[38;2;";

fn scene() -> PathBuf {
    fixtures().join("images/scene_333x211.png")
}

fn model() -> PathBuf {
    fixtures().join("models/qwen2_vl")
}

fn glimpse(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_glimpse"))
        .arg("ask")
        .arg("--model")
        .arg(model())
        .args(args)
        .env("GLIMPSE_CONFIG", fixtures().join("config/none.toml"))
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .expect("the glimpse binary runs")
}

fn stdout_of(out: &Output) -> String {
    String::from_utf8(successful_stdout(out).to_vec()).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The greedy answer and image facts, as `--json` reports them.
fn reference(question: &[&str]) -> Value {
    let mut args = question.to_vec();
    args.push("--json");
    serde_json::from_str(&stdout_of(&glimpse(&args))).unwrap()
}

/// Splits `text` at `caption`'s line: the image rows above it and the rest.
fn image_above<'a>(text: &'a str, caption: &str) -> (Vec<&'a str>, &'a str) {
    let at = text
        .find(caption)
        .unwrap_or_else(|| panic!("{caption:?} not in {text:?}"));
    let rows: Vec<&str> = text[..at].lines().collect();
    (rows, &text[at + caption.len()..])
}

fn assert_half_blocks(rows: &[&str]) {
    assert!(!rows.is_empty() && rows.len() <= 20, "{} rows", rows.len());
    for row in rows {
        assert!(row.contains(HALF_BLOCK_ROW), "{row:?}");
        assert!(row.contains(['▀', '▄']), "{row:?}");
        assert!(row.ends_with("\x1b[0m"), "{row:?}");
    }
}

#[test]
fn forced_half_blocks_draw_the_image_and_its_facts_before_the_answer() {
    let scene = scene();
    let question = [
        "--image",
        s(&scene),
        "--prompt",
        "What is here?",
        "--max-tokens",
        "3",
        "--temperature",
        "0",
    ];
    let v = reference(&question);
    let facts = &v["images"][0];
    let caption = format!(
        "  ▣ scene_333x211.png  333×211 → {}×{} · {} image tokens\n",
        facts["model_size"][0], facts["model_size"][1], facts["tokens"]
    );
    let mut args = question.to_vec();
    args.extend(["--show", "--image-protocol", "halfblocks"]);
    let text = stdout_of(&glimpse(&args));
    let (rows, rest) = image_above(&text, &caption);
    assert_half_blocks(&rows);
    assert_eq!(rest, format!("{}\n", v["text"].as_str().unwrap()));

    // Piped without --image-protocol: the answer alone, no escape at all
    // (no image, and no question put to a terminal).
    let mut args = question.to_vec();
    args.push("--show");
    let plain = stdout_of(&glimpse(&args));
    assert_eq!(plain, format!("{}\n", v["text"].as_str().unwrap()));
    assert!(!plain.contains('\x1b'));
}

#[test]
fn locate_and_annotate_with_show_draw_the_annotated_image_after_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let out_png = dir.path().join("found.png");
    let scene = scene();
    let question = [
        "--image",
        s(&scene),
        "--locate",
        "orange square",
        "--max-tokens",
        "2",
        "--temperature",
        "0",
    ];
    let v = reference(&question);
    let mut args = question.to_vec();
    args.extend([
        "--show",
        "--image-protocol",
        "halfblocks",
        "--annotate",
        s(&out_png),
    ]);
    let out = glimpse(&args);
    let text = stdout_of(&out);
    let (first, rest) = image_above(&text, " image tokens\n");
    assert_half_blocks(&first[..first.len() - 1]);
    let answer = format!("{}\n", v["text"].as_str().unwrap());
    let after = rest
        .strip_prefix(answer.as_str())
        .unwrap_or_else(|| panic!("the answer follows the facts: {rest:?}"));
    let marks = v["detections"].as_array().unwrap().len();
    let drawn = match marks {
        0 => "nothing found to draw".to_string(),
        1 => "1 box or point drawn".to_string(),
        n => format!("{n} boxes and points drawn"),
    };
    let caption = format!("  ▣ scene_333x211.png  {drawn}\n");
    let (annotated, tail) = image_above(after, &caption);
    assert_half_blocks(&annotated);
    assert_eq!(tail, "", "the annotated image comes last");
    assert!(out_png.is_file());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("wrote {}", out_png.display())),
        "{err}"
    );
}

#[test]
fn a_replayed_answer_shows_its_image_then_the_annotated_one() {
    let dir = tempfile::tempdir().unwrap();
    let answer =
        "<|object_ref_start|>square<|object_ref_end|><|box_start|>(660,190),(930,810)<|box_end|>";
    let conversation = dir.path().join("conversation.json");
    let messages = json!([
        {"role": "user", "content": [
            {"type": "image", "image": scene()},
            {"type": "text", "text": "Where is the orange square?"},
        ]},
        {"role": "assistant", "content": answer},
    ]);
    std::fs::write(&conversation, messages.to_string()).unwrap();
    let out_png = dir.path().join("replayed.png");
    let text = stdout_of(&glimpse(&[
        "--conversation",
        s(&conversation),
        "--replay",
        "--annotate",
        s(&out_png),
        "--show",
        "--image-protocol",
        "halfblocks",
    ]));
    let (image, rest) = image_above(&text, " image tokens\n");
    assert_half_blocks(&image[..image.len() - 1]);
    let after = rest
        .strip_prefix(&format!("{answer}\n"))
        .unwrap_or_else(|| panic!("the answer follows the facts: {rest:?}"));
    let (annotated, tail) = image_above(after, "  ▣ scene_333x211.png  1 box or point drawn\n");
    assert_half_blocks(&annotated);
    assert_eq!(tail, "");
}

#[test]
fn show_refuses_json_and_a_protocol_needs_show() {
    let scene = scene();
    for (extra, why) in [
        (
            vec!["--show", "--json"],
            "--show draws images on stdout, where --json writes its JSON object",
        ),
        (
            vec!["--image-protocol", "kitty"],
            "--image-protocol says how --show draws images; add --show",
        ),
    ] {
        let mut args = vec!["--image", s(&scene), "--prompt", "x"];
        args.extend(extra);
        let out = glimpse(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(why), "{err}");
        assert!(out.stdout.is_empty());
    }
}
