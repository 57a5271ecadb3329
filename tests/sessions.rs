//! Saved conversations: the round trip through the session folder, writes that
//! survive a crash, files this version must not touch, two chats on one
//! session, sessions repaired on resume, and the Markdown export.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use glimpse::conversation::{Conversation, Message, Role};
use glimpse::engine::SamplingOverrides;
use glimpse::session::atomic::Staged;
use glimpse::session::export::write_markdown;
use glimpse::session::store::{user_message, ImageState, Unreadable};
use glimpse::session::timestamp::Timestamp;
use glimpse::session::{Saved, Session, SessionSettings, SessionStore, StoreError};
use glimpse::tui::session_keeper::{Restored, SessionCmd, SessionEvent, SessionKeeper};
use serde_json::Value;

const SHELF_SHA256: &str = "520c7079f30af1376405c795b78baff33b6d6c2e811d2827f1d8b17416733c42";
const LABEL_SHA256: &str = "ef2832c453ad92bda7c86fef34569d0f74f156fde142098c6e2e42f5a3b44978";

fn fixture_image(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/images")
        .join(name)
}

/// Two questions about two photos kept in `root/photos`.
fn shelf_session(root: &Path) -> Session {
    let photos = root.join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    let shelf = photos.join("shelf.png");
    let label = photos.join("label (back).png");
    std::fs::copy(fixture_image("scene_333x211.png"), &shelf).unwrap();
    std::fs::copy(fixture_image("checker_200x150.png"), &label).unwrap();

    let settings = SessionSettings {
        preset: Some("diagnostic".into()),
        sampling: SamplingOverrides {
            temperature: Some(0.3),
            max_new_tokens: Some(768),
            ..Default::default()
        },
        device: Some("cuda:0".into()),
        dtype: Some("bf16".into()),
        thinking: None,
    };
    let mut s = Session::new("Qwen/Qwen3-VL-4B-Instruct", settings);
    s.id = "20250131-090500-3fa2c1".into();
    s.created = Timestamp::parse_rfc3339("2025-01-31T09:05:00Z").unwrap();
    s.updated = Timestamp::parse_rfc3339("2025-01-31T09:07:30Z").unwrap();
    let c = &mut s.conversation;
    c.push(Message::text(
        Role::System,
        "You check supermarket shelves.",
    ));
    c.push(user_message(
        vec![shelf],
        "What is the expiry date on the blue can, third shelf?",
    ));
    c.push(Message::text(
        Role::Assistant,
        "The blue can on the third shelf expires on **12/2026**.",
    ));
    c.push(user_message(vec![label], "And on this label?"));
    c.push(Message::text(
        Role::Assistant,
        "The label reads:\n\n- best before 03/2027\n- lot 4471",
    ));
    s
}

fn set_updated(store: &SessionStore, id: &str, when: &str) {
    let path = store.path_of(id);
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["updated"] = Value::String(when.into());
    std::fs::write(path, serde_json::to_vec(&v).unwrap()).unwrap();
}

#[test]
fn a_saved_session_loads_back_identical() {
    let root = tempfile::tempdir().unwrap();
    let store = SessionStore::at(root.path().join("sessions"));
    let mut s = shelf_session(root.path());
    let saved = store.save(&mut s).unwrap();
    assert_eq!(saved, Saved::InPlace(store.path_of(&s.id)));
    assert!(s.updated >= s.created);

    let loaded = store.load(&s.id).unwrap();
    assert_eq!(loaded, s);
    assert_eq!(store.load("20250131-0905").unwrap(), s, "a unique prefix");
    assert_eq!(store.load("latest").unwrap(), s);
}

