//! Small, bounded lexing helpers shared by the reply parsers: numbers,
//! excerpts for warnings, label clean-up and JSON string unescaping.
//!
//! Every helper looks at a bounded amount of text or advances the caller's
//! position past what it read, so the parsers stay linear in the reply
//! length whatever the reply contains.

/// Longest number lexeme that is converted; longer digit runs are skipped
/// and reported as malformed (a 10 MB run of digits is not a coordinate).
const MAX_NUMBER_LEN: usize = 64;

/// Longest label kept, in characters.
pub const MAX_LABEL_CHARS: usize = 200;

/// A number read from the text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lexed {
    /// `None` when the lexeme is too long to be a coordinate.
    pub value: Option<f64>,
    /// Byte position just after the lexeme.
    pub end: usize,
}

/// Reads a decimal number (optional sign, digits, fraction, exponent)
/// starting at `pos`, or returns `None` when no number starts there.
pub fn lex_number(bytes: &[u8], pos: usize) -> Option<Lexed> {
    let at = |i: usize| bytes.get(i).copied();
    let digit = |i: usize| at(i).is_some_and(|b| b.is_ascii_digit());
    let mut i = pos;
    if matches!(at(i), Some(b'-' | b'+')) {
        i += 1;
    }
    let starts = digit(i) || (at(i) == Some(b'.') && digit(i + 1));
    if !starts {
        return None;
    }
    while digit(i) {
        i += 1;
    }
    if at(i) == Some(b'.') && digit(i + 1) {
        i += 1;
        while digit(i) {
            i += 1;
        }
    }
    if matches!(at(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(at(j), Some(b'-' | b'+')) {
            j += 1;
        }
        if digit(j) {
            while digit(j) {
                j += 1;
            }
            i = j;
        }
    }
    let value = if i - pos > MAX_NUMBER_LEN {
        None
    } else {
        std::str::from_utf8(&bytes[pos..i])
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
    };
    Some(Lexed { value, end: i })
}

/// Up to `max_chars` characters of `text` from byte `start`, on one line,
/// with an ellipsis when cut; for naming the place a warning is about.
pub fn excerpt(text: &str, start: usize, max_chars: usize) -> String {
    let mut s = start.min(text.len());
    while !text.is_char_boundary(s) {
        s += 1;
    }
    let mut out = String::new();
    let mut chars = text[s..].chars();
    for c in chars.by_ref().take(max_chars) {
        out.push(if c.is_control() { ' ' } else { c });
    }
    if chars.next().is_some() {
        out.push('…');
    }
    out.trim().to_string()
}

/// A label as shown to people: trimmed, control characters replaced, and at
/// most [`MAX_LABEL_CHARS`] characters.
pub fn clean_label(raw: &str) -> String {
    let trimmed = raw.trim();
    let mut out = String::new();
    for (n, c) in trimmed.chars().enumerate() {
        if n == MAX_LABEL_CHARS {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

/// The text of a JSON (or single-quoted) string body with its escapes
/// resolved. Only the first `max_bytes` bytes of `body` are looked at.
pub fn unescape(body: &str, max_bytes: usize) -> String {
    let mut end = body.len().min(max_bytes);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end);
    let mut chars = body[..end].chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('b') | Some('f') => out.push(' '),
            Some('u') => {
                let high = read_hex4(&mut chars);
                let code = match high {
                    Some(h @ 0xD800..=0xDBFF) => {
                        // A surrogate pair is written as two \u escapes.
                        let mut look = chars.clone();
                        let low = (look.next() == Some('\\') && look.next() == Some('u'))
                            .then(|| read_hex4(&mut look))
                            .flatten()
                            .filter(|l| (0xDC00..=0xDFFF).contains(l));
                        match low {
                            Some(l) => {
                                chars = look;
                                Some(0x10000 + ((h - 0xD800) << 10) + (l - 0xDC00))
                            }
                            None => None,
                        }
                    }
                    other => other,
                };
                out.push(code.and_then(char::from_u32).unwrap_or('\u{FFFD}'));
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

fn read_hex4(chars: &mut (impl Iterator<Item = char> + Clone)) -> Option<u32> {
    let mut v = 0u32;
    for _ in 0..4 {
        let d = chars.clone().next()?.to_digit(16)?;
        chars.next();
        v = v * 16 + d;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(s: &str) -> Option<(Option<f64>, usize)> {
        lex_number(s.as_bytes(), 0).map(|l| (l.value, l.end))
    }

    #[test]
    fn numbers_with_signs_fractions_and_exponents() {
        assert_eq!(num("123,"), Some((Some(123.0), 3)));
        assert_eq!(num("-4.5]"), Some((Some(-4.5), 4)));
        assert_eq!(num(".5"), Some((Some(0.5), 2)));
        assert_eq!(num("1e3x"), Some((Some(1000.0), 3)));
        assert_eq!(
            num("7e"),
            Some((Some(7.0), 1)),
            "a bare e is not an exponent"
        );
        assert_eq!(num("12."), Some((Some(12.0), 2)));
        assert_eq!(num("-x"), None);
        assert_eq!(num("NaN"), None);
    }

    #[test]
    fn huge_numbers_are_infinite_and_endless_digits_are_skipped() {
        assert_eq!(num("1e999").unwrap().0, Some(f64::INFINITY));
        let long = "9".repeat(100_000);
        assert_eq!(num(&long), Some((None, 100_000)));
    }

    #[test]
    fn excerpts_are_short_single_lines_even_mid_character() {
        assert_eq!(excerpt("ab\ncd", 0, 10), "ab cd");
        assert_eq!(excerpt("abcdef", 1, 3), "bcd…");
        let cjk = "猫猫猫";
        assert_eq!(excerpt(cjk, 1, 1), "猫…");
        assert_eq!(excerpt(cjk, 99, 5), "");
    }

    #[test]
    fn labels_are_trimmed_and_capped() {
        assert_eq!(clean_label("  红色的车 \n"), "红色的车");
        let long = "x".repeat(1000);
        assert_eq!(clean_label(&long).chars().count(), MAX_LABEL_CHARS + 1);
    }

    #[test]
    fn escapes_are_resolved() {
        assert_eq!(
            unescape(r#"a \"quoted\" \\ word"#, 100),
            r#"a "quoted" \ word"#
        );
        assert_eq!(unescape(r"\u732b \ud83d\ude00", 100), "猫 😀");
        assert_eq!(unescape(r"\ud83d alone", 100), "\u{FFFD} alone");
        assert_eq!(unescape(r"\u12", 100), "\u{FFFD}");
        assert_eq!(unescape("trailing \\", 100), "trailing ");
        assert_eq!(unescape("猫猫", 4), "猫");
    }
}
