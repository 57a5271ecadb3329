//! The list of saved sessions over the chat: open it, move, open one.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::{App, Dialog, Flash};
use crate::session::store::Listing;
use crate::tui::keymap::Action;
use crate::tui::msg::Cmd;
use crate::tui::session_keeper::SessionCmd;

/// The overlay's state: the folder's sessions once read, and the row chosen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionList {
    /// `None` while the folder is being read.
    pub listing: Option<Result<Listing, String>>,
    /// Index into the rows: readable sessions first, then unreadable files.
    pub selected: usize,
}

impl SessionList {
    pub fn rows(&self) -> usize {
        match &self.listing {
            Some(Ok(l)) => l.sessions.len() + l.unreadable.len(),
            _ => 0,
        }
    }
}

impl App {
    pub(super) fn open_session_list(&mut self, cmds: &mut Vec<Cmd>) {
        self.dialog = Dialog::Sessions(SessionList::default());
        self.browsing = false;
        cmds.push(Cmd::Session(SessionCmd::List));
    }

    pub(super) fn on_listing(&mut self, listing: Result<Box<Listing>, String>) {
        if let Some(list) = self.dialog.session_list_mut() {
            // The session held now is the one to come back to.
            let current = self.session_id.as_deref();
            list.selected = match (&listing, current) {
                (Ok(l), Some(id)) => l.sessions.iter().position(|s| s.id == id).unwrap_or(0),
                _ => 0,
            };
            list.listing = Some(listing.map(|l| *l));
        }
    }

    pub(super) fn on_session_list_key(&mut self, key: KeyEvent, cmds: &mut Vec<Cmd>) {
        let Some(list) = self.dialog.session_list_mut() else {
            return;
        };
        let rows = list.rows();
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Esc | KeyCode::Char('q') => self.dialog.close(),
            KeyCode::Char('c') | KeyCode::Char('g') if ctrl => self.dialog.close(),
            KeyCode::Up | KeyCode::Char('k') => list.selected = list.selected.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => {
                list.selected = (list.selected + 1).min(rows.saturating_sub(1))
            }
            KeyCode::PageUp => list.selected = list.selected.saturating_sub(10),
            KeyCode::PageDown => list.selected = (list.selected + 10).min(rows.saturating_sub(1)),
            KeyCode::Home => list.selected = 0,
            KeyCode::End => list.selected = rows.saturating_sub(1),
            KeyCode::Enter => self.open_selected_session(cmds),
            _ => match self.keymap.lookup(&key, true, false) {
                Some(Action::Quit) => self.act(Action::Quit, cmds),
                Some(Action::SessionList) => self.dialog.close(),
                _ => {}
            },
        }
    }

    fn open_selected_session(&mut self, cmds: &mut Vec<Cmd>) {
        let Some(SessionList {
            listing: Some(Ok(listing)),
            selected,
        }) = self.dialog.session_list()
        else {
            return;
        };
        let selected = *selected;
        if let Some(summary) = listing.sessions.get(selected) {
            if self.is_generating() {
                self.flash = Some(Flash::Error("Esc stops the answer first".into()));
                return;
            }
            let id = summary.id.clone();
            self.dialog.close();
            if self.session_id.as_deref() == Some(id.as_str()) {
                self.flash = Some(Flash::Info("this is the conversation on screen".into()));
                return;
            }
            // Whatever is on screen was saved with its last turn.
            cmds.push(Cmd::Session(SessionCmd::Open(id)));
        } else if let Some(problem) = listing.unreadable.get(selected - listing.sessions.len()) {
            self.flash = Some(Flash::Error(problem.to_string()));
        }
    }
}