#[test]
fn the_file_holds_transformers_messages_image_digests_and_a_version() {
    let root = tempfile::tempdir().unwrap();
    let store = SessionStore::at(root.path().join("sessions"));
    let mut s = shelf_session(root.path());
    store.save(&mut s).unwrap();
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(store.path_of(&s.id)).unwrap()).unwrap();
    assert_eq!(v["format_version"], 1);
    assert_eq!(v["model"], "Qwen/Qwen3-VL-4B-Instruct");
    assert_eq!(v["created"], "2025-01-31T09:05:00Z");
    assert_eq!(v["settings"]["preset"], "diagnostic");
    assert_eq!(v["settings"]["sampling"]["temperature"], 0.3);
    assert_eq!(v["messages"][1]["role"], "user");
    assert_eq!(v["messages"][1]["content"][0]["type"], "image");
    assert_eq!(
        v["messages"][1]["content"][0]["image"],
        root.path().join("photos/shelf.png").to_str().unwrap()
    );
    assert_eq!(
        v["messages"][2]["content"],
        s.conversation.messages[2].joined_text()
    );
    assert_eq!(v["images"][0]["sha256"], SHELF_SHA256);
    assert_eq!(v["images"][1]["sha256"], LABEL_SHA256);
    assert_eq!(
        v["title"],
        "What is the expiry date on the blue can, third shelf?"
    );
}

#[test]
fn relative_image_paths_are_saved_absolute() {
    let root = tempfile::tempdir().unwrap();
    let store = SessionStore::at(root.path().join("sessions"));
    let mut s = Session::new("m", SessionSettings::default());
    s.conversation.push(user_message(
        vec!["tests/fixtures/images/scene_333x211.png".into()],
        "hi",
    ));
    store.save(&mut s).unwrap();
    let image = &store.load(&s.id).unwrap().images[0];
    assert!(image.path.is_absolute(), "{}", image.path.display());
    assert_eq!(image.sha256.as_deref(), Some(SHELF_SHA256));
}

#[test]
fn a_resumed_session_tells_changed_and_missing_images() {
    let root = tempfile::tempdir().unwrap();
    let store = SessionStore::at(root.path().join("sessions"));
    let mut s = shelf_session(root.path());
    store.save(&mut s).unwrap();
    let loaded = store.load(&s.id).unwrap();
    let states: Vec<ImageState> = loaded
        .check_images()
        .into_iter()
        .map(|(_, st)| st)
        .collect();
    assert_eq!(states, [ImageState::Unchanged, ImageState::Unchanged]);

    std::fs::write(root.path().join("photos/shelf.png"), b"another picture").unwrap();
    std::fs::remove_file(root.path().join("photos/label (back).png")).unwrap();
    let states: Vec<ImageState> = loaded
        .check_images()
        .into_iter()
        .map(|(_, st)| st)
        .collect();
    assert_eq!(states, [ImageState::Changed, ImageState::Missing]);
}

#[test]
fn the_list_is_newest_first_with_titles() {
    let root = tempfile::tempdir().unwrap();
    let store = SessionStore::at(root.path().join("sessions"));
    let mut ids = Vec::new();
    for (question, when) in [
        ("first", "2025-01-01T10:00:00Z"),
        ("third", "2025-03-01T10:00:00Z"),
        ("second", "2025-02-01T10:00:00Z"),
    ] {
        let mut s = Session::new("m", SessionSettings::default());
        s.conversation.push(Message::text(Role::User, question));
        store.save(&mut s).unwrap();
        set_updated(&store, &s.id, when);
        ids.push(s.id);
    }
    let listing = store.list().unwrap();
    let titles: Vec<&str> = listing.sessions.iter().map(|s| s.title.as_str()).collect();
    assert_eq!(titles, ["third", "second", "first"]);
    assert!(listing.unreadable.is_empty());
    assert_eq!(store.load("latest").unwrap().id, ids[1]);
}

#[test]
fn an_empty_or_missing_folder_lists_nothing_and_has_no_latest() {
    let root = tempfile::tempdir().unwrap();
    let store = SessionStore::at(root.path().join("never-created"));
    assert!(store.list().unwrap().sessions.is_empty());
    let e = store.load("latest").unwrap_err();
    assert!(matches!(e, StoreError::Empty { .. }), "{e}");
    let e = store.load("2025").unwrap_err();
    assert!(e.to_string().contains("no session \"2025\""), "{e}");
}

