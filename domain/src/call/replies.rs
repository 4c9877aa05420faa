//! The session's own messages to the browser and to the room.

use crate::rooms::bus::RoomEvent;
use protocol::{ErrorCode, LeaveReason, ParseProblem, PeerId, PeerInfo, ServerMessage};

/// Tells everyone but `peer_id` that it left.
pub(super) fn left(peer_id: &str, reason: LeaveReason) -> RoomEvent {
    RoomEvent::Broadcast {
        skip: Some(peer_id.into()),
        message: ServerMessage::PeerLeft {
            peer_id: peer_id.into(),
            reason,
        },
    }
}

pub(super) fn updated(peer: &PeerInfo, skip: Option<&str>) -> RoomEvent {
    RoomEvent::Broadcast {
        skip: skip.map(PeerId::from),
        message: ServerMessage::PeerUpdated { peer: peer.clone() },
    }
}

pub(super) fn try_again() -> ServerMessage {
    ServerMessage::error(ErrorCode::Internal, "try again")
}

pub(super) fn bad_message(text: &str) -> ServerMessage {
    ServerMessage::error(ErrorCode::BadMessage, text)
}

pub(super) fn forbidden() -> ServerMessage {
    ServerMessage::error(ErrorCode::Forbidden, "only hosts and co-hosts may do that")
}

pub(super) fn unknown_peer(peer_id: &str) -> ServerMessage {
    ServerMessage::Error {
        code: ErrorCode::UnknownPeer,
        message: "no such peer in this room".to_string(),
        about: Some(peer_id.chars().take(64).collect()),
    }
}

pub(super) fn parse_error(problem: ParseProblem) -> ServerMessage {
    match problem {
        ParseProblem::Malformed(why) => ServerMessage::error(
            ErrorCode::BadMessage,
            format!(
                "malformed message: {}",
                why.chars().take(200).collect::<String>()
            ),
        ),
        ParseProblem::UnknownType(kind) => ServerMessage::error(
            ErrorCode::UnknownType,
            format!(
                "unknown message type {:?}",
                kind.chars().take(64).collect::<String>()
            ),
        ),
    }
}
