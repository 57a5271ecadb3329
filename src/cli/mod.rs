//! Command-line front doors wiring the layers together.

pub mod ask;
pub mod bench;
pub mod config;
pub mod devices;
pub mod eval;
pub mod grounding;
pub mod model_arg;
pub mod models;
pub mod progress;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "glimpse",
    version,
    about = "Ask Qwen-VL vision-language models about images, from the terminal",
    long_about = "glimpse runs Qwen2-VL, Qwen2.5-VL and Qwen3-VL models itself (CPU, or CUDA when built with --features cuda) from a local Hugging Face model directory or a hub id found in (or downloaded to) the Hugging Face cache."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per run, so the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ask one question (or continue a conversation file) and print the answer.
    Ask(Box<ask::AskArgs>),
    /// Measure vision, prefill, first-token and decode speed on one image.
    Bench(bench::BenchArgs),
    /// Score a model on a JSONL suite of image questions, per category; or
    /// draw a synthetic suite with --make-suite.
    Eval(eval::EvalArgs),
    /// List the known models and those already in the Hugging Face cache.
    Models(models::ModelsArgs),
    /// Show where the config file is, check it, or print a commented default.
    Config(config::ConfigArgs),
    /// Show the GPUs (or the CPU) as glimpse sees them: the GPU pane, or JSON samples.
    Devices(devices::DevicesArgs),
}

/// Runs the command line; returns the process exit code.
pub fn main() -> i32 {
    // CUDA numbers devices fastest first unless told otherwise; NVML, whose
    // numbers the device choice and the GPU pane use, goes by PCI bus. Set
    // before any thread starts and before CUDA is touched.
    if std::env::var_os("CUDA_DEVICE_ORDER").is_none() {
        std::env::set_var("CUDA_DEVICE_ORDER", "PCI_BUS_ID");
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ask(args) => ask::run(*args),
        Command::Bench(args) => bench::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Models(args) => models::run(args),
        Command::Config(args) => config::run(args),
        Command::Devices(args) => devices::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            1
        }
    }
}

/// The whole error chain on one line, outermost first, without repeats.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ").replace('\n', " ")
}