/// A crash between writing the temporary file and renaming it leaves a
/// partial temporary file behind; the session file keeps its last complete
/// content, and listing and loading ignore the leftover.
#[test]
fn a_crash_mid_save_leaves_the_previous_version_and_a_temp_file_that_is_ignored() {
    let root = tempfile::tempdir().unwrap();
    let store = SessionStore::at(root.path().join("sessions"));
    let mut s = shelf_session(root.path());
    store.save(&mut s).unwrap();
    let before = std::fs::read(store.path_of(&s.id)).unwrap();

    let whole = {
        let mut longer = s.clone();
        longer
            .conversation
            .push(Message::text(Role::User, "One more question"));
        serde_json::to_vec(&longer.conversation.to_json_value()).unwrap()
    };
    // The process dies with half of the new content written: the staged file
    // is neither renamed nor cleaned up.
    let staged = Staged::write(&store.path_of(&s.id), &whole[..whole.len() / 2]).unwrap();
    let leftover = staged.temp_path().to_path_buf();
    std::mem::forget(staged);
    // And a brand-new session died before its first rename.
    let staged = Staged::write(&store.path_of("20250201-000000-000000"), b"{\"format_ver").unwrap();
    std::mem::forget(staged);

    assert!(leftover.exists());
    assert_eq!(std::fs::read(store.path_of(&s.id)).unwrap(), before);
    let listing = store.list().unwrap();
    assert_eq!(listing.sessions.len(), 1);
    assert!(listing.unreadable.is_empty(), "{:?}", listing.unreadable);
    assert_eq!(store.load("latest").unwrap(), s);
    assert!(store.load("20250201").is_err());

    // Saving again after the restart works and still ignores the leftovers.
    s.conversation
        .push(Message::text(Role::User, "One more question"));
    store.save(&mut s).unwrap();
    assert_eq!(store.load(&s.id).unwrap().conversation.messages.len(), 6);
}

#[test]
fn a_damaged_file_is_reported_and_never_overwritten() {
    let root = tempfile::tempdir().unwrap();
    let store = SessionStore::at(root.path().join("sessions"));
    std::fs::create_dir_all(store.dir()).unwrap();
    let id = "20250115-120000-abcdef";
    let damaged = b"{\"format_version\": 1, \"id\": \"20250115-120000-abcdef\", \"messages\": [";
    std::fs::write(store.path_of(id), damaged).unwrap();

    let e = store.load(id).unwrap_err().to_string();
    assert!(
        e.contains("is damaged") && e.contains("left untouched"),
        "{e}"
    );
    assert!(e.contains(&store.path_of(id).display().to_string()), "{e}");
    let listing = store.list().unwrap();
    assert!(matches!(
        listing.unreadable.as_slice(),
        [Unreadable::Corrupt { .. }]
    ));

    let mut s = Session::new("m", SessionSettings::default());
    s.id = id.into();
    s.conversation.push(Message::text(Role::User, "hello"));
    match store.save(&mut s).unwrap() {
        Saved::AsNew { old_id, path, kept } => {
            assert_eq!(old_id, id);
            assert_ne!(s.id, id);
            assert_eq!(path, store.path_of(&s.id));
            assert_eq!(kept.path(), store.path_of(id));
        }
        other => panic!("overwrote the damaged file: {other:?}"),
    }
    assert_eq!(std::fs::read(store.path_of(id)).unwrap(), damaged);
    assert_eq!(store.load(&s.id).unwrap().conversation, s.conversation);
}

#[test]
fn a_file_from_a_newer_glimpse_is_reported_and_never_overwritten() {
    let root = tempfile::tempdir().unwrap();
    let store = SessionStore::at(root.path().join("sessions"));
    std::fs::create_dir_all(store.dir()).unwrap();
    let id = "20300101-000000-000001";
    let newer = br#"{"format_version": 7, "id": "20300101-000000-000001", "threads": []}"#;
    std::fs::write(store.path_of(id), newer).unwrap();

    let e = store.load(id).unwrap_err().to_string();
    assert!(
        e.contains("newer glimpse (format 7, this one reads up to 1)"),
        "{e}"
    );
    assert!(e.contains("update glimpse"), "{e}");

    let mut s = Session::new("m", SessionSettings::default());
    s.id = id.into();
    assert!(matches!(store.save(&mut s).unwrap(), Saved::AsNew { .. }));
    assert_eq!(std::fs::read(store.path_of(id)).unwrap(), newer);
}

