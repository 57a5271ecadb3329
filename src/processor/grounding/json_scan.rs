//! JSON grounding as Qwen2.5-VL and Qwen3-VL write it:
//! `[{"bbox_2d": [x1, y1, x2, y2], "label": "cat"}, {"point_2d": [x, y], "label": "dog"}]`,
//! usually in a ```` ```json ```` fence, sometimes a single object, sometimes
//! surrounded by prose, sometimes cut off by the token limit.
//!
//! Instead of handing the text to a strict JSON parser (which rejects the
//! whole answer for one stray comma), one forgiving pass reads brackets,
//! strings, numbers and keys, and every object that holds a `bbox_2d` or
//! `point_2d` becomes a detection. So trailing commas, single quotes,
//! unquoted keys, a missing closing bracket or an answer that stops halfway
//! cost at most the object they touch. The pass is linear, keeps at most
//! [`MAX_DEPTH`] open brackets, and never recurses.

use super::lexing::{clean_label, excerpt, lex_number, unescape, MAX_LABEL_CHARS};
use super::parse::{Collector, RawShape};

/// Open brackets tracked; deeper ones are counted but their content ignored.
pub const MAX_DEPTH: usize = 64;
/// Numbers kept per coordinate list.
const MAX_NUMBERS: usize = 16;
/// Keys longer than this are not grounding keys.
const MAX_KEY_BYTES: usize = 32;

/// What a key's value means to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Box,
    Point,
    /// A name for the object; lower rank wins ("label" over "text").
    Label(u8),
    Other,
}

