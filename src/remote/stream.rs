//! One request to the server, followed to its end: images prepared, the
//! body posted, the stream read chunk by chunk into the engine's events.
//! The cancel flag is looked at between chunks and at least every
//! [`POLL`], and closes the stream; a stream that ends without a finish, or
//! stays silent longer than its [`IdleLimits`], is a dropped answer, its
//! partial text kept.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::connect::{status_error, transport_error};
use super::idle::IdleLimits;
use super::images::{self, PreparedImage};
use super::request;
use super::sse::{self, Item, Lines, Reply};
use crate::engine::{DropCause, Event, FinishReason, ImageFacts, Request, SamplingParams, Timings};
use crate::processor::image::{AlphaMode, LongEdgeCap};
use crate::processor::vision_input::VisionPreprocessConfig;

/// How often a waiting stream looks at the cancel flag.
const POLL: Duration = Duration::from_millis(50);

/// Everything one request needs, owned, for the runtime.
pub struct Call {
    pub client: reqwest::Client,
    pub url: String,
    pub server: String,
    pub model: String,
    pub api_key: Option<String>,
    pub api_key_env: Option<String>,
    pub cap: Option<LongEdgeCap>,
    pub alpha: AlphaMode,
    pub preprocess: Option<Arc<VisionPreprocessConfig>>,
    pub idle: IdleLimits,
}

/// What happened to a stream that did not end in an error.
enum Ending {
    Finished,
    Cancelled,
    Dropped(DropCause),
}

/// The end of a stream that stayed silent for `limit`.
fn silent(limit: Duration, first_token: bool) -> Ending {
    Ending::Dropped(DropCause::Silent {
        ms: limit.as_millis() as u64,
        first_token,
    })
}

impl Call {
    pub async fn run(self, req: Request) {
        if let Err(message) = self.follow(&req).await {
            let _ = req.reply.send(Event::Error(message));
        }
    }

    async fn follow(&self, req: &Request) -> Result<(), String> {
        let prepared = self.prepare(req).await?;
        let urls: Vec<String> = prepared.iter().map(|p| p.data_url.clone()).collect();
        let facts: Vec<ImageFacts> = prepared.into_iter().map(|p| p.facts).collect();
        let body = request::body(
            &self.model,
            &req.conversation,
            &urls,
            &req.sampling,
            req.thinking,
        );
        let mut post = self.client.post(&self.url).json(&body);
        if let Some(key) = &self.api_key {
            post = post.bearer_auth(key);
        }
        let mut follower = Follower::new(req, facts, Instant::now());
        let first_limit = self.idle.first_token;
        let response = tokio::select! {
            r = post.send() => r.map_err(|e| transport_error(&e, &self.server))?,
            _ = cancelled(req) => {
                cancel_before_answer(req);
                return Ok(());
            }
            _ = tokio::time::sleep(first_limit) => {
                follower.done(silent(first_limit, true));
                return Ok(());
            }
        };
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(status_error(
                status.as_u16(),
                &text,
                &self.server,
                self.api_key_env.as_deref(),
            ));
        }
        let mut bytes = response.bytes_stream();
        let mut heard = follower.started;
        let ending = loop {
            if req.cancel.load(Ordering::Relaxed) {
                break Ending::Cancelled;
            }
            let flowing = follower.first_at.is_some();
            let limit = self.idle.limit(flowing);
            if heard.elapsed() >= limit {
                break silent(limit, !flowing);
            }
            let next = match tokio::time::timeout(POLL, bytes.next()).await {
                Err(_) => continue,
                Ok(next) => next,
            };
            heard = Instant::now();
            match next {
                Some(Ok(piece)) => follower.push(&piece),
                Some(Err(_)) | None => break Ending::Dropped(DropCause::Closed),
            }
            if let Some(e) = &follower.reply.error {
                return Err(format!("the server stopped with an error: {e}"));
            }
            if follower.reply.done {
                break Ending::Finished;
            }
        };
        let ending = match ending {
            Ending::Dropped(_) if follower.reply.finished() => Ending::Finished,
            other => other,
        };
        follower.done(ending);
        Ok(())
    }

    /// The conversation's images at the model's size, on the blocking pool.
    async fn prepare(&self, req: &Request) -> Result<Vec<PreparedImage>, String> {
        let paths: Vec<_> = req
            .conversation
            .images()
            .into_iter()
            .map(|p| p.to_path_buf())
            .collect();
        let (cap, alpha, pre) = (self.cap, self.alpha, self.preprocess.clone());
        tokio::task::spawn_blocking(move || {
            paths
                .iter()
                .map(|p| images::prepare(p, cap.as_ref(), alpha, pre.as_deref()))
                .collect::<anyhow::Result<Vec<_>>>()
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| crate::human::one_line(&e))
    }
}

