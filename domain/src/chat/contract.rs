//! The contract of chat storage, as one suite each database runs (SQLite
//! and PostgreSQL, from `server/tests/contracts.rs`: the suite needs a
//! meeting to attach messages to).

use super::{after, before, find_by_key, head, store, NewMessage, Stored};
use sqlx::AnyPool;

fn new(sender: &str, key: &str, text: &str, to: Option<&str>) -> NewMessage {
    NewMessage {
        sender_id: sender.to_string(),
        sender_name: format!("{sender} name"),
        key: key.to_string(),
        text: text.to_string(),
        sent_at_ms: 1_800_000_000_000,
        to: to.map(|id| (id.to_string(), format!("{id} name"))),
    }
}

fn stored_new(stored: Stored) -> protocol::ChatMessage {
    match stored {
        Stored::New(message) => message,
        Stored::Duplicate(message) => panic!("stored before: {message:?}"),
    }
}

fn ok<T>(result: sqlx::Result<T>) -> T {
    result.unwrap_or_else(|e| panic!("chat store failed: {e}"))
}

/// `meeting_id` must name a meeting with no chat yet.
pub async fn chat_store_contract(db: &AnyPool, meeting_id: &str) {
    assert_eq!(ok(head(db, meeting_id, "ann").await), 0, "no chat yet");

    // Numbered from 1 in the order stored.
    let first = stored_new(ok(
        store(db, meeting_id, new("ann", "k1", "hello", None)).await
    ));
    let second = stored_new(ok(
        store(db, meeting_id, new("bob", "k1", "hi ann", None)).await
    ));
    assert_eq!(
        (first.seq, second.seq),
        (1, 2),
        "the same key from another sender is new"
    );

    // A resend finds the first copy, unchanged, and leaves no gap.
    match ok(store(db, meeting_id, new("ann", "k1", "edited?", None)).await) {
        Stored::Duplicate(copy) => assert_eq!(copy, first),
        Stored::New(message) => panic!("stored twice: {message:?}"),
    }
    assert_eq!(
        ok(find_by_key(db, meeting_id, "ann", "k1").await),
        Some(first.clone())
    );
    assert_eq!(ok(find_by_key(db, meeting_id, "ann", "nope").await), None);

    // A private message: seen by its sender and its recipient only.
    let private = stored_new(ok(store(
        db,
        meeting_id,
        new("bob", "k2", "psst", Some("cat")),
    )
    .await));
    assert_eq!(private.seq, 3);
    assert_eq!(private.to_id.as_deref(), Some("cat"));
    let third = stored_new(ok(
        store(db, meeting_id, new("ann", "k3", "all", None)).await
    ));
    assert_eq!(third.seq, 4);
    let seqs = |messages: Vec<protocol::ChatMessage>| -> Vec<i64> {
        messages.into_iter().map(|m| m.seq).collect()
    };
    assert_eq!(
        seqs(ok(after(db, meeting_id, "cat", 0, 100).await)),
        [1, 2, 3, 4]
    );
    assert_eq!(
        seqs(ok(after(db, meeting_id, "bob", 0, 100).await)),
        [1, 2, 3, 4]
    );
    assert_eq!(
        seqs(ok(after(db, meeting_id, "ann", 0, 100).await)),
        [1, 2, 4]
    );
    assert_eq!(ok(head(db, meeting_id, "ann").await), 4);
    assert_eq!(ok(head(db, meeting_id, "dan").await), 4);

    // Pages: after a number, oldest first; before a number, the newest
    // ones below it, oldest first.
    assert_eq!(seqs(ok(after(db, meeting_id, "cat", 1, 2).await)), [2, 3]);
    assert_eq!(seqs(ok(before(db, meeting_id, "cat", 4, 2).await)), [2, 3]);
    assert_eq!(seqs(ok(before(db, meeting_id, "ann", 4, 10).await)), [1, 2]);
    assert!(ok(after(db, meeting_id, "cat", 4, 10).await).is_empty());

    // Another meeting's chat is not this one's.
    assert!(ok(after(db, "no-such-meeting", "cat", 0, 10).await).is_empty());
}
