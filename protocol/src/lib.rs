//! The signaling protocol between the browser and the server, one JSON
//! object per WebSocket text frame. Written down for people in
//! `docs/protocol.md`; these types are the source of truth for both sides.
//!
//! Every message carries a `type` tag. The first message on a connection is
//! `join`, which names the protocol version; the server answers `welcome`
//! (or an `error` and a close). Identity never travels in a message: the
//! server knows who is on a connection from the session cookie of the
//! upgrade request.

pub mod ice;
pub mod ids;
pub mod media_server;
pub mod meetings;
pub mod text;

use crate::ice::IceConfig;
use serde::{Deserialize, Serialize};

/// Bumped on any change that an older peer could not understand.
pub const PROTOCOL_VERSION: u32 = 8;
/// Largest text frame the server reads; a larger one closes the connection
/// with 1009 (message too big).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Largest frame carrying a session description to or from the media
/// server (`media_server_signal`), the one message allowed past
/// `MAX_MESSAGE_BYTES`: it names every track its page receives, about 800
/// bytes each, so a 100-person call with cameras and microphones (198
/// tracks, and the slots of some who left) needs about 200 KB.
pub const MAX_MEDIA_SIGNAL_BYTES: usize = 320 * 1024;
/// Longest chat message, in characters.
pub const CHAT_MAX_CHARS: usize = 2000;
/// Longest client-made idempotency key of a chat message.
pub const CHAT_KEY_MAX: usize = 64;
/// Most chat messages sent in one answer to `chat_sync` / `chat_history`.
pub const CHAT_PAGE: usize = 200;

/// Close codes besides the standard ones (1000 normal, 1001 going away,
/// 1008 policy violation, 1009 message too big, 1011 server error).
pub mod close {
    /// Another connection of the same participant took this one's place.
    pub const REPLACED: u16 = 4001;
    /// A host removed this participant.
    pub const REMOVED: u16 = 4003;
    /// A host ended the meeting for everyone.
    pub const ENDED: u16 = 4004;
    /// No `join` within the allowed time, or not admitted (any more).
    pub const NOT_ADMITTED: u16 = 4005;
    /// The room is at its size limit.
    pub const FULL: u16 = 4006;
    /// The client speaks a protocol version the server does not.
    pub const VERSION: u16 = 4007;
    /// The session that opened the connection ended (sign-out, password
    /// change, expiry): the page asks the person to sign in again.
    pub const SIGNED_OUT: u16 = 4008;
    /// The meeting was cancelled by its host.
    pub const CANCELLED: u16 = 4010;
    // Standard codes (RFC 6455) named here so no bare numbers appear.
    /// A normal close (the person left).
    pub const NORMAL: u16 = 1000;
    /// The room's channel closed under the connection: reconnect.
    pub const GOING_AWAY: u16 = 1001;
    /// Never sent: what a browser reports when the connection dropped
    /// without a close frame (network gone, server unreachable).
    pub const ABNORMAL: u16 = 1006;
    /// A message broke the protocol's rules (flooding).
    pub const POLICY: u16 = 1008;
    /// A message larger than the protocol allows.
    pub const TOO_BIG: u16 = 1009;
    /// The server cannot serve the room right now.
    pub const INTERNAL: u16 = 1011;
    /// The server is restarting or asks for a resynchronisation: reconnect.
    pub const RESTART: u16 = 1012;
    /// The connection fell behind or lost its presence: reconnect and
    /// resynchronise.
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

pub use ids::{ParticipantId, PeerId};
pub use media_server::MediaPath;

/// What a participant sends and shows, as everyone else sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MediaState {
    pub mic: bool,
    pub cam: bool,
    pub screen: bool,
    pub hand: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerRole {
    Host,
    CoHost,
    Member,
    Guest,
}

impl PeerRole {
    pub fn is_moderator(self) -> bool {
        matches!(self, PeerRole::Host | PeerRole::CoHost)
    }
}

/// One person in the room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    pub peer_id: PeerId,
    /// The user id, or the guest id of a session: stable across rejoins.
    pub participant_id: ParticipantId,
    pub display_name: String,
    pub role: PeerRole,
    pub media: MediaState,
    pub joined_at_ms: i64,
    /// When the hand went up (server time), while it is up: the order in
    /// which hosts call on people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hand_raised_at_ms: Option<i64>,
}

