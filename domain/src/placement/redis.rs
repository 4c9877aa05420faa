//! Room placement shared through Redis.
//!
//! One hash per room (`moim:placement:room:{id}`: instance, epoch, expiry)
//! and one counter for epochs (`moim:placement:epoch`, never expiring, so a
//! new holder's epoch is higher than any before it while Redis keeps its
//! data). Every change is one Lua script, so two instances claiming at once
//! cannot both win. Expiry is decided on the time the caller passes in
//! (instances' clocks must agree to well within a lease, as NTP gives);
//! Redis's own expiry only clears hashes of rooms nobody renews.

use super::{Claim, Lease, PlacementError, RoomPlacement};
use crate::ids::{InstanceId, RoomId};
use redis::aio::ConnectionManager;
use redis::Script;

const EPOCH_KEY: &str = "moim:placement:epoch";
/// How long Redis keeps a room's hash after its lease expired.
const GRACE_MS: i64 = 60_000;

fn room_key(room: &RoomId) -> String {
    format!("moim:placement:room:{room}")
}

fn unavailable(err: redis::RedisError) -> PlacementError {
    PlacementError::Unavailable(err.to_string())
}

pub struct RedisPlacement {
    manager: ConnectionManager,
    claim: Script,
    renew: Script,
    release: Script,
}

impl RedisPlacement {
    pub fn new(manager: ConnectionManager) -> Self {
        Self {
            manager,
            // KEYS: room, epoch counter. ARGV: instance, ttl, now, grace.
            // The same rule as `super::decide_claim`.
            claim: Script::new(
                r"
                local cur = redis.call('HMGET', KEYS[1], 'instance', 'epoch', 'expires')
                local ttl, now = tonumber(ARGV[2]), tonumber(ARGV[3])
                if cur[1] and cur[1] == ARGV[1] then
                  redis.call('HSET', KEYS[1], 'expires', now + ttl)
                  redis.call('PEXPIRE', KEYS[1], ttl + tonumber(ARGV[4]))
                  return {'granted', cur[1], tonumber(cur[2]), now + ttl}
                end
                if cur[1] and tonumber(cur[3]) > now then
                  return {'held', cur[1], tonumber(cur[2]), tonumber(cur[3])}
                end
                local epoch = redis.call('INCR', KEYS[2])
                redis.call('HSET', KEYS[1], 'instance', ARGV[1], 'epoch', epoch, 'expires', now + ttl)
                redis.call('PEXPIRE', KEYS[1], ttl + tonumber(ARGV[4]))
                return {'granted', ARGV[1], epoch, now + ttl}
                ",
            ),
            // KEYS: room. ARGV: instance, epoch, ttl, now, grace.
            renew: Script::new(
                r"
                local cur = redis.call('HMGET', KEYS[1], 'instance', 'epoch')
                if cur[1] ~= ARGV[1] or cur[2] ~= ARGV[2] then return false end
                local expires = tonumber(ARGV[4]) + tonumber(ARGV[3])
                redis.call('HSET', KEYS[1], 'expires', expires)
                redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) + tonumber(ARGV[5]))
                return expires
                ",
            ),
            // KEYS: room. ARGV: instance, epoch.
            release: Script::new(
                r"
                local cur = redis.call('HMGET', KEYS[1], 'instance', 'epoch')
                if cur[1] ~= ARGV[1] or cur[2] ~= ARGV[2] then return 0 end
                redis.call('DEL', KEYS[1])
                return 1
                ",
            ),
        }
    }

    /// Connects to `url`, failing if Redis does not answer.
    pub async fn connect(url: &str) -> Result<Self, PlacementError> {
        let manager = crate::rooms::redis::command_connection(url)
            .await
            .map_err(unavailable)?;
        Ok(Self::new(manager))
    }

    fn conn(&self) -> ConnectionManager {
        self.manager.clone()
    }
}

#[async_trait::async_trait]
impl RoomPlacement for RedisPlacement {
    async fn claim(
        &self,
        room: &RoomId,
        instance: &InstanceId,
        ttl_ms: i64,
        now_ms: i64,
    ) -> Result<Claim, PlacementError> {
        let (status, holder, epoch, expires_at_ms): (String, String, u64, i64) = self
            .claim
            .key(room_key(room))
            .key(EPOCH_KEY)
            .arg(instance.as_str())
            .arg(ttl_ms)
            .arg(now_ms)
            .arg(GRACE_MS)
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        let lease = Lease {
            room: room.clone(),
            instance: InstanceId::from(holder),
            epoch,
            expires_at_ms,
        };
        Ok(if status == "granted" {
            Claim::Granted(lease)
        } else {
            Claim::HeldBy(lease)
        })
    }

    async fn renew(
        &self,
        lease: &Lease,
        ttl_ms: i64,
        now_ms: i64,
    ) -> Result<Option<Lease>, PlacementError> {
        let expires_at_ms: Option<i64> = self
            .renew
            .key(room_key(&lease.room))
            .arg(lease.instance.as_str())
            .arg(lease.epoch)
            .arg(ttl_ms)
            .arg(now_ms)
            .arg(GRACE_MS)
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        Ok(expires_at_ms.map(|expires_at_ms| Lease {
            expires_at_ms,
            ..lease.clone()
        }))
    }

    async fn release(&self, lease: &Lease) -> Result<bool, PlacementError> {
        let released: i64 = self
            .release
            .key(room_key(&lease.room))
            .arg(lease.instance.as_str())
            .arg(lease.epoch)
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        Ok(released == 1)
    }

    async fn holder(&self, room: &RoomId, now_ms: i64) -> Result<Option<Lease>, PlacementError> {
        let (instance, epoch, expires): (Option<String>, Option<u64>, Option<i64>) =
            redis::cmd("HMGET")
                .arg(room_key(room))
                .arg("instance")
                .arg("epoch")
                .arg("expires")
                .query_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
        Ok(match (instance, epoch, expires) {
            (Some(instance), Some(epoch), Some(expires_at_ms)) if expires_at_ms > now_ms => {
                Some(Lease {
                    room: room.clone(),
                    instance: InstanceId::from(instance),
                    epoch,
                    expires_at_ms,
                })
            }
            _ => None,
        })
    }
}
