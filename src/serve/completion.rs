//! `POST /v1/chat/completions`: a request admitted, handed to the engine,
//! and its events turned into one JSON answer or a stream of chunks. The
//! prompt is built before the answer starts, so a refused prompt is still a
//! plain error with its status; errors after that arrive in the stream.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use super::parse::{chat_request, ChatRequest};
use super::{authorize, log_line, unix_now, ApiError, Begun, Shared, Slot, MAX_BODY_BYTES};
use crate::engine::{ContextPolicy, Event, FinishReason, Request, Timings};

pub async fn chat(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    match start(&shared, &headers, body).await {
        Ok(response) => response,
        Err(e) => {
            log_line(e.status, "POST /v1/chat/completions", &e.message);
            e.into_response()
        }
    }
}

/// Sets the cancel flag when dropped: a client gone mid-answer stops it.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What one request holds until it ends.
struct InFlight {
    events: UnboundedReceiver<Event>,
    _cancel: CancelOnDrop,
    /// Declared before the slot: a request stops counting as running
    /// before it leaves the admitted ones, so none is ever seen waiting
    /// after it ran.
    _begun: Option<Begun>,
    _slot: Slot,
    _images: Option<tempfile::TempDir>,
    id: String,
    created: u64,
    model: String,
    prompt_tokens: Vec<u32>,
    started: Instant,
}

async fn start(
    shared: &Arc<Shared>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    authorize(shared, headers)?;
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::too_large(MAX_BODY_BYTES >> 20))?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::invalid(&format!("the body is not valid JSON ({e})")))?;
    let info = shared.engine.info();
    let req = chat_request(&value, info.max_context)?;
    if let Some(asked) = req.model.as_deref().filter(|m| *m != shared.model_id) {
        return Err(ApiError::unknown_model(asked, &shared.model_id));
    }
    let slot = Slot::take(shared)?;
    let (stream, include_usage) = (req.stream, req.include_usage);
    let mut flight = submit(shared, req, slot)?;
    // The first event says whether the prompt could be built.
    match flight.events.recv().await {
        Some(Event::Prompt { ids, .. }) => {
            flight.prompt_tokens = ids;
            flight._begun = Some(Begun::mark(shared));
        }
        Some(Event::Error(message)) => return Err(ApiError::invalid(&message)),
        _ => return Err(ApiError::internal("the engine stopped before answering")),
    }
    Ok(if stream {
        streamed(flight, include_usage)
    } else {
        whole(flight).await?
    })
}

fn submit(shared: &Arc<Shared>, req: ChatRequest, slot: Slot) -> Result<InFlight, ApiError> {
    let cancel = Arc::new(AtomicBool::new(false));
    let (reply, rx) = mpsc::channel();
    shared
        .engine
        .submit(Request {
            conversation: req.conversation,
            sampling: req.sampling,
            reply,
            cancel: cancel.clone(),
            context: ContextPolicy::Refuse,
            thinking: req.thinking,
        })
        .map_err(|e| ApiError::internal(&e.to_string()))?;
    let n = shared.next_id.fetch_add(1, Ordering::Relaxed);
    Ok(InFlight {
        events: bridge(rx),
        _cancel: CancelOnDrop(cancel),
        _begun: None,
        _slot: slot,
        _images: req.images,
        id: format!("chatcmpl-glimpse-{n}"),
        created: unix_now(),
        model: shared.model_id.clone(),
        prompt_tokens: Vec::new(),
        started: Instant::now(),
    })
}

/// The engine's events, from its thread's channel into the runtime.
fn bridge(rx: mpsc::Receiver<Event>) -> UnboundedReceiver<Event> {
    let (tx, out) = unbounded_channel();
    tokio::task::spawn_blocking(move || {
        for event in rx {
            if tx.send(event).is_err() {
                break;
            }
        }
    });
    out
}

