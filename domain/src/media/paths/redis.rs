//! Automatic rooms' paths shared through Redis.
//!
//! One string per room (`moim:media-path:{room}`: the [`RoomPath`] as
//! JSON; absent means direct). An observation reads it, applies the one
//! rule ([`super::next_path`], in Rust, so both sides cannot drift apart)
//! and writes the result back only if the room's state is still what it
//! read (compare-and-set in one Lua script), trying again when another
//! instance got there first. So of all the instances observing a switch,
//! exactly one sees `changed` and announces it on the room bus. An
//! observation that changes nothing (most of them: every call connection
//! observes its room at each heartbeat) is one round trip and no write.
//! Every read renews the key's expiry; a room nobody observes for
//! [`KEEP_MS`] is forgotten.

use super::{next_path, Observed, PathPolicy, PathStore, PathStoreError, RoomPath};
use protocol::MediaPath;
use redis::aio::ConnectionManager;
use redis::Script;

/// How long a room's state outlives its last observation.
const KEEP_MS: i64 = 60 * 60 * 1_000;
/// Observations of one room racing on many instances: a few rounds settle
/// any realistic crowd (each round someone wins).
const ATTEMPTS: usize = 16;

fn room_key(room: &str) -> String {
    format!("moim:media-path:{room}")
}

fn unavailable(err: redis::RedisError) -> PathStoreError {
    PathStoreError::Unavailable(err.to_string())
}

/// A kept state that cannot be read counts as nothing kept (direct): it
/// can only come from another version, and the next write replaces it.
fn parse(raw: Option<&str>) -> Option<RoomPath> {
    raw.and_then(|text| serde_json::from_str(text).ok())
}

pub struct RedisPathStore {
    manager: ConnectionManager,
    /// KEYS: room. ARGV: expiry in ms. The kept state (renewed), or nil.
    read: Script,
    /// KEYS: room. ARGV: the value read ('' for none), the value to keep
    /// ('' to forget the room), expiry in ms. 1 when written, 0 when the
    /// room changed since it was read.
    compare_and_set: Script,
}

impl RedisPathStore {
    pub fn new(manager: ConnectionManager) -> Self {
        Self {
            manager,
            read: Script::new(
                r"
                local cur = redis.call('GET', KEYS[1])
                if cur then redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1])) end
                return cur
                ",
            ),
            compare_and_set: Script::new(
                r"
                local cur = redis.call('GET', KEYS[1])
                if cur == false then cur = '' end
                if cur ~= ARGV[1] then return 0 end
                if ARGV[2] == '' then
                  redis.call('DEL', KEYS[1])
                else
                  redis.call('SET', KEYS[1], ARGV[2], 'PX', tonumber(ARGV[3]))
                end
                return 1
                ",
            ),
        }
    }

    /// Connects to `url`, failing if Redis does not answer.
    pub async fn connect(url: &str) -> Result<Self, PathStoreError> {
        let manager = crate::rooms::redis::command_connection(url)
            .await
            .map_err(unavailable)?;
        Ok(Self::new(manager))
    }

    async fn read(&self, room: &str) -> Result<Option<String>, PathStoreError> {
        self.read
            .key(room_key(room))
            .arg(KEEP_MS)
            .invoke_async(&mut self.manager.clone())
            .await
            .map_err(unavailable)
    }
}

#[async_trait::async_trait]
impl PathStore for RedisPathStore {
    async fn observe(
        &self,
        room: &str,
        size: usize,
        now_ms: i64,
        policy: &PathPolicy,
    ) -> Result<Observed, PathStoreError> {
        for _ in 0..ATTEMPTS {
            let read = self.read(room).await?;
            let (keep, observed) = next_path(parse(read.as_deref()).as_ref(), size, now_ms, policy);
            let keep = match keep {
                Some(state) => serde_json::to_string(&state)
                    .map_err(|e| PathStoreError::Unavailable(e.to_string()))?,
                None => String::new(),
            };
            if keep == read.as_deref().unwrap_or_default() {
                // Nothing to change: the path as of the read (a change made
                // since by someone else is theirs to announce).
                return Ok(observed);
            }
            let written: i64 = self
                .compare_and_set
                .key(room_key(room))
                .arg(read.unwrap_or_default())
                .arg(keep)
                .arg(KEEP_MS)
                .invoke_async(&mut self.manager.clone())
                .await
                .map_err(unavailable)?;
            if written == 1 {
                return Ok(observed);
            }
        }
        Err(PathStoreError::Contended(room.to_string()))
    }

    async fn current(&self, room: &str) -> Result<MediaPath, PathStoreError> {
        let read = self.read(room).await?;
        Ok(parse(read.as_deref()).map_or(MediaPath::Direct, |state| state.path))
    }
}
