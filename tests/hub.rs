//! `--model` resolution through the Hugging Face cache, with the network
//! unreachable: the hub endpoint is a closed local port, so any attempt to
//! download fails at once. A model complete in the cache must start anyway.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{mpsc, Mutex};

use glimpse::cli::model_arg::plan_for_chat;
use glimpse::engine::EngineOptions;
use glimpse::session::HubDownload;
use glimpse::tui::runtime::load_model;
use glimpse::tui::Msg;

use glimpse::session::hf_cache;
use glimpse::session::{resolve_model, DownloadEvent, HubError, HubOptions, ModelSource};
use serde_json::Value;

/// Nothing listens here; connecting fails immediately.
const UNREACHABLE: &str = "http://127.0.0.1:9";
const REVISION: &str = "0123456789abcdef0123456789abcdef01234567";

fn fixture_model(family: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/models")
        .join(family)
}

/// Copies a fixture model into `cache` as repository `id`, files placed
/// directly in the snapshot folder.
fn put_in_cache(cache: &Path, id: &str, family: &str) -> PathBuf {
    let repo = hf_cache::repo_dir(cache, id);
    let snapshot = repo.join("snapshots").join(REVISION);
    std::fs::create_dir_all(&snapshot).unwrap();
    for entry in std::fs::read_dir(fixture_model(family)).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, snapshot.join(path.file_name().unwrap())).unwrap();
    }
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), REVISION).unwrap();
    snapshot
}

fn offline_options(cache: &Path, offline: bool) -> HubOptions {
    HubOptions {
        cache_dir: cache.to_path_buf(),
        endpoint: UNREACHABLE.into(),
        offline,
        token: None,
    }
}

fn resolve(
    spec: &str,
    options: &HubOptions,
) -> (
    Result<glimpse::session::ResolvedModel, HubError>,
    Vec<DownloadEvent>,
) {
    let mut events = Vec::new();
    let r = resolve_model(spec, options, &mut |e| events.push(e.clone()));
    (r, events)
}

#[test]
fn a_model_complete_in_the_cache_resolves_without_the_network() {
    let cache = tempfile::tempdir().unwrap();
    let snapshot = put_in_cache(cache.path(), "tiny/qwen2-vl", "qwen2_vl");
    let (r, events) = resolve("tiny/qwen2-vl", &offline_options(cache.path(), false));
    let r = r.unwrap();
    assert_eq!(r.dir, snapshot);
    assert_eq!(
        r.source,
        ModelSource::Cache {
            id: "tiny/qwen2-vl".into()
        }
    );
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn sharded_weights_complete_in_the_cache_resolve_too() {
    let cache = tempfile::tempdir().unwrap();
    let snapshot = put_in_cache(cache.path(), "tiny/qwen2.5-vl", "qwen2_5_vl");
    let (r, _) = resolve("tiny/qwen2.5-vl", &offline_options(cache.path(), true));
    assert_eq!(r.unwrap().dir, snapshot);
}

/// Python's `huggingface_hub` stores contents in `blobs/` and links to them
/// from the snapshot; glimpse reads the same layout.
#[cfg(unix)]
#[test]
fn python_style_links_into_blobs_are_followed_and_counted_once() {
    let cache = tempfile::tempdir().unwrap();
    let repo = hf_cache::repo_dir(cache.path(), "tiny/qwen3-vl");
    let snapshot = repo.join("snapshots").join(REVISION);
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), format!("{REVISION}\n")).unwrap();
    let mut blob_bytes = 0;
    for (i, entry) in std::fs::read_dir(fixture_model("qwen3_vl"))
        .unwrap()
        .enumerate()
    {
        let path = entry.unwrap().path();
        let blob = format!("blob{i:02}");
        std::fs::copy(&path, repo.join("blobs").join(&blob)).unwrap();
        blob_bytes += std::fs::metadata(&path).unwrap().len();
        std::os::unix::fs::symlink(
            Path::new("../../blobs").join(&blob),
            snapshot.join(path.file_name().unwrap()),
        )
        .unwrap();
    }
    let (r, _) = resolve("tiny/qwen3-vl", &offline_options(cache.path(), true));
    assert_eq!(r.unwrap().dir, snapshot);
    let cached = hf_cache::cached_repo(cache.path(), "tiny/qwen3-vl").unwrap();
    assert!(cached.is_complete());
    assert_eq!(cached.bytes, blob_bytes + REVISION.len() as u64 + 1);

    // A link whose blob is gone makes the snapshot incomplete.
    let weights = std::fs::read_link(snapshot.join("model.safetensors")).unwrap();
    std::fs::remove_file(snapshot.join(weights)).unwrap();
    let (r, _) = resolve("tiny/qwen3-vl", &offline_options(cache.path(), true));
    let e = r.unwrap_err().to_string();
    assert!(e.contains("missing model.safetensors"), "{e}");
}