/// The answer as one `chat.completion` object.
async fn whole(mut flight: InFlight) -> Result<Response, ApiError> {
    let (mut text, mut reasoning) = (String::new(), String::new());
    while let Some(event) = flight.events.recv().await {
        match event {
            Event::Token { text: t, .. } => text.push_str(&t),
            Event::Reasoning { text: t, .. } => reasoning.push_str(&t),
            Event::Error(message) => return Err(ApiError::internal(&message)),
            Event::Done {
                finish_reason,
                tokens,
                timings,
                ..
            } => {
                flight.log(200, tokens.len(), &timings, finish_reason);
                let mut message = json!({"role": "assistant", "content": text});
                if !reasoning.is_empty() {
                    message["reasoning_content"] = json!(reasoning);
                }
                return Ok(Json(json!({
                    "id": flight.id,
                    "object": "chat.completion",
                    "created": flight.created,
                    "model": flight.model,
                    "choices": [{
                        "index": 0,
                        "message": message,
                        "finish_reason": finish_name(finish_reason),
                        "token_ids": tokens,
                    }],
                    "usage": usage(flight.prompt_tokens.len(), tokens.len()),
                    "prompt_token_ids": flight.prompt_tokens,
                }))
                .into_response());
            }
            _ => {}
        }
    }
    Err(ApiError::internal("the engine stopped before finishing"))
}

/// The answer as server-sent events: a first chunk with the role (and the
/// prompt's ids, as vLLM gives them), one chunk per token, the finish, the
/// usage when asked for, then `[DONE]`.
fn streamed(mut flight: InFlight, include_usage: bool) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let head = json!({"role": "assistant", "content": ""});
        let first = flight.chunk(head, None, &[]);
        let mut first = first;
        first["prompt_token_ids"] = json!(flight.prompt_tokens);
        if tx.send(frame(&first)).await.is_err() {
            // The client left as the headers went out (the connection can
            // close before this task first sends): dropping `flight`
            // cancels the answer, and the log says so.
            flight.log(499, 0, &Timings::default(), FinishReason::Cancelled);
            return;
        }
        let mut generated = 0;
        while let Some(event) = flight.events.recv().await {
            let out = match event {
                Event::Token { id, text } => {
                    generated += 1;
                    vec![flight.chunk(json!({"content": text}), None, &[id])]
                }
                // As vLLM's reasoning parsers send it.
                Event::Reasoning { id, text } => {
                    generated += 1;
                    vec![flight.chunk(json!({"reasoning_content": text}), None, &[id])]
                }
                Event::Done {
                    finish_reason,
                    tokens,
                    timings,
                    ..
                } => {
                    flight.log(200, tokens.len(), &timings, finish_reason);
                    // A stop token has no text and no token event of its own.
                    let unsent = tokens.get(generated..).unwrap_or_default();
                    let mut end = vec![flight.chunk(json!({}), Some(finish_reason), unsent)];
                    if include_usage {
                        let mut u = flight.chunk(json!({}), None, &[]);
                        u["choices"] = json!([]);
                        u["usage"] = usage(flight.prompt_tokens.len(), tokens.len());
                        end.push(u);
                    }
                    for v in end {
                        let _ = tx.send(frame(&v)).await;
                    }
                    let _ = tx.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
                    return;
                }
                Event::Error(message) => {
                    log_line(500, "POST /v1/chat/completions", &message);
                    let _ = tx.send(frame(&ApiError::internal(&message).body())).await;
                    return;
                }
                _ => continue,
            };
            for v in out {
                if tx.send(frame(&v)).await.is_err() {
                    // The client left: dropping `flight` cancels the answer.
                    let timings = Timings::default();
                    flight.log(499, generated, &timings, FinishReason::Cancelled);
                    return;
                }
            }
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

impl InFlight {
    fn chunk(&self, delta: Value, finish: Option<FinishReason>, ids: &[u32]) -> Value {
        let mut choice = json!({
            "index": 0,
            "delta": delta,
            "finish_reason": finish.map(finish_name),
        });
        if !ids.is_empty() {
            choice["token_ids"] = json!(ids);
        }
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [choice],
        })
    }

    fn log(&self, status: u16, generated: usize, timings: &Timings, finish: FinishReason) {
        log_line(
            status,
            "POST /v1/chat/completions",
            &format!(
                "prompt={} generated={generated} ttft={:.2}s {:.1} tok/s {} in {:.2}s",
                self.prompt_tokens.len(),
                timings.ttft_s,
                timings.decode_tok_s,
                finish.as_str(),
                self.started.elapsed().as_secs_f64()
            ),
        );
    }
}

fn frame(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

fn finish_name(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Length => "length",
        FinishReason::Cancelled | FinishReason::Dropped(_) => "abort",
        FinishReason::Stop => "stop",
    }
}

fn usage(prompt: usize, completion: usize) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    })
}
