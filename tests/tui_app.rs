//! The chat app rendered into ratatui's TestBackend: snapshots of its main
//! states, and whole exchanges with the real tiny model behind it.
//!
//! A small synchronous runtime carries out the app's commands with the real
//! parts (image decoding, preview encoding in half-blocks, the engine); only
//! the snapshot states that must not depend on timings are fed engine events
//! directly.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use ratatui::crossterm::event::{KeyCode, KeyModifiers};

use glimpse::conversation::{Content, Part, Role};
use glimpse::engine::{Engine, EngineOptions, Event, FinishReason, SamplingParams, Timings};
use glimpse::gpu::cpu::CpuFacts;
use glimpse::gpu::{GpuState, Sample};
use glimpse::session::{DownloadEvent, SessionStore};
use glimpse::tui::msg::ModelReady;
use glimpse::tui::session_keeper::SessionKeeper;

mod common;
use common::app::AppHarness;
use glimpse::tui::{App, AppConfig, Msg};

fn model_dir() -> PathBuf {
    PathBuf::from("tests/fixtures/models/qwen2_vl")
}

fn image(name: &str) -> String {
    format!("tests/fixtures/images/{name}")
}

struct Harness {
    inner: AppHarness,
    sessions_dir: tempfile::TempDir,
}

common::app::derefs_to_app_harness!(Harness);

impl Harness {
    fn new(width: u16, height: u16) -> Self {
        Self::with_config(width, height, |_| {})
    }

    fn with_config(width: u16, height: u16, adjust: impl FnOnce(&mut AppConfig)) -> Self {
        let mut config = AppConfig::new(model_dir());
        config.cpu_threads = 4;
        config.seed = 7;
        config.font_size = (10, 20);
        adjust(&mut config);
        // Sessions are saved in a folder of the test's own.
        let sessions_dir = tempfile::tempdir().unwrap();
        let store = SessionStore::at(sessions_dir.path().join("sessions"));
        let mut inner = AppHarness::new(config, width, height);
        inner.keeper = Some(SessionKeeper::new(
            Ok(store),
            model_dir().display().to_string(),
        ));
        Harness {
            inner,
            sessions_dir,
        }
    }

    fn loaded(width: u16, height: u16) -> Self {
        Self::loaded_with(width, height, EngineOptions::new(model_dir()))
    }

    fn loaded_with(width: u16, height: u16, options: EngineOptions) -> Self {
        Self::loaded_config(width, height, options, |_| {})
    }

    fn loaded_config(
        width: u16,
        height: u16,
        options: EngineOptions,
        adjust: impl FnOnce(&mut AppConfig),
    ) -> Self {
        let mut h = Self::with_config(width, height, adjust);
        h.load(options);
        h
    }

    fn press(&mut self, code: KeyCode) {
        self.key(code, KeyModifiers::NONE);
    }

    /// Resumes `session` as `--resume` does, saving on into `store`.
    fn resume_into(&mut self, store: &SessionStore, session: glimpse::session::Session) {
        let mut keeper = SessionKeeper::new(Ok(store.clone()), model_dir().display().to_string());
        let restored = keeper.resume(session);
        self.keeper = Some(keeper);
        self.send(Msg::Session(
            glimpse::tui::session_keeper::SessionEvent::Opened(Ok(Box::new(restored))),
        ));
    }
}

fn prompt_event(ids: usize, images: usize) -> Event {
    Event::Prompt {
        ids: vec![1; ids],
        images: (0..images)
            .map(|_| glimpse::engine::ImageFacts {
                path: PathBuf::from("x.png"),
                original_size: [333, 211],
                model_size: [336, 224],
                grid_thw: [1, 16, 24],
                tokens: 96,
            })
            .collect(),
        cached_tokens: 0,
        dropped_messages: 0,
        params: SamplingParams {
            temperature: 0.3,
            top_p: 1.0,
            top_k: 0,
            repetition_penalty: 1.0,
            max_new_tokens: 768,
            seed: 7,
        },
    }
}

fn token(text: &str) -> Event {
    Event::Token {
        id: 1,
        text: text.into(),
    }
}

fn done(reason: FinishReason, tokens: usize) -> Event {
    Event::Done {
        finish_reason: reason,
        tokens: vec![1; tokens],
        text: String::new(),
        reasoning: String::new(),
        reasoning_tokens: 0,
        timings: Timings {
            load_s: 0.1,
            vision_s: 0.01,
            prefill_s: 0.02,
            ttft_s: 0.05,
            decode_tok_s: 42.0,
        },
    }
}

const ANSWER: &str = "The image shows **three shapes** on a grey field:\n\n\
1. a red square\n2. a blue ring\n\n\
| shape | colour |\n|---|---|\n| square | red |\n| ring | blue |\n\n\
```python\nprint(\"hello\")\n```\n";

#[test]
fn snapshot_loading_then_empty_conversation() {
    let mut h = Harness::new(100, 20);
    insta::assert_snapshot!("loading", h.screen());
    let mut h = Harness::loaded(100, 20);
    insta::assert_snapshot!("empty", h.screen());
}

const HUB_ID: &str = "Qwen/Qwen3-VL-4B-Instruct";

fn downloading(width: u16, height: u16) -> Harness {
    Harness::with_config(width, height, |c| c.download = Some(HUB_ID.into()))
}

fn download_progress(file_index: usize, done_bytes: u64) -> Msg {
    Msg::ModelDownload(DownloadEvent::Progress {
        file: "model-00001-of-00002.safetensors".into(),
        file_index,
        files: 5,
        done_bytes,
        total_bytes: 8_875_631_616,
    })
}

