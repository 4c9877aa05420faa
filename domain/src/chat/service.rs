//! Chat over the signaling connection: validation, the per-person rate
//! limit, storing (exactly once), confirming to the sender and waking the
//! room. Storage itself is the parent module.

use super::{self as store, NewMessage, Stored};
use crate::clock::now_ms;
use crate::rooms::bus::RoomEvent;
use crate::rooms::Rooms;
use crate::throttle::{Limiter, Rule};
use protocol::{ErrorCode, PeerId, ServerMessage, CHAT_KEY_MAX, CHAT_MAX_CHARS, CHAT_PAGE};
use sqlx::AnyPool;
use std::sync::Arc;
use std::time::Duration;

/// Chat messages per person: a burst, then a steady rate. Counted per
/// participant across all their connections, on every instance when the
/// limits are shared through Redis.
#[derive(Debug)]
pub struct ChatLimits {
    limiter: Arc<Limiter>,
    rule: Rule,
}

impl ChatLimits {
    pub fn new(limiter: Arc<Limiter>, burst: u32, per_minute: u32) -> Self {
        Self {
            limiter,
            rule: Rule {
                burst: burst.max(1),
                interval: Duration::from_secs(60) / per_minute.max(1),
            },
        }
    }

    async fn allow(&self, participant: &str) -> bool {
        let allowed = self
            .limiter
            .hit(&format!("chat:{participant}"), self.rule)
            .await
            .allowed;
        if !allowed {
            self.limiter.refused("chat");
        }
        allowed
    }
}

fn refusal(code: ErrorCode, message: &str, key: &str) -> Vec<ServerMessage> {
    vec![ServerMessage::Error {
        code,
        message: message.to_string(),
        about: Some(key.chars().take(CHAT_KEY_MAX).collect()),
    }]
}

fn key_is_valid(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= CHAT_KEY_MAX
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What sending chat needs from the server: the database, the room (for
/// the recipient's presence and to wake everyone), and the rate limit.
pub struct ChatCx<'a> {
    pub db: &'a AnyPool,
    pub rooms: &'a Rooms,
    pub limits: &'a ChatLimits,
}

/// Who sends (from the connection's server-side identity).
pub struct Sender<'a> {
    pub participant_id: &'a str,
    pub display_name: &'a str,
}

pub async fn send(
    cx: &ChatCx<'_>,
    caller: &Sender<'_>,
    room: &str,
    key: String,
    text: String,
    to: Option<PeerId>,
) -> Vec<ServerMessage> {
    if !key_is_valid(&key) {
        return refusal(
            ErrorCode::ChatBadKey,
            "key: 1-64 letters, digits, - or _",
            &key,
        );
    }
    let db = cx.db;
    // A resend of something already stored: confirm it again, store
    // nothing, and do not count it against the rate.
    match store::find_by_key(db, room, caller.participant_id, &key).await {
        Ok(Some(message)) => return vec![ack(&message)],
        Ok(None) => {}
        Err(err) => {
            tracing::error!(error = %err, "chat lookup failed");
            return refusal(ErrorCode::Internal, "not stored; retry", &key);
        }
    }
    // Line breaks made one kind; control characters and bidirectional
    // overrides dropped (see `protocol::text::chat_text`).
    let text = protocol::text::chat_text(&text);
    if text.trim().is_empty() {
        return refusal(ErrorCode::ChatEmpty, "empty message", &key);
    }
    if text.chars().count() > CHAT_MAX_CHARS {
        return refusal(
            ErrorCode::ChatTooLong,
            &format!("longer than {CHAT_MAX_CHARS} characters"),
            &key,
        );
    }
    let recipient = match &to {
        Some(peer_id) => match cx.rooms.presence.get(room, peer_id).await.ok().flatten() {
            Some(peer) if peer.participant_id != caller.participant_id => {
                Some((peer.participant_id, peer.display_name))
            }
            _ => {
                return refusal(
                    ErrorCode::UnknownPeer,
                    "the recipient is not in this call",
                    &key,
                )
            }
        },
        None => None,
    };
    if !cx.limits.allow(caller.participant_id).await {
        return refusal(
            ErrorCode::RateLimited,
            "sending too fast; retry shortly",
            &key,
        );
    }
    let new = NewMessage {
        sender_id: caller.participant_id.to_string(),
        sender_name: caller.display_name.to_string(),
        key: key.clone(),
        text,
        sent_at_ms: now_ms(),
        to: recipient
            .as_ref()
            .map(|(id, name)| (id.to_string(), name.clone())),
    };
    let metrics = cx.limits.limiter.metrics();
    let stored = metrics
        .timed_query("chat_store", store::store(db, room, new))
        .await;
    let message = match stored {
        Ok(Stored::New(message)) => {
            metrics.chat_stored();
            message
        }
        Ok(Stored::Duplicate(message)) => return vec![ack(&message)],
        Err(err) => {
            // A concurrent resend of the same key may have won the race.
            if let Ok(Some(message)) =
                store::find_by_key(db, room, caller.participant_id, &key).await
            {
                return vec![ack(&message)];
            }
            tracing::error!(error = %err, "chat message not stored");
            return refusal(ErrorCode::Internal, "not stored; retry", &key);
        }
    };
    // Stored: now wake the room. If this is lost, clients fill the gap from
    // the database when they see the next sequence number or reconnect.
    let event = match &recipient {
        None => RoomEvent::Broadcast {
            skip: None,
            message: ServerMessage::Chat {
                message: message.clone(),
            },
        },
        Some((recipient_id, _)) => RoomEvent::Participants {
            ids: vec![caller.participant_id.into(), recipient_id.clone()],
            message: ServerMessage::Chat {
                message: message.clone(),
            },
        },
    };
    if let Err(err) = cx.rooms.bus.publish(room, event).await {
        tracing::warn!(error = %err, "chat stored but not announced");
    }
    vec![ack(&message)]
}

