//! The chat app on saved sessions that went wrong outside it: two chats on
//! one session, an image gone while resuming, a question cut off before its
//! answer, settings no preset could have. Each runs the app with the real
//! session keeper and the tiny model.

use std::path::{Path, PathBuf};

use glimpse::conversation::Role;
use glimpse::engine::EngineOptions;
use glimpse::session::{Session, SessionStore};
use glimpse::tui::app::ImageState;
use glimpse::tui::session_keeper::{SessionEvent, SessionKeeper};
use glimpse::tui::transcript::EntryKind;
use glimpse::tui::{App, AppConfig, Msg};

mod common;
use common::app::AppHarness;

fn model_dir() -> PathBuf {
    PathBuf::from("tests/fixtures/models/qwen2_vl")
}

fn fixture_image(name: &str) -> PathBuf {
    Path::new("tests/fixtures/images").join(name)
}

/// A chat with the tiny model loaded, saving into `store`.
fn chat(store: &SessionStore) -> AppHarness {
    let mut config = AppConfig::new(model_dir());
    config.cpu_threads = 4;
    config.seed = 7;
    config.font_size = (10, 20);
    let mut h = AppHarness::new(config, 100, 40);
    h.keeper = Some(SessionKeeper::new(
        Ok(store.clone()),
        model_dir().display().to_string(),
    ));
    h.load(EngineOptions::new(model_dir()));
    h
}

/// A chat continuing `id` as `glimpse --resume ID` does.
fn resumed(store: &SessionStore, id: &str) -> AppHarness {
    let mut h = chat(store);
    let keeper = h.keeper.as_mut().unwrap();
    let restored = keeper.resume(store.load(id).unwrap());
    h.send(Msg::Session(SessionEvent::Opened(Ok(Box::new(restored)))));
    h
}

fn saved(store: &SessionStore, id: &str) -> Session {
    store.load(id).unwrap()
}

fn questions(app: &App) -> Vec<(String, usize)> {
    app.entries
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::User { text, images, .. } => Some((text.clone(), images.len())),
            _ => None,
        })
        .collect()
}

