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
