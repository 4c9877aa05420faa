//! Rooms shared across instances through Redis (`REDIS_URL`).
//!
//! - Fan-out: one pub/sub channel per room (`moim:room:{id}`). Each
//!   instance subscribes to the rooms it has connections in and hands what
//!   arrives to its local `Fanout`. The subscriber connection is our own
//!   loop: it reconnects with backoff and subscribes again to every active
//!   room; afterwards it asks local connections to resynchronise (events
//!   published meanwhile are gone; chat comes back from the database).
//! - Publishing goes through the redis crate's `ConnectionManager`, which
//!   reconnects by itself. When Redis cannot be reached, events are handed
//!   to this instance's connections directly, so people on the same
//!   instance keep talking.
//! - Presence: three hashes per room (peer info, participant, holding
//!   connection) and one sorted set of expiries for all rooms, changed only
//!   by Lua scripts so each step is atomic across instances.

use super::bus::{BusError, RoomBus, RoomEvent, SharedEvent};
use super::local::Fanout;
use super::{Announce, JoinOutcome, PeerChange, Presence, PresenceEntry, PresenceError};
use crate::ids::{ConnectionId, ParticipantId, PeerId};
use futures_util::StreamExt;
use protocol::PeerInfo;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot};

const EXPIRY_KEY: &str = "moim:presence:expiry";

fn channel(room: &str) -> String {
    format!("moim:room:{room}")
}

fn room_of_channel(channel: &str) -> Option<&str> {
    channel.strip_prefix("moim:room:")
}

fn keys(room: &str) -> [String; 4] {
    [
        format!("moim:presence:{room}:info"),
        format!("moim:presence:{room}:who"),
        format!("moim:presence:{room}:conn"),
        EXPIRY_KEY.to_string(),
    ]
}

fn member(room: &str, peer: &str) -> String {
    format!("{room}|{peer}")
}

fn unavailable(err: redis::RedisError) -> PresenceError {
    PresenceError::Unavailable(err.to_string())
}

/// How every Redis connection of moim is kept: short timeouts, so an
/// outage costs a request milliseconds, not seconds, before the in-process
/// fallback answers; reconnecting by itself.
pub fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(1000))
}

/// A command connection to `url`, kept as [`manager_config`] says; fails
/// if Redis does not answer (at start-up). Each Redis side of a boundary
/// opens its own.
pub async fn command_connection(url: &str) -> Result<ConnectionManager, redis::RedisError> {
    let client = redis::Client::open(url)?;
    ConnectionManager::new_with_config(client, manager_config()).await
}

/// Connects (failing start-up if Redis does not answer) and starts the
/// subscriber loop.
pub async fn connect(url: &str) -> Result<(Arc<RedisBus>, Arc<RedisPresence>), redis::RedisError> {
    connect_counted(url, crate::metrics::Metrics::default()).await
}

/// [`connect`], counting publish failures and resubscriptions in `metrics`.
pub async fn connect_counted(
    url: &str,
    metrics: crate::metrics::Metrics,
) -> Result<(Arc<RedisBus>, Arc<RedisPresence>), redis::RedisError> {
    let client = redis::Client::open(url)?;
    let manager = ConnectionManager::new_with_config(client.clone(), manager_config()).await?;
    let fanout = Arc::new(Fanout::default());
    let (subscribe_tx, subscribe_rx) = mpsc::unbounded_channel::<SubscribeRequest>();
    let subscribed = Arc::new(AtomicBool::new(false));
    let publishing = Arc::new(AtomicBool::new(true));
    tokio::spawn(subscriber_loop(
        client,
        fanout.clone(),
        subscribe_rx,
        subscribed.clone(),
        publishing.clone(),
        metrics.clone(),
    ));
    let bus = Arc::new(RedisBus {
        manager: manager.clone(),
        fanout,
        subscribe_tx,
        subscribed,
        publishing,
        metrics,
    });
    let presence = Arc::new(RedisPresence::new(manager, bus.clone()));
    Ok((bus, presence))
}

