//! `GET /m/{code}/door/events`: the waiting person's side of the door, as
//! Server-Sent Events. The lobby page opens it while it waits and hears
//! the host's decision at once, instead of asking every second and a half.
//!
//! Every event of the meeting's room (a decision broadcasts
//! `knocks_changed` through the bus, so across instances too) makes the
//! stream read the person's admission again; a change is sent as a `door`
//! event with the same JSON as the `door_state` server function. The
//! stream ends after a final answer (admitted, denied, removed).

use super::state::SignalingState;
use app::auth::ssr::RequestCx;
use app::lobby::ssr::{participant_id, LobbyCx};
use app::lobby::{Admission, DoorStatus};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::broadcast;
use tower_sessions::Session;

/// Read again even without a room event, in case one was missed.
const RECHECK: Duration = Duration::from_secs(10);
/// Room events closer together than this cost one read.
const COALESCE: Duration = Duration::from_millis(100);

type RoomEvents = broadcast::Receiver<std::sync::Arc<domain::rooms::bus::RoomEvent>>;

struct Watch {
    lobby: LobbyCx,
    events: RoomEvents,
    last: Option<DoorStatus>,
    over: bool,
    _slot: super::sockets::SocketSlot,
}

fn is_final(status: &DoorStatus) -> bool {
    matches!(
        status.admission,
        Some(Admission::Admitted | Admission::Denied | Admission::Removed)
    )
}

impl Watch {
    /// The next change of the door, or `None` when the stream is over.
    async fn next(&mut self) -> Option<DoorStatus> {
        loop {
            if self.over {
                return None;
            }
            if self.last.is_some() {
                tokio::select! {
                    event = self.events.recv() => {
                        if let Err(broadcast::error::RecvError::Closed) = event {
                            return None;
                        }
                        tokio::time::sleep(COALESCE).await;
                        while self.events.try_recv().is_ok() {}
                    }
                    () = tokio::time::sleep(RECHECK) => {}
                }
            }
            let status = match self.lobby.door_state().await {
                Ok(status) => status,
                // Signed out, meeting gone: the page falls back to asking.
                Err(_) => return None,
            };
            self.over = is_final(&status);
            if self.last.as_ref() != Some(&status) {
                self.last = Some(status.clone());
                return Some(status);
            }
        }
    }
}

pub async fn door_events(
    State(state): State<SignalingState>,
    Path(code): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    session: Session,
    headers: HeaderMap,
) -> Response {
    let client_ip = app::state::client_address(peer.ip(), &headers, &state.app.trusted_proxies);
    let auth = RequestCx::from_parts(state.app.clone(), session, client_ip.to_string());
    let lobby = match LobbyCx::for_request(auth, &code).await {
        Ok(lobby) => lobby,
        Err(err) => return (err.status(), err.to_string()).into_response(),
    };
    let viewer = match lobby.auth().viewer().await {
        Ok(Some(viewer)) => viewer,
        Ok(None) => {
            return (StatusCode::UNAUTHORIZED, "sign in or continue as a guest").into_response()
        }
        Err(err) => return (err.status(), err.to_string()).into_response(),
    };
    // Counted with the call connections: one person or address cannot
    // hold streams without bound.
    let Some(slot) = state.sockets.take(&participant_id(&viewer), client_ip) else {
        state.app.metrics.rate_limited("call_connections");
        return (StatusCode::TOO_MANY_REQUESTS, "too many open connections").into_response();
    };
    let events = match state.rooms.bus.subscribe(&lobby.meeting().id).await {
        Ok(events) => events,
        Err(err) => {
            tracing::warn!(error = %err, "cannot watch the door");
            return (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response();
        }
    };
    let watch = Watch {
        lobby,
        events,
        last: None,
        over: false,
        _slot: slot,
    };
    let stream = futures_util::stream::unfold(watch, |mut watch| async move {
        let status = watch.next().await?;
        let event = Event::default()
            .event("door")
            .json_data(&status)
            .unwrap_or_else(|_| Event::default().event("door"));
        Some((Ok::<Event, Infallible>(event), watch))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
