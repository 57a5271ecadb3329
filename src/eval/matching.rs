//! Whether a reply is correct: one rule per `match` kind. Pure functions of
//! the answer key, the reply text and the boxes found in it, so a stored
//! reply can be scored again without the model.

use serde::Serialize;

use super::suite::{choice_letter, Expected};

/// The score of one reply.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub correct: bool,
    /// What was read from the reply for the comparison (the number, the
    /// choice, the box), when the rule reads something.
    pub read: Option<String>,
}

/// Scores `reply` against `expected`. `boxes` are the boxes found in the
/// reply, in original pixels of the question's last image, in reply order.
pub fn judge(expected: &Expected, reply: &str, boxes: &[[f64; 4]]) -> Verdict {
    match expected {
        Expected::Exact(answer) => Verdict {
            correct: reply.trim() == answer.trim(),
            read: None,
        },
        Expected::Normalized(answer) => Verdict {
            correct: normalize(reply) == normalize(answer),
            read: None,
        },
        Expected::Number { value, tolerance } => {
            let got = last_number(reply);
            Verdict {
                correct: got.is_some_and(|g| within(g, *value, *tolerance)),
                read: got.map(|g| g.to_string()),
            }
        }
        Expected::Choice { choices, answer } => {
            let got = chosen(reply, choices);
            Verdict {
                correct: got == Some(*answer),
                read: got.map(|i| choice_letter(i).to_string()),
            }
        }
        Expected::Bbox { bbox, iou: needed } => match boxes.first() {
            Some(b) => Verdict {
                correct: iou(b, bbox) >= *needed,
                read: Some(format!(
                    "[{}, {}, {}, {}] (IoU {:.2})",
                    b[0],
                    b[1],
                    b[2],
                    b[3],
                    iou(b, bbox)
                )),
            },
            None => Verdict {
                correct: false,
                read: None,
            },
        },
    }
}

fn within(got: f64, value: f64, tolerance: f64) -> bool {
    // Decimal answers such as 0.1 + 0.2 are not exact in binary.
    (got - value).abs() <= tolerance + 1e-9 * value.abs().max(1.0)
}

/// Full-width ASCII forms (ＡＢＣ１２３！) and the ideographic space as their
/// ordinary counterparts.
fn fold_width(c: char) -> char {
    match c as u32 {
        0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        0x3000 => ' ',
        _ => c,
    }
}

/// Punctuation of CJK text and typography that has no full-width ASCII form.
const OTHER_PUNCTUATION: &[char] = &[
    '。', '、', '「', '」', '『', '』', '【', '】', '《', '》', '〈', '〉', '・', '…', '—', '–',
    '‘', '’', '“', '”', '·', '¡', '¿', '«', '»', '°', '′', '″',
];

/// The reply as `normalized` compares it: widths folded, lower case, and
/// without whitespace or punctuation.
pub fn normalize(text: &str) -> String {
    text.chars()
        .map(fold_width)
        .filter(|c| {
            !(c.is_whitespace() || c.is_ascii_punctuation() || OTHER_PUNCTUATION.contains(c))
        })
        .flat_map(char::to_lowercase)
        .collect()
}

/// The last number in `text`: an optional minus sign (not joined to a word
/// or number before it, so "20-30" is 20 and 30), digits with optional
/// thousands commas, an optional decimal part. Full-width digits count.
pub fn last_number(text: &str) -> Option<f64> {
    let chars: Vec<char> = text.chars().map(fold_width).collect();
    let mut last = None;
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let negative = i > 0
            && matches!(chars[i - 1], '-' | '−')
            && (i < 2 || !chars[i - 2].is_alphanumeric());
        let mut digits = String::new();
        while i < chars.len() {
            let c = chars[i];
            if c.is_ascii_digit() {
                digits.push(c);
                i += 1;
            } else if c == ',' && thousands_group_follows(&chars, i + 1) {
                i += 1;
            } else {
                break;
            }
        }
        if i + 1 < chars.len() && chars[i] == '.' && chars[i + 1].is_ascii_digit() {
            digits.push('.');
            i += 1;
            while i < chars.len() && chars[i].is_ascii_digit() {
                digits.push(chars[i]);
                i += 1;
            }
        }
        if let Ok(v) = digits.parse::<f64>() {
            last = Some(if negative { -v } else { v });
        }
    }
    last
}

