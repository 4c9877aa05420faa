//! Liveness and readiness, as plain HTTP for load balancers and
//! orchestrators.

use crate::error::HttpError;
use app::state::AppState;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use std::time::Duration;

/// The process is up and serving HTTP.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// The process can do its work: the database answers.
pub async fn readyz(State(state): State<AppState>) -> Response {
    if crate::db::is_reachable(&state.db, Duration::from_secs(2)).await {
        "ready\n".into_response()
    } else {
        HttpError::Unavailable("database unreachable").into_response()
    }
}
