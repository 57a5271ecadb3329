//! The remote backend against `glimpse serve`, through real HTTP on
//! 127.0.0.1 with the tiny fixture models: the same answers as the local
//! engine (tokens, text, image sizes, boxes), streamed and whole, a client
//! that leaves cancelling its answer, and the one-line errors of a refused
//! key, an unknown model and a server that is not there.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Waits are bounded only to turn a hang into a failure; nothing is timed.
const HANG: Duration = Duration::from_secs(120);

use common::app::AppHarness;
use common::{as_u32s, fixtures, Reference};
use glimpse::engine::{DropCause, EngineOptions, Event, FinishReason};
use glimpse::processor::image::AlphaMode;
use glimpse::remote::metrics::{load_of, parse};
use glimpse::remote::{IdleLimits, Remote, RemoteOptions, ServerLoad};
use glimpse::session::SessionStore;
use glimpse::tui::msg::ModelReady;
use glimpse::tui::session_keeper::{SessionEvent, SessionKeeper};
use glimpse::tui::{AppConfig, Msg, ServerWatch};
use ratatui::crossterm::event::{KeyCode, KeyModifiers};
use serde_json::{json, Value};

/// A `glimpse serve` child on an ephemeral port, its stderr collected.
struct Server {
    child: Child,
    url: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(model: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_glimpse"))
            .args(["serve", "--port", "0", "--model"])
            .arg(model)
            .args(extra)
            .envs(env.iter().copied())
            .env("GLIMPSE_CONFIG", fixtures().join("config/none.toml"))
            .env("HF_HUB_OFFLINE", "1")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if let Some(rest) = line.split(" at http://").nth(1) {
                    let _ = tx.send(format!("http://{}", rest.split(' ').next().unwrap()));
                }
                lines.lock().unwrap().push(line);
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("the server did not start: {:?}", log.lock().unwrap()));
        Server { child, url, log }
    }

    fn addr(&self) -> String {
        self.url
            .trim_start_matches("http://")
            .trim_end_matches("/v1")
            .to_string()
    }

    /// One raw HTTP/1.1 exchange: the status and the body.
    fn http(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> (u16, String) {
        let mut s = TcpStream::connect(self.addr()).unwrap();
        s.write_all(request_head(method, path, body, key).as_bytes())
            .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let status = text[9..12].parse().unwrap();
        let body = text.split_once("\r\n\r\n").unwrap().1.to_string();
        (status, body)
    }

    fn log_has(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// Whether a log line with `needle` arrives within `limit`: the log is
    /// read on a thread of its own, so a line can trail the answer it
    /// reports.
    fn log_arrives(&self, needle: &str, limit: Duration) -> bool {
        let started = Instant::now();
        while !self.log_has(needle) {
            if started.elapsed() > limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn request_head(method: &str, path: &str, body: Option<&Value>, key: Option<&str>) -> String {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn glimpse(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_glimpse"))
        .args(args)
        .envs(env.iter().copied())
        .env("GLIMPSE_CONFIG", fixtures().join("config/none.toml"))
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap()
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn stderr_of(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    let e = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(e.lines().count(), 1, "one line: {e}");
    e
}

fn model(name: &str) -> String {
    fixtures().join("models").join(name).display().to_string()
}

#[test]
fn ask_over_http_answers_as_the_local_engine_does() {
    let server = Server::start(Path::new(&model("qwen2_5_vl")), &[], &[]);
    let scene = fixtures().join("images/scene_333x211.png");
    let scene = scene.to_str().unwrap();
    // The cap shrinks the image before smart_resize: both steps happen on
    // the client and must match the engine's.
    let common = [
        "ask",
        "--json",
        "--temperature",
        "0",
        "--max-tokens",
        "12",
        "--long-edge-cap",
        "300:200",
        "--image",
        scene,
        "--locate",
        "the orange square",
    ];
    let local = json_of(&glimpse(
        &[&common[..], &["--model", &model("qwen2_5_vl")]].concat(),
        &[],
    ));
    let remote = json_of(&glimpse(
        &[
            &common[..],
            &["--server", &server.url, "--model", "qwen2_5_vl"],
        ]
        .concat(),
        &[],
    ));
    for key in [
        "tokens",
        "prompt_tokens",
        "text",
        "images",
        "image_grid_thw",
        "detections",
        "finish_reason",
    ] {
        assert_eq!(local[key], remote[key], "{key}");
    }
    assert_eq!(remote["images"][0]["original_size"], json!([333, 211]));
    assert_eq!(remote["model"]["server"], server.url);
    assert!(remote["timings"]["ttft_s"].as_f64().unwrap() > 0.0);
    assert!(
        server.log_arrives("200 POST /v1/chat/completions prompt=", HANG),
        "{:?}",
        server.log.lock().unwrap()
    );
}

#[test]
fn a_conversation_goes_on_over_http_as_transformers_recorded_it() {
    let r = Reference::by_name("qwen3_vl__two_turns");
    let server = Server::start(&r.model_dir(), &[], &[]);
    let out = glimpse(
        &[
            "ask",
            "--json",
            "--temperature",
            "0",
            "--max-tokens",
            "24",
            "--repetition-penalty",
            "1",
            "--alpha",
            "drop",
            "--server",
            &server.url,
            "--model",
            "qwen3_vl",
            "--conversation",
            r.conversation_path().to_str().unwrap(),
        ],
        &[],
    );
    let remote = json_of(&out);
    assert_eq!(as_u32s(&remote["prompt_tokens"]), r.u32s("input_ids"));
    assert_eq!(
        as_u32s(&remote["tokens"]),
        as_u32s(&r.json["greedy"]["tokens"]),
        "greedy tokens over HTTP"
    );
}

#[test]
fn whole_and_streamed_answers_have_openai_s_shape() {
    let server = Server::start(Path::new(&model("qwen2_vl")), &[], &[]);
    assert_eq!(server.http("GET", "/health", None, None).0, 200);
    let (status, body) = server.http("GET", "/v1/models", None, None);
    let listed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status, listed["data"][0]["id"].as_str()),
        (200, Some("qwen2_vl"))
    );

    let ask = json!({"model": "qwen2_vl", "max_tokens": 5, "temperature": 0,
        "messages": [{"role": "user", "content": "Hello"}]});
    let (status, body) = server.http("POST", "/v1/chat/completions", Some(&ask), None);
    let whole: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(whole["object"], "chat.completion");
    assert_eq!(whole["choices"][0]["finish_reason"], "length");
    assert_eq!(whole["usage"]["completion_tokens"], 5);

    let mut streamed = ask.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let (status, body) = server.http("POST", "/v1/chat/completions", Some(&streamed), None);
    assert_eq!(status, 200);
    let chunks: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(chunks.last(), Some(&"[DONE]"));
    let usage: Value = serde_json::from_str(chunks[chunks.len() - 2]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"], whole["usage"]);
    let text: String = chunks[..chunks.len() - 2]
        .iter()
        .map(|c| serde_json::from_str::<Value>(c).unwrap())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(
        text,
        whole["choices"][0]["message"]["content"].as_str().unwrap()
    );

    let fetch = json!({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]});
    let (status, body) = server.http("POST", "/v1/chat/completions", Some(&fetch), None);
    assert_eq!(status, 400);
    assert!(body.contains("fetches no URLs"), "{body}");
    let other = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    let (status, body) = server.http("POST", "/v1/chat/completions", Some(&other), None);
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("model_not_found"), "{body}");
}

/// A long streamed answer begun on `server`, its status line read.
fn start_long_answer(server: &Server) -> TcpStream {
    let long = json!({"max_tokens": 4000, "temperature": 0, "stream": true,
        "messages": [{"role": "user", "content": "Write a long story."}]});
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.write_all(request_head("POST", "/v1/chat/completions", Some(&long), None).as_bytes())
        .unwrap();
    let mut first = [0u8; 512];
    let n = s.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).contains("200 OK"));
    s
}

#[test]
fn a_client_that_leaves_cancels_its_answer() {
    let server = Server::start(Path::new(&model("qwen2_vl")), &[], &[]);
    let s = start_long_answer(&server);
    drop(s);
    assert!(
        server.log_arrives("cancelled", HANG),
        "no cancel in {:?}",
        server.log.lock().unwrap()
    );
    let short = json!({"max_tokens": 2, "messages": [{"role": "user", "content": "Hi"}]});
    assert_eq!(
        server
            .http("POST", "/v1/chat/completions", Some(&short), None)
            .0,
        200
    );
}

#[test]
fn refused_keys_unknown_models_and_absent_servers_are_one_line() {
    let server = Server::start(
        Path::new(&model("qwen2_vl")),
        &["--api-key-env", "SERVE_KEY"],
        &[("SERVE_KEY", "right")],
    );
    assert_eq!(server.http("GET", "/v1/models", None, None).0, 401);
    assert_eq!(server.http("GET", "/v1/models", None, Some("right")).0, 200);
    let ask = |model: &str, url: &str, key: &str| {
        glimpse(
            &[
                "ask",
                "--prompt",
                "hi",
                "--max-tokens",
                "2",
                "--server",
                url,
                "--model",
                model,
                "--api-key-env",
                "CLIENT_KEY",
            ],
            &[("CLIENT_KEY", key)],
        )
    };
    let e = stderr_of(&ask("qwen2_vl", &server.url, "wrong"));
    assert!(e.contains("refused the API key in CLIENT_KEY (401"), "{e}");
    let e = stderr_of(&ask("qwen9", &server.url, "right"));
    assert!(
        e.contains("does not serve \"qwen9\"; it serves qwen2_vl"),
        "{e}"
    );
    let ok = ask("qwen2_vl", &server.url, "right");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    let e = stderr_of(&glimpse(
        &["ask", "--prompt", "hi", "--server", &url, "--model", "m"],
        &[],
    ));
    assert!(e.contains("cannot connect to"), "{e}");
    let e = stderr_of(&glimpse(
        &[
            "ask",
            "--prompt",
            "hi",
            "--server",
            &server.url,
            "--api-key-env",
            "UNSET_VAR_X",
        ],
        &[],
    ));
    assert!(e.contains("UNSET_VAR_X (--api-key-env) is not set"), "{e}");
}

/// What the client sends matches what the engine would make of the same
/// file, so a box in the answer lands on the same original pixels: for each
/// family, with the cap shrinking the image before smart_resize.
#[test]
fn images_are_sent_as_the_engine_would_see_them_and_boxes_map_back_alike() {
    use glimpse::engine::{describe_images, EngineOptions};
    use glimpse::processor::grounding::{ground_reply, GroundingFamily};
    use glimpse::processor::image::{AlphaMode, LongEdgeCap};
    use glimpse::processor::vision_input::VisionPreprocessConfig;
    use glimpse::remote::images::{family_preprocess, prepare};

    let cap = Some(LongEdgeCap {
        threshold: 300,
        target: 200,
    });
    let scene = fixtures().join("images/scene_333x211.png");
    for name in ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"] {
        let dir = fixtures().join("models").join(name);
        let options = EngineOptions {
            long_edge_cap: cap,
            ..EngineOptions::new(&dir)
        };
        let (model_type, local) = describe_images(&options, std::slice::from_ref(&scene)).unwrap();
        let cfg =
            VisionPreprocessConfig::from_model_dir(&dir, family_preprocess(&model_type).unwrap())
                .unwrap();
        let sent = prepare(&scene, cap.as_ref(), AlphaMode::White, Some(&cfg)).unwrap();
        assert_eq!(sent.facts, local[0], "{name}");
        let family = GroundingFamily::from_model_type(&model_type).unwrap();
        let answer = match family {
            GroundingFamily::Qwen2Vl => "<|box_start|>(100,200),(500,700)<|box_end|>",
            _ => r#"[{"bbox_2d": [20, 30, 90, 100], "label": "square"}]"#,
        };
        let boxes = |facts: &glimpse::engine::ImageFacts| {
            ground_reply(answer, family, &[facts.geometry(cap.as_ref())], Some(0)).detections
        };
        let here = boxes(&local[0]);
        assert_eq!(here.len(), 1, "{name}");
        assert_eq!(boxes(&sent.facts), here, "{name}");
    }
}

