//! `glimpse serve`: the model behind an OpenAI-compatible API, on loopback
//! unless told otherwise; beyond loopback only with a key (or `--no-auth`).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use anyhow::bail;
use clap::Args;

use super::ask::{parse_cap, CapArg};
use super::model_arg::{announce, load_with_readings, ModelFlags};
use crate::engine::KvCachePolicy;
use crate::remote::RemoteOptions;
use crate::serve::ServeOptions;
use crate::session::Config;

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelFlags,
    /// Address to listen on; anything but loopback needs --api-key-env or --no-auth.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to listen on (0 picks a free one, said on stderr).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Environment variable holding the API key clients must send as
    /// `Authorization: Bearer KEY` (never the key itself on the command line).
    #[arg(long = "api-key-env", value_name = "VAR")]
    pub api_key_env: Option<String>,
    /// Serve beyond loopback without a key (anyone who can reach the port can use the model).
    #[arg(long = "no-auth", conflicts_with = "api_key_env")]
    pub no_auth: bool,
    /// Context to reserve and allow (default: the model's, at most 32768).
    #[arg(long = "max-context", value_name = "TOKENS", value_parser = crate::cli::model_arg::parse_max_context)]
    pub max_context: Option<usize>,
    /// KV cache: auto, f16 or int8 [default: the config's, else auto].
    #[arg(long = "kv-cache")]
    pub kv_cache: Option<KvCachePolicy>,
    /// Scale images whose long edge exceeds THRESHOLD down to TARGET px first
    /// ("THRESHOLD:TARGET", or "off") [default: the config's, else 2000:1920].
    #[arg(long = "long-edge-cap", value_parser = parse_cap)]
    pub long_edge_cap: Option<CapArg>,
}

pub fn run(args: ServeArgs) -> anyhow::Result<i32> {
    let config = Config::load()?;
    let api_key = match &args.api_key_env {
        Some(var) => Some(RemoteOptions::read_key(var)?),
        None => None,
    };
    if !args.host.is_loopback() && api_key.is_none() {
        if !args.no_auth {
            bail!(
                "listening on {} lets anyone on the network use the model; pass --api-key-env VAR with a key in VAR, or --no-auth",
                args.host
            );
        }
        eprintln!(
            "glimpse: warning: serving on {} without an API key (--no-auth)",
            args.host
        );
    }
    let spec = args.model.spec(&config);
    let model_dir = args.model.resolve_dir(&config)?;
    let mut options = args.model.engine_options(&config, model_dir);
    options.max_context = args.max_context;
    if let Some(policy) = args.kv_cache {
        options.kv_cache = policy;
    }
    if let Some(cap) = args.long_edge_cap {
        options.long_edge_cap = cap.0;
    }
    let (engine, _sampler) = load_with_readings(options)?;
    announce(engine.info());
    crate::serve::run(
        engine,
        ServeOptions {
            addr: SocketAddr::new(args.host, args.port),
            model_id: served_name(&spec),
            api_key,
        },
    )?;
    Ok(0)
}

/// A hub id is served under its name; a directory under its folder's name.
fn served_name(spec: &str) -> String {
    let path = Path::new(spec);
    if path.is_dir() {
        if let Some(name) = path.file_name() {
            return name.to_string_lossy().into_owned();
        }
    }
    spec.to_string()
}