#[test]
fn offline_and_not_cached_says_where_it_looked_and_what_to_do() {
    let cache = tempfile::tempdir().unwrap();
    let (r, events) = resolve(
        "Qwen/Qwen3-VL-4B-Instruct",
        &offline_options(cache.path(), true),
    );
    let e = r.unwrap_err();
    assert!(matches!(e, HubError::Offline { .. }), "{e}");
    let msg = e.to_string();
    let repo = cache.path().join("models--Qwen--Qwen3-VL-4B-Instruct");
    assert!(msg.contains(&repo.display().to_string()), "{msg}");
    assert!(msg.contains("HF_HUB_OFFLINE"), "{msg}");
    assert!(
        msg.contains("pass --model with a local model directory"),
        "{msg}"
    );
    assert!(events.is_empty());
}

#[test]
fn an_incomplete_cache_names_the_missing_shard() {
    let cache = tempfile::tempdir().unwrap();
    let snapshot = put_in_cache(cache.path(), "tiny/qwen2.5-vl", "qwen2_5_vl");
    std::fs::remove_file(snapshot.join("model-00002-of-00004.safetensors")).unwrap();
    let (r, _) = resolve("tiny/qwen2.5-vl", &offline_options(cache.path(), true));
    let msg = r.unwrap_err().to_string();
    assert!(
        msg.contains("missing model-00002-of-00004.safetensors"),
        "{msg}"
    );
}

#[test]
fn a_ref_to_a_missing_snapshot_is_not_a_cached_model() {
    let cache = tempfile::tempdir().unwrap();
    put_in_cache(cache.path(), "tiny/qwen2-vl", "qwen2_vl");
    let refs = hf_cache::repo_dir(cache.path(), "tiny/qwen2-vl").join("refs/main");
    std::fs::write(refs, "ffffffffffffffffffffffffffffffffffffffff").unwrap();
    let (r, _) = resolve("tiny/qwen2-vl", &offline_options(cache.path(), true));
    assert!(matches!(r.unwrap_err(), HubError::Offline { .. }));
}

