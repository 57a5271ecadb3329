//! The scores of a run: every question's outcome, tallies per category and
//! overall, as JSON and as a Markdown page. Built from the suite and the
//! stored answers alone, so a resumed run reports the same as one that was
//! never interrupted.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use super::matching::judge;
use super::results::{AnswerRecord, RunSettings};
use super::suite::{Entry, LineProblem, SuiteItem};

/// What became of one question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Correct,
    Wrong,
    /// A broken suite line, a missing image, or the engine failed.
    Error,
    /// Not asked yet (the run was stopped, or `--limit`ed before).
    NotRun,
}

/// One line of the suite in the report.
#[derive(Debug, Clone, Serialize)]
pub struct ItemReport {
    pub line: usize,
    pub id: Option<String>,
    pub category: Option<String>,
    #[serde(rename = "match")]
    pub match_kind: Option<&'static str>,
    pub question: Option<String>,
    pub expected: Option<String>,
    pub outcome: Outcome,
    pub reply: Option<String>,
    /// What was read from the reply (number, choice, box).
    pub read: Option<String>,
    pub error: Option<String>,
    pub boxes: Vec<[f64; 4]>,
    pub finish_reason: Option<String>,
    pub latency_s: Option<f64>,
    pub prompt_tokens: Option<usize>,
    pub new_tokens: Option<usize>,
    /// Of `new_tokens`, a thinking model's reasoning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<usize>,
    pub tags: Vec<String>,
}

/// Counts for a category or the whole suite. `items` is always `correct +
/// wrong + errors + not_run`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tally {
    pub category: String,
    pub items: usize,
    pub correct: usize,
    pub wrong: usize,
    pub errors: usize,
    pub not_run: usize,
    /// `correct / (correct + wrong)`; `None` before any answer.
    pub accuracy: Option<f64>,
    pub mean_latency_s: Option<f64>,
    /// Decode speed: tokens after the first over the time they took.
    pub tokens_per_s: Option<f64>,
    /// Mean reasoning tokens per answer; `None` when no answer reasoned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_reasoning_tokens: Option<f64>,
    #[serde(skip)]
    latency_sum: f64,
    #[serde(skip)]
    reasoning_tokens: usize,
    #[serde(skip)]
    decode_tokens: usize,
    #[serde(skip)]
    decode_s: f64,
}

impl Tally {
    fn named(category: &str) -> Tally {
        Tally {
            category: category.to_string(),
            ..Tally::default()
        }
    }

    fn add(&mut self, item: &ItemReport, record: Option<&AnswerRecord>) {
        self.items += 1;
        match item.outcome {
            Outcome::Correct => self.correct += 1,
            Outcome::Wrong => self.wrong += 1,
            Outcome::Error => self.errors += 1,
            Outcome::NotRun => self.not_run += 1,
        }
        if let (Some(r), Outcome::Correct | Outcome::Wrong) = (record, item.outcome) {
            self.latency_sum += r.latency_s;
            self.decode_tokens += r.decode_tokens;
            self.decode_s += r.decode_s;
            self.reasoning_tokens += r.reasoning_tokens;
        }
    }

    fn finish(&mut self) {
        let answered = self.correct + self.wrong;
        if answered > 0 {
            self.accuracy = Some(self.correct as f64 / answered as f64);
            self.mean_latency_s = Some(self.latency_sum / answered as f64);
            if self.reasoning_tokens > 0 {
                self.mean_reasoning_tokens = Some(self.reasoning_tokens as f64 / answered as f64);
            }
        }
        if self.decode_s > 0.0 {
            self.tokens_per_s = Some(self.decode_tokens as f64 / self.decode_s);
        }
    }
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub suite: PathBuf,
    pub settings: RunSettings,
    pub overall: Tally,
    /// In order of first appearance in the suite.
    pub categories: Vec<Tally>,
    /// Every line of the suite (up to `--limit`), in order.
    pub items: Vec<ItemReport>,
}

/// Category of suite lines too broken to name one.
pub const UNKNOWN_CATEGORY: &str = "(unreadable)";

/// Scores `entries` with the stored `records` (keyed by id); a record
/// counts only if it answers the same question with the same images.
pub fn build(
    suite: PathBuf,
    settings: RunSettings,
    entries: &[Entry],
    records: &HashMap<String, AnswerRecord>,
) -> Report {
    let mut overall = Tally::named("all");
    let mut categories: Vec<Tally> = Vec::new();
    let mut items = Vec::with_capacity(entries.len());
    for entry in entries {
        let (item, record) = match entry {
            Err(p) => (ItemReport::broken(p), None),
            Ok(q) => {
                let record = records.get(&q.id).filter(|r| r.answers(q));
                (ItemReport::scored(q, record), record)
            }
        };
        let name = item.category.as_deref().unwrap_or(UNKNOWN_CATEGORY);
        tally_named(&mut categories, name).add(&item, record);
        overall.add(&item, record);
        items.push(item);
    }
    for t in &mut categories {
        t.finish();
    }
    overall.finish();
    Report {
        suite,
        settings,
        overall,
        categories,
        items,
    }
}

