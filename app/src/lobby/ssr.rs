//! Server half of the waiting room.

use super::{Admission, DoorStatus, Knock, KnockPage, KNOCK_PAGE};
use crate::auth::ssr::{internal, now_ms, set_error_status, RequestCx};
use crate::auth::Viewer;
use crate::error::{ApiError, ApiResult, FieldError, FieldProblem, Limit};
use crate::meetings::ssr::{MeetingCx, MeetingRow};
use crate::meetings::Role;

/// One request about one meeting's door.
pub struct LobbyCx {
    meetings: MeetingCx,
    meeting: MeetingRow,
}

impl LobbyCx {
    /// Every miss (wrong, guessed, cancelled code) is `NotFound`, as for the
    /// meeting page.
    pub async fn new(code: &str) -> ApiResult<Self> {
        let meetings = MeetingCx::new().await?;
        let meeting = meetings
            .live_meeting(code)
            .await
            .inspect_err(set_error_status)?;
        Ok(Self { meetings, meeting })
    }

    /// Outside a server function (the signaling endpoint).
    pub async fn for_request(auth: RequestCx, code: &str) -> ApiResult<Self> {
        let meetings = MeetingCx::with_auth(auth);
        let meeting = meetings.live_meeting(code).await?;
        Ok(Self { meetings, meeting })
    }

    pub fn meeting(&self) -> &MeetingRow {
        &self.meeting
    }

    /// Who may open the call's connection: an admitted viewer of a meeting
    /// that has not been ended, with their role.
    pub async fn caller_in_call(&self) -> ApiResult<(Viewer, Role)> {
        let viewer = self.admitted_viewer().await?;
        let role = self.role(Some(&viewer)).await?;
        if self.meeting.ended_at.is_some() && !matches!(role, Role::Host | Role::CoHost) {
            return Err(ApiError::Ended);
        }
        Ok((viewer, role))
    }

    pub fn finish<T>(&self, result: ApiResult<T>) -> ApiResult<T> {
        self.meetings.finish_query(result)
    }

    fn auth(&self) -> &RequestCx {
        self.meetings.auth()
    }

    async fn role(&self, viewer: Option<&Viewer>) -> ApiResult<Role> {
        self.meetings.role_of(&self.meeting, viewer).await
    }

