//! Server-only half of meetings: storage, rules and the calendar file.

use super::model::{Meeting, MeetingLists, Role};
use crate::auth::ssr::{internal, now_ms, set_error_status, RequestCx};
use crate::auth::Viewer;
use crate::error::{ApiError, ApiResult, FieldError, FieldProblem};
use crate::state::AppState;
use crate::validate;
use sqlx::AnyPool;

/// A scheduled start may lie this far in the past (a form filled slowly).
const START_SLACK_MS: i64 = 5 * 60 * 1000;

use domain::meetings::store;
pub use domain::meetings::{
    cohost_usernames, find_by_id, find_live_by_code, invited_clause, invitee_labels,
    is_code_shaped, meeting_link, new_code, user_role, MeetingRow, MEETING_SELECT,
};

/// The parsed form of a meeting, before checks.
pub struct MeetingForm {
    pub title: String,
    pub description: String,
    pub starts_at_ms: String,
    pub duration_minutes: String,
    pub invitees: String,
    pub waiting_room: bool,
    pub allow_guests: bool,
    pub max_participants: String,
    pub media_mode: String,
}

/// The start as the form sends it: UTC milliseconds from the browser's
/// conversion, and the local date-time with the zone it was shown in.
pub struct StartField {
    pub exact_ms: Option<String>,
    pub local: Option<String>,
    pub zone: Option<String>,
}

impl StartField {
    /// The start in UTC milliseconds, as text for the checks. The exact
    /// value wins unless the local date-time was changed without it (a form
    /// sent before the page was interactive carries the old exact value, or
    /// none at all).
    fn resolve(self) -> String {
        let exact = self.exact_ms.unwrap_or_default().trim().to_string();
        let local = self.local.unwrap_or_default();
        if local.trim().is_empty() {
            return exact;
        }
        let zone = self.zone.unwrap_or_default();
        if crate::time::zone::known(&zone).is_none() {
            // A zone the server does not know: only the exact value is
            // usable; without one the start reads as missing.
            return exact;
        }
        let unchanged = exact
            .parse::<i64>()
            .ok()
            .and_then(|ms| crate::time::zone::local_input(ms, &zone))
            .is_some_and(|shown| shown == local.trim());
        if unchanged {
            return exact;
        }
        match crate::time::zone::local_input_to_ms(&local, &zone) {
            Some(ms) => ms.to_string(),
            // Not a date-time: refused like any unreadable number.
            None => "invalid".to_string(),
        }
    }
}

impl MeetingForm {
    /// From the form's fields as they arrive: absent text is empty, a
    /// checkbox is on when present.
    #[allow(clippy::too_many_arguments)]
    pub fn from_fields(
        title: String,
        description: Option<String>,
        start: StartField,
        duration_minutes: Option<String>,
        invitees: Option<String>,
        waiting_room: Option<String>,
        allow_guests: Option<String>,
        max_participants: Option<String>,
        media_mode: Option<String>,
    ) -> Self {
        Self {
            title,
            description: description.unwrap_or_default(),
            starts_at_ms: start.resolve(),
            duration_minutes: duration_minutes.unwrap_or_default(),
            invitees: invitees.unwrap_or_default(),
            waiting_room: waiting_room.is_some(),
            allow_guests: allow_guests.is_some(),
            max_participants: max_participants.unwrap_or_default(),
            media_mode: media_mode.unwrap_or_default(),
        }
    }
}

/// A meeting's fields after every check.
use domain::meetings::store::{Invitee, MeetingFields as ValidMeeting};

fn parse_int(field: &str, raw: &str, errors: &mut Vec<FieldError>) -> Option<i64> {
    match raw.trim().parse::<i64>() {
        Ok(v) => Some(v),
        Err(_) if raw.trim().is_empty() => {
            errors.push(FieldError::new(field, FieldProblem::Required));
            None
        }
        Err(_) => {
            errors.push(FieldError::new(field, FieldProblem::OutOfRange));
            None
        }
    }
}

/// Splits an invitee list on commas, semicolons and whitespace.
pub fn split_list(raw: &str) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    raw.split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .filter(|s| seen.insert(s.to_lowercase()))
        .map(str::to_string)
        .collect()
}