fn ack(message: &protocol::ChatMessage) -> ServerMessage {
    ServerMessage::ChatAck {
        key: message.key.clone(),
        seq: message.seq,
        sent_at_ms: message.sent_at_ms,
    }
}

pub async fn head(db: &AnyPool, room: &str, viewer: &str) -> Result<i64, sqlx::Error> {
    store::head(db, room, viewer).await
}

pub async fn sync(db: &AnyPool, room: &str, viewer: &str, after: i64) -> Vec<ServerMessage> {
    match store::after(db, room, viewer, after.max(0), CHAT_PAGE + 1).await {
        Ok(mut messages) => {
            let more = messages.len() > CHAT_PAGE;
            messages.truncate(CHAT_PAGE);
            vec![ServerMessage::ChatBatch {
                messages,
                older: false,
                more,
            }]
        }
        Err(err) => {
            tracing::error!(error = %err, "chat sync failed");
            vec![ServerMessage::error(
                ErrorCode::Internal,
                "chat unavailable; retry",
            )]
        }
    }
}

pub async fn older(db: &AnyPool, room: &str, viewer: &str, before: i64) -> Vec<ServerMessage> {
    match store::before(db, room, viewer, before, CHAT_PAGE + 1).await {
        Ok(mut messages) => {
            let more = messages.len() > CHAT_PAGE;
            if more {
                messages.remove(0);
            }
            vec![ServerMessage::ChatBatch {
                messages,
                older: true,
                more,
            }]
        }
        Err(err) => {
            tracing::error!(error = %err, "chat history failed");
            vec![ServerMessage::error(
                ErrorCode::Internal,
                "chat unavailable; retry",
            )]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_text_are_checked() {
        assert!(key_is_valid("m-1_abc"));
        assert!(!key_is_valid(""));
        assert!(!key_is_valid("has space"));
        assert!(!key_is_valid(&"k".repeat(CHAT_KEY_MAX + 1)));
        assert_eq!(protocol::text::chat_text("a\u{0}b\nc\u{7}"), "ab\nc");
    }

    #[tokio::test]
    async fn chat_limit_is_per_person() {
        let limits = ChatLimits::new(Arc::new(Limiter::default()), 2, 60);
        assert!(limits.allow("ann").await);
        assert!(limits.allow("ann").await);
        assert!(!limits.allow("ann").await);
        assert!(limits.allow("bob").await);
    }
}