#[test]
fn snapshot_download_progress_then_loading_then_the_queued_question_is_asked() {
    let mut h = downloading(100, 20);
    let screen = h.screen();
    assert!(
        screen.contains("Downloading Qwen/Qwen3-VL-4B-Instruct…"),
        "{screen}"
    );
    assert!(screen.contains("asking the hub for its files"), "{screen}");
    assert!(screen.contains(" downloading "), "{screen}");
    h.send(Msg::ModelDownload(DownloadEvent::Started {
        id: HUB_ID.into(),
        files: 5,
        total_bytes: 8_875_631_616,
    }));
    let screen = h.screen();
    assert!(screen.contains("5 files, 8.3 GiB"), "{screen}");
    h.send(download_progress(2, 512 << 20));
    h.send(download_progress(3, 1_288_490_189));
    h.ask("what is in the picture?");
    insta::assert_snapshot!("downloading", h.screen());
    assert!(h.generations.is_empty());

    h.send(Msg::ModelDownload(DownloadEvent::Finished {
        dir: model_dir(),
    }));
    let screen = h.screen();
    assert!(
        screen.contains("Loading the model from tests/fixtures/models/qwen2_vl"),
        "{screen}"
    );
    assert!(!screen.contains("Downloading"), "{screen}");
    assert!(h.generations.is_empty(), "the question waits for the model");

    h.load(EngineOptions::new(model_dir()));
    assert_eq!(h.generations.len(), 1, "the queued question is asked");
    let screen = h.screen();
    assert!(!screen.contains("You · queued"), "{screen}");
}

#[test]
fn a_failed_download_is_one_line_on_screen_and_quitting_still_works() {
    let mut h = downloading(100, 24);
    h.send(download_progress(0, 0));
    h.ask("anyone there?");
    let cache = "/home/u/.cache/huggingface/hub/models--Qwen--Qwen3-VL-4B-Instruct";
    h.send(Msg::ModelFailed(format!(
        "cannot reach the Hugging Face Hub at https://huggingface.co to download {HUB_ID} \
         (Connection Failed: Connect error: connection refused), and it is not complete in \
         the cache at {cache}; connect to the network, point HF_HUB_CACHE or HF_HOME at a \
         cache that has it, or pass --model with a local model directory"
    )));
    let screen = h.screen();
    assert!(
        screen.contains("Could not load the model: cannot reach"),
        "{screen}"
    );
    assert!(screen.contains("no model"), "{screen}");
    assert!(!screen.contains("Downloading"), "{screen}");
    assert!(!screen.contains("queued"), "{screen}");
    assert!(
        screen.contains("the model did not load, so the question was not asked"),
        "{screen}"
    );
    assert!(!h.app.is_busy());
    h.ctrl('q');
    assert!(h.app.should_quit());
}

#[test]
fn a_download_that_starts_while_loading_is_shown_too() {
    let mut h = Harness::new(100, 20);
    h.send(Msg::ModelDownload(DownloadEvent::Started {
        id: "tiny/qwen2-vl".into(),
        files: 2,
        total_bytes: 0,
    }));
    let screen = h.screen();
    assert!(screen.contains("Downloading tiny/qwen2-vl…"), "{screen}");
    assert!(screen.contains("2 files"), "{screen}");
    assert!(!screen.contains("Loading the model"), "{screen}");
}

#[test]
fn snapshot_conversation_with_an_image_preview_in_half_blocks() {
    let mut h = Harness::loaded(100, 36);
    h.ask(&format!("/image {}", image("scene_333x211.png")));
    insta::assert_snapshot!("attached_chip", h.screen());
    h.ask("What is in this picture?");
    h.feed(prompt_event(140, 1));
    h.feed(Event::VisionDone { ms: 3.0 });
    for piece in ANSWER.split_inclusive(' ') {
        h.feed(token(piece));
    }
    h.feed(done(FinishReason::Stop, 60));
    let screen = h.screen();
    assert!(
        screen.contains('▀') || screen.contains('▄'),
        "half-block preview drawn"
    );
    insta::assert_snapshot!("image_preview", screen);
}

#[test]
fn snapshot_streaming_and_cancelled() {
    let mut h = Harness::loaded(80, 20);
    h.ask("Describe the scene in detail.");
    h.feed(prompt_event(30, 0));
    for piece in ["The ", "scene ", "has ", "a ", "small ", "house ", "and "] {
        h.feed(token(piece));
    }
    insta::assert_snapshot!("streaming", h.screen());

    h.press(KeyCode::Esc);
    assert!(
        h.generations[0].cancel.load(Ordering::Relaxed),
        "Esc sets the cancel flag"
    );
    h.feed(done(FinishReason::Cancelled, 7));
    assert!(!h.app.is_generating());
    insta::assert_snapshot!("cancelled", h.screen());
}

#[test]
fn snapshot_help_overlay() {
    let mut h = Harness::loaded(100, 50);
    h.press(KeyCode::Char('?'));
    assert!(h.app.dialog.is_help());
    insta::assert_snapshot!("help", h.screen());
    h.press(KeyCode::Esc);
    assert!(!h.app.dialog.is_help());
}

#[test]
fn snapshot_errors_are_lines_not_crashes() {
    let mut h = Harness::loaded(80, 16);
    h.ask("Hello?");
    h.feed(prompt_event(20, 0));
    h.feed(Event::Error(
        "the conversation is 900 tokens, more than the context of 512 tokens; start a new conversation, remove images or raise --max-context".into(),
    ));
    h.ask("/image tests/fixtures/images/no_such_file.png");
    insta::assert_snapshot!("error", h.screen());
    // A file that is not an image is refused when decoded, with a line.
    h.ask("/image Cargo.toml");
    let screen = h.screen();
    assert!(screen.contains("Cargo.toml is not an image"), "{screen}");
    assert!(h.app.attachments.is_empty());
}

#[test]
fn snapshot_model_that_fails_to_load() {
    let mut h = Harness::new(80, 12);
    h.send(Msg::ModelFailed(
        "loading /models/broken: config.json: missing field `vision_config`".into(),
    ));
    h.ask("anyone there?");
    insta::assert_snapshot!("load_failed", h.screen());
    h.ctrl('q');
    assert!(h.app.should_quit());
}

