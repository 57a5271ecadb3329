//! What sits over the conversation and takes the keys while it is open. At
//! most one thing can: one enum, rather than flags checked in some order.

use super::{PathPrompt, SessionList};

#[derive(Debug, Clone, Default, PartialEq)]
pub enum Dialog {
    #[default]
    None,
    /// The key help, scrolled this many lines.
    Help { scroll: u16 },
    /// The saved sessions.
    Sessions(SessionList),
    /// A one-line prompt for an image path (Ctrl+O).
    PathPrompt(PathPrompt),
}

impl Dialog {
    pub fn is_open(&self) -> bool {
        !matches!(self, Dialog::None)
    }

    pub fn is_help(&self) -> bool {
        matches!(self, Dialog::Help { .. })
    }

    pub fn help_scroll(&self) -> Option<u16> {
        match self {
            Dialog::Help { scroll } => Some(*scroll),
            _ => None,
        }
    }

    pub fn session_list(&self) -> Option<&SessionList> {
        match self {
            Dialog::Sessions(list) => Some(list),
            _ => None,
        }
    }

    pub fn session_list_mut(&mut self) -> Option<&mut SessionList> {
        match self {
            Dialog::Sessions(list) => Some(list),
            _ => None,
        }
    }

    pub fn path_prompt(&self) -> Option<&PathPrompt> {
        match self {
            Dialog::PathPrompt(p) => Some(p),
            _ => None,
        }
    }

    pub fn path_prompt_mut(&mut self) -> Option<&mut PathPrompt> {
        match self {
            Dialog::PathPrompt(p) => Some(p),
            _ => None,
        }
    }

    /// Scrolls the help by `lines` (negative: up); nothing else scrolls here.
    pub fn scroll_help(&mut self, lines: i32) {
        if let Dialog::Help { scroll } = self {
            *scroll = (*scroll as i32 + lines).clamp(0, u16::MAX as i32) as u16;
        }
    }

    pub fn close(&mut self) {
        *self = Dialog::None;
    }
}
