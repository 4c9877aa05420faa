//! The call's signaling endpoint: `GET /m/{code}/ws`, a WebSocket for an
//! admitted participant. Who is on the connection comes from the session
//! cookie of the upgrade request, checked like any page: the meeting must
//! exist, the caller must be admitted, the request must come from our own
//! origin. The protocol is `app::protocol`, written down in
//! `docs/protocol.md`.

mod connection;
mod sockets;

use crate::security::{is_same_origin, OriginPolicy};
use crate::session_store::DbSessionStore;
use app::auth::ssr::RequestCx;
use app::error::ApiError;
use app::lobby::ssr::{participant_id, LobbyCx};
use app::protocol::MAX_MESSAGE_BYTES;
use app::state::AppState;
use axum::extract::ws::{rejection::WebSocketUpgradeRejection, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use domain::rooms::Rooms;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tower_sessions::session::Id;
use tower_sessions::{Expiry, Session};

pub use domain::call::Caller;
pub use sockets::SocketCounts;

#[derive(Clone)]
pub struct SignalingState {
    pub app: AppState,
    pub rooms: Rooms,
    pub origin: Arc<OriginPolicy>,
    pub chat_limits: Arc<crate::chat::ChatLimits>,
    /// Set on shutdown: no new joins, open connections sent elsewhere.
    pub draining: tokio::sync::watch::Receiver<bool>,
    /// The session store, read afresh when a live connection re-checks
    /// that its session still exists (sign-out, expiry, password change).
    pub sessions: DbSessionStore,
    /// The sessions' idle lifetime, pushed forward while someone is in a call.
    pub session_idle: Duration,
    /// How often a live connection re-checks its rights.
    pub rights_recheck: Duration,
    /// Open connections per participant and per client address.
    pub sockets: Arc<SocketCounts>,
    /// Where a session's `signal` messages go (the mesh relay for now).
    pub media: Arc<dyn domain::media::Media>,
}

/// What a connection needs to ask again, during the call, whether this
/// person may still be here: the same question as at the upgrade, asked
/// with a session read afresh from the store (never the copy the upgrade
/// loaded, which would not see a sign-out).
#[derive(Debug, Clone)]
pub struct Credentials {
    pub code: String,
    pub client: String,
    pub session_id: Option<Id>,
}

impl SignalingState {
    /// Who this connection's person is now, and whether they may still be
    /// in the call. Being in a call is activity: a session that passes is
    /// kept alive (an update only: a deleted session is never re-created).
    pub(crate) async fn recheck(&self, credentials: &Credentials) -> Result<Caller, ApiError> {
        let session = Session::new(
            credentials.session_id,
            Arc::new(self.sessions.clone()),
            Some(Expiry::OnInactivity(
                time::Duration::try_from(self.session_idle).unwrap_or(time::Duration::hours(12)),
            )),
        );
        let auth = RequestCx::from_parts(
            self.app.clone(),
            session.clone(),
            credentials.client.clone(),
        );
        let caller = admitted_caller(auth, &credentials.code).await?;
        let interval = self.app.auth.touch_interval.as_millis() as i64;
        if let Err(err) = app::auth::ssr::touch_session(&session, interval).await {
            tracing::warn!(error = %err, "could not refresh the session");
        } else if let Err(err) = session.save().await {
            tracing::warn!(error = %err, "could not refresh the session");
        }
        Ok(caller)
    }
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
        return (
            StatusCode::TOO_MANY_REQUESTS,
            "too many open call connections; close another window first",
        )
            .into_response();
    };
    // The transport's own limit is a backstop well above ours, so frames
    // between the two get a proper 1009 close from the connection.
    ws.max_message_size(MAX_MESSAGE_BYTES * 4)
        .max_frame_size(MAX_MESSAGE_BYTES * 4)
        .on_upgrade(move |socket| async move {
            connection::run(socket, state, caller, credentials).await;
            drop(slot);
        })
}

async fn admitted_caller(auth: RequestCx, code: &str) -> Result<Caller, ApiError> {
    let lobby = LobbyCx::for_request(auth, code).await?;
    // The same rule as every other door check (`Access::in_call`).
    let (viewer, access) = lobby.viewer_access().await?;
    access.in_call()?;
    Ok(Caller {
        meeting: lobby.meeting().clone(),
        participant_id: participant_id(&viewer),
        display_name: viewer.display_name().to_string(),
        role: access.peer_role,
        may_use_turn: access.may_use_turn(domain::clock::now_ms()),
    })
}
