//! Commands whose reader leaves early (`glimpse models | head -1`) end
//! quietly with status 0: no panic, no error line.

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs glimpse with a stdout whose reading end is already closed, so the
/// first write fails with a broken pipe.
fn into_closed_pipe(args: &[&str], home: &Path) -> Output {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    Command::new(env!("CARGO_BIN_EXE_glimpse"))
        .args(args)
        .env("GLIMPSE_CONFIG", home.join("config.toml"))
        .env("GLIMPSE_DATA_DIR", home.join("data"))
        .env("HF_HUB_CACHE", home.join("hub"))
        .env("HF_HUB_OFFLINE", "1")
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("the glimpse binary runs")
}

#[test]
fn a_reader_that_leaves_early_ends_the_listing_quietly() {
    let home = tempfile::tempdir().unwrap();
    for args in [
        &["models"][..],
        &["models", "--json"],
        &["config"],
        &["config", "--path"],
        &["config", "--print-default"],
        &["sessions"],
        &["devices", "--samples", "1"],
        &["devices", "--samples", "1", "--json"],
    ] {
        let out = into_closed_pipe(args, home.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?} said: {stderr}");
    }
}

#[test]
fn the_same_commands_print_in_full_to_a_reader_that_stays() {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_glimpse"))
        .args(["config", "--print-default"])
        .env("GLIMPSE_CONFIG", home.path().join("config.toml"))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        glimpse::session::config::DEFAULT_FILE
    );
}

/// `ask` takes its question from flags, never from stdin: a stdin that is a
/// pipe nobody writes to, or closed, neither holds it up nor keeps it busy.
#[test]
fn ask_ignores_a_stdin_that_never_ends_or_is_closed() {
    let home = tempfile::tempdir().unwrap();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/qwen2_vl");
    let image =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images/checker_200x150.png");
    let ask = |stdin: Stdio| {
        Command::new(env!("CARGO_BIN_EXE_glimpse"))
            .args(["ask", "--model", model.to_str().unwrap(), "--image"])
            .arg(&image)
            .args(["--prompt", "hi", "--max-tokens", "4", "--show"])
            .env("GLIMPSE_CONFIG", home.path().join("config.toml"))
            .env("GLIMPSE_DATA_DIR", home.path().join("data"))
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("the glimpse binary runs")
    };
    // The writing end stays open until the command has ended.
    let (reader, writer) = std::io::pipe().expect("a pipe");
    let out = ask(Stdio::from(reader));
    drop(writer);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(writer);
    let out = ask(Stdio::from(reader));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
