//! `glimpse sessions`: the saved conversations, newest first, with the ids
//! `glimpse chat --resume ID` takes.

use std::io::Write;

use clap::Args;

use super::output;
use crate::human::printable;
use crate::session::SessionStore;

#[derive(Debug, Args)]
pub struct SessionsArgs {}

pub fn run(_args: SessionsArgs) -> anyhow::Result<i32> {
    let store = SessionStore::open_default()?;
    let listing = store.list()?;
    let mut out = output::stdout();
    if listing.sessions.is_empty() && listing.unreadable.is_empty() {
        writeln!(out, "no saved sessions in {} yet", store.dir().display())?;
        return Ok(0);
    }
    for s in &listing.sessions {
        writeln!(
            out,
            "{}  {}  {:>3} turn{}  {}  {}",
            printable(&s.id),
            s.updated.human(),
            s.turns,
            if s.turns == 1 { " " } else { "s" },
            printable(&s.model),
            printable(&s.title)
        )?;
    }
    for problem in &listing.unreadable {
        writeln!(out, "unreadable: {}", printable(&problem.to_string()))?;
    }
    writeln!(
        out,
        "{} — `glimpse chat --resume ID` continues one (a unique start of the id is enough)",
        store.dir().display()
    )?;
    Ok(0)
}
