//! The real `glimpse` binary in a pseudo-terminal with the tiny Qwen2-VL
//! model: attach images, ask, watch the answer arrive, change presets,
//! cancel, regenerate, scroll, copy, resize, open the help, quit — and check
//! the terminal was put back.
//!
//! The screen is read with a VT100 emulator. Waits are bounded only to turn
//! a hang into a failure with the screen printed; nothing is timed.

use std::io::{Read, Write};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use portable_pty::{native_pty_system, CommandBuilder, PtySize};

const HANG: Duration = Duration::from_secs(120);
/// How glimpse ends each frame: the end of a synchronized update.
const FRAME_END: &[u8] = b"\x1b[?2026l";

struct Screen {
    parser: vt100::Parser,
    raw: Vec<u8>,
    rx: Receiver<Vec<u8>>,
    writer: Box<dyn Write + Send>,
    answered_query: bool,
    /// A frame showed an answer being written ("N tokens · Esc stops").
    saw_streaming: bool,
}

impl Screen {
    fn pump(&mut self, wait: Duration) {
        if let Ok(chunk) = self.rx.recv_timeout(wait) {
            self.take(chunk);
            while let Ok(more) = self.rx.try_recv() {
                self.take(more);
            }
        }
    }

    fn take(&mut self, chunk: Vec<u8>) {
        // A loaded machine hands over several frames at once; each whole
        // frame (glimpse ends every one with a synchronized-update end) is
        // looked at, so an answer streamed is seen even if it also finished.
        for frame in split_after(&chunk, FRAME_END) {
            self.parser.process(frame);
            if streaming(&self.text()) {
                self.saw_streaming = true;
            }
        }
        self.raw.extend_from_slice(&chunk);
        // Answer the image-protocol query the way a plain terminal does:
        // device attributes without sixel, then the status report.
        if !self.answered_query && contains(&self.raw, b"\x1b[5n") {
            self.answered_query = true;
            self.send("\x1b[?62;22c\x1b[0n");
        }
    }

    fn text(&self) -> String {
        self.parser.screen().contents()
    }

    fn send(&mut self, s: &str) {
        self.writer.write_all(s.as_bytes()).unwrap();
        self.writer.flush().unwrap();
    }

    fn wait_for(&mut self, what: &str, ok: impl Fn(&str) -> bool) {
        let start = Instant::now();
        loop {
            if ok(&self.text()) {
                return;
            }
            if start.elapsed() > HANG {
                panic!("never saw {what}; the screen:\n{}", self.text());
            }
            self.pump(Duration::from_millis(50));
        }
    }

