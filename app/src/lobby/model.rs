//! The waiting-room types the pages and the server functions share (the
//! server half, `ssr`, reads and returns them).

use serde::{Deserialize, Serialize};

/// Someone's stored state at the door (shared with the server's rules).
pub use crate::protocol::meetings::Admission;

/// Someone waiting at the door, as hosts see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Knock {
    pub participant_id: String,
    pub display_name: String,
    pub is_guest: bool,
    pub knocked_at_ms: i64,
}

/// How many knocks hosts get at once; the rest wait their turn.
pub const KNOCK_PAGE: usize = 50;

/// The waiting list as hosts see it: the oldest `KNOCK_PAGE` knocks, and
/// how many people wait in all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnockPage {
    pub knocks: Vec<Knock>,
    pub total: u64,
}

/// Where the viewer stands with a meeting's door.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoorStatus {
    /// None until the viewer has asked to enter.
    pub admission: Option<Admission>,
    /// Whether the viewer may let others in.
    pub is_moderator: bool,
}
