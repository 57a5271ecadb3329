//! The answers of a run, kept so that an interrupted run resumes where it
//! stopped: `answers.jsonl` gets one line per question as soon as it is
//! answered, flushed to disk before the next question starts; `run.json`
//! says which model and sampling settings the answers came from.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use super::suite::SuiteItem;
use crate::engine::SamplingOverrides;
use crate::session::atomic::write_atomic;

pub const ANSWERS_FILE: &str = "answers.jsonl";
pub const SETTINGS_FILE: &str = "run.json";

/// What the model did with one question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerRecord {
    pub id: String,
    /// The suite line it came from (when it was answered).
    pub line: usize,
    pub category: String,
    pub question: String,
    pub images: Vec<String>,
    pub reply: String,
    /// Boxes found in the reply, in original pixels of the last image.
    #[serde(default)]
    pub boxes: Vec<[f64; 4]>,
    pub finish_reason: String,
    /// From submitting the question to the last token.
    pub latency_s: f64,
    pub prompt_tokens: usize,
    pub new_tokens: usize,
    /// Of `new_tokens`, those of a thinking model's reasoning (the reply is
    /// the answer alone).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reasoning_tokens: usize,
    /// Tokens after the first and the time they took, for decode speed.
    pub decode_tokens: usize,
    pub decode_s: f64,
    /// Set when the engine could not answer; such a question is asked again
    /// on the next run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl AnswerRecord {
    /// An answer to this very question: same id, question and images.
    pub fn answers(&self, item: &SuiteItem) -> bool {
        self.id == item.id && self.question == item.question && self.images == item.images
    }
}

/// `answers.jsonl`, open for appending.
pub struct AnswersFile {
    file: File,
    path: PathBuf,
}

/// What was found in an existing answers file.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The latest record of each id.
    pub records: HashMap<String, AnswerRecord>,
    /// Lines that could not be read (left in place, ignored).
    pub unreadable_lines: Vec<usize>,
    /// Bytes of a last line cut short by a crash, removed.
    pub torn_bytes: usize,
}

