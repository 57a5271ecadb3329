//! `--model` resolution: a local model directory is used as it is; a hub id
//! (`org/name`) is looked up in the Hugging Face cache shared with Python
//! tools and, when it is not complete there, downloaded into it with progress
//! reports. A model complete in the cache starts without touching the network.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::{ApiBuilder, ApiError, ApiRepo};
use hf_hub::Cache;
use serde_json::Value;

use super::hf_cache::{self, OPTIONAL, SINGLE_WEIGHTS, WEIGHTS_INDEX};

pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Where and how to reach the hub, from the same environment variables as
/// Python's `huggingface_hub`.
#[derive(Debug, Clone, PartialEq)]
pub struct HubOptions {
    /// The hub cache folder (`HF_HUB_CACHE`, else `HF_HOME/hub`, else
    /// `~/.cache/huggingface/hub`).
    pub cache_dir: PathBuf,
    /// `HF_ENDPOINT`, else the public hub.
    pub endpoint: String,
    /// Never touch the network (`--offline` or `HF_HUB_OFFLINE=1`).
    pub offline: bool,
    /// `HF_TOKEN`, else the token file `huggingface-cli login` writes.
    pub token: Option<String>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Python's truthy spellings for boolean environment variables.
pub fn truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "on" | "yes" | "true"
    )
}

impl HubOptions {
    pub fn from_env() -> HubOptions {
        let home = env("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
            let cache = env("XDG_CACHE_HOME").map(PathBuf::from).unwrap_or_else(|| {
                directories::BaseDirs::new()
                    .map(|d| d.home_dir().join(".cache"))
                    .unwrap_or_else(|| PathBuf::from(".cache"))
            });
            cache.join("huggingface")
        });
        let cache_dir = env("HF_HUB_CACHE")
            .or_else(|| env("HUGGINGFACE_HUB_CACHE"))
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join("hub"));
        let token_file = env("HF_TOKEN_PATH")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join("token"));
        let token = env("HF_TOKEN")
            .or_else(|| env("HUGGING_FACE_HUB_TOKEN"))
            .or_else(|| {
                std::fs::read_to_string(token_file)
                    .ok()
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
            });
        HubOptions {
            cache_dir,
            endpoint: env("HF_ENDPOINT")
                .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string())
                .trim_end_matches('/')
                .to_string(),
            offline: env("HF_HUB_OFFLINE").is_some_and(|v| truthy(&v)),
            token,
        }
    }
}

/// What `--model` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSpec {
    Dir(PathBuf),
    Hub(String),
}

impl ModelSpec {
    pub fn parse(spec: &str) -> Result<ModelSpec, HubError> {
        let path = Path::new(spec);
        if path.is_dir() {
            return Ok(ModelSpec::Dir(path.to_path_buf()));
        }
        if path.exists() {
            return Err(HubError::NotADirectory(path.to_path_buf()));
        }
        if is_hub_id(spec) {
            return Ok(ModelSpec::Hub(spec.to_string()));
        }
        Err(HubError::NoSuchModel {
            spec: spec.to_string(),
            suggestions: suggestions_for(spec),
        })
    }
}

/// `org/name` with the characters the hub allows.
pub fn is_hub_id(s: &str) -> bool {
    let ok_part = |p: &str| {
        !p.is_empty()
            && p.len() <= 96
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !p.starts_with(['.', '-'])
            && !p.contains("..")
            && !p.contains("--")
    };
    matches!(s.split_once('/'), Some((org, name)) if ok_part(org) && ok_part(name))
}