/// Exactly three digits start at `at`, and no fourth follows.
fn thousands_group_follows(chars: &[char], at: usize) -> bool {
    (0..3).all(|k| chars.get(at + k).is_some_and(char::is_ascii_digit))
        && !chars.get(at + 3).is_some_and(char::is_ascii_digit)
}

/// Which of `choices` the reply picks, if it clearly picks one: the whole
/// reply is a choice's text; or it is a choice letter, alone or leading
/// ("B", "(B)", "B.", "B) green"); or exactly one choice's text appears in
/// it.
pub fn chosen(reply: &str, choices: &[String]) -> Option<usize> {
    let whole = normalize(reply);
    if let Some(i) = choices.iter().position(|c| normalize(c) == whole) {
        return Some(i);
    }
    if let Some(i) = leading_letter(reply).filter(|&i| i < choices.len()) {
        return Some(i);
    }
    let mut found = choices
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            let c = normalize(c);
            !c.is_empty() && whole.contains(&c)
        })
        .map(|(i, _)| i);
    match (found.next(), found.next()) {
        (Some(i), None) => Some(i),
        _ => None,
    }
}

/// The index of a capital letter that opens the reply as a choice label.
fn leading_letter(reply: &str) -> Option<usize> {
    let chars: Vec<char> = reply
        .trim()
        .trim_start_matches(['(', '['])
        .chars()
        .map(fold_width)
        .collect();
    let first = *chars.first()?;
    let ends_label = match chars.get(1) {
        None => true,
        Some(c) => matches!(c, ')' | ']' | '.' | ':' | ',') || c.is_whitespace(),
    };
    // "A red box" opens with an article, not with choice A.
    let is_article = first == 'A' && chars.get(1).is_some_and(|c| c.is_whitespace());
    if first.is_ascii_uppercase() && ends_label && !is_article {
        Some((first as u8 - b'A') as usize)
    } else {
        None
    }
}

