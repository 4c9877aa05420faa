//! In-process rooms: one instance, no outside services (the default).

use super::bus::{BusError, RoomBus, RoomEvent, SharedEvent};
use super::{JoinOutcome, PeerChange, Presence, PresenceEntry, PresenceError};
use crate::ids::{ConnectionId, ParticipantId, PeerId};
use protocol::PeerInfo;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast;

/// Events buffered per room for a slow connection before it lags.
const ROOM_BUFFER: usize = 1024;

/// This instance's subscribers, per room. The Redis bus feeds it too.
#[derive(Default)]
pub struct Fanout {
    rooms: Mutex<HashMap<String, broadcast::Sender<Arc<SharedEvent>>>>,
}

impl Fanout {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, broadcast::Sender<Arc<SharedEvent>>>> {
        // A panic while holding this lock leaves plain data behind; carry on.
        self.rooms
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Subscribes, and says whether this is the room's first subscriber
    /// here (the Redis bus then subscribes to the room's channel).
    pub fn subscribe(&self, room: &str) -> (broadcast::Receiver<Arc<SharedEvent>>, bool) {
        let mut rooms = self.lock();
        rooms.retain(|_, sender| sender.receiver_count() > 0);
        match rooms.get(room) {
            Some(sender) => (sender.subscribe(), false),
            None => {
                let (sender, receiver) = broadcast::channel(ROOM_BUFFER);
                rooms.insert(room.to_string(), sender);
                (receiver, true)
            }
        }
    }

    /// Hands an event to this instance's connections in `room`.
    pub fn deliver(&self, room: &str, event: Arc<SharedEvent>) {
        let mut rooms = self.lock();
        if let Some(sender) = rooms.get(room) {
            if sender.send(event).is_err() {
                rooms.remove(room);
            }
        }
    }

    /// Rooms with at least one connection here.
    pub fn active_rooms(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(_, sender)| sender.receiver_count() > 0)
            .map(|(room, _)| room.clone())
            .collect()
    }
}

#[derive(Default)]
pub struct LocalBus {
    fanout: Fanout,
}

#[async_trait::async_trait]
impl RoomBus for LocalBus {
    async fn publish(&self, room: &str, event: RoomEvent) -> Result<(), BusError> {
        self.fanout.deliver(room, Arc::new(SharedEvent::new(event)));
        Ok(())
    }

    async fn subscribe(
        &self,
        room: &str,
    ) -> Result<broadcast::Receiver<Arc<SharedEvent>>, BusError> {
        Ok(self.fanout.subscribe(room).0)
    }
}

type Room = HashMap<PeerId, PresenceEntry>;

#[derive(Default)]
pub struct LocalPresence {
    rooms: Mutex<HashMap<String, Room>>,
}

impl LocalPresence {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Room>> {
        self.rooms
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Oldest first, so every list shows people in the order they came.
fn sorted(peers: impl Iterator<Item = PeerInfo>) -> Vec<PeerInfo> {
    let mut peers: Vec<PeerInfo> = peers.collect();
    peers.sort_by(|a, b| (a.joined_at_ms, &a.peer_id).cmp(&(b.joined_at_ms, &b.peer_id)));
    peers
}

#[async_trait::async_trait]
impl Presence for LocalPresence {
    async fn join(
        &self,
        room: &str,
        entry: PresenceEntry,
        max: usize,
    ) -> Result<JoinOutcome, PresenceError> {
        let mut rooms = self.lock();
        let peers = rooms.entry(room.to_string()).or_default();
        let participant = &entry.peer.participant_id;
        let others = peers
            .values()
            .filter(|e| e.peer.participant_id != *participant)
            .count();
        if others >= max {
            return Ok(JoinOutcome::Full);
        }
        let displaced_ids: Vec<PeerId> = peers
            .values()
            .filter(|e| e.peer.participant_id == *participant)
            .map(|e| e.peer.peer_id.clone())
            .collect();
        let displaced = displaced_ids
            .iter()
            .filter_map(|id| peers.remove(id))
            .map(|e| e.peer)
            .collect();
        peers.insert(entry.peer.peer_id.clone(), entry);
        Ok(JoinOutcome::Joined { displaced })
    }