async fn resolve_invitees(
    db: &AnyPool,
    raw: &str,
    errors: &mut Vec<FieldError>,
) -> ApiResult<Vec<Invitee>> {
    let entries = split_list(raw);
    if entries.len() > super::model::INVITEES_MAX {
        errors.push(FieldError::new("invitees", FieldProblem::TooLong));
        return Ok(Vec::new());
    }
    let mut invitees = Vec::new();
    let mut unknown = Vec::new();
    for entry in entries {
        if entry.contains('@') {
            match validate::optional_email("invitees", &entry) {
                // Stored as an address only: which account it means is
                // decided when someone has verified it (`invited_clause`).
                Ok(Some(email)) => invitees.push(Invitee {
                    email_key: Some(validate::email_key(&email)),
                    label: email,
                    user_id: None,
                }),
                _ => unknown.push(entry),
            }
        } else {
            match crate::auth::ssr::find_user_by_username(db, &entry)
                .await
                .map_err(internal)?
            {
                // The account only: its address (maybe unproven, maybe
                // someone else's) must not invite whoever proves it later.
                Some(user) => invitees.push(Invitee {
                    label: user.username.clone(),
                    user_id: Some(user.id),
                    email_key: None,
                }),
                None => unknown.push(entry),
            }
        }
    }
    if !unknown.is_empty() {
        errors.push(FieldError {
            field: "invitees".to_string(),
            problem: FieldProblem::UnknownInvitees(unknown),
        });
    }
    Ok(invitees)
}

async fn validate_meeting(
    db: &AnyPool,
    form: MeetingForm,
    instant: bool,
    now: i64,
) -> ApiResult<ValidMeeting> {
    let mut errors = Vec::new();
    let title = form.title.split_whitespace().collect::<Vec<_>>().join(" ");
    if title.is_empty() {
        errors.push(FieldError::new("title", FieldProblem::Required));
    } else if title.chars().count() > super::model::TITLE_MAX {
        errors.push(FieldError::new("title", FieldProblem::TooLong));
    } else if title.chars().any(char::is_control) {
        errors.push(FieldError::new("title", FieldProblem::ControlChars));
    }
    let description = form.description.trim().to_string();
    if description.chars().count() > super::model::DESCRIPTION_MAX {
        errors.push(FieldError::new("description", FieldProblem::TooLong));
    }
    let starts_at = if instant {
        Some(now)
    } else {
        match parse_int("starts_at_ms", &form.starts_at_ms, &mut errors) {
            Some(t) if t < now - START_SLACK_MS => {
                errors.push(FieldError::new("starts_at_ms", FieldProblem::InThePast));
                None
            }
            // Year 9999 and later are not dates anyone means.
            Some(t) if t > 253_402_300_799_000 => {
                errors.push(FieldError::new("starts_at_ms", FieldProblem::OutOfRange));
                None
            }
            other => other,
        }
    };
    let duration_minutes = if instant && form.duration_minutes.trim().is_empty() {
        Some(60)
    } else {
        match parse_int("duration_minutes", &form.duration_minutes, &mut errors) {
            Some(d) if !(1..=super::model::DURATION_MAX_MINUTES).contains(&d) => {
                errors.push(FieldError::new(
                    "duration_minutes",
                    FieldProblem::OutOfRange,
                ));
                None
            }
            other => other,
        }
    };
    let max_participants = if form.max_participants.trim().is_empty() {
        Some(super::model::PARTICIPANTS_DEFAULT)
    } else {
        match parse_int("max_participants", &form.max_participants, &mut errors) {
            Some(n)
                if !(super::model::PARTICIPANTS_MIN..=super::model::PARTICIPANTS_MAX)
                    .contains(&n) =>
            {
                errors.push(FieldError::new(
                    "max_participants",
                    FieldProblem::OutOfRange,
                ));
                None
            }
            other => other,
        }
    };
    // Absent (an older page, a plain API call): automatic.
    let media_mode = match form.media_mode.trim() {
        "" => Some(super::model::MediaMode::default()),
        raw => {
            let mode = super::model::MediaMode::parse(raw);
            if mode.is_none() {
                errors.push(FieldError::new("media_mode", FieldProblem::OutOfRange));
            }
            mode
        }
    };
    let invitees = resolve_invitees(db, &form.invitees, &mut errors).await?;
    match (starts_at, duration_minutes, max_participants, media_mode) {
        (Some(starts_at), Some(duration_minutes), Some(max_participants), Some(media_mode))
            if errors.is_empty() =>
        {
            Ok(ValidMeeting {
                title,
                description,
                starts_at,
                duration_minutes,
                waiting_room: form.waiting_room,
                allow_guests: form.allow_guests,
                max_participants,
                media_mode,
                invitees,
            })
        }
        _ => Err(ApiError::Invalid(errors)),
    }
}

