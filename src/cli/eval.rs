//! `glimpse eval`: asks a model every question of a JSONL suite, scores the
//! replies, and writes a report per category; or, with `--make-suite`, draws
//! a synthetic suite.
//!
//! Answers go to `OUT/answers.jsonl` one line at a time, on disk before the
//! next question, so a run stopped by Ctrl-C, a crash or a kill resumes where
//! it was: answered questions are not asked again.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::grounding;
use super::model_arg::{announce, load_with_readings, ModelFlags};
use super::output;
use super::remote_arg::RemoteFlags;
use super::sampling_arg::SamplingFlags;
use super::thinking_arg::{self, ThinkingFlag};
use crate::conversation::{Conversation, Message, Part, Role};
use crate::engine::{
    check_model_dir, Backend, ContextPolicy, Engine, Event, FinishReason, ImageFacts, Request,
    SamplingOverrides,
};
use crate::eval::matching::judge;
use crate::eval::report::{self, Report};
use crate::eval::results::{AnswerRecord, AnswersFile, RunSettings};
use crate::eval::suite::{Entry, Suite, SuiteItem};
use crate::eval::synth::{make_suite, DEFAULT_COUNT};
use crate::gpu::Sampler;
use crate::model::ModelConfig;
use crate::processor::grounding::{GroundingFamily, Shape};
use crate::processor::image::{AlphaMode, LongEdgeCap};
use crate::remote::Remote;
use crate::session::atomic::write_atomic;
use crate::session::Config;

pub const REPORT_MD: &str = "report.md";
pub const REPORT_JSON: &str = "report.json";

#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelFlags,
    #[command(flatten)]
    pub remote: RemoteFlags,
    /// The questions: a JSONL file, one question per line (see README).
    #[arg(long, value_name = "FILE", required_unless_present = "make_suite")]
    pub suite: Option<PathBuf>,
    /// Sample with this preset of the config file [default: greedy decoding
    /// with the model's other defaults].
    #[arg(long, value_name = "NAME")]
    pub preset: Option<String>,
    /// Only the first N questions of the suite (broken lines count).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Folder for answers.jsonl, report.md and report.json; an existing one
    /// is resumed [default: SUITE_FOLDER/results/MODEL[-PRESET]].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Sampling; each flag given overrides the preset's.
    #[command(flatten)]
    pub sampling: SamplingFlags,
    /// Each answer is scored without its reasoning; the preset's `thinking`
    /// comes between this flag and the config's.
    #[command(flatten)]
    pub thinking: ThinkingFlag,
    /// Draw a synthetic suite into DIR (DIR/suite.jsonl, DIR/images/) instead
    /// of running one.
    #[arg(
        long = "make-suite",
        value_name = "DIR",
        conflicts_with_all = [
            "suite", "model", "offline", "preset", "limit", "out", "device", "dtype", "quant",
            "quant_vision",
            "temperature", "top_p", "top_k", "repetition_penalty", "max_tokens",
            "thinking",
        ]
    )]
    pub make_suite: Option<PathBuf>,
    /// With --make-suite: how many questions [default: 300].
    #[arg(long, value_name = "N")]
    pub count: Option<usize>,
}

pub fn run(args: EvalArgs) -> anyhow::Result<i32> {
    if args.count.is_some() && args.make_suite.is_none() {
        bail!("--count is the size of a suite drawn with --make-suite; use --limit to run part of a suite");
    }
    if let Some(dir) = &args.make_suite {
        return make(
            dir,
            args.sampling.seed.unwrap_or(0),
            args.count.unwrap_or(DEFAULT_COUNT),
        );
    }
    let Some(suite_path) = args.suite.clone() else {
        bail!("give --suite FILE to run, or --make-suite DIR to draw one");
    };
    let suite = Suite::read(&suite_path)?;
    let scope = in_scope(&suite, args.limit)?;
    let config = Config::load()?;
    let cap = config.long_edge_cap;
    let remote = args
        .remote
        .connect(&config, args.model.spec(&config), cap, AlphaMode::White)?;
    let mut run = Run::plan(&args, &config, suite_path, remote.as_ref())?;
    let (mut answers, mut records) = open_answers(&run.out)?;
    let questions = readable_questions(&run.suite, scope);
    let todo = unanswered(&questions, &records);
    let progress = Progress {
        total: questions.len(),
        done: questions.len() - todo.len(),
    };
    eprintln!(
        "glimpse: {} questions, {} already answered in {}, {} to ask",
        progress.total,
        progress.done,
        run.out.display(),
        todo.len()
    );
    let stopped = if todo.is_empty() {
        run.settings.write(&run.out)?;
        false
    } else {
        let on = AskedOn {
            args: &args,
            config: &config,
            remote: remote.as_ref(),
        };
        run.ask_all(&on, &todo, progress, &mut answers, &mut records)?
    };
    run.report(scope, &records)?;
    Ok(if stopped { 130 } else { 0 })
}