/// `eval --server` gives the answers and boxes the local engine gives.
#[test]
fn eval_over_http_answers_as_the_local_engine_does() {
    let server = Server::start(Path::new(&model("qwen2_5_vl")), &[], &[]);
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("suite");
    let made = glimpse(
        &[
            "eval",
            "--make-suite",
            suite.to_str().unwrap(),
            "--count",
            "3",
        ],
        &[],
    );
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let suite_file = suite.join("suite.jsonl");
    let run = |out: &str, backend: &[&str]| {
        let out_dir = dir.path().join(out);
        let args = [
            &[
                "eval",
                "--suite",
                suite_file.to_str().unwrap(),
                "--max-tokens",
                "8",
            ][..],
            &["--out", out_dir.to_str().unwrap()],
            backend,
        ]
        .concat();
        let done = glimpse(&args, &[]);
        assert!(
            done.status.success(),
            "{}",
            String::from_utf8_lossy(&done.stderr)
        );
        let text = std::fs::read_to_string(out_dir.join("answers.jsonl")).unwrap();
        text.lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (
                    v["id"].clone(),
                    v["reply"].clone(),
                    v["boxes"].clone(),
                    v["prompt_tokens"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    let local = run("local", &["--model", &model("qwen2_5_vl")]);
    let remote = run(
        "remote",
        &["--server", &server.url, "--model", "qwen2_5_vl"],
    );
    assert_eq!(local.len(), 3);
    // The first answer is exact. Later ones may part after a few tokens:
    // local eval empties the cache before each question, while the server
    // keeps the previous prompt's prefix, and a random tiny model's close
    // logits can fall either way on the slightly different arithmetic.
    assert_eq!(local[0], remote[0]);
    for (l, r) in local.iter().zip(&remote) {
        assert_eq!((&l.0, &l.3), (&r.0, &r.3), "the same questions and prompts");
    }
}

/// The chat's app with sessions saved in `store`, as `glimpse` opens it.
fn chat_app(store: &SessionStore, model: &str) -> AppHarness {
    let mut config = AppConfig::new(model);
    config.cpu_threads = 4;
    config.seed = 7;
    let mut h = AppHarness::new(config, 100, 40);
    h.keeper = Some(SessionKeeper::new(Ok(store.clone()), model));
    h
}

/// A checked connection to `model` on the server at `url`.
fn connect(url: &str, model: &str, idle: IdleLimits) -> Remote {
    Remote::connect(RemoteOptions {
        server: url.to_string(),
        model: model.into(),
        api_key: None,
        api_key_env: None,
        family: None,
        long_edge_cap: None,
        alpha: AlphaMode::White,
        idle,
    })
    .unwrap()
}

/// Tells the chat its model is ready on `remote`, as the connector thread does.
fn ready_on(chat: &mut AppHarness, remote: &Remote) {
    chat.send(Msg::ModelLoaded(Box::new(ModelReady {
        info: remote.info().unwrap(),
        kv_cache: "on the server".into(),
    })));
}

fn last_finish(events: &[Event]) -> FinishReason {
    match events.last() {
        Some(Event::Done { finish_reason, .. }) => *finish_reason,
        other => panic!("the answer did not end: {other:?}"),
    }
}

#[test]
fn the_chat_answers_stops_and_resumes_a_local_session_over_http() {
    let dir = model("qwen2_vl");
    let sessions = tempfile::tempdir().unwrap();
    let store = SessionStore::at(sessions.path().join("sessions"));

    // A session begun on the engine here.
    let mut local = chat_app(&store, &dir);
    local.load(EngineOptions::new(&dir));
    local.ask("Hello?");
    let first = local.answer_with_engine();
    assert_ne!(last_finish(&first), FinishReason::Cancelled);
    let session = store.load("latest").unwrap();
    assert_eq!(session.conversation.messages.len(), 2);
    drop(local);

    // Resumed on the server, as `glimpse --server URL --model NAME --resume` does.
    let server = Server::start(Path::new(&dir), &[], &[]);
    let remote = connect(&server.url, "qwen2_vl", IdleLimits::default());
    let mut chat = chat_app(&store, "qwen2_vl");
    let restored = chat.keeper.as_mut().unwrap().resume(session);
    chat.send(Msg::Session(SessionEvent::Opened(Ok(Box::new(restored)))));
    ready_on(&mut chat, &remote);

    // The wait for the first token is counted on screen.
    chat.ask("And then?");
    for _ in 0..25 {
        chat.send(Msg::Tick);
    }
    assert!(chat.screen().contains("2s"), "{}", chat.screen());
    let asked = &chat.generations.last().unwrap().conversation;
    assert_eq!(asked.messages.len(), 3, "the saved turns go to the server");
    let answer = chat.answer_with(&remote, |_, _| {});
    assert_ne!(last_finish(&answer), FinishReason::Cancelled);
    assert!(
        server.log_arrives("200 POST /v1/chat/completions prompt=", HANG),
        "{:?}",
        server.log.lock().unwrap()
    );
    let text = |events: &[Event]| match events.last() {
        Some(Event::Done { text, .. }) => text.clone(),
        _ => String::new(),
    };
    let saved = store.load("latest").unwrap();
    assert_eq!(saved.conversation.messages.len(), 4);

    // Esc after the first token closes the stream; the partial answer stays.
    chat.ask("Go on.");
    let stopped = chat.answer_with(&remote, |h, event| {
        if matches!(event, Event::Token { .. }) {
            h.key(KeyCode::Esc, KeyModifiers::NONE);
        }
    });
    assert_eq!(last_finish(&stopped), FinishReason::Cancelled);
    let partial = text(&stopped);
    assert!(!partial.is_empty(), "{stopped:?}");
    let screen = chat.screen();
    assert!(
        screen.contains("■ cancelled · partial answer kept"),
        "{screen}"
    );
    assert!(!text(&answer).is_empty());
    let saved = store.load("latest").unwrap();
    assert_eq!(
        saved.conversation.messages.len(),
        6,
        "the partial answer is saved"
    );

    // Ctrl+R asks the last question again, over the same connection.
    let asked = chat.generations.len();
    chat.ctrl('r');
    assert_eq!(chat.generations.len(), asked + 1, "Ctrl+R asks again");
    let again = chat.answer_with(&remote, |_, _| {});
    assert_ne!(last_finish(&again), FinishReason::Cancelled);
}

/// Where a [`Stalling`] server falls silent.
#[derive(Clone, Copy)]
enum Stall {
    /// After the response's headers, before any token.
    BeforeTheFirstToken,
    /// After the first piece of the answer.
    MidAnswer,
}

/// A network peer that lists one model, then answers every completion with
/// headers and, as told, one piece of text, and then keeps the connection
/// open without sending anything more.
struct Stalling {
    url: String,
    /// How often `/metrics` (which it does not have) was asked for.
    metrics_asked: Arc<std::sync::atomic::AtomicUsize>,
}

impl Stalling {
    fn start(stall: Stall) -> Stalling {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let metrics_asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let asked = metrics_asked.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let asked = asked.clone();
                std::thread::spawn(move || answer_then_stall(stream, stall, &asked));
            }
        });
        Stalling { url, metrics_asked }
    }

    fn remote(&self, idle: &str) -> Remote {
        connect(
            &self.url,
            "qwen2-vl-stalling",
            IdleLimits::parse(idle).unwrap(),
        )
    }
}

