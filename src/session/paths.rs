//! Where glimpse keeps its files: the platform's config and data folders, each
//! overridable from the environment (scripts and tests point them elsewhere).

use std::path::PathBuf;

/// Full path of the config file to read instead of the platform one.
pub const CONFIG_ENV: &str = "GLIMPSE_CONFIG";
/// Folder to keep sessions in instead of the platform data folder.
pub const DATA_DIR_ENV: &str = "GLIMPSE_DATA_DIR";

fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", "glimpse")
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The config folder: `$XDG_CONFIG_HOME/glimpse` on Linux, the Application
/// Support folder on macOS, `%APPDATA%` on Windows. User themes live here too.
pub fn config_dir() -> Option<PathBuf> {
    match env_path(CONFIG_ENV) {
        Some(file) => file.parent().map(PathBuf::from),
        None => project_dirs().map(|d| d.config_dir().to_path_buf()),
    }
}

/// Where the user's own theme files go (`<config dir>/themes`).
pub fn themes_dir() -> Option<PathBuf> {
    config_dir().map(|d| d.join("themes"))
}

/// The config file glimpse reads, whether or not it exists.
pub fn config_file() -> Option<PathBuf> {
    env_path(CONFIG_ENV).or_else(|| project_dirs().map(|d| d.config_dir().join("config.toml")))
}

/// The data folder: `$XDG_DATA_HOME/glimpse` on Linux.
pub fn data_dir() -> Option<PathBuf> {
    env_path(DATA_DIR_ENV).or_else(|| project_dirs().map(|d| d.data_dir().to_path_buf()))
}

/// Where quantised weights are cached (`<data dir>/quantised`); deleting
/// it only costs the next quantising load.
pub fn weights_cache_dir() -> Option<PathBuf> {
    data_dir().map(|d| d.join("quantised"))
}

/// Where conversations are saved.
pub fn sessions_dir() -> Option<PathBuf> {
    data_dir().map(|d| d.join("sessions"))
}