#[test]
fn the_markdown_export_matches_the_snapshot() {
    let root = tempfile::tempdir().unwrap();
    let s = shelf_session(root.path());
    let out = root.path().join("notes/chat.md");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    write_markdown(&s, &out).unwrap();
    let got = std::fs::read_to_string(&out).unwrap();
    let snapshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sessions/export.md");
    if std::env::var_os("GLIMPSE_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&snapshot, &got).unwrap();
    }
    let want = std::fs::read_to_string(&snapshot).unwrap();
    assert_eq!(
        got, want,
        "set GLIMPSE_UPDATE_SNAPSHOTS=1 to accept a deliberate change"
    );
}

/// The shelf session saved in a folder of its own (kept while the first
/// value lives).
fn saved_shelf_session() -> (tempfile::TempDir, SessionStore, Session) {
    let root = tempfile::tempdir().unwrap();
    let store = SessionStore::at(root.path().join("sessions"));
    let mut s = shelf_session(root.path());
    store.save(&mut s).unwrap();
    (root, store, s)
}

/// Runs `f` on its own thread and fails the test if it takes longer than
/// `secs`: a hang shows as a failure rather than a test that never ends.
fn within<T: Send + 'static>(secs: u64, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("{what} did not finish in {secs} s"))
}

#[cfg(unix)]
fn make_fifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path and a mode.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

#[cfg(unix)]
#[test]
fn images_that_are_devices_or_pipes_are_never_read_and_never_hang() {
    let root = tempfile::tempdir().unwrap();
    let store = SessionStore::at(root.path().join("sessions"));
    let fifo = root.path().join("camera.png");
    make_fifo(&fifo);
    let zero = PathBuf::from("/dev/zero");
    let mut s = Session::new("m", SessionSettings::default());
    s.conversation.push(user_message(
        vec![
            zero.clone(),
            fifo.clone(),
            fixture_image("scene_333x211.png"),
        ],
        "What is this?",
    ));
    s.conversation
        .push(Message::text(Role::Assistant, "Noise."));

    let saved = {
        let store = store.clone();
        within(20, "saving", move || {
            store.save(&mut s).unwrap();
            s
        })
    };
    let digests: Vec<Option<&str>> = saved.images.iter().map(|r| r.sha256.as_deref()).collect();
    assert_eq!(digests, [None, None, Some(SHELF_SHA256)]);

    let loaded = store.load(&saved.id).unwrap();
    let states = within(20, "checking the images", move || loaded.check_images());
    assert_eq!(
        states,
        [
            (
                zero.clone(),
                ImageState::Unusable("it is a device, not an image file".into())
            ),
            (
                fifo.clone(),
                ImageState::Unusable("it is a named pipe, not an image file".into())
            ),
            (fixture_image("scene_333x211.png"), ImageState::Unchanged),
        ]
    );

    let restored = within(20, "resuming", move || {
        SessionKeeper::new(Ok(store.clone()), "m").resume(store.load("latest").unwrap())
    });
    assert_eq!(restored.missing, [zero, fifo]);
    assert!(
        restored.notes[0].starts_with(
            "/dev/zero cannot be used (it is a device, not an image file): it is left out for now"
        ),
        "{:?}",
        restored.notes
    );
}

fn save_cmd(conversation: &Conversation) -> SessionCmd {
    SessionCmd::Save {
        conversation: conversation.clone(),
        settings: SessionSettings::default(),
    }
}

fn saved_as(event: Option<SessionEvent>) -> (String, Option<String>) {
    match event {
        Some(SessionEvent::Saved {
            id,
            kept: None,
            forked_from,
            ..
        }) => (id, forked_from),
        other => panic!("not saved: {other:?}"),
    }
}

fn with_turn(conversation: &Conversation, question: &str, answer: &str) -> Conversation {
    let mut c = conversation.clone();
    c.push(Message::text(Role::User, question));
    c.push(Message::text(Role::Assistant, answer));
    c
}

