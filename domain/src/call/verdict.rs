//! What a check of someone's rights decides for their connection.

use super::io::Rights;
use super::Caller;
use protocol::{close, LeaveReason, ServerMessage};

/// How a connection that may no longer stay is closed.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Leave {
    /// Sent before the close, for pages that show a reason from it.
    pub message: Option<ServerMessage>,
    pub code: u16,
    pub reason: &'static str,
    /// How the others see this person go.
    pub seen_as: LeaveReason,
}

impl Leave {
    pub fn removed() -> Self {
        Self {
            message: Some(ServerMessage::Removed),
            code: close::REMOVED,
            reason: "removed by a host",
            seen_as: LeaveReason::Removed,
        }
    }

    pub fn ended() -> Self {
        Self {
            message: Some(ServerMessage::MeetingEnded),
            code: close::ENDED,
            reason: "meeting ended",
            seen_as: LeaveReason::Left,
        }
    }

    fn without_message(code: u16, reason: &'static str, seen_as: LeaveReason) -> Self {
        Self {
            message: None,
            code,
            reason,
            seen_as,
        }
    }
}

/// What a rights check decided.
#[derive(Debug)]
pub(super) enum Verdict {
    /// Still allowed; the current rights (the role may have changed).
    Stay(Caller),
    /// No longer allowed: the connection closes, telling the page why.
    Leave(Leave),
    /// The check failed: carry on and ask again at the next check, rather
    /// than drop a whole call over a hiccup.
    Unknown,
}

pub(super) fn verdict(rights: Rights, current: &Caller) -> Verdict {
    match rights {
        Rights::Admitted(caller) if caller.participant_id == current.participant_id => {
            Verdict::Stay(*caller)
        }
        // The session now names someone else: the person on this
        // connection is no longer signed in.
        Rights::Admitted(_) | Rights::SignedOut => Verdict::Leave(Leave::without_message(
            close::SIGNED_OUT,
            "signed out",
            LeaveReason::Left,
        )),
        Rights::Cancelled => Verdict::Leave(Leave::without_message(
            close::CANCELLED,
            "meeting cancelled",
            LeaveReason::Left,
        )),
        Rights::Ended => Verdict::Leave(Leave::ended()),
        Rights::NotAdmitted => Verdict::Leave(Leave::without_message(
            close::NOT_ADMITTED,
            "not admitted",
            LeaveReason::Removed,
        )),
        Rights::Unknown => Verdict::Unknown,
    }
}
