//! From a reply's text to the boxes and points written in it, in the reply's
//! own numbers (no coordinate convention applied yet).
//!
//! The syntaxes are tried in the order the model families use them:
//!
//! 1. special-token spans (Qwen2-VL, and the older `<ref>`/`<box>` tags);
//! 2. JSON objects with `bbox_2d` / `point_2d` (Qwen2.5-VL, Qwen3-VL), in or
//!    out of ```` ```json ```` fences, a single object or a list;
//! 3. bare `(x1,y1),(x2,y2)` tuples, only when neither of the others was
//!    even attempted.
//!
//! The first syntax that yields a detection wins. Whatever could not be used
//! becomes a warning; nothing here panics, and every pass is linear in the
//! reply's length with bounded memory, whatever the reply holds.

use super::{json_scan, special_tokens, tuples};

/// Most detections taken from one reply; the rest are dropped with a warning.
pub const MAX_DETECTIONS: usize = 1000;
/// Most warnings kept for one reply; a last one says how many were left out.
pub const MAX_WARNINGS: usize = 20;

/// A box or point in the numbers the model wrote.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RawShape {
    /// `[x1, y1, x2, y2]` as written (corners possibly swapped).
    Box([f64; 4]),
    /// `[x, y]`.
    Point([f64; 2]),
}

/// One box or point found in a reply.
#[derive(Debug, Clone, PartialEq)]
pub struct RawDetection {
    /// What the model called it; empty when it gave no name.
    pub label: String,
    pub shape: RawShape,
    /// The image the reply said it was talking about ("Picture 2:" before
    /// the detection), 1-based as written.
    pub image_hint: Option<u32>,
    /// Byte offset in the reply where the detection starts.
    pub offset: usize,
}

/// Everything found in a reply.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedReply {
    pub detections: Vec<RawDetection>,
    /// Problems with grounding-like text that could not be used, one
    /// sentence each.
    pub warnings: Vec<String>,
}

/// Finds the boxes and points in a reply. Never fails: what cannot be read
/// is reported in `warnings`.
pub fn parse_reply(text: &str) -> ParsedReply {
    let hints = image_hints(text);
    let mut out = Collector::new(&hints);

    special_tokens::scan(text, &mut out);
    if out.detections.is_empty() {
        json_scan::scan(text, &mut out);
    }
    // Broken spans or JSON mean the model meant that format; bare pairs
    // inside them are not a second opinion.
    if out.detections.is_empty() && !out.has_warnings() {
        tuples::scan(text, &mut out);
    }
    out.finish()
}

/// Gathers detections and warnings from the scanners, with caps.
pub(crate) struct Collector<'h> {
    hints: &'h [(usize, u32)],
    detections: Vec<RawDetection>,
    warnings: Vec<String>,
    dropped_detections: usize,
    dropped_warnings: usize,
}

impl<'h> Collector<'h> {
    fn new(hints: &'h [(usize, u32)]) -> Self {
        Collector {
            hints,
            detections: Vec::new(),
            warnings: Vec::new(),
            dropped_detections: 0,
            dropped_warnings: 0,
        }
    }

    pub fn detection(&mut self, label: String, shape: RawShape, offset: usize) {
        if self.detections.len() >= MAX_DETECTIONS {
            self.dropped_detections += 1;
            return;
        }
        let before = self.hints.partition_point(|&(at, _)| at < offset);
        let image_hint = before.checked_sub(1).map(|i| self.hints[i].1);
        self.detections.push(RawDetection {
            label,
            shape,
            image_hint,
            offset,
        });
    }

    /// Records a problem; the message is only written while there is room
    /// for it, so a reply with a million broken spans stays cheap.
    pub fn warn(&mut self, message: impl FnOnce() -> String) {
        if self.warnings.len() >= MAX_WARNINGS {
            self.dropped_warnings += 1;
        } else {
            self.warnings.push(message());
        }
    }

    pub fn has_warnings(&self) -> bool {
        !self.warnings.is_empty()
    }