#[test]
fn wide_characters_and_tiny_windows_render() {
    let mut h = Harness::loaded(40, 12);
    h.ask("日本語で説明してください");
    h.feed(prompt_event(20, 0));
    h.feed(token(
        "これは赤い四角と青い輪です。とても長い説明が続きます。",
    ));
    h.feed(done(FinishReason::Stop, 12));
    let screen = h.screen();
    assert!(screen.contains("これは赤い四角"), "{screen}");
    for (w, hgt) in [(10, 3), (25, 7), (200, 60), (40, 12)] {
        h.terminal.backend_mut().resize(w, hgt);
        h.send(Msg::Resize(w, hgt));
        h.screen();
    }
}

#[test]
fn a_whole_exchange_with_the_real_model() {
    let mut h = Harness::loaded(100, 30);
    h.ask(&format!("/image {}", image("scene_333x211.png")));
    // Pasting a path attaches it (drag and drop pastes paths).
    let pasted = std::fs::canonicalize(image("checker_200x150.png")).unwrap();
    h.send(Msg::Paste(format!("'{}'", pasted.display())));
    assert_eq!(h.app.attachments.len(), 2, "two images on one question");
    h.ask("What is in these pictures?");
    let events = h.answer_with_engine();
    let Some(Event::Done { text, .. }) = events.last() else {
        panic!("the engine finished: {events:?}");
    };
    let first = &h.generations[0];
    assert_eq!(first.conversation.images().len(), 2);
    assert_eq!(
        first.sampling.temperature,
        Some(0.3),
        "the diagnostic preset"
    );
    assert_eq!(first.sampling.max_new_tokens, Some(768));
    let reply = h.app.entries.iter().rev().find_map(|e| match &e.kind {
        glimpse::tui::transcript::EntryKind::Assistant(r) => Some(r.text.clone()),
        _ => None,
    });
    assert_eq!(
        reply.as_deref(),
        Some(text.as_str()),
        "the transcript holds the streamed answer"
    );
    let prompt_len = events
        .iter()
        .find_map(|e| match e {
            Event::Prompt { ids, images, .. } => {
                assert_eq!(images.len(), 2);
                Some(ids.len())
            }
            _ => None,
        })
        .expect("a prompt event");
    let streamed = events
        .iter()
        .filter(|e| matches!(e, Event::Token { .. }))
        .count();
    assert_eq!(
        h.app.context_used,
        prompt_len + streamed,
        "context used is shown"
    );

    // One key changes the preset; the next question carries it.
    h.press(KeyCode::F(2));
    h.key(KeyCode::Char('3'), KeyModifiers::ALT);
    h.press(KeyCode::Char(']'));
    h.press(KeyCode::Char('}'));
    h.ask("And now?");
    let second = h.generations.last().unwrap();
    assert!((second.sampling.temperature.unwrap() - 0.15).abs() < 1e-9);
    assert_eq!(second.sampling.max_new_tokens, Some(192));
    // The whole conversation goes with it, so the engine can reuse its cache.
    let roles: Vec<Role> = second
        .conversation
        .messages
        .iter()
        .map(|m| m.role)
        .collect();
    assert_eq!(roles, [Role::User, Role::Assistant, Role::User]);
    h.answer_with_engine();

    // Regenerate replaces the last answer with a new request (new seed).
    let before = h.generations.len();
    h.ctrl('r');
    assert_eq!(h.generations.len(), before + 1);
    let again = h.generations.last().unwrap();
    assert_eq!(again.conversation, h.generations[before - 1].conversation);
    assert_ne!(again.sampling.seed, h.generations[before - 1].sampling.seed);
    h.answer_with_engine();
    let answers = h
        .app
        .entries
        .iter()
        .filter(|e| matches!(e.kind, glimpse::tui::transcript::EntryKind::Assistant(_)))
        .count();
    assert_eq!(answers, 2);

    // y types itself in the question; after Esc (browsing) it copies the last answer.
    h.press(KeyCode::Char('y'));
    assert_eq!(h.app.input_text(), "y");
    assert!(h.copied.is_empty());
    h.press(KeyCode::Backspace);
    h.press(KeyCode::Esc);
    assert!(h.app.browsing);
    h.press(KeyCode::Char('y'));
    let last = h.app.entries.iter().rev().find_map(|e| match &e.kind {
        glimpse::tui::transcript::EntryKind::Assistant(r) => Some(r.text.clone()),
        _ => None,
    });
    if last.as_deref().is_some_and(|t| !t.is_empty()) {
        assert_eq!(h.copied, vec![last.unwrap()]);
    }
    // Typing a letter returns to the question with that letter.
    h.press(KeyCode::Char('w'));
    assert!(!h.app.browsing);
    assert_eq!(h.app.input_text(), "w");
    h.screen();
}

#[test]
fn a_question_while_answering_is_queued_and_a_second_one_refused() {
    let mut h = Harness::loaded(80, 24);
    h.ask("first");
    h.ask("second");
    assert_eq!(h.generations.len(), 1, "the second waits");
    h.ask("third");
    assert!(h.screen().contains("already waiting"));
    assert_eq!(
        h.app.input_text(),
        "third",
        "a refused question stays in the input"
    );
    h.answer_with_engine();
    assert_eq!(h.generations.len(), 2, "the queued question is asked next");
    let conv = &h.generations[1].conversation;
    let last = conv.messages.last().unwrap();
    assert_eq!(
        last.content,
        Content::Parts(vec![Part::Text("second".into())])
    );
    h.answer_with_engine();
    assert!(!h.app.is_generating());
}

#[test]
fn an_outgrown_context_drops_old_turns_with_a_notice() {
    let mut options = EngineOptions::new(model_dir());
    options.max_context = Some(200);
    let mut h = Harness::loaded_with(80, 30, options);
    h.key(KeyCode::F(3), KeyModifiers::NONE);
    // Short answers, so only the questions fill the context.
    for _ in 0..2 {
        h.press(KeyCode::Char('{'));
    }
    let long = "please describe everything you can see ".repeat(2);
    let mut seen = Vec::new();
    for _ in 0..4 {
        h.ask(&long);
        for e in h.answer_with_engine() {
            match e {
                Event::Prompt {
                    ids,
                    dropped_messages,
                    ..
                } => seen.push((ids.len(), dropped_messages)),
                Event::Error(e) => panic!("{e} after {seen:?}"),
                _ => {}
            }
        }
    }
    assert!(
        h.app.dropped_messages > 0,
        "the engine left old turns out: {seen:?}"
    );
    let screen = h.screen();
    assert!(screen.contains("no longer fits the context"), "{screen}");
}

