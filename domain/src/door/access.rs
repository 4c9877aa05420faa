//! Someone's standing in a meeting, read from the database now: the one
//! rule every door check uses (a page, the call's upgrade, a running
//! call's re-checks), so they cannot drift apart.

use crate::meetings::{cohost_usernames, find_by_id, user_role, MeetingRow};
use protocol::meetings::{Admission, Role, JOIN_EARLY_MS};
use protocol::PeerRole;

/// Why someone may not be in the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Cancelled (or gone): looks like a wrong link.
    #[error("no such meeting")]
    Cancelled,
    /// Waiting, denied, removed, or a guest after guests were turned off.
    #[error("not admitted")]
    NotAdmitted,
    /// A host ended the meeting.
    #[error("the meeting has ended")]
    Ended,
}

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
    pub fn new(
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
            opens_at_ms: meeting.starts_at - JOIN_EARLY_MS,
            ends_at_ms: meeting.starts_at + meeting.duration_minutes * 60_000,
            started,
        }
    }

    /// A gone meeting: nobody may be in it.
    pub fn gone(is_guest: bool) -> Self {
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

    /// Whether they may be in the call now, and why not: `Cancelled` (shown
    /// as a wrong link), `NotAdmitted`
    /// admitted (waiting, denied, removed, or a guest after guests were
    /// turned off), `Ended` after a host ended it. Hosts are no exception
    /// to `Ended`: entering again (which reopens the meeting) is the way
    /// back, so an ended meeting has nobody in it and hands out nothing.
    pub fn in_call(&self) -> Result<(), Refusal> {
        match self.phase {
            MeetingPhase::Cancelled => Err(Refusal::Cancelled),
            _ if self.admission != Some(Admission::Admitted) => Err(Refusal::NotAdmitted),
            MeetingPhase::Ended => Err(Refusal::Ended),
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
pub async fn stored_admission(
    db: &sqlx::AnyPool,
    meeting_id: &str,
    participant_id: &str,
) -> sqlx::Result<Option<Admission>> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT state FROM meeting_admissions WHERE meeting_id = $1 AND participant_id = $2",
    )
    .bind(meeting_id)
    .bind(participant_id)
    .fetch_optional(db)
    .await?;
    Ok(row.and_then(|(s,)| Admission::parse(&s)))
}

/// Whether a host or current co-host of the meeting is admitted.
async fn started(db: &sqlx::AnyPool, meeting: &MeetingRow) -> sqlx::Result<bool> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT participant_id FROM meeting_admissions a \
         WHERE a.meeting_id = $1 AND a.state = 'admitted' AND (a.participant_id = $2 \
         OR a.participant_id IN (SELECT user_id FROM meeting_cohosts WHERE meeting_id = $1)) \
         LIMIT 1",
    )
    .bind(&meeting.id)
    .bind(&meeting.host_id)
    .fetch_optional(db)
    .await?;
    Ok(row.is_some())
}

/// The shared part of every access decision, given the role.
pub async fn access_with_role(
    db: &sqlx::AnyPool,
    meeting: &MeetingRow,
    participant_id: &str,
    role: Role,
    is_guest: bool,
) -> sqlx::Result<Access> {
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
) -> sqlx::Result<Access> {
    let Some(meeting) = find_by_id(db, meeting_id).await? else {
        return Ok(Access::gone(is_guest));
    };
    let role = if is_guest {
        Role::Visitor
    } else {
        if !crate::accounts::exists(db, participant_id).await? {
            // The account is gone: nobody to let in.
            return Ok(Access::gone(is_guest));
        }
        let cohosts = cohost_usernames(db, meeting_id).await?;
        user_role(db, &meeting, participant_id, &cohosts).await?
    };
    access_with_role(db, &meeting, participant_id, role, is_guest).await
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
                Err(Refusal::NotAdmitted)
            );
        }
        assert_eq!(
            access(MeetingPhase::Ended, admitted, true).in_call(),
            Err(Refusal::Ended)
        );
        assert_eq!(
            access(MeetingPhase::Cancelled, admitted, true).in_call(),
            Err(Refusal::Cancelled)
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
