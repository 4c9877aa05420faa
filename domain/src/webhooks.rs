//! Webhooks: an account's endpoints, the events of its meetings queued
//! for them (a table, so every event is delivered at least once whichever
//! instance is up), the signature, the retry schedule and the address rule
//! that keeps deliveries off private networks. The HTTP sending is the
//! server's (`server::webhooks`).

use sqlx::AnyPool;
use std::net::IpAddr;
use std::time::Duration;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The first person entered an empty call.
    MeetingStarted,
    /// A host ended the meeting for everyone or cancelled it, or nobody
    /// did and its scheduled time is over with its call empty.
    MeetingEnded,
    ParticipantJoined,
    ParticipantLeft,
    /// The chat of an ended meeting can be read (`/api/v1/.../transcript`).
    TranscriptReady,
}

impl Event {
    pub fn name(self) -> &'static str {
        match self {
            Self::MeetingStarted => "meeting.started",
            Self::MeetingEnded => "meeting.ended",
            Self::ParticipantJoined => "participant.joined",
            Self::ParticipantLeft => "participant.left",
            Self::TranscriptReady => "chat.transcript_ready",
        }
    }
}

/// Endpoints one account may have.
pub const WEBHOOKS_PER_USER: i64 = 10;
/// Attempts before a delivery is given up.
pub const MAX_ATTEMPTS: i64 = 8;
/// The longest URL accepted.
pub const URL_MAX: usize = 500;
/// How long one instance holds a delivery it is sending.
const CLAIM_MS: i64 = 60_000;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookRow {
    pub id: String,
    pub user_id: String,
    pub url: String,
    pub created_at_ms: i64,
}

/// One delivery as the profile page's log shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: String,
    pub webhook_id: String,
    pub event: String,
    pub created_at_ms: i64,
    pub attempts: i64,
    pub delivered_at_ms: Option<i64>,
    pub gave_up_at_ms: Option<i64>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
}

/// A delivery claimed for sending.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Due {
    pub id: String,
    pub url: String,
    pub secret: String,
    pub event: String,
    pub payload: String,
    pub attempts: i64,
}

/// A new signing secret: 32 random bytes, base64url.
pub fn new_secret() -> String {
    format!("whsec_{}", crate::accounts::verification::new_token())
}

/// The meeting as every event's `data.meeting` names it.
pub fn meeting_data(meeting: &crate::meetings::MeetingRow) -> serde_json::Value {
    serde_json::json!({
        "code": meeting.code,
        "title": meeting.title,
        "starts_at_ms": meeting.starts_at,
    })
}

/// What a meeting's end sends (by a host, or at its scheduled end):
/// `meeting.ended` with its `reason`, then `chat.transcript_ready`.
pub fn end_events(
    meeting: &crate::meetings::MeetingRow,
    reason: &str,
) -> [(Event, serde_json::Value); 2] {
    let about = meeting_data(meeting);
    [
        (
            Event::MeetingEnded,
            serde_json::json!({ "meeting": about, "reason": reason }),
        ),
        (
            Event::TranscriptReady,
            serde_json::json!({ "meeting": about }),
        ),
    ]
}

/// The `Moim-Signature` header value: `t=<unix seconds>,v1=<hex>`, where
/// the hex is HMAC-SHA256 with the secret over `<t>.<body>`. The time is
/// signed too, so a receiver that refuses old timestamps (5 minutes) and
/// remembers delivery ids cannot be fed a replay.
pub fn signature(secret: &str, unix_secs: i64, body: &str) -> String {
    use hmac::{Hmac, Mac};
    type HmacSha256 = Hmac<sha2::Sha256>;
    // HMAC takes keys of any length.
    let mut mac = match HmacSha256::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(unix_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={unix_secs},v1={hex}")
}

/// When attempt `attempts + 1` is due after attempt `attempts` failed:
/// `base`, then 3×, 9×… (10 s, 30 s, 90 s, … with the default), at most
/// six hours apart.
pub fn backoff(attempts: i64, base: Duration) -> Duration {
    let factor = 3u32.saturating_pow(attempts.clamp(0, 12) as u32);
    (base * factor).min(Duration::from_secs(6 * 3600))
}

/// Whether deliveries may go to `ip`: public unicast only. Loopback,
/// private, link-local, shared (CGNAT), documentation, multicast and
/// unspecified addresses are refused (SSRF: a webhook must not reach the
/// operator's own network or a cloud metadata service).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            let first = s[0];
            // Forms that carry an IPv4 address inside (IPv4-compatible,
            // NAT64, 6to4, Teredo) are refused whole: through a gateway
            // they could reach a private IPv4 network.
            let embeds_ipv4 = s[..6] == [0, 0, 0, 0, 0, 0]
                || (first == 0x64 && s[1] == 0xff9b)
                || first == 0x2002
                || (first == 0x2001 && s[1] == 0);
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || embeds_ipv4
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first & 0xffc0) == 0xfec0
                || (first == 0x2001 && s[1] == 0x0db8))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("this account has {WEBHOOKS_PER_USER} webhooks; remove one first")]
    TooMany,
    #[error(transparent)]
    Store(#[from] sqlx::Error),
}