/// Where the model directory came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    LocalDir,
    /// Complete in the cache already; the network was not used.
    Cache {
        id: String,
    },
    /// Fetched (at least in part) just now.
    Downloaded {
        id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedModel {
    pub dir: PathBuf,
    pub source: ModelSource,
}

/// Download progress, for a bar on stderr or an event in the TUI.
#[derive(Debug, Clone, PartialEq)]
pub enum DownloadEvent {
    /// Files to fetch, and their total size when the hub says (else 0).
    Started {
        id: String,
        files: usize,
        total_bytes: u64,
    },
    /// Bytes done over the whole download (and of the total, 0 if unknown).
    Progress {
        file: String,
        file_index: usize,
        files: usize,
        done_bytes: u64,
        total_bytes: u64,
    },
    Finished {
        dir: PathBuf,
    },
}

const HOW_TO_PASS_A_DIR: &str = "or pass --model with a local model directory (one with config.json, tokenizer.json and the *.safetensors files)";

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("{} is a file; pass --model with a model directory or a hub id like Qwen/Qwen3-VL-4B-Instruct", .0.display())]
    NotADirectory(PathBuf),
    #[error("model {spec:?}: no such directory, and not a hub id (org/name such as Qwen/Qwen3-VL-4B-Instruct){}; `glimpse models` lists the known models", did_you_mean(.suggestions))]
    NoSuchModel {
        spec: String,
        suggestions: Vec<String>,
    },
    #[error("{id} is {} and offline mode is on (--offline or HF_HUB_OFFLINE); run once with network access to download it, {HOW_TO_PASS_A_DIR}", where_in_cache(.cache, .missing))]
    Offline {
        id: String,
        cache: PathBuf,
        missing: Vec<String>,
    },
    #[error("cannot reach the Hugging Face Hub at {endpoint} to download {id} ({reason}), and it is not complete in the cache at {}; connect to the network, point HF_HUB_CACHE or HF_HOME at a cache that has it, {HOW_TO_PASS_A_DIR}", cache.display())]
    Network {
        id: String,
        endpoint: String,
        cache: PathBuf,
        reason: String,
    },
    #[error("the Hugging Face Hub has no model {id} (or it needs an access token: set HF_TOKEN); check the name, `glimpse models` lists the known ones")]
    NotOnHub { id: String },
    #[error("{id} on the Hugging Face Hub lacks {}; glimpse needs safetensors weights and tokenizer.json", describe_missing(.missing))]
    Unusable { id: String, missing: Vec<String> },
    #[error("downloading {file} of {id} failed: {reason}")]
    Download {
        id: String,
        file: String,
        reason: String,
    },
}

fn where_in_cache(cache: &Path, missing: &[String]) -> String {
    if missing.is_empty() || missing == [NOTHING_CACHED] {
        format!("not in the Hugging Face cache at {}", cache.display())
    } else {
        format!(
            "only partly in the Hugging Face cache at {} ({})",
            cache.display(),
            describe_missing(missing)
        )
    }
}

fn did_you_mean(suggestions: &[String]) -> String {
    match suggestions {
        [] => String::new(),
        [one] => format!("; did you mean {one}?"),
        many => format!("; did you mean one of {}?", many.join(", ")),
    }
}

/// Known hub ids whose name contains what was typed (`Qwen3-VL-4B` → the 4B card).
fn suggestions_for(spec: &str) -> Vec<String> {
    let typed = spec.rsplit('/').next().unwrap_or(spec).to_ascii_lowercase();
    if typed.len() < 3 {
        return Vec::new();
    }
    super::registry::cards()
        .into_iter()
        .map(|c| c.id)
        .filter(|id| id.to_ascii_lowercase().contains(&typed))
        .collect()
}

const NOTHING_CACHED: &str = "every file";

fn describe_missing(missing: &[String]) -> String {
    if missing.len() > 3 {
        format!(
            "missing {} and {} more",
            missing[..2].join(", "),
            missing.len() - 2
        )
    } else {
        format!("missing {}", missing.join(", "))
    }
}

/// Resolves `--model`: a directory as is; a hub id from the cache, else downloaded.
pub fn resolve_model(
    spec: &str,
    options: &HubOptions,
    progress: &mut dyn FnMut(&DownloadEvent),
) -> Result<ResolvedModel, HubError> {
    match ModelSpec::parse(spec)? {
        ModelSpec::Dir(dir) => Ok(ResolvedModel {
            dir,
            source: ModelSource::LocalDir,
        }),
        ModelSpec::Hub(id) => resolve_hub_id(&id, options, progress),
    }
}

