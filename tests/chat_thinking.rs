//! Thinking in the chat app, with the real engine on the tiny model given
//! the real Qwen3.5 or Qwen3-VL-Thinking template: the status line, the
//! choice sent with each request, the reasoning block, and what is resent,
//! copied and exported.

use std::sync::atomic::Ordering;

use ratatui::crossterm::event::{KeyCode, KeyModifiers};

use glimpse::conversation::Role;
use glimpse::engine::{DeviceChoice, EngineOptions, Event, FinishReason, Timings};
use glimpse::session::SessionStore;
use glimpse::tui::app::Flash;
use glimpse::tui::session_keeper::{SessionEvent, SessionKeeper};
use glimpse::tui::transcript::EntryKind;
use glimpse::tui::{AppConfig, Msg};

mod common;
use common::app::AppHarness;
use common::model_with_template;

struct Chat {
    inner: AppHarness,
    _model: tempfile::TempDir,
    sessions: tempfile::TempDir,
}

common::app::derefs_to_app_harness!(Chat);

impl Chat {
    fn open(template: &str, adjust: impl FnOnce(&mut AppConfig)) -> Chat {
        let model = model_with_template(template);
        let mut config = AppConfig::new(model.path());
        config.seed = 7;
        adjust(&mut config);
        let sessions = tempfile::tempdir().unwrap();
        let mut inner = AppHarness::new(config, 100, 40);
        inner.keeper = Some(SessionKeeper::new(
            Ok(SessionStore::at(sessions.path().join("sessions"))),
            model.path().display().to_string(),
        ));
        let mut options = EngineOptions::new(model.path());
        options.device = DeviceChoice::Cpu;
        inner.load(options);
        Chat {
            inner,
            _model: model,
            sessions,
        }
    }

    fn status(&mut self) -> String {
        self.screen().lines().last().unwrap_or_default().to_string()
    }

    fn last_reply(&self) -> &glimpse::tui::transcript::Reply {
        self.app
            .entries
            .iter()
            .rev()
            .find_map(|e| match &e.kind {
                EntryKind::Assistant(r) => Some(r),
                _ => None,
            })
            .expect("an answer")
    }

    fn command(&mut self, text: &str) {
        self.ask(text);
    }

    fn alt(&mut self, c: char) {
        self.key(KeyCode::Char(c), KeyModifiers::ALT);
    }
}

fn done(reasoning: &str, reasoning_tokens: usize, text: &str) -> Event {
    Event::Done {
        finish_reason: FinishReason::Stop,
        tokens: vec![1; reasoning_tokens + 3],
        text: text.into(),
        reasoning: reasoning.into(),
        reasoning_tokens,
        timings: Timings::default(),
    }
}

#[test]
fn a_qwen3_5_answer_streams_its_reasoning_into_a_block_that_folds() {
    let mut chat = Chat::open("qwen3_5.jinja", |_| {});
    assert!(chat.status().contains("think on"), "{}", chat.status());
    chat.ask("What is in the picture?");
    assert_eq!(chat.generations.last().unwrap().thinking, None);
    let events = chat.answer_with_engine();
    assert!(matches!(events.first(), Some(Event::Prompt { .. })));
    let Some(Event::Done {
        reasoning,
        reasoning_tokens,
        text,
        ..
    }) = events.last().cloned()
    else {
        panic!("{events:?}")
    };
    assert!(reasoning_tokens > 0, "the prompt opened <think>");
    let streamed = events
        .iter()
        .filter(|e| matches!(e, Event::Reasoning { .. }))
        .count();
    assert_eq!(streamed, reasoning_tokens);
    let reply = chat.last_reply().clone();
    assert_eq!(reply.reasoning.text, reasoning);
    assert_eq!(reply.reasoning.tokens, reasoning_tokens);
    assert_eq!(reply.text, text);
    assert!(reply.reasoning.seconds.is_some());

    let folded = chat.screen();
    let heading = format!("▸ thinking · {reasoning_tokens} tokens · ");
    assert!(folded.contains(&heading), "{folded}");
    assert!(folded.contains("Alt+R shows it"), "{folded}");
    chat.alt('r');
    let unfolded = chat.screen();
    assert!(unfolded.contains("▾ thinking · "), "{unfolded}");
    // Random weights write garbled text; its rows are there, barred.
    let barred = |screen: &str| screen.matches("\"   │ ").count();
    assert_eq!(barred(&folded), 0, "{folded}");
    assert!(barred(&unfolded) > 0, "{unfolded}");
}

#[test]
fn the_choice_follows_think_the_key_and_the_preset() {
    let mut chat = Chat::open("qwen3_5.jinja", |_| {});
    chat.command("/think off");
    assert_eq!(
        chat.app.flash,
        Some(Flash::Info("thinking off for the next answers".into()))
    );
    assert!(chat.status().contains("think off"), "{}", chat.status());
    chat.ask("Hello?");
    assert_eq!(chat.generations.last().unwrap().thinking, Some(false));
    let events = chat.answer_with_engine();
    let Some(Event::Done {
        reasoning_tokens, ..
    }) = events.last()
    else {
        panic!("{events:?}")
    };
    assert_eq!(*reasoning_tokens, 0, "the prompt closed an empty block");
    assert!(chat.last_reply().reasoning.is_empty());

    chat.alt('k');
    assert!(chat.status().contains("think on"), "{}", chat.status());
    // The quick preset turns thinking off; the diagnostic one leaves it open.
    chat.key(KeyCode::F(3), KeyModifiers::NONE);
    assert!(chat.status().contains("think off"), "{}", chat.status());
    chat.key(KeyCode::F(1), KeyModifiers::NONE);
    assert!(chat.status().contains("think on"), "{}", chat.status());
    chat.command("/think maybe");
    assert!(
        matches!(&chat.app.flash, Some(Flash::Error(e)) if e.contains("not on or off")),
        "{:?}",
        chat.app.flash
    );
}

