//! Saved conversations: the round trip through the session folder, writes that
//! survive a crash, files this version must not touch, and the Markdown export.

use std::path::{Path, PathBuf};

use glimpse::conversation::{Message, Role};
use glimpse::engine::SamplingOverrides;
use glimpse::session::atomic::Staged;
use glimpse::session::export::write_markdown;
use glimpse::session::store::{user_message, ImageState, Unreadable};
use glimpse::session::timestamp::Timestamp;
use glimpse::session::{Saved, Session, SessionSettings, SessionStore, StoreError};
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
