//! The last resort: bare corner pairs in prose, `cat: (10,20),(110,220)`,
//! which models fall back to when they ignore the format they were asked
//! for. Only two-corner boxes count (a lone `(3, 4)` in prose is too often
//! not a coordinate); the text just before a box on its line names it.

use super::lexing::{clean_label, lex_number};
use super::parse::{Collector, RawShape};

/// Longest name taken from the text before a box, in characters.
const MAX_PROSE_LABEL_CHARS: usize = 60;

pub(crate) fn scan(text: &str, out: &mut Collector) {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut label_from = 0;
    while let Some(off) = bytes[i..].iter().position(|&b| b == b'(') {
        let open = i + off;
        let Some(((x1, y1), after_first)) = pair_at(bytes, open) else {
            i = open + 1;
            continue;
        };
        let next = skip_separator(bytes, after_first);
        match pair_at(bytes, next) {
            Some(((x2, y2), end)) => {
                let label = label_before(text, label_from, open);
                out.detection(label, RawShape::Box([x1, y1, x2, y2]), open);
                i = end;
                label_from = end;
            }
            // The next pair may still start a box of its own.
            None => i = after_first,
        }
    }
}

/// `(x, y)` at `pos`: the two numbers and the position after `)`.
fn pair_at(bytes: &[u8], pos: usize) -> Option<((f64, f64), usize)> {
    if bytes.get(pos) != Some(&b'(') {
        return None;
    }
    let i = skip_spaces(bytes, pos + 1);
    let x = lex_number(bytes, i)?;
    let i = skip_spaces(bytes, x.end);
    if bytes.get(i) != Some(&b',') {
        return None;
    }
    let i = skip_spaces(bytes, i + 1);
    let y = lex_number(bytes, i)?;
    let i = skip_spaces(bytes, y.end);
    if bytes.get(i) != Some(&b')') {
        return None;
    }
    Some(((x.value?, y.value?), i + 1))
}

fn skip_spaces(bytes: &[u8], mut i: usize) -> usize {
    while bytes.get(i) == Some(&b' ') {
        i += 1;
    }
    i
}

/// Skips what may stand between two corners: spaces, a comma, a dash, "to".
fn skip_separator(bytes: &[u8], mut i: usize) -> usize {
    for _ in 0..8 {
        let rest = &bytes[i.min(bytes.len())..];
        let step = match rest {
            [b' ' | b',' | b'-' | b'\t', ..] => 1,
            [b't', b'o', b' ', ..] => 3,
            [0xE2, 0x80, 0x93, ..] => 3, // en dash
            _ => break,
        };
        i += step;
    }
    i
}

/// The words before a box on its line, without list markers or trailing
/// punctuation; empty when they read like a sentence rather than a name.
fn label_before(text: &str, from: usize, to: usize) -> String {
    let before = &text[from..to];
    let line = before.rsplit('\n').next().unwrap_or("");
    let line = line
        .rsplit(['.', '!', '?', ';'])
        .next()
        .unwrap_or("")
        .trim_start_matches(|c: char| c.is_whitespace() || "-*•#".contains(c))
        .trim_end_matches(|c: char| c.is_whitespace() || ":=-–—*`\"'".contains(c));
    let line = line.trim_start_matches(|c: char| c.is_ascii_digit() || c == ')' || c == ' ');
    if line.chars().count() > MAX_PROSE_LABEL_CHARS {
        return String::new();
    }
    clean_label(line.trim_matches(|c: char| "\"'`*".contains(c)))
}

#[cfg(test)]
mod tests {
    use super::super::parse::parse_reply;
    use super::*;

    fn found(text: &str) -> Vec<(String, RawShape)> {
        parse_reply(text)
            .detections
            .into_iter()
            .map(|d| (d.label, d.shape))
            .collect()
    }

    #[test]
    fn corner_pairs_in_prose_with_their_names() {
        let text = "Found:\n- cat: (10,20),(110,220)\n- 红色的车: (5, 6) to (7, 8)\n2) **dog** (1,1)-(2,2)";
        assert_eq!(
            found(text),
            vec![
                ("cat".into(), RawShape::Box([10.0, 20.0, 110.0, 220.0])),
                ("红色的车".into(), RawShape::Box([5.0, 6.0, 7.0, 8.0])),
                ("dog".into(), RawShape::Box([1.0, 1.0, 2.0, 2.0])),
            ]
        );
    }

    #[test]
    fn lone_pairs_and_sentences_do_not_make_boxes_or_names() {
        assert!(found("The answer is (3, 4) and (x, y).").is_empty());
        let long = "This is a long sentence that goes on and on about the picture before giving (1,2),(3,4)";
        assert_eq!(
            found(long),
            vec![("".into(), RawShape::Box([1.0, 2.0, 3.0, 4.0]))]
        );
    }

    #[test]
    fn tuples_are_not_used_when_a_real_format_is_present() {
        let text = "<|box_start|>(1,2),(3,4)<|box_end|> and also (5,6),(7,8)";
        assert_eq!(found(text).len(), 1);
    }

    #[test]
    fn a_pair_that_ends_a_sentence_is_not_a_corner() {
        assert_eq!(
            found("It starts at (9,9). Box: (1,2),(3,4)"),
            vec![("Box".into(), RawShape::Box([1.0, 2.0, 3.0, 4.0]))]
        );
    }
}