#[test]
fn images_are_decoded_once_and_shared_by_every_turn() {
    let mut h = Harness::loaded(80, 24);
    let path = image("rings_80x112.png");
    h.ask(&format!("/image {path}"));
    h.ask(&format!("/image {path}"));
    assert_eq!(h.app.attachments.len(), 2);
    assert_eq!(h.app.images.len(), 1, "the same file is decoded once");
    h.ctrl('x');
    assert_eq!(h.app.attachments.len(), 1, "Ctrl+X removes the last chip");
    let p: &Path = h.app.image_path(h.app.attachments[0]).unwrap();
    assert!(p.is_absolute());
}

#[test]
fn regenerating_during_an_answer_stops_it_and_starts_again() {
    let mut h = Harness::loaded(80, 24);
    h.ask("first");
    h.feed(prompt_event(20, 0));
    h.feed(token("partial"));
    h.ctrl('r');
    assert!(
        h.generations[0].cancel.load(Ordering::Relaxed),
        "the running answer is told to stop"
    );
    assert_eq!(h.generations.len(), 1, "nothing new until it has stopped");
    h.feed(done(FinishReason::Cancelled, 1));
    assert_eq!(h.generations.len(), 2, "then the answer is written again");
    assert_eq!(h.generations[1].conversation, h.generations[0].conversation);
    let answers = h
        .app
        .entries
        .iter()
        .filter(|e| matches!(e.kind, glimpse::tui::transcript::EntryKind::Assistant(_)))
        .count();
    assert_eq!(answers, 1, "the stopped answer is replaced, not kept");
}

#[test]
fn a_question_typed_while_the_model_loads_is_asked_once_it_is_ready() {
    let mut h = Harness::new(80, 24);
    h.ask("early question");
    assert!(h.generations.is_empty());
    assert!(h.screen().contains("queued"));
    // Esc takes it back into the input; Enter queues it again.
    h.press(KeyCode::Esc);
    assert_eq!(h.app.input_text(), "early question");
    h.press(KeyCode::Enter);
    let engine = Engine::load(EngineOptions::new(model_dir())).unwrap();
    let ready = ModelReady::of(&engine);
    h.engine = Some(engine);
    h.send(Msg::ModelLoaded(Box::new(ready)));
    assert_eq!(h.generations.len(), 1);
    let events = h.answer_with_engine();
    assert!(
        matches!(events.last(), Some(Event::Done { .. })),
        "{events:?}"
    );
}

/// What the sampler reads on a machine without an NVIDIA GPU. The CPU's
/// facts are fixed, so the snapshot does not depend on the machine that runs
/// the test; real readings come from `glimpse::gpu::cpu::read_facts`.
fn cpu_only_sample(seq: u64) -> Sample {
    Sample {
        seq,
        gpus: GpuState::Absent {
            reason: "the NVIDIA driver library (libnvidia-ml.so.1) was not found".into(),
        },
        cpu: CpuFacts {
            threads: 4,
            model: Some("Test CPU @ 2.0GHz".into()),
            memory_total: Some(16 << 30),
            memory_available: Some(12 << 30),
            own_resident: Some(300 << 20),
            own_peak_resident: Some(400 << 20),
        },
    }
}

#[test]
fn the_gpu_pane_shows_the_cpu_live_speed_and_kv_cache_and_can_be_hidden() {
    let mut h = Harness::loaded(120, 24);
    // Before the first sample.
    assert!(h.screen().contains("reading the devices"), "{}", h.screen());
    h.send(Msg::GpuSample(Box::new(cpu_only_sample(0))));
    let idle = h.screen();
    assert!(
        idle.contains("no NVIDIA GPU found") && idle.contains("CPU (4 threads)"),
        "{idle}"
    );
    assert!(idle.contains("KV cache f32"), "{idle}");

    // Tokens/s while a reply streams: the tokens of the last sampler period.
    h.ask("Describe the scene.");
    h.feed(prompt_event(20, 0));
    for piece in ["A ", "red ", "square ", "and ", "a ", "ring."] {
        h.feed(token(piece));
    }
    h.send(Msg::GpuSample(Box::new(cpu_only_sample(1))));
    assert_eq!(h.app.live_tokens_per_s, Some(6.0));
    let streaming = h.screen();
    assert!(streaming.contains("6.0 tokens/s"), "{streaming}");
    insta::assert_snapshot!("gpu_pane_cpu_only", streaming);
    // Once done, the pane shows the answer's own decode speed.
    h.feed(done(FinishReason::Stop, 6));
    let speed = h.app.last_stats.as_ref().unwrap().tok_s;
    assert!(h.screen().contains(&format!("{speed:.1} tokens/s")));

    // Alt+G hides the pane and the transcript takes the width; again shows it.
    h.key(KeyCode::Char('g'), KeyModifiers::ALT);
    assert!(!h.app.gpu_pane_on);
    let hidden = h.screen();
    assert!(!hidden.contains("no NVIDIA GPU"), "{hidden}");
    h.key(KeyCode::Char('g'), KeyModifiers::ALT);
    assert!(h.screen().contains("no NVIDIA GPU"));

    // Narrow screens have no room for it.
    h.terminal.backend_mut().resize(80, 24);
    h.send(Msg::Resize(80, 24));
    assert!(!h.screen().contains("no NVIDIA GPU"));
}