/// The tally of category `name`, added at the end the first time.
fn tally_named<'a>(categories: &'a mut Vec<Tally>, name: &str) -> &'a mut Tally {
    match categories.iter().position(|t| t.category == name) {
        Some(i) => &mut categories[i],
        None => {
            categories.push(Tally::named(name));
            categories.last_mut().expect("just pushed")
        }
    }
}

impl ItemReport {
    /// A line of the suite and nothing more known yet.
    fn at_line(line: usize) -> ItemReport {
        ItemReport {
            line,
            id: None,
            category: None,
            match_kind: None,
            question: None,
            expected: None,
            outcome: Outcome::NotRun,
            reply: None,
            read: None,
            error: None,
            boxes: vec![],
            finish_reason: None,
            latency_s: None,
            prompt_tokens: None,
            new_tokens: None,
            reasoning_tokens: None,
            tags: vec![],
        }
    }

    /// A suite line too broken to ask.
    fn broken(p: &LineProblem) -> ItemReport {
        ItemReport {
            id: p.id.clone(),
            category: p.category.clone(),
            outcome: Outcome::Error,
            error: Some(p.message.clone()),
            ..ItemReport::at_line(p.line)
        }
    }

    /// A question, judged by its answer when it has one.
    fn scored(q: &SuiteItem, record: Option<&AnswerRecord>) -> ItemReport {
        let mut item = ItemReport {
            id: Some(q.id.clone()),
            category: Some(q.category.clone()),
            match_kind: Some(q.expected.kind()),
            question: Some(q.question.clone()),
            expected: Some(q.expected.describe()),
            tags: q.tags.clone(),
            ..ItemReport::at_line(q.line)
        };
        let Some(r) = record else {
            return item;
        };
        item.latency_s = Some(r.latency_s);
        item.finish_reason = Some(r.finish_reason.clone());
        item.prompt_tokens = Some(r.prompt_tokens);
        item.new_tokens = Some(r.new_tokens);
        item.reasoning_tokens = Some(r.reasoning_tokens).filter(|&n| n > 0);
        item.boxes = r.boxes.clone();
        match &r.error {
            Some(e) => {
                item.outcome = Outcome::Error;
                item.error = Some(e.clone());
            }
            None => {
                let v = judge(&q.expected, &r.reply, &r.boxes);
                item.outcome = if v.correct {
                    Outcome::Correct
                } else {
                    Outcome::Wrong
                };
                item.reply = Some(r.reply.clone());
                item.read = v.read;
            }
        }
        item
    }
}

