//! The room fan-out boundary: how a message for a room reaches every
//! connection in it, whichever server instance holds that connection.
//!
//! Nothing above this trait may assume one process. The in-process
//! implementation is `super::local::LocalBus`; the Redis one (pub/sub
//! across instances) is `super::redis::RedisBus`.

use crate::ids::{ConnectionId, ParticipantId, PeerId};
use protocol::{LeaveReason, ServerMessage};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, OnceLock};
use tokio::sync::broadcast;

/// What travels on a room's channel. Connections pick out what concerns
/// them; events are small and rooms are small, so filtering at the edge is
/// cheaper than keeping per-peer channels in step across instances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RoomEvent {
    /// To every connection of the room except `skip`'s.
    Broadcast {
        skip: Option<PeerId>,
        message: ServerMessage,
    },
    /// To one peer.
    Direct { to: PeerId, message: ServerMessage },
    /// To the connections of these participants (private chat).
    Participants {
        ids: Vec<ParticipantId>,
        message: ServerMessage,
    },
    /// A newer connection (`conn_id`) now owns `peer_id`; older ones close.
    Takeover {
        peer_id: PeerId,
        conn_id: ConnectionId,
    },
    /// A host removed this participant: their connections close.
    Removed { participant_id: ParticipantId },
    /// A host ended the meeting: every connection closes.
    Ended,
    /// Someone's rights in this meeting changed in the database (role,
    /// admission, invitation, meeting settings or cancellation). Each
    /// connection of `participant_id` (every connection of the room when
    /// `None`) re-reads its role and admission and acts on it: a demoted
    /// co-host loses host controls, a revoked admission closes.
    AccessChanged {
        participant_id: Option<ParticipantId>,
    },

    /// Events may have been lost (the cross-instance link was down):
    /// connections ask their clients to reconnect and resynchronise.
    Resync,

    /// Between instances about a room's media (only on an instance's
    /// relay channel, never a room's: see `crate::media::routing`).
    Media {
        relay: crate::media::relay::MediaRelay,
    },
}

/// A room event as this instance's connections receive it: one shared
/// copy, and the message it carries encoded for the wire at most once. The
/// first connection that sends it as it is encodes it; the others of the
/// room send the same bytes (a broadcast to 50 is serialised once, not 50
/// times).
#[derive(Debug)]
pub struct SharedEvent {
    event: RoomEvent,
    wire: OnceLock<Option<bytes::Bytes>>,
}

impl SharedEvent {
    pub fn new(event: RoomEvent) -> Self {
        Self {
            event,
            wire: OnceLock::new(),
        }
    }

    pub fn event(&self) -> &RoomEvent {
        &self.event
    }

    /// The message this event carries to clients, if it carries one.
    pub fn message(&self) -> Option<&ServerMessage> {
        match &self.event {
            RoomEvent::Broadcast { message, .. }
            | RoomEvent::Direct { message, .. }
            | RoomEvent::Participants { message, .. } => Some(message),
            _ => None,
        }
    }

    /// [`Self::message`] as JSON text, encoded on first use. `None` when
    /// there is no message or it cannot be encoded.
    pub fn wire_text(&self) -> Option<bytes::Bytes> {
        self.wire
            .get_or_init(|| {
                let message = self.message()?;
                match serde_json::to_vec(message) {
                    Ok(text) => Some(bytes::Bytes::from(text)),
                    Err(err) => {
                        tracing::error!(error = %err, "cannot encode a server message");
                        None
                    }
                }
            })
            .clone()
    }
}

impl From<RoomEvent> for SharedEvent {
    fn from(event: RoomEvent) -> Self {
        Self::new(event)
    }
}

impl std::ops::Deref for SharedEvent {
    type Target = RoomEvent;

    fn deref(&self) -> &RoomEvent {
        &self.event
    }
}

/// Two deliveries are the same when their events are (the encoding is a
/// cache).
impl PartialEq for SharedEvent {
    fn eq(&self, other: &Self) -> bool {
        self.event == other.event
    }
}

#[derive(Debug, thiserror::Error)]
#[error("room fan-out unavailable: {0}")]
pub struct BusError(pub String);

#[async_trait::async_trait]
pub trait RoomBus: Send + Sync + 'static {
    /// Sends `event` to every subscriber of `room`, on every instance.
    async fn publish(&self, room: &str, event: RoomEvent) -> Result<(), BusError>;
    /// Events of `room` from now on. A receiver that falls behind gets
    /// `Lagged` and must resynchronise (the connection reconnects).
    async fn subscribe(
        &self,
        room: &str,
    ) -> Result<broadcast::Receiver<Arc<SharedEvent>>, BusError>;
    /// Whether cross-instance delivery currently works (for `/readyz`).
    fn is_healthy(&self) -> bool {
        true
    }
}

impl RoomEvent {
    /// `message` to every connection of the room but `about`'s.
    pub fn to_others(about: &str, message: ServerMessage) -> Self {
        RoomEvent::Broadcast {
            skip: Some(about.into()),
            message,
        }
    }

    /// Everyone else learns that `peer_id` left, and why.
    pub fn left(peer_id: &str, reason: LeaveReason) -> Self {
        let message = ServerMessage::PeerLeft {
            peer_id: peer_id.into(),
            reason,
        };
        Self::to_others(peer_id, message)
    }
}

/// Tells the live connections of a meeting that rights changed (see
/// `RoomEvent::AccessChanged`). Best effort like every publish: a
/// connection also re-reads its rights on its next heartbeat.
pub async fn access_changed(bus: &dyn RoomBus, meeting_id: &str, participant_id: Option<&str>) {
    let event = RoomEvent::AccessChanged {
        participant_id: participant_id.map(ParticipantId::from),
    };
    if let Err(err) = bus.publish(meeting_id, event).await {
        tracing::warn!(error = %err, "could not announce an access change");
    }
}

