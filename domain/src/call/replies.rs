//! The session's own messages to the browser and to the room.

use protocol::{ErrorCode, ParseProblem, ServerMessage};

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