    fn wait_text(&mut self, needle: &str) {
        let n = needle.to_string();
        self.wait_for(needle, move |s| s.contains(&n));
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// An answer is on screen while its tokens arrive.
fn streaming(screen: &str) -> bool {
    screen
        .lines()
        .any(|l| l.contains(" tokens · Esc stops") && !l.contains(" 0 tokens"))
}

/// `bytes` cut right after each `mark`; the last piece may lack one.
fn split_after<'a>(bytes: &'a [u8], mark: &[u8]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + mark.len() <= bytes.len() {
        if &bytes[i..i + mark.len()] == mark {
            i += mark.len();
            pieces.push(&bytes[start..i]);
            start = i;
        } else {
            i += 1;
        }
    }
    if start < bytes.len() {
        pieces.push(&bytes[start..]);
    }
    pieces
}

#[test]
fn chat_in_a_pseudo_terminal_from_start_to_quit() {
    let pty = native_pty_system();
    let pair = pty
        .openpty(PtySize {
            rows: 40,
            cols: 120,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    // Sessions are saved in the test's own folder, never the real home.
    let data = tempfile::tempdir().unwrap();
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_glimpse"));
    cmd.args(["--model", "tests/fixtures/models/qwen2_vl"]);
    cmd.cwd(env!("CARGO_MANIFEST_DIR"));
    cmd.env("GLIMPSE_DATA_DIR", data.path());
    cmd.env("TERM", "xterm-256color");
    cmd.env_remove("TMUX");
    cmd.env_remove("TERM_PROGRAM");
    let mut child = pair.slave.spawn_command(cmd).unwrap();
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader().unwrap();
    let writer = pair.master.take_writer().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut s = Screen {
        parser: vt100::Parser::new(40, 120, 0),
        raw: Vec::new(),
        rx,
        writer,
        answered_query: false,
        saw_streaming: false,
    };

    // The screen comes up and the model loads behind it.
    s.wait_text("is ready on cpu");
    assert!(s.parser.screen().alternate_screen());
    assert!(
        contains(&s.raw, FRAME_END),
        "frames are drawn as synchronized updates"
    );
    // The GPU pane (here: the CPU's facts) closes with the KV-cache format;
    // Alt+G hides it and shows it again.
    s.wait_text("KV cache f32");
    s.send("\x1bg");
    s.wait_for("the pane hidden", |t| !t.contains("KV cache"));
    s.send("\x1bg");
    s.wait_text("KV cache f32");

    // Two images on one question: one by command, one pasted.
    s.send("/image tests/fixtures/images/scene_333x211.png\r");
    s.wait_text("333×211→280×168 · 60 tok");
    let pasted = std::fs::canonicalize("tests/fixtures/images/checker_200x150.png").unwrap();
    s.send(&format!("\x1b[200~{}\x1b[201~", pasted.display()));
    s.wait_text("2 checker_200x150.png");

    s.send("What is in these pictures?\r");
    s.wait_text("You");
    s.wait_text("▣ scene_333x211.png");
    // Tokens arrive and the answer finishes with its statistics.
    s.wait_for("the answer's statistics", |t| {
        t.contains("tokens ·") || t.contains("-token limit")
    });
    s.wait_text("tok/s · TTFT");
    assert!(s.text().contains("ctx "), "context use is shown");

    // A preset on one key (F2), then on an Alt chord (Alt+3).
    s.send("\x1bOQ");
    s.wait_text("F2 creative · T 0.65 · max 384");
    s.send("\x1b3");
    s.wait_text("F3 quick · T 0.10 · max 128");
    // Temperature and max tokens with the bracket keys on an empty input.
    s.send("]}");
    s.wait_text("quick* · T 0.15 · max 192");

    // A new conversation, a question the tiny model answers at length (it
    // decodes greedily: its generation_config has top_k 1), and Esc at once:
    // the answer is stopped and marked.
    s.send("/clear\r");
    s.wait_text("new conversation");
    s.send("\x1bOP");
    s.wait_text("F1 diagnostic · T 0.30 · max 768");
    s.send("Describe it at length.\r\x1b");
    s.wait_text("■ cancelled");

    // Regenerate the cancelled answer; it runs to its end this time, and
    // its tokens show up while it is written.
    s.saw_streaming = false;
    s.send("\x12");
    s.wait_for("a regenerated answer", |t| {
        !t.contains("■ cancelled") && !t.contains("Esc stops") && t.contains("first token")
    });
    assert!(
        s.saw_streaming,
        "the answer was seen arriving, not only finished"
    );

    // Copy the last answer: an OSC 52 sequence goes to the terminal.
    s.send("\x1b");
    s.wait_text("Browsing the conversation");
    s.send("y");
    s.wait_text("copied the last answer");
    s.send("\x1b");
    s.wait_for("back in the question", |t| {
        !t.contains("Browsing the conversation")
    });
    assert!(contains(&s.raw, b"\x1b]52;c;"), "OSC 52 was written");

    // Help, generated from the keymap; Esc closes it.
    s.send("?");
    s.wait_text("Esc, ? or F12 closes");
    assert!(s.text().contains("F1 Alt+1"));
    s.send("\x1b");
    s.wait_for("help closed", |t| !t.contains("Esc, ? or F12 closes"));

    // A bad path is a line, not a crash.
    s.send("/image /no/such/picture.png\r");
    s.wait_text("does not exist");

    // Resize: the side pane goes away below 100 columns and comes back.
    pair.master
        .resize(PtySize {
            rows: 20,
            cols: 90,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    s.parser.screen_mut().set_size(20, 90);
    s.wait_for("the narrow layout", |t| {
        !t.contains("KV cache") && t.contains("help")
    });

    // Scroll up and back down (the conversation is taller than this window).
    s.send("\x1b[5~");
    s.wait_text("more line");
    s.send("\x1b[1;5F");
    s.wait_for("following the end again", |t| !t.contains("more line"));
    pair.master
        .resize(PtySize {
            rows: 40,
            cols: 120,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    s.parser.screen_mut().set_size(40, 120);
    s.wait_text("KV cache");

    // Quit, and the terminal is as it was.
    s.send("\x11");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < HANG, "glimpse did not quit");
        s.pump(Duration::from_millis(50));
    };
    s.pump(Duration::from_millis(200));
    assert!(status.success(), "exit status {status:?}");
    assert!(
        !s.parser.screen().alternate_screen(),
        "back on the main screen"
    );
    for (what, seq) in [
        ("mouse reporting off", "\x1b[?1000l"),
        ("bracketed paste off", "\x1b[?2004l"),
        ("cursor shown", "\x1b[?25h"),
    ] {
        assert!(contains(&s.raw, seq.as_bytes()), "{what}");
    }
    assert!(
        !s.parser.screen().hide_cursor(),
        "the cursor is visible again"
    );

    // Both conversations (before and after /clear) were saved, questions and answers.
    let sessions: Vec<_> = std::fs::read_dir(data.path().join("sessions"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    for path in sessions {
        let saved: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let roles: Vec<&str> = saved["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["user", "assistant"], "{saved}");
    }
}

/// The chat started in a pseudo-terminal of its own, read without blocking
/// so the test can close the terminal's side completely (every copy of the
/// master descriptor), as a dropped SSH link does.
#[cfg(unix)]
struct Chat {
    child: Box<dyn portable_pty::Child + Send + Sync>,
    master: Box<dyn portable_pty::MasterPty + Send>,
    screen: Screen,
    reading: std::sync::Arc<std::sync::atomic::AtomicBool>,
    reader: std::thread::JoinHandle<()>,
    data: tempfile::TempDir,
}

#[cfg(unix)]
impl Chat {
    /// `glimpse` run as `sh -c SHELL_PREFIX exec glimpse ARGS…`, so a test can
    /// set up what a shell would (e.g. `trap '' HUP` as nohup does).
    fn start(shell_prefix: &str, config: Option<&str>) -> Chat {
        use std::sync::atomic::{AtomicBool, Ordering};
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: 24,
                cols: 80,
                pixel_width: 0,
                pixel_height: 0,
            })
            .unwrap();
        let data = tempfile::tempdir().unwrap();
        let mut cmd = CommandBuilder::new("sh");
        cmd.args([
            "-c",
            &format!(
                "{shell_prefix} exec \"$0\" --model tests/fixtures/models/qwen2_vl --image-protocol halfblocks"
            ),
            env!("CARGO_BIN_EXE_glimpse"),
        ]);
        cmd.cwd(env!("CARGO_MANIFEST_DIR"));
        cmd.env("GLIMPSE_DATA_DIR", data.path());
        if let Some(config) = config {
            let path = data.path().join("config.toml");
            std::fs::write(&path, config).unwrap();
            cmd.env("GLIMPSE_CONFIG", &path);
        }
        cmd.env("TERM", "xterm-256color");
        cmd.env_remove("TMUX");
        let child = pair.slave.spawn_command(cmd).unwrap();
        drop(pair.slave);
        let fd = pair.master.as_raw_fd().expect("a master descriptor");
        // SAFETY: sets a flag on a descriptor this test owns; the reader
        // below shares its open file, so it no longer blocks either.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
        let mut source = pair.master.try_clone_reader().unwrap();
        let writer = pair.master.take_writer().unwrap();
        let reading = std::sync::Arc::new(AtomicBool::new(true));
        let (tx, rx) = mpsc::channel();
        let keep = reading.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while keep.load(Ordering::SeqCst) {
                match source.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if tx.send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => break,
                }
            }
        });
        let screen = Screen {
            parser: vt100::Parser::new(24, 80, 0),
            raw: Vec::new(),
            rx,
            writer,
            answered_query: true,
            saw_streaming: false,
        };
        Chat {
            child,
            master: pair.master,
            screen,
            reading,
            reader,
            data,
        }
    }

    fn pid(&self) -> libc::pid_t {
        self.child.process_id().expect("a process id") as libc::pid_t
    }

    /// Waits for the process to end; `None` if it is still running after `limit`.
    fn wait_exit(&mut self, limit: Duration) -> Option<portable_pty::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            self.screen.pump(Duration::from_millis(20));
        }
        None
    }

    /// Closes the terminal's side for good, as a dropped link or a closed
    /// window does; the child stays to be waited for.
    fn hang_up(
        self,
    ) -> (
        Box<dyn portable_pty::Child + Send + Sync>,
        tempfile::TempDir,
    ) {
        self.reading
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let _ = self.reader.join();
        drop(self.screen);
        drop(self.master);
        (self.child, self.data)
    }
}

#[cfg(unix)]
#[test]
fn closing_the_terminal_mid_answer_saves_it_and_ends_glimpse() {
    let mut chat = Chat::start("", Some("[presets.diagnostic]\nmax_tokens = 30000\n"));
    chat.screen.wait_text("is ready on cpu");
    chat.screen.send("a\r");
    // Some of the answer is written, so there is a partial answer to keep.
    chat.screen.wait_for("an answer being written", streaming);
    let (mut child, data) = chat.hang_up();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "glimpse still runs 5 s after its terminal went away"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        status.exit_code(),
        128 + 1,
        "ended as by a hang-up: {status:?}"
    );
    let sessions: Vec<_> = std::fs::read_dir(data.path().join("sessions"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&sessions[0]).unwrap()).unwrap();
    let messages = saved["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{saved}");
    assert_eq!(messages[0]["role"], "user");
    assert!(messages[0].to_string().contains("\"a\""), "{saved}");
    assert_eq!(messages[1]["role"], "assistant");
    assert!(
        !messages[1]["content"]
            .to_string()
            .trim_matches('"')
            .is_empty(),
        "the partial answer is kept: {saved}"
    );
}

