//! The room fan-out boundary: how a message for a room reaches every
//! connection in it, whichever server instance holds that connection.
//!
//! Nothing above this trait may assume one process. The in-process
//! implementation lives in `moim_server::rooms::local`; the Redis one
//! (pub/sub across instances) beside it.

use crate::protocol::{PeerId, ServerMessage};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
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
        ids: Vec<String>,
        message: ServerMessage,
    },
    /// A newer connection (`conn_id`) now owns `peer_id`; older ones close.
    Takeover { peer_id: PeerId, conn_id: String },
    /// A host removed this participant: their connections close.
    Removed { participant_id: String },
    /// A host ended the meeting: every connection closes.
    Ended,
    /// Someone's rights in this meeting changed in the database (role,
    /// admission, invitation, meeting settings or cancellation). Each
    /// connection of `participant_id` (every connection of the room when
    /// `None`) re-reads its role and admission and acts on it: a demoted
    /// co-host loses host controls, a revoked admission closes.
    AccessChanged { participant_id: Option<String> },

    /// Events may have been lost (the cross-instance link was down):
    /// connections ask their clients to reconnect and resynchronise.
    Resync,
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
    async fn subscribe(&self, room: &str) -> Result<broadcast::Receiver<Arc<RoomEvent>>, BusError>;
    /// Whether cross-instance delivery currently works (for `/readyz`).
    fn is_healthy(&self) -> bool {
        true
    }
}

/// Tells the live connections of a meeting that rights changed (see
/// `RoomEvent::AccessChanged`). Best effort like every publish: a
/// connection also re-reads its rights on its next heartbeat.
pub async fn access_changed(bus: &dyn RoomBus, meeting_id: &str, participant_id: Option<&str>) {
    let event = RoomEvent::AccessChanged {
        participant_id: participant_id.map(str::to_string),
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