/// The reactions a participant can send: a fixed set, so nothing but these
/// few pictures ever floats over anyone's tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reaction {
    ThumbsUp,
    Heart,
    Laugh,
    Clap,
    Surprised,
    Celebrate,
}

impl Reaction {
    pub const ALL: [Reaction; 6] = [
        Reaction::ThumbsUp,
        Reaction::Heart,
        Reaction::Laugh,
        Reaction::Clap,
        Reaction::Surprised,
        Reaction::Celebrate,
    ];

    pub fn emoji(self) -> &'static str {
        match self {
            Reaction::ThumbsUp => "👍",
            Reaction::Heart => "❤️",
            Reaction::Laugh => "😂",
            Reaction::Clap => "👏",
            Reaction::Surprised => "😮",
            Reaction::Celebrate => "🎉",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reaction::ThumbsUp => "thumbs_up",
            Reaction::Heart => "heart",
            Reaction::Laugh => "laugh",
            Reaction::Clap => "clap",
            Reaction::Surprised => "surprised",
            Reaction::Celebrate => "celebrate",
        }
    }
}

/// Session description or ICE candidate, relayed between two peers
/// untouched (the server never reads SDP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Signal {
    Description {
        /// "offer", "answer", "pranswer" or "rollback".
        sdp_type: String,
        sdp: String,
    },
    Candidate {
        candidate: String,
        sdp_mid: Option<String>,
        sdp_m_line_index: Option<u16>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// First message. `resume` is the peer id this page had before its
    /// connection dropped; the server keeps it if the presence still exists.
    Join {
        version: u32,
        resume: Option<PeerId>,
        media: MediaState,
    },
    /// Relay to one other peer of the room (rooms with a direct media
    /// path).
    Signal { to: PeerId, signal: Signal },
    /// For the built-in media server (rooms whose media path is
    /// `server`): this page's offer, or its answer to the server's offer.
    MediaServerSignal { signal: Signal },
    /// The page closed its media-server connection (the room went back to
    /// direct media and the direct connections are up).
    MediaServerClose,
    /// For the built-in media server: the peers whose camera this page
    /// wants whatever the last-N order (its pinned tile, shared screens;
    /// at most `media_server::MAX_WATCHED`), and how tall it shows each
    /// camera (which simulcast layer it gets; at most
    /// `media_server::MAX_TILE_HEIGHTS`). Replaces the earlier wishes.
    MediaServerWatch {
        peers: Vec<PeerId>,
        #[serde(default)]
        heights: Vec<media_server::TileHeight>,
    },
    /// My microphone, camera, screen or hand changed.
    Media { media: MediaState },
    /// Keep-alive; answered by `pong`.
    Ping,
    /// Leaving on purpose: gone from everyone's grid at once.
    Leave,
    /// Host/co-host: ask a participant to mute their microphone.
    AskToMute { peer: PeerId },
    /// Host/co-host: lower a participant's raised hand (they were called
    /// on).
    LowerHand { peer: PeerId },
    /// Host/co-host: remove a participant (they cannot come straight back).
    Remove { peer: PeerId },
    /// A reaction shown over my tile for a moment, for everyone.
    React { reaction: Reaction },
    /// Host/co-host: end the meeting for everyone.
    EndMeeting,
    /// Send a chat message; `key` is made by the client, unique per sender,
    /// so a resend after a lost confirmation stores nothing new. `to` makes
    /// it private to one peer.
    ChatSend {
        key: String,
        text: String,
        to: Option<PeerId>,
    },
    /// Messages after sequence number `after` (0: from the start), oldest
    /// first, at most `CHAT_PAGE`; answered by `chat_batch`.
    ChatSync { after: i64 },
    /// Messages before sequence number `before`, newest page, for "load
    /// older"; answered by `chat_batch` with `older: true`.
    ChatHistory { before: i64 },
}

