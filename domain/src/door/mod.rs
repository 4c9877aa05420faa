//! The door (admission): who stands where (`access`), what a settings
//! change takes back, a removal, ending and reopening a meeting. Entering
//! and deciding on knocks are still orchestrated in `app::lobby::ssr`.

pub mod access;
pub mod admissions;

use crate::meetings::{invited_clause, MeetingRow};
use crate::rooms::bus::{RoomBus, RoomEvent};
use sqlx::AnyPool;

#[derive(Debug, thiserror::Error)]
pub enum RemovalError {
    #[error("the host cannot be removed")]
    Host,
    #[error("not in this meeting")]
    NotFound,
    #[error(transparent)]
    Store(#[from] sqlx::Error),
}

/// Marks `participant` removed (they cannot come straight back) and closes
/// their connections to the call, on every instance. The host cannot be
/// removed.
pub async fn remove_participant(
    db: &AnyPool,
    bus: &dyn RoomBus,
    meeting: &MeetingRow,
    participant: &str,
    by: &str,
    now_ms: i64,
) -> Result<(), RemovalError> {
    if participant == meeting.host_id {
        return Err(RemovalError::Host);
    }
    let result = sqlx::query(
        "UPDATE meeting_admissions SET state = 'removed', decided_at = $1, decided_by = $2 \
         WHERE meeting_id = $3 AND participant_id = $4",
    )
    .bind(now_ms)
    .bind(by)
    .bind(&meeting.id)
    .bind(participant)
    .execute(db)
    .await?;
    if result.rows_affected() == 0 {
        return Err(RemovalError::NotFound);
    }
    let event = RoomEvent::Removed {
        participant_id: participant.into(),
    };
    if let Err(err) = bus.publish(&meeting.id, event).await {
        // Stored all the same: their next reconnect is refused.
        tracing::warn!(error = %err, "could not tell the call about a removal");
    }
    Ok(())
}

/// Ends the meeting for everyone: new joins are refused until a host
/// enters again (`reopen`). The host's end is its announced end (the
/// caller sends `meeting.ended`), so its scheduled end announces nothing.
pub async fn end_meeting(db: &AnyPool, meeting_id: &str, now_ms: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE meetings SET ended_at = $1, end_announced_at = $1 WHERE id = $2")
        .bind(now_ms)
        .bind(meeting_id)
        .execute(db)
        .await?;
    Ok(())
}

/// A host entered an ended meeting: it is open again.
pub async fn reopen(db: &AnyPool, meeting_id: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE meetings SET ended_at = NULL WHERE id = $1")
        .bind(meeting_id)
        .execute(db)
        .await?;
    Ok(())
}

/// Takes back the admissions that the meeting's current settings no longer
/// give; returns how many. Reads the settings from the database in the
/// same statements, so it is right whenever it runs: after a settings
/// change, and again by an entry that raced one. Only admissions that a
/// rule gave (no `decided_by`: the waiting room was off, or the person was
/// invited) are judged again; a host's decision stands, and the host and
/// co-hosts are never touched.
/// - Guests, when guests are off: their waiting or admitted rows go (they
///   may knock again if guests are allowed again; nobody refused them, so
///   nothing is remembered against them).
/// - With the waiting room on, everyone else admitted by a rule who would
///   now knock (no longer invited, or let in while the door was open)
///   waits again: being dropped from a list is not a decision to throw
///   someone out, so the host sees their knock and can let them back in
///   with one click, where a removal would keep them out for good.
pub async fn revoke_outdated_admissions(db: &AnyPool, meeting_id: &str) -> sqlx::Result<u64> {
    let guests = sqlx::query(
        "DELETE FROM meeting_admissions WHERE meeting_id = $1 AND is_guest = 1 \
         AND state IN ('waiting', 'admitted') \
         AND EXISTS (SELECT 1 FROM meetings m WHERE m.id = $1 AND m.allow_guests = 0)",
    )
    .bind(meeting_id)
    .execute(db)
    .await?
    .rows_affected();
    // Still invited means what `meetings::invited_clause` says (an address
    // counts only once its owner verified it), the same rule that admits.
    let knocking = sqlx::query(&format!(
        "UPDATE meeting_admissions SET state = 'waiting' \
         WHERE meeting_id = $1 AND state = 'admitted' AND decided_by IS NULL \
         AND EXISTS (SELECT 1 FROM meetings m WHERE m.id = $1 AND m.waiting_room = 1) \
         AND participant_id NOT IN (SELECT host_id FROM meetings WHERE id = $1) \
         AND participant_id NOT IN (SELECT user_id FROM meeting_cohosts WHERE meeting_id = $1) \
         AND (is_guest = 1 OR NOT EXISTS (SELECT 1 FROM meeting_invitees \
              WHERE meeting_id = $1 AND {}))",
        invited_clause("meeting_admissions.participant_id")
    ))
    .bind(meeting_id)
    .execute(db)
    .await?
    .rows_affected();
    Ok(guests + knocking)
}