impl Report {
    /// The report as a Markdown page.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let s = &self.settings;
        let _ = writeln!(md, "# glimpse eval: {}\n", self.suite.display());
        let _ = writeln!(
            md,
            "- model: `{}` ({})",
            s.model_dir.display(),
            s.model_type
        );
        if let (Some(device), Some(dtype)) = (&s.device, &s.dtype) {
            let _ = writeln!(md, "- device: {device}, {dtype}");
        }
        let _ = writeln!(md, "- preset: {}", s.describe_sampling());
        if let Some(on) = s.thinking {
            let _ = writeln!(md, "- thinking: {}", if on { "on" } else { "off" });
        }
        if let Some(mean) = self.overall.mean_reasoning_tokens {
            let _ = writeln!(md, "- mean reasoning tokens per answer: {mean:.0}");
        }
        let o = &self.overall;
        let _ = writeln!(
            md,
            "- {} questions: {} correct, {} wrong, {} errors, {} not run\n",
            o.items, o.correct, o.wrong, o.errors, o.not_run
        );
        md.push_str(&self.table());
        md.push_str(
            "\nAccuracy is correct answers over answered questions; errors (broken suite \
             lines, missing images, engine failures) are not answers and are left out.\n",
        );
        let errors: Vec<&ItemReport> = self
            .items
            .iter()
            .filter(|i| i.outcome == Outcome::Error)
            .collect();
        if !errors.is_empty() {
            let _ = writeln!(md, "\n## Errors\n\n| line | id | problem |\n|---:|---|---|");
            for i in errors {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} |",
                    i.line,
                    cell(i.id.as_deref().unwrap_or("")),
                    cell(i.error.as_deref().unwrap_or(""))
                );
            }
        }
        let _ = writeln!(
            md,
            "\n## Answers\n\n| line | id | category | match | expected | reply | read | result |\n|---:|---|---|---|---|---|---|---|"
        );
        for i in self
            .items
            .iter()
            .filter(|i| matches!(i.outcome, Outcome::Correct | Outcome::Wrong))
        {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                i.line,
                cell(i.id.as_deref().unwrap_or("")),
                cell(i.category.as_deref().unwrap_or("")),
                i.match_kind.unwrap_or(""),
                cell(i.expected.as_deref().unwrap_or("")),
                cell(&shorten(i.reply.as_deref().unwrap_or(""), 80)),
                cell(i.read.as_deref().unwrap_or("")),
                if i.outcome == Outcome::Correct {
                    "correct"
                } else {
                    "wrong"
                }
            );
        }
        md
    }

    /// The per-category table, with the overall row last; a thinking
    /// model's run has a column of mean reasoning tokens.
    pub fn table(&self) -> String {
        let reasoned = self.overall.mean_reasoning_tokens.is_some();
        let mut md = String::from(
            "| category | questions | correct | wrong | errors | not run | accuracy | mean latency | tokens/s |",
        );
        md.push_str(if reasoned {
            " reasoning tokens |\n"
        } else {
            "\n"
        });
        md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        md.push_str(if reasoned { "---:|\n" } else { "\n" });
        for t in self.categories.iter().chain([&self.overall]) {
            let name = if std::ptr::eq(t, &self.overall) {
                "**all**".to_string()
            } else {
                cell(&t.category)
            };
            let _ = write!(
                md,
                "| {name} | {} | {} | {} | {} | {} | {} | {} | {} |",
                t.items,
                t.correct,
                t.wrong,
                t.errors,
                t.not_run,
                t.accuracy
                    .map_or("–".into(), |a| format!("{:.1} %", a * 100.0)),
                t.mean_latency_s.map_or("–".into(), |s| format!("{s:.2} s")),
                t.tokens_per_s.map_or("–".into(), |r| format!("{r:.1}")),
            );
            if reasoned {
                let mean = t.mean_reasoning_tokens.unwrap_or(0.0);
                let _ = write!(md, " {mean:.0} |");
            }
            md.push('\n');
        }
        md
    }
}

/// Text fit for one Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