/// The suite's entries up to `--limit`; none is an error.
fn in_scope(suite: &Suite, limit: Option<usize>) -> anyhow::Result<&[Entry]> {
    let scope: &[Entry] = match limit {
        Some(n) => &suite.entries[..n.min(suite.entries.len())],
        None => &suite.entries,
    };
    if scope.is_empty() {
        bail!(
            "{} has no questions; write one JSON object per line",
            suite.path.display()
        );
    }
    Ok(scope)
}

/// The questions of `scope`; its broken lines are reported on stderr.
fn readable_questions<'a>(suite: &Path, scope: &'a [Entry]) -> Vec<&'a SuiteItem> {
    for p in scope.iter().filter_map(|e| e.as_ref().err()) {
        eprintln!("{}: line {}: {}", suite.display(), p.line, p.message);
    }
    scope.iter().filter_map(|e| e.as_ref().ok()).collect()
}

/// The questions without an answer yet; engine failures are asked again.
fn unanswered<'a>(
    questions: &[&'a SuiteItem],
    records: &HashMap<String, AnswerRecord>,
) -> Vec<&'a SuiteItem> {
    questions
        .iter()
        .copied()
        .filter(|q| {
            !records
                .get(&q.id)
                .is_some_and(|r| r.answers(q) && r.error.is_none())
        })
        .collect()
}

/// The answers file of `out` and the answers already in it; what had to be
/// dropped or ignored is said on stderr.
fn open_answers(out: &Path) -> anyhow::Result<(AnswersFile, HashMap<String, AnswerRecord>)> {
    let (answers, loaded) = AnswersFile::open(out)?;
    if loaded.torn_bytes > 0 {
        eprintln!("glimpse: removed an answer cut short by the interruption; it is asked again");
    }
    for line in &loaded.unreadable_lines {
        eprintln!(
            "glimpse: {}: line {line} is not an answer record; ignored",
            out.join(crate::eval::results::ANSWERS_FILE).display()
        );
    }
    Ok((answers, loaded.records))
}

/// A run of a suite: where its answers go and how they are asked.
struct Run {
    suite: PathBuf,
    out: PathBuf,
    settings: RunSettings,
}

/// Questions in scope, and how many of them were answered before.
#[derive(Clone, Copy)]
struct Progress {
    total: usize,
    done: usize,
}

impl Run {
    /// The run's settings from the flags and the config; an earlier run in
    /// the same folder must have used the same ones, and its device is kept.
    fn plan(
        args: &EvalArgs,
        config: &Config,
        suite: PathBuf,
        remote: Option<&Remote>,
    ) -> anyhow::Result<Run> {
        let (sampling, system_prompt) = sampling_of(args, config)?;
        let preset_thinking = args
            .preset
            .as_deref()
            .and_then(|name| config.preset(name))
            .and_then(|p| p.thinking);
        let thinking = args.thinking.or(preset_thinking.or(config.thinking));
        let spec = args.model.spec(config);
        let (model_dir, model_type) = match remote {
            // A server's model is named by its URL and name, so that a run
            // resumes only on the same one.
            Some(r) => (
                PathBuf::from(format!("{}#{}", r.server(), r.model())),
                r.model_type().unwrap_or_default().to_string(),
            ),
            None => local_model(args, config)?,
        };
        let out = args
            .out
            .clone()
            .unwrap_or_else(|| default_out(&suite, &spec, args.preset.as_deref()));
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        let mut settings = RunSettings {
            model_dir,
            model_type,
            preset: args.preset.clone(),
            sampling,
            system_prompt,
            thinking,
            device: None,
            dtype: None,
        };
        if let Some(earlier) = RunSettings::read(&out)? {
            settings.check_resumable(&earlier, &out)?;
            settings.device = earlier.device;
            settings.dtype = earlier.dtype;
        }
        Ok(Run {
            suite,
            out,
            settings,
        })
    }

