//! The contract every `PathStore` keeps, as one suite each side runs
//! (in-process here; Redis in the server's tests). It is given two
//! handles on one store (for Redis: two instances' own connections);
//! rooms are named after `label` plus a random part, so runs can share a
//! Redis.

use super::{Observed, PathPolicy, PathStore, PathStoreError};
use futures_util::future::join_all;
use protocol::MediaPath;
use std::sync::Arc;

const T0: i64 = 1_800_000_000_000;
const SECOND: i64 = 1_000;

fn ok<T>(result: Result<T, PathStoreError>) -> T {
    result.unwrap_or_else(|e| panic!("media path store failed: {e}"))
}

/// Many observers of one room at once, spread over both handles: how many
/// were told of a change, and the paths they saw.
async fn crowd(
    stores: &[Arc<dyn PathStore>; 2],
    room: &str,
    size: usize,
    now_ms: i64,
    policy: &PathPolicy,
) -> (usize, Vec<MediaPath>) {
    let seen: Vec<Observed> = join_all(
        (0..8).map(|i| async move { ok(stores[i % 2].observe(room, size, now_ms, policy).await) }),
    )
    .await;
    (
        seen.iter().filter(|o| o.changed).count(),
        seen.iter().map(|o| o.path).collect(),
    )
}

pub async fn paths_contract(stores: [Arc<dyn PathStore>; 2], label: &str) {
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let room = format!("{label}-{unique}");
    let other = format!("{label}-{unique}-other");
    let policy = PathPolicy::default();
    let [one, two] = &stores;

    // Nothing kept: direct.
    assert_eq!(ok(one.current(&room).await), MediaPath::Direct, "{label}");
    let small = ok(one.observe(&room, 2, T0, &policy).await);
    assert_eq!(
        small,
        Observed {
            path: MediaPath::Direct,
            changed: false
        },
        "{label}"
    );

    // The fifth arrival, seen by many at once on both sides: everyone sees
    // the server, exactly one is told it moved (and tells the room).
    let (told, paths) = crowd(&stores, &room, 5, T0, &policy).await;
    assert_eq!(told, 1, "{label}: one observer announces the move");
    assert!(
        paths.iter().all(|p| *p == MediaPath::Server),
        "{label}: {paths:?}"
    );
    assert_eq!(ok(two.current(&room).await), MediaPath::Server, "{label}");
    let again = ok(two.observe(&room, 6, T0 + SECOND, &policy).await);
    assert_eq!(
        again,
        Observed {
            path: MediaPath::Server,
            changed: false
        },
        "{label}: staying big is no news"
    );

    // Another room is its own.
    assert_eq!(
        ok(two.observe(&other, 3, T0, &policy).await).path,
        MediaPath::Direct,
        "{label}"
    );
    assert_eq!(ok(one.current(&other).await), MediaPath::Direct, "{label}");

    // Small on one side, still small on the other 29 s later: no move yet.
    let since = T0 + 2 * SECOND;
    assert_eq!(
        ok(one.observe(&room, 2, since, &policy).await).path,
        MediaPath::Server,
        "{label}"
    );
    assert_eq!(
        ok(two.observe(&room, 2, since + 29 * SECOND, &policy).await),
        Observed {
            path: MediaPath::Server,
            changed: false
        },
        "{label}: the 30 s count is kept for the room, not per handle"
    );
    // 30 s after it became small, on either side: back to direct, once.
    let (told, paths) = crowd(&stores, &room, 2, since + 30 * SECOND, &policy).await;
    assert_eq!(told, 1, "{label}: one observer announces the way back");
    assert!(
        paths.iter().all(|p| *p == MediaPath::Direct),
        "{label}: {paths:?}"
    );
    assert_eq!(ok(one.current(&room).await), MediaPath::Direct, "{label}");

    // Someone coming back within the 30 s starts the count over.
    let up = since + 40 * SECOND;
    assert!(
        ok(one.observe(&room, 5, up, &policy).await).changed,
        "{label}"
    );
    ok(two.observe(&room, 2, up + SECOND, &policy).await);
    ok(one.observe(&room, 3, up + 20 * SECOND, &policy).await);
    ok(two.observe(&room, 2, up + 21 * SECOND, &policy).await);
    assert_eq!(
        ok(one.observe(&room, 2, up + 40 * SECOND, &policy).await).path,
        MediaPath::Server,
        "{label}: 19 s since it became small again"
    );

    // The call empties: the move back is told, and the room is forgotten,
    // so a call that starts again starts direct.
    let empty = up + 50 * SECOND;
    let (told, paths) = crowd(&stores, &room, 1, empty, &policy).await;
    assert_eq!(told, 1, "{label}: the emptied room's move is told once");
    assert!(paths.iter().all(|p| *p == MediaPath::Direct), "{label}");
    assert_eq!(ok(two.current(&room).await), MediaPath::Direct, "{label}");
    assert_eq!(
        ok(two.observe(&room, 4, empty + SECOND, &policy).await),
        Observed {
            path: MediaPath::Direct,
            changed: false
        },
        "{label}"
    );
}
