//! The contract every `RoomPlacement` keeps, as one suite that each side
//! runs (in-process here; Redis in the server's tests). Rooms are named
//! after `label` plus a random part, so runs can share a Redis.

use super::{Claim, Lease, RoomPlacement};
use crate::ids::{InstanceId, RoomId};

const TTL: i64 = 10_000;

fn granted(claim: Claim, what: &str) -> Lease {
    match claim {
        Claim::Granted(lease) => lease,
        Claim::HeldBy(lease) => panic!("{what}: refused, held by {lease:?}"),
    }
}

fn ok<T>(result: Result<T, super::PlacementError>) -> T {
    result.unwrap_or_else(|e| panic!("placement failed: {e}"))
}

pub async fn placement_contract(placement: &dyn RoomPlacement, label: &str) {
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let room = RoomId::new(format!("{label}-{unique}"));
    let other_room = RoomId::new(format!("{label}-{unique}-other"));
    let a = InstanceId::new(format!("a-{unique}"));
    let b = InstanceId::new(format!("b-{unique}"));
    let t0 = 1_800_000_000_000_i64;

    // Nobody holds a room at first.
    assert_eq!(ok(placement.holder(&room, t0).await), None, "{label}");

    // The first claim wins; the holder is visible to all.
    let first = granted(ok(placement.claim(&room, &a, TTL, t0).await), "first claim");
    assert_eq!(first.instance, a);
    assert_eq!(first.room, room);
    assert_eq!(first.expires_at_ms, t0 + TTL);
    assert_eq!(
        ok(placement.holder(&room, t0 + 1).await),
        Some(first.clone())
    );

    // Another instance is sent to the holder while the lease lives.
    assert_eq!(
        ok(placement.claim(&room, &b, TTL, t0 + 5_000).await),
        Claim::HeldBy(first.clone()),
        "{label}: a live lease is not taken"
    );
    // Rooms are independent.
    let elsewhere = granted(
        ok(placement.claim(&other_room, &b, TTL, t0).await),
        "claim of another room",
    );
    assert_eq!(elsewhere.instance, b);

    // The holder's claim again renews, keeping its epoch; so does renew.
    let again = granted(
        ok(placement.claim(&room, &a, TTL, t0 + 6_000).await),
        "re-claim",
    );
    assert_eq!(
        (again.epoch, again.expires_at_ms),
        (first.epoch, t0 + 16_000)
    );
    let renewed = ok(placement.renew(&first, TTL, t0 + 8_000).await).expect("renewed");
    assert_eq!(
        (renewed.epoch, renewed.expires_at_ms),
        (first.epoch, t0 + 18_000)
    );
    // Only the holder renews.
    let impostor = Lease {
        instance: b.clone(),
        ..first.clone()
    };
    assert_eq!(ok(placement.renew(&impostor, TTL, t0 + 8_000).await), None);
    assert!(!ok(placement.release(&impostor).await));

    // The holder goes silent: its lease runs out, it is no longer the
    // holder, and the next instance takes the room under a higher epoch.
    assert_eq!(ok(placement.holder(&room, t0 + 18_000).await), None);
    let taken = granted(
        ok(placement.claim(&room, &b, TTL, t0 + 18_000).await),
        "claim after expiry",
    );
    assert_eq!(taken.instance, b);
    assert!(
        taken.epoch > first.epoch,
        "{label}: a new holder, a higher epoch"
    );
    // The old holder comes back: fenced off.
    assert_eq!(ok(placement.renew(&first, TTL, t0 + 19_000).await), None);
    assert!(!ok(placement.release(&first).await));
    assert_eq!(
        ok(placement.claim(&room, &a, TTL, t0 + 19_000).await),
        Claim::HeldBy(taken.clone())
    );

    // A release frees the room at once; the next holder's epoch is higher
    // still.
    assert!(ok(placement.release(&taken).await));
    assert_eq!(ok(placement.holder(&room, t0 + 19_000).await), None);
    let next = granted(
        ok(placement.claim(&room, &a, TTL, t0 + 19_500).await),
        "claim after release",
    );
    assert!(next.epoch > taken.epoch, "{label}: epochs only grow");
    assert!(ok(placement.release(&next).await));
    assert!(ok(placement.release(&elsewhere).await));
}
