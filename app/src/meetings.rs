//! Meetings: scheduling, the list of my meetings, settings and co-hosts.
//!
//! A meeting is reached by its code, 130 random bits in the link. A wrong,
//! guessed or cancelled code answers exactly like a missing one.

// A server function's arguments are the form's fields, one by one.
#![allow(clippy::too_many_arguments)]

use crate::error::ApiError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
pub mod ssr;

pub const TITLE_MAX: usize = 120;
pub const DESCRIPTION_MAX: usize = 2000;
pub const DURATION_MAX_MINUTES: i64 = 12 * 60;
pub const PARTICIPANTS_MIN: i64 = 2;
pub const PARTICIPANTS_MAX: i64 = 500;
pub const PARTICIPANTS_DEFAULT: i64 = 50;
pub const INVITEES_MAX: usize = 200;
/// The join button turns on this long before the start.
pub const JOIN_EARLY_MS: i64 = 10 * 60 * 1000;

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

/// Meetings I host, co-host or am invited to.
#[server(endpoint = "list_meetings")]
pub async fn list_meetings() -> Result<MeetingLists, ApiError> {
    let cx = ssr::MeetingCx::new().await?;
    let result = cx.list().await;
    cx.finish_query(result)
}

/// One meeting by its link code.
#[server(endpoint = "get_meeting")]
pub async fn get_meeting(code: String) -> Result<Meeting, ApiError> {
    let cx = ssr::MeetingCx::new().await?;
    let result = cx.get(&code).await;
    cx.finish_query(result)
}

/// Schedules a meeting (or, with `instant`, one that starts now) and goes
/// to its page. Times arrive as UTC milliseconds, converted in the browser
/// from the viewer's local time.
#[server(endpoint = "schedule_meeting")]
pub async fn schedule_meeting(
    title: String,
    description: Option<String>,
    starts_at_ms: Option<String>,
    duration_minutes: Option<String>,
    invitees: Option<String>,
    waiting_room: Option<String>,
    allow_guests: Option<String>,
    max_participants: Option<String>,
    instant: Option<String>,
) -> Result<String, ApiError> {
    let cx = ssr::MeetingCx::new().await?;
    let form = ssr::MeetingForm::from_fields(
        title,
        description,
        starts_at_ms,
        duration_minutes,
        invitees,
        waiting_room,
        allow_guests,
        max_participants,
    );
    let result = cx.schedule(form, instant.is_some()).await;
    cx.finish_redirect(result)
}

#[server(endpoint = "update_meeting")]
pub async fn update_meeting(
    code: String,
    title: String,
    description: Option<String>,
    starts_at_ms: Option<String>,
    duration_minutes: Option<String>,
    invitees: Option<String>,
    waiting_room: Option<String>,
    allow_guests: Option<String>,
    max_participants: Option<String>,
) -> Result<String, ApiError> {
    let cx = ssr::MeetingCx::new().await?;
    let form = ssr::MeetingForm::from_fields(
        title,
        description,
        starts_at_ms,
        duration_minutes,
        invitees,
        waiting_room,
        allow_guests,
        max_participants,
    );
    let result = cx.update(&code, form).await;
    cx.finish_redirect(result)
}

#[server(endpoint = "cancel_meeting")]
pub async fn cancel_meeting(code: String) -> Result<(), ApiError> {
    let cx = ssr::MeetingCx::new().await?;
    let result = cx.cancel(&code).await;
    cx.finish_to(result, "/meetings")
}

/// Replaces the co-hosts (usernames, separated by commas or spaces). Host
/// only.
#[server(endpoint = "set_cohosts")]
pub async fn set_cohosts(code: String, cohosts: String) -> Result<(), ApiError> {
    let cx = ssr::MeetingCx::new().await?;
    let result = cx.set_cohosts(&code, &cohosts).await;
    cx.finish(result)
}
