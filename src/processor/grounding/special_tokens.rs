//! Qwen2-VL's grounding spans:
//! `<|object_ref_start|>a cat<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>`,
//! several boxes per label, `<|quad_start|>…<|quad_end|>` for
//! quadrilaterals, and the `<ref>`/`<box>`/`<quad>` tags of the first Qwen-VL,
//! which some fine-tunes still write.
//!
//! A label applies to every box after it until the next label. A span that
//! is never closed still counts when its numbers are complete (the answer
//! may have been cut by the token limit).

use super::lexing::{clean_label, excerpt, lex_number};
use super::parse::{Collector, RawShape};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    RefStart,
    RefEnd,
    BoxStart,
    BoxEnd,
    QuadStart,
    QuadEnd,
}

const MARKERS: [(&str, Marker); 12] = [
    ("<|object_ref_start|>", Marker::RefStart),
    ("<|object_ref_end|>", Marker::RefEnd),
    ("<|box_start|>", Marker::BoxStart),
    ("<|box_end|>", Marker::BoxEnd),
    ("<|quad_start|>", Marker::QuadStart),
    ("<|quad_end|>", Marker::QuadEnd),
    ("<ref>", Marker::RefStart),
    ("</ref>", Marker::RefEnd),
    ("<box>", Marker::BoxStart),
    ("</box>", Marker::BoxEnd),
    ("<quad>", Marker::QuadStart),
    ("</quad>", Marker::QuadEnd),
];

/// Longest span content read as coordinates; longer content is not a box.
const MAX_SPAN_BYTES: usize = 256;

/// Every marker in the text, in order, as `(marker, start, end)`.
fn markers(text: &str) -> impl Iterator<Item = (Marker, usize, usize)> + '_ {
    let bytes = text.as_bytes();
    let mut pos = 0;
    std::iter::from_fn(move || {
        while pos < bytes.len() {
            let lt = pos + bytes[pos..].iter().position(|&b| b == b'<')?;
            let rest = &bytes[lt..];
            if let Some((tag, m)) = MARKERS
                .iter()
                .find(|(tag, _)| rest.starts_with(tag.as_bytes()))
            {
                pos = lt + tag.len();
                return Some((*m, lt, pos));
            }
            pos = lt + 1;
        }
        None
    })
}

struct Open {
    kind: Marker,
    /// Where the marker starts.
    at: usize,
    /// Where its content starts.
    content: usize,
}

pub(crate) fn scan(text: &str, out: &mut Collector) {
    let mut label = String::new();
    let mut open: Option<Open> = None;
    for (marker, start, end) in markers(text) {
        if let Some(o) = open.take() {
            let content = &text[o.content..start];
            match (o.kind, marker) {
                (Marker::RefStart, Marker::RefEnd) => {
                    label = clean_label(content);
                    continue;
                }
                (Marker::BoxStart, Marker::BoxEnd) | (Marker::QuadStart, Marker::QuadEnd) => {
                    span(text, &o, content, &label, true, out);
                    continue;
                }
                (Marker::RefStart, _) => {
                    out.warn(|| format!("a label was not closed: {:?}", excerpt(text, o.at, 48)));
                    label = clean_label(content);
                }
                _ => span(text, &o, content, &label, false, out),
            }
        }
        if matches!(
            marker,
            Marker::RefStart | Marker::BoxStart | Marker::QuadStart
        ) {
            open = Some(Open {
                kind: marker,
                at: start,
                content: end,
            });
        }
    }
    if let Some(o) = open {
        let content = &text[o.content..];
        match o.kind {
            Marker::RefStart => out.warn(|| {
                format!(
                    "the answer ends inside a label: {:?}",
                    excerpt(text, o.at, 48)
                )
            }),
            _ => span(text, &o, content, &label, false, out),
        }
    }
}

/// Reads one box or quad span; `closed` tells whether its end marker was found.
fn span(text: &str, open: &Open, content: &str, label: &str, closed: bool, out: &mut Collector) {
    let what = || excerpt(text, open.at, 60);
    if content.len() > MAX_SPAN_BYTES {
        out.warn(|| format!("not coordinates, skipped: {:?}", what()));
        return;
    }
    let Some(numbers) = numbers_in(content) else {
        out.warn(|| format!("a coordinate is not a usable number, skipped: {:?}", what()));
        return;
    };
    let shape = match numbers.as_slice() {
        [x1, y1, x2, y2] => RawShape::Box([*x1, *y1, *x2, *y2]),
        [x, y] => RawShape::Point([*x, *y]),
        // Four corners: keep the rectangle that holds them.
        [x1, y1, x2, y2, x3, y3, x4, y4] => {
            let xs = [*x1, *x2, *x3, *x4];
            let ys = [*y1, *y2, *y3, *y4];
            let min = |v: [f64; 4]| v.iter().copied().fold(f64::INFINITY, f64::min);
            let max = |v: [f64; 4]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            RawShape::Box([min(xs), min(ys), max(xs), max(ys)])
        }
        _ => {
            out.warn(|| {
                format!(
                    "expected 2, 4 or 8 numbers, found {}, skipped: {:?}",
                    numbers.len(),
                    what()
                )
            });
            return;
        }
    };
    if !closed {
        out.warn(|| {
            format!(
                "a box was not closed; its numbers were used anyway: {:?}",
                what()
            )
        });
    }
    out.detection(label.to_string(), shape, open.at);
}