#[test]
fn the_flag_and_the_config_set_the_start() {
    let mut chat = Chat::open("qwen3_5.jinja", |c| c.thinking = Some(false));
    assert!(chat.status().contains("think off"), "{}", chat.status());
    let mut chat = Chat::open("qwen3_5.jinja", |c| {
        c.thinking = Some(false);
        c.thinking_start = Some(true);
    });
    assert!(chat.status().contains("think on"), "{}", chat.status());
}

#[test]
fn an_always_thinking_checkpoint_says_it_cannot_stop() {
    let mut chat = Chat::open("qwen3_vl_thinking.jinja", |_| {});
    assert!(chat.status().contains("think always"), "{}", chat.status());
    chat.command("/think off");
    assert_eq!(
        chat.app.flash,
        Some(Flash::Error(
            "this checkpoint always thinks; thinking cannot be turned off".into()
        ))
    );
    assert!(chat.status().contains("think always"));
}

#[test]
fn esc_stops_the_reasoning_like_an_answer() {
    let mut chat = Chat::open("qwen3_5.jinja", |_| {});
    chat.ask("Think about it.");
    chat.feed(Event::Reasoning {
        id: 1,
        text: "Let me see".into(),
    });
    let screen = chat.screen();
    assert!(screen.contains("▾ thinking · 1 tokens"), "{screen}");
    assert!(screen.contains("Let me see"), "{screen}");
    chat.key(KeyCode::Esc, KeyModifiers::NONE);
    assert!(chat
        .generations
        .last()
        .unwrap()
        .cancel
        .load(Ordering::Relaxed));
}

#[test]
fn reasoning_is_kept_apart_resent_as_reasoning_content_and_exported_folded() {
    let mut chat = Chat::open("qwen3_5.jinja", |_| {});
    chat.ask("How many bars?");
    for (id, text) in [(1, "Counting"), (2, " the bars.")] {
        chat.feed(Event::Reasoning {
            id,
            text: text.into(),
        });
    }
    chat.feed(Event::Token {
        id: 3,
        text: "Three.".into(),
    });
    chat.feed(done("Counting the bars.", 2, "Three."));
    assert_eq!(chat.last_reply().text, "Three.");

    chat.ctrl('y');
    assert_eq!(chat.copied.last().map(String::as_str), Some("Three."));

    chat.ask("And now?");
    let sent = &chat.generations.last().unwrap().conversation;
    let answer = sent
        .messages
        .iter()
        .find(|m| m.role == Role::Assistant)
        .unwrap();
    assert_eq!(answer.joined_text(), "Three.");
    assert_eq!(answer.reasoning.as_deref(), Some("Counting the bars."));
    chat.feed(Event::Token {
        id: 4,
        text: "Still three.".into(),
    });
    chat.feed(done("", 0, "Still three."));

    let out = chat.sessions.path().join("chat.md");
    chat.command(&format!("/export {}", out.display()));
    let md = std::fs::read_to_string(&out).unwrap();
    assert!(
        md.contains(
            "## Assistant\n\n<details>\n<summary>Reasoning</summary>\n\nCounting the bars.\n\n</details>\n\nThree.\n"
        ),
        "{md}"
    );
    assert!(md.contains("## Assistant\n\nStill three.\n"), "{md}");
    // The session on disk keeps it apart too.
    let sessions = SessionStore::at(chat.sessions.path().join("sessions"));
    let listing = sessions.list().unwrap();
    let saved = sessions.load(&listing.sessions[0].id).unwrap();
    let kept = &saved.conversation.messages;
    assert!(kept
        .iter()
        .any(|m| m.reasoning.as_deref() == Some("Counting the bars.")));
}

#[test]
fn a_resumed_session_keeps_the_thinking_choice_it_had() {
    let mut chat = Chat::open("qwen3_5.jinja", |_| {});
    chat.ask("How many bars?");
    chat.feed(done("", 0, "Three."));
    // The choice is saved when it is made, not only with the next answer.
    chat.command("/think off");
    let store = SessionStore::at(chat.sessions.path().join("sessions"));
    let id = store.list().unwrap().sessions[0].id.clone();
    let saved = store.load(&id).unwrap();
    assert_eq!(saved.settings.thinking, Some(false));
    let file = std::fs::read_to_string(store.path_of(&id)).unwrap();
    let json: serde_json::Value = serde_json::from_str(&file).unwrap();
    assert_eq!(json["format_version"], 1);
    assert_eq!(json["settings"]["thinking"], false);

    // Another chat on the same checkpoint (thinking by default) resumes it.
    let resume = |session: glimpse::session::Session| {
        let mut chat = Chat::open("qwen3_5.jinja", |_| {});
        assert!(chat.status().contains("think on"), "{}", chat.status());
        let mut keeper = SessionKeeper::new(Ok(store.clone()), "m");
        let restored = keeper.resume(session);
        chat.inner.keeper = Some(keeper);
        chat.inner
            .send(Msg::Session(SessionEvent::Opened(Ok(Box::new(restored)))));
        chat
    };
    let mut resumed = resume(saved.clone());
    assert!(
        resumed.status().contains("think off"),
        "{}",
        resumed.status()
    );
    resumed.ask("And now?");
    assert_eq!(resumed.generations.last().unwrap().thinking, Some(false));

    // A session saved before sessions kept the choice follows its preset.
    let mut older = saved;
    older.settings.thinking = None;
    let mut resumed = resume(older);
    assert!(
        resumed.status().contains("think on"),
        "{}",
        resumed.status()
    );
}
