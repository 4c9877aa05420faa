//! Meetings as stored: the row, the code in the link, and the one place a
//! person's role in a meeting is decided; `store` writes them. Checking
//! the schedule form (field by field, for the page) stays with the web
//! layer, `app::meetings::ssr`.

pub mod store;

use protocol::meetings::Role;
use sqlx::AnyPool;

/// Letters and digits that cannot be mistaken for one another.
const CODE_ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";
/// 26 symbols of 5 bits: 130 random bits.
const CODE_LEN: usize = 26;

pub fn new_code() -> String {
    use rand::Rng;
    let mut rng = rand::rngs::OsRng;
    (0..CODE_LEN)
        .map(|_| CODE_ALPHABET[rng.gen_range(0..CODE_ALPHABET.len())] as char)
        .collect()
}

/// Whether a string could be a meeting code at all (checked before any
/// database work).
pub fn is_code_shaped(code: &str) -> bool {
    code.len() == CODE_LEN && code.bytes().all(|b| CODE_ALPHABET.contains(&b))
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MeetingRow {
    pub id: String,
    pub code: String,
    pub host_id: String,
    pub host_name: String,
    pub title: String,
    pub description: String,
    pub starts_at: i64,
    pub duration_minutes: i64,
    /// 0 or 1 (see the migration).
    pub waiting_room: i64,
    pub allow_guests: i64,
    pub max_participants: i64,
    pub revision: i64,
    pub cancelled_at: Option<i64>,
    pub updated_at: i64,
    /// Set when a host ended the meeting for everyone.
    pub ended_at: Option<i64>,
    /// `automatic`, `direct` or `server` (see the migration).
    pub media_mode: String,
}

impl MeetingRow {
    /// How the host wants the media to travel (automatic for anything the
    /// database should never hold).
    pub fn media_mode(&self) -> protocol::meetings::MediaMode {
        protocol::meetings::MediaMode::parse(&self.media_mode).unwrap_or_default()
    }
}

/// The columns of `MeetingRow`, for queries that pick meetings in other ways.
pub const MEETING_SELECT: &str =
    "SELECT m.id, m.code, m.host_id, u.display_name AS host_name, m.title, \
     m.description, m.starts_at, m.duration_minutes, m.waiting_room, m.allow_guests, \
     m.max_participants, m.revision, m.cancelled_at, m.updated_at, m.ended_at, m.media_mode \
     FROM meetings m JOIN users u ON u.id = m.host_id";

/// A live (not cancelled) meeting by code, or None: missing, malformed and
/// cancelled look the same from here on.
pub async fn find_live_by_code(db: &AnyPool, code: &str) -> sqlx::Result<Option<MeetingRow>> {
    if !is_code_shaped(code) {
        return Ok(None);
    }
    sqlx::query_as::<_, MeetingRow>(&format!(
        "{MEETING_SELECT} WHERE m.code = $1 AND m.cancelled_at IS NULL"
    ))
    .bind(code)
    .fetch_optional(db)
    .await
}

/// A meeting by id, cancelled or not: a running call re-reads its meeting
/// this way, and must see a cancellation rather than a miss.
pub async fn find_by_id(db: &AnyPool, id: &str) -> sqlx::Result<Option<MeetingRow>> {
    sqlx::query_as::<_, MeetingRow>(&format!("{MEETING_SELECT} WHERE m.id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
}

/// The meeting's revision in the database now (bumped by every change of
/// its settings); `None` when it is gone.
pub async fn revision(db: &AnyPool, id: &str) -> sqlx::Result<Option<i64>> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT revision FROM meetings WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?;
    Ok(row.map(|(revision,)| revision))
}

/// The role of the account `user_id` in `row` (an invitation by email
/// counts only for an address the account has verified), given the
/// meeting's co-hosts (id, username).
/// The one place roles are decided: page views, admission and the running
/// call's re-checks all come here.
pub async fn user_role(
    db: &AnyPool,
    row: &MeetingRow,
    user_id: &str,
    cohosts: &[(String, String)],
) -> sqlx::Result<Role> {
    if row.host_id == user_id {
        return Ok(Role::Host);
    }
    if cohosts.iter().any(|(id, _)| id == user_id) {
        return Ok(Role::CoHost);
    }
    if is_invited(db, &row.id, user_id).await? {
        return Ok(Role::Invitee);
    }
    Ok(Role::Visitor)
}

/// The invitees as shown to hosts (usernames and addresses).
pub async fn invitee_labels(db: &AnyPool, meeting_id: &str) -> sqlx::Result<Vec<String>> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT label FROM meeting_invitees WHERE meeting_id = $1 ORDER BY label")
            .bind(meeting_id)
            .fetch_all(db)
            .await?;
    Ok(rows.into_iter().map(|(l,)| l).collect())
}

pub async fn cohost_usernames(
    db: &AnyPool,
    meeting_id: &str,
) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as(
        "SELECT u.id, u.username FROM meeting_cohosts c JOIN users u ON u.id = c.user_id \
         WHERE c.meeting_id = $1 ORDER BY u.username",
    )
    .bind(meeting_id)
    .fetch_all(db)
    .await
}

/// The invitation test, as SQL on `meeting_invitees` for the user `$n`: by
/// account, or by an address that this account has *verified*. The address
/// is looked up now, not when the invitation was written, so it counts from
/// the moment it is proved, and an unproven claim never does.
pub fn invited_clause(user_param: &str) -> String {
    format!(
        "(user_id = {user_param} OR (email_key IS NOT NULL AND email_key IN \
         (SELECT u.email_key FROM users u WHERE u.id = {user_param} \
          AND u.email_verified_at_ms IS NOT NULL)))"
    )
}

async fn is_invited(db: &AnyPool, meeting_id: &str, user_id: &str) -> sqlx::Result<bool> {
    let row: Option<(String,)> = sqlx::query_as(&format!(
        "SELECT label FROM meeting_invitees WHERE meeting_id = $1 AND {} LIMIT 1",
        invited_clause("$2")
    ))
    .bind(meeting_id)
    .bind(user_id)
    .fetch_optional(db)
    .await?;
    Ok(row.is_some())
}

pub fn meeting_link(public_url: &str, code: &str) -> String {
    format!("{}/m/{code}", public_url.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_codes_are_code_shaped_and_differ() {
        let (a, b) = (new_code(), new_code());
        assert!(is_code_shaped(&a) && is_code_shaped(&b));
        assert_ne!(a, b);
    }

    #[test]
    fn only_code_shaped_strings_reach_the_database() {
        assert!(!is_code_shaped(""));
        assert!(!is_code_shaped("'; --"));
        assert!(!is_code_shaped(&"a".repeat(CODE_LEN + 1)));
        // Easily confused letters are not in the alphabet.
        assert!(!is_code_shaped(&"l".repeat(CODE_LEN)));
        assert!(is_code_shaped(&"a".repeat(CODE_LEN)));
    }

    #[test]
    fn a_link_joins_the_public_url_and_the_code() {
        assert_eq!(
            meeting_link("https://meet.example.org/", "abc"),
            "https://meet.example.org/m/abc"
        );
    }
}
