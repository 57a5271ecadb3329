//! Turning `--model` (a directory or a hub id) into a model directory for the
//! command line, with download progress on stderr.

use std::path::PathBuf;

use super::progress::StderrProgress;
use crate::session::{resolve_model, HubOptions};

/// Resolves `spec`; `offline` adds to `HF_HUB_OFFLINE`.
pub fn resolve_model_dir(spec: &str, offline: bool) -> anyhow::Result<PathBuf> {
    let mut options = HubOptions::from_env();
    options.offline |= offline;
    let mut bar = StderrProgress::new();
    let resolved = resolve_model(spec, &options, &mut |event| bar.handle(event))?;
    Ok(resolved.dir)
}
