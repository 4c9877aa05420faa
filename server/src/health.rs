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

/// The process can do its work: the database answers and, with several
/// instances, the cross-instance fan-out (Redis) works.
pub async fn readyz(State(state): State<AppState>) -> Response {
    if !crate::db::is_reachable(&state.db, Duration::from_secs(2)).await {
        return HttpError::Unavailable("database unreachable").into_response();
    }
    if !state.bus.is_healthy() {
        return HttpError::Unavailable("room fan-out (Redis) unreachable").into_response();
    }
    "ready\n".into_response()
}
