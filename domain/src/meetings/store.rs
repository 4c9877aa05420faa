//! Writing meetings: scheduling, editing, cancelling, the invitee list and
//! the co-hosts. The web layer validates the form; this stores what it
//! decided, each change in one transaction.

use super::{invited_clause, MeetingRow, MEETING_SELECT};
use sqlx::AnyPool;
use std::collections::HashSet;

/// One invited person: an account (by username) or an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitee {
    /// What the host typed, as shown back to hosts.
    pub label: String,
    /// An account named by its username: the account only (its address,
    /// maybe unproven, maybe someone else's, must not invite whoever
    /// proves it later).
    pub user_id: Option<String>,
    /// An address: which account it means is decided when someone has
    /// verified it (`invited_clause`).
    pub email_key: Option<String>,
}

/// A meeting's settings, checked.
#[derive(Debug, Clone)]
pub struct MeetingFields {
    pub title: String,
    pub description: String,
    pub starts_at: i64,
    pub duration_minutes: i64,
    pub waiting_room: bool,
    pub allow_guests: bool,
    pub max_participants: i64,
    pub media_mode: protocol::meetings::MediaMode,
    pub invitees: Vec<Invitee>,
}

/// Every meeting a user hosts, co-hosts or is invited to, by start time.
pub async fn list_for_user(db: &AnyPool, user_id: &str) -> sqlx::Result<Vec<MeetingRow>> {
    sqlx::query_as::<_, MeetingRow>(&format!(
        "{MEETING_SELECT} WHERE m.host_id = $1 \
         OR m.id IN (SELECT meeting_id FROM meeting_cohosts WHERE user_id = $1) \
         OR m.id IN (SELECT meeting_id FROM meeting_invitees WHERE {}) \
         ORDER BY m.starts_at",
        invited_clause("$1")
    ))
    .bind(user_id)
    .fetch_all(db)
    .await
}

/// Stores a new meeting; answers the addresses newly invited (they get an
/// invitation mail).
pub async fn insert(
    db: &AnyPool,
    id: &str,
    code: &str,
    host_id: &str,
    fields: &MeetingFields,
    now_ms: i64,
) -> sqlx::Result<Vec<String>> {
    let mut tx = db.begin().await?;
    let insert = sqlx::query(
        "INSERT INTO meetings (id, code, host_id, title, description, starts_at, duration_minutes, \
         waiting_room, allow_guests, max_participants, media_mode, revision, cancelled_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, NULL, $12, $12)",
    )
    .bind(id)
    .bind(code)
    .bind(host_id);
    bind_settings(insert, fields)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
    let invited = write_invitees(&mut tx, id, &fields.invitees).await?;
    tx.commit().await?;
    Ok(invited)
}

/// Stores new settings (a new revision); answers the addresses newly
/// invited.
pub async fn update(
    db: &AnyPool,
    id: &str,
    fields: &MeetingFields,
    now_ms: i64,
) -> sqlx::Result<Vec<String>> {
    let mut tx = db.begin().await?;
    let update = sqlx::query(
        "UPDATE meetings SET title = $1, description = $2, starts_at = $3, duration_minutes = $4, \
         waiting_room = $5, allow_guests = $6, max_participants = $7, media_mode = $8, \
         revision = revision + 1, updated_at = $9 WHERE id = $10",
    );
    bind_settings(update, fields)
        .bind(now_ms)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let invited = write_invitees(&mut tx, id, &fields.invitees).await?;
    tx.commit().await?;
    Ok(invited)
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Binds the settings, in the order both `insert` and `update` name them
/// (title through media_mode).
fn bind_settings<'q>(query: Query<'q>, fields: &'q MeetingFields) -> Query<'q> {
    query
        .bind(&fields.title)
        .bind(&fields.description)
        .bind(fields.starts_at)
        .bind(fields.duration_minutes)
        .bind(i64::from(fields.waiting_room))
        .bind(i64::from(fields.allow_guests))
        .bind(fields.max_participants)
        .bind(fields.media_mode.as_str())
}

pub async fn cancel(db: &AnyPool, id: &str, now_ms: i64) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE meetings SET cancelled_at = $1, revision = revision + 1, updated_at = $1 WHERE id = $2",
    )
    .bind(now_ms)
    .bind(id)
    .execute(db)
    .await?;
    Ok(())
}