#[test]
fn the_auto_kv_policy_switch_shows_in_the_gpu_pane() {
    let mut h = Harness::loaded(120, 24);
    h.send(Msg::GpuSample(Box::new(cpu_only_sample(0))));
    h.ask("Hello?");
    h.feed(prompt_event(20, 0));
    h.feed(Event::KvCacheConverted {
        format: glimpse::model::kv_cache::KvFormat::Int8,
        memory_fraction: 0.86,
        bytes_before: 4 << 20,
        bytes_after: 2 << 20,
    });
    assert_eq!(h.app.kv_cache.as_deref(), Some("int8 (auto, at 86 %)"));
    assert!(h.screen().contains("KV cache int8"), "{}", h.screen());
}

#[test]
fn previews_are_encoded_again_for_a_new_width_and_can_be_hidden() {
    let mut h = Harness::loaded(100, 40);
    h.ask(&format!("/image {}", image("scene_333x211.png")));
    h.ask("What is this?");
    let id = h.app.attachments.first().copied().unwrap_or(1);
    let wide = h.app.previews.get(&id).expect("a preview").cells;
    assert!(h.app.previews[&id].protocol.is_some(), "encoded");
    h.terminal.backend_mut().resize(30, 40);
    h.send(Msg::Resize(30, 40));
    let narrow = h.app.previews[&id].cells;
    assert!(narrow.0 < wide.0, "{narrow:?} after {wide:?}");
    assert!(h.app.previews[&id].protocol.is_some(), "encoded again");
    let with = h.screen();
    assert!(with.contains('▀') || with.contains('▄'));

    h.key(KeyCode::Char('p'), KeyModifiers::ALT);
    let without = h.screen();
    assert!(
        !without.contains('▀') && !without.contains('▄'),
        "{without}"
    );
    assert!(without.contains("scene_333x211.png"), "the caption stays");
}

#[test]
fn a_very_long_answer_streams_and_the_view_follows_its_end() {
    let mut h = Harness::loaded(80, 24);
    h.ask("Write a lot.");
    h.feed(prompt_event(20, 0));
    for i in 0..4000 {
        h.feed(token(&format!("word{i} ")));
        if i % 500 == 0 {
            h.screen();
        }
    }
    h.feed(token("\n\n```rust\nfn last() {}\n```\nTHE END"));
    h.feed(done(FinishReason::Length, 4001));
    let screen = h.screen();
    assert!(screen.contains("THE END"), "{screen}");
    assert!(screen.contains("stopped at the 768-token limit") || screen.contains("stopped"));
    // Scrolling to the top shows the question again.
    h.key(KeyCode::Home, KeyModifiers::CONTROL);
    let top = h.screen();
    assert!(
        top.contains("Write a lot.") && top.contains("more lines"),
        "{top}"
    );
}

#[test]
fn tab_completes_the_last_path_after_image() {
    let mut h = Harness::loaded(80, 24);
    h.type_str(&format!(
        "/image {} tests/fixtures/images/chec",
        image("scene_333x211.png")
    ));
    h.press(KeyCode::Tab);
    assert_eq!(
        h.app.input_text(),
        format!(
            "/image {} tests/fixtures/images/checker_200x150.png",
            image("scene_333x211.png")
        )
    );
    h.press(KeyCode::Enter);
    assert_eq!(h.app.attachments.len(), 2);
}

// Sessions: saved as the conversation goes, resumed, listed and exported.

fn session_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn user_entries(app: &App) -> Vec<(String, usize)> {
    app.entries
        .iter()
        .filter_map(|e| match &e.kind {
            glimpse::tui::transcript::EntryKind::User { text, images, .. } => {
                Some((text.clone(), images.len()))
            }
            _ => None,
        })
        .collect()
}

