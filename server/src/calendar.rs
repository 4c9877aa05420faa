//! `GET /m/{code}/invite.ics`: a meeting as an RFC 5545 calendar file, for
//! anyone holding the link. Every kind of miss answers the same 404.

use app::meetings::ssr::{find_live_by_code, ics};
use app::state::{client_address, AppState};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;

pub async fn invite_ics(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(code): Path<String>,
    headers: HeaderMap,
) -> Response {
    let client = client_address(peer.ip(), &headers, &state.trusted_proxies).to_string();
    if let Err(retry_after) = state.meeting_lookups.check(&client).await {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(
                header::RETRY_AFTER,
                retry_after.as_secs().max(1).to_string(),
            )],
            "too many attempts\n",
        )
            .into_response();
    }
    match find_live_by_code(&state.db, &code).await {
        Ok(Some(meeting)) => (
            [
                (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"meeting.ics\"",
                ),
                (header::CACHE_CONTROL, "private, no-store"),
            ],
            ics(&meeting, &state.public_url),
        )
            .into_response(),
        Ok(None) => {
            state.meeting_lookups.record_failure(&client).await;
            (StatusCode::NOT_FOUND, "not found\n").into_response()
        }
        Err(err) => {
            tracing::error!(error = %err, "calendar file look-up failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
        }
    }
}
