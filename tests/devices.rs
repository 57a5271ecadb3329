//! Device choice, the memory estimate and the KV-cache policy through the real
//! engine and the real binary, on tiny models. On a machine without an NVIDIA
//! GPU (CI) this is the CPU fallback path the GPU machine's script also checks.

mod common;

use std::process::Command;

use common::*;
use glimpse::conversation::Conversation;
use glimpse::engine::{
    DeviceChoice, Engine, EngineOptions, Event, KvCachePolicy, SamplingOverrides,
};
use glimpse::gpu::{GpuMonitor, GpuState, NvmlMonitor, Readings, Sample};
use glimpse::model::kv_cache::KvFormat;
use glimpse::processor::image::AlphaMode;

fn greedy() -> SamplingOverrides {
    SamplingOverrides {
        temperature: Some(0.0),
        repetition_penalty: Some(1.0),
        max_new_tokens: Some(24),
        ..Default::default()
    }
}

/// This machine's real sample, with system memory use set to `used` (a
/// recorded pressure: the tests cannot fill the machine's memory).
fn sample_at(seq: u64, used: f64) -> Sample {
    let mut cpu = glimpse::gpu::cpu::read_facts();
    let total = 64u64 << 30;
    cpu.memory_total = Some(total);
    cpu.memory_available = Some((total as f64 * (1.0 - used)) as u64);
    Sample {
        seq,
        gpus: NvmlMonitor::open().read(),
        cpu,
    }
}

#[test]
fn auto_switches_a_filled_cache_to_int8_mid_conversation_and_keeps_answering() {
    let r = Reference::by_name("qwen2_vl__two_turns");
    let readings = Readings::new(60);
    readings.push(sample_at(0, 0.50));
    let mut options = EngineOptions::new(r.model_dir());
    options.device = DeviceChoice::Cpu;
    options.long_edge_cap = None;
    options.alpha = AlphaMode::Drop;
    options.kv_cache = KvCachePolicy::Auto { threshold: 0.85 };
    options.readings = Some(readings.clone());
    let engine = Engine::load(options).unwrap();
    assert_eq!(engine.kv_cache_label(), "f32");

    // First turn at 50 %: no switch, the exact reference answer.
    let full = r.conversation();
    let first = Conversation {
        messages: full.messages[..1].to_vec(),
    };
    let (rx, _) = engine.ask(first, greedy()).unwrap();
    for ev in rx {
        match ev {
            Event::KvCacheConverted { .. } => panic!("switched at 50 %"),
            Event::Error(e) => panic!("{e}"),
            _ => {}
        }
    }

    // Memory use reaches 90 % before the second turn, which reuses the cache.
    readings.push(sample_at(1, 0.90));
    let (rx, _) = engine.ask(full, greedy()).unwrap();
    let (mut cached, mut converted, mut tokens, mut order) = (0, None, vec![], vec![]);
    for ev in rx {
        match ev {
            Event::Prompt { cached_tokens, .. } => {
                cached = cached_tokens;
                order.push("prompt");
            }
            Event::KvCacheConverted {
                format,
                memory_fraction,
                bytes_before,
                bytes_after,
            } => {
                converted = Some((format, memory_fraction, bytes_before, bytes_after));
                order.push("converted");
            }
            Event::Token { .. } | Event::Reasoning { .. } => order.push("token"),
            Event::Done { tokens: t, .. } => tokens = t,
            Event::Error(e) => panic!("{e}"),
            Event::VisionDone { .. } => {}
        }
    }
    let (format, fraction, before, after) = converted.expect("no switch at 90 %");
    assert_eq!(format, KvFormat::Int8);
    assert!((fraction - 0.90).abs() < 1e-6);
    assert!(cached > 10, "the first turn's cache was not reused");
    // The cache held the first turn's positions, in f32 (head_dim 32, one kv
    // head, two layers, 4 bytes): 512 bytes a position; INT8 takes 144.
    assert_eq!(before, cached * 512);
    assert_eq!(after, cached * 144);
    // Switched before the new prefill, after which the answer streams.
    let at = order.iter().position(|&e| e == "converted").unwrap();
    assert!(order[..at].contains(&"prompt") && order[at + 1..].contains(&"token"));
    assert!(!tokens.is_empty());
    assert_eq!(engine.kv_format(), KvFormat::Int8);
    assert_eq!(engine.kv_cache_label(), "int8");
}

#[test]
fn without_readings_auto_never_switches_and_int8_can_be_asked_for() {
    let r = Reference::by_name("qwen3_vl__text_only");
    let mut options = EngineOptions::new(r.model_dir());
    options.device = DeviceChoice::Cpu;
    options.kv_cache = KvCachePolicy::Auto { threshold: 0.01 };
    let engine = Engine::load(options.clone()).unwrap();
    let (rx, _) = engine.ask(r.conversation(), greedy()).unwrap();
    assert!(rx
        .iter()
        .all(|e| !matches!(e, Event::KvCacheConverted { .. })));
    assert_eq!(engine.kv_format(), KvFormat::Model);

    options.kv_cache = KvCachePolicy::Int8;
    let engine = Engine::load(options).unwrap();
    assert_eq!(engine.kv_cache_label(), "int8");
    let (rx, _) = engine.ask(r.conversation(), greedy()).unwrap();
    let done = rx
        .iter()
        .find(|e| matches!(e, Event::Done { .. } | Event::Error(_)));
    assert!(matches!(done, Some(Event::Done { .. })), "{done:?}");
}