    async fn stored(&self, participant_id: &str) -> ApiResult<Option<Admission>> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT state FROM meeting_admissions WHERE meeting_id = $1 AND participant_id = $2",
        )
        .bind(&self.meeting.id)
        .bind(participant_id)
        .fetch_optional(&self.meetings.state().db)
        .await
        .map_err(internal)?;
        Ok(row.and_then(|(s,)| Admission::parse(&s)))
    }

    /// Records a state, keeping the first knock time.
    async fn store(&self, viewer: &Viewer, admission: Admission) -> ApiResult<()> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO meeting_admissions (meeting_id, participant_id, display_name, is_guest, state, knocked_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (meeting_id, participant_id) DO UPDATE SET state = excluded.state, \
             display_name = excluded.display_name",
        )
        .bind(&self.meeting.id)
        .bind(participant_id(viewer))
        .bind(viewer.display_name())
        .bind(i64::from(viewer.is_guest()))
        .bind(admission.as_str())
        .bind(now)
        .execute(&self.meetings.state().db)
        .await
        .map_err(internal)?;
        Ok(())
    }

    pub async fn door_state(&self) -> ApiResult<DoorStatus> {
        let viewer = self.auth().viewer().await?;
        let role = self.role(viewer.as_ref()).await?;
        let admission = match &viewer {
            Some(viewer) => self.stored(&participant_id(viewer)).await?,
            None => None,
        };
        Ok(DoorStatus {
            admission,
            is_moderator: matches!(role, Role::Host | Role::CoHost),
        })
    }

    pub async fn enter(&self, display_name: Option<&str>) -> ApiResult<Admission> {
        let meeting = &self.meeting;
        let now = now_ms();
        let opens = meeting.starts_at - crate::meetings::JOIN_EARLY_MS;
        let ends = meeting.starts_at + meeting.duration_minutes * 60_000;
        let mut viewer = self.auth().viewer().await?;
        if viewer.is_none() || viewer.as_ref().is_some_and(Viewer::is_guest) {
            if meeting.allow_guests == 0 {
                return Err(ApiError::Unauthenticated);
            }
            // A guest may give (or change) the name others will see.
            if let Some(name) = display_name.filter(|n| !n.trim().is_empty()) {
                self.auth().continue_as_guest(name).await?;
                viewer = self.auth().viewer().await?;
            }
        }
        let Some(viewer) = viewer else {
            return Err(ApiError::Invalid(vec![FieldError::new(
                "display_name",
                FieldProblem::Required,
            )]));
        };
        let role = self.role(Some(&viewer)).await?;
        if matches!(role, Role::Host | Role::CoHost) {
            if meeting.ended_at.is_some() {
                reopen(&self.meetings.state().db, &meeting.id).await?;
            }
            self.store(&viewer, Admission::Admitted).await?;
            return Ok(Admission::Admitted);
        }
        if meeting.ended_at.is_some() {
            return Err(ApiError::Ended);
        }
        if now < opens || now >= ends {
            return Err(ApiError::NotOpen { opens_at_ms: opens });
        }
        // Decisions stand: a denied or removed person stays out.
        let stored = self.stored(&participant_id(&viewer)).await?;
        if let Some(decided @ (Admission::Denied | Admission::Removed | Admission::Admitted)) =
            stored
        {
            return Ok(decided);
        }
        let admission = if role == Role::Invitee || meeting.waiting_room == 0 {
            Admission::Admitted
        } else {
            Admission::Waiting
        };
        if admission == Admission::Waiting && stored.is_none() {
            self.knock_allowed().await?;
        }
        self.store(&viewer, admission).await?;
        if admission == Admission::Waiting {
            self.meetings
                .state()
                .knock_notices
                .changed(&meeting.id)
                .await;
        }
        Ok(admission)
    }

    /// A new knock must fit: the waiting list has room, and this address
    /// has not knocked too often on this meeting. (Concurrent knocks may
    /// pass the count together; it bounds a flood, not an exact number.)
    async fn knock_allowed(&self) -> ApiResult<()> {
        let state = self.meetings.state();
        let (waiting,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM meeting_admissions WHERE meeting_id = $1 AND state = 'waiting'",
        )
        .bind(&self.meeting.id)
        .fetch_one(&state.db)
        .await
        .map_err(internal)?;
        if waiting >= i64::from(state.actions.max_waiting) {
            return Err(ApiError::Limited {
                what: Limit::WaitingRoomFull,
                retry_after_secs: 60,
            });
        }
        let what = format!("knock:{}", self.meeting.id);
        self.auth()
            .limit(&what, state.actions.knocks, Limit::Knocks)
            .await
    }

    async fn require_moderator(&self) -> ApiResult<Viewer> {
        let viewer = self.identified_viewer().await?;
        match self.role(Some(&viewer)).await? {
            Role::Host | Role::CoHost => Ok(viewer),
            _ => Err(ApiError::Forbidden),
        }
    }

    /// The oldest `KNOCK_PAGE` knocks, and how many there are in all.
    pub async fn knocks(&self) -> ApiResult<KnockPage> {
        self.require_moderator().await?;
        let db = &self.meetings.state().db;
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT participant_id, display_name, is_guest, knocked_at FROM meeting_admissions \
             WHERE meeting_id = $1 AND state = 'waiting' ORDER BY knocked_at, participant_id \
             LIMIT $2",
        )
        .bind(&self.meeting.id)
        .bind(KNOCK_PAGE as i64)
        .fetch_all(db)
        .await
        .map_err(internal)?;
        let total = if rows.len() < KNOCK_PAGE {
            rows.len() as i64
        } else {
            let (total,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM meeting_admissions WHERE meeting_id = $1 AND state = 'waiting'",
            )
            .bind(&self.meeting.id)
            .fetch_one(db)
            .await
            .map_err(internal)?;
            total
        };
        let knocks = rows
            .into_iter()
            .map(
                |(participant_id, display_name, is_guest, knocked_at)| Knock {
                    participant_id,
                    display_name,
                    is_guest: is_guest != 0,
                    knocked_at_ms: knocked_at,
                },
            )
            .collect();
        Ok(KnockPage {
            knocks,
            total: total.max(0) as u64,
        })
    }

    /// Returns how many knocks were decided.
    pub async fn decide(&self, participant: &str, decision: &str) -> ApiResult<u64> {
        let moderator = self.require_moderator().await?;
        let state = match decision {
            "admit" => Admission::Admitted,
            "deny" => Admission::Denied,
            _ => {
                return Err(ApiError::Invalid(vec![FieldError::new(
                    "decision",
                    FieldProblem::OutOfRange,
                )]))
            }
        };
        let all = participant == "*";
        let result = sqlx::query(
            "UPDATE meeting_admissions SET state = $1, decided_at = $2, decided_by = $3 \
             WHERE meeting_id = $4 AND state = 'waiting' AND ($5 = 1 OR participant_id = $6)",
        )
        .bind(state.as_str())
        .bind(now_ms())
        .bind(participant_id(&moderator))
        .bind(&self.meeting.id)
        .bind(i64::from(all))
        .bind(participant)
        .execute(&self.meetings.state().db)
        .await
        .map_err(internal)?;
        if !all && result.rows_affected() == 0 {
            return Err(ApiError::NotFound);
        }
        // Other hosts' lists change too.
        let state = self.meetings.state();
        state.knock_notices.changed(&self.meeting.id).await;
        Ok(result.rows_affected())
    }

    /// ICE servers, with fresh TURN credentials, for an admitted participant.
    pub async fn ice_config(&self) -> ApiResult<crate::ice::IceConfig> {
        let participant = participant_id(&self.admitted_viewer().await?);
        Ok(self.meetings.state().ice.config_for(&participant, now_ms()))
    }

    /// The viewer, who must be identified (`Unauthenticated`).
    async fn identified_viewer(&self) -> ApiResult<Viewer> {
        self.auth().viewer().await?.ok_or(ApiError::Unauthenticated)
    }

    /// The viewer, who must be let in to this meeting (`Forbidden`).
    async fn admitted_viewer(&self) -> ApiResult<Viewer> {
        let viewer = self.identified_viewer().await?;
        if self.stored(&participant_id(&viewer)).await? != Some(Admission::Admitted) {
            return Err(ApiError::Forbidden);
        }
        Ok(viewer)
    }

    /// The chat transcript of a meeting that is over, for the people who
    /// were let in (and hosts).
    pub async fn transcript(&self) -> ApiResult<crate::chat::Transcript> {
        let viewer = self.identified_viewer().await?;
        let participant = participant_id(&viewer);
        let role = self.role(Some(&viewer)).await?;
        let admitted = self.stored(&participant).await? == Some(Admission::Admitted);
        if !admitted && !matches!(role, Role::Host | Role::CoHost) {
            return Err(ApiError::Forbidden);
        }
        let meeting = &self.meeting;
        let over = meeting.ended_at.is_some()
            || now_ms() >= meeting.starts_at + meeting.duration_minutes * 60_000;
        if !over {
            return Ok(crate::chat::Transcript::NotYet);
        }
        let messages = crate::chat::ssr::after(
            &self.meetings.state().db,
            &meeting.id,
            &participant,
            0,
            100_000,
        )
        .await
        .map_err(internal)?;
        Ok(crate::chat::Transcript::Ready {
            messages,
            viewer_id: participant,
        })
    }

    pub async fn remove(&self, participant: &str) -> ApiResult<()> {
        let moderator = self.require_moderator().await?;
        let state = self.meetings.state();
        remove_participant(
            &state.db,
            state.bus.as_ref(),
            &self.meeting,
            participant,
            &participant_id(&moderator),
        )
        .await
    }
}