/// Resolves once the request's cancel flag is set.
async fn cancelled(req: &Request) {
    while !req.cancel.load(Ordering::Relaxed) {
        tokio::time::sleep(POLL).await;
    }
}

fn cancel_before_answer(req: &Request) {
    let _ = req.reply.send(Event::cancelled_before_start());
}

/// Turns parsed chunks into events as they arrive.
struct Follower<'r> {
    req: &'r Request,
    lines: Lines,
    reply: Reply,
    facts: Option<Vec<ImageFacts>>,
    reasoning_pieces: usize,
    started: Instant,
    first_at: Option<Instant>,
    last_at: Option<Instant>,
    pieces: usize,
}

impl<'r> Follower<'r> {
    fn new(req: &'r Request, facts: Vec<ImageFacts>, started: Instant) -> Self {
        Follower {
            req,
            lines: Lines::default(),
            reply: Reply::default(),
            facts: Some(facts),
            reasoning_pieces: 0,
            started,
            first_at: None,
            last_at: None,
            pieces: 0,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        for line in self.lines.push(bytes) {
            let Some(item) = sse::parse_line(&line) else {
                continue;
            };
            self.reply.add(&item);
            if let Item::Chunk(chunk) = item {
                self.announce(&chunk);
                self.emit(&chunk);
            }
        }
    }

    /// The first chunk says the server took the request: the prompt event.
    fn announce(&mut self, chunk: &sse::Chunk) {
        let Some(images) = self.facts.take() else {
            return;
        };
        let s = &self.req.sampling;
        self.send(Event::Prompt {
            ids: chunk.prompt_token_ids.clone().unwrap_or_default(),
            images,
            cached_tokens: 0,
            dropped_messages: 0,
            params: SamplingParams {
                temperature: s.temperature.unwrap_or(1.0),
                top_p: s.top_p.unwrap_or(1.0),
                top_k: s.top_k.unwrap_or(0),
                repetition_penalty: s.repetition_penalty.unwrap_or(1.0),
                max_new_tokens: s.max_new_tokens.unwrap_or(0),
                seed: s.seed.unwrap_or(0),
            },
        });
    }

    /// Reasoning that the server sends apart becomes the engine's reasoning
    /// events, so the front ends treat both backends alike.
    fn emit(&mut self, chunk: &sse::Chunk) {
        if chunk.reasoning.is_empty() && chunk.content.is_empty() && chunk.token_ids.is_empty() {
            return;
        }
        let now = Instant::now();
        self.first_at.get_or_insert(now);
        self.last_at = Some(now);
        self.pieces += 1;
        let id = chunk.token_ids.first().copied().unwrap_or(0);
        if !chunk.reasoning.is_empty() {
            self.reasoning_pieces += 1;
            self.send(Event::Reasoning {
                id,
                text: chunk.reasoning.clone(),
            });
        }
        if !chunk.content.is_empty() || chunk.reasoning.is_empty() {
            self.send(Event::Token {
                id,
                text: chunk.content.clone(),
            });
        }
    }

    fn done(mut self, ending: Ending) {
        if self.facts.is_some() {
            self.announce(&sse::Chunk::default());
        }
        let finish_reason = match ending {
            Ending::Cancelled => FinishReason::Cancelled,
            Ending::Dropped(cause) => FinishReason::Dropped(cause),
            Ending::Finished => match self.reply.finish_reason.as_deref() {
                Some("length") => FinishReason::Length,
                Some("abort") => FinishReason::Cancelled,
                _ => FinishReason::Stop,
            },
        };
        let timings = self.timings();
        // The reply has gathered every chunk's answer and reasoning.
        let text = std::mem::take(&mut self.reply.content);
        let reasoning = std::mem::take(&mut self.reply.reasoning);
        let tokens = std::mem::take(&mut self.reply.token_ids);
        self.send(Event::Done {
            finish_reason,
            tokens,
            text,
            reasoning,
            // Servers stream one token per chunk.
            reasoning_tokens: self.reasoning_pieces,
            timings,
        });
    }

    /// Measured here: time to the first token, and tokens per second after
    /// it (counted by the server where it says).
    fn timings(&self) -> Timings {
        let mut t = Timings::default();
        let (Some(first), Some(last)) = (self.first_at, self.last_at) else {
            return t;
        };
        t.ttft_s = first.duration_since(self.started).as_secs_f64();
        let count = self
            .reply
            .usage
            .map(|u| u.completion_tokens)
            .filter(|&n| n > 0)
            .unwrap_or(self.reply.token_ids.len().max(self.pieces));
        let secs = last.duration_since(first).as_secs_f64();
        if count > 1 && secs > 0.0 {
            t.decode_tok_s = (count - 1) as f64 / secs;
        }
        t
    }

    fn send(&self, event: Event) {
        let _ = self.req.reply.send(event);
    }
}