#[test]
fn two_chats_continuing_one_session_both_keep_every_turn() {
    let root = tempfile::tempdir().unwrap();
    let store = SessionStore::at(root.path().join("sessions"));
    let mut start = shelf_session(root.path());
    store.save(&mut start).unwrap();
    let id = start.id.clone();

    let mut a = SessionKeeper::new(Ok(store.clone()), start.model.clone());
    let mut b = SessionKeeper::new(Ok(store.clone()), start.model.clone());
    let in_a = a.resume(store.load(&id).unwrap()).session.conversation;
    let in_b = b.resume(store.load(&id).unwrap()).session.conversation;

    let a1 = with_turn(&in_a, "A asks first", "A's first answer");
    assert_eq!(saved_as(a.handle(save_cmd(&a1))), (id.clone(), None));
    let b1 = with_turn(&in_b, "B asks", "B's answer");
    let (b_id, forked_from) = saved_as(b.handle(save_cmd(&b1)));
    assert_ne!(b_id, id, "B must not write over A's turn");
    assert_eq!(forked_from.as_deref(), Some(id.as_str()));
    let a2 = with_turn(&a1, "A asks again", "A's second answer");
    assert_eq!(saved_as(a.handle(save_cmd(&a2))), (id.clone(), None));
    let b2 = with_turn(&b1, "B asks again", "B's second answer");
    assert_eq!(saved_as(b.handle(save_cmd(&b2))), (b_id.clone(), None));

    assert_eq!(store.load(&id).unwrap().conversation, a2);
    assert_eq!(store.load(&b_id).unwrap().conversation, b2);
    assert_eq!(store.list().unwrap().sessions.len(), 2);
}

#[test]
fn a_file_changed_by_hand_since_it_was_read_is_kept_as_it_is() {
    let (_root, store, mut s) = saved_shelf_session();
    let id = s.id.clone();
    set_updated(&store, &id, "2025-02-01T00:00:00Z");
    let edited = std::fs::read(store.path_of(&id)).unwrap();

    s.conversation
        .push(Message::text(Role::User, "One more question"));
    match store.save(&mut s).unwrap() {
        Saved::Forked { old_id, path } => {
            assert_eq!(old_id, id);
            assert_eq!(path, store.path_of(&s.id));
        }
        other => panic!("wrote over the edited file: {other:?}"),
    }
    assert_eq!(std::fs::read(store.path_of(&id)).unwrap(), edited);
    // Saving on goes to the new file.
    let new_id = s.id.clone();
    assert_eq!(
        store.save(&mut s).unwrap(),
        Saved::InPlace(store.path_of(&new_id))
    );
}

fn resume(store: &SessionStore, id: &str) -> Restored {
    SessionKeeper::new(Ok(store.clone()), "Qwen/Qwen3-VL-4B-Instruct")
        .resume(store.load(id).unwrap())
}

#[test]
fn a_missing_image_stays_in_the_saved_session_until_it_comes_back() {
    let (root, store, s) = saved_shelf_session();
    let label = root.path().join("photos/label (back).png");
    let label_bytes = std::fs::read(&label).unwrap();
    std::fs::remove_file(&label).unwrap();

    let mut keeper = SessionKeeper::new(Ok(store.clone()), s.model.clone());
    let restored = keeper.resume(store.load(&s.id).unwrap());
    assert_eq!(restored.missing, std::slice::from_ref(&label));
    assert!(
        restored.notes[0].ends_with("label (back).png is missing: it is left out for now and kept in the session, so it comes back when the file does"),
        "{:?}",
        restored.notes
    );
    // The chat goes on without the image, as the app sends it: images
    // first, then the text.
    let mut without = restored.session.conversation.clone();
    without.messages[3] = user_message(vec![], "And on this label?");
    let next = with_turn(&without, "Anything else?", "No.");
    saved_as(keeper.handle(save_cmd(&next)));
    saved_as(keeper.handle(save_cmd(&next)));

    let saved = store.load(&s.id).unwrap();
    assert_eq!(saved.conversation.messages.len(), 7);
    assert_eq!(saved.conversation.messages[3], s.conversation.messages[3]);
    assert_eq!(saved.images, s.images, "the digest is kept too");

    std::fs::write(&label, label_bytes).unwrap();
    let back = resume(&store, &s.id);
    assert!(
        back.missing.is_empty() && back.notes.is_empty(),
        "{:?}",
        back.notes
    );
    assert_eq!(back.session.conversation.images().len(), 2);
}

