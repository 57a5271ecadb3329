//! The model flags `ask`, `eval` and `chat` share (`--model`, `--offline`,
//! `--device`, `--dtype`), the config file filling what they leave out, and
//! turning `--model` (a directory or a hub id) into a model directory, with
//! download progress on stderr.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::progress::StderrProgress;
use crate::engine::{
    DeviceChoice, DtypeChoice, Engine, EngineOptions, KvCachePolicy, LoadProgress, ModelInfo, Quant,
};
use crate::gpu::sampler::PERIOD;
use crate::gpu::{NvmlMonitor, Sampler};
use crate::processor::image::AlphaMode;
use crate::session::hf_cache;
use crate::session::HubDownload;
use crate::session::{plan_model, resolve_model, Config, HubError, HubOptions, ModelPlan};

#[derive(Debug, Default, Clone, Args)]
pub struct ModelFlags {
    /// Local model directory (config.json, safetensors, tokenizer.json, ...) or
    /// a Hugging Face hub id (org/name), taken from the Hugging Face cache or
    /// downloaded into it [default: the config's model, else
    /// Qwen/Qwen3-VL-4B-Instruct].
    #[arg(id = "model", long = "model", value_name = "DIR|ORG/NAME")]
    pub spec: Option<String>,
    /// Never use the network: a hub id must already be complete in the
    /// Hugging Face cache (as with HF_HUB_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
    /// auto, cpu or cuda:N [default: the config's, else auto].
    #[arg(long)]
    pub device: Option<DeviceChoice>,
    /// auto (bf16 on CUDA compute capability 8+, f16 below, f32 on CPU), f32,
    /// bf16 or f16 [default: the config's, else auto].
    #[arg(long)]
    pub dtype: Option<DtypeChoice>,
    /// Store the language model's linear layers quantised at load: none, q8_0,
    /// q6k, q5k or q4k [default: the config's, else none].
    #[arg(long)]
    pub quant: Option<Quant>,
    /// Quantise the vision tower's linear layers too, as --quant says
    /// [default: the config's quant_vision, else off].
    #[arg(long)]
    pub quant_vision: bool,
}

impl ModelFlags {
    /// `--model`, else the config's model.
    pub fn spec(&self, config: &Config) -> String {
        self.spec.clone().unwrap_or_else(|| config.model.clone())
    }

    /// The model directory, a hub id resolved through the cache.
    pub fn resolve_dir(&self, config: &Config) -> anyhow::Result<PathBuf> {
        resolve_model_dir(&self.spec(config), self.offline)
    }

    /// For the chat, which downloads with the screen up: the model directory
    /// when it is on disk, else where it will be in the cache and the
    /// download to run (see [`plan_for_chat`]).
    pub fn dir_or_download(
        &self,
        config: &Config,
    ) -> anyhow::Result<(PathBuf, Option<HubDownload>)> {
        let mut hub = HubOptions::from_env();
        hub.offline |= self.offline;
        Ok(plan_for_chat(&self.spec(config), hub)?)
    }

    /// Engine settings for `model_dir`: these flags, then the config file
    /// (device, dtype, long-edge cap, KV policy).
    pub fn engine_options(&self, config: &Config, model_dir: PathBuf) -> EngineOptions {
        EngineOptions {
            device: self.device.unwrap_or(config.device),
            dtype: self.dtype.unwrap_or(config.dtype),
            quant: self.quant.unwrap_or(config.quant),
            quant_vision: self.quant_vision || config.quant_vision,
            weight_cache: crate::session::paths::weights_cache_dir(),
            load_progress: Some(stderr_load_progress()),
            long_edge_cap: config.long_edge_cap,
            alpha: AlphaMode::White,
            kv_cache: config_kv_policy(config),
            ..EngineOptions::new(model_dir)
        }
    }
}

/// The config's KV-cache policy.
/// The smallest `--max-context` accepted: the chat template alone takes
/// tens of tokens, and a question and its answer need room beside it.
pub const MIN_CONTEXT: usize = 128;

/// Reads `--max-context`.
pub fn parse_max_context(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of tokens"))?;
    if n < MIN_CONTEXT {
        return Err(format!(
            "{n} tokens leave no room for a question and its answer; use at least {MIN_CONTEXT}"
        ));
    }
    Ok(n)
}

pub fn config_kv_policy(config: &Config) -> KvCachePolicy {
    config.kv_cache
}

/// Resolves `spec`; `offline` adds to `HF_HUB_OFFLINE`.
pub fn resolve_model_dir(spec: &str, offline: bool) -> anyhow::Result<PathBuf> {
    let mut options = HubOptions::from_env();
    options.offline |= offline;
    let mut bar = StderrProgress::new();
    let resolved = resolve_model(spec, &options, &mut |event| bar.handle(event))?;
    Ok(resolved.dir)
}

/// The model directory when it is on disk, else where the model will be in
/// the cache and the download to run. Never touches the network; a hub id
/// missing in offline mode is the offline error here, before the screen opens.
pub fn plan_for_chat(
    spec: &str,
    hub: HubOptions,
) -> Result<(PathBuf, Option<HubDownload>), HubError> {
    Ok(match plan_model(spec, &hub)? {
        ModelPlan::Ready(resolved) => (resolved.dir, None),
        ModelPlan::Download { id } => (
            hf_cache::repo_dir(&hub.cache_dir, &id),
            Some(HubDownload { id, hub }),
        ),
    })
}

/// Loads the model with the GPU sampler running beside it: the device choice
/// and the KV-cache policy read its samples, so the sampler must live as
/// long as the engine (hold the returned one).
pub fn load_with_readings(options: EngineOptions) -> anyhow::Result<(Engine, Sampler)> {
    let sampler = Sampler::start(Box::new(NvmlMonitor::open()), PERIOD);
    let model_dir = options.model_dir.clone();
    let options = EngineOptions {
        readings: Some(sampler.readings()),
        ..options
    };
    let engine = Engine::load(options)
        .with_context(|| format!("loading the model from {}", model_dir.display()))?;
    Ok((engine, sampler))
}

/// A load-progress line on stderr, redrawn in place on a terminal.
pub fn stderr_load_progress() -> LoadProgress {
    use std::io::IsTerminal;
    let terminal = std::io::stderr().is_terminal();
    LoadProgress(std::sync::Arc::new(move |done, total| {
        if terminal {
            eprint!("\rglimpse: loading the language model, layer {done} of {total}");
            if done == total {
                eprintln!();
            }
        }
    }))
}

/// Says on stderr where the model runs, in what dtype, and its estimate.
pub fn announce(info: &ModelInfo) {
    if let Some(notice) = &info.notice {
        eprintln!("glimpse: {notice}");
    }
    eprintln!(
        "glimpse: {} on {} in {}, memory estimate {}",
        info.family,
        info.device,
        info.precision(),
        info.memory_estimate.summary()
    );
}