    /// Loads the model (or takes the server) and asks `todo`, each answer
    /// on disk before the next question; returns whether Ctrl-C stopped the run.
    fn ask_all(
        &mut self,
        on: &AskedOn,
        todo: &[&SuiteItem],
        progress: Progress,
        answers: &mut AnswersFile,
        records: &mut HashMap<String, AnswerRecord>,
    ) -> anyhow::Result<bool> {
        let loaded = match on.remote {
            Some(_) => None,
            None => Some(load_engine(on.args, on.config, &self.settings.model_dir)?),
        };
        let engine = loaded.as_ref().map(|(engine, _sampler)| engine);
        let backend: &dyn Backend = match (engine, on.remote) {
            (Some(engine), _) => engine,
            (None, Some(remote)) => remote,
            (None, None) => bail!("no model to ask"),
        };
        match engine {
            Some(e) => {
                self.settings.device = Some(e.info().device.clone());
                self.settings.dtype = Some(e.info().precision());
            }
            None => (self.settings.device, self.settings.dtype) = (None, None),
        }
        self.settings.write(&self.out)?;
        let asker = Asker {
            backend,
            engine,
            family: GroundingFamily::from_model_type(&self.settings.model_type),
            cap: on.config.long_edge_cap,
            sampling: self.settings.sampling.clone(),
            system_prompt: self.settings.system_prompt.clone(),
            // A server's template decides what it can do with the choice.
            thinking: match engine {
                Some(e) => thinking_arg::for_engine(e.info().thinking, self.settings.thinking),
                None => self.settings.thinking,
            },
        };
        let interrupt = Interrupt::install();
        let mut tally = Tally::new(progress_bar(progress.total, progress.done));
        let mut stopped = false;
        for item in todo {
            if interrupt.stop_requested() {
                stopped = true;
                break;
            }
            let Some(record) = asker.ask(item, interrupt.abandon.clone())? else {
                stopped = true;
                break;
            };
            answers.append(&record)?;
            tally.add(item, &record, &self.suite, progress.total);
            records.insert(record.id.clone(), record);
        }
        tally.bar.finish_and_clear();
        if stopped {
            eprintln!("glimpse: stopped; run the same command again to go on");
        }
        Ok(stopped)
    }

    /// Scores every question in scope and writes the reports; the table
    /// goes to stdout.
    fn report(
        self,
        scope: &[Entry],
        records: &HashMap<String, AnswerRecord>,
    ) -> anyhow::Result<()> {
        let report = report::build(self.suite, self.settings, scope, records);
        write_reports(&report, &self.out)?;
        output::stdout().write_all(report.table().as_bytes())?;
        eprintln!(
            "glimpse: wrote {} and {}",
            self.out.join(REPORT_MD).display(),
            self.out.join(REPORT_JSON).display()
        );
        Ok(())
    }
}

/// This run's verdicts, on the progress bar (or a line each without one).
struct Tally {
    bar: ProgressBar,
    correct: usize,
    answered: usize,
}

impl Tally {
    fn new(bar: ProgressBar) -> Tally {
        Tally {
            bar,
            correct: 0,
            answered: 0,
        }
    }

    fn add(&mut self, item: &SuiteItem, record: &AnswerRecord, suite: &Path, total: usize) {
        let verdict = match &record.error {
            Some(e) => {
                self.bar
                    .println(format!("{}: line {}: {e}", suite.display(), item.line));
                "error"
            }
            None => {
                self.answered += 1;
                if judge(&item.expected, &record.reply, &record.boxes).correct {
                    self.correct += 1;
                    "correct"
                } else {
                    "wrong"
                }
            }
        };
        if self.bar.is_hidden() {
            eprintln!(
                "[{}/{total}] {}: {verdict} ({:.2} s)",
                self.bar.position() + 1,
                item.id,
                record.latency_s
            );
        }
        self.bar.inc(1);
        self.bar.set_message(format!(
            "{}/{} correct this run",
            self.correct, self.answered
        ));
    }
}