impl RedisBus {
    /// After Redis took `event` for the room's channel, by a PUBLISH or by
    /// a presence script that publishes with its change.
    fn published(&self, room: &str, event: RoomEvent) {
        self.publishing.store(true, Ordering::Relaxed);
        // With our subscriber up, it comes back through the subscription,
        // in the order every instance sees; with it down, deliver here too.
        if !self.subscribed.load(Ordering::Relaxed) {
            self.fanout.deliver(room, Arc::new(SharedEvent::new(event)));
        }
    }
}

/// A room to subscribe to, and who to tell once Redis confirmed it.
type SubscribeRequest = (String, oneshot::Sender<()>);

/// How long `subscribe` waits for Redis to confirm a new room's
/// subscription before going on without it (the subscriber loop keeps
/// trying; a slow Redis must not hold up a join).
const SUBSCRIBE_CONFIRM: Duration = Duration::from_secs(2);

pub struct RedisBus {
    manager: ConnectionManager,
    fanout: Arc<Fanout>,
    subscribe_tx: mpsc::UnboundedSender<SubscribeRequest>,
    subscribed: Arc<AtomicBool>,
    publishing: Arc<AtomicBool>,
    metrics: crate::metrics::Metrics,
}

#[async_trait::async_trait]
impl RoomBus for RedisBus {
    async fn publish(&self, room: &str, event: RoomEvent) -> Result<(), BusError> {
        let payload = serde_json::to_string(&event).map_err(|e| BusError(e.to_string()))?;
        let mut manager = self.manager.clone();
        let mut sent: redis::RedisResult<i64> = manager.publish(channel(room), &payload).await;
        if sent.is_err() {
            // The first command on a connection that Redis dropped fails and
            // makes the manager reconnect: one more try.
            sent = manager.publish(channel(room), &payload).await;
        }
        match sent {
            Ok(_) => self.published(room, event),
            Err(err) => {
                self.metrics.redis_publish_failed();
                if self.publishing.swap(false, Ordering::Relaxed) {
                    tracing::warn!(error = %err, "Redis unreachable: room events stay on this instance");
                }
                self.fanout.deliver(room, Arc::new(SharedEvent::new(event)));
            }
        }
        Ok(())
    }

    async fn subscribe(
        &self,
        room: &str,
    ) -> Result<broadcast::Receiver<Arc<SharedEvent>>, BusError> {
        let (receiver, first) = self.fanout.subscribe(room);
        if first {
            // The subscriber loop subscribes now, or on its next reconnect.
            // Waiting for Redis's confirmation means an event published on
            // another instance right after this returns is not missed.
            let (confirmed_tx, confirmed) = oneshot::channel();
            if self
                .subscribe_tx
                .send((room.to_string(), confirmed_tx))
                .is_ok()
            {
                let _ = tokio::time::timeout(SUBSCRIBE_CONFIRM, confirmed).await;
            }
        }
        Ok(receiver)
    }

    fn is_healthy(&self) -> bool {
        self.subscribed.load(Ordering::Relaxed) && self.publishing.load(Ordering::Relaxed)
    }
}

