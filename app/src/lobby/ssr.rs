//! Server half of the waiting room.

use super::{Admission, DoorStatus, Knock, KnockPage, KNOCK_PAGE};
use crate::auth::ssr::{internal, now_ms, set_error_status, RequestCx};
use crate::auth::Viewer;
use crate::error::{ApiError, ApiResult, FieldError, FieldProblem, Limit};
use crate::meetings::ssr::{MeetingCx, MeetingRow};
use crate::meetings::Role;
use crate::protocol::PeerRole;

/// Where a meeting stands, for the people in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeetingPhase {
    /// Can be joined (within the rules of the door).
    Live,
    /// A host ended it for everyone; a host entering again reopens it.
    Ended,
    /// Cancelled (or gone): it looks missing to everyone.
    Cancelled,
}

/// One participant's standing in one meeting, read from the database now.
/// The connection upgrade and the running call's re-checks (on
/// `RoomEvent::AccessChanged`) read it the same way, through
/// [`current_access`] and [`Access::in_call`], so the two cannot drift.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub phase: MeetingPhase,
    /// The stored door state (None: never asked to enter).
    pub admission: Option<Admission>,
    /// The role in the meeting's own terms (invitee, visitor…).
    pub role: Role,
    /// The role as the call shows it.
    pub peer_role: PeerRole,
    /// When the join window opens (start minus the early margin) and when
    /// the scheduled time ends, unix ms.
    pub opens_at_ms: i64,
    pub ends_at_ms: i64,
    /// A host or co-host is admitted (has entered): the meeting has been
    /// started, so it is in session outside its scheduled window too.
    pub started: bool,
}

impl Access {
    fn new(
        meeting: &MeetingRow,
        role: Role,
        is_guest: bool,
        admission: Option<Admission>,
        started: bool,
    ) -> Self {
        let phase = if meeting.cancelled_at.is_some() {
            MeetingPhase::Cancelled
        } else if meeting.ended_at.is_some() {
            MeetingPhase::Ended
        } else {
            MeetingPhase::Live
        };
        Self {
            phase,
            admission,
            role,
            peer_role: peer_role(role, is_guest),
            opens_at_ms: meeting.starts_at - crate::meetings::JOIN_EARLY_MS,
            ends_at_ms: meeting.starts_at + meeting.duration_minutes * 60_000,
            started,
        }
    }

    /// A gone meeting: nobody may be in it.
    fn gone(is_guest: bool) -> Self {
        Self {
            phase: MeetingPhase::Cancelled,
            admission: None,
            role: Role::Visitor,
            peer_role: peer_role(Role::Visitor, is_guest),
            opens_at_ms: 0,
            ends_at_ms: 0,
            started: false,
        }
    }

    /// Whether they may be in the call now, and why not: `NotFound` for a
    /// cancelled meeting (as for a wrong link), `Forbidden` when not
    /// admitted (waiting, denied, removed, or a guest after guests were
    /// turned off), `Ended` after a host ended it. Hosts are no exception
    /// to `Ended`: entering again (which reopens the meeting) is the way
    /// back, so an ended meeting has nobody in it and hands out nothing.
    pub fn in_call(&self) -> ApiResult<()> {
        match self.phase {
            MeetingPhase::Cancelled => Err(ApiError::NotFound),
            _ if self.admission != Some(Admission::Admitted) => Err(ApiError::Forbidden),
            MeetingPhase::Ended => Err(ApiError::Ended),
            MeetingPhase::Live => Ok(()),
        }
    }

    pub fn is_moderator(&self) -> bool {
        self.peer_role.is_moderator()
    }

    /// Whether TURN credentials may be handed out at `now_ms`: in the call
    /// now, and the meeting in session, i.e. within its scheduled window
    /// or started by a host or co-host (an instant meeting is started by
    /// its host entering, and stays so until ended). Before the window
    /// and after it in a meeting nobody started, STUN only.
    pub fn may_use_turn(&self, now_ms: i64) -> bool {
        self.in_call().is_ok()
            && (self.started || (self.opens_at_ms <= now_ms && now_ms < self.ends_at_ms))
    }
}

