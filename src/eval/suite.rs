//! Reading an eval suite: a JSONL file, one question a line.
//!
//! ```json
//! {"id": "shelf-0001", "category": "spatial", "images": ["images/shelf-0001.png"],
//!  "question": "What is printed on the item in row 3, column 2?", "answer": "TEA",
//!  "match": "normalized"}
//! ```
//!
//! Image paths are relative to the suite file's folder. A line that cannot be
//! used (bad JSON, a missing field, a missing image, an answer that does not
//! fit its `match`) becomes a [`LineProblem`] with its line number; the rest
//! of the suite is still read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::matching::normalize;
use crate::session::digest::why_not_a_file;

/// Intersection over union a `bbox` answer needs when the line does not say.
pub const DEFAULT_IOU: f64 = 0.5;

/// What a correct reply looks like.
#[derive(Debug, Clone, PartialEq)]
pub enum Expected {
    /// The reply, without surrounding whitespace, is exactly this.
    Exact(String),
    /// The reply equals this ignoring case, whitespace, punctuation and
    /// full-/half-width forms.
    Normalized(String),
    /// The last number in the reply is within `tolerance` of `value`.
    Number { value: f64, tolerance: f64 },
    /// The reply picks `choices[answer]`, by letter (A, B, ...) or by text.
    Choice { choices: Vec<String>, answer: usize },
    /// The reply's first box, in original pixels of the question's last
    /// image, overlaps `bbox` with an IoU of at least `iou`.
    Bbox { bbox: [f64; 4], iou: f64 },
}

impl Expected {
    /// The `match` name.
    pub fn kind(&self) -> &'static str {
        match self {
            Expected::Exact(_) => "exact",
            Expected::Normalized(_) => "normalized",
            Expected::Number { .. } => "number",
            Expected::Choice { .. } => "choice",
            Expected::Bbox { .. } => "bbox",
        }
    }

    /// The answer as people read it in a report.
    pub fn describe(&self) -> String {
        match self {
            Expected::Exact(s) | Expected::Normalized(s) => s.clone(),
            Expected::Number { value, tolerance } if *tolerance > 0.0 => {
                format!("{value} ± {tolerance}")
            }
            Expected::Number { value, .. } => format!("{value}"),
            Expected::Choice { choices, answer } => {
                format!("{} ({})", choice_letter(*answer), choices[*answer])
            }
            Expected::Bbox { bbox, iou } => format!(
                "[{}, {}, {}, {}] (IoU ≥ {iou})",
                bbox[0], bbox[1], bbox[2], bbox[3]
            ),
        }
    }
}

/// `A` for the first choice, `B` for the second, ...
pub fn choice_letter(index: usize) -> char {
    char::from(b'A' + (index % 26) as u8)
}

/// One usable line of a suite.
#[derive(Debug, Clone, PartialEq)]
pub struct SuiteItem {
    /// 1-based line number in the suite file.
    pub line: usize,
    pub id: String,
    pub category: String,
    /// Image paths as written in the suite.
    pub images: Vec<String>,
    /// The same, resolved against the suite's folder.
    pub paths: Vec<PathBuf>,
    pub question: String,
    pub expected: Expected,
    /// Free-form labels (e.g. `rotated-90`, `low-contrast`); not scored.
    pub tags: Vec<String>,
}

impl SuiteItem {
    /// The item as a suite line (without the trailing newline), fields in
    /// the order people read them.
    pub fn to_json_line(&self) -> String {
        #[derive(Serialize)]
        struct Line<'a> {
            id: &'a str,
            category: &'a str,
            images: &'a [String],
            question: &'a str,
            answer: Value,
            #[serde(rename = "match")]
            kind: &'static str,
            #[serde(skip_serializing_if = "Option::is_none")]
            tolerance: Option<f64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            choices: Option<&'a [String]>,
            #[serde(skip_serializing_if = "Option::is_none")]
            iou: Option<f64>,
            #[serde(skip_serializing_if = "<[String]>::is_empty")]
            tags: &'a [String],
        }
        let mut line = Line {
            id: &self.id,
            category: &self.category,
            images: &self.images,
            question: &self.question,
            answer: Value::Null,
            kind: self.expected.kind(),
            tolerance: None,
            choices: None,
            iou: None,
            tags: &self.tags,
        };
        match &self.expected {
            Expected::Exact(s) | Expected::Normalized(s) => line.answer = json!(s),
            Expected::Number { value, tolerance } => {
                line.answer = json!(value);
                line.tolerance = Some(*tolerance);
            }
            Expected::Choice { choices, answer } => {
                line.answer = json!(choice_letter(*answer).to_string());
                line.choices = Some(choices);
            }
            Expected::Bbox { bbox, iou } => {
                line.answer = json!(bbox);
                line.iou = Some(*iou);
            }
        }
        serde_json::to_string(&line).unwrap_or_default()
    }
}

