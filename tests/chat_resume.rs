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
