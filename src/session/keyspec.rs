//! Key specifications as users write them in the config: `ctrl+s`, `alt+enter`,
//! `shift+tab`, `f5`, `?`. Parsed for syntax only; the TUI maps them to its
//! terminal library's key events.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Modifiers {
    pub ctrl: bool,
    pub alt: bool,
    pub shift: bool,
    pub super_key: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    /// A printable character, as typed (`space` is `Char(' ')`).
    Char(char),
    /// Function key 1 to 24.
    F(u8),
    Enter,
    Esc,
    Tab,
    Backspace,
    Delete,
    Insert,
    Home,
    End,
    PageUp,
    PageDown,
    Up,
    Down,
    Left,
    Right,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeySpec {
    pub modifiers: Modifiers,
    pub key: Key,
}

/// Named keys, canonical spelling first among aliases.
const NAMED: &[(&str, Key)] = &[
    ("enter", Key::Enter),
    ("return", Key::Enter),
    ("esc", Key::Esc),
    ("escape", Key::Esc),
    ("tab", Key::Tab),
    ("backspace", Key::Backspace),
    ("delete", Key::Delete),
    ("del", Key::Delete),
    ("insert", Key::Insert),
    ("ins", Key::Insert),
    ("home", Key::Home),
    ("end", Key::End),
    ("pageup", Key::PageUp),
    ("pgup", Key::PageUp),
    ("pagedown", Key::PageDown),
    ("pgdn", Key::PageDown),
    ("up", Key::Up),
    ("down", Key::Down),
    ("left", Key::Left),
    ("right", Key::Right),
    ("space", Key::Char(' ')),
    ("plus", Key::Char('+')),
];

const KEY_HELP: &str = "use a single character, f1-f24, or one of enter, esc, tab, backspace, delete, insert, home, end, pageup, pagedown, up, down, left, right, space, plus";

fn parse_key(name: &str) -> Result<Key, String> {
    let mut chars = name.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        if c.is_control() || c.is_whitespace() {
            return Err(format!("key {name:?} is not printable; {KEY_HELP}"));
        }
        return Ok(Key::Char(c));
    }
    let lower = name.to_ascii_lowercase();
    if let Some((_, key)) = NAMED.iter().find(|(n, _)| *n == lower) {
        return Ok(*key);
    }
    if let Some(n) = lower.strip_prefix('f').and_then(|n| n.parse::<u8>().ok()) {
        if (1..=24).contains(&n) {
            return Ok(Key::F(n));
        }
    }
    if name.is_empty() {
        return Err(format!("no key after the modifiers; {KEY_HELP}"));
    }
    Err(format!("unknown key `{name}`; {KEY_HELP}"))
}

impl FromStr for KeySpec {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(format!("empty key; {KEY_HELP}"));
        }
        // A trailing '+' is the plus key itself ("ctrl++").
        let (mods, key) = match spec.strip_suffix("++") {
            Some(rest) => (Some(rest), "+"),
            None if spec == "+" => (None, "+"),
            None => match spec.rsplit_once('+') {
                Some((m, k)) => (Some(m), k),
                None => (None, spec),
            },
        };
        let mut modifiers = Modifiers::default();
        for m in mods.into_iter().flat_map(|m| m.split('+')) {
            let flag = match m.to_ascii_lowercase().as_str() {
                "ctrl" | "control" => &mut modifiers.ctrl,
                "alt" | "meta" | "option" => &mut modifiers.alt,
                "shift" => &mut modifiers.shift,
                "super" | "cmd" | "win" => &mut modifiers.super_key,
                _ => {
                    return Err(format!(
                        "unknown modifier `{m}` in {spec:?}; use ctrl, alt, shift or super"
                    ))
                }
            };
            if *flag {
                return Err(format!("modifier `{m}` appears twice in {spec:?}"));
            }
            *flag = true;
        }
        let key = parse_key(key).map_err(|e| format!("{spec:?}: {e}"))?;
        Ok(KeySpec { modifiers, key })
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.modifiers;
        for (on, name) in [
            (m.ctrl, "ctrl+"),
            (m.alt, "alt+"),
            (m.shift, "shift+"),
            (m.super_key, "super+"),
        ] {
            if on {
                f.write_str(name)?;
            }
        }
        match self.key {
            Key::Char(' ') => f.write_str("space"),
            Key::Char('+') => f.write_str("plus"),
            Key::Char(c) => write!(f, "{c}"),
            Key::F(n) => write!(f, "f{n}"),
            named => {
                let name = NAMED.iter().find(|(_, k)| *k == named).map(|(n, _)| *n);
                f.write_str(name.unwrap_or("?"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> KeySpec {
        s.parse().unwrap()
    }

    #[test]
    fn modifiers_and_named_keys_parse_case_insensitively() {
        let k = spec("Ctrl+Shift+PageUp");
        assert!(k.modifiers.ctrl && k.modifiers.shift && !k.modifiers.alt);
        assert_eq!(k.key, Key::PageUp);
        assert_eq!(spec("f5").key, Key::F(5));
        assert_eq!(spec("alt+return").key, Key::Enter);
    }

    #[test]
    fn single_characters_keep_their_case_and_plus_is_spellable() {
        assert_eq!(spec("Q").key, Key::Char('Q'));
        assert_eq!(spec("?").key, Key::Char('?'));
        assert_eq!(spec("ctrl++"), spec("ctrl+plus"));
        assert_eq!(spec("+").key, Key::Char('+'));
    }

    #[test]
    fn display_is_canonical_and_parses_back() {
        for s in [
            "ctrl+s",
            "alt+enter",
            "shift+tab",
            "f12",
            "space",
            "ctrl+plus",
            "x",
        ] {
            assert_eq!(spec(s).to_string(), s);
            assert_eq!(spec(&spec(s).to_string()), spec(s));
        }
        assert_eq!(spec("Control+ESCAPE").to_string(), "ctrl+esc");
    }

    #[test]
    fn mistakes_name_the_bad_part_and_the_choices() {
        let e = KeySpec::from_str("ctrl+entr").unwrap_err();
        assert!(
            e.contains("unknown key `entr`") && e.contains("enter, esc"),
            "{e}"
        );
        let e = KeySpec::from_str("ctl+s").unwrap_err();
        assert!(
            e.contains("unknown modifier `ctl`") && e.contains("ctrl, alt"),
            "{e}"
        );
        assert!(KeySpec::from_str("f25").is_err());
        assert!(KeySpec::from_str("ctrl+").is_err());
        assert!(KeySpec::from_str("").is_err());
        assert!(KeySpec::from_str("ctrl+ctrl+a").is_err());
    }
}
