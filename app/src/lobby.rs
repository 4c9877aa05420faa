//! The way into a meeting: the waiting room. Admission is decided and
//! remembered on the server per meeting and participant (a user, or the
//! guest identity of one session). Hosts and co-hosts go straight in, and
//! so do invitees; everyone else, and every guest, knocks when the waiting
//! room is on. Nobody gets in by arriving before the host: a knock waits for
//! a host's decision.
//!
//! Rights can change while someone is in: a settings change takes back
//! admissions that only a rule gave (guests when guests go off; people let
//! in by invitation or an open door when they would now knock), co-hosts
//! come and go, a host removes someone, the meeting ends or is cancelled.
//! Each such change is announced on the room's bus (`AccessChanged`,
//! `Removed`, `Ended`), and the call re-reads its caller's standing with
//! `ssr::current_access`, by the same rules as the connection's upgrade.
//! A re-entry never undoes a host's decision.

use crate::error::ApiError;
use leptos::prelude::*;

mod model;
#[cfg(feature = "ssr")]
pub mod ssr;
pub use model::*;

#[server(endpoint = "door_state")]
pub async fn door_state(code: String) -> Result<DoorStatus, ApiError> {
    let cx = ssr::LobbyCx::new(&code).await?;
    let result = cx.door_state().await;
    cx.finish(result)
}

/// Asks to enter: admitted at once, or waiting for a host. A visitor
/// without an identity gives a display name and becomes a guest.
#[server(endpoint = "enter_meeting")]
pub async fn enter_meeting(
    code: String,
    display_name: Option<String>,
) -> Result<Admission, ApiError> {
    let cx = ssr::LobbyCx::new(&code).await?;
    let result = cx.enter(display_name.as_deref()).await;
    cx.finish(result)
}

/// The people waiting, oldest first (one page, with the total). Hosts and
/// co-hosts only.
#[server(endpoint = "list_knocks")]
pub async fn list_knocks(code: String) -> Result<KnockPage, ApiError> {
    let cx = ssr::LobbyCx::new(&code).await?;
    let result = cx.knocks().await;
    cx.finish(result)
}

/// Admits (`decision` = "admit") or denies ("deny") one waiting person, or
/// everyone waiting when `participant_id` is "*". Hosts and co-hosts only.
#[server(endpoint = "decide_knock")]
pub async fn decide_knock(
    code: String,
    participant_id: String,
    decision: String,
) -> Result<u64, ApiError> {
    let cx = ssr::LobbyCx::new(&code).await?;
    let result = cx.decide(&participant_id, &decision).await;
    cx.finish(result)
}

/// Removes someone from the meeting; they cannot come straight back.
#[server(endpoint = "remove_participant")]
pub async fn remove_participant(code: String, participant_id: String) -> Result<(), ApiError> {
    let cx = ssr::LobbyCx::new(&code).await?;
    let result = cx.remove(&participant_id).await;
    cx.finish(result)
}