/// Marks `participant` removed (they cannot come straight back) and closes
/// their connections to the call. The host cannot be removed.
pub async fn remove_participant(
    db: &sqlx::AnyPool,
    bus: &dyn crate::fanout::RoomBus,
    meeting: &MeetingRow,
    participant: &str,
    by: &str,
) -> ApiResult<()> {
    if participant == meeting.host_id {
        return Err(ApiError::Forbidden);
    }
    let result = sqlx::query(
        "UPDATE meeting_admissions SET state = 'removed', decided_at = $1, decided_by = $2 \
         WHERE meeting_id = $3 AND participant_id = $4",
    )
    .bind(now_ms())
    .bind(by)
    .bind(&meeting.id)
    .bind(participant)
    .execute(db)
    .await
    .map_err(internal)?;
    if result.rows_affected() == 0 {
        return Err(ApiError::NotFound);
    }
    let event = crate::fanout::RoomEvent::Removed {
        participant_id: participant.to_string(),
    };
    if let Err(err) = bus.publish(&meeting.id, event).await {
        // Stored all the same: their next reconnect is refused.
        tracing::warn!(error = %err, "could not tell the call about a removal");
    }
    Ok(())
}

/// Ends the meeting for everyone: new joins are refused until a host
/// enters again.
pub async fn end_meeting(db: &sqlx::AnyPool, meeting_id: &str) -> ApiResult<()> {
    sqlx::query("UPDATE meetings SET ended_at = $1 WHERE id = $2")
        .bind(now_ms())
        .bind(meeting_id)
        .execute(db)
        .await
        .map_err(internal)?;
    Ok(())
}

async fn reopen(db: &sqlx::AnyPool, meeting_id: &str) -> ApiResult<()> {
    sqlx::query("UPDATE meetings SET ended_at = NULL WHERE id = $1")
        .bind(meeting_id)
        .execute(db)
        .await
        .map_err(internal)?;
    Ok(())
}

pub fn participant_id(viewer: &Viewer) -> String {
    match viewer {
        Viewer::User(user) => user.id.clone(),
        Viewer::Guest(guest) => guest.id.clone(),
    }
}