fn notices(app: &App) -> Vec<String> {
    app.entries
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::Notice { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

fn input_text(app: &App) -> String {
    app.input.lines().join("\n")
}

fn roles(session: &Session) -> Vec<Role> {
    session
        .conversation
        .messages
        .iter()
        .map(|m| m.role)
        .collect()
}

/// A saved session of one answered question about `images`.
fn first_session(store: &SessionStore, images: &[&Path]) -> String {
    let mut h = chat(store);
    let paths: Vec<String> = images.iter().map(|p| p.display().to_string()).collect();
    h.ask(&format!("/image {}", paths.join(" ")));
    h.ask("What is in this picture?");
    h.answer_with_engine();
    h.app.session_id.clone().expect("saved")
}

/// A folder of its own (kept while the first value lives) with one saved
/// session about the scene picture.
fn first_session_about_the_scene() -> (tempfile::TempDir, SessionStore, String) {
    let data = tempfile::tempdir().unwrap();
    let store = SessionStore::at(data.path().join("sessions"));
    let id = first_session(&store, &[&fixture_image("scene_333x211.png")]);
    (data, store, id)
}

#[test]
fn a_second_chat_on_the_same_session_continues_under_a_new_id_with_a_notice() {
    let (_data, store, id) = first_session_about_the_scene();

    let mut a = resumed(&store, &id);
    let mut b = resumed(&store, &id);
    a.ask("A: and the colours?");
    a.answer_with_engine();
    b.ask("B: and the shapes?");
    b.answer_with_engine();
    a.ask("A: anything else?");
    a.answer_with_engine();

    assert_eq!(a.app.session_id.as_deref(), Some(id.as_str()));
    let b_id = b.app.session_id.clone().unwrap();
    assert_ne!(b_id, id);
    let expected = format!(
        "another glimpse saved this session meanwhile; this conversation continues as {b_id}"
    );
    assert!(notices(&b.app).contains(&expected), "{:?}", notices(&b.app));
    assert!(b.screen().contains("another glimpse saved this session"));
    assert!(notices(&a.app)
        .iter()
        .all(|n| !n.contains("another glimpse")));

    let texts = |s: &Session| -> Vec<String> {
        s.conversation
            .messages
            .iter()
            .filter(|m| m.role == Role::User)
            .map(|m| m.joined_text())
            .collect()
    };
    assert_eq!(
        texts(&saved(&store, &id)),
        [
            "What is in this picture?",
            "A: and the colours?",
            "A: anything else?"
        ]
    );
    assert_eq!(
        texts(&saved(&store, &b_id)),
        ["What is in this picture?", "B: and the shapes?"]
    );
    assert_eq!(saved(&store, &b_id).conversation.messages.len(), 4);
}

#[test]
fn an_image_missing_on_resume_is_kept_and_shown_again_when_it_returns() {
    let data = tempfile::tempdir().unwrap();
    let store = SessionStore::at(data.path().join("sessions"));
    let scene = data.path().join("scene.png");
    let gone = data.path().join("gone.png");
    std::fs::copy(fixture_image("scene_333x211.png"), &scene).unwrap();
    std::fs::copy(fixture_image("checker_200x150.png"), &gone).unwrap();
    let id = first_session(&store, &[&scene, &gone]);
    std::fs::rename(&gone, data.path().join("away.png")).unwrap();

    let mut h = resumed(&store, &id);
    assert_eq!(questions(&h.app), [("What is in this picture?".into(), 1)]);
    assert!(
        notices(&h.app)
            .iter()
            .any(|n| n.ends_with("gone.png is missing: it is left out for now and kept in the session, so it comes back when the file does")),
        "{:?}",
        notices(&h.app)
    );
    h.ask("And now?");
    assert_eq!(h.generations.last().unwrap().conversation.images().len(), 1);
    h.answer_with_engine();
    let s = saved(&store, &id);
    assert_eq!(s.conversation.messages.len(), 4);
    assert_eq!(s.conversation.messages[0].images().count(), 2);
    assert_eq!(s.images.len(), 2);
    drop(h);

    std::fs::rename(data.path().join("away.png"), &gone).unwrap();
    let mut h = resumed(&store, &id);
    assert_eq!(
        questions(&h.app),
        [
            ("What is in this picture?".into(), 2),
            ("And now?".into(), 0)
        ]
    );
    assert!(notices(&h.app).is_empty(), "{:?}", notices(&h.app));
    assert!(h
        .app
        .images
        .values()
        .all(|i| matches!(i.state, ImageState::Ready(_))));
    h.ask("And with both?");
    assert_eq!(h.generations.last().unwrap().conversation.images().len(), 2);
}

#[test]
fn a_question_cut_off_by_a_kill_is_offered_again_in_the_input_box() {
    let (_data, store, id) = first_session_about_the_scene();
    {
        // Asked, saved, and the process dies before any answer.
        let mut h = resumed(&store, &id);
        h.ask(&format!(
            "/image {}",
            fixture_image("rings_80x112.png").display()
        ));
        h.ask("Which ring is bigger?");
    }
    assert_eq!(
        roles(&saved(&store, &id)),
        [Role::User, Role::Assistant, Role::User]
    );

    let mut h = resumed(&store, &id);
    assert_eq!(questions(&h.app), [("What is in this picture?".into(), 1)]);
    assert_eq!(input_text(&h.app), "Which ring is bigger?");
    assert_eq!(h.app.attachments.len(), 1);
    assert!(
        notices(&h.app)
            .iter()
            .any(|n| n.contains("it is back in the input box")),
        "{:?}",
        notices(&h.app)
    );
    h.ask("");
    let asked = &h.generations.last().unwrap().conversation;
    assert_eq!(asked.messages.len(), 3);
    assert_eq!(asked.images().len(), 2);
    h.answer_with_engine();
    let s = saved(&store, &id);
    use Role::*;
    assert_eq!(roles(&s), [User, Assistant, User, Assistant]);
    assert_eq!(store.list().unwrap().sessions[0].turns, 2);
}

#[test]
fn settings_no_preset_could_have_fall_back_to_the_model_defaults() {
    let (_data, store, id) = first_session_about_the_scene();
    let path = store.path_of(&id);
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["settings"]["sampling"]["temperature"] = serde_json::json!(1e300);
    v["settings"]["sampling"]["max_new_tokens"] = serde_json::json!(0);
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();

    let mut h = resumed(&store, &id);
    assert_eq!(h.app.settings.temperature, None);
    assert_eq!(h.app.settings.max_tokens, None);
    assert!(
        notices(&h.app)
            .iter()
            .any(|n| n.contains("temperature must be between 0 (greedy) and 2, got 1e300")),
        "{:?}",
        notices(&h.app)
    );
    let screen = h.screen();
    assert!(!screen.contains("0000000000"), "{screen}");
    h.ask("And the colours?");
    let sampling = &h.generations.last().unwrap().sampling;
    assert_eq!(
        (sampling.temperature, sampling.max_new_tokens),
        (None, None)
    );
    h.answer_with_engine();
    let s = saved(&store, &id);
    use Role::*;
    assert_eq!(roles(&s), [User, Assistant, User, Assistant]);
    assert!(!s.conversation.messages[3].joined_text().is_empty());
}

#[test]
fn the_session_list_shows_escape_sequences_in_titles_as_text() {
    let data = tempfile::tempdir().unwrap();
    let store = SessionStore::at(data.path().join("sessions"));
    let mut s = Session::new(
        "\u{1b}[2Jmodel",
        glimpse::session::SessionSettings::default(),
    );
    s.conversation.push(glimpse::conversation::Message::text(
        Role::User,
        "\u{1b}]0;owned\u{7}\u{1b}[31mred title",
    ));
    store.save(&mut s).unwrap();

    let mut h = chat(&store);
    h.key(
        ratatui::crossterm::event::KeyCode::Char('s'),
        ratatui::crossterm::event::KeyModifiers::ALT,
    );
    assert!(h.app.dialog.session_list().is_some());
    let screen = h.screen();
    assert!(
        screen.contains(r"\x1b]0;owned\x07\x1b[31mred title"),
        "{screen}"
    );
    assert!(screen.contains(r"\x1b[2Jmodel"), "{screen}");
    assert!(!screen.contains('\u{1b}'), "{screen:?}");
}