fn answer_then_stall(
    mut stream: TcpStream,
    stall: Stall,
    metrics_asked: &std::sync::atomic::AtomicUsize,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut head = String::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).unwrap();
    if head.starts_with("GET /metrics") {
        metrics_asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
        return;
    }
    if head.starts_with("GET /v1/models") {
        let list = json!({"object": "list", "data": [{"id": "qwen2-vl-stalling"}]}).to_string();
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{list}",
            list.len()
        );
        return;
    }
    let _ = stream.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n",
    );
    if let Stall::MidAnswer = stall {
        let chunk = json!({"choices": [{"index": 0, "delta": {"content": "A red"}}]});
        let _ = write!(stream, "data: {chunk}\n\n");
    }
    let _ = stream.flush();
    // Silent, with the connection open, for longer than any test waits.
    std::thread::sleep(Duration::from_secs(60));
}

/// The events of one question to `remote`, until its end.
fn ask_remote(remote: &Remote) -> Vec<Event> {
    let (reply, rx) = std::sync::mpsc::channel();
    glimpse::engine::Backend::submit(
        remote,
        glimpse::engine::Request {
            conversation: glimpse::conversation::Conversation {
                messages: vec![glimpse::conversation::Message::text(
                    glimpse::conversation::Role::User,
                    "What is it?",
                )],
            },
            sampling: Default::default(),
            reply,
            cancel: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            context: glimpse::engine::ContextPolicy::Refuse,
            thinking: None,
        },
    )
    .unwrap();
    let mut events = Vec::new();
    while let Ok(event) = rx.recv_timeout(Duration::from_secs(20)) {
        let end = matches!(event, Event::Done { .. } | Event::Error(_));
        events.push(event);
        if end {
            return events;
        }
    }
    panic!("the answer never ended: {events:?}");
}

