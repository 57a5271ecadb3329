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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_command_means_chat_and_ask_keeps_its_flags() {
        let cli =
            Cli::try_parse_from(["glimpse", "--model", "m", "--image-protocol", "halfblocks"])
                .unwrap();
        assert!(cli.command.is_none());
        let chat = cli.chat.expect("chat arguments at the top level");
        assert_eq!(chat.model, std::path::PathBuf::from("m"));
        assert_eq!(
            chat.image_protocol,
            crate::tui::ImageProtocolChoice::Halfblocks
        );

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

        let e = Cli::try_parse_from(["glimpse", "--model", "m", "--image-protocol", "png"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("use auto, kitty, iterm2, sixel or halfblocks"),
            "{e}"
        );
    }
}