#[test]
fn no_network_gives_one_clear_error_naming_the_cache_and_the_alternative() {
    let cache = tempfile::tempdir().unwrap();
    let (r, events) = resolve(
        "Qwen/Qwen3-VL-4B-Instruct",
        &offline_options(cache.path(), false),
    );
    let e = r.unwrap_err();
    assert!(matches!(e, HubError::Network { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(&format!(
            "cannot reach the Hugging Face Hub at {UNREACHABLE}"
        )),
        "{msg}"
    );
    let repo = cache.path().join("models--Qwen--Qwen3-VL-4B-Instruct");
    assert!(msg.contains(&repo.display().to_string()), "{msg}");
    assert!(
        msg.contains("pass --model with a local model directory"),
        "{msg}"
    );
    assert!(!msg.contains('\n'));
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn a_local_directory_is_used_as_it_is() {
    let cache = tempfile::tempdir().unwrap();
    let dir = fixture_model("qwen3_vl");
    let (r, _) = resolve(dir.to_str().unwrap(), &offline_options(cache.path(), true));
    let r = r.unwrap();
    assert_eq!((r.dir, r.source), (dir, ModelSource::LocalDir));
}

// The binary, as a user runs it.

struct Env {
    root: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            root: tempfile::tempdir().unwrap(),
        }
    }

    fn cache(&self) -> PathBuf {
        self.root.path().join("hub")
    }

    fn config(&self) -> PathBuf {
        self.root.path().join("config.toml")
    }

    fn glimpse(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_glimpse"));
        for var in [
            "HF_HUB_OFFLINE",
            "HF_TOKEN",
            "HUGGING_FACE_HUB_TOKEN",
            "HF_TOKEN_PATH",
            "HUGGINGFACE_HUB_CACHE",
            "XDG_CACHE_HOME",
        ] {
            c.env_remove(var);
        }
        c.env("HF_HUB_CACHE", self.cache())
            .env("HF_HOME", self.root.path().join("hf-home"))
            .env("HF_ENDPOINT", UNREACHABLE)
            .env("GLIMPSE_CONFIG", self.config())
            .env("GLIMPSE_DATA_DIR", self.root.path().join("data"))
            .args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.glimpse(args).output().unwrap()
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const ASK: &[&str] = &[
    "ask",
    "--prompt",
    "Hi",
    "--max-tokens",
    "3",
    "--temperature",
    "0",
    "--json",
];

#[test]
fn ask_starts_a_cached_hub_model_with_the_network_unreachable() {
    let env = Env::new();
    let snapshot = put_in_cache(&env.cache(), "tiny/qwen2-vl", "qwen2_vl");
    let out = env.run(&[ASK, &["--model", "tiny/qwen2-vl"]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["model"]["dir"], snapshot.to_str().unwrap());
    assert_eq!(v["model"]["model_type"], "qwen2_vl");
    assert!(!v["tokens"].as_array().unwrap().is_empty());
}

#[test]
fn ask_without_model_takes_the_configured_one() {
    let env = Env::new();
    let snapshot = put_in_cache(&env.cache(), "tiny/qwen3-vl", "qwen3_vl");
    std::fs::write(
        env.config(),
        "model = \"tiny/qwen3-vl\"\ndevice = \"cpu\"\n",
    )
    .unwrap();
    let out = env.run(ASK);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["model"]["dir"], snapshot.to_str().unwrap());
}

#[test]
fn ask_with_hf_hub_offline_and_no_cached_model_explains_in_one_line() {
    let env = Env::new();
    let out = env
        .glimpse(&[ASK, &["--model", "Qwen/Qwen3-VL-4B-Instruct"]].concat())
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: Qwen/Qwen3-VL-4B-Instruct is not in the Hugging Face cache at "),
        "{err}"
    );
    assert!(err.contains(&env.cache().display().to_string()), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn ask_with_no_network_names_the_default_model_and_the_way_out() {
    let env = Env::new();
    let out = env.run(ASK);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("to download Qwen/Qwen3-VL-4B-Instruct"),
        "{err}"
    );
    assert!(
        err.contains(
            &env.cache()
                .join("models--Qwen--Qwen3-VL-4B-Instruct")
                .display()
                .to_string()
        ),
        "{err}"
    );
    assert!(
        err.contains("--model with a local model directory"),
        "{err}"
    );
}

#[test]
fn ask_offline_flag_needs_no_environment() {
    let env = Env::new();
    let out = env.run(&[ASK, &["--offline"]].concat());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("offline mode is on"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn ask_reports_a_broken_config_with_its_line() {
    let env = Env::new();
    std::fs::write(env.config(), "model = \"x/y\"\ndevise = \"cpu\"\n").unwrap();
    let out = env.run(ASK);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(", line 2, column 1: unknown field `devise`"),
        "{err}"
    );
    assert!(err.contains("did you mean `device`?"), "{err}");
}

#[test]
fn models_lists_cards_and_what_the_cache_holds() {
    let env = Env::new();
    put_in_cache(&env.cache(), "Qwen/Qwen2-VL-2B-Instruct", "qwen2_vl");
    let partial = put_in_cache(&env.cache(), "Qwen/Qwen3-VL-8B-Instruct", "qwen3_vl");
    std::fs::remove_file(partial.join("model.safetensors")).unwrap();
    put_in_cache(&env.cache(), "someone/finetuned-qwen3-vl", "qwen3_vl");

    let out = env.run(&["models", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["default_model"], "Qwen/Qwen3-VL-4B-Instruct");
    let models = v["models"].as_array().unwrap();
    assert_eq!(models.len(), 14);
    let by_id = |id: &str| models.iter().find(|m| m["id"] == id).unwrap().clone();
    assert_eq!(by_id("Qwen/Qwen3.5-4B")["family"], "qwen3_5");
    let moe = by_id("Qwen/Qwen3-VL-30B-A3B-Instruct");
    assert_eq!(moe["family"], "qwen3_vl_moe");
    assert!(moe["active_parameters"].as_u64().unwrap() * 7 < moe["parameters"].as_u64().unwrap());
    let two_b = by_id("Qwen/Qwen2-VL-2B-Instruct");
    assert_eq!(two_b["cache"]["complete"], true);
    let on_disk = hf_cache::bytes_on_disk(&hf_cache::repo_dir(
        &env.cache(),
        "Qwen/Qwen2-VL-2B-Instruct",
    ));
    assert_eq!(two_b["cache"]["bytes"], on_disk);
    assert_eq!(
        by_id("Qwen/Qwen3-VL-8B-Instruct")["cache"]["complete"],
        false
    );
    assert!(by_id("Qwen/Qwen3-VL-2B-Instruct")["cache"].is_null());
    assert_eq!(by_id("Qwen/Qwen3-VL-4B-Instruct")["default"], true);
    assert_eq!(v["other_cached"][0]["id"], "someone/finetuned-qwen3-vl");
    assert_eq!(v["other_cached"][0]["family"], "qwen3_vl");

    let out = env.run(&["models"]);
    let table = String::from_utf8(out.stdout).unwrap();
    let line = table
        .lines()
        .find(|l| l.starts_with("Qwen/Qwen2-VL-2B-Instruct"))
        .unwrap();
    assert!(
        line.contains("2.21B") && line.ends_with("complete"),
        "{line}"
    );
    assert!(table.contains("partial (missing 1)"), "{table}");
    assert!(table.contains("someone/finetuned-qwen3-vl"), "{table}");
    assert!(
        table.contains(&env.cache().display().to_string()),
        "{table}"
    );
}

#[test]
fn config_command_prints_the_default_file_and_the_path() {
    let env = Env::new();
    let out = env.run(&["config", "--print-default"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        glimpse::session::config::DEFAULT_FILE
    );

    let out = env.run(&["config", "--path"]);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim_end(),
        env.config().to_str().unwrap()
    );

    std::fs::write(env.config(), "[kv_cache]\npolicy = \"fp8\"\n").unwrap();
    let out = env.run(&["config"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(
            "line 2, column 10: unknown variant `fp8`, expected one of `auto`, `f16`, `int8`"
        ),
        "{err}"
    );
}

/// `glimpse config` runs the chat's own check: what it calls valid, the chat
/// opens with, and what the chat refuses it names at its line.
#[test]
fn config_command_refuses_what_the_chat_refuses_at_its_line() {
    let env = Env::new();
    let check = |text: &str| {
        std::fs::write(env.config(), text).unwrap();
        let out = env.run(&["config"]);
        (
            out.status.code(),
            stderr(&out),
            String::from_utf8(out.stdout).unwrap(),
        )
    };
    let config = env.config().display().to_string();

    let (code, err, _) = check("theme = \"dark\"\n[keys]\nsend = \"enter\"\nsned = \"ctrl+s\"\n");
    assert_eq!(code, Some(1));
    assert!(
        err.contains(&format!(
            "{config}, line 4, column 1: unknown action `sned` in [keys]"
        )),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");

    let (code, err, _) = check("[keys]\npreset_10 = \"alt+0\"\n");
    assert_eq!(code, Some(1));
    assert!(
        err.contains("line 2, column 1: unknown action `preset_10`"),
        "{err}"
    );

    let (code, err, _) = check("model = \"Qwen/Qwen3-VL-2B-Instruct\"\ntheme = \"solarized\"\n");
    assert_eq!(code, Some(1));
    assert!(
        err.contains(&format!(
            "{config}, line 2, column 9: unknown theme `solarized`"
        )),
        "{err}"
    );

    let themes = env.root.path().join("themes");
    std::fs::create_dir_all(&themes).unwrap();
    std::fs::write(themes.join("mine.toml"), "text = { fg = \"blurple\" }\n").unwrap();
    let (code, err, _) = check("theme = \"dark\"\n");
    assert_eq!(code, Some(1));
    let mine = themes.join("mine.toml").display().to_string();
    assert!(err.contains(&format!("{mine}, line 1")), "{err}");
    assert!(err.contains("blurple"), "{err}");

    std::fs::write(themes.join("mine.toml"), "text = { fg = \"#fabd2f\" }\n").unwrap();
    let (code, err, out) = check("theme = \"mine\"\n[keys]\npreset_3 = \"alt+3\"\n");
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("is valid."), "{out}");
    assert!(out.contains("theme:   mine"), "{out}");
}

/// The chat's planning before its screen opens: nothing here may touch the
/// network (the endpoint is unreachable anyway).
#[test]
fn the_chat_downloads_only_what_the_cache_lacks_and_offline_stops_before_the_screen() {
    let cache = tempfile::tempdir().unwrap();
    let snapshot = put_in_cache(cache.path(), "tiny/qwen2-vl", "qwen2_vl");
    let (dir, download) =
        plan_for_chat("tiny/qwen2-vl", offline_options(cache.path(), false)).unwrap();
    assert_eq!((dir, download), (snapshot, None));

    let local = fixture_model("qwen3_vl");
    let (dir, download) = plan_for_chat(
        local.to_str().unwrap(),
        offline_options(cache.path(), false),
    )
    .unwrap();
    assert_eq!((dir, download), (local, None));

    let (dir, download) = plan_for_chat(
        "Qwen/Qwen3-VL-4B-Instruct",
        offline_options(cache.path(), false),
    )
    .unwrap();
    assert_eq!(dir, cache.path().join("models--Qwen--Qwen3-VL-4B-Instruct"));
    assert_eq!(
        download,
        Some(HubDownload {
            id: "Qwen/Qwen3-VL-4B-Instruct".into(),
            hub: offline_options(cache.path(), false),
        })
    );

    let e = plan_for_chat(
        "Qwen/Qwen3-VL-4B-Instruct",
        offline_options(cache.path(), true),
    )
    .unwrap_err();
    assert!(matches!(e, HubError::Offline { .. }), "{e}");
}

/// Runs the chat's loader as its thread does and collects what it tells the screen.
fn run_loader(dir: PathBuf, download: &HubDownload) -> (Vec<Msg>, bool) {
    let slot = Mutex::new(None);
    let (tx, rx) = mpsc::channel();
    load_model(EngineOptions::new(dir), Some(download), &slot, &tx);
    drop(tx);
    let loaded = slot.lock().unwrap().is_some();
    (rx.into_iter().collect(), loaded)
}

#[test]
fn the_chat_loader_turns_an_unreachable_hub_into_model_failed_naming_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let id = "Qwen/Qwen3-VL-4B-Instruct";
    let (dir, download) = plan_for_chat(id, offline_options(cache.path(), false)).unwrap();
    let (messages, loaded) = run_loader(dir, &download.expect("a download"));
    assert!(!loaded);
    let [Msg::ModelFailed(e)] = messages.as_slice() else {
        panic!("one ModelFailed, got {} messages", messages.len());
    };
    let repo = cache.path().join("models--Qwen--Qwen3-VL-4B-Instruct");
    assert!(e.contains(&repo.display().to_string()), "{e}");
    assert!(e.contains("cannot reach the Hugging Face Hub"), "{e}");
    assert!(
        e.contains("pass --model with a local model directory"),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");
}

#[test]
fn the_chat_loader_loads_a_hub_model_the_cache_completed_meanwhile() {
    let cache = tempfile::tempdir().unwrap();
    let id = "tiny/qwen2-vl";
    let (dir, download) = plan_for_chat(id, offline_options(cache.path(), false)).unwrap();
    let download = download.expect("not cached yet");
    // Another process (a second glimpse, huggingface-cli) fills the cache
    // before this loader starts: it loads from there without the network.
    let snapshot = put_in_cache(cache.path(), id, "qwen2_vl");
    let (messages, loaded) = run_loader(dir, &download);
    assert!(loaded);
    let [Msg::ModelDownload(DownloadEvent::Finished { dir }), Msg::ModelLoaded(ready)] =
        messages.as_slice()
    else {
        panic!(
            "the end of the download, then ModelLoaded; got {} messages",
            messages.len()
        );
    };
    assert_eq!(dir, &snapshot);
    assert_eq!(ready.info.dir, snapshot);
}
