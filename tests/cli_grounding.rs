//! `glimpse ask` end to end with grounding: the real binary, the tiny real
//! models, the fixture images. The tiny random models cannot find anything,
//! so answers in each family's format are typed into conversation files and
//! replayed with `--replay` (which reads the model directory but does not
//! run the model); the live path is checked for its output shape and for
//! the prompt `--locate` sends.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{fixtures, orange_square_in_scene, perfect_box_reply, successful_stdout};
use glimpse::engine::{describe_images, EngineOptions};
use glimpse::processor::grounding::palette_colour;
use glimpse::processor::image::LongEdgeCap;
use glimpse::processor::tokenizer::TextTokenizer;
use serde_json::{json, Value};

fn scene() -> PathBuf {
    fixtures().join("images/scene_333x211.png")
}

fn model(name: &str) -> PathBuf {
    fixtures().join("models").join(name)
}

/// A fresh scratch folder for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("glimpse-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn glimpse(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_glimpse"))
        .args(args)
        .output()
        .expect("the glimpse binary runs")
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(successful_stdout(out)).expect("stdout is one JSON object")
}

/// A conversation file: one user turn with `images` and a question, then
/// the assistant's `answer`.
fn conversation_file(dir: &Path, images: &[PathBuf], answer: &str) -> PathBuf {
    let mut content: Vec<Value> = images
        .iter()
        .map(|p| json!({"type": "image", "image": p}))
        .collect();
    content.push(json!({"type": "text", "text": "Where is the orange square?"}));
    let conv = json!([
        {"role": "user", "content": content},
        {"role": "assistant", "content": answer},
    ]);
    let path = dir.join("conversation.json");
    std::fs::write(&path, serde_json::to_string_pretty(&conv).unwrap()).unwrap();
    path
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn replayed_answers_in_each_family_format_land_on_the_orange_square() {
    let truth = orange_square_in_scene();
    let caps = [
        ("2000:1920", Some(LongEdgeCap::default())),
        (
            "200:150",
            Some(LongEdgeCap {
                threshold: 200,
                target: 150,
            }),
        ),
    ];
    for name in ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"] {
        for (cap_arg, cap) in caps {
            let dir = scratch(&format!("replay-{name}-{}", cap_arg.replace(':', "-")));
            let mut options = EngineOptions::new(model(name));
            options.long_edge_cap = cap;
            let (_, facts) = describe_images(&options, &[scene()]).unwrap();
            let g = facts[0].geometry(cap.as_ref());
            let answer = perfect_box_reply(name, &g, truth.map(f64::from));
            let conv = conversation_file(&dir, &[scene()], &answer);
            let out_png = dir.join("out.png");

            let out = glimpse(&[
                "ask",
                "--model",
                s(&model(name)),
                "--conversation",
                s(&conv),
                "--replay",
                "--long-edge-cap",
                cap_arg,
                "--json",
                "--annotate",
                s(&out_png),
            ]);
            let v = json_of(&out);
            assert_eq!(v["replayed"], true);
            assert_eq!(v["text"], answer.as_str());
            assert_eq!(v["detection_warnings"], json!([]), "{name} {cap_arg}");
            let dets = v["detections"].as_array().unwrap();
            assert_eq!(dets.len(), 1, "{name} {cap_arg}: {v}");
            assert_eq!(dets[0]["label"], "orange square");
            assert_eq!(dets[0]["image"], 0);
            assert_eq!(dets[0]["coords"], "original");
            let bbox: Vec<i64> = dets[0]["bbox"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_i64().unwrap())
                .collect();
            // One model-input pixel of Qwen2.5-VL under the 150 px cap is
            // 333/140 original pixels, so rounding there may move an edge
            // by about one pixel.
            for (got, want) in bbox.iter().zip(truth) {
                assert!(
                    (got - want as i64).abs() <= 1,
                    "{name} {cap_arg}: {bbox:?} vs {truth:?}"
                );
            }

            assert_eq!(v["annotated"], json!([out_png]));
            let drawn = image::open(&out_png).unwrap().to_rgb8();
            assert_eq!(drawn.dimensions(), (333, 211), "drawn on the original");
            let (l, t, b) = (bbox[0] as u32, bbox[1] as u32, bbox[3] as u32);
            assert_eq!(drawn.get_pixel(l, (t + b) / 2).0, palette_colour(0));
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

#[test]
fn replay_lists_detections_on_stderr_without_json() {
    let dir = scratch("replay-text");
    let answer =
        "<|object_ref_start|>square<|object_ref_end|><|box_start|>(660,190),(930,810)<|box_end|>";
    let conv = conversation_file(&dir, &[scene()], answer);
    let out = glimpse(&[
        "ask",
        "--model",
        s(&model("qwen2_vl")),
        "--conversation",
        s(&conv),
        "--replay",
    ]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), answer);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("1. square: box (220, 40)–(310, 171) in image 0 (scene_333x211.png)"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_reply_naming_pictures_annotates_each_image() {
    let dir = scratch("two-images");
    let other = fixtures().join("images/checker_200x150.png");
    let answer = "Picture 1: {\"bbox_2d\": [0, 0, 500, 500], \"label\": \"first\"}\n\
                  Picture 2: {\"point_2d\": [500, 500], \"label\": \"second\"}";
    let conv = conversation_file(&dir, &[scene(), other.clone()], answer);
    let out_png = dir.join("out.png");
    let v = json_of(&glimpse(&[
        "ask",
        "--model",
        s(&model("qwen3_vl")),
        "--conversation",
        s(&conv),
        "--replay",
        "--json",
        "--annotate",
        s(&out_png),
    ]));
    assert_eq!(
        v["detections"],
        json!([
            {"label": "first", "image": 0, "bbox": [0, 0, 167, 106], "coords": "original"},
            {"label": "second", "image": 1, "point": [100, 75], "coords": "original"},
        ])
    );
    let second = dir.join("out-image1.png");
    assert_eq!(v["annotated"], json!([out_png, second]));
    assert_eq!(
        image::open(&out_png).unwrap().to_rgb8().dimensions(),
        (333, 211)
    );
    let drawn = image::open(&second).unwrap().to_rgb8();
    assert_eq!(drawn.dimensions(), (200, 150));
    assert_eq!(drawn.get_pixel(100, 75).0, palette_colour(1));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn live_answers_keep_every_field_and_add_detections() {
    let dir = scratch("live");
    let out_png = dir.join("live.png");
    let name = "qwen2_vl";
    let v = json_of(&glimpse(&[
        "ask",
        "--model",
        s(&model(name)),
        "--image",
        s(&scene()),
        "--locate",
        "orange square",
        "--max-tokens",
        "2",
        "--temperature",
        "0",
        "--json",
        "--annotate",
        s(&out_png),
    ]));
    for key in [
        "prompt_tokens",
        "image_grid_thw",
        "tokens",
        "text",
        "finish_reason",
        "timings",
        "model",
        "images",
        "detections",
        "detection_warnings",
        "annotated",
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    assert!(v["detections"].is_array() && v["detection_warnings"].is_array());
    assert_eq!(v["annotated"], json!([out_png]));
    assert_eq!(
        image::open(&out_png).unwrap().to_rgb8().dimensions(),
        (333, 211)
    );

    // --locate asked in Qwen2-VL's own way: the thing between reference tokens.
    let tok = TextTokenizer::from_model_dir(&model(name)).unwrap();
    let ref_start = tok.encode("<|object_ref_start|>").unwrap();
    assert_eq!(ref_start.len(), 1);
    let ids: Vec<u32> = v["prompt_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap() as u32)
        .collect();
    assert!(ids.contains(&ref_start[0]));

    // The engine's image facts are the ones --replay works out without it.
    let conv = conversation_file(&dir, &[scene()], "nothing found");
    let replayed = json_of(&glimpse(&[
        "ask",
        "--model",
        s(&model(name)),
        "--conversation",
        s(&conv),
        "--replay",
        "--json",
    ]));
    assert_eq!(replayed["images"], v["images"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn grounding_flags_refuse_bad_input_with_one_clear_line() {
    let dir = scratch("errors");
    let m = model("qwen3_vl");
    let scene = scene();
    let user_last = dir.join("user_last.json");
    std::fs::write(
        &user_last,
        json!([{"role": "user", "content": [{"type": "image", "image": scene}, {"type": "text", "text": "hi"}]}]).to_string(),
    )
    .unwrap();
    let gif = dir.join("out.gif");
    let png = dir.join("out.png");
    let cases: [(Vec<&str>, &str); 5] = [
        (
            vec!["--conversation", s(&user_last), "--replay"],
            "not an assistant message",
        ),
        (
            vec!["--image", s(&scene), "--prompt", "x", "--annotate", s(&gif)],
            ".png or .jpg",
        ),
        (
            vec!["--prompt", "x", "--annotate", s(&png)],
            "needs an image",
        ),
        (
            vec!["--image", s(&scene), "--locate", "  "],
            "--locate needs a description",
        ),
        (vec!["--locate", "cat"], "--locate needs an image"),
    ];
    for (extra, why) in cases {
        let mut args = vec!["ask", "--model", s(&m)];
        args.extend(extra);
        let out = glimpse(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    assert!(!png.exists() && !gif.exists());
    let _ = std::fs::remove_dir_all(&dir);
}