/// Mails each newly invited address the link and the calendar file, in the
/// background. The stored invitation is the truth: a lost mail loses
/// nothing but the reminder (and the host can share the link).
async fn mail_invitations(state: &AppState, code: &str, addresses: Vec<String>) {
    if addresses.is_empty() || !state.mailer.is_configured() {
        return;
    }
    let row = match find_live_by_code(&state.db, code).await {
        Ok(Some(row)) => row,
        Ok(None) => return,
        Err(err) => {
            tracing::warn!(error = %err, "invitation mails not sent: meeting look-up failed");
            return;
        }
    };
    let link = meeting_link(&state.public_url, &row.code);
    let starts = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(row.starts_at)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default();
    let calendar = crate::calendar::ics(&row, &state.public_url);
    for address in addresses {
        let mail = crate::mail::invitation(
            &address,
            crate::mail::InvitationDetails {
                title: &row.title,
                host_name: &row.host_name,
                starts_utc: &starts,
                duration_minutes: row.duration_minutes,
                link: &link,
                ics: calendar.clone(),
            },
        );
        crate::mail::send_later(&state.mailer, mail);
    }
}

/// One meeting request: the caller and the app state.
pub struct MeetingCx {
    auth: RequestCx,
}

impl MeetingCx {
    pub async fn new() -> ApiResult<Self> {
        Ok(Self {
            auth: RequestCx::new().await?,
        })
    }

    /// Outside a server function (the signaling endpoint).
    pub fn with_auth(auth: RequestCx) -> Self {
        Self { auth }
    }

    pub fn auth(&self) -> &RequestCx {
        &self.auth
    }

    pub fn state(&self) -> &AppState {
        self.auth.state()
    }

    /// For reads used by pages as well as calls: sets the status on errors.
    pub fn finish_query<T>(&self, result: ApiResult<T>) -> ApiResult<T> {
        if let Err(err) = &result {
            set_error_status(err);
        }
        result
    }

    pub fn finish(&self, result: ApiResult<()>) -> ApiResult<()> {
        self.auth.finish(result, None)
    }

    /// On success goes to `path`.
    pub fn finish_to(&self, result: ApiResult<()>, path: &str) -> ApiResult<()> {
        self.auth.finish(result, Some(path))
    }

    /// On success goes to the meeting's page.
    pub fn finish_redirect(&self, result: ApiResult<String>) -> ApiResult<String> {
        match &result {
            Ok(code) => leptos_axum::redirect(&format!("/m/{code}")),
            Err(err) => set_error_status(err),
        }
        result
    }

    async fn user(&self) -> ApiResult<crate::auth::UserSummary> {
        Ok(crate::auth::ssr::summary(
            &self.auth.signed_in_user().await?,
        ))
    }

    pub async fn role_of(&self, row: &MeetingRow, viewer: Option<&Viewer>) -> ApiResult<Role> {
        let cohosts = cohost_usernames(&self.state().db, &row.id)
            .await
            .map_err(internal)?;
        self.role_among(row, viewer, &cohosts).await
    }

    /// The viewer's role, given the meeting's co-hosts (id, username).
    async fn role_among(
        &self,
        row: &MeetingRow,
        viewer: Option<&Viewer>,
        cohosts: &[(String, String)],
    ) -> ApiResult<Role> {
        let Some(Viewer::User(user)) = viewer else {
            return Ok(Role::Visitor);
        };
        user_role(&self.state().db, row, &user.id, cohosts)
            .await
            .map_err(internal)
    }

    /// The meeting as `viewer` sees it.
    ///
    /// Invitees' addresses are the host's business: hosts and co-hosts see
    /// the whole list, invitees the usernames (people they will meet; usernames
    /// are public handles), and anyone else with the link, signed in or not,
    /// nothing.
    async fn to_meeting(&self, row: MeetingRow, viewer: Option<&Viewer>) -> ApiResult<Meeting> {
        let db = &self.state().db;
        let cohosts = cohost_usernames(db, &row.id).await.map_err(internal)?;
        let role = self.role_among(&row, viewer, &cohosts).await?;
        let invitees = match role {
            Role::Host | Role::CoHost => invitee_labels(db, &row.id).await.map_err(internal)?,
            Role::Invitee => invitee_labels(db, &row.id)
                .await
                .map_err(internal)?
                .into_iter()
                .filter(|label| !label.contains('@'))
                .collect(),
            Role::Visitor => Vec::new(),
        };
        let media_mode = row.media_mode();
        Ok(Meeting {
            code: row.code.clone(),
            title: row.title,
            description: row.description,
            starts_at_ms: row.starts_at,
            duration_minutes: row.duration_minutes,
            host_name: row.host_name,
            waiting_room: row.waiting_room != 0,
            allow_guests: row.allow_guests != 0,
            max_participants: row.max_participants,
            media_mode,
            invitees,
            cohosts: cohosts.into_iter().map(|(_, name)| name).collect(),
            cancelled: row.cancelled_at.is_some(),
            role,
            link: meeting_link(&self.state().public_url, &row.code),
        })
    }

