//! A remote backend: an OpenAI-compatible server (vLLM, SGLang, llama-server,
//! ollama, `glimpse serve`) answering the engine's requests with the engine's
//! events, so `ask` and the other front ends need not know which answered.
//! A small tokio runtime moves the bytes; image preparation runs on its
//! blocking pool, never on the caller's thread.

mod connect;
mod idle;
pub mod images;
pub mod metrics;
mod request;
pub mod sse;
mod stream;

use std::sync::Arc;
use std::time::Duration;

use crate::engine::{Backend, GenerationDefaults, MemoryEstimate, ModelInfo, Request};
use crate::model::kv_cache::KvFormat;
use crate::processor::image::{AlphaMode, LongEdgeCap};
use crate::processor::vision_input::VisionPreprocessConfig;

pub use connect::{endpoint, ServedModel};
pub use idle::IdleLimits;
pub use metrics::ServerLoad;

/// Where the server is and how to talk to it.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// The API's base URL, e.g. `http://gpu-box:8000/v1`.
    pub server: String,
    /// The model's name as the server lists it.
    pub model: String,
    /// The key, read from `api_key_env`.
    pub api_key: Option<String>,
    /// The environment variable the key came from, for error messages.
    pub api_key_env: Option<String>,
    /// The family's `model_type` when the name does not tell it.
    pub family: Option<String>,
    pub long_edge_cap: Option<LongEdgeCap>,
    pub alpha: AlphaMode,
    /// How long the server may stay silent mid-request.
    pub idle: IdleLimits,
}

impl RemoteOptions {
    /// The key from the environment variable `var`, refused when unset or empty.
    pub fn read_key(var: &str) -> anyhow::Result<String> {
        match std::env::var(var) {
            Ok(key) if !key.trim().is_empty() => Ok(key.trim().to_string()),
            _ => anyhow::bail!(
                "the environment variable {var} (--api-key-env) is not set; export the server's API key in it"
            ),
        }
    }
}

/// A checked connection to one model on one server.
pub struct Remote {
    options: RemoteOptions,
    served: ServedModel,
    /// The family's `model_type`: from the server, `--family` or the name.
    model_type: Option<String>,
    preprocess: Option<VisionPreprocessConfig>,
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Remote {
    /// Checks the server and the model (`GET /models`).
    pub fn connect(options: RemoteOptions) -> anyhow::Result<Remote> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("glimpse-remote")
            .enable_all()
            .build()?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()?;
        let served = runtime.block_on(connect::check(
            &client,
            &options.server,
            options.api_key.as_deref(),
            options.api_key_env.as_deref(),
            &options.model,
        ))?;
        let model_type = served
            .model_type
            .clone()
            .or_else(|| options.family.clone())
            .or_else(|| images::family_from_name(&options.model).map(str::to_string));
        let preprocess = served
            .preprocess
            .clone()
            .or_else(|| model_type.as_deref().and_then(images::family_preprocess));
        Ok(Remote {
            options,
            served,
            model_type,
            preprocess,
            client,
            runtime,
        })
    }

    pub fn server(&self) -> &str {
        &self.options.server
    }

    pub fn model(&self) -> &str {
        &self.served.id
    }

    /// The family's `model_type`, when known: what grounding needs.
    pub fn model_type(&self) -> Option<&str> {
        self.model_type.as_deref()
    }

    pub fn long_edge_cap(&self) -> Option<LongEdgeCap> {
        self.options.long_edge_cap
    }

    /// The facts the chat needs of a ready model, as the engine reports
    /// them; the chat sizes images and places boxes with the family's
    /// preprocessing, so a model whose family is unknown is refused.
    pub fn info(&self) -> anyhow::Result<ModelInfo> {
        let (Some(model_type), Some(preprocess)) = (self.model_type(), self.preprocess.clone())
        else {
            anyhow::bail!(
                "the server does not tell the family of {}, nor does its name; add --family qwen2_vl, qwen2_5_vl or qwen3_vl",
                self.model()
            );
        };
        Ok(ModelInfo {
            dir: format!("{} at {}", self.model(), self.server()).into(),
            model_type: model_type.to_string(),
            family: model_type.to_string(),
            device: format!("server {}", self.server()),
            dtype: "remote".into(),
            quant: crate::engine::Quant::None.name().into(),
            quant_vision: false,
            weight_cache: "off".into(),
            linear_bytes: 0,
            // What the server's template does is not known here: the choice
            // is passed on as `enable_thinking` and the template decides.
            thinking: crate::engine::ThinkingMode::Switchable { default_on: false },
            // The server enforces its own limit and says so in its error.
            max_context: crate::engine::DEFAULT_CONTEXT,
            load_s: 0.0,
            memory_estimate: MemoryEstimate {
                total_bytes: 0,
                weights_bytes: 0,
                kv_cache_bytes: 0,
                vision_bytes: 0,
                prefill_bytes: 0,
                runtime_bytes: 0,
                dtype: "remote",
                quant: crate::engine::Quant::None.name(),
                kv_cache: KvFormat::Model,
                context_tokens: 0,
                largest_image: [0, 0],
            },
            notice: None,
            gpu_index: None,
            // The server applies its own generation defaults.
            generation: GenerationDefaults::greedy(vec![]),
            preprocess,
        })
    }
}

impl Backend for Remote {
    /// Sends the request; its events arrive on `request.reply`. Setting its
    /// cancel flag closes the stream.
    fn submit(&self, request: Request) -> anyhow::Result<()> {
        let call = stream::Call {
            client: self.client.clone(),
            url: endpoint(&self.options.server, "chat/completions"),
            server: self.options.server.clone(),
            model: self.served.id.clone(),
            api_key: self.options.api_key.clone(),
            api_key_env: self.options.api_key_env.clone(),
            cap: self.options.long_edge_cap,
            alpha: self.options.alpha,
            preprocess: self.preprocess.clone().map(Arc::new),
            idle: self.options.idle,
        };
        self.runtime.spawn(call.run(request));
        Ok(())
    }
}