/// Intersection over union of two `[left, top, right, bottom]` boxes.
pub fn iou(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |r: &[f64; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union > 0.0 && union.is_finite() {
        inter / union
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(value: f64, tolerance: f64) -> Expected {
        Expected::Number { value, tolerance }
    }

    fn choice(answer: usize) -> Expected {
        Expected::Choice {
            choices: vec!["red".into(), "green".into(), "dark blue".into()],
            answer,
        }
    }

    fn bbox(b: [f64; 4], iou: f64) -> Expected {
        Expected::Bbox { bbox: b, iou }
    }

    #[test]
    fn the_matching_rules() {
        let exact = |s: &str| Expected::Exact(s.into());
        let norm = |s: &str| Expected::Normalized(s.into());
        let no_boxes: &[[f64; 4]] = &[];
        #[rustfmt::skip]
        let table: Vec<(Expected, &str, bool)> = vec![
            // exact: only surrounding whitespace is forgiven
            (exact("X7K-2Q9"), "X7K-2Q9", true),
            (exact("X7K-2Q9"), "  X7K-2Q9\n", true),
            (exact("X7K-2Q9"), "x7k-2q9", false),
            (exact("X7K-2Q9"), "X7K-2Q9.", false),
            (exact("X7K-2Q9"), "The code is X7K-2Q9", false),
            // normalized: case, spaces, punctuation, full-/half-width
            (norm("Corner Mart"), "corner mart", true),
            (norm("Corner Mart"), "CORNER-MART.", true),
            (norm("Corner Mart"), "ＣＯＲＮＥＲ　ＭＡＲＴ", true),
            (norm("Corner Mart"), "「Corner Mart」。", true),
            (norm("Corner Mart"), "Corner Market", false),
            (norm("TEA"), "The word is TEA.", false),
            (norm("12.50"), "1250", true),
            // number: the last number in the reply, within the tolerance
            (num(23.45, 0.0), "23.45", true),
            (num(23.45, 0.0), "The total is $23.45.", true),
            (num(23.45, 0.005), "Total: 23.449", true),
            (num(23.45, 0.005), "23.46", false),
            (num(1234.5, 0.0), "1,234.50", true),
            (num(-1.5, 0.0), "The slope is -1.5 per °C", true),
            (num(10.0, 0.0), "between 20-30 °C it rises by 10", true),
            (num(30.0, 0.0), "20-30", true),
            (num(-30.0, 0.0), "20-30", false),
            (num(2.5, 0.25), "about ２．７", true),
            (num(0.3, 0.0), "0.30000000000000004", true),
            (num(7.0, 0.0), "seven", false),
            (num(7.0, 0.0), "I count 7 items, 3 red", false),
            // choice: a letter, a choice's text, or exactly one choice named
            (choice(1), "B", true),
            (choice(1), "(B)", true),
            (choice(1), "B) green", true),
            (choice(1), "green", true),
            (choice(1), "Green.", true),
            (choice(1), "It is green.", true),
            (choice(2), "Dark Blue", true),
            (choice(1), "C", false),
            (choice(1), "red or green", false),
            (choice(0), "A red box", true),
            (choice(0), "A", true),
            (choice(1), "b", false),
            (choice(1), "Z", false),
        ];
        for (expected, reply, want) in table {
            let got = judge(&expected, reply, no_boxes).correct;
            assert_eq!(got, want, "{expected:?} vs {reply:?}");
        }
    }

    #[test]
    fn a_box_is_right_when_its_iou_reaches_the_threshold() {
        let key = bbox([100.0, 100.0, 200.0, 200.0], 0.5);
        let judged = |boxes: &[[f64; 4]]| judge(&key, "", boxes).correct;
        assert!(judged(&[[100.0, 100.0, 200.0, 200.0]]));
        // Shifted by 33 px: IoU = 6700 / 13300, just above one half.
        assert!(judged(&[[133.0, 100.0, 233.0, 200.0]]));
        assert!(
            judged(&[[100.0, 100.0, 200.0, 150.0]]),
            "exactly 0.5 is enough"
        );
        assert!(!judged(&[[150.0, 100.0, 250.0, 200.0]]));
        assert!(!judged(&[]), "no box is a wrong answer");
        assert!(
            !judged(&[[0.0, 0.0, 10.0, 10.0], [100.0, 100.0, 200.0, 200.0]]),
            "the first box counts"
        );
        assert_eq!(iou(&[0.0, 0.0, 0.0, 0.0], &[0.0, 0.0, 0.0, 0.0]), 0.0);
        let v = judge(&key, "", &[[100.0, 100.0, 200.0, 150.0]]);
        assert_eq!(v.read.as_deref(), Some("[100, 100, 200, 150] (IoU 0.50)"));
    }

    #[test]
    fn what_was_read_is_reported() {
        assert_eq!(
            judge(&num(1.0, 0.0), "it is 2", &[]).read.as_deref(),
            Some("2")
        );
        assert_eq!(judge(&choice(0), "green", &[]).read.as_deref(), Some("B"));
        assert_eq!(judge(&choice(0), "no idea", &[]).read, None);
    }

    #[test]
    fn numbers_are_found_in_running_text() {
        assert_eq!(last_number("no digits"), None);
        assert_eq!(last_number("1,23"), Some(23.0));
        assert_eq!(last_number("v2-3"), Some(3.0));
        assert_eq!(last_number("x -4."), Some(-4.0));
        assert_eq!(last_number("12,345,678"), Some(12_345_678.0));
    }
}
