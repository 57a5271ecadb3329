//! `glimpse eval` end to end: the real binary, the tiny random-weight
//! models, generated and hand-written suites. Accuracy means nothing with
//! random weights; the pipeline, the resumption and the report's numbers do.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn model(name: &str) -> String {
    fixtures().join("models").join(name).display().to_string()
}

fn glimpse(args: &[&str], config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_glimpse"))
        .args(args)
        .env("GLIMPSE_CONFIG", config)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .expect("the glimpse binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        stderr(out)
    );
}

/// The complete lines of the answers file (a line being written is left
/// out).
fn answer_lines(out_dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(out_dir.join("answers.jsonl")).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |i| &text[..i]);
    complete
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn report(out_dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out_dir.join("report.json")).unwrap()).unwrap()
}

fn n(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// The report's counts add up: per tally, per category into the whole,
/// and item by item.
fn check_sums(report: &Value, items: u64) {
    let overall = &report["overall"];
    assert_eq!(n(overall, "items"), items);
    let parts = ["correct", "wrong", "errors", "not_run"];
    for t in report["categories"]
        .as_array()
        .unwrap()
        .iter()
        .chain([overall])
    {
        let sum: u64 = parts.iter().map(|k| n(t, k)).sum();
        assert_eq!(sum, n(t, "items"), "{t}");
    }
    for key in ["items"].iter().chain(parts.iter()) {
        let by_category: u64 = report["categories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| n(t, key))
            .sum();
        assert_eq!(by_category, n(overall, key), "{key}");
    }
    let listed = report["items"].as_array().unwrap();
    assert_eq!(listed.len() as u64, items);
    for (outcome, key) in [
        ("correct", "correct"),
        ("wrong", "wrong"),
        ("error", "errors"),
        ("not_run", "not_run"),
    ] {
        let count = listed.iter().filter(|i| i["outcome"] == outcome).count() as u64;
        assert_eq!(count, n(overall, key), "{outcome}");
    }
    if let Some(acc) = overall["accuracy"].as_f64() {
        let answered = n(overall, "correct") + n(overall, "wrong");
        assert!((acc - n(overall, "correct") as f64 / answered as f64).abs() < 1e-12);
    }
}

#[test]
fn a_generated_suite_runs_stops_at_a_limit_and_resumes_without_asking_again() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config.toml");
    let suite_dir = tmp.path().join("suite");
    let out = glimpse(
        &[
            "eval",
            "--make-suite",
            suite_dir.to_str().unwrap(),
            "--count",
            "9",
            "--seed",
            "2",
        ],
        &config,
    );
    ok(&out);
    assert!(stderr(&out).contains("wrote 9 questions (3 spatial, 3 ocr, 3 logic)"));
    let suite = suite_dir.join("suite.jsonl");
    let results = tmp.path().join("results");
    let qwen2 = model_qwen2();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "eval",
            "--model",
            &qwen2,
            "--suite",
            suite.to_str().unwrap(),
            "--out",
            results.to_str().unwrap(),
            "--max-tokens",
            "4",
            "--device",
            "cpu",
        ];
        args.extend_from_slice(extra);
        let out = glimpse(&args, &config);
        ok(&out);
        out
    };

    let first = run(&["--limit", "4"]);
    assert!(
        stderr(&first).contains("4 questions, 0 already answered"),
        "{}",
        stderr(&first)
    );
    let after_first = answer_lines(&results);
    assert_eq!(after_first.len(), 4);
    check_sums(&report(&results), 4);
    let stdout = String::from_utf8_lossy(&first.stdout).into_owned();
    assert!(stdout.contains("| **all** | 4 |"), "{stdout}");

    let second = run(&[]);
    assert!(
        stderr(&second).contains("9 questions, 4 already answered"),
        "{}",
        stderr(&second)
    );
    let after_second = answer_lines(&results);
    assert_eq!(
        after_second.len(),
        9,
        "only the five new questions were asked"
    );
    assert_eq!(
        after_second[..4],
        after_first[..],
        "earlier answers untouched"
    );
    let r = report(&results);
    check_sums(&r, 9);
    assert_eq!(n(&r["overall"], "not_run"), 0);
    assert_eq!(n(&r["overall"], "errors"), 0);
    let categories: Vec<&str> = r["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["category"].as_str().unwrap())
        .collect();
    assert_eq!(categories, ["spatial", "ocr", "logic"]);
    for item in r["items"].as_array().unwrap() {
        assert!(item["latency_s"].as_f64().unwrap() > 0.0);
        assert!(item["new_tokens"].as_u64().unwrap() <= 4);
    }
    let md = std::fs::read_to_string(results.join("report.md")).unwrap();
    assert!(md.contains("| **all** | 9 |"), "{md}");
    assert!(md.contains("## Answers"));
    assert!(md.contains("qwen2_vl"));

    // Nothing left: the model is not even loaded.
    let third = run(&[]);
    assert!(stderr(&third).contains("9 already answered"));
    assert!(!stderr(&third).contains("memory estimate"));
    assert_eq!(answer_lines(&results), after_second);

    // Other sampling settings would mix two runs in one report.
    let other = glimpse(
        &[
            "eval",
            "--model",
            &model_qwen2(),
            "--suite",
            suite.to_str().unwrap(),
            "--out",
            results.to_str().unwrap(),
            "--max-tokens",
            "5",
        ],
        &config,
    );
    assert_eq!(other.status.code(), Some(1));
    assert!(
        stderr(&other).contains("other settings"),
        "{}",
        stderr(&other)
    );
}

