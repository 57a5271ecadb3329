//! `glimpse sessions`: the saved conversations, newest first, with the ids
//! `glimpse chat --resume ID` takes.

use clap::Args;

use crate::human::printable;
use crate::session::SessionStore;

#[derive(Debug, Args)]
pub struct SessionsArgs {}

pub fn run(_args: SessionsArgs) -> anyhow::Result<i32> {
    let store = SessionStore::open_default()?;
    let listing = store.list()?;
    if listing.sessions.is_empty() && listing.unreadable.is_empty() {
        println!("no saved sessions in {} yet", store.dir().display());
        return Ok(0);
    }
    for s in &listing.sessions {
        println!(
            "{}  {}  {:>3} turn{}  {}  {}",
            printable(&s.id),
            s.updated.human(),
            s.turns,
            if s.turns == 1 { " " } else { "s" },
            printable(&s.model),
            printable(&s.title)
        );
    }
    for problem in &listing.unreadable {
        println!("unreadable: {}", printable(&problem.to_string()));
    }
    println!(
        "{} — `glimpse chat --resume ID` continues one (a unique start of the id is enough)",
        store.dir().display()
    );
    Ok(0)
}