#[test]
fn sampling_values_a_preset_could_not_have_are_not_trusted_on_resume() {
    let (_root, store, s) = saved_shelf_session();
    let path = store.path_of(&s.id);
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["settings"]["sampling"]["temperature"] = serde_json::json!(1e300);
    v["settings"]["sampling"]["max_new_tokens"] = serde_json::json!(0);
    v["settings"]["sampling"]["top_p"] = serde_json::json!(0.8);
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();

    let restored = resume(&store, &s.id);
    let sampling = &restored.session.settings.sampling;
    assert_eq!(sampling.temperature, None, "the model's default");
    assert_eq!(sampling.max_new_tokens, None, "the model's default");
    assert_eq!(sampling.top_p, Some(0.8), "a good value is kept");
    assert_eq!(
        restored.notes,
        [
            "the saved setting is not used (temperature must be between 0 (greedy) and 2, got 1e300); the model's default applies",
            "the saved setting is not used (max_tokens must be a whole number from 1 to 1000000, got 0); the model's default applies",
        ]
    );
}

#[test]
fn a_question_cut_off_before_its_answer_is_taken_off_on_resume() {
    let root = tempfile::tempdir().unwrap();
    let store = SessionStore::at(root.path().join("sessions"));
    let mut s = shelf_session(root.path());
    let complete = s.conversation.clone();
    let shelf = root.path().join("photos/shelf.png");
    s.conversation
        .push(user_message(vec![shelf.clone()], "Which brand?"));
    store.save(&mut s).unwrap();
    assert_eq!(store.list().unwrap().sessions[0].turns, 3);

    let restored = resume(&store, &s.id);
    assert_eq!(restored.session.conversation, complete);
    let question = restored.unanswered.expect("offered again");
    assert_eq!(question.joined_text(), "Which brand?");
    assert_eq!(question.images().collect::<Vec<_>>(), [shelf.as_path()]);
    assert!(restored.notes.is_empty(), "{:?}", restored.notes);
    // Until something else is saved, the file keeps the question.
    assert_eq!(store.load(&s.id).unwrap().conversation.messages.len(), 6);
}

#[test]
fn questions_in_a_row_count_as_one_turn_and_resume_as_one_question() {
    let root = tempfile::tempdir().unwrap();
    let store = SessionStore::at(root.path().join("sessions"));
    let mut s = shelf_session(root.path());
    // What an earlier glimpse left after a kill -9 and a resume: the cut-off
    // question, then the next one and its answer.
    s.conversation
        .messages
        .insert(3, Message::text(Role::User, "Which brand?"));
    store.save(&mut s).unwrap();
    let summary = &store.list().unwrap().sessions[0];
    assert_eq!((summary.messages, summary.turns), (6, 2));

    let restored = resume(&store, &s.id);
    let messages = &restored.session.conversation.messages;
    let roles: Vec<Role> = messages.iter().map(|m| m.role).collect();
    use Role::*;
    assert_eq!(roles, [System, User, Assistant, User, Assistant]);
    assert_eq!(
        messages[3].joined_text(),
        "Which brand?\n\nAnd on this label?"
    );
    assert_eq!(messages[3].images().count(), 1);
    assert!(restored.unanswered.is_none());
    assert_eq!(
        restored.notes,
        ["2 questions in a row had no answer between them; they are joined into one"]
    );
}

