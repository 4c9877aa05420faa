//! Meeting types the browser and the server both use.

use serde::{Deserialize, Serialize};

/// A person's standing in a meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    Host,
    CoHost,
    Invitee,
    /// Has the link, nothing more.
    Visitor,
}