#[test]
fn the_engine_reports_its_estimate_and_the_cpu_notice() {
    let r = Reference::by_name("qwen2_5_vl__single_image");
    let mut options = EngineOptions::new(r.model_dir());
    options.readings = Some(Readings::new(1));
    // Recorded: no GPU on this machine, whatever the test machine has.
    options.readings.as_ref().unwrap().push(Sample {
        gpus: GpuState::Absent {
            reason: "the NVIDIA driver library (libnvidia-ml) is not installed".into(),
        },
        ..sample_at(0, 0.2)
    });
    let engine = Engine::load(options).unwrap();
    let info = engine.info();
    assert!(info.device.starts_with("cpu"));
    assert_eq!(info.dtype, "f32");
    let threads = glimpse::gpu::cpu::threads();
    assert_eq!(
        info.notice.as_deref(),
        Some(format!("no NVIDIA GPU found — running on CPU ({threads} threads)").as_str())
    );
    let e = &info.memory_estimate;
    // The tiny checkpoint is f32 on disk: the weights are its data bytes.
    let data: u64 = std::fs::read_dir(r.model_dir())
        .unwrap()
        .map(|f| f.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            bytes.len() as u64 - 8 - u64::from_le_bytes(bytes[..8].try_into().unwrap())
        })
        .sum();
    assert_eq!(e.weights_bytes, data);
    assert_eq!(e.runtime_bytes, 0);
    // Context: the model allows 128 000, the default reserve is 32 768;
    // 3 layers × (k, v) × 1 kv head × head_dim 32 × 4 bytes per position.
    assert_eq!(info.max_context, 32_768);
    assert_eq!(e.kv_cache_bytes, 3 * 2 * 32 * 4 * 32_768);
    assert_eq!(
        e.total_bytes,
        e.weights_bytes + e.kv_cache_bytes + e.vision_bytes.max(e.prefill_bytes)
    );
}

#[test]
fn ask_json_carries_the_estimate_and_stderr_says_where_it_runs() {
    let r = Reference::by_name("qwen2_vl__single_image");
    let out = Command::new(env!("CARGO_BIN_EXE_glimpse"))
        .args(["ask", "--json", "--temperature", "0", "--max-tokens", "4"])
        .args(["--max-context", "4096", "--kv-cache", "f16"])
        .arg("--model")
        .arg(r.model_dir())
        .arg("--conversation")
        .arg(r.conversation_path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The existing fields are still there.
    for key in [
        "prompt_tokens",
        "tokens",
        "text",
        "finish_reason",
        "timings",
        "model",
        "images",
    ] {
        assert!(json.get(key).is_some(), "{key} missing");
    }
    let e = &json["memory_estimate"];
    assert_eq!(e["context_tokens"], 4096);
    assert_eq!(e["kv_cache"], "model");
    assert_eq!(e["dtype"], json["model"]["dtype"]);
    let parts: u64 = ["weights_bytes", "kv_cache_bytes", "runtime_bytes"]
        .iter()
        .map(|k| e[k].as_u64().unwrap())
        .sum::<u64>()
        + e["vision_bytes"]
            .as_u64()
            .unwrap()
            .max(e["prefill_bytes"].as_u64().unwrap());
    assert_eq!(e["total_bytes"].as_u64().unwrap(), parts);
    assert_eq!(json["kv_cache"]["policy"], "f16");
    assert_eq!(json["kv_cache"]["format"], json["model"]["dtype"]);
    assert!(json["kv_cache"]["converted"].is_null());
    assert!(stderr.contains("memory estimate"), "{stderr}");
    let on_cpu = json["model"]["device"].as_str().unwrap().starts_with("cpu");
    if on_cpu && !NvmlMonitor::open().read().devices().is_empty() {
        assert!(stderr.contains("built without CUDA"), "{stderr}");
    } else if on_cpu {
        assert!(
            stderr.contains("no NVIDIA GPU found — running on CPU ("),
            "{stderr}"
        );
    }
}

#[test]
fn a_bad_kv_flag_is_one_clear_line() {
    let r = Reference::by_name("qwen2_vl__single_image");
    let out = Command::new(env!("CARGO_BIN_EXE_glimpse"))
        .args([
            "ask",
            "--prompt",
            "hi",
            "--kv-cache",
            "int8",
            "--kv-threshold",
            "90",
        ])
        .arg("--model")
        .arg(r.model_dir())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("--kv-threshold only applies to --kv-cache auto"),
        "{stderr}"
    );
}
