//! Command-line front doors wiring the layers together.

pub mod ask;
pub mod bench;
pub mod chat;
pub mod config;
pub mod devices;
pub mod eval;
pub mod grounding;
pub mod look;
pub mod model_arg;
pub mod models;
pub mod output;
pub mod progress;
pub mod remote_arg;
pub mod sampling_arg;
pub mod serve;
pub mod sessions;
pub mod show;
pub mod thinking_arg;

use clap::{Parser, Subcommand};

use crate::human::one_line;

#[derive(Debug, Parser)]
#[command(
    name = "glimpse",
    version,
    about = "Ask Qwen-VL vision-language models about images, from the terminal",
    long_about = "glimpse runs Qwen2-VL, Qwen2.5-VL and Qwen3-VL models itself (CPU, or CUDA when built with --features cuda) from a local Hugging Face model directory or a hub id found in (or downloaded to) the Hugging Face cache. Without a command it opens the chat (same as `glimpse chat`).",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `glimpse [--model DIR|ORG/NAME]` is `glimpse chat [--model ...]`.
    #[command(flatten)]
    pub chat: chat::ChatArgs,
}

// Parsed once per run, so the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The full-screen chat (the default without a command).
    Chat(chat::ChatArgs),
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
    /// Serve the model over an OpenAI-compatible HTTP API (/v1/chat/completions).
    Serve(serve::ServeArgs),
    /// List the saved chat sessions, newest first (`glimpse chat --resume ID` continues one).
    Sessions(sessions::SessionsArgs),
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
        Some(Command::Chat(args)) => chat::run(args),
        Some(Command::Ask(args)) => ask::run(*args),
        Some(Command::Bench(args)) => bench::run(args),
        Some(Command::Eval(args)) => eval::run(args),
        Some(Command::Models(args)) => models::run(args),
        Some(Command::Config(args)) => config::run(args),
        Some(Command::Devices(args)) => devices::run(args),
        Some(Command::Sessions(args)) => sessions::run(args),
        Some(Command::Serve(args)) => serve::run(args),
        // Without flags, the model comes from the config (or the default).
        None => chat::run(cli.chat),
    };
    match result {
        Ok(code) => code,
        Err(e) if output::reader_left(&e) => 0,
        Err(e) => {
            // Not eprintln!: with the terminal gone it would panic.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "error: {}", one_line(&e));
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_context_too_small_for_any_answer_is_refused() {
        for tiny in ["0", "1", "127"] {
            for command in ["chat", "ask"] {
                let err = Cli::try_parse_from(["glimpse", command, "--max-context", tiny])
                    .expect_err(tiny)
                    .to_string();
                assert!(err.contains("use at least 128"), "{command} {tiny}: {err}");
            }
        }
        assert!(Cli::try_parse_from(["glimpse", "chat", "--max-context", "128"]).is_ok());
    }

    #[test]
    fn no_command_means_chat_and_ask_keeps_its_flags() {
        let cli =
            Cli::try_parse_from(["glimpse", "--model", "m", "--image-protocol", "halfblocks"])
                .unwrap();
        assert!(cli.command.is_none());
        let chat = cli.chat;
        assert_eq!(chat.model.spec.as_deref(), Some("m"));
        assert_eq!(
            chat.image_protocol,
            Some(crate::session::config::ImageProtocol::Halfblocks)
        );
        // Without flags the chat still starts, on the config's model.
        let cli = Cli::try_parse_from(["glimpse"]).unwrap();
        assert!(cli.command.is_none() && cli.chat.model.spec.is_none());

        let cli = Cli::try_parse_from(["glimpse", "chat", "--model", "m", "--max-context", "4096"])
            .unwrap();
        let Some(Command::Chat(chat)) = cli.command else {
            panic!("glimpse chat parses as the chat");
        };
        assert_eq!(chat.max_context, Some(4096));

        let cli =
            Cli::try_parse_from(["glimpse", "ask", "--model", "m", "--prompt", "hi", "--json"])
                .unwrap();
        assert!(matches!(cli.command, Some(Command::Ask(ref a)) if a.json));

        // --resume takes an optional id; without one it means the latest.
        let cli = Cli::try_parse_from(["glimpse", "--resume"]).unwrap();
        assert_eq!(cli.chat.resume.as_deref(), Some("latest"));
        let cli = Cli::try_parse_from(["glimpse", "chat", "--resume", "2025"]).unwrap();
        let Some(Command::Chat(chat)) = cli.command else {
            panic!("glimpse chat --resume parses as the chat");
        };
        assert_eq!(chat.resume.as_deref(), Some("2025"));

        let e = Cli::try_parse_from(["glimpse", "--model", "m", "--image-protocol", "png"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("use auto, kitty, iterm2, sixel or halfblocks"),
            "{e}"
        );
    }
}
