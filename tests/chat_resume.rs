//! `glimpse chat --resume` and `glimpse sessions` from the command line: what
//! a session that cannot be continued says, before any screen opens.

use std::path::Path;
use std::process::{Command, Output};

use glimpse::conversation::{Message, Role};
use glimpse::session::store::user_message;
use glimpse::session::{Session, SessionSettings, SessionStore};

fn glimpse(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_glimpse"))
        .args(args)
        .env("GLIMPSE_DATA_DIR", data_dir)
        .env(
            "GLIMPSE_CONFIG",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config/none.toml"),
        )
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap()
}

fn one_error_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr:?}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    lines[0].to_string()
}

fn saved_session(store: &SessionStore) -> Session {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/qwen2_vl");
    let mut s = Session::new(model.display().to_string(), SessionSettings::default());
    s.conversation.push(user_message(vec![], "Hello?"));
    s.conversation.push(Message::text(Role::Assistant, "Hi."));
    store.save(&mut s).unwrap();
    s
}

#[test]
fn a_damaged_session_is_named_and_left_byte_identical() {
    let data = tempfile::tempdir().unwrap();
    let store = SessionStore::at(data.path().join("sessions"));
    std::fs::create_dir_all(store.dir()).unwrap();
    let damaged = store.path_of("20250131-090500-3fa2c1");
    let bytes = b"{\"format_version\": 1, \"id\": \"20250131-090500-3fa2c1\", \"mess";
    std::fs::write(&damaged, bytes).unwrap();

    for args in [
        &["chat", "--resume", "20250131-090500-3fa2c1"][..],
        &["--resume"][..],
        &["--resume", "20250131"][..],
    ] {
        let line = one_error_line(&glimpse(data.path(), args));
        if args.len() == 1 {
            // Without an id the latest readable session is taken: there is none.
            assert!(line.contains("no saved sessions"), "{line}");
        } else {
            assert!(line.contains(&damaged.display().to_string()), "{line}");
            assert!(line.contains("damaged"), "{line}");
            assert!(line.contains("left untouched"), "{line}");
        }
        assert_eq!(std::fs::read(&damaged).unwrap(), bytes);
    }

    // A newer format is refused the same way.
    let newer = store.path_of("20250131-100000-000001");
    let text = "{\"format_version\": 99, \"id\": \"20250131-100000-000001\"}";
    std::fs::write(&newer, text).unwrap();
    let line = one_error_line(&glimpse(data.path(), &["--resume", "20250131-1000"]));
    assert!(line.contains("newer glimpse"), "{line}");
    assert_eq!(std::fs::read_to_string(&newer).unwrap(), text);

    // `glimpse sessions` shows them as unreadable rather than hiding them.
    let out = glimpse(data.path(), &["sessions"]);
    assert!(out.status.success());
    let listed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(listed.matches("unreadable: ").count(), 2, "{listed}");
}