/// Adds an endpoint (its URL already checked); returns it with its secret.
pub async fn create(
    db: &AnyPool,
    user_id: &str,
    url: &str,
    now_ms: i64,
) -> Result<(WebhookRow, String), CreateError> {
    let active: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM webhooks WHERE user_id = $1 AND removed_at_ms IS NULL",
    )
    .bind(user_id)
    .fetch_one(db)
    .await?;
    if active >= WEBHOOKS_PER_USER {
        return Err(CreateError::TooMany);
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let secret = new_secret();
    sqlx::query(
        "INSERT INTO webhooks (id, user_id, url, secret, created_at_ms) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&id)
    .bind(user_id)
    .bind(url)
    .bind(&secret)
    .bind(now_ms)
    .execute(db)
    .await?;
    Ok((
        WebhookRow {
            id,
            user_id: user_id.to_string(),
            url: url.to_string(),
            created_at_ms: now_ms,
        },
        secret,
    ))
}

pub async fn list(db: &AnyPool, user_id: &str) -> sqlx::Result<Vec<WebhookRow>> {
    sqlx::query_as(
        "SELECT id, user_id, url, created_at_ms FROM webhooks \
         WHERE user_id = $1 AND removed_at_ms IS NULL ORDER BY created_at_ms, id",
    )
    .bind(user_id)
    .fetch_all(db)
    .await
}

/// Removes an endpoint; its pending deliveries are dropped.
pub async fn remove(db: &AnyPool, user_id: &str, id: &str, now_ms: i64) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE webhooks SET removed_at_ms = $1 \
         WHERE id = $2 AND user_id = $3 AND removed_at_ms IS NULL",
    )
    .bind(now_ms)
    .bind(id)
    .bind(user_id)
    .execute(db)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE webhook_deliveries SET gave_up_at_ms = $1, last_error = 'endpoint removed' \
         WHERE webhook_id = $2 AND delivered_at_ms IS NULL AND gave_up_at_ms IS NULL",
    )
    .bind(now_ms)
    .bind(id)
    .execute(db)
    .await?;
    Ok(true)
}

