//! Thinking checkpoints end to end: the tiny Qwen3-VL fixture given the real
//! Qwen3.5 or Qwen3-VL-Thinking chat template in a folder of its own, through
//! the real binary. A random model rarely writes `</think>`, so what is
//! checked is what it does: the prompt the template asks for, and every
//! generated token accounted to reasoning or answer exactly as the ids say.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use glimpse::processor::tokenizer::TextTokenizer;
use serde_json::Value;

mod common;
use common::model_with_template;

const OPEN: u32 = 504;
const CLOSE: u32 = 505;
const STOPS: [u32; 2] = [480, 482];

fn fixtures() -> PathBuf {
    common::fixtures()
}

fn glimpse(args: &[&str], model: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_glimpse"))
        .args(args)
        .arg("--model")
        .arg(model)
        .env("GLIMPSE_CONFIG", fixtures().join("config/none.toml"))
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap()
}

/// A greedy question about the fixture image (`--image` comes last).
const QUESTION: [&str; 7] = [
    "--temperature",
    "0",
    "--max-tokens",
    "24",
    "--prompt",
    "What is this?",
    "--image",
];

fn image() -> String {
    fixtures()
        .join("images/rings_80x112.png")
        .display()
        .to_string()
}

fn ask_json(model: &Path, extra: &[&str]) -> (Value, String) {
    let image = image();
    let mut args = vec!["ask", "--json"];
    args.extend_from_slice(&QUESTION);
    args.push(&image);
    args.extend_from_slice(extra);
    let out = glimpse(&args, model);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    (serde_json::from_slice(&out.stdout).unwrap(), stderr)
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn tokenizer() -> TextTokenizer {
    TextTokenizer::from_model_dir(&fixtures().join("models/qwen3_vl")).unwrap()
}

/// The text of the prompt's last tokens.
fn prompt_tail(json: &Value) -> String {
    let prompt = ids(&json["prompt_tokens"]);
    tokenizer()
        .decode(&prompt[prompt.len() - 16..], false)
        .unwrap()
}

/// The generated ids without a final stop id.
fn content(tokens: &[u32]) -> &[u32] {
    match tokens.last() {
        Some(t) if STOPS.contains(t) => &tokens[..tokens.len() - 1],
        _ => tokens,
    }
}

#[test]
fn qwen3_5_thinks_by_default_and_every_token_is_accounted_for() {
    let model = model_with_template("qwen3_5.jinja");
    let (json, _) = ask_json(model.path(), &[]);
    let tail = prompt_tail(&json);
    assert!(
        tail.ends_with("<|im_start|>assistant\n<think>\n"),
        "{tail:?}"
    );
    assert_eq!(json["model"]["thinking"]["kind"], "switchable");

    let tokens = ids(&json["tokens"]);
    let generated = content(&tokens);
    let reasoning_tokens = json["reasoning_tokens"].as_u64().unwrap() as usize;
    let tok = tokenizer();
    match generated.iter().position(|&t| t == CLOSE) {
        Some(close) => {
            assert_eq!(reasoning_tokens, close + 1);
            let answer = tok.decode(&generated[close + 1..], false).unwrap();
            assert_eq!(json["text"], answer.trim_start());
        }
        None => {
            // Cut off while thinking: all reasoning, no answer.
            assert_eq!(reasoning_tokens, generated.len());
            assert_eq!(json["text"], "");
            assert_eq!(json["finish_reason"], "length");
        }
    }
    let thought: Vec<u32> = generated[..reasoning_tokens]
        .iter()
        .copied()
        .filter(|&t| t != CLOSE && t != OPEN)
        .collect();
    let expected = tok.decode(&thought, false).unwrap();
    assert_eq!(json["reasoning"], expected.trim());
}

#[test]
fn qwen3_5_with_thinking_off_answers_after_an_empty_block() {
    let model = model_with_template("qwen3_5.jinja");
    let (json, stderr) = ask_json(model.path(), &["--thinking", "off"]);
    assert!(!stderr.contains("cannot be turned"), "{stderr}");
    let tail = prompt_tail(&json);
    assert!(tail.ends_with("<think>\n\n</think>\n\n"), "{tail:?}");
    assert_eq!(json["reasoning_tokens"], 0);
    assert_eq!(json["reasoning"], "");
    let tokens = ids(&json["tokens"]);
    let answer = tokenizer().decode(content(&tokens), false).unwrap();
    assert_eq!(json["text"], answer);
}

#[test]
fn a_checkpoint_that_always_thinks_says_it_cannot_stop() {
    let model = model_with_template("qwen3_vl_thinking.jinja");
    let (json, stderr) = ask_json(model.path(), &["--thinking", "off"]);
    assert!(
        stderr.contains("this checkpoint always thinks; thinking cannot be turned off"),
        "{stderr}"
    );
    assert_eq!(json["model"]["thinking"]["kind"], "always");
    let tail = prompt_tail(&json);
    assert!(
        tail.ends_with("<|im_start|>assistant\n<think>\n"),
        "{tail:?}"
    );
    assert!(json["reasoning_tokens"].as_u64().unwrap() > 0);
}

#[test]
fn a_checkpoint_without_thinking_says_it_cannot_start() {
    let model = fixtures().join("models/qwen3_vl");
    let (json, stderr) = ask_json(&model, &["--thinking", "on"]);
    assert!(
        stderr.contains("this checkpoint has no thinking mode; thinking cannot be turned on"),
        "{stderr}"
    );
    assert_eq!(json["model"]["thinking"]["kind"], "none");
    assert_eq!(json["reasoning_tokens"], 0);
}

#[test]
fn without_json_reasoning_goes_to_stderr_unless_hidden() {
    let model = model_with_template("qwen3_5.jinja");
    let (json, _) = ask_json(model.path(), &[]);
    let reasoning = json["reasoning"].as_str().unwrap().to_string();
    assert!(
        !reasoning.is_empty(),
        "the fixture model reasons for a while"
    );
    let image = image();
    let plain = [&["ask"][..], &QUESTION, &[image.as_str()]].concat();
    let out = glimpse(&plain, model.path());
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&reasoning), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains(&reasoning), "{stdout}");
    assert_eq!(stdout.trim(), json["text"].as_str().unwrap().trim());

    let hidden = glimpse(&[&plain[..], &["--hide-thinking"]].concat(), model.path());
    assert!(hidden.status.success());
    assert!(!String::from_utf8_lossy(&hidden.stderr).contains(&reasoning));
}

