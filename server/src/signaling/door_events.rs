//! `GET /m/{code}/door/events`: the waiting person's side of the door, as
//! Server-Sent Events. The lobby page opens it while it waits and hears
//! the host's decision at once, instead of asking every second and a half.
//!
//! The events of the meeting's room that can change a door (a decision
//! broadcasts `knocks_changed`; removals, rights changes, the end, a
//! resync), across instances too, make the stream read the person's
//! admission again, at most every `MIN_READ_GAP`; a change is sent as a
//! `door` event with the same JSON as the `door_state` server function.
//! Only a person who is waiting gets a stream that stays open: anyone else
//! gets where they stand, once. The stream ends after a final answer
//! (admitted, denied, removed) and when the meeting ends.

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
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tower_sessions::Session;

/// Read again even without a room event, in case one was missed.
const RECHECK: Duration = Duration::from_secs(10);
/// Reads of one stream are at least this far apart (a flood of knocks
/// costs one read per gap, not one per knock).
const MIN_READ_GAP: Duration = Duration::from_millis(250);

type RoomEvents = broadcast::Receiver<std::sync::Arc<domain::rooms::bus::SharedEvent>>;

struct Watch {
    lobby: LobbyCx,
    events: RoomEvents,
    last: Option<DoorStatus>,
    last_read: Option<tokio::time::Instant>,
    over: bool,
    _slot: super::sockets::SocketSlot,
}

fn is_final(status: &DoorStatus) -> bool {
    matches!(
        status.admission,
        Some(Admission::Admitted | Admission::Denied | Admission::Removed)
    )
}

enum DoorEvent {
    /// Something that may have changed a door.
    Changed,
    /// The meeting ended, or the room's events stopped.
    Over,
}

/// Waits for a room event that can change someone's door; the call's own
/// traffic (chat, media, signals) is let by.
async fn next_door_event(events: &mut RoomEvents) -> DoorEvent {
    use domain::rooms::bus::RoomEvent;
    loop {
        match events.recv().await {
            Ok(event) => match event.event() {
                RoomEvent::Ended => return DoorEvent::Over,
                RoomEvent::Broadcast {
                    message: app::protocol::ServerMessage::KnocksChanged,
                    ..
                }
                | RoomEvent::AccessChanged { .. }
                | RoomEvent::Removed { .. }
                | RoomEvent::Resync => return DoorEvent::Changed,
                _ => {}
            },
            // Missed some: one of them may have been a decision.
            Err(broadcast::error::RecvError::Lagged(_)) => return DoorEvent::Changed,
            Err(broadcast::error::RecvError::Closed) => return DoorEvent::Over,
        }
    }
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
                    event = next_door_event(&mut self.events) => match event {
                        DoorEvent::Changed => {}
                        // The meeting ended, or the bus went away: the
                        // page asks by itself from here.
                        DoorEvent::Over => return None,
                    },
                    () = tokio::time::sleep(RECHECK) => {}
                }
            }
            if let Some(at) = self.last_read {
                tokio::time::sleep_until(at + MIN_READ_GAP).await;
            }
            // What queued up meanwhile is covered by this read.
            while self.events.try_recv().is_ok() {}
            self.last_read = Some(tokio::time::Instant::now());
            let status = match self.lobby.door_state().await {
                Ok(status) => status,
                // Signed out, meeting gone: the page falls back to asking.
                Err(_) => return None,
            };
            // Only someone waiting has anything to wait for.
            self.over = is_final(&status) || status.admission.is_none();
            if self.last.as_ref() != Some(&status) {
                self.last = Some(status.clone());
                return Some(status);
            }
        }
    }
}

pub async fn door_events(
    State(state): State<Arc<SignalingState>>,
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
        last_read: None,
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
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    // nginx buffers proxied responses unless told otherwise: the decision
    // would wait in its buffer.
    response.headers_mut().insert(
        axum::http::HeaderName::from_static("x-accel-buffering"),
        axum::http::HeaderValue::from_static("no"),
    );
    response
}