/// The call's role for a meeting role.
pub fn peer_role(role: Role, is_guest: bool) -> PeerRole {
    match role {
        Role::Host => PeerRole::Host,
        Role::CoHost => PeerRole::CoHost,
        _ if is_guest => PeerRole::Guest,
        _ => PeerRole::Member,
    }
}

/// The stored door state of one participant.
async fn stored_admission(
    db: &sqlx::AnyPool,
    meeting_id: &str,
    participant_id: &str,
) -> ApiResult<Option<Admission>> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT state FROM meeting_admissions WHERE meeting_id = $1 AND participant_id = $2",
    )
    .bind(meeting_id)
    .bind(participant_id)
    .fetch_optional(db)
    .await
    .map_err(internal)?;
    Ok(row.and_then(|(s,)| Admission::parse(&s)))
}

/// Whether a host or current co-host of the meeting is admitted.
async fn started(db: &sqlx::AnyPool, meeting: &MeetingRow) -> ApiResult<bool> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT participant_id FROM meeting_admissions a \
         WHERE a.meeting_id = $1 AND a.state = 'admitted' AND (a.participant_id = $2 \
         OR a.participant_id IN (SELECT user_id FROM meeting_cohosts WHERE meeting_id = $1)) \
         LIMIT 1",
    )
    .bind(&meeting.id)
    .bind(&meeting.host_id)
    .fetch_optional(db)
    .await
    .map_err(internal)?;
    Ok(row.is_some())
}

/// The shared part of every access decision, given the role.
async fn access_with_role(
    db: &sqlx::AnyPool,
    meeting: &MeetingRow,
    participant_id: &str,
    role: Role,
    is_guest: bool,
) -> ApiResult<Access> {
    let mut admission = stored_admission(db, &meeting.id, participant_id).await?;
    // Guests are let in only while the meeting allows guests: turning
    // guests off shuts them out at once, whatever is stored.
    if is_guest && meeting.allow_guests == 0 {
        admission = None;
    }
    let started = started(db, meeting).await?;
    Ok(Access::new(meeting, role, is_guest, admission, started))
}

/// Where `participant_id` (an account, or a guest identity when
/// `is_guest`) stands in the meeting `meeting_id` right now: the meeting's
/// phase, their admission and their role, all read afresh. For a running
/// call to re-check its caller when rights change. A missing meeting reads
/// as cancelled.
pub async fn current_access(
    db: &sqlx::AnyPool,
    meeting_id: &str,
    participant_id: &str,
    is_guest: bool,
) -> ApiResult<Access> {
    let Some(meeting) = crate::meetings::ssr::find_by_id(db, meeting_id)
        .await
        .map_err(internal)?
    else {
        return Ok(Access::gone(is_guest));
    };
    let role = if is_guest {
        Role::Visitor
    } else {
        let exists: Option<(String,)> = sqlx::query_as("SELECT id FROM users WHERE id = $1")
            .bind(participant_id)
            .fetch_optional(db)
            .await
            .map_err(internal)?;
        if exists.is_none() {
            // The account is gone: nobody to let in.
            return Ok(Access::gone(is_guest));
        }
        let cohosts = crate::meetings::ssr::cohost_usernames(db, meeting_id)
            .await
            .map_err(internal)?;
        crate::meetings::ssr::user_role(db, &meeting, participant_id, &cohosts)
            .await
            .map_err(internal)?
    };
    access_with_role(db, &meeting, participant_id, role, is_guest).await
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
        .await?;
        Ok((viewer, access))
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
        stored_admission(&self.meetings.state().db, &self.meeting.id, participant_id).await
    }

    /// Records a state whatever was stored before, keeping the first knock
    /// time. Only for hosts and co-hosts, whose role lets them in; everyone
    /// else goes through `record_entry`, which never undoes a decision.
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
        let admission = record_entry(
            &self.meetings.state().db,
            &meeting.id,
            &participant_id(&viewer),
            viewer.display_name(),
            viewer.is_guest(),
            wanted,
        )
        .await?;
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

    /// The meeting's revision in the database now (bumped by every change
    /// of its settings).
    async fn revision_now(&self) -> ApiResult<i64> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT revision FROM meetings WHERE id = $1")
            .bind(&self.meeting.id)
            .fetch_optional(&self.meetings.state().db)
            .await
            .map_err(internal)?;
        row.map(|(r,)| r).ok_or(ApiError::NotFound)
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

