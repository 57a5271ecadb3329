//! How facts are worded for people: an error chain as one line, byte counts
//! as KiB/MiB/GiB, text from files made safe to print. Every front door (the
//! chat, `ask`, `models`, `sessions`, the GPU pane) says these the same way, so
//! they live below all of them.

use std::borrow::Cow;

/// Lower-case hex of `bytes` (digests in files and names).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The whole error chain on one line, outermost first, without repeats.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ").replace('\n', " ")
}

/// `text` as it can go to a terminal: control characters (escape sequences
/// that would retitle the window, clear the screen or recolour it, line
/// breaks, tabs) and the marks that reorder text right-to-left are shown as
/// escapes like `\x1b` instead of acting. Plain spaces and all other
/// characters are kept.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(acts_on_terminal) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if !acts_on_terminal(c) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    Cow::Owned(out)
}

fn acts_on_terminal(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

pub const MIB: f64 = 1024.0 * 1024.0;
pub const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// `8.3 GiB`, `512.0 MiB`, `12 B`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `12.3 GiB`, or `456 MiB` under a GiB: memory as the GPU pane shows it.
pub fn gib(bytes: u64) -> String {
    if (bytes as f64) < GIB {
        format!("{:.0} MiB", bytes as f64 / MIB)
    } else {
        format!("{:.1} GiB", bytes as f64 / GIB)
    }
}

/// Bytes in MiB with one decimal, for a before → after comparison.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(8_875_631_616), "8.3 GiB");
        assert_eq!(gib(512 << 20), "512 MiB");
        assert_eq!(gib(3 << 30), "3.0 GiB");
        assert_eq!(mib(3 << 19), "1.5 MiB");
    }

    #[test]
    fn text_from_files_cannot_drive_the_terminal() {
        assert!(matches!(printable("Shelf 3: café ✓"), Cow::Borrowed(_)));
        assert_eq!(
            printable("\x1b]0;pwned\x07\x1b[2J\x1b[31mred"),
            "\\x1b]0;pwned\\x07\\x1b[2J\\x1b[31mred"
        );
        assert_eq!(printable("a\tb\r\nc\u{7f}"), "a\\tb\\r\\nc\\x7f");
        assert_eq!(printable("\u{9b}31m"), "\\x9b31m");
        assert_eq!(printable("abc\u{202e}fed"), "abc\\u{202e}fed");
    }

    #[test]
    fn an_error_chain_is_one_line_without_repeats() {
        let e = anyhow::anyhow!("disk full\nretry later")
            .context("writing x.json")
            .context("saving the session");
        assert_eq!(
            one_line(&e),
            "saving the session: writing x.json: disk full retry later"
        );
    }
}
