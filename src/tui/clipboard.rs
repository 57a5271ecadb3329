//! Copying through the terminal with OSC 52, which works over SSH and, with
//! tmux's `set-clipboard`, inside tmux.

use base64::Engine as _;

/// The escape sequence that asks the terminal to put `text` on the clipboard.
pub fn osc52(text: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
    format!("\x1b]52;c;{b64}\x07")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osc52_wraps_base64_of_the_utf8_bytes() {
        assert_eq!(osc52("hi"), "\x1b]52;c;aGk=\x07");
        assert_eq!(osc52("é"), "\x1b]52;c;w6k=\x07");
    }
}
