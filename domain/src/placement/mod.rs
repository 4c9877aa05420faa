//! Room placement: which instance hosts a room's media.
//!
//! A mesh room needs none (browsers send media to each other), but a room
//! on the built-in SFU has its media on exactly one instance, and every
//! instance must agree on which. The holder keeps a lease on the room and
//! renews it well before it expires; when the holder dies its lease runs
//! out and another instance may claim the room. Each new holder gets a
//! higher epoch, so a holder that was cut off and comes back can tell (its
//! renewal is refused) and must let go of the room's media.
//!
//! - [`LocalPlacement`]: one process. Every claim is this instance's own;
//!   the rules are the same so both sides pass one contract suite.
//! - [`redis::RedisPlacement`]: shared through Redis, atomically (Lua).

pub mod redis;

#[cfg(any(test, feature = "contract-tests"))]
pub mod contract;

use crate::ids::{InstanceId, RoomId};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;

/// One instance's hold on a room's media, until `expires_at_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub room: RoomId,
    pub instance: InstanceId,
    /// Higher for every new holder of this room; the same across renewals.
    pub epoch: u64,
    pub expires_at_ms: i64,
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The caller holds the room (newly, or renewed if it held it already).
    Granted(Lease),
    /// Another instance holds a live lease: send the room's media there.
    HeldBy(Lease),
}

#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    #[error("room placement unavailable: {0}")]
    Unavailable(String),
}

#[async_trait::async_trait]
pub trait RoomPlacement: Send + Sync + 'static {
    /// Makes `instance` the holder of `room` for `ttl_ms` from `now_ms`,
    /// unless another instance holds a lease that has not expired.
    async fn claim(
        &self,
        room: &RoomId,
        instance: &InstanceId,
        ttl_ms: i64,
        now_ms: i64,
    ) -> Result<Claim, PlacementError>;

    /// Extends `lease` if its instance still holds the room under its
    /// epoch (even just after expiry, as long as nobody took over); None
    /// when the room was lost.
    async fn renew(
        &self,
        lease: &Lease,
        ttl_ms: i64,
        now_ms: i64,
    ) -> Result<Option<Lease>, PlacementError>;

    /// Lets go of the room, if `lease` still holds it; true when it did.
    async fn release(&self, lease: &Lease) -> Result<bool, PlacementError>;

    /// The live lease on `room` at `now_ms`, if any.
    async fn holder(&self, room: &RoomId, now_ms: i64) -> Result<Option<Lease>, PlacementError>;
}

/// The decision every side makes, given the room's current lease: the
/// same rule for the in-process side and (in Lua) Redis. `fresh_epoch` is
/// the epoch a new holder gets (higher than any handed out before).
pub fn decide_claim(
    current: Option<&Lease>,
    room: &RoomId,
    instance: &InstanceId,
    ttl_ms: i64,
    now_ms: i64,
    fresh_epoch: u64,
) -> Claim {
    match current {
        Some(lease) if lease.instance == *instance => Claim::Granted(Lease {
            expires_at_ms: now_ms + ttl_ms,
            ..lease.clone()
        }),
        Some(lease) if lease.expires_at_ms > now_ms => Claim::HeldBy(lease.clone()),
        _ => Claim::Granted(Lease {
            room: room.clone(),
            instance: instance.clone(),
            epoch: fresh_epoch,
            expires_at_ms: now_ms + ttl_ms,
        }),
    }
}

#[derive(Default)]
struct Leases {
    by_room: HashMap<RoomId, Lease>,
    /// The last epoch handed out, for any room: epochs only grow, and a
    /// released room leaves nothing behind.
    last_epoch: u64,
}

/// Placement inside one process.
#[derive(Default)]
pub struct LocalPlacement {
    leases: Mutex<Leases>,
}

impl LocalPlacement {
    fn with_leases<T>(&self, f: impl FnOnce(&mut Leases) -> T) -> T {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut leases)
    }
}

/// Whether `current` is still exactly `lease` (same holder, same epoch).
fn same_hold(current: Option<&Lease>, lease: &Lease) -> bool {
    current.is_some_and(|c| c.instance == lease.instance && c.epoch == lease.epoch)
}

#[async_trait::async_trait]
impl RoomPlacement for LocalPlacement {
    async fn claim(
        &self,
        room: &RoomId,
        instance: &InstanceId,
        ttl_ms: i64,
        now_ms: i64,
    ) -> Result<Claim, PlacementError> {
        Ok(self.with_leases(|leases| {
            let fresh = leases.last_epoch + 1;
            let claim = decide_claim(
                leases.by_room.get(room),
                room,
                instance,
                ttl_ms,
                now_ms,
                fresh,
            );
            if let Claim::Granted(lease) = &claim {
                leases.last_epoch = leases.last_epoch.max(lease.epoch);
                leases.by_room.insert(room.clone(), lease.clone());
            }
            claim
        }))
    }

    async fn renew(
        &self,
        lease: &Lease,
        ttl_ms: i64,
        now_ms: i64,
    ) -> Result<Option<Lease>, PlacementError> {
        Ok(self.with_leases(|leases| {
            let current = leases.by_room.get_mut(&lease.room)?;
            if !same_hold(Some(current), lease) {
                return None;
            }
            current.expires_at_ms = now_ms + ttl_ms;
            Some(current.clone())
        }))
    }

    async fn release(&self, lease: &Lease) -> Result<bool, PlacementError> {
        Ok(self.with_leases(|leases| {
            let held = same_hold(leases.by_room.get(&lease.room), lease);
            if held {
                leases.by_room.remove(&lease.room);
            }
            held
        }))
    }

    async fn holder(&self, room: &RoomId, now_ms: i64) -> Result<Option<Lease>, PlacementError> {
        Ok(self.with_leases(|leases| {
            leases
                .by_room
                .get(room)
                .filter(|lease| lease.expires_at_ms > now_ms)
                .cloned()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_in_process_side_keeps_the_contract() {
        contract::placement_contract(&LocalPlacement::default(), "local").await;
    }

    #[test]
    fn an_expired_lease_passes_to_the_next_instance_with_a_higher_epoch() {
        let room = RoomId::from("r");
        let old = Lease {
            room: room.clone(),
            instance: InstanceId::from("a"),
            epoch: 4,
            expires_at_ms: 100,
        };
        let b = InstanceId::from("b");
        assert_eq!(
            decide_claim(Some(&old), &room, &b, 50, 99, 5),
            Claim::HeldBy(old.clone())
        );
        match decide_claim(Some(&old), &room, &b, 50, 100, 5) {
            Claim::Granted(lease) => {
                assert_eq!((lease.epoch, lease.expires_at_ms), (5, 150));
                assert_eq!(lease.instance, b);
            }
            Claim::HeldBy(_) => panic!("expired lease still held"),
        }
    }
}