/// The account's latest deliveries, newest first.
pub async fn deliveries(db: &AnyPool, user_id: &str, limit: i64) -> sqlx::Result<Vec<DeliveryRow>> {
    sqlx::query_as(
        "SELECT d.id, d.webhook_id, d.event, d.created_at_ms, d.attempts, d.delivered_at_ms, \
                d.gave_up_at_ms, d.last_status, d.last_error \
         FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
         WHERE w.user_id = $1 ORDER BY d.created_at_ms DESC, d.id LIMIT $2",
    )
    .bind(user_id)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Queues `event` for every endpoint of `user_id`; returns how many.
/// `data` is the event's own part of the body (JSON).
pub async fn enqueue(
    db: &AnyPool,
    user_id: &str,
    event: Event,
    data: serde_json::Value,
    now_ms: i64,
) -> sqlx::Result<usize> {
    let mut conn = db.acquire().await?;
    enqueue_on(&mut conn, user_id, event, data, now_ms).await
}

/// `enqueue` on one connection, e.g. inside a transaction.
async fn enqueue_on(
    conn: &mut sqlx::AnyConnection,
    user_id: &str,
    event: Event,
    data: serde_json::Value,
    now_ms: i64,
) -> sqlx::Result<usize> {
    let hooks: Vec<(String,)> =
        sqlx::query_as("SELECT id FROM webhooks WHERE user_id = $1 AND removed_at_ms IS NULL")
            .bind(user_id)
            .fetch_all(&mut *conn)
            .await?;
    for (webhook_id,) in &hooks {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let payload = serde_json::json!({
            "id": id,
            "event": event.name(),
            "created_at_ms": now_ms,
            "data": data,
        })
        .to_string();
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, webhook_id, event, payload, created_at_ms, next_attempt_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(&id)
        .bind(webhook_id)
        .bind(event.name())
        .bind(&payload)
        .bind(now_ms)
        .execute(&mut *conn)
        .await?;
    }
    Ok(hooks.len())
}

/// The meeting's call started (the first person entered an empty call):
/// its end is to be announced again, by a host or by `announce_lapsed_end`.
pub async fn call_started(db: &AnyPool, meeting_id: &str, now_ms: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE meetings SET call_started_at = $1, end_announced_at = NULL WHERE id = $2")
        .bind(now_ms)
        .bind(meeting_id)
        .execute(db)
        .await?;
    Ok(())
}

/// Meetings whose call started, whose scheduled time is over at `now_ms`
/// and whose end nobody announced (no host ended them, none is
/// cancelled), oldest first. Their calls may still be going on: the
/// caller announces only those that are empty.
pub async fn lapsed_meetings(
    db: &AnyPool,
    now_ms: i64,
    limit: i64,
) -> sqlx::Result<Vec<crate::meetings::MeetingRow>> {
    sqlx::query_as::<_, crate::meetings::MeetingRow>(&format!(
        "{} WHERE m.call_started_at IS NOT NULL AND m.end_announced_at IS NULL \
           AND m.ended_at IS NULL AND m.cancelled_at IS NULL AND m.starts_at <= $1 \
           AND m.starts_at + m.duration_minutes * 60000 <= $1 \
         ORDER BY m.starts_at LIMIT $2",
        crate::meetings::MEETING_SELECT
    ))
    .bind(now_ms)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Announces the end of a lapsed meeting (see `lapsed_meetings`) whose
/// call is empty: `meeting.ended` (reason `scheduled_end`) and
/// `chat.transcript_ready`, queued in the same transaction that marks the
/// end announced. True for the one caller, on any instance, that did it;
/// false when another did or the meeting changed since it was read.
pub async fn announce_lapsed_end(
    db: &AnyPool,
    meeting: &crate::meetings::MeetingRow,
    now_ms: i64,
) -> sqlx::Result<bool> {
    let mut tx = db.begin().await?;
    let claimed = sqlx::query(
        "UPDATE meetings SET end_announced_at = $1 WHERE id = $2 \
           AND call_started_at IS NOT NULL AND end_announced_at IS NULL \
           AND ended_at IS NULL AND cancelled_at IS NULL",
    )
    .bind(now_ms)
    .bind(&meeting.id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if claimed == 0 {
        tx.rollback().await?;
        return Ok(false);
    }
    for (event, data) in end_events(meeting, "scheduled_end") {
        enqueue_on(&mut tx, &meeting.host_id, event, data, now_ms).await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// Claims up to `limit` due deliveries for this instance. A claim is a
/// conditional update, so two instances never take the same one at once;
/// a claim left by an instance that died expires.
pub async fn claim_due(db: &AnyPool, now_ms: i64, limit: i64) -> sqlx::Result<Vec<Due>> {
    let candidates: Vec<(String,)> = sqlx::query_as(
        "SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
         WHERE d.delivered_at_ms IS NULL AND d.gave_up_at_ms IS NULL \
           AND d.next_attempt_at_ms <= $1 AND d.claimed_until_ms <= $1 \
           AND w.removed_at_ms IS NULL \
         ORDER BY d.next_attempt_at_ms LIMIT $2",
    )
    .bind(now_ms)
    .bind(limit)
    .fetch_all(db)
    .await?;
    let mut claimed = Vec::new();
    for (id,) in candidates {
        let taken = sqlx::query(
            "UPDATE webhook_deliveries SET claimed_until_ms = $1 \
             WHERE id = $2 AND claimed_until_ms <= $3 AND delivered_at_ms IS NULL \
               AND gave_up_at_ms IS NULL",
        )
        .bind(now_ms + CLAIM_MS)
        .bind(&id)
        .bind(now_ms)
        .execute(db)
        .await?;
        if taken.rows_affected() == 1 {
            let due: Option<Due> = sqlx::query_as(
                "SELECT d.id, w.url, w.secret, d.event, d.payload, d.attempts \
                 FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
                 WHERE d.id = $1",
            )
            .bind(&id)
            .fetch_optional(db)
            .await?;
            claimed.extend(due);
        }
    }
    Ok(claimed)
}

/// What one attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered {
        status: u16,
    },
    /// Refused or unreachable: `status` when the endpoint answered.
    Failed {
        status: Option<u16>,
        error: String,
    },
}

/// Records an attempt: delivered, due again after the backoff, or given
/// up after `MAX_ATTEMPTS`.
pub async fn record(
    db: &AnyPool,
    due: &Due,
    attempt: &Attempt,
    now_ms: i64,
    retry_base: Duration,
) -> sqlx::Result<()> {
    let attempts = due.attempts + 1;
    match attempt {
        Attempt::Delivered { status } => {
            sqlx::query(
                "UPDATE webhook_deliveries SET attempts = $1, delivered_at_ms = $2, \
                 last_status = $3, last_error = NULL, claimed_until_ms = 0 \
                 WHERE id = $4 AND gave_up_at_ms IS NULL",
            )
            .bind(attempts)
            .bind(now_ms)
            .bind(i64::from(*status))
            .bind(&due.id)
            .execute(db)
            .await?;
        }
        Attempt::Failed { status, error } => {
            let gave_up = (attempts >= MAX_ATTEMPTS).then_some(now_ms);
            let next = now_ms + backoff(attempts - 1, retry_base).as_millis() as i64;
            sqlx::query(
                "UPDATE webhook_deliveries SET attempts = $1, next_attempt_at_ms = $2, \
                 gave_up_at_ms = $3, last_status = $4, last_error = $5, claimed_until_ms = 0 \
                 WHERE id = $6 AND gave_up_at_ms IS NULL AND delivered_at_ms IS NULL",
            )
            .bind(attempts)
            .bind(next)
            .bind(gave_up)
            .bind(status.map(i64::from))
            .bind(error.chars().take(300).collect::<String>())
            .bind(&due.id)
            .execute(db)
            .await?;
        }
    }
    Ok(())
}

/// Deliveries still to send or retry, on every instance.
pub async fn pending(db: &AnyPool) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM webhook_deliveries WHERE delivered_at_ms IS NULL AND gave_up_at_ms IS NULL",
    )
    .fetch_one(db)
    .await
}

/// Deletes deliveries finished (delivered or given up) before
/// `older_than_ms`; returns how many. The log shows the latest few only,
/// and payloads name people: they are not kept for ever.
pub async fn prune(db: &AnyPool, older_than_ms: i64) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "DELETE FROM webhook_deliveries \
         WHERE created_at_ms < $1 AND (delivered_at_ms IS NOT NULL OR gave_up_at_ms IS NOT NULL)",
    )
    .bind(older_than_ms)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_covers_time_and_body() {
        let one = signature("secret", 1_700_000_000, r#"{"a":1}"#);
        assert!(one.starts_with("t=1700000000,v1="), "{one}");
        assert_eq!(one.len(), "t=1700000000,v1=".len() + 64);
        assert_ne!(one, signature("secret", 1_700_000_001, r#"{"a":1}"#));
        assert_ne!(one, signature("secret", 1_700_000_000, r#"{"a":2}"#));
        assert_ne!(one, signature("other", 1_700_000_000, r#"{"a":1}"#));
    }

    #[test]
    fn retries_back_off_and_are_capped() {
        let base = Duration::from_secs(10);
        assert_eq!(backoff(0, base), Duration::from_secs(10));
        assert_eq!(backoff(1, base), Duration::from_secs(30));
        assert_eq!(backoff(2, base), Duration::from_secs(90));
        assert_eq!(backoff(50, base), Duration::from_secs(6 * 3600));
    }

    #[test]
    fn only_public_addresses_are_reachable() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "::",
            "::10.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b:1::a00:1",
            "2002:a00:1::1",
            "2001:0:a00:1::1",
            "fec0::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn event_names_are_the_documented_ones() {
        let names: Vec<&str> = [
            Event::MeetingStarted,
            Event::MeetingEnded,
            Event::ParticipantJoined,
            Event::ParticipantLeft,
            Event::TranscriptReady,
        ]
        .iter()
        .map(|e| e.name())
        .collect();
        assert_eq!(
            names,
            [
                "meeting.started",
                "meeting.ended",
                "participant.joined",
                "participant.left",
                "chat.transcript_ready"
            ]
        );
    }
}