    /// The live meeting behind a code, counting misses per client so codes
    /// cannot be guessed at speed. Every kind of miss gives `NotFound`.
    pub async fn live_meeting(&self, code: &str) -> ApiResult<MeetingRow> {
        let limiter = &self.state().meeting_lookups;
        let client = self.auth.client();
        if let Err(retry_after) = limiter.check(client).await {
            return Err(ApiError::TooManyAttempts {
                retry_after_secs: retry_after.as_secs().max(1),
            });
        }
        match find_live_by_code(&self.state().db, code)
            .await
            .map_err(internal)?
        {
            Some(row) => Ok(row),
            None => {
                limiter.record_failure(client).await;
                Err(ApiError::NotFound)
            }
        }
    }

    pub async fn get(&self, code: &str) -> ApiResult<Meeting> {
        let row = self.live_meeting(code).await?;
        let viewer = self.auth.viewer().await?;
        self.to_meeting(row, viewer.as_ref()).await
    }

    pub async fn list(&self) -> ApiResult<MeetingLists> {
        let user = self.user().await?;
        let db = &self.state().db;
        let rows = store::list_for_user(db, &user.id).await.map_err(internal)?;
        let now = now_ms();
        let viewer = Some(Viewer::User(user));
        let mut lists = MeetingLists {
            upcoming: Vec::new(),
            past: Vec::new(),
            now_ms: now,
        };
        for row in rows {
            let meeting = self.to_meeting(row, viewer.as_ref()).await?;
            if meeting.ends_at_ms() > now {
                lists.upcoming.push(meeting);
            } else {
                lists.past.push(meeting);
            }
        }
        lists.past.reverse();
        Ok(lists)
    }

    pub async fn schedule(&self, form: MeetingForm, instant: bool) -> ApiResult<String> {
        let user = self.user().await?;
        let now = now_ms();
        let valid = validate_meeting(&self.state().db, form, instant, now).await?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let code = new_code();
        let invited = store::insert(&self.state().db, &id, &code, &user.id, &valid, now)
            .await
            .map_err(internal)?;
        tracing::info!(meeting = %id, host = %user.id, "meeting scheduled");
        mail_invitations(self.state(), &code, invited).await;
        Ok(code)
    }

    /// The meeting, if the caller may change it (host or co-host); others,
    /// signed in or not, get the same answer as for a missing meeting only
    /// when they could not see it at all.
    async fn editable(&self, code: &str) -> ApiResult<MeetingRow> {
        let user = self.user().await?;
        let row = self.live_meeting(code).await?;
        let role = self.role_of(&row, Some(&Viewer::User(user))).await?;
        match role {
            Role::Host | Role::CoHost => Ok(row),
            _ => Err(ApiError::Forbidden),
        }
    }

    pub async fn update(&self, code: &str, form: MeetingForm) -> ApiResult<String> {
        let row = self.editable(code).await?;
        let now = now_ms();
        // An already running meeting may keep its start time.
        let keeps_start = form.starts_at_ms.trim() == row.starts_at.to_string();
        let form = if keeps_start {
            MeetingForm {
                starts_at_ms: now.max(row.starts_at).to_string(),
                ..form
            }
        } else {
            form
        };
        let mut valid = validate_meeting(&self.state().db, form, false, now).await?;
        if keeps_start {
            valid.starts_at = row.starts_at;
        }
        let invited = store::update(&self.state().db, &row.id, &valid, now)
            .await
            .map_err(internal)?;
        // After the commit, so that an entry written while this ran is
        // either seen here or sees the new revision itself (`enter`).
        let db = &self.state().db;
        let revoked = domain::door::revoke_outdated_admissions(db, &row.id)
            .await
            .map_err(internal)?;
        // Connections in the call re-read their rights (a revoked
        // admission closes; the room size may have changed too).
        let bus = self.state().bus.as_ref();
        domain::rooms::bus::access_changed(bus, &row.id, None).await;
        if revoked > 0 {
            domain::rooms::bus::knocks_changed(bus, &row.id).await;
        }
        mail_invitations(self.state(), &row.code, invited).await;
        Ok(row.code)
    }

