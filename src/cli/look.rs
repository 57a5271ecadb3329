//! The chat's keys and theme from the config file (and `--theme`), checked
//! by one function for both the chat and `glimpse config`, so the check never
//! says "valid" for a file the chat refuses.

use crate::session::config::Config;
use crate::tui::keymap::Keymap;
use crate::tui::theme::Theme;
use crate::tui::theme_file::{self, ThemeChoice, ThemeError};

pub struct Look {
    pub keymap: Keymap,
    pub theme: Theme,
    /// Every theme the chat can switch to, broken theme files included.
    pub themes: Vec<ThemeChoice>,
}

/// The keymap with the file's `[keys]` applied and the theme the chat opens
/// with; a mistake written in the file is reported at its line.
pub fn look(config: &Config, theme_flag: Option<&str>) -> anyhow::Result<Look> {
    let keymap = Keymap::builtin()
        .with_overrides(&config.keys)
        .map_err(|e| config.error_at(config.spots.keys.get(&e.name).copied(), e.to_string()))?;
    let themes = theme_file::available();
    let theme = match theme_flag {
        Some(name) => theme_file::pick(&themes, name)?,
        None => theme_file::pick(&themes, &config.theme).map_err(|e| match e {
            ThemeError::Unknown { .. } => config.error_at(config.spots.theme, e.to_string()).into(),
            other => anyhow::Error::from(other),
        })?,
    };
    Ok(Look {
        keymap,
        theme,
        themes,
    })
}

/// Theme files the chat would refuse to switch to, as one-line errors.
pub fn broken_themes(themes: &[ThemeChoice]) -> Vec<String> {
    themes
        .iter()
        .filter_map(|t| t.theme.as_ref().err().map(ToString::to_string))
        .collect()
}
