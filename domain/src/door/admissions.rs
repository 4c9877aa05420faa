//! The stored door: one row per meeting and participant (an account, or a
//! session's guest identity) with its state, the knock time and who
//! decided.

use protocol::meetings::Admission;
use sqlx::AnyPool;

/// Who is at the door.
#[derive(Debug, Clone, Copy)]
pub struct Entrant<'a> {
    pub meeting_id: &'a str,
    pub participant_id: &'a str,
    pub display_name: &'a str,
    pub is_guest: bool,
}

/// Someone waiting, as hosts see them.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Waiting {
    pub participant_id: String,
    pub display_name: String,
    pub is_guest: i64,
    pub knocked_at: i64,
}

fn parse(state: &str) -> sqlx::Result<Admission> {
    Admission::parse(state).ok_or_else(|| {
        sqlx::Error::Decode(format!("unknown admission state stored: {state:?}").into())
    })
}

/// Records a state whatever was stored before, keeping the first knock
/// time. Only for hosts and co-hosts, whose role lets them in; everyone
/// else goes through [`record_entry`], which never undoes a decision.
pub async fn store(
    db: &AnyPool,
    entrant: Entrant<'_>,
    admission: Admission,
    now_ms: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO meeting_admissions (meeting_id, participant_id, display_name, is_guest, state, knocked_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (meeting_id, participant_id) DO UPDATE SET state = excluded.state, \
         display_name = excluded.display_name",
    )
    .bind(entrant.meeting_id)
    .bind(entrant.participant_id)
    .bind(entrant.display_name)
    .bind(i64::from(entrant.is_guest))
    .bind(admission.as_str())
    .bind(now_ms)
    .execute(db)
    .await?;
    Ok(())
}

/// Records that someone entered and the door's rules give them `wanted`
/// (admitted or waiting), without ever undoing a decision: a new row is
/// made, a waiting one takes `wanted`, and a denied, removed or admitted
/// one stays as it is, in one statement, so a re-entry racing a host's
/// deny or removal cannot turn it back into a knock. Returns the state now
/// stored.
pub async fn record_entry(
    db: &AnyPool,
    entrant: Entrant<'_>,
    wanted: Admission,
    now_ms: i64,
) -> sqlx::Result<Admission> {
    let (state,): (String,) = sqlx::query_as(
        "INSERT INTO meeting_admissions (meeting_id, participant_id, display_name, is_guest, state, knocked_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (meeting_id, participant_id) DO UPDATE SET \
         display_name = excluded.display_name, \
         state = CASE WHEN meeting_admissions.state = 'waiting' THEN excluded.state \
                 ELSE meeting_admissions.state END \
         RETURNING state",
    )
    .bind(entrant.meeting_id)
    .bind(entrant.participant_id)
    .bind(entrant.display_name)
    .bind(i64::from(entrant.is_guest))
    .bind(wanted.as_str())
    .bind(now_ms)
    .fetch_one(db)
    .await?;
    parse(&state)
}

/// How many are waiting.
pub async fn waiting_count(db: &AnyPool, meeting_id: &str) -> sqlx::Result<i64> {
    let (waiting,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM meeting_admissions WHERE meeting_id = $1 AND state = 'waiting'",
    )
    .bind(meeting_id)
    .fetch_one(db)
    .await?;
    Ok(waiting)
}

/// The oldest `limit` knocks, in order.
pub async fn waiting(db: &AnyPool, meeting_id: &str, limit: usize) -> sqlx::Result<Vec<Waiting>> {
    sqlx::query_as::<_, Waiting>(
        "SELECT participant_id, display_name, is_guest, knocked_at FROM meeting_admissions \
         WHERE meeting_id = $1 AND state = 'waiting' ORDER BY knocked_at, participant_id \
         LIMIT $2",
    )
    .bind(meeting_id)
    .bind(limit as i64)
    .fetch_all(db)
    .await
}

/// A host's decision on one knock (`participant` Some) or on every knock;
/// returns how many were decided.
pub async fn decide(
    db: &AnyPool,
    meeting_id: &str,
    participant: Option<&str>,
    decision: Admission,
    by: &str,
    now_ms: i64,
) -> sqlx::Result<u64> {
    let result = sqlx::query(
        "UPDATE meeting_admissions SET state = $1, decided_at = $2, decided_by = $3 \
         WHERE meeting_id = $4 AND state = 'waiting' AND ($5 = 1 OR participant_id = $6)",
    )
    .bind(decision.as_str())
    .bind(now_ms)
    .bind(by)
    .bind(meeting_id)
    .bind(i64::from(participant.is_none()))
    .bind(participant.unwrap_or_default())
    .execute(db)
    .await?;
    Ok(result.rows_affected())
}