    pub async fn cancel(&self, code: &str) -> ApiResult<()> {
        let row = self.editable(code).await?;
        let now = now_ms();
        store::cancel(&self.state().db, &row.id, now)
            .await
            .map_err(internal)?;
        tracing::info!(meeting = %row.id, "meeting cancelled");
        let data = serde_json::json!({
            "meeting": domain::webhooks::meeting_data(&row),
            "reason": "cancelled",
        });
        if let Err(err) = domain::webhooks::enqueue(
            &self.state().db,
            &row.host_id,
            domain::webhooks::Event::MeetingEnded,
            data,
            now,
        )
        .await
        {
            tracing::error!(error = %err, "could not queue the cancellation's webhooks");
        }
        // A cancelled meeting is over for everyone in its call too: they
        // are told and closed as when a host ends it.
        if let Err(err) = self
            .state()
            .bus
            .publish(&row.id, domain::rooms::bus::RoomEvent::Ended)
            .await
        {
            // Stored all the same: every reconnect and re-check is refused.
            tracing::warn!(error = %err, "could not tell the call about a cancellation");
        }
        Ok(())
    }

    pub async fn set_cohosts(&self, code: &str, raw: &str) -> ApiResult<()> {
        let user = self.user().await?;
        let row = self.live_meeting(code).await?;
        if row.host_id != user.id {
            return Err(ApiError::Forbidden);
        }
        let db = &self.state().db;
        let mut ids = Vec::new();
        let mut unknown = Vec::new();
        for name in split_list(raw) {
            match crate::auth::ssr::find_user_by_username(db, &name)
                .await
                .map_err(internal)?
            {
                Some(found) if found.id != user.id => ids.push(found.id),
                Some(_) => {}
                None => unknown.push(name),
            }
        }
        if !unknown.is_empty() {
            return Err(ApiError::Invalid(vec![FieldError {
                field: "cohosts".to_string(),
                problem: FieldProblem::UnknownInvitees(unknown),
            }]));
        }
        ids.sort();
        ids.dedup();
        let change = store::replace_cohosts(db, &row.id, &ids, &user.id, now_ms())
            .await
            .map_err(internal)?;
        // Everyone whose role changed re-reads it: a demoted co-host loses
        // the host controls in the call, a new one gains them.
        let bus = self.state().bus.as_ref();
        for id in &change.changed {
            domain::rooms::bus::access_changed(bus, &row.id, Some(id)).await;
        }
        if change.admitted_waiting {
            domain::rooms::bus::knocks_changed(bus, &row.id).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::StartField;

    fn start(exact: &str, local: &str, zone: &str) -> String {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        StartField {
            exact_ms: some(exact),
            local: some(local),
            zone: some(zone),
        }
        .resolve()
    }

    // 2030-01-15 10:00 in Seoul is 01:00 UTC.
    const SEOUL_TEN: &str = "1894669200000";

    #[test]
    fn the_local_time_is_read_in_the_zone_when_no_exact_value_came() {
        assert_eq!(start("", "2030-01-15T10:00", "Asia/Seoul"), SEOUL_TEN);
        assert_eq!(start("", "2030-01-15T01:00", "UTC"), SEOUL_TEN);
    }

    #[test]
    fn the_exact_value_wins_when_it_matches_what_was_shown() {
        // An instant meeting's start is not on a whole minute: editing it
        // before the page is interactive must not move it.
        let exact = "1894669212345";
        assert_eq!(start(exact, "2030-01-15T10:00", "Asia/Seoul"), exact);
        // The browser converted and the zone is one the server lacks.
        assert_eq!(
            start(SEOUL_TEN, "2030-01-15T10:00", "Nowhere/Else"),
            SEOUL_TEN
        );
        // No local value at all.
        assert_eq!(start(SEOUL_TEN, "", ""), SEOUL_TEN);
    }

    #[test]
    fn a_changed_local_time_beats_a_stale_exact_value() {
        assert_eq!(
            start("1894669200000", "2030-01-15T11:00", "Asia/Seoul"),
            "1894672800000"
        );
    }

    #[test]
    fn nonsense_is_refused_not_guessed() {
        assert_eq!(start("", "soon", "UTC"), "invalid");
        assert_eq!(start("", "2030-01-15T10:00", "Nowhere/Else"), "");
    }
}
