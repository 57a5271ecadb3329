//! `glimpse bench` says in its JSON whether the quantised weights came from
//! the cache, and the cache lives in the data folder it is pointed at.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn bench(home: &Path, quant: &str) -> Value {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/qwen2_vl");
    let out = Command::new(env!("CARGO_BIN_EXE_glimpse"))
        .args([
            "bench",
            "--json",
            "--synthetic",
            "64x48",
            "--new-tokens",
            "2",
        ])
        .args(["--repeats", "1", "--device", "cpu", "--quant", quant])
        .arg("--model")
        .arg(&model)
        .env("GLIMPSE_CONFIG", home.join("config.toml"))
        .env("GLIMPSE_DATA_DIR", home.join("data"))
        .output()
        .expect("the glimpse binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"))
}

#[test]
fn bench_reports_whether_the_weights_cache_was_hit() {
    let home = tempfile::tempdir().unwrap();
    assert_eq!(bench(home.path(), "none")["weight_cache"], "off");
    let first = bench(home.path(), "q8_0");
    assert_eq!(first["weight_cache"], "written");
    let second = bench(home.path(), "q8_0");
    assert_eq!(second["weight_cache"], "hit");
    assert_eq!(first["linear_bytes"], second["linear_bytes"]);
    let entries: Vec<_> = std::fs::read_dir(home.path().join("data/quantised"))
        .unwrap()
        .collect();
    assert_eq!(entries.len(), 1, "one folder for the one model");
}