#[test]
fn a_server_that_falls_silent_mid_answer_ends_it_with_the_partial_text() {
    let server = Stalling::start(Stall::MidAnswer);
    let started = Instant::now();
    let events = ask_remote(&server.remote("5:0.4"));
    let waited = started.elapsed();
    assert_eq!(
        last_finish(&events),
        FinishReason::Dropped(DropCause::Silent {
            ms: 400,
            first_token: false
        })
    );
    match events.last() {
        Some(Event::Done { text, .. }) => assert_eq!(text, "A red"),
        other => panic!("{other:?}"),
    }
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(5),
        "the between-tokens limit ends it: {waited:?}"
    );

    // `ask` prints the partial answer and says why it stopped, in one line.
    let out = glimpse(
        &[
            "ask",
            "--prompt",
            "What is it?",
            "--server",
            &server.url,
            "--model",
            "qwen2-vl-stalling",
            "--idle-timeout",
            "5:0.4",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("A red"));
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        e.lines().last(),
        Some("glimpse: the server sent nothing for 0.4 s; the partial answer is kept; raise --idle-timeout to wait longer"),
        "{e}"
    );
}

#[test]
fn a_server_that_sends_no_first_token_is_given_up_after_the_first_limit() {
    let server = Stalling::start(Stall::BeforeTheFirstToken);
    let started = Instant::now();
    let events = ask_remote(&server.remote("0.6:30"));
    assert!(started.elapsed() >= Duration::from_millis(600));
    assert!(
        matches!(events.first(), Some(Event::Prompt { .. })),
        "{events:?}"
    );
    assert_eq!(
        last_finish(&events),
        FinishReason::Dropped(DropCause::Silent {
            ms: 600,
            first_token: true
        })
    );

    // The chat counts the wait meanwhile, and marks the end with its reason.
    let sessions = tempfile::tempdir().unwrap();
    let store = SessionStore::at(sessions.path().join("sessions"));
    let remote = server.remote("0.6:30");
    let mut chat = chat_app(&store, "qwen2-vl-stalling");
    ready_on(&mut chat, &remote);
    chat.ask("What is it?");
    for _ in 0..12 {
        chat.send(Msg::Tick);
    }
    assert!(
        chat.screen().contains("waiting for the model… 1s"),
        "{}",
        chat.screen()
    );
    chat.answer_with(&remote, |_, _| {});
    let screen = chat.screen();
    assert!(
        screen.contains("■ the server sent no first token in 0.6 s"),
        "{screen}"
    );
    assert!(!screen.contains("partial answer kept"), "{screen}");
}

