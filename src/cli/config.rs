//! `glimpse config`: where the config file is, a commented default to start
//! from, and a check of the current file.

use std::io::Write;

use clap::Args;

use super::look::{broken_themes, look};
use super::output;
use crate::session::config::DEFAULT_FILE;
use crate::session::{paths, Config};

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Print a commented config file with every setting at its default.
    #[arg(long, conflicts_with = "path")]
    pub print_default: bool,
    /// Print where the config file is read from (set GLIMPSE_CONFIG to move it).
    #[arg(long)]
    pub path: bool,
}

pub fn run(args: ConfigArgs) -> anyhow::Result<i32> {
    let mut out = output::stdout();
    if args.print_default {
        out.write_all(DEFAULT_FILE.as_bytes())?;
        out.flush()?;
        return Ok(0);
    }
    let path = paths::config_file().ok_or_else(|| {
        anyhow::anyhow!(
            "no config folder on this system; set {} to a file path",
            paths::CONFIG_ENV
        )
    })?;
    if args.path {
        writeln!(out, "{}", path.display())?;
        return Ok(0);
    }
    if !path.exists() {
        writeln!(
            out,
            "{} does not exist: built-in defaults apply.\nStart one with: glimpse config --print-default > \"{}\"",
            path.display(),
            path.display()
        )?;
        return Ok(0);
    }
    let config = Config::load_from(&path)?;
    // The chat's own check, so "valid" means the chat opens with this file.
    let look = look(&config, None)?;
    let broken = broken_themes(&look.themes);
    if !broken.is_empty() {
        for line in &broken[1..] {
            eprintln!("error: {line}");
        }
        anyhow::bail!("{}", broken[0]);
    }
    let presets: Vec<&str> = config.presets.iter().map(|p| p.name.as_str()).collect();
    writeln!(out, "{} is valid.", path.display())?;
    writeln!(out, "model:   {}", config.model)?;
    writeln!(
        out,
        "preset:  {} (of {})",
        config.preset,
        presets.join(", ")
    )?;
    writeln!(out, "theme:   {}", config.theme)?;
    if !config.keys.is_empty() {
        let actions: Vec<&str> = config.keys.keys().map(String::as_str).collect();
        writeln!(out, "keys:    rebinds {}", actions.join(", "))?;
    }
    Ok(0)
}