#[test]
fn eval_scores_the_answer_and_reports_reasoning_tokens() {
    let model = model_with_template("qwen3_5.jinja");
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("images/bars_123x45.png"),
        tmp.path().join("bars.png"),
    )
    .unwrap();
    let suite = tmp.path().join("suite.jsonl");
    std::fs::write(
        &suite,
        concat!(
            r#"{"id": "a", "category": "count", "images": ["bars.png"], "question": "How many bars?", "answer": 3, "match": "number"}"#,
            "\n",
            r#"{"id": "b", "category": "read", "images": ["bars.png"], "question": "Colour?", "answer": "red", "match": "normalized"}"#,
            "\n"
        ),
    )
    .unwrap();
    let out_dir = tmp.path().join("out");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "eval",
            "--suite",
            suite.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
            "--max-tokens",
            "12",
        ];
        args.extend_from_slice(extra);
        glimpse(&args, model.path())
    };
    let out = run(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("reasoning tokens |"), "{table}");
    let answers = std::fs::read_to_string(out_dir.join("answers.jsonl")).unwrap();
    for line in answers.lines() {
        let record: Value = serde_json::from_str(line).unwrap();
        let reasoning = record["reasoning_tokens"].as_u64().unwrap();
        let new = record["new_tokens"].as_u64().unwrap();
        assert!(reasoning > 0 && reasoning <= new, "{record}");
        // Scored on the answer alone: the reasoning is not in the reply.
        if reasoning == new {
            assert_eq!(record["reply"], "", "{record}");
        }
    }
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("report.json")).unwrap())
            .unwrap();
    for category in report["categories"].as_array().unwrap() {
        assert!(category["mean_reasoning_tokens"].as_f64().unwrap() > 0.0);
    }
    // Thinking is part of what the answers were made with.
    let resumed = run(&["--thinking", "off"]);
    assert!(!resumed.status.success());
    let e = String::from_utf8_lossy(&resumed.stderr);
    assert!(
        e.contains("thinking the checkpoint's default (now off)"),
        "{e}"
    );
}
