//! Server half of the waiting room.

use super::model::{Admission, DoorStatus, Knock, KnockPage, KNOCK_PAGE};
use crate::auth::ssr::{internal, now_ms, set_error_status, RequestCx};
use crate::auth::Viewer;
use crate::error::{ApiError, ApiResult, FieldError, FieldProblem, Limit};
use crate::meetings::ssr::{MeetingCx, MeetingRow};
use crate::meetings::Role;

use domain::door::access::{access_with_role, stored_admission, Refusal};
pub use domain::door::access::{current_access, Access, MeetingPhase};
use domain::door::admissions::{self, Entrant};

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Cancelled => ApiError::NotFound,
            Refusal::NotAdmitted => ApiError::Forbidden,
            Refusal::Ended => ApiError::Ended,
        }
    }
}

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
    /// that has not been ended, with their role (see `Access::in_call`).
    pub async fn caller_in_call(&self) -> ApiResult<(Viewer, Role)> {
        let (viewer, access) = self.viewer_access().await?;
        access.in_call()?;
        Ok((viewer, access.role))
    }

    /// The identified viewer and their access, by the same rules as
    /// `current_access`.
    pub async fn viewer_access(&self) -> ApiResult<(Viewer, Access)> {
        let viewer = self.identified_viewer().await?;
        let role = self.role(Some(&viewer)).await?;
        let access = access_with_role(
            &self.meetings.state().db,
            &self.meeting,
            &participant_id(&viewer),
            role,
            viewer.is_guest(),
        )
        .await
        .map_err(internal)?;
        Ok((viewer, access))
    }

    pub fn finish<T>(&self, result: ApiResult<T>) -> ApiResult<T> {
        self.meetings.finish_query(result)
    }

    pub fn auth(&self) -> &RequestCx {
        self.meetings.auth()
    }

    async fn role(&self, viewer: Option<&Viewer>) -> ApiResult<Role> {
        self.meetings.role_of(&self.meeting, viewer).await
    }

    async fn stored(&self, participant_id: &str) -> ApiResult<Option<Admission>> {
        stored_admission(&self.meetings.state().db, &self.meeting.id, participant_id)
            .await
            .map_err(internal)
    }

    /// Records a state whatever was stored before, keeping the first knock
    /// time. Only for hosts and co-hosts, whose role lets them in; everyone
    /// else goes through `admissions::record_entry`, which never undoes a
    /// decision.
    async fn store(&self, viewer: &Viewer, admission: Admission) -> ApiResult<()> {
        let participant = participant_id(viewer);
        let entrant = self.entrant(viewer, &participant);
        admissions::store(&self.meetings.state().db, entrant, admission, now_ms())
            .await
            .map_err(internal)
    }

    fn entrant<'a>(&'a self, viewer: &'a Viewer, participant: &'a str) -> Entrant<'a> {
        Entrant {
            meeting_id: &self.meeting.id,
            participant_id: participant,
            display_name: viewer.display_name(),
            is_guest: viewer.is_guest(),
        }
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
        let wanted = if role == Role::Invitee || meeting.waiting_room == 0 {
            Admission::Admitted
        } else {
            Admission::Waiting
        };
        if wanted == Admission::Waiting && stored.is_none() {
            self.knock_allowed().await?;
        }
        // A host may deny or remove them between the check above and this
        // write: the write only ever moves a missing or waiting row, and
        // answers with what is stored.
        let participant = participant_id(&viewer);
        let entrant = self.entrant(&viewer, &participant);
        let admission =
            admissions::record_entry(&self.meetings.state().db, entrant, wanted, now_ms())
                .await
                .map_err(internal)?;
        // Let in by a rule read from the meeting as it was when this
        // request began: if its settings changed since (the revision moved),
        // the change's own clean-up may have run before this write, so
        // apply it once more against the settings as they are now.
        let admission =
            if admission == Admission::Admitted && self.revision_now().await? != meeting.revision {
                let db = &self.meetings.state().db;
                if revoke_outdated_admissions(db, &meeting.id).await? > 0 {
                    let state = self.meetings.state();
                    domain::rooms::bus::knocks_changed(state.bus.as_ref(), &meeting.id).await;
                }
                self.stored(&participant_id(&viewer))
                    .await?
                    .ok_or(ApiError::Forbidden)?
            } else {
                admission
            };
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
        let waiting = admissions::waiting_count(&state.db, &self.meeting.id)
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

    /// The meeting's revision in the database now (bumped by every change
    /// of its settings).
    async fn revision_now(&self) -> ApiResult<i64> {
        domain::meetings::revision(&self.meetings.state().db, &self.meeting.id)
            .await
            .map_err(internal)?
            .ok_or(ApiError::NotFound)
    }

    /// The viewer, if host or co-host of the meeting (else `Forbidden`).
    pub async fn require_moderator(&self) -> ApiResult<Viewer> {
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
        let rows = admissions::waiting(db, &self.meeting.id, KNOCK_PAGE)
            .await
            .map_err(internal)?;
        let total = if rows.len() < KNOCK_PAGE {
            rows.len() as i64
        } else {
            admissions::waiting_count(db, &self.meeting.id)
                .await
                .map_err(internal)?
        };
        let knocks = rows
            .into_iter()
            .map(|waiting| Knock {
                participant_id: waiting.participant_id,
                display_name: waiting.display_name,
                is_guest: waiting.is_guest != 0,
                knocked_at_ms: waiting.knocked_at,
            })
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
        let decided = admissions::decide(
            &self.meetings.state().db,
            &self.meeting.id,
            (!all).then_some(participant),
            state,
            &participant_id(&moderator),
            now_ms(),
        )
        .await
        .map_err(internal)?;
        if !all && decided == 0 {
            return Err(ApiError::NotFound);
        }
        // Other hosts' lists change too.
        let state = self.meetings.state();
        state.knock_notices.changed(&self.meeting.id).await;
        Ok(decided)
    }

    /// ICE servers for someone in the call now: with fresh TURN
    /// credentials while the meeting is in session, STUN only otherwise
    /// (`Access::may_use_turn`). An ended meeting answers `Ended` and a
    /// person not (or no longer) admitted `Forbidden`: credentials are a
    /// relay on our operator's bill, so they never outlive the right to be
    /// in the call. The page keeps the servers it has when a refresh fails.
    pub async fn ice_config(&self) -> ApiResult<crate::protocol::ice::IceConfig> {
        let (viewer, access) = self.viewer_access().await?;
        access.in_call()?;
        let now = now_ms();
        Ok(self.meetings.state().ice.config_for_access(
            &participant_id(&viewer),
            now,
            access.may_use_turn(now),
        ))
    }

    /// The viewer, who must be identified (`Unauthenticated`).
    async fn identified_viewer(&self) -> ApiResult<Viewer> {
        self.auth().viewer().await?.ok_or(ApiError::Unauthenticated)
    }

    /// The chat transcript of a meeting that is over, for the people who
    /// were let in (and hosts).
    pub async fn transcript(&self) -> ApiResult<crate::protocol::Transcript> {
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
            return Ok(crate::protocol::Transcript::NotYet);
        }
        let messages = domain::chat::after(
            &self.meetings.state().db,
            &meeting.id,
            &participant,
            0,
            100_000,
        )
        .await
        .map_err(internal)?;
        Ok(crate::protocol::Transcript::Ready {
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

/// See `domain::door::revoke_outdated_admissions`.
async fn revoke_outdated_admissions(db: &sqlx::AnyPool, meeting_id: &str) -> ApiResult<u64> {
    domain::door::revoke_outdated_admissions(db, meeting_id)
        .await
        .map_err(internal)
}

/// See `domain::door::remove_participant`.
async fn remove_participant(
    db: &sqlx::AnyPool,
    bus: &dyn domain::rooms::bus::RoomBus,
    meeting: &MeetingRow,
    participant: &str,
    by: &str,
) -> ApiResult<()> {
    use domain::door::RemovalError;
    domain::door::remove_participant(db, bus, meeting, participant, by, now_ms())
        .await
        .map_err(|err| match err {
            RemovalError::Host => ApiError::Forbidden,
            RemovalError::NotFound => ApiError::NotFound,
            RemovalError::Store(err) => internal(err),
        })
}

async fn reopen(db: &sqlx::AnyPool, meeting_id: &str) -> ApiResult<()> {
    domain::door::reopen(db, meeting_id).await.map_err(internal)
}

pub fn participant_id(viewer: &Viewer) -> String {
    match viewer {
        Viewer::User(user) => user.id.clone(),
        Viewer::Guest(guest) => guest.id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_answers_like_the_pages_do() {
        assert_eq!(ApiError::from(Refusal::Cancelled), ApiError::NotFound);
        assert_eq!(ApiError::from(Refusal::NotAdmitted), ApiError::Forbidden);
        assert_eq!(ApiError::from(Refusal::Ended), ApiError::Ended);
    }
}