/// Why someone left the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    Left,
    /// Their connection was gone for longer than the grace period.
    Lost,
    Removed,
    /// They joined again from another page.
    Replaced,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, or a known type with wrong fields.
    BadMessage,
    UnknownType,
    /// Anything but `join` before `join`, or a second `join`.
    NotJoined,
    /// Names a peer that is not in the room.
    UnknownPeer,
    /// Host actions by someone who is not a host or co-host.
    Forbidden,
    RoomFull,
    RateLimited,
    VersionUnsupported,
    ChatEmpty,
    ChatTooLong,
    ChatBadKey,
    /// A media-server signal in a room whose media is direct, or one the
    /// media server could not take.
    MediaRefused,
    Internal,
}

/// One stored chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Per-room order, assigned when stored.
    pub seq: i64,
    pub sender_id: String,
    pub sender_name: String,
    /// The sender's idempotency key (lets the sender match its copy).
    pub key: String,
    pub text: String,
    pub sent_at_ms: i64,
    /// Set on private messages: the recipient's participant id and name.
    pub to_id: Option<String>,
    pub to_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Answer to `join`. `resumed` is true when the connection took over an
    /// existing presence (the other peers saw nothing).
    Welcome {
        version: u32,
        you: PeerInfo,
        peers: Vec<PeerInfo>,
        resumed: bool,
        ice: IceConfig,
        max_participants: u32,
        /// The newest chat sequence number the viewer may see.
        chat_head: i64,
        /// Whether media goes browser to browser or through the server.
        media_path: MediaPath,
    },
    PeerJoined {
        peer: PeerInfo,
    },
    PeerUpdated {
        peer: PeerInfo,
    },
    PeerLeft {
        peer_id: PeerId,
        reason: LeaveReason,
    },
    Signal {
        from: PeerId,
        signal: Signal,
    },
    /// The room's media moved (an automatic room grew past the switch
    /// point, or stayed small long enough): connect the new way, and close
    /// the old only once the new one shows video.
    MediaPathChanged {
        path: MediaPath,
    },
    /// From the built-in media server: its answer to this page's offer,
    /// or its own offer when the tracks to receive changed.
    MediaServerSignal {
        signal: Signal,
    },
    /// From the built-in media server: who is speaking now (at most
    /// three; those already speaking first, then newcomers loudest first;
    /// empty when nobody is). Read from the audio level each browser
    /// stamps on its microphone's packets, and sent only when the list
    /// changes.
    Speakers {
        peers: Vec<PeerId>,
    },
    /// From the built-in media server: the peers whose camera it does not
    /// forward to this page now (past the last N speakers, and not asked
    /// for with `media_server_watch`): their tiles show their name and a
    /// paused state. Sent when the list changes; empty: every camera comes.
    VideoPaused {
        peers: Vec<PeerId>,
    },
    /// The room's media moved to another media server (the instance that
    /// had it stopped): start the media connection over, with a new
    /// RTCPeerConnection and offer.
    MediaServerMoved,
    /// A host asks you to mute; the client mutes and says who asked.
    MuteRequested {
        by_name: String,
    },
    /// A host lowered your hand (you were called on); the client lowers it
    /// and says who did.
    HandLowered {
        by_name: String,
    },
    /// Someone (you too) reacted: float it over their tile.
    Reacted {
        peer_id: PeerId,
        reaction: Reaction,
    },
    /// You were removed; the connection closes with `close::REMOVED`.
    Removed,
    /// The meeting was ended by a host; closes with `close::ENDED`.
    MeetingEnded,
    /// Hosts only: the waiting list changed; fetch it again.
    KnocksChanged,
    Pong,
    /// The server is going away; connect again (another instance answers).
    Reconnect,
    ChatAck {
        key: String,
        seq: i64,
        sent_at_ms: i64,
    },
    Chat {
        message: ChatMessage,
    },
    ChatBatch {
        messages: Vec<ChatMessage>,
        older: bool,
        more: bool,
    },
    Error {
        code: ErrorCode,
        /// English text for logs and developers; the UI shows its own words.
        message: String,
        /// The chat key or peer the error is about, when there is one.
        about: Option<String>,
    },
}