fn model_qwen2() -> String {
    model("qwen2_vl")
}

/// A suite of `count` questions on a small fixture image.
fn long_suite(dir: &Path, count: usize) -> PathBuf {
    let image = fixtures().join("images/bars_123x45.png");
    std::fs::copy(&image, dir.join("bars.png")).unwrap();
    let mut text = String::new();
    for i in 0..count {
        text.push_str(&format!(
            r#"{{"id": "q{i}", "category": "{}", "images": ["bars.png"], "question": "How many bars? ({i})", "answer": 3, "match": "number"}}"#,
            ["a", "b"][i % 2]
        ));
        text.push('\n');
    }
    let path = dir.join("suite.jsonl");
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts an eval that would take long, and waits until `answers` have been
/// written.
fn start_and_wait(
    suite: &Path,
    results: &Path,
    config: &Path,
    model_name: &str,
    answers: usize,
) -> std::process::Child {
    let child = Command::new(env!("CARGO_BIN_EXE_glimpse"))
        .args([
            "eval",
            "--model",
            &model(model_name),
            "--suite",
            suite.to_str().unwrap(),
            "--out",
            results.to_str().unwrap(),
            "--max-tokens",
            "4",
            "--device",
            "cpu",
        ])
        .env("GLIMPSE_CONFIG", config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while answer_lines(results).len() < answers {
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}

#[test]
fn a_killed_run_resumes_where_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config.toml");
    let suite = long_suite(tmp.path(), 300);
    let results = tmp.path().join("results");
    let mut child = start_and_wait(&suite, &results, &config, "qwen3_vl", 2);
    child.kill().unwrap();
    child.wait().unwrap();
    let before = answer_lines(&results);
    let k = before.len();
    assert!(k >= 2);
    // As if the process had died in the middle of writing an answer.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(results.join("answers.jsonl"))
        .unwrap();
    f.write_all(br#"{"id": "q99", "line": 100, "rep"#).unwrap();
    drop(f);

    let limit = 8;
    let out = glimpse(
        &[
            "eval",
            "--model",
            &model("qwen3_vl"),
            "--suite",
            suite.to_str().unwrap(),
            "--out",
            results.to_str().unwrap(),
            "--max-tokens",
            "4",
            "--device",
            "cpu",
            "--limit",
            &limit.to_string(),
        ],
        &config,
    );
    ok(&out);
    let err = stderr(&out);
    let done_before = k.min(limit);
    assert!(
        err.contains(&format!(
            "{limit} questions, {done_before} already answered"
        )),
        "{err}"
    );
    assert!(err.contains("cut short"), "{err}");
    let after = answer_lines(&results);
    assert_eq!(after[..k], before[..], "nothing asked twice");
    assert_eq!(after.len(), k.max(limit));
    let mut ids: Vec<String> = after
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), after.len(), "one answer per question");
    let r = report(&results);
    check_sums(&r, limit as u64);
    assert_eq!(n(&r["overall"], "not_run"), 0);
}

#[test]
fn ctrl_c_stops_after_the_current_question_and_writes_the_report() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config.toml");
    let suite = long_suite(tmp.path(), 300);
    let results = tmp.path().join("results");
    let child = start_and_wait(&suite, &results, &config, "qwen2_5_vl", 1);
    let status = Command::new("sh")
        .args(["-c", &format!("kill -INT {}", child.id())])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(stderr(&out).contains("run the same command again"));
    let answered = answer_lines(&results);
    let contents = std::fs::read_to_string(results.join("answers.jsonl")).unwrap();
    assert!(contents.ends_with('\n'), "the last answer was finished");
    let r = report(&results);
    check_sums(&r, 300);
    assert_eq!(n(&r["overall"], "not_run"), 300 - answered.len() as u64);
}