#[cfg(unix)]
#[test]
fn under_nohup_a_hang_up_signal_leaves_the_chat_running() {
    let mut chat = Chat::start("trap '' HUP;", None);
    chat.screen.wait_text("is ready on cpu");
    // SAFETY: sends a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(chat.pid(), libc::SIGHUP) }, 0);
    assert!(
        chat.wait_exit(Duration::from_secs(1)).is_none(),
        "an ignored hang-up ended glimpse"
    );
    chat.screen.send("hello\r");
    chat.screen.wait_text("tokens");
    chat.screen.send("\x11");
    let status = chat.wait_exit(HANG).expect("Ctrl+Q quits");
    assert_eq!(status.exit_code(), 0);
}

#[test]
fn without_a_terminal_the_chat_says_so_and_ends() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_glimpse"))
        .args(["--model", "tests/fixtures/models/qwen2_vl"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("GLIMPSE_DATA_DIR", tempfile::tempdir().unwrap().path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs a terminal"), "{err}");
}

#[cfg(unix)]
#[test]
fn a_termination_signal_restores_the_terminal() {
    let mut chat = Chat::start("", None);
    chat.screen.wait_text("is ready on cpu");
    // SAFETY: sends a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(chat.pid(), libc::SIGTERM) }, 0);
    let status = chat.wait_exit(HANG).expect("glimpse quits on SIGTERM");
    chat.screen.pump(Duration::from_millis(200));
    assert_eq!(status.exit_code(), 128 + 15, "exit status {status:?}");
    let screen = chat.screen.parser.screen();
    assert!(!screen.alternate_screen(), "back on the main screen");
    assert!(!screen.hide_cursor(), "the cursor is visible again");
}