impl ClientMessage {
    /// The message's `type` on the wire (for counting, without encoding).
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Join { .. } => "join",
            Self::Signal { .. } => "signal",
            Self::MediaServerSignal { .. } => "media_server_signal",
            Self::MediaServerClose => "media_server_close",
            Self::MediaServerWatch { .. } => "media_server_watch",
            Self::Media { .. } => "media",
            Self::Ping => "ping",
            Self::Leave => "leave",
            Self::AskToMute { .. } => "ask_to_mute",
            Self::LowerHand { .. } => "lower_hand",
            Self::Remove { .. } => "remove",
            Self::React { .. } => "react",
            Self::EndMeeting => "end_meeting",
            Self::ChatSend { .. } => "chat_send",
            Self::ChatSync { .. } => "chat_sync",
            Self::ChatHistory { .. } => "chat_history",
        }
    }
}

impl ServerMessage {
    /// The message's `type` on the wire (for counting, without encoding).
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Welcome { .. } => "welcome",
            Self::PeerJoined { .. } => "peer_joined",
            Self::PeerUpdated { .. } => "peer_updated",
            Self::PeerLeft { .. } => "peer_left",
            Self::Signal { .. } => "signal",
            Self::MediaPathChanged { .. } => "media_path_changed",
            Self::MediaServerSignal { .. } => "media_server_signal",
            Self::Speakers { .. } => "speakers",
            Self::VideoPaused { .. } => "video_paused",
            Self::MediaServerMoved => "media_server_moved",
            Self::MuteRequested { .. } => "mute_requested",
            Self::HandLowered { .. } => "hand_lowered",
            Self::Reacted { .. } => "reacted",
            Self::Removed => "removed",
            Self::MeetingEnded => "meeting_ended",
            Self::KnocksChanged => "knocks_changed",
            Self::Pong => "pong",
            Self::Reconnect => "reconnect",
            Self::ChatAck { .. } => "chat_ack",
            Self::Chat { .. } => "chat",
            Self::ChatBatch { .. } => "chat_batch",
            Self::Error { .. } => "error",
        }
    }

    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMessage::Error {
            code,
            message: message.into(),
            about: None,
        }
    }
}

/// Why a text frame could not be read as a `ClientMessage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseProblem {
    Malformed(String),
    UnknownType(String),
}

/// Parses one text frame, telling "not our JSON" from "a type we do not
/// know" so each gets its own error code.
pub fn parse_client_message(text: &str) -> Result<ClientMessage, ParseProblem> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ParseProblem::Malformed(e.to_string()))?;
    let kind = value
        .get("type")
        .and_then(|t| t.as_str())
        .ok_or_else(|| ParseProblem::Malformed("missing \"type\"".to_string()))?
        .to_string();
    serde_json::from_value(value).map_err(|e| {
        // Only the `type` itself is an unknown type; an unknown value
        // inside a known message (a reaction nobody offers) is malformed.
        if e.to_string()
            .starts_with(&format!("unknown variant `{kind}`"))
        {
            ParseProblem::UnknownType(kind)
        } else {
            ParseProblem::Malformed(e.to_string())
        }
    })
}