/// Tells hosts in the call that the waiting list changed. Best effort: the
/// knock is stored either way, and the host's list also refreshes itself.
pub async fn knocks_changed(bus: &dyn RoomBus, meeting_id: &str) {
    if let Err(err) = bus
        .publish(
            meeting_id,
            RoomEvent::Broadcast {
                skip: None,
                message: ServerMessage::KnocksChanged,
            },
        )
        .await
    {
        tracing::warn!(error = %err, "could not announce a knock");
    }
}

/// What to do with one event for a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Debounced {
    /// Send it now.
    Now,
    /// Send one trailing notice after this delay, for this and whatever
    /// else arrives meanwhile (call `Debouncer::flush` then).
    Later(std::time::Duration),
    /// A trailing notice is already due: nothing to do.
    Merged,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    last_sent: std::time::Instant,
    pending: bool,
}

/// At most one notice per key per `window`: the first goes at once, the
/// ones that follow within the window become one trailing notice. Time is
/// passed in so the rule is testable without sleeping.
#[derive(Debug)]
pub struct Debouncer {
    window: std::time::Duration,
    slots: std::sync::Mutex<std::collections::HashMap<String, Slot>>,
}

impl Debouncer {
    pub fn new(window: std::time::Duration) -> Self {
        Self {
            window,
            slots: Default::default(),
        }
    }

    pub fn arrive(&self, key: &str, now: std::time::Instant) -> Debounced {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if slots.len() > 10_000 {
            let window = self.window;
            slots.retain(|_, s| s.pending || now.duration_since(s.last_sent) < window);
        }
        match slots.get_mut(key) {
            Some(slot) if slot.pending => Debounced::Merged,
            Some(slot) if now.duration_since(slot.last_sent) < self.window => {
                slot.pending = true;
                Debounced::Later(self.window - now.duration_since(slot.last_sent))
            }
            _ => {
                slots.insert(
                    key.to_string(),
                    Slot {
                        last_sent: now,
                        pending: false,
                    },
                );
                Debounced::Now
            }
        }
    }

    /// The trailing notice is being sent now.
    pub fn flush(&self, key: &str, now: std::time::Instant) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.insert(
            key.to_string(),
            Slot {
                last_sent: now,
                pending: false,
            },
        );
    }
}

/// `knocks_changed`, coalesced per meeting on this instance: a flood of
/// knocks makes at most two pushes per half second to the hosts, not one
/// per knock.
pub struct KnockNotices {
    bus: Arc<dyn RoomBus>,
    debouncer: Arc<Debouncer>,
}

impl KnockNotices {
    pub fn new(bus: Arc<dyn RoomBus>) -> Self {
        Self {
            bus,
            debouncer: Arc::new(Debouncer::new(std::time::Duration::from_millis(500))),
        }
    }

    pub async fn changed(&self, meeting_id: &str) {
        match self.debouncer.arrive(meeting_id, std::time::Instant::now()) {
            Debounced::Now => knocks_changed(self.bus.as_ref(), meeting_id).await,
            Debounced::Later(delay) => {
                let bus = self.bus.clone();
                let debouncer = self.debouncer.clone();
                let meeting_id = meeting_id.to_string();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    debouncer.flush(&meeting_id, std::time::Instant::now());
                    knocks_changed(bus.as_ref(), &meeting_id).await;
                });
            }
            Debounced::Merged => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_shared_event_is_encoded_once_for_every_recipient() {
        let message = ServerMessage::PeerLeft {
            peer_id: "p-1".into(),
            reason: LeaveReason::Left,
        };
        let shared = Arc::new(SharedEvent::new(RoomEvent::to_others(
            "p-1",
            message.clone(),
        )));
        let first = shared.wire_text().expect("a broadcast carries a message");
        assert_eq!(first, serde_json::to_vec(&message).unwrap());
        // Every later recipient gets the very same bytes, not a new encoding.
        let again = Arc::clone(&shared).wire_text().unwrap();
        assert_eq!(first.as_ptr(), again.as_ptr());
        assert_eq!(shared.message(), Some(&message));
        // Events for the connections themselves carry nothing to send.
        let ended = SharedEvent::new(RoomEvent::Ended);
        assert_eq!(ended.message(), None);
        assert_eq!(ended.wire_text(), None);
    }

    #[test]
    fn first_notice_goes_at_once_and_the_rest_become_one() {
        let debouncer = Debouncer::new(Duration::from_millis(500));
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        assert_eq!(debouncer.arrive("m", t0), Debounced::Now);
        assert_eq!(
            debouncer.arrive("m", ms(100)),
            Debounced::Later(Duration::from_millis(400))
        );
        for n in 101..500 {
            assert_eq!(debouncer.arrive("m", ms(n)), Debounced::Merged);
        }
        // Another meeting is not held back.
        assert_eq!(debouncer.arrive("other", ms(200)), Debounced::Now);
        // The trailing notice goes at 500 ms; a knock right after it waits
        // for the next window...
        debouncer.flush("m", ms(500));
        assert_eq!(
            debouncer.arrive("m", ms(600)),
            Debounced::Later(Duration::from_millis(400))
        );
        debouncer.flush("m", ms(1000));
        // ...and after a quiet window, a knock goes at once again.
        assert_eq!(debouncer.arrive("m", ms(1500)), Debounced::Now);
    }
}
