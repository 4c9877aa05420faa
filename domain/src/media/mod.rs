//! The media boundary: what a call session does with a `signal` message
//! (an offer, an answer, an ICE candidate).
//!
//! The first side is the mesh relay: browsers send media to each other and
//! the server passes their signals along to the addressed peer. The
//! built-in SFU ([`MediaServer`]) is the second: in a room whose media path
//! is `server`, each browser signals the server itself, which answers and
//! forwards. The session only hands signals over.

pub mod forward;
pub mod last_n;
pub mod paths;
pub mod relay;
pub mod routing;
pub mod speakers;

use crate::ids::ConnectionId;
use crate::rooms::bus::RoomEvent;
use crate::rooms::Rooms;
use protocol::media_server::CameraWishes;
use protocol::{PeerId, PeerInfo, ServerMessage, Signal};

pub use relay::FromMediaServer;

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

/// Where the media server's words for one connection go, in order.
pub type MediaServerOutbox = tokio::sync::mpsc::Sender<FromMediaServer>;

/// How many of the media server's words one connection may have waiting
/// (a few offers in a row while people join at once).
pub const OUTBOX_DEPTH: usize = 32;

/// The built-in media server (SFU), as the signaling side sees it: one
/// media connection per call connection, opened at its first signal and
/// closed when the call connection ends. Calls never wait on media work.
pub trait MediaServer: Send + Sync + 'static {
    /// Takes `signal` from `peer` of `room`. The first signal of a call
    /// connection (`conn`) opens its media connection, and replaces an
    /// older one of the same peer (a resumed page); what the server says
    /// back goes to `outbox`.
    fn signal(
        &self,
        room: &str,
        peer: &PeerId,
        conn: &ConnectionId,
        outbox: &MediaServerOutbox,
        signal: Signal,
    );

    /// `peer` (on call connection `conn`) wants the cameras of
    /// `wishes.peers` whatever the last-N order (its pinned tile, shared
    /// screens), each as tall as `wishes.heights` says (the simulcast
    /// layer it gets).
    fn watch(&self, room: &str, peer: &PeerId, conn: &ConnectionId, wishes: &CameraWishes);

    /// Whether `peer`'s camera (or shared screen) is on: a browser keeps
    /// sending black frames for a camera turned off, so the packets alone
    /// do not say.
    fn camera(&self, room: &str, peer: &PeerId, conn: &ConnectionId, on: bool);

    /// The call connection `conn` of `peer` ended: its media connection
    /// closes and its tracks leave everyone else's (unless a newer call
    /// connection of the same peer already took it over).
    fn disconnect(&self, room: &str, peer: &PeerId, conn: &ConnectionId);
}