    fn finish(mut self) -> ParsedReply {
        self.detections.sort_by_key(|d| d.offset);
        if self.dropped_detections > 0 {
            self.warnings.push(format!(
                "the answer holds more than {MAX_DETECTIONS} boxes and points; {} were left out",
                self.dropped_detections
            ));
        }
        if self.dropped_warnings > 0 {
            self.warnings.push(format!(
                "{} more problems of the same kind were not listed",
                self.dropped_warnings
            ));
        }
        ParsedReply {
            detections: self.detections,
            warnings: self.warnings,
        }
    }
}

/// Places where the reply names an image, as `Picture N:` or `Image N:`
/// (the way Qwen's chat templates number images), with `N` as written.
/// Sorted by position.
fn image_hints(text: &str) -> Vec<(usize, u32)> {
    let bytes = text.as_bytes();
    let mut hints = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        let word_len = if starts_with_ignore_case(rest, b"picture") {
            7
        } else if starts_with_ignore_case(rest, b"image") {
            5
        } else {
            i += 1;
            continue;
        };
        let word_start = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        let mut j = i + word_len;
        i += word_len;
        if !word_start || bytes.get(j) != Some(&b' ') {
            continue;
        }
        j += 1;
        let digits_start = j;
        while j < bytes.len() && bytes[j].is_ascii_digit() && j - digits_start < 4 {
            j += 1;
        }
        if j == digits_start || bytes.get(j).is_some_and(|b| b.is_ascii_digit()) {
            continue;
        }
        // Markdown emphasis or a closing bracket may sit before the colon.
        let mut k = j;
        while k < bytes.len() && k - j < 3 && matches!(bytes[k], b'*' | b'_' | b')' | b' ') {
            k += 1;
        }
        if bytes.get(k) == Some(&b':') {
            let n = std::str::from_utf8(&bytes[digits_start..j])
                .ok()
                .and_then(|s| s.parse().ok());
            if let Some(n) = n {
                hints.push((i - word_len, n));
            }
            i = k + 1;
        }
    }
    hints
}

fn starts_with_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.len() >= needle.len() && haystack[..needle.len()].eq_ignore_ascii_case(needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_hints_need_a_number_and_a_colon() {
        let text = "Picture 2: a cat. In the image 3 dogs. **Image 1**: x. picture 12: y";
        let hints = image_hints(text);
        let ns: Vec<u32> = hints.iter().map(|h| h.1).collect();
        assert_eq!(ns, vec![2, 1, 12]);
        assert_eq!(&text[hints[0].0..hints[0].0 + 7], "Picture");
        assert!(image_hints("subimage 2: no").is_empty());
        assert!(image_hints("Image 99999: too long").is_empty());
    }

    #[test]
    fn detections_take_the_last_image_hint_before_them() {
        let text = "Picture 1: <|box_start|>(1,2),(3,4)<|box_end|>\nPicture 2: <|box_start|>(5,6),(7,8)<|box_end|>";
        let p = parse_reply(text);
        let hints: Vec<Option<u32>> = p.detections.iter().map(|d| d.image_hint).collect();
        assert_eq!(hints, vec![Some(1), Some(2)]);
    }

    #[test]
    fn warnings_and_detections_are_capped() {
        let text =
            "<|box_start|>(1,2)<|box_end|>".repeat(10) + &"<|box_start|>x<|box_end|>".repeat(50);
        let p = parse_reply(&text);
        assert_eq!(p.detections.len(), 10);
        assert_eq!(p.warnings.len(), MAX_WARNINGS + 1);
        assert!(p.warnings.last().unwrap().contains("30 more problems"));

        let many = "<|box_start|>(1,2),(3,4)<|box_end|>".repeat(MAX_DETECTIONS + 5);
        let p = parse_reply(&many);
        assert_eq!(p.detections.len(), MAX_DETECTIONS);
        assert!(p.warnings.iter().any(|w| w.contains("5 were left out")));
    }
}