/// Replaces a meeting's invitees; answers the addresses that were not
/// invited before.
async fn write_invitees(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    meeting_id: &str,
    invitees: &[Invitee],
) -> sqlx::Result<Vec<String>> {
    let before: Vec<(String,)> = sqlx::query_as(
        "SELECT email_key FROM meeting_invitees WHERE meeting_id = $1 AND email_key IS NOT NULL",
    )
    .bind(meeting_id)
    .fetch_all(&mut **tx)
    .await?;
    let before: HashSet<String> = before.into_iter().map(|(k,)| k).collect();
    let added = invitees
        .iter()
        .filter(|i| i.user_id.is_none())
        .filter(|i| i.email_key.as_ref().is_some_and(|k| !before.contains(k)))
        .map(|i| i.label.clone())
        .collect();
    sqlx::query("DELETE FROM meeting_invitees WHERE meeting_id = $1")
        .bind(meeting_id)
        .execute(&mut **tx)
        .await?;
    for invitee in invitees {
        sqlx::query(
            "INSERT INTO meeting_invitees (meeting_id, user_id, email_key, label) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(meeting_id)
        .bind(invitee.user_id.clone())
        .bind(invitee.email_key.clone())
        .bind(&invitee.label)
        .execute(&mut **tx)
        .await?;
    }
    Ok(added)
}

/// What replacing the co-hosts changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CohostChange {
    /// Users who stopped or started being co-hosts: their rights changed.
    pub changed: Vec<String>,
    /// A new co-host was knocking and went in.
    pub admitted_waiting: bool,
}

/// Makes `ids` the meeting's co-hosts, decided by the host `by`.
pub async fn replace_cohosts(
    db: &AnyPool,
    meeting_id: &str,
    ids: &[String],
    by: &str,
    now_ms: i64,
) -> sqlx::Result<CohostChange> {
    let mut tx = db.begin().await?;
    let before: Vec<(String,)> =
        sqlx::query_as("SELECT user_id FROM meeting_cohosts WHERE meeting_id = $1")
            .bind(meeting_id)
            .fetch_all(&mut *tx)
            .await?;
    let before: Vec<String> = before.into_iter().map(|(id,)| id).collect();
    sqlx::query("DELETE FROM meeting_cohosts WHERE meeting_id = $1")
        .bind(meeting_id)
        .execute(&mut *tx)
        .await?;
    for id in ids {
        sqlx::query("INSERT INTO meeting_cohosts (meeting_id, user_id) VALUES ($1, $2)")
            .bind(meeting_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    let mut admitted_waiting = false;
    for id in before.iter().filter(|id| !ids.contains(id)) {
        // A former co-host who is in stays in, as a participant the host
        // chose to keep: their admission becomes the host's decision, so a
        // later settings change does not send them back to the waiting
        // room as if a rule had let them in. The host removes them
        // explicitly if that is what they want.
        sqlx::query(
            "UPDATE meeting_admissions SET decided_at = $1, decided_by = $2 \
             WHERE meeting_id = $3 AND participant_id = $4 AND state = 'admitted' \
             AND decided_by IS NULL",
        )
        .bind(now_ms)
        .bind(by)
        .bind(meeting_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    for id in ids.iter().filter(|id| !before.contains(id)) {
        // A new co-host already knocking goes in, as co-hosts do on
        // entering. A denial or removal is left as it was: they enter
        // again as co-host if they come back.
        let result = sqlx::query(
            "UPDATE meeting_admissions SET state = 'admitted', decided_at = $1, decided_by = $2 \
             WHERE meeting_id = $3 AND participant_id = $4 AND state = 'waiting'",
        )
        .bind(now_ms)
        .bind(by)
        .bind(meeting_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        admitted_waiting |= result.rows_affected() > 0;
    }
    tx.commit().await?;
    let changed = before
        .iter()
        .filter(|id| !ids.contains(id))
        .chain(ids.iter().filter(|id| !before.contains(id)))
        .cloned()
        .collect();
    Ok(CohostChange {
        changed,
        admitted_waiting,
    })
}