fn make(dir: &Path, seed: u64, count: usize) -> anyhow::Result<i32> {
    let made = make_suite(dir, seed, count)?;
    let mut per: HashMap<&str, usize> = HashMap::new();
    for item in &made.items {
        *per.entry(item.category.as_str()).or_default() += 1;
    }
    eprintln!(
        "glimpse: wrote {} questions ({}) on {} images: {}",
        made.items.len(),
        crate::eval::synth::CATEGORIES
            .iter()
            .map(|c| format!("{} {c}", per.get(c).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join(", "),
        made.images,
        made.suite.display()
    );
    Ok(0)
}

/// The sampling settings and system prompt: greedy by default, a preset's
/// when named, the sampling flags over either; a fixed seed either way, so a
/// run can be repeated.
fn sampling_of(
    args: &EvalArgs,
    config: &Config,
) -> anyhow::Result<(SamplingOverrides, Option<String>)> {
    let (base, system) = match &args.preset {
        None => (
            SamplingOverrides {
                temperature: Some(0.0),
                ..Default::default()
            },
            None,
        ),
        Some(name) => {
            let Some(preset) = config.preset(name) else {
                let names: Vec<&str> = config.presets.iter().map(|p| p.name.as_str()).collect();
                bail!(
                    "unknown preset {name:?}; the config has {}",
                    names.join(", ")
                );
            };
            (preset.sampling(None), preset.system_prompt.clone())
        }
    };
    let mut sampling = args.sampling.over(base)?;
    sampling.seed.get_or_insert(0);
    Ok((sampling, system))
}

/// `SUITE_FOLDER/results/MODEL[-PRESET]`, MODEL being the last part of the
/// model's directory or hub id.
fn default_out(suite: &Path, model_spec: &str, preset: Option<&str>) -> PathBuf {
    let model = model_spec
        .trim_end_matches(['/', '\\'])
        .rsplit(['/', '\\'])
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or("model");
    let mut name: String = model
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if let Some(p) = preset {
        name.push('-');
        name.push_str(p);
    }
    suite
        .parent()
        .unwrap_or(Path::new("."))
        .join("results")
        .join(name)
}

/// The engine, and the GPU sampler its KV-cache policy reads (kept for as
/// long as the engine).
fn load_engine(
    args: &EvalArgs,
    config: &Config,
    model_dir: &Path,
) -> anyhow::Result<(Engine, Sampler)> {
    let loaded = load_with_readings(args.model.engine_options(config, model_dir.to_path_buf()))?;
    announce(loaded.0.info());
    Ok(loaded)
}

/// What `eval` runs on: the flags and config, and the server if any.
struct AskedOn<'a> {
    args: &'a EvalArgs,
    config: &'a Config,
    remote: Option<&'a Remote>,
}

/// The local model's directory and `model_type`.
fn local_model(args: &EvalArgs, config: &Config) -> anyhow::Result<(PathBuf, String)> {
    let model_dir = args.model.resolve_dir(config)?;
    check_model_dir(&model_dir)?;
    let model_type = ModelConfig::from_model_dir(&model_dir)
        .with_context(|| format!("reading the model in {}", model_dir.display()))?
        .family
        .model_type()
        .to_string();
    Ok((model_dir, model_type))
}

/// Asks one question at a time, each as a conversation of its own.
struct Asker<'a> {
    backend: &'a dyn Backend,
    /// The local engine, whose cache is reset between questions.
    engine: Option<&'a Engine>,
    family: Option<GroundingFamily>,
    cap: Option<LongEdgeCap>,
    sampling: SamplingOverrides,
    system_prompt: Option<String>,
    thinking: Option<bool>,
}

