//! The Hugging Face hub cache as Python's `huggingface_hub` lays it out, so
//! glimpse and Python tools share downloads:
//!
//! ```text
//! <cache>/models--Qwen--Qwen3-VL-4B-Instruct/
//!     refs/main                  commit hash the branch pointed to
//!     snapshots/<commit>/<file>  links into blobs/ (or plain files)
//!     blobs/<etag>               file contents
//! ```

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Files a model folder needs besides the weights.
const REQUIRED: &[&str] = &["config.json", "tokenizer.json"];
/// Any one of these carries the chat template.
const TEMPLATE_FILES: &[&str] = &[
    "chat_template.jinja",
    "chat_template.json",
    "tokenizer_config.json",
];
/// Small files used when present, fetched along with the model.
pub const OPTIONAL: &[&str] = &[
    "generation_config.json",
    "preprocessor_config.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "chat_template.json",
    "special_tokens_map.json",
];
pub const SINGLE_WEIGHTS: &str = "model.safetensors";
pub const WEIGHTS_INDEX: &str = "model.safetensors.index.json";

/// `Qwen/Qwen3-VL-4B-Instruct` → `<cache>/models--Qwen--Qwen3-VL-4B-Instruct`.
pub fn repo_dir(cache: &Path, id: &str) -> PathBuf {
    cache.join(format!("models--{}", id.replace('/', "--")))
}

/// The reverse of `repo_dir` for a folder name.
pub fn id_of_folder(name: &str) -> Option<String> {
    let rest = name.strip_prefix("models--")?;
    let (org, model) = rest.split_once("--")?;
    (!org.is_empty() && !model.is_empty()).then(|| format!("{org}/{model}"))
}

/// The snapshot folder `refs/main` points to, if both exist.
pub fn main_snapshot(cache: &Path, id: &str) -> Option<PathBuf> {
    let repo = repo_dir(cache, id);
    let commit = std::fs::read_to_string(repo.join("refs").join("main")).ok()?;
    let commit = commit.trim();
    if commit.is_empty() || commit.contains(['/', '\\']) || commit.starts_with('.') {
        return None;
    }
    let dir = repo.join("snapshots").join(commit);
    dir.is_dir().then_some(dir)
}

/// What a model folder lacks to be loaded: empty when complete. Links into
/// missing blobs count as missing.
pub fn missing_files(dir: &Path) -> Vec<String> {
    let mut missing: Vec<String> = REQUIRED
        .iter()
        .filter(|f| !dir.join(f).is_file())
        .map(|f| f.to_string())
        .collect();
    if !TEMPLATE_FILES.iter().any(|f| dir.join(f).is_file()) {
        missing.push("a chat template (chat_template.json or tokenizer_config.json)".into());
    }
    missing.extend(missing_weights(dir));
    missing
}

fn missing_weights(dir: &Path) -> Vec<String> {
    let index = dir.join(WEIGHTS_INDEX);
    if index.is_file() {
        return match shard_names(&index) {
            Ok(shards) => shards
                .into_iter()
                .filter(|s| !dir.join(s).is_file())
                .collect(),
            Err(e) => vec![format!("{WEIGHTS_INDEX} ({e})")],
        };
    }
    if dir.join(SINGLE_WEIGHTS).is_file() {
        return Vec::new();
    }
    vec![format!(
        "{SINGLE_WEIGHTS} (or {WEIGHTS_INDEX} and its shards)"
    )]
}

/// The shard files a safetensors index names, each once, sorted.
pub fn shard_names(index: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(index).map_err(|e| format!("cannot read it: {e}"))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| format!("not valid JSON: {e}"))?;
    let map = value
        .get("weight_map")
        .and_then(Value::as_object)
        .ok_or("no weight_map")?;
    let mut shards: Vec<String> = Vec::new();
    for file in map.values() {
        let name = file
            .as_str()
            .ok_or("weight_map values must be file names")?;
        if name.contains("..") || name.starts_with('/') {
            return Err(format!("unsafe shard name {name:?}"));
        }
        if !shards.iter().any(|s| s == name) {
            shards.push(name.to_string());
        }
    }
    shards.sort();
    Ok(shards)
}

/// One model repository found in the cache.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedRepo {
    pub id: String,
    pub dir: PathBuf,
    /// The snapshot `refs/main` points to.
    pub snapshot: Option<PathBuf>,
    /// What the snapshot lacks (see `missing_files`); everything when there is none.
    pub missing: Vec<String>,
    /// Bytes the repository takes on disk (blobs and partial downloads).
    pub bytes: u64,
}

impl CachedRepo {
    pub fn is_complete(&self) -> bool {
        self.snapshot.is_some() && self.missing.is_empty()
    }
}

/// Looks one repository up.
pub fn cached_repo(cache: &Path, id: &str) -> Option<CachedRepo> {
    let dir = repo_dir(cache, id);
    if !dir.is_dir() {
        return None;
    }
    let snapshot = main_snapshot(cache, id);
    let missing = match &snapshot {
        Some(s) => missing_files(s),
        None => vec!["refs/main or its snapshot".into()],
    };
    Some(CachedRepo {
        id: id.to_string(),
        bytes: bytes_on_disk(&dir),
        dir,
        snapshot,
        missing,
    })
}

/// Every model repository in the cache, by id.
pub fn scan(cache: &Path) -> Vec<CachedRepo> {
    let Ok(entries) = std::fs::read_dir(cache) else {
        return Vec::new();
    };
    let mut repos: Vec<CachedRepo> = entries
        .flatten()
        .filter_map(|e| id_of_folder(&e.file_name().to_string_lossy()))
        .filter_map(|id| cached_repo(cache, &id))
        .collect();
    repos.sort_by_key(|r| r.id.to_lowercase());
    repos
}

/// Sum of regular files under `dir`, links not followed (each blob counts once).
pub fn bytes_on_disk(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_map_to_ids_both_ways() {
        let cache = Path::new("/c");
        assert_eq!(
            repo_dir(cache, "Qwen/Qwen3-VL-4B-Instruct"),
            Path::new("/c/models--Qwen--Qwen3-VL-4B-Instruct")
        );
        assert_eq!(
            id_of_folder("models--Qwen--Qwen3-VL-4B-Instruct").as_deref(),
            Some("Qwen/Qwen3-VL-4B-Instruct")
        );
        assert_eq!(id_of_folder("datasets--a--b"), None);
        assert_eq!(id_of_folder("models--a"), None);
    }

    #[test]
    fn the_fixture_models_are_complete_and_a_missing_shard_is_named() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models");
        for family in ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"] {
            assert_eq!(
                missing_files(&fixtures.join(family)),
                Vec::<String>::new(),
                "{family}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let src = fixtures.join("qwen2_5_vl");
        for f in ["config.json", "tokenizer.json", WEIGHTS_INDEX] {
            std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
        }
        let missing = missing_files(dir.path());
        assert!(
            missing.contains(&"model-00003-of-00004.safetensors".to_string()),
            "{missing:?}"
        );
        assert!(
            missing.iter().any(|m| m.starts_with("a chat template")),
            "{missing:?}"
        );
        assert_eq!(missing.len(), 5, "{missing:?}");
    }
}
