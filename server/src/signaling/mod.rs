//! The call's signaling endpoint: `GET /m/{code}/ws`, a WebSocket for an
//! admitted participant. Who is on the connection comes from the session
//! cookie of the upgrade request, checked like any page: the meeting must
//! exist, the caller must be admitted, the request must come from our own
//! origin. The protocol is `app::protocol`, written down in
//! `docs/protocol.md`.

mod connection;
pub mod limits;

use crate::rooms::Rooms;
use crate::security::{is_same_origin, OriginPolicy};
use app::auth::ssr::RequestCx;
use app::error::ApiError;
use app::lobby::ssr::{participant_id, LobbyCx};
use app::meetings::Role;
use app::protocol::{PeerRole, MAX_MESSAGE_BYTES};
use app::state::AppState;
use axum::extract::ws::{rejection::WebSocketUpgradeRejection, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::Arc;
use tower_sessions::Session;

pub use connection::Caller;

#[derive(Clone)]
pub struct SignalingState {
    pub app: AppState,
    pub rooms: Rooms,
    pub origin: Arc<OriginPolicy>,
    pub chat_limits: Arc<crate::chat::ChatLimits>,
    /// Set on shutdown: no new joins, open connections sent elsewhere.
    pub draining: tokio::sync::watch::Receiver<bool>,
}

pub async fn upgrade(
    State(state): State<SignalingState>,
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
    let client =
        app::state::client_address(peer.ip(), &headers, &state.app.trusted_proxies).to_string();
    let auth = RequestCx::from_parts(state.app.clone(), session.clone(), client);
    let caller = match admitted_caller(auth, &code).await {
        Ok(caller) => caller,
        Err(err) => {
            return (err.status(), err.to_string()).into_response();
        }
    };
    // The transport's own limit is a backstop well above ours, so frames
    // between the two get a proper 1009 close from the connection.
    ws.max_message_size(MAX_MESSAGE_BYTES * 4)
        .max_frame_size(MAX_MESSAGE_BYTES * 4)
        .on_upgrade(move |socket| connection::run(socket, state, caller, session))
}

async fn admitted_caller(auth: RequestCx, code: &str) -> Result<Caller, ApiError> {
    let lobby = LobbyCx::for_request(auth, code).await?;
    let (viewer, role) = lobby.caller_in_call().await?;
    let role = match role {
        Role::Host => PeerRole::Host,
        Role::CoHost => PeerRole::CoHost,
        _ if viewer.is_guest() => PeerRole::Guest,
        _ => PeerRole::Member,
    };
    Ok(Caller {
        meeting: lobby.meeting().clone(),
        participant_id: participant_id(&viewer),
        display_name: viewer.display_name().to_string(),
        role,
    })
}
