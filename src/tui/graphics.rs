//! Which graphics protocol the terminal speaks, asked on the alternate
//! screen before raw input starts. The query (kitty graphics, device
//! attributes, cell size, then a status report every terminal answers) goes
//! through tmux's passthrough inside tmux. Answers are read with a deadline
//! and no reader is left behind: a thread still blocked on stdin after a
//! timeout would steal the user's first keys.

use std::io::Write;
use std::time::{Duration, Instant};

use ratatui_image::picker::cap_parser::{Parser, QueryStdioOptions, Response};
use ratatui_image::picker::{Picker, ProtocolType};

use crate::session::config::ImageProtocol;

/// Longest the terminal gets to answer; a terminal answers in milliseconds,
/// over a slow SSH link in one round trip.
const ANSWER_DEADLINE: Duration = Duration::from_millis(1500);

/// Used when the terminal reports no cell size: roughly 1:2, as most fonts.
const DEFAULT_CELL: (u16, u16) = (10, 20);

/// What the terminal said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answers {
    pub kitty: bool,
    pub sixel: bool,
    pub cell: Option<(u16, u16)>,
    /// The closing status report arrived (the terminal answered at all).
    pub complete: bool,
}

/// Reads the parser's responses into [`Answers`].
pub fn parse_answers(bytes: &[u8]) -> Answers {
    let mut parser = Parser::new();
    let mut a = Answers::default();
    for &b in bytes {
        for r in parser.push(char::from(b)) {
            match r {
                Response::Kitty => a.kitty = true,
                Response::Sixel => a.sixel = true,
                Response::CellSize(Some(c)) => a.cell = Some(c),
                Response::Status => a.complete = true,
                _ => {}
            }
        }
    }
    a
}

fn in_tmux() -> bool {
    std::env::var("TERM").is_ok_and(|t| t.starts_with("tmux"))
        || std::env::var("TERM_PROGRAM").is_ok_and(|t| t == "tmux")
}

/// WezTerm and Konsole claim kitty graphics but draw them wrongly.
fn kitty_and_sixel_unreliable() -> bool {
    ["WEZTERM_EXECUTABLE", "KONSOLE_VERSION"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|s| !s.is_empty()))
}

/// The protocol for previews: detected, or forced by `--image-protocol`.
pub fn pick(choice: ImageProtocol) -> Picker {
    pick_with(choice, true)
}

/// [`pick`], asking the terminal only when `ask_terminal`: it must be where
/// stdout goes and where stdin comes from, or the query would land in a
/// pipe and the answers never arrive. Without asking, the protocol is the
/// forced one, else iTerm2 when the environment names it, else half-blocks.
pub fn pick_with(choice: ImageProtocol, ask_terminal: bool) -> Picker {
    if choice == ImageProtocol::Halfblocks {
        return Picker::halfblocks();
    }
    let answers = ask_terminal
        .then(query_terminal)
        .flatten()
        .unwrap_or_default();
    let cell = answers
        .cell
        .or_else(cell_from_window)
        .unwrap_or(DEFAULT_CELL);
    // Also turns on tmux's allow-passthrough, and guesses iTerm2 from the
    // environment (the iTerm2 protocol has no query).
    #[allow(deprecated)]
    let mut picker = Picker::from_fontsize(cell);
    let detected = if kitty_and_sixel_unreliable() {
        None
    } else if answers.kitty {
        Some(ProtocolType::Kitty)
    } else if answers.sixel {
        Some(ProtocolType::Sixel)
    } else {
        None
    };
    let forced = match choice {
        ImageProtocol::Kitty => Some(ProtocolType::Kitty),
        ImageProtocol::Iterm2 => Some(ProtocolType::Iterm2),
        ImageProtocol::Sixel => Some(ProtocolType::Sixel),
        _ => None,
    };
    if let Some(p) = forced.or(detected) {
        picker.set_protocol_type(p);
    }
    picker
}

fn cell_from_window() -> Option<(u16, u16)> {
    let w = ratatui::crossterm::terminal::window_size().ok()?;
    (w.width > 0 && w.height > 0 && w.columns > 0 && w.rows > 0)
        .then(|| (w.width / w.columns, w.height / w.rows))
}

/// Asks the terminal, in raw mode for the length of the query; the mode it
/// was in is restored after.
#[cfg(unix)]
fn query_terminal() -> Option<Answers> {
    use ratatui::crossterm::terminal::{disable_raw_mode, enable_raw_mode, is_raw_mode_enabled};
    let was_raw = is_raw_mode_enabled().unwrap_or(false);
    // Raw mode, so the answers are neither echoed nor held for a newline.
    enable_raw_mode().ok()?;
    let answers = read_answers();
    if !was_raw {
        let _ = disable_raw_mode();
    }
    answers
}

#[cfg(unix)]
fn read_answers() -> Option<Answers> {
    use std::os::fd::AsRawFd;
    let query = Parser::query(in_tmux(), QueryStdioOptions::default());
    let mut out = std::io::stdout();
    out.write_all(query.as_bytes()).ok()?;
    out.flush().ok()?;
    let fd = std::io::stdin().as_raw_fd();
    let start = Instant::now();
    let mut bytes = Vec::new();
    loop {
        let left = ANSWER_DEADLINE.saturating_sub(start.elapsed());
        if left.is_zero() {
            break;
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(&mut pfd, 1, left.as_millis() as libc::c_int) };
        if ready <= 0 {
            break;
        }
        let mut buf = [0u8; 256];
        // SAFETY: reads at most buf.len() bytes into buf; poll said data is waiting.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        bytes.extend_from_slice(&buf[..n as usize]);
        if parse_answers(&bytes).complete {
            break;
        }
    }
    Some(parse_answers(&bytes))
}

#[cfg(not(unix))]
fn query_terminal() -> Option<Answers> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kitty_sixel_and_cell_size_are_read_from_the_answers() {
        let kitty = parse_answers(b"\x1b_Gi=31;OK\x1b\\\x1b[6;20;10t\x1b[0n");
        assert!(kitty.kitty && kitty.complete);
        assert_eq!(kitty.cell, Some((10, 20)));
        let sixel = parse_answers(b"\x1b[?62;4;22c\x1b[0n");
        assert!(sixel.sixel && !sixel.kitty && sixel.complete);
        let plain = parse_answers(b"\x1b[?62;22c\x1b[0n");
        assert_eq!(
            plain,
            Answers {
                complete: true,
                ..Default::default()
            }
        );
        assert!(!parse_answers(b"").complete);
    }
}
