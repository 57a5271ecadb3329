//! `--thinking on|off`, shared by `ask`, `eval` and the chat, and the one
//! way a choice meets what the checkpoint can do.

use clap::Args;

use crate::engine::ThinkingMode;
use crate::processor::thinking::parse_switch;

#[derive(Debug, Default, Clone, Args)]
pub struct ThinkingFlag {
    /// Thinking on or off, for checkpoints whose template can switch it
    /// (Qwen3.5) [default: the config's `thinking`, else the checkpoint's
    /// own].
    #[arg(long, value_name = "on|off", value_parser = parse_switch)]
    pub thinking: Option<bool>,
}

impl ThinkingFlag {
    /// The flag over `fallback` (a preset's or the config's choice).
    pub fn or(&self, fallback: Option<bool>) -> Option<bool> {
        self.thinking.or(fallback)
    }
}

/// What to send the engine for `choice`; a choice the checkpoint cannot
/// follow is said once on stderr instead of pretending.
pub fn for_engine(mode: ThinkingMode, choice: Option<bool>) -> Option<bool> {
    let (pass, notice) = mode.apply(choice);
    if let Some(notice) = notice {
        eprintln!("glimpse: {notice}");
    }
    pass
}
