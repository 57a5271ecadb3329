//! Errors as OpenAI returns them: a status and
//! `{"error": {"message", "type", "param", "code"}}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    kind: &'static str,
    param: Option<String>,
    code: Option<&'static str>,
    retry_after_s: Option<u32>,
}

impl ApiError {
    fn new(status: u16, kind: &'static str, message: &str) -> Self {
        ApiError {
            status,
            message: message.to_string(),
            kind,
            param: None,
            code: None,
            retry_after_s: None,
        }
    }

    pub fn invalid(message: &str) -> Self {
        Self::new(400, "invalid_request_error", message)
    }

    pub fn invalid_param(param: &str, message: &str) -> Self {
        ApiError {
            param: Some(param.to_string()),
            ..Self::invalid(message)
        }
    }

    pub fn unauthorized() -> Self {
        ApiError {
            code: Some("invalid_api_key"),
            ..Self::new(
                401,
                "invalid_request_error",
                "a valid API key is required: send it as Authorization: Bearer KEY",
            )
        }
    }

    pub fn unknown_model(asked: &str, served: &str) -> Self {
        ApiError {
            code: Some("model_not_found"),
            param: Some("model".into()),
            ..Self::new(
                404,
                "invalid_request_error",
                &format!("the model {asked:?} is not served here; this server serves {served:?}"),
            )
        }
    }

    pub fn busy(queue: usize, retry_after_s: u32) -> Self {
        ApiError {
            retry_after_s: Some(retry_after_s),
            ..Self::new(
                503,
                "server_error",
                &format!("{queue} requests are already waiting; try again shortly"),
            )
        }
    }

    pub fn too_large(limit_mib: usize) -> Self {
        Self::new(
            413,
            "invalid_request_error",
            &format!("the request is larger than {limit_mib} MiB; send smaller images"),
        )
    }

    pub fn internal(message: &str) -> Self {
        Self::new(500, "server_error", message)
    }

    pub fn body(&self) -> serde_json::Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(self.body())).into_response();
        if let Some(s) = self.retry_after_s {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        response
    }
}