/// A line that could not be used, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct LineProblem {
    pub line: usize,
    /// The line's `id` and `category`, when it got that far.
    pub id: Option<String>,
    pub category: Option<String>,
    pub message: String,
}

/// One non-blank line of a suite: an item, or what is wrong with it.
pub type Entry = Result<SuiteItem, LineProblem>;

/// A whole suite, in file order.
#[derive(Debug, Clone)]
pub struct Suite {
    pub path: PathBuf,
    pub entries: Vec<Entry>,
}

impl Suite {
    /// Reads and checks every line of `path`; only an unreadable file is an
    /// error.
    pub fn read(path: &Path) -> anyhow::Result<Suite> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!(
                "cannot read the suite {}: {e}; pass --suite with a JSONL file (one question per line)",
                path.display()
            )
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Ok(Suite {
            path: path.to_path_buf(),
            entries: parse_lines(&text, base),
        })
    }

    pub fn items(&self) -> impl Iterator<Item = &SuiteItem> {
        self.entries.iter().filter_map(|e| e.as_ref().ok())
    }

    pub fn problems(&self) -> impl Iterator<Item = &LineProblem> {
        self.entries.iter().filter_map(|e| e.as_ref().err())
    }
}

/// Checks every non-blank line of a suite's text; images are looked for
/// under `base`.
pub fn parse_lines(text: &str, base: &Path) -> Vec<Entry> {
    let mut first_line_of: HashMap<String, usize> = HashMap::new();
    let mut entries = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let mut entry = parse_line(raw, line, base);
        if let Ok(item) = &entry {
            if let Some(&first) = first_line_of.get(&item.id) {
                entry = Err(LineProblem {
                    line,
                    id: Some(item.id.clone()),
                    category: Some(item.category.clone()),
                    message: format!(
                        "id {:?} is already used on line {first}; give every question its own id",
                        item.id
                    ),
                });
            } else {
                first_line_of.insert(item.id.clone(), line);
            }
        }
        entries.push(entry);
    }
    entries
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawItem {
    id: String,
    category: String,
    #[serde(default)]
    images: Vec<String>,
    question: String,
    answer: Value,
    #[serde(rename = "match")]
    match_kind: MatchKind,
    tolerance: Option<f64>,
    choices: Option<Vec<String>>,
    iou: Option<f64>,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum MatchKind {
    Exact,
    Normalized,
    Number,
    Choice,
    Bbox,
}

fn parse_line(raw: &str, line: usize, base: &Path) -> Entry {
    let problem = |id: Option<String>, category: Option<String>, message: String| LineProblem {
        line,
        id,
        category,
        message,
    };
    let value: Value = serde_json::from_str(raw).map_err(|e| {
        problem(
            None,
            None,
            format!("not valid JSON ({e}); each line must be one JSON object"),
        )
    })?;
    let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_string);
    let (id, category) = (field("id"), field("category"));
    let fail = |message: String| problem(id.clone(), category.clone(), message);
    if !value.is_object() {
        return Err(fail("expected a JSON object".into()));
    }
    let raw: RawItem = serde_json::from_value(value.clone()).map_err(|e| fail(e.to_string()))?;
    if raw.id.trim().is_empty() {
        return Err(fail("the id is empty".into()));
    }
    if raw.category.trim().is_empty() {
        return Err(fail("the category is empty".into()));
    }
    if raw.question.trim().is_empty() {
        return Err(fail("the question is empty".into()));
    }
    let expected = expected_of(&raw).map_err(&fail)?;
    if matches!(expected, Expected::Bbox { .. }) && raw.images.is_empty() {
        return Err(fail(
            "a bbox question needs an image to find the box in".into(),
        ));
    }
    let mut paths = Vec::with_capacity(raw.images.len());
    for name in &raw.images {
        let path = base.join(name);
        if let Some(why) = why_not_a_file(&path) {
            return Err(fail(format!(
                "image {}: {why}; image paths are relative to the suite's folder",
                path.display()
            )));
        }
        paths.push(path);
    }
    Ok(SuiteItem {
        line,
        id: raw.id,
        category: raw.category,
        images: raw.images,
        paths,
        question: raw.question,
        expected,
        tags: raw.tags,
    })
}