impl AnswersFile {
    /// Opens (or creates) `dir/answers.jsonl` and reads what it holds. A last
    /// line without its newline (the process died while writing it) is cut
    /// off, so the next record starts on a line of its own.
    pub fn open(dir: &Path) -> anyhow::Result<(AnswersFile, Loaded)> {
        let path = dir.join(ANSWERS_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let mut text = Vec::new();
        file.read_to_end(&mut text)
            .with_context(|| format!("reading {}", path.display()))?;
        let complete = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let mut loaded = Loaded {
            torn_bytes: text.len() - complete,
            ..Loaded::default()
        };
        if loaded.torn_bytes > 0 {
            file.set_len(complete as u64)
                .and_then(|_| file.seek(SeekFrom::End(0)).map(|_| ()))
                .with_context(|| format!("repairing the last line of {}", path.display()))?;
        }
        for (i, line) in text[..complete].split(|&b| b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<AnswerRecord>(line) {
                Ok(r) => {
                    loaded.records.insert(r.id.clone(), r);
                }
                Err(_) => loaded.unreadable_lines.push(i + 1),
            }
        }
        Ok((AnswersFile { file, path }, loaded))
    }

    /// Appends one record and waits until it is on disk.
    pub fn append(&mut self, record: &AnswerRecord) -> anyhow::Result<()> {
        let mut line = serde_json::to_string(record)?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|_| self.file.sync_data())
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

/// The settings answers were made with; resuming with other settings would
/// mix two runs in one report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    pub model_dir: PathBuf,
    pub model_type: String,
    /// The preset's name, or `None` for the default (greedy) settings.
    pub preset: Option<String>,
    pub sampling: SamplingOverrides,
    pub system_prompt: Option<String>,
    /// Thinking asked for (`None`: the checkpoint's own default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<bool>,
    /// Where the latest run went; not compared.
    #[serde(default)]
    pub device: Option<String>,
    #[serde(default)]
    pub dtype: Option<String>,
}

impl RunSettings {
    /// The settings of earlier answers in `dir`, if any.
    pub fn read(dir: &Path) -> anyhow::Result<Option<RunSettings>> {
        let path = dir.join(SETTINGS_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map(Some).with_context(|| {
                format!(
                    "{} is not a glimpse eval settings file; remove it or pass another --out",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        let path = dir.join(SETTINGS_FILE);
        write_atomic(&path, serde_json::to_string_pretty(self)?.as_bytes())
            .with_context(|| format!("writing {}", path.display()))
    }

    /// `quick (temperature 0.1, at most 128 tokens, seed 0)`.
    pub fn describe_sampling(&self) -> String {
        let s = &self.sampling;
        let mut parts = Vec::new();
        if let Some(t) = s.temperature {
            parts.push(if t == 0.0 {
                "greedy".to_string()
            } else {
                format!("temperature {t}")
            });
        }
        if let Some(p) = s.top_p {
            parts.push(format!("top-p {p}"));
        }
        if let Some(k) = s.top_k {
            parts.push(format!("top-k {k}"));
        }
        if let Some(r) = s.repetition_penalty {
            parts.push(format!("repetition penalty {r}"));
        }
        if let Some(n) = s.max_new_tokens {
            parts.push(format!("at most {n} tokens"));
        }
        if let Some(seed) = s.seed {
            parts.push(format!("seed {seed}"));
        }
        if self.system_prompt.is_some() {
            parts.push("own system prompt".into());
        }
        let name = self.preset.as_deref().unwrap_or("default");
        if parts.is_empty() {
            name.to_string()
        } else {
            format!("{name} ({})", parts.join(", "))
        }
    }

    /// Refuses to add answers made differently from those already in `dir`.
    pub fn check_resumable(&self, earlier: &RunSettings, dir: &Path) -> anyhow::Result<()> {
        let mut differences = Vec::new();
        if self.model_dir != earlier.model_dir {
            differences.push(format!(
                "model {} (now {})",
                earlier.model_dir.display(),
                self.model_dir.display()
            ));
        }
        if self.preset != earlier.preset
            || self.sampling != earlier.sampling
            || self.system_prompt != earlier.system_prompt
        {
            differences.push(format!(
                "preset {} (now {})",
                earlier.describe_sampling(),
                self.describe_sampling()
            ));
        }
        if self.thinking != earlier.thinking {
            let say = |t: Option<bool>| match t {
                None => "the checkpoint's default",
                Some(true) => "on",
                Some(false) => "off",
            };
            differences.push(format!(
                "thinking {} (now {})",
                say(earlier.thinking),
                say(self.thinking)
            ));
        }
        if differences.is_empty() {
            return Ok(());
        }
        bail!(
            "the answers in {} were made with other settings: {}; pass another --out, or remove that folder to start over",
            dir.display(),
            differences.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, reply: &str) -> AnswerRecord {
        AnswerRecord {
            id: id.into(),
            line: 1,
            category: "c".into(),
            question: "?".into(),
            images: vec![],
            reply: reply.into(),
            boxes: vec![],
            finish_reason: "stop".into(),
            latency_s: 0.5,
            prompt_tokens: 10,
            new_tokens: 3,
            decode_tokens: 2,
            reasoning_tokens: 0,
            decode_s: 0.1,
            error: None,
        }
    }

    #[test]
    fn answers_survive_a_reopen_and_the_latest_of_an_id_wins() {
        let dir = tempfile::tempdir().unwrap();
        let (mut f, loaded) = AnswersFile::open(dir.path()).unwrap();
        assert!(loaded.records.is_empty());
        f.append(&record("a", "one")).unwrap();
        f.append(&record("b", "two")).unwrap();
        f.append(&record("a", "three")).unwrap();
        drop(f);
        let (_, loaded) = AnswersFile::open(dir.path()).unwrap();
        assert_eq!(loaded.records.len(), 2);
        assert_eq!(loaded.records["a"].reply, "three");
        assert_eq!(loaded.torn_bytes, 0);
    }

    #[test]
    fn a_line_cut_short_is_removed_and_the_next_answer_starts_clean() {
        let dir = tempfile::tempdir().unwrap();
        let (mut f, _) = AnswersFile::open(dir.path()).unwrap();
        f.append(&record("a", "one")).unwrap();
        drop(f);
        let path = dir.path().join(ANSWERS_FILE);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"id\": \"b\", \"rep");
        text.push_str("\nnot json\n");
        text.push_str("{\"id\": \"c\"");
        std::fs::write(&path, &text).unwrap();
        let (mut f, loaded) = AnswersFile::open(dir.path()).unwrap();
        assert_eq!(loaded.torn_bytes, "{\"id\": \"c\"".len());
        assert_eq!(loaded.unreadable_lines, vec![2, 3]);
        assert_eq!(loaded.records.len(), 1);
        f.append(&record("d", "four")).unwrap();
        drop(f);
        let (_, loaded) = AnswersFile::open(dir.path()).unwrap();
        assert!(loaded.records.contains_key("d"));
        assert_eq!(loaded.torn_bytes, 0);
    }

    #[test]
    fn resuming_needs_the_same_model_and_sampling() {
        let dir = tempfile::tempdir().unwrap();
        let settings = RunSettings {
            model_dir: "models/a".into(),
            model_type: "qwen2_vl".into(),
            preset: None,
            sampling: SamplingOverrides {
                temperature: Some(0.0),
                ..Default::default()
            },
            system_prompt: None,
            thinking: None,
            device: Some("cpu".into()),
            dtype: Some("f32".into()),
        };
        assert!(RunSettings::read(dir.path()).unwrap().is_none());
        settings.write(dir.path()).unwrap();
        let earlier = RunSettings::read(dir.path()).unwrap().unwrap();
        assert_eq!(earlier, settings);
        let elsewhere = RunSettings {
            device: Some("cuda:0".into()),
            ..settings.clone()
        };
        assert!(elsewhere.check_resumable(&earlier, dir.path()).is_ok());
        let other = RunSettings {
            preset: Some("quick".into()),
            sampling: SamplingOverrides {
                temperature: Some(0.1),
                ..Default::default()
            },
            ..settings.clone()
        };
        let e = other
            .check_resumable(&earlier, dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("preset default (greedy) (now quick (temperature 0.1))"),
            "{e}"
        );
        assert!(e.contains("pass another --out"), "{e}");
    }
}