#[test]
fn an_unknown_id_says_how_to_list_sessions() {
    let data = tempfile::tempdir().unwrap();
    let store = SessionStore::at(data.path().join("sessions"));
    let s = saved_session(&store);
    let line = one_error_line(&glimpse(data.path(), &["chat", "--resume", "19990101"]));
    assert!(line.contains("no session \"19990101\""), "{line}");
    assert!(line.contains("`glimpse sessions` lists them"), "{line}");

    let out = glimpse(data.path(), &["sessions"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains(&s.id) && listed.contains("Hello?"),
        "{listed}"
    );
    assert!(listed.contains("1 turn "), "{listed}");
}

#[test]
fn a_readable_session_gets_as_far_as_the_screen() {
    let data = tempfile::tempdir().unwrap();
    let store = SessionStore::at(data.path().join("sessions"));
    let s = saved_session(&store);
    let before = std::fs::read(store.path_of(&s.id)).unwrap();
    // Without a terminal the chat stops there: the session and its model
    // (taken from the session, no --model given) were accepted.
    let line = one_error_line(&glimpse(data.path(), &["--resume"]));
    assert!(line.contains("needs a terminal"), "{line}");
    assert_eq!(std::fs::read(store.path_of(&s.id)).unwrap(), before);
}

/// A session file as another program (or a tampered copy) might hold it.
fn write_session(store: &SessionStore, file_id: &str, fields: serde_json::Value) {
    let mut v = serde_json::json!({
        "format_version": 1,
        "id": file_id,
        "title": "",
        "created": "2025-01-31T09:05:00Z",
        "updated": "2025-01-31T09:07:30Z",
        "model": "m",
        "messages": [
            {"role": "user", "content": "Hello?"},
            {"role": "assistant", "content": "Hi."}
        ]
    });
    for (k, value) in fields.as_object().unwrap() {
        v[k] = value.clone();
    }
    std::fs::create_dir_all(store.dir()).unwrap();
    std::fs::write(store.path_of(file_id), serde_json::to_vec(&v).unwrap()).unwrap();
}

#[test]
fn session_titles_and_models_cannot_drive_the_terminal() {
    let data = tempfile::tempdir().unwrap();
    let store = SessionStore::at(data.path().join("sessions"));
    write_session(
        &store,
        "20250131-090500-3fa2c1",
        serde_json::json!({
            "model": "\u{1b}[2Jwiped",
            "messages": [
                {"role": "user", "content": "\u{1b}]0;owned\u{7}\u{1b}[31mred\u{9b}1m\ttab"},
                {"role": "assistant", "content": "Hi."}
            ]
        }),
    );
    let out = glimpse(data.path(), &["sessions"]);
    assert!(out.status.success());
    let listed = String::from_utf8(out.stdout).unwrap();
    assert!(
        !listed.chars().any(|c| c.is_control() && c != '\n'),
        "{listed:?}"
    );
    assert!(
        listed.contains(r"\x1b]0;owned\x07\x1b[31mred\x9b1m\ttab"),
        "{listed}"
    );
    assert!(listed.contains(r"\x1b[2Jwiped"), "{listed}");
}

#[test]
fn the_file_name_is_the_id_a_session_is_listed_and_resumed_under() {
    let data = tempfile::tempdir().unwrap();
    let store = SessionStore::at(data.path().join("sessions"));
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/qwen2_vl");
    write_session(
        &store,
        "20250131-090500-3fa2c1",
        serde_json::json!({"id": "19990101-000000-000000", "model": model}),
    );
    let out = glimpse(data.path(), &["sessions"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.starts_with("20250131-090500-3fa2c1  "), "{listed}");
    assert!(!listed.contains("19990101"), "{listed}");

    let line = one_error_line(&glimpse(data.path(), &["--resume", "19990101"]));
    assert!(line.contains("no session \"19990101\""), "{line}");
    let line = one_error_line(&glimpse(data.path(), &["--resume", "20250131-0905"]));
    assert!(line.contains("needs a terminal"), "{line}");
}

#[test]
fn a_format_version_written_as_a_string_is_named_as_such() {
    let data = tempfile::tempdir().unwrap();
    let store = SessionStore::at(data.path().join("sessions"));
    let id = "20250131-090500-3fa2c1";
    write_session(&store, id, serde_json::json!({"format_version": "1"}));
    let before = std::fs::read(store.path_of(id)).unwrap();
    let line = one_error_line(&glimpse(data.path(), &["--resume", id]));
    assert!(
        line.contains(r#"(format_version must be a number, found the string "1")"#),
        "{line}"
    );
    let out = glimpse(data.path(), &["sessions"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains(r#"unreadable: session file"#)
            && listed.contains(r#"found the string "1""#),
        "{listed}"
    );
    assert_eq!(std::fs::read(store.path_of(id)).unwrap(), before);
}

#[test]
fn a_question_without_its_answer_does_not_count_as_another_turn() {
    let data = tempfile::tempdir().unwrap();
    let store = SessionStore::at(data.path().join("sessions"));
    write_session(
        &store,
        "20250131-090500-3fa2c1",
        serde_json::json!({"messages": [
            {"role": "user", "content": "Hello?"},
            {"role": "user", "content": "Anyone there?"},
            {"role": "assistant", "content": "Hi."},
            {"role": "user", "content": "And now?"}
        ]}),
    );
    let out = glimpse(data.path(), &["sessions"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains("  2 turns  "), "{listed}");
}

/// The pid of a process that has ended.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

#[test]
fn temporary_files_of_writers_killed_mid_save_are_removed_at_start() {
    let data = tempfile::tempdir().unwrap();
    let store = SessionStore::at(data.path().join("sessions"));
    let s = saved_session(&store);
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let temp = |name: String, old: bool| {
        let path = store.dir().join(name);
        let file = std::fs::File::create(&path).unwrap();
        if old {
            file.set_modified(an_hour_ago).unwrap();
        }
        path
    };
    let dead = dead_pid();
    let orphan = temp(format!(".{}.json.{dead}-0.tmp", s.id), true);
    let orphan_of_new = temp(format!(".20250201-000000-000000.json.{dead}-3.tmp"), true);
    // A write in progress: its writer (this test) is alive.
    let alive = temp(format!(".{}.json.{}-0.tmp", s.id, std::process::id()), true);
    // Just written: it may be another machine's write in a shared folder.
    let recent = temp(format!(".{}.json.{dead}-1.tmp", s.id), false);
    let other = temp("notes.txt".into(), true);

    let out = glimpse(data.path(), &["sessions"]);
    assert!(out.status.success());
    assert!(!orphan.exists() && !orphan_of_new.exists());
    assert!(alive.exists() && recent.exists() && other.exists());
    assert!(store.path_of(&s.id).exists());

    // The chat cleans up too (it stops at the missing terminal afterwards).
    let orphan = temp(format!(".{}.json.{dead}-2.tmp", s.id), true);
    one_error_line(&glimpse(data.path(), &["--resume"]));
    assert!(!orphan.exists());
}