/// The answer key of a line, checked against its `match`.
fn expected_of(raw: &RawItem) -> Result<Expected, String> {
    let kind = raw.match_kind;
    let only = |field: &str, present: bool, for_kind: &str| -> Result<(), String> {
        if present {
            Err(format!("`{field}` only applies to match \"{for_kind}\""))
        } else {
            Ok(())
        }
    };
    if !matches!(kind, MatchKind::Number) {
        only("tolerance", raw.tolerance.is_some(), "number")?;
    }
    if !matches!(kind, MatchKind::Choice) {
        only("choices", raw.choices.is_some(), "choice")?;
    }
    if !matches!(kind, MatchKind::Bbox) {
        only("iou", raw.iou.is_some(), "bbox")?;
    }
    let text_answer = || -> Result<String, String> {
        match &raw.answer {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            _ => Err("the answer must be a string".into()),
        }
    };
    match kind {
        MatchKind::Exact => Ok(Expected::Exact(text_answer()?)),
        MatchKind::Normalized => {
            let s = text_answer()?;
            if normalize(&s).is_empty() {
                return Err(
                    "the answer is empty once case, spaces and punctuation are ignored".into(),
                );
            }
            Ok(Expected::Normalized(s))
        }
        MatchKind::Number => {
            let value = match &raw.answer {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            }
            .filter(|v| v.is_finite())
            .ok_or("the answer of a number question must be a number, e.g. 12.5")?;
            let tolerance = raw.tolerance.unwrap_or(0.0);
            if !(tolerance.is_finite() && tolerance >= 0.0) {
                return Err("`tolerance` must be a number of 0 or more".into());
            }
            Ok(Expected::Number { value, tolerance })
        }
        MatchKind::Choice => {
            let choices = raw
                .choices
                .clone()
                .filter(|c| !c.is_empty())
                .ok_or("a choice question needs `choices`, a list of the options")?;
            if choices.len() > 26 {
                return Err("a choice question takes at most 26 choices (A to Z)".into());
            }
            let answer = text_answer()?;
            let answer = choice_index(&answer, &choices).ok_or_else(|| {
                format!(
                    "the answer {answer:?} is neither a choice letter (A to {}) nor one of the choices",
                    choice_letter(choices.len() - 1)
                )
            })?;
            Ok(Expected::Choice { choices, answer })
        }
        MatchKind::Bbox => {
            let numbers: Option<Vec<f64>> = raw
                .answer
                .as_array()
                .map(|a| a.iter().map(Value::as_f64).collect())
                .unwrap_or(None);
            let b = match numbers.as_deref() {
                Some(&[l, t, r, b]) if [l, t, r, b].iter().all(|v| v.is_finite()) => [l, t, r, b],
                _ => {
                    return Err(
                        "the answer of a bbox question must be [x1, y1, x2, y2] in pixels".into(),
                    )
                }
            };
            if !(b[0] < b[2] && b[1] < b[3]) {
                return Err("the answer box must have x1 < x2 and y1 < y2".into());
            }
            let iou = raw.iou.unwrap_or(DEFAULT_IOU);
            if !(iou > 0.0 && iou <= 1.0) {
                return Err("`iou` must be above 0 and at most 1".into());
            }
            Ok(Expected::Bbox { bbox: b, iou })
        }
    }
}

