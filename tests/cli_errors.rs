//! Bad input as a new user would give it to `glimpse ask`: one clear line on
//! stderr, a non-zero exit code, no panic, no hang.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Runs `glimpse ask` and returns its single stderr line.
fn ask_fails(args: &[&str], model: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_glimpse"))
        .arg("ask")
        .arg("--model")
        .arg(model)
        .args(args)
        .env("GLIMPSE_CONFIG", fixtures().join("config/none.toml"))
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} succeeded: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?}: expected one line, got {stderr:?}"
    );
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(out.stdout.is_empty(), "{args:?} wrote to stdout");
    lines[0].to_string()
}

#[test]
fn broken_images_are_one_line_errors_before_the_model_loads() {
    let dir = tempfile::tempdir().unwrap();
    let model = fixtures().join("models/qwen2_vl");
    let png = std::fs::read(fixtures().join("images/checker_200x150.png")).unwrap();
    let truncated = dir.path().join("truncated.png");
    std::fs::write(&truncated, &png[..png.len() / 3]).unwrap();
    let text = dir.path().join("notes.jpg");
    std::fs::write(&text, "shopping list: eggs, milk\n").unwrap();
    // A PNG header that claims 40000×40000 pixels.
    let mut huge = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    huge.extend_from_slice(&40000u32.to_be_bytes());
    huge.extend_from_slice(&40000u32.to_be_bytes());
    huge.extend_from_slice(&[8, 2, 0, 0, 0]);
    huge.extend_from_slice(&crc32(&huge[12..]).to_be_bytes());
    for (kind, data) in [
        (&b"IDAT"[..], &[0x78u8, 0x9c, 0x63, 0, 0, 0, 1, 0, 1][..]),
        (b"IEND", &[]),
    ] {
        huge.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = huge.len();
        huge.extend_from_slice(kind);
        huge.extend_from_slice(data);
        let crc = crc32(&huge[start..]);
        huge.extend_from_slice(&crc.to_be_bytes());
    }
    let huge_path = dir.path().join("huge.png");
    std::fs::write(&huge_path, &huge).unwrap();

    let cases: [(&Path, &str); 6] = [
        (&truncated, "damaged or incomplete"),
        (&text, "text file"),
        (&huge_path, "too large"),
        (Path::new("/nonexistent/photo.png"), "does not exist"),
        (dir.path(), "it is a folder, not an image file"),
        (Path::new("/dev/zero"), "it is a device, not an image file"),
    ];
    for (path, expect) in cases {
        let line = ask_fails(
            &["--image", path.to_str().unwrap(), "--prompt", "hi"],
            &model,
        );
        assert!(line.contains(expect), "{line}");
    }
}

#[test]
fn broken_model_directories_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = fixtures().join("models/qwen2_vl");

    let no_tokenizer = dir.path().join("no-tokenizer");
    copy_dir(&good, &no_tokenizer);
    std::fs::remove_file(no_tokenizer.join("tokenizer.json")).unwrap();
    let line = ask_fails(&["--prompt", "hi"], &no_tokenizer);
    assert!(line.contains("tokenizer.json"), "{line}");

    let unknown = dir.path().join("unknown-type");
    copy_dir(&good, &unknown);
    let config = std::fs::read_to_string(unknown.join("config.json")).unwrap();
    std::fs::write(
        unknown.join("config.json"),
        config.replace("\"model_type\": \"qwen2_vl\"", "\"model_type\": \"llava\""),
    )
    .unwrap();
    let line = ask_fails(&["--prompt", "hi"], &unknown);
    assert!(line.contains("\"llava\" is not supported"), "{line}");

    let no_weights = dir.path().join("no-weights");
    copy_dir(&good, &no_weights);
    std::fs::remove_file(no_weights.join("model.safetensors")).unwrap();
    let line = ask_fails(&["--prompt", "hi"], &no_weights);
    assert!(line.contains("safetensors"), "{line}");

    let wrong_weights = dir.path().join("wrong-weights");
    copy_dir(&good, &wrong_weights);
    std::fs::copy(
        fixtures().join("models/qwen3_vl/model.safetensors"),
        wrong_weights.join("model.safetensors"),
    )
    .unwrap();
    let line = ask_fails(&["--prompt", "hi"], &wrong_weights);
    assert!(line.contains("do not match config.json"), "{line}");
}

#[test]
fn a_conversation_longer_than_the_context_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let conv = dir.path().join("long.json");
    let text = "many words ".repeat(2000);
    std::fs::write(
        &conv,
        serde_json::json!([{"role": "user", "content": text}]).to_string(),
    )
    .unwrap();
    let line = ask_fails(
        &[
            "--conversation",
            conv.to_str().unwrap(),
            "--max-context",
            "512",
        ],
        &fixtures().join("models/qwen2_vl"),
    );
    assert!(
        line.contains("leaves no room for an answer in the context of 512 tokens"),
        "{line}"
    );
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
