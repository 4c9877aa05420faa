//! What goes into a call session and what comes out: inputs (frames,
//! room events, timers, answers) and effects (frames to send, events to
//! publish, closes, and questions for the stores).

use crate::ids::{ConnectionId, ParticipantId};
use crate::rooms::bus::{RoomEvent, SharedEvent};
use crate::rooms::{Announce, JoinOutcome, PeerChange, PresenceEntry};
use protocol::ice::IceConfig;
use protocol::{ClientMessage, LeaveReason, MediaPath, PeerId, PeerInfo, ServerMessage, Signal};
use std::sync::Arc;
use std::time::Instant;

use super::Caller;

/// The current time, as the two clocks the session uses: a monotonic one
/// for rates and silences, the wall clock for presence expiries (shared
/// with other instances).
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub instant: Instant,
    pub wall_ms: i64,
}

impl Now {
    pub fn system() -> Self {
        Self {
            instant: Instant::now(),
            wall_ms: crate::clock::now_ms(),
        }
    }
}

/// One frame from the browser, as the pump read it.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Text(String),
    /// A binary frame of this many bytes (the protocol is text only).
    Binary(usize),
    /// A ping or pong.
    Control,
    /// The browser closed the connection.
    Close,
    /// The transport refused a frame over its own size limit.
    TooBig,
    /// The connection broke.
    Broken,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// The time allowed for `join` is up.
    JoinDeadline,
    /// Prove liveness: check the silence, refresh presence, ping.
    Heartbeat,
    /// Ask again whether this person may still be here.
    Recheck,
}

#[derive(Debug, Clone)]
pub enum Input {
    Frame(Frame),
    Event(Arc<SharedEvent>),
    /// The room's events overflowed this connection's buffer.
    FellBehind(u64),
    /// The room's event channel closed.
    RoomClosed,
    /// This instance is shutting down.
    Draining,
    Timer(Timer),
    /// A write to the socket failed or timed out.
    SocketGone,
    Answer(Answer),
    /// The media server's answer or offer for this connection.
    FromMediaServer(crate::media::FromMediaServer),
}

/// Why the rights are being checked, which decides what follows.
#[derive(Debug, Clone, PartialEq)]
pub enum Purpose {
    /// A rights change was announced before `join`.
    BeforeJoin,
    /// `join` arrived: enter with the rights as they are now.
    AtJoin,
    /// A timer or an announced change during the call.
    DuringCall,
    /// A host action: carried out if the person may moderate now.
    HostAction(ClientMessage),
}

/// Why this connection's presence changes, which decides who is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A resumed page brings its current media state and role.
    Resume,
    /// The person turned something on or off.
    Media,
    /// A host changed the person's role.
    Role,
}

impl Change {
    /// Who is told of the stored change: a page that made it knows it; a
    /// role a host changed is news to the person's own page too.
    pub fn announce(self) -> Announce {
        match self {
            Change::Resume | Change::Media => Announce::Others,
            Change::Role => Announce::Everyone,
        }
    }
}

/// What the stores answered to a check of someone's rights.
#[derive(Debug, Clone)]
pub enum Rights {
    /// Admitted, with the current identity and role.
    Admitted(Box<Caller>),
    /// No session any more (sign-out, expiry, password change).
    SignedOut,
    /// The meeting is gone (cancelled).
    Cancelled,
    /// The meeting has ended.
    Ended,
    /// Not (or no longer) admitted.
    NotAdmitted,
    /// The check itself failed (the database did not answer).
    Unknown,
}

/// Chat work, done by the chat store with the connection's identity.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatRequest {
    Send {
        key: String,
        text: String,
        to: Option<PeerId>,
    },
    Sync {
        after: i64,
    },
    History {
        before: i64,
    },
}

/// What a removal attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovalAnswer {
    Done,
    /// The target is the meeting's host, who cannot be removed.
    Host,
    NotFound,
    Failed,
}