/// A choice answer given as a letter (`B`, `b`) or as a choice's text.
fn choice_index(answer: &str, choices: &[String]) -> Option<usize> {
    let a = answer.trim();
    let mut chars = a.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        if c.is_ascii_alphabetic() {
            let i = (c.to_ascii_uppercase() as u8 - b'A') as usize;
            if i < choices.len() {
                return Some(i);
            }
        }
    }
    choices
        .iter()
        .position(|c| c == a)
        .or_else(|| choices.iter().position(|c| normalize(c) == normalize(a)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_image() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("images")).unwrap();
        std::fs::write(dir.path().join("images/a.png"), b"not read here").unwrap();
        let base = dir.path().to_path_buf();
        (dir, base)
    }

    fn one(line: &str, base: &Path) -> Entry {
        parse_lines(line, base).remove(0)
    }

    #[test]
    fn every_match_kind_reads_its_answer() {
        let (_d, base) = with_image();
        let line = |rest: &str| {
            format!(
                r#"{{"id": "q", "category": "c", "images": ["images/a.png"], "question": "?", {rest}}}"#
            )
        };
        let item = |rest: &str| one(&line(rest), &base).unwrap().expected;
        assert_eq!(
            item(r#""answer": "Tea", "match": "exact""#),
            Expected::Exact("Tea".into())
        );
        assert_eq!(
            item(r#""answer": 12.5, "match": "number", "tolerance": 0.1"#),
            Expected::Number {
                value: 12.5,
                tolerance: 0.1
            }
        );
        assert_eq!(
            item(r#""answer": "3", "match": "number""#),
            Expected::Number {
                value: 3.0,
                tolerance: 0.0
            }
        );
        let choices = vec!["red".to_string(), "green".into(), "blue".into()];
        assert_eq!(
            item(r#""answer": "b", "match": "choice", "choices": ["red", "green", "blue"]"#),
            Expected::Choice {
                choices: choices.clone(),
                answer: 1
            }
        );
        assert_eq!(
            item(r#""answer": "Blue", "match": "choice", "choices": ["red", "green", "blue"]"#),
            Expected::Choice { choices, answer: 2 }
        );
        assert_eq!(
            item(r#""answer": [1, 2, 30, 40], "match": "bbox""#),
            Expected::Bbox {
                bbox: [1.0, 2.0, 30.0, 40.0],
                iou: DEFAULT_IOU
            }
        );
        let parsed = one(&line(r#""answer": "x", "match": "exact""#), &base).unwrap();
        assert_eq!(parsed.paths, vec![base.join("images/a.png")]);
    }

    #[test]
    fn written_items_read_back_the_same() {
        let (_d, base) = with_image();
        let expected = [
            Expected::Normalized("Corner Mart".into()),
            Expected::Number {
                value: -0.5,
                tolerance: 0.25,
            },
            Expected::Choice {
                choices: vec!["A".into(), "b".into()],
                answer: 1,
            },
            Expected::Bbox {
                bbox: [10.0, 20.0, 30.5, 40.0],
                iou: 0.7,
            },
        ];
        for (n, e) in expected.into_iter().enumerate() {
            let item = SuiteItem {
                line: n + 1,
                id: format!("q{n}"),
                category: "c".into(),
                images: vec!["images/a.png".into()],
                paths: vec![base.join("images/a.png")],
                question: "?".into(),
                expected: e,
                tags: vec!["small".into()],
            };
            let text = "\n".repeat(n) + &item.to_json_line();
            assert_eq!(one(&text, &base), Ok(item));
        }
    }

    #[test]
    fn broken_lines_are_reported_by_line_and_the_rest_is_read() {
        let (_d, base) = with_image();
        let text = [
            r#"{"id": "ok1", "category": "c", "question": "?", "answer": "a", "match": "exact"}"#,
            r#"{"id": "json", "category": "c", "question": "?""#,
            "",
            r#"{"id": "img", "category": "ocr", "images": ["images/missing.png"], "question": "?", "answer": "a", "match": "exact"}"#,
            r#"{"id": "kind", "category": "c", "question": "?", "answer": "a", "match": "fuzzy"}"#,
            r#"{"id": "num", "category": "c", "question": "?", "answer": "many", "match": "number"}"#,
            r#"{"id": "typo", "category": "c", "question": "?", "answer": 1, "match": "number", "tolerence": 1}"#,
            r#"{"id": "ok1", "category": "c", "question": "?", "answer": "a", "match": "exact"}"#,
            r#"{"id": "box", "category": "c", "images": ["images/a.png"], "question": "?", "answer": [5, 5, 1, 9], "match": "bbox"}"#,
            r#"{"id": "ch", "category": "c", "question": "?", "answer": "E", "match": "choice", "choices": ["x", "y"]}"#,
            r#"{"id": "tol", "category": "c", "question": "?", "answer": "a", "match": "exact", "tolerance": 1}"#,
            r#"[1, 2]"#,
            r#"{"id": "ok2", "category": "c", "question": "?", "answer": "a", "match": "normalized"}"#,
        ]
        .join("\n");
        let entries = parse_lines(&text, &base);
        let problems: Vec<(usize, String)> = entries
            .iter()
            .filter_map(|e| e.as_ref().err())
            .map(|p| (p.line, p.message.clone()))
            .collect();
        let expect = [
            (2, "not valid JSON"),
            (4, "missing.png: it does not exist"),
            (5, "unknown variant `fuzzy`"),
            (6, "must be a number"),
            (7, "unknown field `tolerence`"),
            (8, "already used on line 1"),
            (9, "x1 < x2"),
            (10, "neither a choice letter (A to B)"),
            (11, "`tolerance` only applies"),
            (12, "expected a JSON object"),
        ];
        assert_eq!(problems.len(), expect.len(), "{problems:#?}");
        for ((line, message), (want_line, want)) in problems.iter().zip(expect) {
            assert_eq!(*line, want_line);
            assert!(message.contains(want), "line {line}: {message}");
        }
        let ids: Vec<&str> = entries
            .iter()
            .filter_map(|e| e.as_ref().ok())
            .map(|i| i.id.as_str())
            .collect();
        assert_eq!(ids, ["ok1", "ok2"]);
        let img = entries[2].as_ref().unwrap_err();
        assert_eq!(
            (img.id.as_deref(), img.category.as_deref()),
            (Some("img"), Some("ocr")),
            "a problem keeps what could be read of its line"
        );
    }
}
