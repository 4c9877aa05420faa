//! `GET /m/{code}/invite.ics`: a meeting as an RFC 5545 calendar file, for
//! anyone holding the link. Every kind of miss answers the same 404.
//!
//! The file is built with the `icalendar` crate (folding, CRLF, escaping of
//! the properties it knows as TEXT), but what people typed is cleaned first,
//! because the crate leaves three holes: a parameter value is written as it
//! is (a `"` in the host's name ends the quoted `CN` early, and a parser
//! then drops the ORGANIZER), `NAME` is not escaped at all (its `;`, `,` and
//! `\` reach the file raw), and a CR passes through everywhere.

use app::calendar::ics;
use app::state::{client_address, AppState};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use domain::meetings::find_live_by_code;
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
