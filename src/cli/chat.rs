//! `glimpse` / `glimpse chat`: the full-screen chat on a local model.

use std::path::PathBuf;

use clap::Args;

use super::ask::{parse_cap, CapArg};
use crate::engine::{DeviceChoice, DtypeChoice, EngineOptions};
use crate::processor::image::AlphaMode;
use crate::tui::{ChatOptions, ImageProtocolChoice};

#[derive(Debug, Args)]
pub struct ChatArgs {
    /// Local model directory (config.json, safetensors, tokenizer.json, ...).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// auto, cpu or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// auto (bf16 on CUDA, f32 on CPU), f32, bf16 or f16.
    #[arg(long, default_value = "auto")]
    pub dtype: DtypeChoice,
    /// How image previews are drawn: auto detects kitty, iTerm2 or sixel and
    /// falls back to Unicode half-blocks, which work in any terminal.
    #[arg(
        long = "image-protocol",
        default_value = "auto",
        value_name = "auto|kitty|iterm2|sixel|halfblocks"
    )]
    pub image_protocol: ImageProtocolChoice,
    /// Limit the context below the model's maximum; the oldest turns are
    /// left out (with a notice) when the conversation outgrows it.
    #[arg(long = "max-context", value_name = "TOKENS")]
    pub max_context: Option<usize>,
    /// Scale images whose long edge exceeds THRESHOLD down to TARGET px first
    /// ("THRESHOLD:TARGET", or "off").
    #[arg(long = "long-edge-cap", default_value = "2000:1920", value_parser = parse_cap)]
    pub long_edge_cap: CapArg,
}

pub fn run(args: ChatArgs) -> anyhow::Result<i32> {
    let options = ChatOptions {
        engine: EngineOptions {
            model_dir: args.model,
            device: args.device,
            dtype: args.dtype,
            long_edge_cap: args.long_edge_cap.0,
            max_context: args.max_context,
            alpha: AlphaMode::White,
            ..EngineOptions::new(PathBuf::new())
        },
        image_protocol: args.image_protocol,
    };
    crate::tui::run(options)
}
