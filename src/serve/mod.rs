//! `glimpse serve`: the engine behind an OpenAI-compatible HTTP API
//! (`POST /v1/chat/completions`, streamed or not; `GET /v1/models`;
//! `GET /health`; its load for Prometheus at `GET /metrics`). The runtime
//! only moves bytes: requests wait in the engine's queue and run one at a
//! time on its thread. A client that goes away cancels its request at the
//! next step.

mod completion;
mod error;
mod metrics;
mod parse;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::engine::Engine;
use crate::session::timestamp::Timestamp;

pub use error::ApiError;

/// Requests that may wait behind the one running; more get 503.
pub const MAX_WAITING: usize = 8;

/// Largest request body accepted (images come inline).
pub const MAX_BODY_BYTES: usize = 64 << 20;

/// How the server listens and whom it answers.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub addr: SocketAddr,
    /// The model's name in `/v1/models` and in requests.
    pub model_id: String,
    /// Requests must carry `Authorization: Bearer KEY` when set.
    pub api_key: Option<String>,
}

struct Shared {
    engine: Engine,
    model_id: String,
    api_key: Option<String>,
    /// Requests admitted and not yet finished.
    admitted: AtomicUsize,
    /// Of those, the ones the engine has begun.
    running: AtomicUsize,
    next_id: AtomicU64,
}

/// Serves until Ctrl-C or a termination signal; says where on stderr.
pub fn run(engine: Engine, options: ServeOptions) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("glimpse-serve")
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(options.addr)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot listen on {} ({e}); choose another --port or --host",
                    options.addr
                )
            })?;
        let addr = listener.local_addr()?;
        eprintln!(
            "glimpse: serving {} at http://{addr}/v1 (Ctrl-C stops)",
            options.model_id
        );
        let shared = Arc::new(Shared {
            engine,
            model_id: options.model_id,
            api_key: options.api_key,
            admitted: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
        });
        axum::serve(listener, router(shared))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        Ok(())
    })
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(completion::chat))
        .route("/metrics", get(metrics::metrics))
        .with_state(shared)
}

/// The key check every API route makes.
fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(key) = &shared.api_key else {
        return Ok(());
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given.map(str::trim) == Some(key.as_str()) {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}

/// The one model, with its family and preprocessing so that a glimpse
/// client can send images at exactly the size the model sees.
async fn models(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&shared, &headers) {
        log_line(e.status, "GET /v1/models", "");
        return e.into_response();
    }
    let info = shared.engine.info();
    let p = &info.preprocess;
    Json(json!({
        "object": "list",
        "data": [{
            "id": shared.model_id,
            "object": "model",
            "created": unix_now(),
            "owned_by": "glimpse",
            "max_model_len": info.max_context,
            "glimpse": {
                "model_type": info.model_type,
                "preprocess": {
                    "patch_size": p.patch_size,
                    "merge_size": p.merge_size,
                    "min_pixels": p.min_pixels,
                    "max_pixels": p.max_pixels,
                },
            },
        }],
    }))
    .into_response()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// One line per request on stderr.
fn log_line(status: u16, what: &str, detail: &str) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "{} {status} {what}{}{detail}",
        Timestamp::now().rfc3339(),
        if detail.is_empty() { "" } else { " " }
    );
}

/// Holds a place among the admitted requests; gives it back when dropped.
struct Slot(Arc<Shared>);

impl Slot {
    fn take(shared: &Arc<Shared>) -> Result<Slot, ApiError> {
        let before = shared.admitted.fetch_add(1, Ordering::SeqCst);
        let slot = Slot(shared.clone());
        if before > MAX_WAITING {
            return Err(ApiError::busy(MAX_WAITING, 5));
        }
        Ok(slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.admitted.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counts a request among the running ones from when the engine begins it
/// until it is dropped.
struct Begun(Arc<Shared>);

impl Begun {
    fn mark(shared: &Arc<Shared>) -> Begun {
        shared.running.fetch_add(1, Ordering::SeqCst);
        Begun(shared.clone())
    }
}

impl Drop for Begun {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}
