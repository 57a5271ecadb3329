//! Config files as users write them: every file in `fixtures/config/valid`
//! loads; every file in `fixtures/config/invalid` is refused with a message
//! naming the file, the line, and what would be valid. Each invalid file says
//! what its message must contain in `# expect-line: N` and `# expect: TEXT`
//! comments at its top.

use std::path::{Path, PathBuf};

use glimpse::engine::{DeviceChoice, DtypeChoice, KvCachePolicy};
use glimpse::session::config::ImageProtocol;
use glimpse::session::keyspec::{Key, KeySpec};
use glimpse::session::{Config, ConfigError};

mod common;

fn fixtures(kind: &str) -> Vec<PathBuf> {
    common::toml_fixtures("config", kind)
}

fn fixture(kind: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(kind)
        .join(name)
}

#[test]
fn every_valid_file_loads() {
    for path in fixtures("valid") {
        if let Err(e) = Config::load_from(&path) {
            panic!("{}: {e}", path.display());
        }
    }
}

#[test]
fn every_invalid_file_names_its_line_and_the_valid_choices() {
    for path in fixtures("invalid") {
        let err = Config::load_from(&path).expect_err(&path.display().to_string());
        let line = match &err {
            ConfigError::Invalid { line, .. } => Some(*line),
            _ => None,
        };
        common::check_expected_error(&path, &err.to_string(), line);
    }
}

#[test]
fn a_file_with_every_setting_changes_every_setting() {
    let c = Config::load_from(&fixture("valid", "everything.toml")).unwrap();
    assert_eq!(c.model, "Qwen/Qwen2.5-VL-7B-Instruct");
    assert_eq!(c.device, DeviceChoice::Cuda(1));
    assert_eq!(c.dtype, DtypeChoice::Bf16);
    assert_eq!(c.theme, "light");
    assert_eq!(c.image_protocol, ImageProtocol::Halfblocks);
    assert_eq!(c.long_edge_cap, None);
    // The file's threshold (0.5) belongs to `auto` and has nothing to change here.
    assert_eq!(c.kv_cache, KvCachePolicy::Int8);

    let diagnostic = c.preset("diagnostic").unwrap();
    assert_eq!(diagnostic.top_k, Some(40));
    assert_eq!(diagnostic.repetition_penalty, Some(1.05));
    let ocr = c.default_preset();
    assert_eq!(ocr.name, "ocr");
    assert_eq!(ocr.temperature, Some(0.0));
    assert_eq!(
        ocr.system_prompt.as_deref(),
        Some("Transcribe every piece of text in the image.\nKeep the layout.")
    );

    let key = |s: &str| s.parse::<KeySpec>().unwrap();
    assert_eq!(
        c.keys["newline"],
        vec![key("alt+enter"), key("shift+enter")]
    );
    assert_eq!(c.keys["toggle-gpu"][0].key, Key::F(2));
    assert_eq!(c.keys.len(), 4);
}

#[test]
fn the_uncommented_default_file_equals_no_file_at_all() {
    let c = Config::load_from(&fixture("valid", "printed_default.toml")).unwrap();
    assert_eq!(
        Config {
            source: None,
            spots: Default::default(),
            ..c
        },
        Config::default()
    );
}

#[test]
fn a_missing_file_means_the_defaults() {
    let c = Config::load_from(Path::new("/nonexistent/glimpse/config.toml")).unwrap();
    assert_eq!(c, Config::default());
}