#[test]
fn idle_timeouts_that_make_no_sense_are_refused_in_one_line() {
    let out = glimpse(
        &[
            "ask",
            "--prompt",
            "hi",
            "--server",
            "http://127.0.0.1:9/v1",
            "--idle-timeout",
            "soon",
        ],
        &[],
    );
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.lines().next().unwrap().contains("FIRST:BETWEEN"), "{e}");
    let e = stderr_of(&glimpse(
        &["ask", "--prompt", "hi", "--idle-timeout", "30"],
        &[],
    ));
    assert!(e.contains("add --server URL"), "{e}");
}

/// The load `glimpse serve` publishes at `/metrics`, for `server`'s model.
fn served_load(server: &Server) -> ServerLoad {
    let (status, page) = server.http("GET", "/metrics", None, None);
    assert_eq!(status, 200, "{page}");
    load_of(&parse(&page), "qwen2_vl").expect("a load")
}

#[test]
fn glimpse_serve_publishes_its_load_and_the_chat_s_pane_shows_it() {
    let server = Server::start(Path::new(&model("qwen2_vl")), &[], &[]);
    assert_eq!(
        served_load(&server),
        ServerLoad {
            kv_cache_use: Some(0.0),
            waiting: Some(0),
            running: Some(0),
        }
    );

    // A long answer is running while the page is read.
    let s = start_long_answer(&server);
    let busy = served_load(&server);
    assert_eq!((busy.running, busy.waiting), (Some(1), Some(0)));
    drop(s);

    // After an answer the cache holds the conversation.
    let short = json!({"max_tokens": 3, "messages": [{"role": "user", "content": "Hi"}]});
    assert_eq!(
        server
            .http("POST", "/v1/chat/completions", Some(&short), None)
            .0,
        200
    );
    let started = Instant::now();
    loop {
        let load = served_load(&server);
        if load.kv_cache_use.unwrap() > 0.0 && load.running == Some(0) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{load:?}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The client reads the same page off its own thread.
    let remote = connect(&server.url, "qwen2_vl", IdleLimits::default());
    let (tx, rx) = std::sync::mpsc::channel();
    remote.watch_load(Duration::from_millis(100), move |load| {
        let _ = tx.send(load);
    });
    let watched = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let seen = watched.expect("glimpse serve has metrics");
    assert_eq!((seen.waiting, seen.running), (Some(0), Some(0)));
    assert!(seen.kv_cache_use.unwrap() > 0.0, "{seen:?}");

    // The chat's GPU pane: the server, its model and its load.
    let mut config = AppConfig::new("qwen2_vl");
    config.server = Some(ServerWatch {
        url: server.url.clone(),
        model: "qwen2_vl".into(),
        load: None,
    });
    let mut chat = AppHarness::new(config, 100, 40);
    ready_on(&mut chat, &remote);
    let before = chat.screen();
    assert!(before.contains("▶ remote"), "{before}");
    assert!(
        !before.contains("queue"),
        "no load before it is read: {before}"
    );
    chat.send(Msg::ServerLoad(watched));
    let screen = chat.screen();
    assert!(screen.contains(&server.url), "{screen}");
    assert!(screen.contains("queue 0 waiting · 0 running"), "{screen}");
    assert!(screen.contains("  KV "), "{screen}");
}

#[test]
fn a_server_without_metrics_is_asked_once_and_left_alone() {
    let server = Stalling::start(Stall::MidAnswer);
    let remote = server.remote("120:30");
    let (tx, rx) = std::sync::mpsc::channel();
    remote.watch_load(Duration::from_millis(50), move |load| {
        let _ = tx.send(load);
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(800)).is_err(),
        "nothing to show"
    );
    assert_eq!(
        server
            .metrics_asked
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}
