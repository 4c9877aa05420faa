//! Errors of the server layer: start-up failures (printed as one line that
//! names the setting) and HTTP-level refusals (a status and a short text,
//! never internal details).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot use DATABASE_URL {url}: {reason}")]
    Database { url: String, reason: String },
    #[error("cannot create the data directory {path} (MOIM_DATA_DIR): {reason}")]
    DataDir { path: String, reason: String },
    #[error("cannot apply database migrations: {0}")]
    Migration(String),
    #[error("cannot listen on {addr} (MOIM_LISTEN): {reason}")]
    Listen { addr: String, reason: String },
    #[error("cannot listen on {addr} (MOIM_METRICS_LISTEN): {reason}")]
    MetricsListen { addr: String, reason: String },
    #[error("cannot use REDIS_URL {url}: {reason}")]
    Redis { url: String, reason: String },
    #[error("cannot use {setting}: {reason}")]
    Mail {
        setting: &'static str,
        reason: String,
    },
    #[error("invalid log filter {filter:?} (MOIM_LOG): {reason}")]
    LogFilter { filter: String, reason: String },
    #[error(transparent)]
    MediaServer(#[from] crate::media_server::MediaServerError),
}

/// A refusal by the HTTP layer itself.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cross-site request refused")]
    CrossSite,
    #[error("service unavailable: {0}")]
    Unavailable(&'static str),
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = match self {
            HttpError::CrossSite => StatusCode::FORBIDDEN,
            HttpError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        (status, self.to_string()).into_response()
    }
}