fn shorten(s: &str, max: usize) -> String {
    let mut chars = s.chars();
    let mut out: String = chars.by_ref().take(max).collect();
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::suite::parse_lines;

    fn settings() -> RunSettings {
        RunSettings {
            model_dir: "m".into(),
            model_type: "qwen2_vl".into(),
            preset: None,
            sampling: Default::default(),
            system_prompt: None,
            thinking: None,
            device: None,
            dtype: None,
        }
    }

    fn record(id: &str, reply: &str, latency_s: f64, error: Option<&str>) -> AnswerRecord {
        AnswerRecord {
            id: id.into(),
            line: 0,
            category: String::new(),
            question: "?".into(),
            images: vec![],
            reply: reply.into(),
            boxes: vec![],
            finish_reason: "stop".into(),
            latency_s,
            prompt_tokens: 5,
            new_tokens: 3,
            reasoning_tokens: 0,
            decode_tokens: 2,
            decode_s: 0.5,
            error: error.map(str::to_string),
        }
    }

    #[test]
    fn tallies_add_up_per_category_and_overall() {
        let text = [
            r#"{"id": "a", "category": "ocr", "question": "?", "answer": "x", "match": "exact"}"#,
            r#"{"id": "b", "category": "ocr", "question": "?", "answer": "y", "match": "exact"}"#,
            r#"{"id": "c", "category": "logic", "question": "?", "answer": 3, "match": "number"}"#,
            r#"{"id": "d", "category": "logic", "question": "?", "answer": 3, "match": "number"}"#,
            r#"{"id": "e", "category": "ocr", "question": "?", "answer": "y", "match": "exact"}"#,
            r#"{"id": "broken", "category": "logic", "question": "?"}"#,
            r#"{"id": "f", "category": "ocr", "question": "other?", "answer": "y", "match": "exact"}"#,
        ]
        .join("\n");
        let entries = parse_lines(&text, std::path::Path::new("."));
        let records: HashMap<String, AnswerRecord> = [
            record("a", "x", 1.0, None),
            record("b", "x", 3.0, None),
            record("c", "it is 3", 2.0, None),
            record("d", "", 9.0, Some("out of memory")),
            // Answers another question with the same id: not counted.
            record("f", "y", 1.0, None),
        ]
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();
        let report = build("s.jsonl".into(), settings(), &entries, &records);
        let outcomes: Vec<Outcome> = report.items.iter().map(|i| i.outcome).collect();
        use Outcome::*;
        assert_eq!(
            outcomes,
            [Correct, Wrong, Correct, Error, NotRun, Error, NotRun]
        );
        let ocr = &report.categories[0];
        assert_eq!(ocr.category, "ocr");
        assert_eq!(
            (ocr.items, ocr.correct, ocr.wrong, ocr.errors, ocr.not_run),
            (4, 1, 1, 0, 2)
        );
        assert_eq!(ocr.accuracy, Some(0.5));
        assert_eq!(ocr.mean_latency_s, Some(2.0));
        assert_eq!(ocr.tokens_per_s, Some(4.0));
        let logic = &report.categories[1];
        assert_eq!(logic.category, "logic", "a broken line keeps its category");
        assert_eq!((logic.items, logic.correct, logic.errors), (3, 1, 2));
        assert_eq!(logic.accuracy, Some(1.0), "errors are not wrong answers");
        let all = &report.overall;
        assert_eq!(
            (all.items, all.correct, all.wrong, all.errors, all.not_run),
            (7, 2, 1, 2, 2)
        );
        assert_eq!(all.accuracy, Some(2.0 / 3.0));
        let md = report.markdown();
        assert!(
            md.contains("| ocr | 4 | 1 | 1 | 0 | 2 | 50.0 % | 2.00 s | 4.0 |"),
            "{md}"
        );
        assert!(
            md.contains("| **all** | 7 | 2 | 1 | 2 | 2 | 66.7 % |"),
            "{md}"
        );
        assert!(md.contains("| 4 | d | out of memory |"), "{md}");
        assert!(md.contains("| 6 | broken | missing field `answer`"), "{md}");
    }

    #[test]
    fn a_thinking_run_reports_mean_reasoning_tokens_per_category() {
        let text = [
            r#"{"id": "a", "category": "ocr", "question": "?", "answer": "x", "match": "exact"}"#,
            r#"{"id": "b", "category": "ocr", "question": "?", "answer": "y", "match": "exact"}"#,
            r#"{"id": "c", "category": "logic", "question": "?", "answer": 3, "match": "number"}"#,
        ]
        .join("\n");
        let entries = parse_lines(&text, std::path::Path::new("."));
        let reasoned = |id: &str, reply: &str, n: usize| AnswerRecord {
            reasoning_tokens: n,
            new_tokens: n + 3,
            ..record(id, reply, 1.0, None)
        };
        let records: HashMap<String, AnswerRecord> = [
            reasoned("a", "x", 100),
            reasoned("b", "", 300),
            reasoned("c", "3", 0),
        ]
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();
        let settings = RunSettings {
            thinking: Some(true),
            ..settings()
        };
        let report = build("s".into(), settings, &entries, &records);
        assert_eq!(report.categories[0].mean_reasoning_tokens, Some(200.0));
        assert_eq!(report.categories[1].mean_reasoning_tokens, None);
        assert_eq!(report.overall.mean_reasoning_tokens, Some(400.0 / 3.0));
        assert_eq!(report.items[1].reasoning_tokens, Some(300));
        let md = report.markdown();
        assert!(md.contains("- thinking: on\n"), "{md}");
        assert!(md.contains("| tokens/s | reasoning tokens |"), "{md}");
        assert!(
            md.contains("| ocr | 2 | 1 | 1 | 0 | 0 | 50.0 % | 1.00 s | 4.0 | 200 |"),
            "{md}"
        );
        assert!(
            md.contains("| logic | 1 | 1 | 0 | 0 | 0 | 100.0 % | 1.00 s | 4.0 | 0 |"),
            "{md}"
        );
    }

    #[test]
    fn nothing_answered_yet_has_no_accuracy() {
        let entries = parse_lines(
            r#"{"id": "a", "category": "ocr", "question": "?", "answer": "x", "match": "exact"}"#,
            std::path::Path::new("."),
        );
        let report = build("s".into(), settings(), &entries, &HashMap::new());
        assert_eq!(report.overall.accuracy, None);
        assert!(report
            .markdown()
            .contains("| **all** | 1 | 0 | 0 | 0 | 1 | – | – | – |"));
    }

    #[test]
    fn table_cells_survive_pipes_and_newlines() {
        assert_eq!(cell("a|b\nc"), "a\\|b c");
        assert_eq!(shorten("abcdef", 3), "abc…");
    }
}