pub fn resolve_hub_id(
    id: &str,
    options: &HubOptions,
    progress: &mut dyn FnMut(&DownloadEvent),
) -> Result<ResolvedModel, HubError> {
    match hub_id_without_network(id, options)? {
        ModelPlan::Ready(resolved) => Ok(resolved),
        ModelPlan::Download { id } => {
            let dir = download(&id, options, progress)?;
            Ok(ResolvedModel {
                dir,
                source: ModelSource::Downloaded { id },
            })
        }
    }
}

/// What `--model` comes to before any network access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelPlan {
    /// A local directory, or a hub id complete in the cache.
    Ready(ResolvedModel),
    /// A hub id the cache lacks (in whole or in part) and that may be downloaded.
    Download { id: String },
}

/// Resolves `spec` as far as the disk allows: a directory or a complete cached
/// model is ready; a hub id missing in offline mode is the offline error; any
/// other hub id is left to download (with [`resolve_model`]).
pub fn plan_model(spec: &str, options: &HubOptions) -> Result<ModelPlan, HubError> {
    match ModelSpec::parse(spec)? {
        ModelSpec::Dir(dir) => Ok(ModelPlan::Ready(ResolvedModel {
            dir,
            source: ModelSource::LocalDir,
        })),
        ModelSpec::Hub(id) => hub_id_without_network(&id, options),
    }
}

fn hub_id_without_network(id: &str, options: &HubOptions) -> Result<ModelPlan, HubError> {
    let cached = hf_cache::main_snapshot(&options.cache_dir, id);
    let missing = match &cached {
        Some(dir) => hf_cache::missing_files(dir),
        None => vec![NOTHING_CACHED.to_string()],
    };
    if let (Some(dir), true) = (&cached, missing.is_empty()) {
        return Ok(ModelPlan::Ready(ResolvedModel {
            dir: dir.clone(),
            source: ModelSource::Cache { id: id.to_string() },
        }));
    }
    if options.offline {
        return Err(HubError::Offline {
            id: id.to_string(),
            cache: hf_cache::repo_dir(&options.cache_dir, id),
            missing,
        });
    }
    Ok(ModelPlan::Download { id: id.to_string() })
}

