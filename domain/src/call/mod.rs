//! One participant's call connection, as a state machine without I/O.
//!
//! `session::CallSession` takes inputs (a frame from the browser, a room
//! event, a timer, the answer to something it asked) with the current time,
//! and returns effects (frames to send, events to publish, a close, and
//! questions for the stores). The server's signaling pump owns the socket,
//! the timers and the stores and does what the effects say; so every rule
//! of a call (join, resume, replace, a full room, removal, end, host-only
//! refusals, rate limits) is tested here with no socket and no sleeping.
//!
//! - `io`: the inputs and effects.
//! - `session`: the state machine (`session/entering`: resume or join, then
//!   the welcome).
//! - `rules`: pure decisions it applies (what a room event means, limits).
//! - `verdict`: what a rights check means for the connection.
//! - `gate`: the size and rate limits of frames.
//! - `replies`: the session's own messages.

pub mod gate;
mod io;
mod replies;
pub mod rules;
mod session;
#[cfg(test)]
mod tests;
mod verdict;

pub use io::{
    Answer, Ask, Change, ChatRequest, Effect, Frame, HostRequest, Input, Now, Purpose,
    RemovalAnswer, Rights, Timer,
};
pub use session::{CallSession, Tally};

use crate::meetings::MeetingRow;
use protocol::{ParticipantId, PeerRole};

/// Who is on the connection, settled at the upgrade and re-read with the
/// rights.
#[derive(Debug, Clone)]
pub struct Caller {
    pub meeting: MeetingRow,
    pub participant_id: ParticipantId,
    pub display_name: String,
    pub role: PeerRole,
    /// TURN credentials only while the meeting is in session (read with
    /// the rights, so at `join` it is fresh).
    pub may_use_turn: bool,
}
