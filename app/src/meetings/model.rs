//! The meeting types the pages and the server functions share (the
//! server half, `ssr`, reads and returns them).

use serde::{Deserialize, Serialize};

pub const TITLE_MAX: usize = 120;
pub const DESCRIPTION_MAX: usize = 2000;
pub const DURATION_MAX_MINUTES: i64 = 12 * 60;
pub const PARTICIPANTS_MIN: i64 = 2;
pub const PARTICIPANTS_MAX: i64 = 500;
pub const PARTICIPANTS_DEFAULT: i64 = 50;
pub const INVITEES_MAX: usize = 200;
/// The join button turns on this long before the start.
pub use crate::protocol::meetings::JOIN_EARLY_MS;

/// How a meeting's media travels.
pub use crate::protocol::meetings::MediaMode;
/// A person's standing in a meeting (shared with the server's rules).
pub use crate::protocol::meetings::Role;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meeting {
    pub code: String,
    pub title: String,
    pub description: String,
    pub starts_at_ms: i64,
    pub duration_minutes: i64,
    pub host_name: String,
    pub waiting_room: bool,
    pub allow_guests: bool,
    pub max_participants: i64,
    pub media_mode: MediaMode,
    pub invitees: Vec<String>,
    /// Co-hosts' usernames.
    pub cohosts: Vec<String>,
    pub cancelled: bool,
    pub role: Role,
    /// The full link to share.
    pub link: String,
}

impl Meeting {
    pub fn ends_at_ms(&self) -> i64 {
        self.starts_at_ms + self.duration_minutes * 60_000
    }

    /// Whether the join button is on at `now_ms`.
    pub fn joinable_at(&self, now_ms: i64) -> bool {
        !self.cancelled && now_ms >= self.starts_at_ms - JOIN_EARLY_MS && now_ms < self.ends_at_ms()
    }

    pub fn can_edit(&self) -> bool {
        matches!(self.role, Role::Host | Role::CoHost)
    }

    pub fn path(&self) -> String {
        format!("/m/{}", self.code)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingLists {
    pub upcoming: Vec<Meeting>,
    pub past: Vec<Meeting>,
    pub now_ms: i64,
}