/// Fetches what the cache lacks of the model's main branch; returns the snapshot.
fn download(
    id: &str,
    options: &HubOptions,
    progress: &mut dyn FnMut(&DownloadEvent),
) -> Result<PathBuf, HubError> {
    let fail = |file: &str, e: ApiError| classify(id, file, options, e);
    let api = ApiBuilder::from_cache(Cache::new(options.cache_dir.clone()))
        .with_endpoint(options.endpoint.clone())
        .with_token(options.token.clone())
        .with_progress(false)
        .with_retries(2)
        .with_user_agent("glimpse", env!("CARGO_PKG_VERSION"))
        .build()
        .map_err(|e| fail("", e))?;
    let repo = api.model(id.to_string());
    let listing = RepoListing::fetch(&repo, id, options)?;
    let snapshot = hf_cache::repo_dir(&options.cache_dir, id)
        .join("snapshots")
        .join(&listing.sha);

    // Small files first and weights last: a cache whose weights are complete
    // then has everything else too.
    let mut plan: Vec<String> = ["config.json", "tokenizer.json"]
        .iter()
        .chain(OPTIONAL)
        .filter(|f| listing.has(f))
        .map(|f| f.to_string())
        .collect();
    plan.dedup();
    let weights_missing = if listing.has(WEIGHTS_INDEX) {
        if !snapshot.join(WEIGHTS_INDEX).is_file() {
            fetch(&repo, WEIGHTS_INDEX, &mut |_| {}).map_err(|e| fail(WEIGHTS_INDEX, e))?;
        }
        let shards = hf_cache::shard_names(&snapshot.join(WEIGHTS_INDEX)).map_err(|reason| {
            HubError::Download {
                id: id.to_string(),
                file: WEIGHTS_INDEX.to_string(),
                reason,
            }
        })?;
        plan.extend(shards);
        false
    } else if listing.has(SINGLE_WEIGHTS) {
        plan.push(SINGLE_WEIGHTS.to_string());
        false
    } else {
        true
    };
    let mut unusable: Vec<String> = ["config.json", "tokenizer.json"]
        .iter()
        .filter(|f| !listing.has(f))
        .map(|f| f.to_string())
        .collect();
    if weights_missing {
        unusable.push(format!("{SINGLE_WEIGHTS} or {WEIGHTS_INDEX}"));
    }
    if !unusable.is_empty() {
        return Err(HubError::Unusable {
            id: id.to_string(),
            missing: unusable,
        });
    }

    plan.retain(|f| !snapshot.join(f).is_file());
    let total_bytes: u64 = plan.iter().filter_map(|f| listing.size(f)).sum();
    progress(&DownloadEvent::Started {
        id: id.to_string(),
        files: plan.len(),
        total_bytes,
    });
    let mut done_before = 0u64;
    for (index, file) in plan.iter().enumerate() {
        let mut on_bytes = |done_in_file: u64| {
            progress(&DownloadEvent::Progress {
                file: file.clone(),
                file_index: index,
                files: plan.len(),
                done_bytes: done_before + done_in_file,
                total_bytes,
            })
        };
        let size = fetch(&repo, file, &mut on_bytes).map_err(|e| fail(file, e))?;
        done_before += listing.size(file).unwrap_or(size);
    }
    let missing = hf_cache::missing_files(&snapshot);
    if !missing.is_empty() {
        return Err(HubError::Unusable {
            id: id.to_string(),
            missing,
        });
    }
    progress(&DownloadEvent::Finished {
        dir: snapshot.clone(),
    });
    Ok(snapshot)
}

/// The files of the main branch, with sizes when the hub gives them.
struct RepoListing {
    sha: String,
    files: Vec<(String, Option<u64>)>,
}

impl RepoListing {
    fn fetch(repo: &ApiRepo, id: &str, options: &HubOptions) -> Result<RepoListing, HubError> {
        let malformed = |reason: String| HubError::Download {
            id: id.to_string(),
            file: "the file list".to_string(),
            reason,
        };
        let value: Value = repo
            .info_request()
            .query("blobs", "true")
            .call()
            .map_err(|e| classify(id, "", options, ApiError::RequestError(Box::new(e))))?
            .into_json()
            .map_err(|e| malformed(format!("the hub's answer is not JSON: {e}")))?;
        let sha = value
            .get("sha")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && !s.contains(['/', '\\', '.']))
            .ok_or_else(|| malformed("the hub's answer names no commit".into()))?
            .to_string();
        let files = value
            .get("siblings")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|s| {
                        let name = s.get("rfilename")?.as_str()?.to_string();
                        Some((name, s.get("size").and_then(Value::as_u64)))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(RepoListing { sha, files })
    }

    fn has(&self, file: &str) -> bool {
        self.files.iter().any(|(f, _)| f == file)
    }

    fn size(&self, file: &str) -> Option<u64> {
        self.files
            .iter()
            .find(|(f, _)| f == file)
            .and_then(|(_, s)| *s)
    }
}

/// Downloads one file into the cache; returns its size.
fn fetch(repo: &ApiRepo, file: &str, on_bytes: &mut dyn FnMut(u64)) -> Result<u64, ApiError> {
    let mut reporter = Reporter {
        on_bytes,
        done: 0,
        size: 0,
        last_report: None,
    };
    repo.download_with_progress(file, &mut reporter)?;
    Ok(reporter.size)
}

/// Adapts hf-hub's progress calls, reporting at most every MiB.
struct Reporter<'a> {
    on_bytes: &'a mut dyn FnMut(u64),
    done: u64,
    size: u64,
    last_report: Option<u64>,
}

const REPORT_EVERY: u64 = 1 << 20;

