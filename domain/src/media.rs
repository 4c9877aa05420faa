//! The media boundary: what a call session does with a `signal` message
//! (an offer, an answer, an ICE candidate).
//!
//! The first side is the mesh relay: browsers send media to each other and
//! the server passes their signals along to the addressed peer. The
//! built-in SFU will be the second: it answers a room's signals itself. The
//! session only hands signals over and never assumes which side it has.

use crate::rooms::bus::RoomEvent;
use crate::rooms::Rooms;
use protocol::{PeerInfo, ServerMessage, Signal};

/// Why a signal was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaRefusal {
    /// No such peer in this room (or the sender itself).
    UnknownPeer,
}

#[async_trait::async_trait]
pub trait Media: Send + Sync + 'static {
    /// Takes `signal` from `from`, in `room`, addressed to peer `to`.
    async fn signal(
        &self,
        room: &str,
        from: &PeerInfo,
        to: &str,
        signal: Signal,
    ) -> Result<(), MediaRefusal>;
}

/// Browsers connect to each other; signals go to the addressed peer, on
/// whichever instance it is, through the room bus.
pub struct MeshRelay {
    rooms: Rooms,
}

impl MeshRelay {
    pub fn new(rooms: Rooms) -> Self {
        Self { rooms }
    }
}

#[async_trait::async_trait]
impl Media for MeshRelay {
    async fn signal(
        &self,
        room: &str,
        from: &PeerInfo,
        to: &str,
        signal: Signal,
    ) -> Result<(), MediaRefusal> {
        if to == from.peer_id || !self.rooms.is_present(room, to).await {
            return Err(MediaRefusal::UnknownPeer);
        }
        let event = RoomEvent::Direct {
            to: to.into(),
            message: ServerMessage::Signal {
                from: from.peer_id.clone(),
                signal,
            },
        };
        if let Err(err) = self.rooms.bus.publish(room, event).await {
            tracing::warn!(error = %err, "could not relay a signal");
        }
        Ok(())
    }
}