/// A question for the stores; its answer comes back as [`Answer`].
#[derive(Debug, Clone, PartialEq)]
pub enum Ask {
    Rights(Purpose),
    /// Take over this peer's presence for this connection, if it is still
    /// the same participant's → [`Answer::Resumed`].
    Resume {
        peer_id: PeerId,
        conn_id: ConnectionId,
        expires_at_ms: i64,
    },
    /// Whether anyone holds this peer id → [`Answer::Held`].
    Held {
        peer_id: PeerId,
    },
    /// Enter the room if fewer than `limit` others are in → [`Answer::Joined`].
    Join {
        entry: PresenceEntry,
        limit: usize,
    },
    /// Apply changes to this connection's presence and, when they were
    /// stored, tell the room as [`Change::announce`] says (one step: see
    /// `Presence::update_and_announce`) → [`Answer::Updated`].
    Update {
        peer_id: PeerId,
        changes: Vec<PeerChange>,
        why: Change,
    },
    /// Everyone present, the newest chat message, the ICE servers and the
    /// media path (which the arrival may change), for the welcome →
    /// [`Answer::Roster`].
    Roster {
        with_turn: bool,
    },
    /// Push this presence's expiry forward → [`Answer::Refreshed`].
    Refresh {
        peer_id: PeerId,
        conn_id: ConnectionId,
        expires_at_ms: i64,
    },
    /// Hand a signal to the media side → [`Answer::Signalled`].
    Signal {
        from: PeerInfo,
        to: PeerId,
        signal: Signal,
    },
    /// Whether this peer is in the room (yes when presence cannot be
    /// read: a mute request only ever reaches this room) →
    /// [`Answer::Present`].
    IsPresent {
        peer_id: PeerId,
        request: HostRequest,
    },
    /// The presence of this peer, if any → [`Answer::Found`].
    Find {
        peer_id: PeerId,
    },
    /// Record that a host removed this participant → [`Answer::Removal`].
    RemoveParticipant {
        peer_id: PeerId,
        participant_id: ParticipantId,
    },
    /// Record that the meeting ended → [`Answer::MeetingEnded`].
    EndMeeting,
    /// → [`Answer::Chat`].
    Chat(ChatRequest),
    /// The room's media path given its size now (an automatic room may
    /// switch) → [`Answer::RoomMedia`].
    RoomMedia,
}

/// What a host asks of one participant's page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostRequest {
    /// Mute your microphone.
    Mute,
    /// You were called on: your hand goes down.
    LowerHand,
}

#[derive(Debug, Clone)]
pub enum Answer {
    Rights(Purpose, Rights),
    Resumed(Option<PeerInfo>),
    Held(bool),
    /// `None`: the store failed.
    Joined(Option<JoinOutcome>),
    /// The presence after the changes; `Ok(None)`: it is gone.
    Updated(Change, Result<Option<PeerInfo>, ()>),
    Roster {
        peers: Vec<PeerInfo>,
        chat_head: i64,
        ice: IceConfig,
        /// The room's media path with this connection in it.
        media_path: MediaPath,
    },
    /// The room's media path now.
    RoomMedia(MediaPath),
    /// `None`: the store failed.
    Refreshed(Option<bool>),
    /// Whether the media side took the signal for `to`.
    Signalled {
        to: PeerId,
        taken: bool,
    },
    Present {
        peer_id: PeerId,
        present: bool,
        request: HostRequest,
    },
    Found {
        peer_id: PeerId,
        peer: Option<PeerInfo>,
    },
    Removal {
        peer_id: PeerId,
        result: RemovalAnswer,
    },
    MeetingEnded(bool),
    /// The chat store's replies, in order.
    Chat(Vec<ServerMessage>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Send(ServerMessage),
    /// Send a room event's message as it is: its wire text is shared with
    /// every other connection of the room that sends it.
    SendShared(Arc<SharedEvent>),
    Close {
        code: u16,
        reason: &'static str,
    },
    /// A WebSocket ping.
    Ping,
    Publish(RoomEvent),
    Ask(Ask),
    /// Take a presence out of the room and, if it was there and `announce`
    /// says how, tell the others.
    RemovePresence {
        peer_id: PeerId,
        announce: Option<LeaveReason>,
    },
    /// Empty the room (the meeting ended).
    ClearRoom,
    /// Hand a signal of this connection's peer to the media server.
    ToMediaServer {
        peer_id: PeerId,
        signal: Signal,
    },
    /// Tell the media server whose camera this connection's page wants
    /// whatever the last-N order, and how tall it shows each
    /// (`media_server_watch`).
    WatchOnMediaServer {
        peer_id: PeerId,
        wishes: protocol::media_server::CameraWishes,
    },
    /// Close this connection's media-server connection, if it has one.
    CloseMediaServer,
    /// The connection dropped: keep its presence until `expires_at_ms` so
    /// the same page can resume.
    HoldForResume {
        peer_id: PeerId,
        conn_id: ConnectionId,
        expires_at_ms: i64,
    },
}
