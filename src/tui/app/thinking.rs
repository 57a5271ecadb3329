//! Thinking in the chat: the choice for the next answers (preset, config,
//! `/think`, a key), what the loaded checkpoint makes of it, and the
//! reasoning blocks shown in full or as one line.

use super::{App, Flash};
use crate::engine::ThinkingMode;
use crate::tui::msg::Cmd;

impl App {
    /// What the loaded checkpoint does about thinking; `None` until loaded.
    pub fn thinking_mode(&self) -> Option<ThinkingMode> {
        self.ready().map(|r| r.info.thinking)
    }

    /// On or off for the next answers; `None` leaves it to the checkpoint.
    pub fn thinking_choice(&self) -> Option<bool> {
        self.settings.thinking.or(self.thinking_default)
    }

    /// What the engine is sent as `enable_thinking`.
    pub(super) fn thinking_for_request(&self) -> Option<bool> {
        let mode = self.thinking_mode().unwrap_or(ThinkingMode::None);
        mode.apply(self.thinking_choice()).0
    }

    /// `think on`, `think off` or `think always` for the status line; `None`
    /// for checkpoints without thinking.
    pub fn thinking_label(&self) -> Option<String> {
        match self.thinking_mode()? {
            ThinkingMode::None => None,
            mode => Some(format!("think {}", mode.label(self.thinking_choice()))),
        }
    }

    /// `/think on|off`, or the key (`None` switches). The session keeps the
    /// choice, so a resumed conversation goes on with it.
    pub(super) fn set_thinking(&mut self, on: Option<bool>, cmds: &mut Vec<Cmd>) {
        let Some(mode) = self.thinking_mode() else {
            self.flash = Some(Flash::Error(
                "the model is not loaded yet; thinking can be switched once it is".into(),
            ));
            return;
        };
        let on = on.unwrap_or(!mode.thinks(self.thinking_choice()));
        if let (_, Some(notice)) = mode.apply(Some(on)) {
            self.flash = Some(Flash::Error(notice));
            return;
        }
        self.settings.thinking = Some(on);
        self.flash = Some(Flash::Info(format!(
            "thinking {} for the next answers",
            if on { "on" } else { "off" }
        )));
        self.save_session(cmds);
    }

    /// `/think` with its argument.
    pub(super) fn think_command(&mut self, arg: &str, cmds: &mut Vec<Cmd>) {
        if arg.is_empty() {
            return self.set_thinking(None, cmds);
        }
        match crate::processor::thinking::parse_switch(arg) {
            Ok(on) => self.set_thinking(Some(on), cmds),
            Err(e) => self.flash = Some(Flash::Error(format!("/think on|off: {e}"))),
        }
    }

    /// Shows finished reasoning in full, or as its one-line heading.
    pub(super) fn toggle_reasoning(&mut self) {
        self.reasoning_expanded = !self.reasoning_expanded;
        self.flash = Some(Flash::Info(
            if self.reasoning_expanded {
                "reasoning shown in full"
            } else {
                "reasoning folded to one line"
            }
            .into(),
        ));
    }
}
