//! What the signaling endpoint shares, and the one rights check it runs at
//! the upgrade and again during the call.

use crate::security::OriginPolicy;
use crate::session_store::DbSessionStore;
use app::auth::ssr::RequestCx;
use app::error::ApiError;
use app::lobby::ssr::{participant_id, LobbyCx};
use app::state::AppState;
use domain::call::Caller;
use domain::rooms::Rooms;
use std::sync::Arc;
use std::time::Duration;
use tower_sessions::session::Id;
use tower_sessions::{Expiry, Session};

use super::sockets::SocketCounts;

#[derive(Clone)]
pub struct SignalingState {
    pub app: AppState,
    pub rooms: Rooms,
    pub origin: Arc<OriginPolicy>,
    pub chat_limits: Arc<domain::chat::service::ChatLimits>,
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
    /// Each room's media path (and when automatic rooms switch).
    pub media_paths: Arc<domain::media::paths::MediaPaths>,
    /// The built-in media server, unless media is browser to browser only.
    pub media_server: Option<Arc<dyn domain::media::MediaServer>>,
    /// Live calls and people on this instance, by media path.
    pub census: Arc<super::census::CallCensus>,
    /// Where what happens in calls becomes webhook deliveries.
    pub webhooks: crate::webhooks::Webhooks,
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
        let caller = self
            .app
            .metrics
            .timed_query("rights_check", admitted_caller(auth, &credentials.code))
            .await?;
        let interval = self.app.auth.touch_interval.as_millis() as i64;
        if let Err(err) = app::auth::ssr::touch_session(&session, interval).await {
            tracing::warn!(error = %err, "could not refresh the session");
        } else if let Err(err) = session.save().await {
            tracing::warn!(error = %err, "could not refresh the session");
        }
        Ok(caller)
    }
}

pub(super) async fn admitted_caller(auth: RequestCx, code: &str) -> Result<Caller, ApiError> {
    let lobby = LobbyCx::for_request(auth, code).await?;
    // The same rule as every other door check (`Access::in_call`).
    let (viewer, access) = lobby.viewer_access().await?;
    access.in_call()?;
    Ok(Caller {
        meeting: lobby.meeting().clone(),
        participant_id: participant_id(&viewer).into(),
        display_name: viewer.display_name().to_string(),
        role: access.peer_role,
        may_use_turn: access.may_use_turn(domain::clock::now_ms()),
    })
}
