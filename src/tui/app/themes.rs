//! Switching colour themes while the chat runs.

use super::{App, Flash};
use crate::tui::theme::Theme;
use crate::tui::theme_file::pick;

impl App {
    /// Alt+T: the next theme that can be read, after the one in use.
    pub(super) fn cycle_theme(&mut self) {
        let usable: Vec<&Theme> = self
            .themes
            .iter()
            .filter_map(|c| c.theme.as_ref().ok())
            .collect();
        if usable.is_empty() {
            return;
        }
        let at = usable.iter().position(|t| t.name == self.theme.name);
        let next = usable[at.map_or(0, |i| (i + 1) % usable.len())].clone();
        self.set_theme(next);
    }

    /// `/theme NAME` picks one; `/theme` alone lists them.
    pub(super) fn theme_command(&mut self, name: &str) {
        if name.is_empty() {
            let names: Vec<&str> = self.themes.iter().map(|t| t.name.as_str()).collect();
            self.flash = Some(Flash::Info(format!(
                "themes: {} (now {}); /theme NAME switches",
                names.join(", "),
                self.theme.name
            )));
            return;
        }
        match pick(&self.themes, name) {
            Ok(theme) => self.set_theme(theme),
            Err(e) => self.flash = Some(Flash::Error(e.to_string())),
        }
    }

    fn set_theme(&mut self, theme: Theme) {
        self.flash = Some(Flash::Info(format!("theme {}", theme.name)));
        self.theme = theme;
        self.input.set_placeholder_style(self.theme.dim);
    }
}