/// Records that someone entered and the door's rules give them `wanted`
/// (admitted or waiting), without ever undoing a decision: a new row is
/// made, a waiting one takes `wanted`, and a denied, removed or admitted
/// one stays as it is, in one statement, so a re-entry racing a host's
/// deny or removal cannot turn it back into a knock. Returns the state now
/// stored.
pub async fn record_entry(
    db: &sqlx::AnyPool,
    meeting_id: &str,
    participant_id: &str,
    display_name: &str,
    is_guest: bool,
    wanted: Admission,
) -> ApiResult<Admission> {
    let (state,): (String,) = sqlx::query_as(
        "INSERT INTO meeting_admissions (meeting_id, participant_id, display_name, is_guest, state, knocked_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (meeting_id, participant_id) DO UPDATE SET \
         display_name = excluded.display_name, \
         state = CASE WHEN meeting_admissions.state = 'waiting' THEN excluded.state \
                 ELSE meeting_admissions.state END \
         RETURNING state",
    )
    .bind(meeting_id)
    .bind(participant_id)
    .bind(display_name)
    .bind(i64::from(is_guest))
    .bind(wanted.as_str())
    .bind(now_ms())
    .fetch_one(db)
    .await
    .map_err(internal)?;
    Admission::parse(&state).ok_or_else(|| {
        tracing::error!(%state, "unknown admission state stored");
        ApiError::Internal
    })
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

    fn access(phase: MeetingPhase, admission: Option<Admission>, started: bool) -> Access {
        Access {
            phase,
            admission,
            role: Role::Invitee,
            peer_role: PeerRole::Member,
            opens_at_ms: 1_000,
            ends_at_ms: 2_000,
            started,
        }
    }

    #[test]
    fn in_call_needs_a_live_meeting_and_an_admission() {
        let admitted = Some(Admission::Admitted);
        assert_eq!(
            access(MeetingPhase::Live, admitted, false).in_call(),
            Ok(())
        );
        for refused in [
            None,
            Some(Admission::Waiting),
            Some(Admission::Denied),
            Some(Admission::Removed),
        ] {
            assert_eq!(
                access(MeetingPhase::Live, refused, true).in_call(),
                Err(ApiError::Forbidden)
            );
        }
        assert_eq!(
            access(MeetingPhase::Ended, admitted, true).in_call(),
            Err(ApiError::Ended)
        );
        assert_eq!(
            access(MeetingPhase::Cancelled, admitted, true).in_call(),
            Err(ApiError::NotFound)
        );
    }

    #[test]
    fn turn_only_in_session() {
        let admitted = Some(Admission::Admitted);
        let unstarted = access(MeetingPhase::Live, admitted, false);
        assert!(!unstarted.may_use_turn(999), "before the window");
        assert!(unstarted.may_use_turn(1_000));
        assert!(unstarted.may_use_turn(1_999));
        assert!(!unstarted.may_use_turn(2_000), "after the window");
        let started = access(MeetingPhase::Live, admitted, true);
        assert!(started.may_use_turn(0) && started.may_use_turn(1_000_000));
        assert!(!access(MeetingPhase::Ended, admitted, true).may_use_turn(1_500));
        assert!(!access(MeetingPhase::Live, Some(Admission::Waiting), true).may_use_turn(1_500));
    }
}