impl hf_hub::api::Progress for &mut Reporter<'_> {
    fn init(&mut self, size: usize, _filename: &str) {
        self.size = size as u64;
        self.done = 0;
        self.last_report = None;
        (self.on_bytes)(0);
    }

    fn update(&mut self, size: usize) {
        self.done += size as u64;
        if self
            .last_report
            .is_none_or(|last| self.done >= last + REPORT_EVERY)
        {
            self.last_report = Some(self.done);
            (self.on_bytes)(self.done);
        }
    }

    fn finish(&mut self) {
        (self.on_bytes)(self.done.max(self.size));
    }
}

fn classify(id: &str, file: &str, options: &HubOptions, e: ApiError) -> HubError {
    let network = |reason: String| HubError::Network {
        id: id.to_string(),
        endpoint: options.endpoint.clone(),
        cache: hf_cache::repo_dir(&options.cache_dir, id),
        reason,
    };
    match e {
        ApiError::RequestError(inner) => match *inner {
            ureq::Error::Status(401 | 403 | 404, _) if file.is_empty() => {
                HubError::NotOnHub { id: id.to_string() }
            }
            ureq::Error::Status(code, response) => HubError::Download {
                id: id.to_string(),
                file: file.to_string(),
                reason: format!("the hub answered {code} {}", response.status_text()),
            },
            ureq::Error::Transport(t) => network(transport_reason(&t)),
        },
        ApiError::TooManyRetries(inner) => classify(id, file, options, *inner),
        other => HubError::Download {
            id: id.to_string(),
            file: if file.is_empty() {
                "the file list".to_string()
            } else {
                file.to_string()
            },
            reason: other.to_string(),
        },
    }
}

/// A short cause: "connection refused", "DNS lookup failed", ...
fn transport_reason(t: &ureq::Transport) -> String {
    let mut reason = t.kind().to_string();
    let mut source = std::error::Error::source(t);
    while let Some(s) = source {
        reason = format!("{reason}: {s}");
        source = s.source();
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_are_org_slash_name() {
        for good in ["Qwen/Qwen3-VL-4B-Instruct", "a/b", "my_org/model.v2"] {
            assert!(is_hub_id(good), "{good}");
        }
        for bad in [
            "Qwen3-VL",
            "./x/y",
            "/abs/path",
            "a/b/c",
            "a/",
            "/b",
            "a/../b",
            "a/b c",
            "org/na--me",
        ] {
            assert!(!is_hub_id(bad), "{bad}");
        }
    }

    #[test]
    fn truthy_spellings_match_python() {
        for (v, expected) in [
            ("1", true),
            ("ON", true),
            ("yes", true),
            ("True", true),
            ("0", false),
            ("no", false),
            ("", false),
        ] {
            assert_eq!(truthy(v), expected, "{v:?}");
        }
    }

    #[test]
    fn a_path_that_exists_is_never_taken_for_a_hub_id() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().to_str().unwrap();
        assert_eq!(
            ModelSpec::parse(spec).unwrap(),
            ModelSpec::Dir(dir.path().into())
        );
        let file = dir.path().join("f");
        std::fs::write(&file, "").unwrap();
        let e = ModelSpec::parse(file.to_str().unwrap()).unwrap_err();
        assert!(e.to_string().contains("is a file"), "{e}");
        let e = ModelSpec::parse("no-such-dir").unwrap_err().to_string();
        assert!(e.contains("no such directory, and not a hub id"), "{e}");
        assert!(!e.contains("did you mean"), "{e}");
    }

    #[test]
    fn a_known_name_without_its_org_gets_a_suggestion() {
        let e = ModelSpec::parse("Qwen3-VL-4B-Instruct")
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean Qwen/Qwen3-VL-4B-Instruct?"), "{e}");
        let e = ModelSpec::parse("qwen2.5-vl").unwrap_err().to_string();
        assert!(
            e.contains(
                "did you mean one of Qwen/Qwen2.5-VL-3B-Instruct, Qwen/Qwen2.5-VL-7B-Instruct?"
            ),
            "{e}"
        );
    }
}
