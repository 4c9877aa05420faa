//! Meeting types the browser and the server both use.

use serde::{Deserialize, Serialize};

/// The join button turns on this long before the start.
pub const JOIN_EARLY_MS: i64 = 10 * 60 * 1000;

/// Someone's stored state at a meeting's door.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Admission {
    Admitted,
    Waiting,
    Denied,
    Removed,
}

impl Admission {
    pub fn as_str(self) -> &'static str {
        match self {
            Admission::Admitted => "admitted",
            Admission::Waiting => "waiting",
            Admission::Denied => "denied",
            Admission::Removed => "removed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "admitted" => Admission::Admitted,
            "waiting" => Admission::Waiting,
            "denied" => Admission::Denied,
            "removed" => Admission::Removed,
            _ => return None,
        })
    }
}

/// A person's standing in a meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    Host,
    CoHost,
    Invitee,
    /// Has the link, nothing more.
    Visitor,
}
