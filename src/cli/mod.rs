//! Command-line front doors wiring the layers together.

pub mod ask;
pub mod chat;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "glimpse",
    version,
    about = "Ask Qwen-VL vision-language models about images, from the terminal",
    long_about = "glimpse runs Qwen2-VL, Qwen2.5-VL and Qwen3-VL models itself (CPU, or CUDA when built with --features cuda) from a local Hugging Face model directory. Without a command it opens the chat (same as `glimpse chat`).",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `glimpse --model DIR` is `glimpse chat --model DIR`.
    #[command(flatten)]
    pub chat: Option<chat::ChatArgs>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The full-screen chat (the default without a command).
    Chat(chat::ChatArgs),
    /// Ask one question (or continue a conversation file) and print the answer.
    Ask(ask::AskArgs),
}

/// Runs the command line; returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Chat(args)) => chat::run(args),
        Some(Command::Ask(args)) => ask::run(args),
        None => match cli.chat {
            Some(args) => chat::run(args),
            None => Err(anyhow::anyhow!(
                "give a model directory: glimpse --model DIR (see glimpse --help)"
            )),
        },
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
