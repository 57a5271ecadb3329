//! `GET /metrics`: the server's load in Prometheus' text format, under the
//! names a glimpse client reads beside vLLM's and SGLang's: requests
//! running and waiting, and the share of the context the KV cache holds.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};

use super::{authorize, log_line, Shared};

pub async fn metrics(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&shared, &headers) {
        log_line(e.status, "GET /metrics", "");
        return e.into_response();
    }
    let running = shared.running.load(Ordering::SeqCst);
    let admitted = shared.admitted.load(Ordering::SeqCst);
    let page = exposition(
        &shared.model_id,
        running,
        admitted.saturating_sub(running),
        shared.engine.kv_cache_use(),
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        page,
    )
        .into_response()
}

/// The page: each gauge with its help and type, labelled with the model.
fn exposition(model: &str, running: usize, waiting: usize, kv_cache_use: f64) -> String {
    let label = escape(model);
    let gauges = [
        (
            "glimpse:num_requests_running",
            "Requests the engine is answering (it answers one at a time).",
            running as f64,
        ),
        (
            "glimpse:num_requests_waiting",
            "Requests admitted and waiting for the engine.",
            waiting as f64,
        ),
        (
            "glimpse:kv_cache_usage_perc",
            "Positions the KV cache holds as a share of the context (1 = full).",
            kv_cache_use,
        ),
    ];
    let mut page = String::new();
    for (name, help, value) in gauges {
        page.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{model_name=\"{label}\"}} {value}\n"
        ));
    }
    page
}

/// A label value as the format writes it: backslash, quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_gauge_has_its_help_type_and_an_escaped_model_label() {
        let page = exposition("odd \"name\"\\x", 1, 3, 0.25);
        let lines: Vec<&str> = page.lines().collect();
        assert_eq!(lines.len(), 9);
        assert_eq!(
            lines[1..3],
            [
                "# TYPE glimpse:num_requests_running gauge",
                r#"glimpse:num_requests_running{model_name="odd \"name\"\\x"} 1"#,
            ]
        );
        assert_eq!(
            lines[5],
            r#"glimpse:num_requests_waiting{model_name="odd \"name\"\\x"} 3"#
        );
        assert!(lines[8].ends_with("} 0.25"), "{page}");
    }
}