async fn subscriber_loop(
    client: redis::Client,
    fanout: Arc<Fanout>,
    mut requests: mpsc::UnboundedReceiver<SubscribeRequest>,
    subscribed: Arc<AtomicBool>,
    publishing: Arc<AtomicBool>,
    metrics: crate::metrics::Metrics,
) {
    let mut backoff = Duration::from_millis(250);
    let mut was_down = false;
    loop {
        let pubsub = match client.get_async_pubsub().await {
            Ok(pubsub) => pubsub,
            Err(err) => {
                if !was_down {
                    tracing::warn!(error = %err, "Redis subscriber disconnected; retrying");
                }
                was_down = true;
                subscribed.store(false, Ordering::Relaxed);
                // Drop requests while down: the next connection subscribes
                // to every active room anyway.
                while requests.try_recv().is_ok() {}
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        let (mut sink, mut stream) = pubsub.split();
        let mut ok = true;
        for room in fanout.active_rooms() {
            if sink.subscribe(channel(&room)).await.is_err() {
                ok = false;
                break;
            }
        }
        if !ok {
            tokio::time::sleep(backoff).await;
            continue;
        }

        backoff = Duration::from_millis(250);
        subscribed.store(true, Ordering::Relaxed);
        // Redis answers again; the publishing side reconnects by itself.
        publishing.store(true, Ordering::Relaxed);
        if was_down {
            metrics.redis_resubscribed();
            tracing::info!("Redis subscriber back; asking connections to resynchronise");
            for room in fanout.active_rooms() {
                fanout.deliver(&room, Arc::new(RoomEvent::Resync.into()));
            }
        }
        loop {
            tokio::select! {
                message = stream.next() => {
                    let Some(message) = message else { break };
                    let Some(room) = room_of_channel(message.get_channel_name()) else { continue };
                    match serde_json::from_slice::<RoomEvent>(message.get_payload_bytes()) {
                        Ok(event) => fanout.deliver(room, Arc::new(SharedEvent::new(event))),
                        Err(err) => tracing::warn!(error = %err, "unreadable room event"),
                    }
                }
                request = requests.recv() => {
                    let Some((room, confirmed)) = request else { return };
                    if sink.subscribe(channel(&room)).await.is_err() {
                        break;
                    }
                    let _ = confirmed.send(());
                }
            }
        }
        tracing::warn!("Redis subscriber disconnected; reconnecting");
        subscribed.store(false, Ordering::Relaxed);
        was_down = true;
    }
}

/// Presences as this instance last stored or read them, by room and peer:
/// the value an update expects to find, so that a change and its
/// announcement take one round trip instead of a read first. Only a fast
/// path: a stale copy costs one more round trip, never a lost change.
#[derive(Default)]
struct KnownInfo {
    copies: Mutex<Copies>,
}

#[derive(Default)]
struct Copies {
    rooms: HashMap<String, HashMap<String, String>>,
    count: usize,
}

/// Copies kept at most (a few hundred bytes each). Only this instance's
/// connections update presences, and each copy goes when its connection
/// leaves; what another instance reaped stays behind, so the copies are
/// forgotten all at once past this many.
const KNOWN_INFO_MAX: usize = 50_000;

impl KnownInfo {
    fn lock(&self) -> MutexGuard<'_, Copies> {
        // Plain data: a panic elsewhere while holding it leaves nothing
        // half-done that matters.
        self.copies
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn get(&self, room: &str, peer: &str) -> Option<String> {
        self.lock().rooms.get(room)?.get(peer).cloned()
    }

    fn set(&self, room: &str, peer: &str, info: String) {
        let mut copies = self.lock();
        if copies.count >= KNOWN_INFO_MAX {
            *copies = Copies::default();
        }
        let added = copies
            .rooms
            .entry(room.to_string())
            .or_default()
            .insert(peer.to_string(), info)
            .is_none();
        if added {
            copies.count += 1;
        }
    }

    fn forget(&self, room: &str, peer: &str) {
        let mut copies = self.lock();
        let Some(peers) = copies.rooms.get_mut(room) else {
            return;
        };
        let removed = peers.remove(peer).is_some();
        if peers.is_empty() {
            copies.rooms.remove(room);
        }
        if removed {
            copies.count -= 1;
        }
    }

    fn forget_room(&self, room: &str) {
        let mut copies = self.lock();
        if let Some(peers) = copies.rooms.remove(room) {
            copies.count -= peers.len();
        }
    }
}

/// Rounds of an update that found the presence changed meanwhile (by
/// another connection of the same peer, during a takeover) before it gives
/// up as unavailable.
const UPDATE_ATTEMPTS: usize = 4;

pub struct RedisPresence {
    manager: ConnectionManager,
    /// Announcements of changes go out on this bus's channels, from the
    /// same script that stores the change.
    bus: Arc<RedisBus>,
    known: KnownInfo,
    join: Script,
    resume: Script,
    refresh: Script,
    set_info: Script,
    update_announce: Script,
    remove: Script,
    remove_expired: Script,
    clear: Script,
}

impl RedisPresence {
    fn new(manager: ConnectionManager, bus: Arc<RedisBus>) -> Self {
        Self {
            manager,
            bus,
            known: KnownInfo::default(),
            // KEYS: info, who, conn, expiry. ARGV: peer, participant, conn,
            // expires, info json, max, room.
            join: Script::new(
                r"
                local who = redis.call('HGETALL', KEYS[2])
                local others = 0
                local displaced = {}
                for i = 1, #who, 2 do
                  if who[i + 1] == ARGV[2] then table.insert(displaced, who[i]) else others = others + 1 end
                end
                if others >= tonumber(ARGV[6]) then return {'full'} end
                local out = {'joined'}
                for _, p in ipairs(displaced) do
                  local info = redis.call('HGET', KEYS[1], p)
                  if info then table.insert(out, info) end
                  redis.call('HDEL', KEYS[1], p)
                  redis.call('HDEL', KEYS[2], p)
                  redis.call('HDEL', KEYS[3], p)
                  redis.call('ZREM', KEYS[4], ARGV[7] .. '|' .. p)
                end
                redis.call('HSET', KEYS[1], ARGV[1], ARGV[5])
                redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
                redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
                redis.call('ZADD', KEYS[4], ARGV[4], ARGV[7] .. '|' .. ARGV[1])
                return out
                ",
            ),
            // ARGV: peer, participant, conn, expires, member.
            resume: Script::new(
                r"
                if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return false end
                redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
                redis.call('ZADD', KEYS[4], ARGV[4], ARGV[5])
                return redis.call('HGET', KEYS[1], ARGV[1])
                ",
            ),
            // ARGV: peer, conn, expires, member.
            refresh: Script::new(
                r"
                if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then return 0 end
                redis.call('ZADD', KEYS[4], ARGV[3], ARGV[4])
                return 1
                ",
            ),
            // ARGV: peer, info json.
            set_info: Script::new(
                r"
                if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
                redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
                return 1
                ",
            ),
            // KEYS: info, the room's channel. ARGV: peer, the info the
            // change was made to, the changed info, the event telling it.
            // Stored and published only if the info is still what the
            // change was made to; otherwise the caller gets the current
            // one to make it again.
            update_announce: Script::new(
                r"
                local info = redis.call('HGET', KEYS[1], ARGV[1])
                if not info then return {'gone'} end
                if info ~= ARGV[2] then return {'changed', info} end
                redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
                redis.call('PUBLISH', KEYS[2], ARGV[4])
                return {'stored'}
                ",
            ),
            // ARGV: peer, member.
            remove: Script::new(
                r"
                local info = redis.call('HGET', KEYS[1], ARGV[1])
                redis.call('ZREM', KEYS[4], ARGV[2])
                if not info then return false end
                redis.call('HDEL', KEYS[1], ARGV[1])
                redis.call('HDEL', KEYS[2], ARGV[1])
                redis.call('HDEL', KEYS[3], ARGV[1])
                return info
                ",
            ),
            // ARGV: peer, member, now.
            remove_expired: Script::new(
                r"
                local score = redis.call('ZSCORE', KEYS[4], ARGV[2])
                if score and tonumber(score) > tonumber(ARGV[3]) then return false end
                local info = redis.call('HGET', KEYS[1], ARGV[1])
                redis.call('ZREM', KEYS[4], ARGV[2])
                if not info then return false end
                redis.call('HDEL', KEYS[1], ARGV[1])
                redis.call('HDEL', KEYS[2], ARGV[1])
                redis.call('HDEL', KEYS[3], ARGV[1])
                return info
                ",
            ),
            // ARGV: room.
            clear: Script::new(
                r"
                local peers = redis.call('HKEYS', KEYS[1])
                for _, p in ipairs(peers) do redis.call('ZREM', KEYS[4], ARGV[1] .. '|' .. p) end
                local infos = redis.call('HVALS', KEYS[1])
                redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
                return infos
                ",
            ),
        }
    }

    fn conn(&self) -> ConnectionManager {
        self.manager.clone()
    }

    /// One presence's info as stored (JSON), without reading the room.
    async fn stored_info(
        &self,
        room: &str,
        peer_id: &str,
    ) -> Result<Option<String>, PresenceError> {
        let [info_key, ..] = keys(room);
        self.conn()
            .hget(&info_key, peer_id)
            .await
            .map_err(unavailable)
    }
}

fn parse(info: &str) -> Result<PeerInfo, PresenceError> {
    serde_json::from_str(info).map_err(|e| PresenceError::Unavailable(e.to_string()))
}

fn encode(peer: &PeerInfo) -> Result<String, PresenceError> {
    serde_json::to_string(peer).map_err(|e| PresenceError::Unavailable(e.to_string()))
}

fn sorted(mut peers: Vec<PeerInfo>) -> Vec<PeerInfo> {
    peers.sort_by(|a, b| (a.joined_at_ms, &a.peer_id).cmp(&(b.joined_at_ms, &b.peer_id)));
    peers
}

#[async_trait::async_trait]
impl Presence for RedisPresence {
    async fn join(
        &self,
        room: &str,
        entry: PresenceEntry,
        max: usize,
    ) -> Result<JoinOutcome, PresenceError> {
        let peer = &entry.peer;
        let info = encode(peer)?;
        let result: Vec<String> = self
            .join
            .key(&keys(room)[..])
            .arg(peer.peer_id.as_str())
            .arg(peer.participant_id.as_str())
            .arg(entry.conn_id.as_str())
            .arg(entry.expires_at_ms)
            .arg(&info)
            .arg(max)
            .arg(room)
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        match result.split_first() {
            Some((status, displaced)) if status == "joined" => {
                let displaced: Vec<PeerInfo> = displaced
                    .iter()
                    .map(|i| parse(i))
                    .collect::<Result<_, _>>()?;
                for old in &displaced {
                    self.known.forget(room, &old.peer_id);
                }
                self.known.set(room, &peer.peer_id, info);
                Ok(JoinOutcome::Joined { displaced })
            }
            _ => Ok(JoinOutcome::Full),
        }
    }

    async fn resume(
        &self,
        room: &str,
        peer_id: &PeerId,
        participant_id: &ParticipantId,
        conn_id: &ConnectionId,
        expires_at_ms: i64,
    ) -> Result<Option<PeerInfo>, PresenceError> {
        let info: Option<String> = self
            .resume
            .key(&keys(room)[..])
            .arg(peer_id.as_str())
            .arg(participant_id.as_str())
            .arg(conn_id.as_str())
            .arg(expires_at_ms)
            .arg(member(room, peer_id))
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        let Some(info) = info else {
            self.known.forget(room, peer_id);
            return Ok(None);
        };
        let peer = parse(&info)?;
        self.known.set(room, peer_id, info);
        Ok(Some(peer))
    }

    async fn refresh(
        &self,
        room: &str,
        peer_id: &PeerId,
        conn_id: &ConnectionId,
        expires_at_ms: i64,
    ) -> Result<bool, PresenceError> {
        let held: i64 = self
            .refresh
            .key(&keys(room)[..])
            .arg(peer_id.as_str())
            .arg(conn_id.as_str())
            .arg(expires_at_ms)
            .arg(member(room, peer_id))
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        Ok(held == 1)
    }

    async fn update(
        &self,
        room: &str,
        peer_id: &str,
        change: PeerChange,
    ) -> Result<Option<PeerInfo>, PresenceError> {
        let Some(info) = self.stored_info(room, peer_id).await? else {
            self.known.forget(room, peer_id);
            return Ok(None);
        };
        let mut peer = parse(&info)?;
        change.apply(&mut peer);
        let changed = encode(&peer)?;
        let stored: i64 = self
            .set_info
            .key(&keys(room)[..])
            .arg(peer_id)
            .arg(&changed)
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        if stored == 1 {
            self.known.set(room, peer_id, changed);
            Ok(Some(peer))
        } else {
            self.known.forget(room, peer_id);
            Ok(None)
        }
    }

    async fn update_and_announce(
        &self,
        _bus: &dyn RoomBus,
        room: &str,
        peer_id: &str,
        changes: &[PeerChange],
        announce: Announce,
    ) -> Result<Option<PeerInfo>, PresenceError> {
        if changes.is_empty() {
            return self.get(room, peer_id).await;
        }
        // The copy this instance keeps, or (none yet) the stored info.
        let known = match self.known.get(room, peer_id) {
            Some(info) => Some(info),
            None => self.stored_info(room, peer_id).await?,
        };
        let Some(mut expected) = known else {
            return Ok(None);
        };
        let [info_key, ..] = keys(room);
        for _ in 0..UPDATE_ATTEMPTS {
            let mut peer = parse(&expected)?;
            for change in changes {
                change.apply(&mut peer);
            }
            let changed = encode(&peer)?;
            let event = announce.event(&peer);
            let event_text = serde_json::to_string(&event)
                .map_err(|e| PresenceError::Unavailable(e.to_string()))?;
            let reply: Vec<String> = self
                .update_announce
                .key(&info_key)
                .key(channel(room))
                .arg(peer_id)
                .arg(&expected)
                .arg(&changed)
                .arg(&event_text)
                .invoke_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
            match reply.as_slice() {
                [status] if status == "stored" => {
                    self.known.set(room, peer_id, changed);
                    self.bus.published(room, event);
                    return Ok(Some(peer));
                }
                [status, current] if status == "changed" => expected = current.clone(),
                _ => {
                    self.known.forget(room, peer_id);
                    return Ok(None);
                }
            }
        }
        self.known.forget(room, peer_id);
        Err(PresenceError::Unavailable(
            "a presence kept changing under its update".into(),
        ))
    }

    async fn remove(&self, room: &str, peer_id: &str) -> Result<Option<PeerInfo>, PresenceError> {
        self.known.forget(room, peer_id);
        let info: Option<String> = self
            .remove
            .key(&keys(room)[..])
            .arg(peer_id)
            .arg(member(room, peer_id))
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        info.as_deref().map(parse).transpose()
    }

    async fn remove_expired(
        &self,
        room: &str,
        peer_id: &str,
        now_ms: i64,
    ) -> Result<Option<PeerInfo>, PresenceError> {
        let info: Option<String> = self
            .remove_expired
            .key(&keys(room)[..])
            .arg(peer_id)
            .arg(member(room, peer_id))
            .arg(now_ms)
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        if info.is_some() {
            self.known.forget(room, peer_id);
        }
        info.as_deref().map(parse).transpose()
    }

    async fn get(&self, room: &str, peer_id: &str) -> Result<Option<PeerInfo>, PresenceError> {
        let info = self.stored_info(room, peer_id).await?;
        info.as_deref().map(parse).transpose()
    }

    async fn list(&self, room: &str) -> Result<Vec<PeerInfo>, PresenceError> {
        let [info_key, ..] = keys(room);
        let infos: Vec<String> = self.conn().hvals(&info_key).await.map_err(unavailable)?;
        Ok(sorted(
            infos.iter().map(|i| parse(i)).collect::<Result<_, _>>()?,
        ))
    }

    async fn expired(&self, now_ms: i64) -> Result<Vec<(String, PeerId)>, PresenceError> {
        let members: Vec<String> = self
            .conn()
            .zrangebyscore(EXPIRY_KEY, "-inf", now_ms)
            .await
            .map_err(unavailable)?;
        Ok(members
            .into_iter()
            .filter_map(|m| {
                m.split_once('|')
                    .map(|(room, peer)| (room.to_string(), PeerId::from(peer)))
            })
            .collect())
    }

    async fn clear(&self, room: &str) -> Result<Vec<PeerInfo>, PresenceError> {
        self.known.forget_room(room);
        let infos: Vec<String> = self
            .clear
            .key(&keys(room)[..])
            .arg(room)
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        Ok(sorted(
            infos.iter().map(|i| parse(i)).collect::<Result<_, _>>()?,
        ))
    }
}