#[test]
fn the_file_name_is_the_id() {
    let (_root, store, s) = saved_shelf_session();
    let renamed = "20250301-080000-c0ffee";
    std::fs::rename(store.path_of(&s.id), store.path_of(renamed)).unwrap();

    let listing = store.list().unwrap();
    assert_eq!(listing.sessions[0].id, renamed);
    let mut loaded = store.load(renamed).unwrap();
    assert_eq!(loaded.id, renamed);
    assert!(matches!(
        store.load(&s.id),
        Err(StoreError::NotFound { .. })
    ));
    loaded
        .conversation
        .push(Message::text(Role::User, "Still there?"));
    assert_eq!(
        store.save(&mut loaded).unwrap(),
        Saved::InPlace(store.path_of(renamed))
    );
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(store.path_of(renamed)).unwrap()).unwrap();
    assert_eq!(v["id"], renamed, "the field is put right");
}

#[test]
fn a_format_version_that_is_not_a_number_says_what_it_found() {
    let (_root, store, s) = saved_shelf_session();
    let path = store.path_of(&s.id);
    for (version, found) in [
        (
            serde_json::json!("1"),
            "must be a number, found the string \"1\"",
        ),
        (serde_json::json!(1.5), "must be a whole number, found 1.5"),
        (serde_json::json!(null), "must be a number, found null"),
    ] {
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        v["format_version"] = version;
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        let e = store.load(&s.id).unwrap_err().to_string();
        assert!(e.contains(&format!("(format_version {found})")), "{e}");
        assert!(e.contains("left untouched"), "{e}");
    }
}

/// Set in a copy of this test binary that a test runs as a separate process.
const CHILD_DIR: &str = "GLIMPSE_TEST_SESSIONS_CHILD";

/// Runs the test `name` again in a child process with `dir` in [`CHILD_DIR`].
#[cfg(unix)]
fn child_test(name: &str, dir: &Path) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// A kill -9 at any moment leaves every turn whose save had returned, in a
/// file that reads back.
#[cfg(unix)]
#[test]
fn a_kill_at_any_moment_loses_no_saved_turn() {
    use std::io::BufRead;
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        let store = SessionStore::at(PathBuf::from(dir));
        let mut s = store.load("latest").unwrap();
        for n in 1.. {
            s.conversation = with_turn(&s.conversation, &format!("Question {n}"), "Answer");
            store.save(&mut s).unwrap();
            println!("saved {}", s.conversation.messages.len());
        }
    }
    let (_root, store, s) = saved_shelf_session();
    let mut child = child_test("a_kill_at_any_moment_loses_no_saved_turn", store.dir());
    let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut saved = 0;
    let mut killed = false;
    for line in lines {
        if let Some(n) = line.unwrap().strip_prefix("saved ") {
            saved = n.parse().unwrap();
            if saved >= 5 + 2 * 20 && !killed {
                child.kill().unwrap();
                killed = true;
            }
        }
    }
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
    assert!(killed && saved >= 45, "{saved}");
    let after = store.load(&s.id).unwrap();
    assert!(after.conversation.messages.len() >= saved, "{saved}");
    let listing = store.list().unwrap();
    assert!(listing.unreadable.is_empty(), "{:?}", listing.unreadable);
}

/// A disk that fills up mid-save (here, a file size limit) leaves the last
/// saved version whole and no temporary file, and the save says it failed.
#[cfg(unix)]
#[test]
fn a_full_disk_never_damages_a_saved_session() {
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        // SAFETY: plain calls that change this child process's own limits.
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let mut limit: libc::rlimit = std::mem::zeroed();
            assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut limit), 0);
            limit.rlim_cur = 512;
            assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
        }
        let store = SessionStore::at(PathBuf::from(dir));
        let mut s = store.load("latest").unwrap();
        s.conversation = with_turn(&s.conversation, &"long ".repeat(200), "Answer");
        let e = store.save(&mut s).unwrap_err();
        println!("refused: {e}");
        return;
    }
    let (_root, store, s) = saved_shelf_session();
    let before = std::fs::read(store.path_of(&s.id)).unwrap();
    let child = child_test("a_full_disk_never_damages_a_saved_session", store.dir());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("refused: cannot save session {} to", s.id)),
        "{stdout}"
    );
    assert_eq!(std::fs::read(store.path_of(&s.id)).unwrap(), before);
    let names: Vec<String> = std::fs::read_dir(store.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
    assert_eq!(store.load(&s.id).unwrap().conversation, s.conversation);
}