/// The chat of a meeting that is over, as its participants see it on the
/// meeting page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Transcript {
    /// The meeting is still on (or has not started): no transcript yet.
    NotYet,
    /// The viewer was not in the meeting.
    NotParticipant,
    Ready {
        /// Every message the viewer may see, oldest first.
        messages: Vec<ChatMessage>,
        /// The viewer's participant id (marks their own messages).
        viewer_id: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reactions_are_a_fixed_set() {
        let react = parse_client_message(r#"{"type":"react","reaction":"heart"}"#).unwrap();
        assert_eq!(
            react,
            ClientMessage::React {
                reaction: Reaction::Heart
            }
        );
        assert!(matches!(
            parse_client_message(r#"{"type":"react","reaction":"<img src=x>"}"#),
            Err(ParseProblem::Malformed(_))
        ));
        assert!(matches!(
            parse_client_message(r#"{"type":"wave"}"#),
            Err(ParseProblem::UnknownType(kind)) if kind == "wave"
        ));
        for reaction in Reaction::ALL {
            let json = serde_json::to_string(&reaction).unwrap();
            assert_eq!(json, format!("\"{}\"", reaction.as_str()));
        }
    }

    #[test]
    fn messages_use_snake_case_type_tags() {
        let json = serde_json::to_string(&ClientMessage::AskToMute { peer: "p1".into() }).unwrap();
        assert_eq!(json, r#"{"type":"ask_to_mute","peer":"p1"}"#);
        let json = serde_json::to_string(&ServerMessage::PeerLeft {
            peer_id: "p".into(),
            reason: LeaveReason::Lost,
        })
        .unwrap();
        assert_eq!(
            json,
            r#"{"type":"peer_left","peer_id":"p","reason":"lost"}"#
        );
    }

    #[test]
    fn type_names_are_the_wire_tags() {
        let client = [
            r#"{"type":"join","version":5,"resume":null,"media":{"mic":true,"cam":true,"screen":false,"hand":false}}"#,
            r#"{"type":"signal","to":"p","signal":{"kind":"description","sdp_type":"offer","sdp":"v=0"}}"#,
            r#"{"type":"media_server_signal","signal":{"kind":"description","sdp_type":"offer","sdp":"v=0"}}"#,
            r#"{"type":"media_server_close"}"#,
            r#"{"type":"media_server_watch","peers":["p"]}"#,
            r#"{"type":"media","media":{"mic":true,"cam":true,"screen":false,"hand":false}}"#,
            r#"{"type":"ping"}"#,
            r#"{"type":"leave"}"#,
            r#"{"type":"ask_to_mute","peer":"p"}"#,
            r#"{"type":"remove","peer":"p"}"#,
            r#"{"type":"end_meeting"}"#,
            r#"{"type":"chat_send","key":"k","text":"hi","to":null}"#,
            r#"{"type":"chat_sync","after":0}"#,
            r#"{"type":"chat_history","before":9}"#,
        ];
        for text in client {
            let message = parse_client_message(text).unwrap_or_else(|e| panic!("{text}: {e:?}"));
            let wire: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(message.type_name(), wire["type"], "{text}");
        }
        let server = [
            ServerMessage::PeerLeft {
                peer_id: "p".into(),
                reason: LeaveReason::Left,
            },
            ServerMessage::MediaPathChanged {
                path: MediaPath::Server,
            },
            ServerMessage::MuteRequested {
                by_name: "h".into(),
            },
            ServerMessage::Speakers {
                peers: vec!["p".into()],
            },
            ServerMessage::VideoPaused {
                peers: vec!["p".into()],
            },
            ServerMessage::MediaServerMoved,
            ServerMessage::Removed,
            ServerMessage::MeetingEnded,
            ServerMessage::KnocksChanged,
            ServerMessage::Pong,
            ServerMessage::Reconnect,
            ServerMessage::ChatAck {
                key: "k".into(),
                seq: 1,
                sent_at_ms: 1,
            },
            ServerMessage::ChatBatch {
                messages: vec![],
                older: false,
                more: false,
            },
            ServerMessage::error(ErrorCode::Internal, "x"),
        ];
        for message in server {
            let wire = serde_json::to_value(&message).unwrap();
            assert_eq!(message.type_name(), wire["type"], "{wire}");
        }
    }

    #[test]
    fn signals_round_trip() {
        let message = ClientMessage::Signal {
            to: "b".into(),
            signal: Signal::Candidate {
                candidate: "candidate:1 1 udp 1 127.0.0.1 5000 typ host".into(),
                sdp_mid: Some("0".into()),
                sdp_m_line_index: Some(0),
            },
        };
        let text = serde_json::to_string(&message).unwrap();
        assert_eq!(parse_client_message(&text), Ok(message));
    }

    #[test]
    fn unknown_types_are_told_apart_from_malformed_json() {
        assert_eq!(
            parse_client_message(r#"{"type":"teleport"}"#),
            Err(ParseProblem::UnknownType("teleport".into()))
        );
        assert!(matches!(
            parse_client_message("{not json"),
            Err(ParseProblem::Malformed(_))
        ));
        assert!(matches!(
            parse_client_message(r#"{"type":"signal","to":5}"#),
            Err(ParseProblem::Malformed(_))
        ));
        assert!(matches!(
            parse_client_message(r#"[1,2]"#),
            Err(ParseProblem::Malformed(_))
        ));
    }
}
