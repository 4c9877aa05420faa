//! What travels between instances about rooms' media (see `routing`), and
//! what a media server says to one call connection. Only plain data: the
//! room bus carries it, so it depends on nothing of the media side.

use crate::ids::{ConnectionId, InstanceId, PeerId, RoomId};
use protocol::Signal;
use serde::{Deserialize, Serialize};

/// What the media server says to one connection. (It may travel between
/// instances: see `routing`.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FromMediaServer {
    /// Its answer, or its own offer.
    Signal(Signal),
    /// It could not take the connection's last signal (unreadable SDP, a
    /// description out of turn): why, in plain words.
    Refused(String),
    /// Who speaks in the room now (see [`super::speakers`]), when that changed,
    /// and to a connection that just opened its media connection.
    Speakers(Vec<PeerId>),
    /// Whose camera it does not forward to this connection now (see
    /// [`super::last_n`]), when that changed.
    VideoPaused(Vec<PeerId>),
    /// The media server ended the connection's media connection (no
    /// packet came from its browser for long): why, in plain words. A
    /// page that is still there starts over.
    Dropped(String),
    /// The room's media moved to another instance's media server (the one
    /// that had it stopped): the page starts its media connection over.
    Moved,
}

/// What one call connection asks of a room's media server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaRequest {
    Signal(Signal),
    Watch(protocol::media_server::CameraWishes),
    Camera(bool),
    Disconnect,
}

/// What travels between instances about rooms' media, on the channel of
/// the instance it is for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MediaRelay {
    /// To the holder of `room`: a request of call connection `conn` (of
    /// `peer`) on instance `from`.
    Request {
        from: InstanceId,
        room: RoomId,
        peer: PeerId,
        conn: ConnectionId,
        request: MediaRequest,
    },
    /// Back to the instance of call connection `conn`: what the media
    /// server of `room` says to it.
    Reply {
        room: RoomId,
        conn: ConnectionId,
        said: FromMediaServer,
    },
}
