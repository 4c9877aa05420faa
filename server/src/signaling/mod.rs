//! The call's signaling endpoint: `GET /m/{code}/ws`, a WebSocket for an
//! admitted participant. Who is on the connection comes from the session
//! cookie of the upgrade request, checked like any page: the meeting must
//! exist, the caller must be admitted, the request must come from our own
//! origin. The protocol is `app::protocol`, written down in
//! `docs/protocol.md`.

mod census;
mod connection;
mod door_events;
mod pace;
mod sockets;
mod state;

use crate::security::is_same_origin;
use app::auth::ssr::RequestCx;
use app::protocol::{MAX_MEDIA_SIGNAL_BYTES, MAX_MESSAGE_BYTES};
use axum::extract::ws::{rejection::WebSocketUpgradeRejection, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use state::admitted_caller;
use std::net::SocketAddr;
use std::sync::Arc;
use tower_sessions::Session;

pub use census::{CallCensus, PathCount};
pub use domain::call::Caller;
pub use door_events::door_events;
pub use sockets::SocketCounts;
pub use state::{Credentials, SignalingState};

/// The initial read buffer of a call socket, and how much one read takes
/// from the kernel. What a browser sends is mostly a few hundred bytes (a
/// media toggle, an ICE candidate, a chat line); the buffer grows to fit a
/// larger frame (a session description) when one comes, so this is what a
/// socket that only listens keeps: 4 KiB was a fifth of an idle joined
/// socket's memory (`scripts/bench.sh connections`, 2026-11-30).
const READ_BUFFER_BYTES: usize = 1024;
/// How much a call socket's written frames may collect before they go out
/// without waiting for the flush at the end of a batch.
const WRITE_BATCH_BYTES: usize = 16 * 1024;

pub async fn upgrade(
    State(state): State<Arc<SignalingState>>,
    Path(code): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    session: Session,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // A page on another site could open a WebSocket to us with the
    // person's cookie (WebSockets are not bound by CORS): refuse any
    // upgrade that does not come from our own pages.
    if !is_same_origin(&headers, &state.origin) {
        tracing::warn!(origin = ?headers.get("origin"), "refused a cross-site WebSocket");
        return (StatusCode::FORBIDDEN, "cross-site request refused").into_response();
    }
    if *state.draining.borrow() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down; try again").into_response();
    }
    let Ok(ws) = ws else {
        return (StatusCode::UPGRADE_REQUIRED, "WebSocket upgrade required").into_response();
    };
    let client_ip = app::state::client_address(peer.ip(), &headers, &state.app.trusted_proxies);
    let credentials = Credentials {
        code,
        client: client_ip.to_string(),
        session_id: session.id(),
    };
    let auth = RequestCx::from_parts(state.app.clone(), session, credentials.client.clone());
    let caller = match admitted_caller(auth, &credentials.code).await {
        Ok(caller) => caller,
        Err(err) => {
            return (err.status(), err.to_string()).into_response();
        }
    };
    // Counted from here until the connection ends (the guard travels with
    // it), so one person or one address cannot hold sockets without bound.
    let Some(slot) = state.sockets.take(&caller.participant_id, client_ip) else {
        tracing::warn!(participant = %caller.participant_id, "too many call connections");
        state.app.metrics.rate_limited("call_connections");
        return (
            StatusCode::TOO_MANY_REQUESTS,
            "too many open call connections; close another window first",
        )
            .into_response();
    };
    // The transport's own limit is a backstop well above ours (the largest
    // is a media-server session description's), so frames between the two
    // get a proper 1009 close from the connection.
    ws.max_message_size(MAX_MEDIA_SIGNAL_BYTES * 2)
        .max_frame_size(MAX_MEDIA_SIGNAL_BYTES * 2)
        // tungstenite reserves a 128 KiB read buffer per socket up front;
        // signaling frames are small, and the buffer grows for a large one
        // anyway (see READ_BUFFER_BYTES). A smaller one took an idle joined
        // socket from ~140 KiB to the figure `scripts/bench.sh connections`
        // prints.
        .read_buffer_size(READ_BUFFER_BYTES)
        // Frames collect until the pump flushes after a batch of room
        // events (see `connection::EVENT_BATCH` and `pace`), so a
        // busy room costs one socket write per batch rather than per frame;
        // past this size they go out at once. Every flush has a deadline,
        // and the bound keeps a stuck client from growing the queue.
        .write_buffer_size(WRITE_BATCH_BYTES)
        // Room for a media-server offer (up to `MAX_MEDIA_SIGNAL_BYTES`)
        // with a batch of ordinary frames queued beside it.
        .max_write_buffer_size(MAX_MEDIA_SIGNAL_BYTES + MAX_MESSAGE_BYTES * 8)
        // The connection's future itself, not one wrapped in another
        // block that would hold its own copies of what it moves on.
        .on_upgrade(move |socket| connection::run(socket, state, caller, credentials, slot))
}