fn assistant_texts(app: &App) -> Vec<String> {
    app.entries
        .iter()
        .filter_map(|e| match &e.kind {
            glimpse::tui::transcript::EntryKind::Assistant(r) => Some(r.text.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_chat_saves_the_session_after_the_question_and_after_the_answer() {
    let mut h = Harness::loaded(100, 30);
    let dir = h.sessions_dir.path().join("sessions");
    h.ask(&format!("/image {}", image("scene_333x211.png")));
    h.ask("What is in this picture?");
    let files = session_files(&dir);
    assert_eq!(files.len(), 1, "saved as soon as the question is asked");
    let asked = read_json(&files[0]);
    assert_eq!(asked["messages"].as_array().unwrap().len(), 1);
    assert_eq!(asked["model"], model_dir().display().to_string());
    assert_eq!(asked["settings"]["preset"], "diagnostic");
    assert_eq!(asked["settings"]["sampling"]["max_new_tokens"], 768);
    let sha = glimpse::session::store::sha256_file(Path::new(&image("scene_333x211.png"))).unwrap();
    assert_eq!(asked["images"][0]["sha256"], sha.as_str());

    let events = h.answer_with_engine();
    let Some(Event::Done { text, .. }) = events.last() else {
        panic!("the engine finished: {events:?}");
    };
    let files_after = session_files(&dir);
    assert_eq!(files_after, files, "the same file, written again");
    let answered = read_json(&files[0]);
    let messages = answered["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[1]["role"], "assistant");
    // Saved as the model was sent it: without vision markers.
    assert_eq!(
        messages[1]["content"],
        glimpse::tui::transcript::scrub_placeholders(text).as_str()
    );
    let id = answered["id"].as_str().unwrap();
    assert_eq!(h.app.session_id.as_deref(), Some(id));

    // A stopped answer is saved with what it wrote.
    h.ask("And the colours?");
    h.feed(prompt_event(20, 0));
    h.feed(token("Red and "));
    h.press(KeyCode::Esc);
    h.feed(done(FinishReason::Cancelled, 2));
    let stopped = read_json(&files[0]);
    let messages = stopped["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4);
    assert_eq!(messages[3]["content"], "Red and ");

    // /clear starts another session; the first stays as it was.
    h.ask("/clear");
    assert_eq!(h.app.session_id, None);
    h.ask("A new question");
    assert_eq!(session_files(&dir).len(), 2);
    assert_eq!(read_json(&files[0]), stopped);
}

#[test]
fn a_resumed_session_brings_back_the_conversation_images_and_settings() {
    let photos = tempfile::tempdir().unwrap();
    let scene = photos.path().join("scene.png");
    let rings = photos.path().join("rings.png");
    let gone = photos.path().join("gone.png");
    std::fs::copy(image("scene_333x211.png"), &scene).unwrap();
    std::fs::copy(image("rings_80x112.png"), &rings).unwrap();
    std::fs::copy(image("checker_200x150.png"), &gone).unwrap();

    let mut first = Harness::loaded(100, 40);
    first.key(KeyCode::F(3), KeyModifiers::NONE);
    first.press(KeyCode::Char(']'));
    first.ask(&format!("/image {} {}", scene.display(), gone.display()));
    first.ask("What is in this picture?");
    first.answer_with_engine();
    first.ask(&format!("/image {}", rings.display()));
    first.ask("And this one?");
    first.answer_with_engine();
    let answers: Vec<String> = assistant_texts(&first.app)
        .iter()
        .map(|t| glimpse::tui::transcript::scrub_placeholders(t))
        .collect();
    let store = SessionStore::at(first.sessions_dir.path().join("sessions"));
    let id = first.app.session_id.clone().expect("saved");

    // Overnight one picture changes and another disappears.
    std::fs::copy(image("checker_200x150.png"), &rings).unwrap();
    std::fs::remove_file(&gone).unwrap();

    let mut second = Harness::loaded(100, 40);
    second.resume_into(&store, store.load_latest().unwrap());
    let app = &second.app;
    assert_eq!(app.session_id.as_deref(), Some(id.as_str()));
    assert_eq!(
        user_entries(app),
        [
            ("What is in this picture?".to_string(), 1),
            ("And this one?".to_string(), 1)
        ],
        "the text is kept; the missing image is left out"
    );
    assert_eq!(assistant_texts(app), answers);
    assert_eq!(app.settings.preset_name, "quick");
    assert!((app.settings.temperature.unwrap() - 0.15).abs() < 1e-9);
    assert_eq!(app.settings.max_tokens, Some(128));
    assert!(
        app.images
            .values()
            .all(|i| matches!(i.state, glimpse::tui::app::ImageState::Ready(_))),
        "the images are decoded again from their paths"
    );
    let screen = second.screen();
    assert!(screen.contains("gone.png is missing"), "{screen}");
    assert!(screen.contains("rings.png changed"), "{screen}");
    assert!(screen.contains('▀') || screen.contains('▄'), "previews");

    // The next question carries the whole conversation and goes to the same file.
    second.ask("Anything else?");
    let g = second.generations.last().unwrap();
    assert_eq!(g.conversation.messages.len(), 5);
    assert_eq!(g.conversation.images().len(), 2);
    assert_eq!(g.sampling.max_new_tokens, Some(128));
    second.answer_with_engine();
    let files = session_files(store.dir());
    assert_eq!(files, [store.path_of(&id)]);
    assert_eq!(
        read_json(&files[0])["messages"].as_array().unwrap().len(),
        6
    );
}

#[test]
fn export_writes_markdown_with_the_images_linked() {
    let mut h = Harness::loaded(100, 30);
    h.ask("/export");
    assert!(h.screen().contains("nothing to export yet"));
    h.ask(&format!("/image {}", image("scene_333x211.png")));
    h.ask("What is in this picture?");
    h.answer_with_engine();
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("notes.md");
    h.ask(&format!("/export {}", target.display()));
    let md = std::fs::read_to_string(&target).expect("exported");
    assert!(md.contains("## User\n\n![scene_333x211.png]("), "{md}");
    assert!(md.contains("What is in this picture?"), "{md}");
    assert!(md.contains("## Assistant"), "{md}");
    assert!(h.screen().contains("exported to"), "{}", h.screen());

    // A folder gets the default file name.
    h.ask(&format!("/export {}", out.path().display()));
    let id = h.app.session_id.clone().unwrap();
    assert!(out.path().join(format!("glimpse-{id}.md")).is_file());
}

/// Three saved sessions with fixed times, and a damaged file beside them.
fn saved_sessions(store: &SessionStore) -> Vec<String> {
    use glimpse::conversation::Message;
    use glimpse::session::store::user_message;
    use glimpse::session::{Session, SessionSettings};
    let mut ids = Vec::new();
    for (id, when, model, questions) in [
        (
            "20250130-081500-aaaaaa",
            "2025-01-30T08:15:00Z",
            "Qwen/Qwen3-VL-4B-Instruct",
            vec!["What is the expiry date on the blue can, third shelf from the top?"],
        ),
        (
            "20250131-090500-bbbbbb",
            "2025-01-31T09:07:30Z",
            "tests/fixtures/models/qwen2_vl",
            vec!["Which shapes are red?", "And which are blue?"],
        ),
        (
            "20250129-170000-cccccc",
            "2025-01-29T17:00:00Z",
            "Qwen/Qwen2.5-VL-7B-Instruct",
            vec!["Read the label"],
        ),
    ] {
        let mut s = Session::new(model, SessionSettings::default());
        s.id = id.into();
        for q in questions {
            s.conversation
                .push(user_message(vec![image("rings_80x112.png").into()], q));
            s.conversation
                .push(Message::text(Role::Assistant, "Two rings."));
        }
        store.save(&mut s).unwrap();
        let path = store.path_of(id);
        let mut v = read_json(&path);
        v["created"] = when.into();
        v["updated"] = when.into();
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        ids.push(id.to_string());
    }
    std::fs::write(
        store.dir().join("20250128-000000-dddddd.json"),
        b"{\"format_ver",
    )
    .unwrap();
    ids
}

#[test]
fn snapshot_the_session_list_and_open_one() {
    let mut h = Harness::loaded(100, 24);
    let store = SessionStore::at(h.sessions_dir.path().join("sessions"));
    let ids = saved_sessions(&store);
    let damaged = store.dir().join("20250128-000000-dddddd.json");
    let damaged_bytes = std::fs::read(&damaged).unwrap();

    h.key(KeyCode::Char('s'), KeyModifiers::ALT);
    assert!(h.app.dialog.session_list().is_some());
    insta::assert_snapshot!("session_list", h.screen());

    // Down to the damaged file: Enter says why it cannot be opened.
    for _ in 0..3 {
        h.press(KeyCode::Down);
    }
    h.press(KeyCode::Enter);
    let screen = h.screen();
    assert!(screen.contains("is damaged"), "{screen}");
    assert!(h.app.dialog.session_list().is_some(), "the list stays open");

    // Up to the second newest and open it.
    h.press(KeyCode::Home);
    h.press(KeyCode::Down);
    h.press(KeyCode::Enter);
    assert!(h.app.dialog.session_list().is_none());
    assert_eq!(h.app.session_id.as_deref(), Some(ids[0].as_str()));
    assert_eq!(
        user_entries(&h.app),
        [(
            "What is the expiry date on the blue can, third shelf from the top?".to_string(),
            1
        )]
    );
    let screen = h.screen();
    assert!(
        screen.contains("held with Qwen/Qwen3-VL-4B-Instruct"),
        "{screen}"
    );

    // `s` while browsing opens it too; Esc closes it.
    h.press(KeyCode::Esc);
    assert!(h.app.browsing);
    h.press(KeyCode::Char('s'));
    assert!(h.app.dialog.session_list().is_some());
    h.press(KeyCode::Esc);
    assert!(h.app.dialog.session_list().is_none());

    // A new turn goes to the opened session's file; the damaged file is untouched.
    h.ask("One more question");
    h.answer_with_engine();
    assert_eq!(
        read_json(&store.path_of(&ids[0]))["messages"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert_eq!(std::fs::read(&damaged).unwrap(), damaged_bytes);
}

// Themes: switched at run time, and brought down to what the terminal shows.

/// The screen's text, then each row's styled runs (`x..x fg bg +mods`), so a
/// snapshot shows the colours too.
fn styled_screen(h: &mut Harness) -> String {
    use std::fmt::Write;
    let text = h.screen();
    let buffer = h.terminal.backend().buffer().clone();
    let mut out = format!("{text}\n");
    for y in 0..buffer.area.height {
        let mut runs: Vec<(u16, u16, String)> = Vec::new();
        for x in 0..buffer.area.width {
            let cell = &buffer[(x, y)];
            let style = format!("{:?} {:?} {:?}", cell.fg, cell.bg, cell.modifier);
            match runs.last_mut() {
                Some((_, end, s)) if *s == style => *end = x,
                _ => runs.push((x, x, style)),
            }
        }
        let runs: Vec<String> = runs
            .into_iter()
            .filter(|(_, _, s)| s != "Reset Reset NONE")
            .map(|(a, b, s)| format!("{a}..{b} {s}"))
            .collect();
        if !runs.is_empty() {
            writeln!(out, "{y:2}: {}", runs.join(" | ")).unwrap();
        }
    }
    out
}

#[test]
fn snapshot_a_theme_switched_with_alt_t_on_a_256_colour_terminal() {
    let mut h = Harness::loaded(100, 18);
    h.app.color_depth = glimpse::tui::colors::ColorDepth::Indexed256;
    h.ask("What is in this picture?");
    h.feed(prompt_event(30, 0));
    h.feed(token("## Shapes\n\nA **red** square and `ring`.\n"));
    h.feed(done(FinishReason::Stop, 9));
    assert_eq!(h.app.theme.name, "dark");
    for expected in ["light", "high-contrast", "gruvbox-dark"] {
        h.key(KeyCode::Char('t'), KeyModifiers::ALT);
        assert_eq!(h.app.theme.name, expected);
    }
    let screen = styled_screen(&mut h);
    assert!(screen.contains("theme gruvbox-dark"), "{screen}");
    assert!(
        screen.contains("ctx 31/32768  gruvbox-dark "),
        "the status line: {screen}"
    );
    assert!(
        !screen.contains("Rgb("),
        "RGB colours become xterm indexes: {screen}"
    );
    insta::assert_snapshot!("theme_gruvbox_dark_256", screen);

    // Round the circle back to the first; `/theme NAME` picks one directly.
    h.key(KeyCode::Char('t'), KeyModifiers::ALT);
    assert_eq!(h.app.theme.name, "dark");
    h.ask("/theme high-contrast");
    assert_eq!(h.app.theme.name, "high-contrast");
    h.ask("/theme solarized");
    let screen = h.screen();
    assert!(screen.contains("unknown theme `solarized`"), "{screen}");
    assert_eq!(h.app.theme.name, "high-contrast");

    // On a 16-colour terminal only the 16 ANSI colours are drawn.
    h.ask("/theme gruvbox-dark");
    h.app.color_depth = glimpse::tui::colors::ColorDepth::Ansi16;
    h.screen();
    for cell in h.terminal.backend().buffer().content() {
        for c in [cell.fg, cell.bg] {
            assert!(
                !matches!(
                    c,
                    ratatui::style::Color::Rgb(..) | ratatui::style::Color::Indexed(_)
                ),
                "{c:?}"
            );
        }
    }
}

// Presets from the config: every field goes with the request.

#[test]
fn a_config_preset_carries_top_p_top_k_repetition_and_its_system_prompt() {
    let config = glimpse::session::Config::from_toml_str(
        "[presets.ocr]\ntop_p = 0.8\ntop_k = 20\nrepetition_penalty = 1.1\n\
         system_prompt = \"Transcribe all text in the image.\"\n\
         [presets.quick]\ntop_k = 5\n",
        Path::new("config.toml"),
    )
    .unwrap();
    let presets = glimpse::cli::chat::chat_presets(&config);
    let mut h = Harness::loaded_config(100, 30, EngineOptions::new(model_dir()), |c| {
        c.presets = presets;
    });
    // quick keeps its built-in temperature and limit and adds top-k.
    h.key(KeyCode::F(3), KeyModifiers::NONE);
    h.ask("Quick one?");
    let quick = &h.generations[0].sampling;
    assert_eq!(
        (quick.temperature, quick.max_new_tokens, quick.top_k),
        (Some(0.1), Some(128), Some(5))
    );
    h.answer_with_engine();

    // ocr: Alt+4 is not bound by default, so pick it by its action.
    h.ask("/clear");
    let ocr = h.app.presets.iter().position(|p| p.name == "ocr").unwrap();
    h.app.keymap = h
        .app
        .keymap
        .clone()
        .with_overrides(
            &std::iter::once(("preset_4".to_string(), vec!["alt+4".parse().unwrap()])).collect(),
        )
        .unwrap();
    assert_eq!(ocr, 3);
    h.key(KeyCode::Char('4'), KeyModifiers::ALT);
    let flash = h.screen();
    assert!(
        flash.contains("preset ocr: the model's temperature, the model's token limit, top-p 0.80"),
        "{flash}"
    );
    h.ask("What does the label say?");
    let g = h.generations.last().unwrap();
    assert_eq!(
        g.sampling.temperature, None,
        "left to generation_config.json"
    );
    assert_eq!(g.sampling.max_new_tokens, None);
    assert_eq!(g.sampling.top_p, Some(0.8));
    assert_eq!(g.sampling.top_k, Some(20));
    assert_eq!(g.sampling.repetition_penalty, Some(1.1));
    assert_eq!(g.conversation.messages[0].role, Role::System);
    assert_eq!(
        g.conversation.messages[0].joined_text(),
        "Transcribe all text in the image."
    );
    let events = h.answer_with_engine();
    let Some(Event::Prompt { params, .. }) = events.first() else {
        panic!("{events:?}");
    };
    assert!((params.top_p - 0.8).abs() < 1e-9);
    assert_eq!(params.top_k, 20);
    let screen = h.screen();
    assert!(
        screen.contains("ocr · T model · max model · top-p 0.80 · top-k 20"),
        "{screen}"
    );
    assert!(
        screen.contains("Alt+4 ocr · T model · max model"),
        "{screen}"
    );

    // The session keeps the system prompt and the settings, and a resume brings them back.
    let store = SessionStore::at(h.sessions_dir.path().join("sessions"));
    let id = h.app.session_id.clone().unwrap();
    let saved = read_json(&store.path_of(&id));
    assert_eq!(saved["messages"][0]["role"], "system");
    assert_eq!(saved["settings"]["preset"], "ocr");
    assert_eq!(saved["settings"]["sampling"]["top_k"], 20);
    let mut again = Harness::loaded_config(100, 30, EngineOptions::new(model_dir()), |c| {
        c.presets = glimpse::cli::chat::chat_presets(&config);
    });
    again.resume_into(&store, store.load(&id).unwrap());
    assert_eq!(
        user_entries(&again.app).len(),
        1,
        "the system prompt is not a turn"
    );
    again.ask("And the back?");
    let g = again.generations.last().unwrap();
    assert_eq!(g.conversation.messages[0].role, Role::System);
    assert_eq!(g.sampling.top_p, Some(0.8));
    assert_eq!(g.sampling.temperature, None);
}

#[test]
fn a_resumed_answer_shows_its_boxes_again() {
    // Qwen2-VL's own format, on the 0–1000 grid.
    const BOXED: &str = "<|object_ref_start|>the square<|object_ref_end|>\
                         <|box_start|>(513,284),(700,569)<|box_end|>";
    let mut first = Harness::loaded(100, 40);
    first.ask(&format!("/image {}", image("scene_333x211.png")));
    first.ask("Where is the square?");
    first.feed(prompt_event(120, 1));
    first.feed(token(BOXED));
    first.feed(done(FinishReason::Stop, 12));
    let live = grounding_of_last_answer(&first.app).expect("the live answer has a box");
    assert_eq!(live.len(), 1);
    let store = SessionStore::at(first.sessions_dir.path().join("sessions"));

    let mut second = Harness::loaded(100, 40);
    second.resume_into(&store, store.load_latest().unwrap());
    let again = grounding_of_last_answer(&second.app).unwrap_or_else(|| {
        panic!(
            "the resumed answer has its box: {:?}",
            second.app.entries.last().map(|e| &e.kind)
        )
    });
    assert_eq!(again, live, "placed on the same original pixels");
    let screen = second.screen();
    assert!(screen.contains("the square"), "{screen}");
    assert!(screen.contains("1 object found"), "{screen}");
}

fn grounding_of_last_answer(app: &App) -> Option<Vec<(Option<[u32; 4]>, String)>> {
    app.entries.iter().rev().find_map(|e| match &e.kind {
        glimpse::tui::transcript::EntryKind::Assistant(r) => r.grounding.as_ref().map(|g| {
            g.detections
                .iter()
                .map(|d| (d.pixel_box(), d.label.clone()))
                .collect()
        }),
        _ => None,
    })
}

#[test]
fn a_failed_save_stays_in_the_status_line_until_a_save_succeeds() {
    let mut h = Harness::loaded(160, 30);
    // A file where the sessions folder should be: every save fails.
    let folder = h.sessions_dir.path().join("sessions");
    std::fs::write(&folder, "not a folder").unwrap();
    h.ask("hello");
    h.answer_with_engine();
    // Typing clears the one-line flash; the status line keeps the problem.
    h.type_str("x");
    let screen = h.screen();
    let status = screen.lines().last().unwrap_or_default().to_string();
    assert!(status.contains("not saved"), "{screen}");
    assert!(status.contains("sessions"), "the path is named: {status}");
    std::fs::remove_file(&folder).unwrap();
    h.press(KeyCode::Backspace);
    h.ask("again");
    h.answer_with_engine();
    let screen = h.screen();
    assert!(!screen.contains("not saved"), "{screen}");
    assert!(h.app.session_id.is_some());
}

#[test]
fn the_queued_notice_goes_when_the_queued_question_is_asked() {
    let mut h = Harness::loaded(120, 30);
    h.ask("first");
    h.ask("second");
    assert!(h.screen().contains("queued: asked when"), "{}", h.screen());
    h.answer_with_engine();
    assert_eq!(h.generations.len(), 2, "the queued question is asked");
    let screen = h.screen();
    assert!(!screen.contains("queued: asked"), "{screen}");
}