impl Asker<'_> {
    /// The record of `item`'s answer (with `error` set when the engine could
    /// not answer), or `None` when it was abandoned through `cancel`.
    fn ask(
        &self,
        item: &SuiteItem,
        cancel: Arc<AtomicBool>,
    ) -> anyhow::Result<Option<AnswerRecord>> {
        let conversation = self.conversation(item);
        // Without the previous question's cache, an answer depends on its
        // question alone: a resumed run answers as an uninterrupted one.
        if let Some(engine) = self.engine {
            engine.reset()?;
        }
        let (reply, events) = mpsc::channel();
        let started = Instant::now();
        self.backend.submit(Request {
            conversation: conversation.clone(),
            sampling: self.sampling.clone(),
            reply,
            cancel,
            context: ContextPolicy::Refuse,
            thinking: self.thinking,
        })?;
        let mut record = unanswered_record(item);
        let mut facts = Vec::new();
        for event in events {
            match event {
                Event::Prompt { ids, images, .. } => {
                    record.prompt_tokens = ids.len();
                    facts = images;
                }
                Event::Error(message) => {
                    record.latency_s = started.elapsed().as_secs_f64();
                    record.finish_reason = "error".into();
                    record.error = Some(message);
                    return Ok(Some(record));
                }
                Event::Done {
                    finish_reason,
                    tokens,
                    text,
                    reasoning_tokens,
                    timings,
                    ..
                } => {
                    if finish_reason == FinishReason::Cancelled {
                        return Ok(None);
                    }
                    record.latency_s = started.elapsed().as_secs_f64();
                    record.finish_reason = finish_reason.as_str().into();
                    record.new_tokens = tokens.len();
                    record.reasoning_tokens = reasoning_tokens;
                    record.decode_tokens = tokens.len().saturating_sub(1);
                    if timings.decode_tok_s > 0.0 {
                        record.decode_s = record.decode_tokens as f64 / timings.decode_tok_s;
                    }
                    record.boxes = self.boxes(&text, &facts, &conversation);
                    record.reply = text;
                    return Ok(Some(record));
                }
                _ => {}
            }
        }
        bail!("the engine stopped without finishing the answer")
    }

    /// `item` as a conversation of its own, after the system prompt if any.
    fn conversation(&self, item: &SuiteItem) -> Conversation {
        let mut conversation = Conversation::new();
        if let Some(system) = &self.system_prompt {
            conversation.push(Message::text(Role::System, system.clone()));
        }
        let mut parts: Vec<Part> = item.paths.iter().cloned().map(Part::Image).collect();
        parts.push(Part::Text(item.question.clone()));
        conversation.push(Message::parts(Role::User, parts));
        conversation
    }

    /// The reply's boxes on the question's last image, when the model's
    /// family has a known way of giving them.
    fn boxes(
        &self,
        reply: &str,
        facts: &[ImageFacts],
        conversation: &Conversation,
    ) -> Vec<[f64; 4]> {
        match self.family {
            Some(family) => {
                boxes_on_last_image(reply, family, facts, self.cap.as_ref(), conversation)
            }
            None => Vec::new(),
        }
    }
}

/// `item`'s record before its answer is known.
fn unanswered_record(item: &SuiteItem) -> AnswerRecord {
    AnswerRecord {
        id: item.id.clone(),
        line: item.line,
        category: item.category.clone(),
        question: item.question.clone(),
        images: item.images.clone(),
        reply: String::new(),
        boxes: vec![],
        finish_reason: String::new(),
        latency_s: 0.0,
        prompt_tokens: 0,
        new_tokens: 0,
        reasoning_tokens: 0,
        decode_tokens: 0,
        decode_s: 0.0,
        error: None,
    }
}

/// The boxes of `reply` on the conversation's last image, in its original
/// pixels; `facts` are the prompt's images as the engine prepared them.
pub fn boxes_on_last_image(
    reply: &str,
    family: GroundingFamily,
    facts: &[ImageFacts],
    cap: Option<&LongEdgeCap>,
    conversation: &Conversation,
) -> Vec<[f64; 4]> {
    let Some(last) = facts.len().checked_sub(1) else {
        return vec![];
    };
    grounding::ground(reply, family, facts, cap, conversation)
        .detections
        .iter()
        .filter(|d| d.image == last)
        .filter_map(|d| match d.shape {
            Shape::Box(b) => Some(b),
            Shape::Point(_) => None,
        })
        .collect()
}

/// Ctrl-C: the first press stops after the current question, the second
/// abandons it, the third leaves at once.
struct Interrupt {
    presses: Arc<AtomicUsize>,
    abandon: Arc<AtomicBool>,
}

impl Interrupt {
    fn install() -> Interrupt {
        let presses = Arc::new(AtomicUsize::new(0));
        let abandon = Arc::new(AtomicBool::new(false));
        let (p, a) = (presses.clone(), abandon.clone());
        let _ = ctrlc::set_handler(move || match p.fetch_add(1, Ordering::SeqCst) {
            0 => eprintln!("\nglimpse: stopping after this question (Ctrl-C again to abandon it)"),
            1 => a.store(true, Ordering::SeqCst),
            _ => std::process::exit(130),
        });
        Interrupt { presses, abandon }
    }

    fn stop_requested(&self) -> bool {
        self.presses.load(Ordering::SeqCst) > 0
    }
}

fn progress_bar(total: usize, done: usize) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr())
        .with_position(done as u64);
    if let Ok(style) = ProgressStyle::with_template(
        "{bar:30.cyan/blue} {pos}/{len} questions  {msg}  [{elapsed_precise}, ETA {eta}]",
    ) {
        bar.set_style(style);
    }
    // The ETA counts only questions asked in this run.
    bar.tick();
    bar.reset_eta();
    bar
}

