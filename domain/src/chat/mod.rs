//! Chat storage. The database is the truth: every message gets its room
//! sequence number in the transaction that stores it, and a sender's
//! idempotency key makes a resend find the stored copy instead of adding a
//! second one. The same SQL runs on SQLite (one instance) and PostgreSQL
//! (several); `contract` is the suite both pass.

#[cfg(any(test, feature = "contract-tests"))]
pub mod contract;

pub mod service;

use protocol::ChatMessage;
use sqlx::AnyPool;

/// A message to store, already validated.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub sender_id: String,
    pub sender_name: String,
    pub key: String,
    pub text: String,
    pub sent_at_ms: i64,
    pub to: Option<(String, String)>,
}

#[derive(Debug, Clone)]
pub enum Stored {
    New(ChatMessage),
    /// The key was stored before: the first copy, unchanged.
    Duplicate(ChatMessage),
}

type Row = (
    i64,
    String,
    String,
    String,
    String,
    i64,
    Option<String>,
    Option<String>,
);

const COLUMNS: &str = "seq, sender_id, sender_name, idem_key, body, sent_at, to_id, to_name";
/// Public messages, and private ones the viewer sent or received.
const VISIBLE: &str = "meeting_id = $1 AND (to_id IS NULL OR to_id = $2 OR sender_id = $2)";

fn message(
    (seq, sender_id, sender_name, key, text, sent_at_ms, to_id, to_name): Row,
) -> ChatMessage {
    ChatMessage {
        seq,
        sender_id,
        sender_name,
        key,
        text,
        sent_at_ms,
        to_id,
        to_name,
    }
}

pub async fn find_by_key(
    db: &AnyPool,
    meeting_id: &str,
    sender_id: &str,
    key: &str,
) -> sqlx::Result<Option<ChatMessage>> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM chat_messages WHERE meeting_id = $1 AND sender_id = $2 AND idem_key = $3"
    ))
    .bind(meeting_id)
    .bind(sender_id)
    .bind(key)
    .fetch_optional(db)
    .await?;
    Ok(row.map(message))
}

/// Stores a message once. The counter row is taken first: on PostgreSQL it
/// locks the room's counter until commit, on SQLite it takes the write lock,
/// so sequence numbers come out in commit order without gaps.
pub async fn store(db: &AnyPool, meeting_id: &str, new: NewMessage) -> sqlx::Result<Stored> {
    let mut tx = db.begin().await?;
    let (seq,): (i64,) = sqlx::query_as(
        "INSERT INTO chat_counters (meeting_id, last_seq) VALUES ($1, 1) \
         ON CONFLICT (meeting_id) DO UPDATE SET last_seq = chat_counters.last_seq + 1 \
         RETURNING last_seq",
    )
    .bind(meeting_id)
    .fetch_one(&mut *tx)
    .await?;
    let existing: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM chat_messages WHERE meeting_id = $1 AND sender_id = $2 AND idem_key = $3"
    ))
    .bind(meeting_id)
    .bind(&new.sender_id)
    .bind(&new.key)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(row) = existing {
        // Undo the counter step: no gap.
        tx.rollback().await?;
        return Ok(Stored::Duplicate(message(row)));
    }
    let (to_id, to_name) = match &new.to {
        Some((id, name)) => (Some(id.clone()), Some(name.clone())),
        None => (None, None),
    };
    sqlx::query(
        "INSERT INTO chat_messages (meeting_id, seq, sender_id, sender_name, idem_key, body, sent_at, to_id, to_name) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(meeting_id)
    .bind(seq)
    .bind(&new.sender_id)
    .bind(&new.sender_name)
    .bind(&new.key)
    .bind(&new.text)
    .bind(new.sent_at_ms)
    .bind(to_id.clone())
    .bind(to_name.clone())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Stored::New(ChatMessage {
        seq,
        sender_id: new.sender_id,
        sender_name: new.sender_name,
        key: new.key,
        text: new.text,
        sent_at_ms: new.sent_at_ms,
        to_id,
        to_name,
    }))
}

/// The newest sequence number `viewer` may see (0: none).
pub async fn head(db: &AnyPool, meeting_id: &str, viewer: &str) -> sqlx::Result<i64> {
    let (head,): (Option<i64>,) = sqlx::query_as(&format!(
        "SELECT MAX(seq) FROM chat_messages WHERE {VISIBLE}"
    ))
    .bind(meeting_id)
    .bind(viewer)
    .fetch_one(db)
    .await?;
    Ok(head.unwrap_or(0))
}

/// Up to `limit` messages after `after`, oldest first.
pub async fn after(
    db: &AnyPool,
    meeting_id: &str,
    viewer: &str,
    after: i64,
    limit: usize,
) -> sqlx::Result<Vec<ChatMessage>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM chat_messages WHERE {VISIBLE} AND seq > $3 ORDER BY seq LIMIT $4"
    ))
    .bind(meeting_id)
    .bind(viewer)
    .bind(after)
    .bind(limit as i64)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(message).collect())
}

/// Up to `limit` messages before `before`, oldest first.
pub async fn before(
    db: &AnyPool,
    meeting_id: &str,
    viewer: &str,
    before: i64,
    limit: usize,
) -> sqlx::Result<Vec<ChatMessage>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM chat_messages WHERE {VISIBLE} AND seq < $3 ORDER BY seq DESC LIMIT $4"
    ))
    .bind(meeting_id)
    .bind(viewer)
    .bind(before)
    .bind(limit as i64)
    .fetch_all(db)
    .await?;
    let mut messages: Vec<ChatMessage> = rows.into_iter().map(message).collect();
    messages.reverse();
    Ok(messages)
}
