//! Meetings: scheduling, the list of my meetings, settings and co-hosts.
//!
//! A meeting is reached by its code, 130 random bits in the link. A wrong,
//! guessed or cancelled code answers exactly like a missing one.

// A server function's arguments are the form's fields, one by one.
#![allow(clippy::too_many_arguments)]

use crate::error::ApiError;
use leptos::prelude::*;

mod model;
#[cfg(feature = "ssr")]
pub mod ssr;
pub use model::*;

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
/// to its page. The start arrives as UTC milliseconds converted in the
/// browser, or, from a form sent before the page was interactive, as the
/// local date-time plus the viewer's time zone (`starts_local`, `time_zone`).
#[server(endpoint = "schedule_meeting")]
pub async fn schedule_meeting(
    title: String,
    description: Option<String>,
    starts_at_ms: Option<String>,
    starts_local: Option<String>,
    time_zone: Option<String>,
    duration_minutes: Option<String>,
    invitees: Option<String>,
    waiting_room: Option<String>,
    allow_guests: Option<String>,
    max_participants: Option<String>,
    media_mode: Option<String>,
    instant: Option<String>,
) -> Result<String, ApiError> {
    let cx = ssr::MeetingCx::new().await?;
    let form = ssr::MeetingForm::from_fields(
        title,
        description,
        ssr::StartField {
            exact_ms: starts_at_ms,
            local: starts_local,
            zone: time_zone,
        },
        duration_minutes,
        invitees,
        waiting_room,
        allow_guests,
        max_participants,
        media_mode,
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
    starts_local: Option<String>,
    time_zone: Option<String>,
    duration_minutes: Option<String>,
    invitees: Option<String>,
    waiting_room: Option<String>,
    allow_guests: Option<String>,
    max_participants: Option<String>,
    media_mode: Option<String>,
) -> Result<String, ApiError> {
    let cx = ssr::MeetingCx::new().await?;
    let form = ssr::MeetingForm::from_fields(
        title,
        description,
        ssr::StartField {
            exact_ms: starts_at_ms,
            local: starts_local,
            zone: time_zone,
        },
        duration_minutes,
        invitees,
        waiting_room,
        allow_guests,
        max_participants,
        media_mode,
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