/// The numbers in a short span, or `None` when one is malformed.
fn numbers_in(content: &str) -> Option<Vec<f64>> {
    let bytes = content.as_bytes();
    let mut numbers = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        // A sign only starts a number after an opening or a separator; in
        // "(10,20)-(30,40)" the dash joins the corners.
        let sign_allowed =
            i == 0 || matches!(bytes[i - 1], b'(' | b'[' | b',' | b' ' | b'\t' | b'\n');
        let is_sign = matches!(bytes[i], b'-' | b'+');
        match lex_number(bytes, i) {
            Some(n) if sign_allowed || !is_sign => {
                numbers.push(n.value?);
                i = n.end;
            }
            _ => i += 1,
        }
    }
    Some(numbers)
}

#[cfg(test)]
mod tests {
    use super::super::parse::parse_reply;
    use super::*;

    fn boxes(text: &str) -> Vec<(String, RawShape)> {
        parse_reply(text)
            .detections
            .into_iter()
            .map(|d| (d.label, d.shape))
            .collect()
    }

    #[test]
    fn labelled_boxes_and_several_boxes_per_label() {
        let text = "<|object_ref_start|>a woman<|object_ref_end|><|box_start|>(462,371),(709,785)<|box_end|> and \
                    <|object_ref_start|>两只猫<|object_ref_end|><|box_start|>(1,2),(3,4)<|box_end|><|box_start|>(5, 6), (7, 8)<|box_end|>";
        assert_eq!(
            boxes(text),
            vec![
                (
                    "a woman".into(),
                    RawShape::Box([462.0, 371.0, 709.0, 785.0])
                ),
                ("两只猫".into(), RawShape::Box([1.0, 2.0, 3.0, 4.0])),
                ("两只猫".into(), RawShape::Box([5.0, 6.0, 7.0, 8.0])),
            ]
        );
    }

    #[test]
    fn old_tags_quads_and_dash_separated_corners() {
        assert_eq!(
            boxes("<ref>car</ref><box>(10,20)-(30,40)</box>"),
            vec![("car".into(), RawShape::Box([10.0, 20.0, 30.0, 40.0]))]
        );
        assert_eq!(
            boxes("<|quad_start|>(10,20),(50,15),(55,60),(12,70)<|quad_end|>"),
            vec![("".into(), RawShape::Box([10.0, 15.0, 55.0, 70.0]))]
        );
    }

    #[test]
    fn a_box_cut_off_by_the_token_limit_still_counts_with_a_warning() {
        let p = parse_reply("<|object_ref_start|>dog<|object_ref_end|><|box_start|>(1,2),(3,4)");
        assert_eq!(p.detections.len(), 1);
        assert!(p.warnings[0].contains("not closed"), "{:?}", p.warnings);
        let p = parse_reply("<|object_ref_start|>dog<|object_ref_end|><|box_start|>(1,2),(3");
        assert!(p.detections.is_empty());
        assert!(p.warnings[0].contains("found 3"), "{:?}", p.warnings);
    }

    #[test]
    fn broken_spans_become_warnings() {
        for text in [
            "<|box_start|><|box_end|>",
            "<|box_start|>(1,2),(3,4),(5)<|box_end|>",
            "<|object_ref_start|>never closed",
            "<|box_start|>(1e99999999999999999999999999999999999999999999999999999999999999999,2),(3,4)<|box_end|>",
        ] {
            let p = parse_reply(text);
            assert!(p.detections.is_empty(), "{text}");
            assert!(!p.warnings.is_empty(), "{text}");
        }
        let long = format!("<|box_start|>{}<|box_end|>", "(1,2)".repeat(100));
        assert!(parse_reply(&long).warnings[0].contains("not coordinates"));
    }

    #[test]
    fn stray_end_markers_and_plain_angle_brackets_are_ignored() {
        let p = parse_reply("a < b <|box_end|> <|im_end|> </ref>");
        assert!(p.detections.is_empty() && p.warnings.is_empty(), "{p:?}");
    }
}