fn write_reports(report: &Report, out: &Path) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(report)?;
    for (name, text) in [(REPORT_JSON, json), (REPORT_MD, report.markdown())] {
        let path = out.join(name);
        write_atomic(&path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        eval: EvalArgs,
    }

    #[test]
    fn results_go_beside_the_suite_by_model_and_preset() {
        assert_eq!(
            default_out(
                Path::new("s/suite.jsonl"),
                "Qwen/Qwen3-VL-4B-Instruct",
                None
            ),
            PathBuf::from("s/results/Qwen3-VL-4B-Instruct")
        );
        assert_eq!(
            default_out(Path::new("suite.jsonl"), "models/tiny v2/", Some("quick")),
            PathBuf::from("results/tiny_v2-quick")
        );
    }

    #[test]
    fn greedy_by_default_and_a_preset_when_named() {
        let config = Config::default();
        let w = Wrap::parse_from(["x", "--suite", "s.jsonl", "--max-tokens", "16"]);
        let (s, system) = sampling_of(&w.eval, &config).unwrap();
        assert_eq!(s.temperature, Some(0.0));
        assert_eq!(s.max_new_tokens, Some(16));
        assert_eq!(s.seed, Some(0));
        assert_eq!(system, None);
        let w = Wrap::parse_from([
            "x", "--suite", "s.jsonl", "--preset", "quick", "--seed", "4",
        ]);
        let (s, _) = sampling_of(&w.eval, &config).unwrap();
        assert_eq!(
            (s.temperature, s.max_new_tokens, s.seed),
            (Some(0.1), Some(128), Some(4))
        );
        let w = Wrap::parse_from(["x", "--suite", "s.jsonl", "--preset", "nope"]);
        let e = sampling_of(&w.eval, &config).unwrap_err().to_string();
        assert!(
            e.contains("unknown preset \"nope\"") && e.contains("quick"),
            "{e}"
        );
    }

    #[test]
    fn boxes_are_placed_on_the_original_image_in_each_family_convention() {
        let facts = vec![ImageFacts {
            path: "shelf.png".into(),
            original_size: [640, 480],
            model_size: [320, 240],
            grid_thw: [1, 16, 24],
            tokens: 96,
        }];
        let mut conversation = Conversation::new();
        conversation.push(Message::parts(
            Role::User,
            vec![Part::Image("shelf.png".into()), Part::Text("?".into())],
        ));
        let cap = LongEdgeCap::default();
        // Qwen2.5-VL answers in pixels of its (half-size) input.
        let pixels = r#"[{"bbox_2d": [80, 35, 120, 60], "label": "EGGS"}]"#;
        let got = boxes_on_last_image(
            pixels,
            GroundingFamily::Qwen25Vl,
            &facts,
            Some(&cap),
            &conversation,
        );
        assert_eq!(got, vec![[160.0, 70.0, 240.0, 120.0]]);
        // Qwen3-VL on a 0–1000 grid.
        let grid = r#"{"bbox_2d": [250, 250, 500, 500]}"#;
        let got = boxes_on_last_image(grid, GroundingFamily::Qwen3Vl, &facts, None, &conversation);
        assert_eq!(got, vec![[160.0, 120.0, 320.0, 240.0]]);
        let point = r#"{"point_2d": [10, 10]}"#;
        assert!(
            boxes_on_last_image(point, GroundingFamily::Qwen3Vl, &facts, None, &conversation)
                .is_empty(),
            "points are not boxes"
        );
        assert!(boxes_on_last_image(
            grid,
            GroundingFamily::Qwen3Vl,
            &[],
            None,
            &Conversation::new()
        )
        .is_empty());
    }

    #[test]
    fn making_a_suite_takes_none_of_the_run_flags() {
        assert!(Wrap::try_parse_from(["x", "--make-suite", "d", "--count", "5"]).is_ok());
        assert!(Wrap::try_parse_from(["x", "--make-suite", "d", "--suite", "s"]).is_err());
        let w = Wrap::parse_from(["x", "--count", "5", "--suite", "s"]);
        let e = run(w.eval).unwrap_err().to_string();
        assert!(e.contains("use --limit"), "{e}");
        assert!(
            Wrap::try_parse_from(["x"]).is_err(),
            "--suite or --make-suite"
        );
    }
}