#[test]
fn broken_lines_are_reported_line_by_line_and_the_rest_is_run() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config.toml");
    std::fs::copy(
        fixtures().join("images/checker_200x150.png"),
        tmp.path().join("checker.png"),
    )
    .unwrap();
    let suite = tmp.path().join("suite.jsonl");
    std::fs::write(
        &suite,
        [
            r#"{"id": "good1", "category": "ocr", "images": ["checker.png"], "question": "Colour?", "answer": "black", "match": "normalized"}"#,
            r#"{"id": "bad-json", "category": "ocr", "images": ["checker.png"]"#,
            r#"{"id": "no-image", "category": "spatial", "images": ["missing.png"], "question": "?", "answer": "x", "match": "exact"}"#,
            "",
            r#"{"id": "good2", "category": "spatial", "images": ["checker.png"], "question": "Where?", "answer": [0, 0, 100, 75], "match": "bbox"}"#,
            r#"{"id": "bad-choice", "category": "logic", "question": "?", "answer": "Q", "match": "choice", "choices": ["a", "b"]}"#,
            r#"{"id": "good3", "category": "logic", "images": ["checker.png"], "question": "Pick one: (A) yes (B) no", "answer": "A", "match": "choice", "choices": ["yes", "no"]}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let results = tmp.path().join("out");
    let out = glimpse(
        &[
            "eval",
            "--model",
            &model("qwen2_5_vl"),
            "--suite",
            suite.to_str().unwrap(),
            "--out",
            results.to_str().unwrap(),
            "--max-tokens",
            "3",
            "--device",
            "cpu",
        ],
        &config,
    );
    ok(&out);
    let err = stderr(&out);
    let name = suite.display().to_string();
    for (line, what) in [
        (2, "not valid JSON"),
        (3, "missing.png: it does not exist"),
        (6, "neither a choice letter"),
    ] {
        assert!(
            err.lines()
                .any(|l| l.starts_with(&format!("{name}: line {line}: ")) && l.contains(what)),
            "line {line}: {err}"
        );
    }
    assert_eq!(answer_lines(&results).len(), 3, "the good lines were asked");
    let r = report(&results);
    check_sums(&r, 6);
    assert_eq!(n(&r["overall"], "errors"), 3);
    assert_eq!(n(&r["overall"], "correct") + n(&r["overall"], "wrong"), 3);
    let spatial = r["categories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["category"] == "spatial")
        .unwrap();
    assert_eq!(
        (n(spatial, "items"), n(spatial, "errors")),
        (2, 1),
        "a missing image counts as an error of its category"
    );
    let md = std::fs::read_to_string(results.join("report.md")).unwrap();
    assert!(md.contains("## Errors"));
    assert!(md.contains("| 3 | no-image | image "), "{md}");
    assert!(md.contains("| 6 | bad-choice |"), "{md}");
}