    async fn resume(
        &self,
        room: &str,
        peer_id: &PeerId,
        participant_id: &ParticipantId,
        conn_id: &ConnectionId,
        expires_at_ms: i64,
    ) -> Result<Option<PeerInfo>, PresenceError> {
        let mut rooms = self.lock();
        let Some(entry) = rooms.get_mut(room).and_then(|peers| peers.get_mut(peer_id)) else {
            return Ok(None);
        };
        if entry.peer.participant_id != *participant_id {
            return Ok(None);
        }
        entry.conn_id = conn_id.clone();
        entry.expires_at_ms = expires_at_ms;
        Ok(Some(entry.peer.clone()))
    }

    async fn refresh(
        &self,
        room: &str,
        peer_id: &PeerId,
        conn_id: &ConnectionId,
        expires_at_ms: i64,
    ) -> Result<bool, PresenceError> {
        let mut rooms = self.lock();
        match rooms.get_mut(room).and_then(|peers| peers.get_mut(peer_id)) {
            Some(entry) if entry.conn_id == *conn_id => {
                entry.expires_at_ms = expires_at_ms;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn update(
        &self,
        room: &str,
        peer_id: &str,
        change: PeerChange,
    ) -> Result<Option<PeerInfo>, PresenceError> {
        let mut rooms = self.lock();
        Ok(rooms
            .get_mut(room)
            .and_then(|peers| peers.get_mut(peer_id))
            .map(|entry| {
                change.apply(&mut entry.peer);
                entry.peer.clone()
            }))
    }

    async fn remove(&self, room: &str, peer_id: &str) -> Result<Option<PeerInfo>, PresenceError> {
        let mut rooms = self.lock();
        let removed = rooms
            .get_mut(room)
            .and_then(|peers| peers.remove(peer_id))
            .map(|e| e.peer);
        if rooms.get(room).is_some_and(|peers| peers.is_empty()) {
            rooms.remove(room);
        }
        Ok(removed)
    }

    async fn remove_expired(
        &self,
        room: &str,
        peer_id: &str,
        now_ms: i64,
    ) -> Result<Option<PeerInfo>, PresenceError> {
        let still_expired = self
            .lock()
            .get(room)
            .and_then(|peers| peers.get(peer_id))
            .is_some_and(|e| e.expires_at_ms <= now_ms);
        if still_expired {
            self.remove(room, peer_id).await
        } else {
            Ok(None)
        }
    }

    async fn get(&self, room: &str, peer_id: &str) -> Result<Option<PeerInfo>, PresenceError> {
        Ok(self
            .lock()
            .get(room)
            .and_then(|peers| peers.get(peer_id))
            .map(|e| e.peer.clone()))
    }

    async fn list(&self, room: &str) -> Result<Vec<PeerInfo>, PresenceError> {
        Ok(self
            .lock()
            .get(room)
            .map(|peers| sorted(peers.values().map(|e| e.peer.clone())))
            .unwrap_or_default())
    }

    async fn expired(&self, now_ms: i64) -> Result<Vec<(String, PeerId)>, PresenceError> {
        Ok(self
            .lock()
            .iter()
            .flat_map(|(room, peers)| {
                peers
                    .values()
                    .filter(|e| e.expires_at_ms <= now_ms)
                    .map(|e| (room.clone(), e.peer.peer_id.clone()))
            })
            .collect())
    }

    async fn clear(&self, room: &str) -> Result<Vec<PeerInfo>, PresenceError> {
        Ok(self
            .lock()
            .remove(room)
            .map(|peers| sorted(peers.into_values().map(|e| e.peer)))
            .unwrap_or_default())
    }
}
