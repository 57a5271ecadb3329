//! The flags that point `ask` (and the other front ends) at a server instead
//! of a local model: `--server`, `--api-key-env`, `--family`,
//! `--idle-timeout`, with the config's `server`, `api_key_env` and
//! `idle_timeout` filling what they leave out.

use anyhow::bail;
use clap::Args;

use crate::processor::image::{AlphaMode, LongEdgeCap};
use crate::remote::{IdleLimits, Remote, RemoteOptions};
use crate::session::Config;

/// `--server local` runs the model here even when the config names a server.
pub const LOCAL: &str = "local";

#[derive(Debug, Default, Clone, Args)]
pub struct RemoteFlags {
    /// Ask an OpenAI-compatible server (vLLM, SGLang, llama-server, ollama,
    /// `glimpse serve`) at this API base URL, e.g. http://gpu-box:8000/v1;
    /// --model then names the model as the server lists it. "local" runs the
    /// model here [default: the config's `server`, else local].
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Environment variable holding the server's API key (never the key
    /// itself on the command line) [default: the config's `api_key_env`].
    #[arg(long = "api-key-env", value_name = "VAR")]
    pub api_key_env: Option<String>,
    /// The model's family when the server's model name does not tell it
    /// (qwen2_vl, qwen2_5_vl or qwen3_vl): images are then sent at the size
    /// the model sees, and boxes placed on them.
    #[arg(long, value_name = "MODEL_TYPE", value_parser = ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"])]
    pub family: Option<String>,
    /// How long the server may send nothing before the answer is given up
    /// (its partial text kept): FIRST:BETWEEN seconds, before the first
    /// token and between tokens, or one number for both [default: the
    /// config's `idle_timeout`, else 120:30].
    #[arg(long = "idle-timeout", value_name = "SECS", value_parser = IdleLimits::parse)]
    pub idle_timeout: Option<IdleLimits>,
}

impl RemoteFlags {
    /// The server to ask, if any.
    pub fn server(&self, config: &Config) -> Option<String> {
        let server = self.server.clone().or_else(|| config.server.clone())?;
        (server != LOCAL).then_some(server)
    }

    /// `--api-key-env` and `--family` mean nothing to a model run here.
    pub fn refuse_without_server(&self) -> anyhow::Result<()> {
        if self.api_key_env.is_some() || self.family.is_some() || self.idle_timeout.is_some() {
            bail!("--api-key-env, --family and --idle-timeout are for a model on a server; add --server URL");
        }
        Ok(())
    }

    /// Connects to the server (checking it and the model) when one is
    /// configured; `None` means the model runs here.
    pub fn connect(
        &self,
        config: &Config,
        model: String,
        long_edge_cap: Option<LongEdgeCap>,
        alpha: AlphaMode,
    ) -> anyhow::Result<Option<Remote>> {
        match self.options(config, model, long_edge_cap, alpha)? {
            Some(options) => Ok(Some(Remote::connect(options)?)),
            None => Ok(None),
        }
    }

    /// Where and how to reach the server when one is configured, checked
    /// as far as it can be without asking it; `None` means the model runs here.
    pub fn options(
        &self,
        config: &Config,
        model: String,
        long_edge_cap: Option<LongEdgeCap>,
        alpha: AlphaMode,
    ) -> anyhow::Result<Option<RemoteOptions>> {
        let Some(server) = self.server(config) else {
            self.refuse_without_server()?;
            return Ok(None);
        };
        if !server.starts_with("http://") && !server.starts_with("https://") {
            bail!("--server {server:?} is not an http:// or https:// URL; give the API's base URL, e.g. http://gpu-box:8000/v1");
        }
        let api_key_env = self
            .api_key_env
            .clone()
            .or_else(|| config.api_key_env.clone());
        let api_key = match &api_key_env {
            Some(var) => Some(RemoteOptions::read_key(var)?),
            None => None,
        };
        Ok(Some(RemoteOptions {
            server,
            model,
            api_key,
            api_key_env,
            family: self.family.clone(),
            long_edge_cap,
            alpha,
            idle: self.idle_timeout.unwrap_or(config.idle_timeout),
        }))
    }
}