fn classify(key: &str) -> Key {
    if key.len() > MAX_KEY_BYTES {
        return Key::Other;
    }
    match key.trim().to_ascii_lowercase().as_str() {
        "bbox_2d" | "bbox2d" | "bbox" | "box_2d" | "box" => Key::Box,
        "point_2d" | "point2d" | "point" => Key::Point,
        "label" => Key::Label(0),
        "name" | "category" | "class" | "object" => Key::Label(1),
        "text_content" | "text" | "description" => Key::Label(2),
        _ => Key::Other,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaiting {
    Key,
    Colon(Key),
    Value(Key),
    /// A value was read; a comma or the closing brace comes next.
    Next,
}

#[derive(Debug, Clone, Default)]
struct Numbers {
    values: Vec<f64>,
    /// Something other than a number was in the list, or a number was
    /// malformed.
    bad: bool,
    too_many: bool,
    /// The list's closing bracket was seen.
    closed: bool,
}

impl Numbers {
    fn push(&mut self, v: Option<f64>) {
        match v {
            None => self.bad = true,
            Some(_) if self.values.len() >= MAX_NUMBERS => self.too_many = true,
            Some(v) => self.values.push(v),
        }
    }

    fn absorb(&mut self, inner: Numbers) {
        for v in inner.values {
            self.push(Some(v));
        }
        self.bad |= inner.bad;
        self.too_many |= inner.too_many;
    }

    fn not_a_list() -> Self {
        Numbers {
            bad: true,
            closed: true,
            ..Default::default()
        }
    }
}

enum Frame {
    Object {
        start: usize,
        awaiting: Awaiting,
        bbox: Option<Numbers>,
        point: Option<Numbers>,
        label: Option<(u8, String)>,
    },
    Array {
        /// The key this list is the value of.
        key: Key,
        numbers: Numbers,
    },
}

/// A value token, as far as the frame it lands in cares.
enum Value<'t> {
    Str(&'t str),
    Number(Option<f64>),
    Word(&'t str),
}

struct Scanner<'t, 'c, 'h> {
    text: &'t str,
    stack: Vec<Frame>,
    /// Brackets opened beyond [`MAX_DEPTH`] and not yet closed.
    overflow: usize,
    warned_depth: bool,
    out: &'c mut Collector<'h>,
}

pub(crate) fn scan(text: &str, out: &mut Collector) {
    let mut s = Scanner {
        text,
        stack: Vec::new(),
        overflow: 0,
        warned_depth: false,
        out,
    };
    s.run();
}

impl Scanner<'_, '_, '_> {
    fn run(&mut self) {
        let bytes = self.text.as_bytes();
        let mut i = 0;
        // The last byte that was not white space, for telling a quote that
        // opens a string from an apostrophe in prose.
        let mut prev = b' ';
        while i < bytes.len() {
            let b = bytes[i];
            if b == b'`' && bytes[i..].starts_with(b"```") {
                // A fence ends whatever JSON was open.
                self.close_all();
                i += 3;
                prev = b'`';
                continue;
            }
            if self.overflow > 0 {
                match b {
                    b'{' | b'[' => self.overflow += 1,
                    b'}' | b']' => self.overflow -= 1,
                    _ => {}
                }
                i += 1;
                continue;
            }
            if self.stack.is_empty() && b != b'{' && b != b'[' {
                // Prose between JSON values.
                i += 1;
                continue;
            }
            i = self.token(i, prev);
            if !b.is_ascii_whitespace() {
                prev = b;
            }
        }
        self.close_all();
    }

    /// Reads the token at `i` inside JSON, after the non-blank byte `prev`;
    /// returns where the next one starts.
    fn token(&mut self, i: usize, prev: u8) -> usize {
        let text = self.text;
        let bytes = text.as_bytes();
        let b = bytes[i];
        match b {
            b'{' | b'[' => self.open(b, i),
            b'}' | b']' => self.close(b),
            b'"' | b'\'' if matches!(prev, b'{' | b'[' | b',' | b':') => {
                let (body, next) = string_at(text, i, b);
                self.value(Value::Str(body));
                return next;
            }
            b':' => self.colon(),
            b',' => self.comma(),
            b'-' | b'+' | b'.' | b'0'..=b'9' => match lex_number(bytes, i) {
                Some(n) => {
                    self.value(Value::Number(n.value));
                    return n.end;
                }
                None => self.value(Value::Word("-")),
            },
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                let len = bytes[i..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                    .count();
                self.value(Value::Word(&text[i..i + len]));
                return i + len;
            }
            _ => {}
        }
        i + 1
    }

    fn open(&mut self, bracket: u8, at: usize) {
        if self.stack.len() >= MAX_DEPTH {
            self.overflow = 1;
            if !self.warned_depth {
                self.warned_depth = true;
                self.out.warn(|| {
                    format!("brackets nested deeper than {MAX_DEPTH} levels were skipped")
                });
            }
            return;
        }
        let key = match self.stack.last_mut() {
            Some(Frame::Object { awaiting, .. }) => {
                let key = match *awaiting {
                    Awaiting::Value(k) => k,
                    _ => Key::Other,
                };
                *awaiting = Awaiting::Next;
                key
            }
            Some(Frame::Array { numbers, .. }) => {
                if bracket == b'{' {
                    numbers.bad = true;
                }
                Key::Other
            }
            None => Key::Other,
        };
        self.stack.push(if bracket == b'{' {
            Frame::Object {
                start: at,
                awaiting: Awaiting::Key,
                bbox: None,
                point: None,
                label: None,
            }
        } else {
            Frame::Array {
                key,
                numbers: Numbers::default(),
            }
        });
    }

    /// Closes the innermost frame of the bracket's kind and, cut off, every
    /// frame opened inside it. A closer with nothing to close is ignored.
    fn close(&mut self, bracket: u8) {
        let object = bracket == b'}';
        let Some(target) = self
            .stack
            .iter()
            .rposition(|f| matches!(f, Frame::Object { .. }) == object)
        else {
            return;
        };
        while self.stack.len() > target + 1 {
            self.pop(false);
        }
        self.pop(true);
    }

    fn close_all(&mut self) {
        self.overflow = 0;
        while !self.stack.is_empty() {
            self.pop(false);
        }
    }

    /// Removes the innermost frame; `closed` tells whether its own closing
    /// bracket was seen.
    fn pop(&mut self, closed: bool) {
        let Some(frame) = self.stack.pop() else {
            return;
        };
        match frame {
            Frame::Array { key, mut numbers } => {
                numbers.closed = closed;
                match self.stack.last_mut() {
                    Some(Frame::Object { bbox, point, .. }) => match key {
                        Key::Box if bbox.is_none() => *bbox = Some(numbers),
                        Key::Point if point.is_none() => *point = Some(numbers),
                        _ => {}
                    },
                    // Nested lists, as in [[x1, y1], [x2, y2]], are read flat.
                    Some(Frame::Array { numbers: outer, .. }) => {
                        if !closed {
                            outer.bad = true;
                        }
                        outer.absorb(numbers);
                    }
                    None => {}
                }
            }
            Frame::Object {
                start,
                bbox,
                point,
                label,
                ..
            } => {
                let label = label.map(|(_, l)| l).unwrap_or_default();
                let mut used = false;
                if let Some(n) = bbox {
                    used |= self.emit(start, "bbox_2d", n, 4, &label);
                }
                if let Some(n) = point {
                    used |= self.emit(start, "point_2d", n, 2, &label);
                }
                if used && !closed {
                    self.out.warn(|| {
                        format!(
                            "a JSON object was cut off; its complete coordinates were used: {:?}",
                            excerpt(self.text, start, 60)
                        )
                    });
                }
            }
        }
    }

    /// Turns one coordinate list into a detection, or a warning.
    fn emit(&mut self, start: usize, key: &str, n: Numbers, want: usize, label: &str) -> bool {
        let problem = if n.bad {
            format!("{key} is not a list of plain numbers")
        } else if !n.closed {
            format!("{key} was cut off")
        } else if n.too_many || n.values.len() != want {
            let found = if n.too_many {
                format!("more than {MAX_NUMBERS}")
            } else {
                n.values.len().to_string()
            };
            format!("{key} needs {want} numbers, found {found}")
        } else {
            let shape = match n.values[..] {
                [x1, y1, x2, y2] => RawShape::Box([x1, y1, x2, y2]),
                [x, y] => RawShape::Point([x, y]),
                _ => unreachable!("the count was checked"),
            };
            self.out.detection(label.to_string(), shape, start);
            return true;
        };
        self.out
            .warn(|| format!("{problem}, skipped: {:?}", excerpt(self.text, start, 60)));
        false
    }

    fn colon(&mut self) {
        if let Some(Frame::Object { awaiting, .. }) = self.stack.last_mut() {
            if let Awaiting::Colon(k) = *awaiting {
                *awaiting = Awaiting::Value(k);
            }
        }
    }

    fn comma(&mut self) {
        if let Some(Frame::Object { awaiting, .. }) = self.stack.last_mut() {
            *awaiting = Awaiting::Key;
        }
    }

    fn value(&mut self, v: Value) {
        match self.stack.last_mut() {
            Some(Frame::Array { numbers, .. }) => match v {
                Value::Number(n) => numbers.push(n),
                Value::Str(_) | Value::Word(_) => numbers.bad = true,
            },
            Some(Frame::Object {
                awaiting,
                bbox,
                point,
                label,
                ..
            }) => match *awaiting {
                // Unquoted keys are accepted too.
                Awaiting::Key => match v {
                    Value::Str(k) | Value::Word(k) => *awaiting = Awaiting::Colon(classify(k)),
                    Value::Number(_) => {}
                },
                Awaiting::Value(key) => {
                    match (key, v) {
                        (Key::Label(rank), Value::Str(s))
                            if label.as_ref().is_none_or(|(r, _)| rank < *r) =>
                        {
                            let text = clean_label(&unescape(s, MAX_LABEL_CHARS * 4));
                            *label = Some((rank, text));
                        }
                        (Key::Box, _) if bbox.is_none() => *bbox = Some(Numbers::not_a_list()),
                        (Key::Point, _) if point.is_none() => *point = Some(Numbers::not_a_list()),
                        _ => {}
                    }
                    *awaiting = Awaiting::Next;
                }
                Awaiting::Colon(_) | Awaiting::Next => {}
            },
            None => {}
        }
    }
}

/// The body of the string opening at `start` (quote `quote`) and the
/// position after it. A string ends at its closing quote, or, unclosed, at
/// the end of the line or text (JSON strings hold no raw line breaks).
fn string_at(text: &str, start: usize, quote: u8) -> (&str, usize) {
    let bytes = text.as_bytes();
    let mut j = start + 1;
    while j < bytes.len() {
        match bytes[j] {
            b'\\' => j += 2,
            b'\n' => return (&text[start + 1..j], j + 1),
            b if b == quote => return (&text[start + 1..j], j + 1),
            _ => j += 1,
        }
    }
    let end = bytes.len();
    (&text[(start + 1).min(end)..end], end)
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

    fn bx(label: &str, v: [f64; 4]) -> (String, RawShape) {
        (label.into(), RawShape::Box(v))
    }

    fn pt(label: &str, v: [f64; 2]) -> (String, RawShape) {
        (label.into(), RawShape::Point(v))
    }

    #[test]
    fn a_fenced_list_of_boxes_and_points() {
        let text = "Here you go:\n```json\n[\n  {\"bbox_2d\": [10, 20, 110, 220], \"label\": \"cat\"},\n  {\"point_2d\": [5.5, 6], \"label\": \"dog\"}\n]\n```\nDone.";
        assert_eq!(
            found(text),
            vec![bx("cat", [10.0, 20.0, 110.0, 220.0]), pt("dog", [5.5, 6.0])]
        );
    }

    #[test]
    fn a_single_object_without_fence_and_prose_around_it() {
        assert_eq!(
            found("The cat is at {\"bbox_2d\": [1,2,3,4], \"label\": \"cat\"}. It's cute."),
            vec![bx("cat", [1.0, 2.0, 3.0, 4.0])]
        );
    }

    #[test]
    fn labels_with_quotes_escapes_and_cjk() {
        let text = r#"[{"bbox_2d":[1,2,3,4],"label":"the \"big\" cat"},{"bbox_2d":[5,6,7,8],"label":"红色的车"},{"bbox_2d":[9,9,9,9],"label":"\u732b"}]"#;
        let labels: Vec<String> = found(text).into_iter().map(|d| d.0).collect();
        assert_eq!(labels, vec!["the \"big\" cat", "红色的车", "猫"]);
    }

    #[test]
    fn forgiving_about_commas_quotes_and_unquoted_keys() {
        let text = "[{'bbox_2d': [1, 2, 3, 4], 'label': 'man\\'s hat',}, {bbox_2d: [5,6,7,8], label: \"x\"},]";
        assert_eq!(
            found(text),
            vec![
                bx("man's hat", [1.0, 2.0, 3.0, 4.0]),
                bx("x", [5.0, 6.0, 7.0, 8.0])
            ]
        );
    }

    #[test]
    fn nested_corner_lists_and_nested_containers() {
        assert_eq!(
            found(
                r#"{"objects": [{"bbox_2d": [[1, 2], [3, 4]], "label": "a", "attrs": {"color": "red"}}]}"#
            ),
            vec![bx("a", [1.0, 2.0, 3.0, 4.0])]
        );
    }

    #[test]
    fn label_keys_have_an_order_of_preference() {
        assert_eq!(
            found(r#"{"text_content": "Total", "bbox_2d": [1,2,3,4], "label": "price"}"#),
            vec![bx("price", [1.0, 2.0, 3.0, 4.0])]
        );
        assert_eq!(
            found(r#"{"text_content": "Total", "bbox_2d": [1,2,3,4]}"#),
            vec![bx("Total", [1.0, 2.0, 3.0, 4.0])]
        );
    }

    #[test]
    fn an_answer_cut_off_midway_keeps_the_complete_objects() {
        let text = "```json\n[\n {\"bbox_2d\": [1, 2, 3, 4], \"label\": \"a\"},\n {\"bbox_2d\": [5, 6, 7, 8], \"label\": \"b";
        let p = parse_reply(text);
        let got: Vec<String> = p.detections.iter().map(|d| d.label.clone()).collect();
        assert_eq!(got, vec!["a", "b"]);
        assert!(
            p.warnings.iter().any(|w| w.contains("cut off")),
            "{:?}",
            p.warnings
        );

        let p =
            parse_reply("[{\"bbox_2d\": [1, 2, 3, 4], \"label\": \"a\"}, {\"bbox_2d\": [5, 6, 7");
        assert_eq!(p.detections.len(), 1);
        assert!(
            p.warnings[0].contains("bbox_2d was cut off"),
            "{:?}",
            p.warnings
        );
    }

    #[test]
    fn a_fence_closes_an_unfinished_block() {
        let text = "```json\n[{\"bbox_2d\": [1,2,3,4], \"label\": \"a\"\n```\nand\n```json\n{\"point_2d\": [7,8], \"label\": \"b\"}\n```";
        let got: Vec<String> = found(text).into_iter().map(|d| d.0).collect();
        assert_eq!(got, vec!["a", "b"]);
    }

    #[test]
    fn malformed_coordinates_are_warnings() {
        for (text, why) in [
            (
                r#"{"bbox_2d": [1, 2, 3], "label": "a"}"#,
                "needs 4 numbers, found 3",
            ),
            (
                r#"{"bbox_2d": [1, 2, 3, "4"], "label": "a"}"#,
                "not a list of plain numbers",
            ),
            (
                r#"{"bbox_2d": [1, 2, NaN, 4]}"#,
                "not a list of plain numbers",
            ),
            (r#"{"bbox_2d": "1,2,3,4"}"#, "not a list of plain numbers"),
            (r#"{"point_2d": [1, 2, 3]}"#, "needs 2 numbers"),
            (
                r#"{"bbox_2d": [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]}"#,
                "more than 16",
            ),
        ] {
            let p = parse_reply(text);
            assert!(p.detections.is_empty(), "{text}");
            assert!(
                p.warnings.iter().any(|w| w.contains(why)),
                "{text}: {:?}",
                p.warnings
            );
        }
    }

    #[test]
    fn json_without_grounding_keys_is_silent() {
        let p = parse_reply(r#"Sure: {"answer": "42", "items": [1, 2, 3]} and [a, b]."#);
        assert!(p.detections.is_empty() && p.warnings.is_empty(), "{p:?}");
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let deep = "[".repeat(100_000) + "{\"bbox_2d\": [1,2,3,4]}" + &"]".repeat(100_000);
        let p = parse_reply(&deep);
        assert!(p.detections.is_empty());
        assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
        // Within the limit, nesting is fine.
        let ok = "[".repeat(10) + "{\"bbox_2d\": [1,2,3,4]}" + &"]".repeat(10);
        assert_eq!(parse_reply(&ok).detections.len(), 1);
    }

    #[test]
    fn mismatched_closers_cut_off_what_they_skip() {
        let p = parse_reply(r#"[{"bbox_2d": [1,2,3,4], "label": "a"]"#);
        assert_eq!(p.detections.len(), 1);
        let p = parse_reply(r#"]]}} {"bbox_2d": [1,2,3,4]}"#);
        assert_eq!(p.detections.len(), 1);
    }
}
