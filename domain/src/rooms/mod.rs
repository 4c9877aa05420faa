//! Room logic: who is in which call, on every instance. Two boundaries, each
//! with an in-process implementation (`local`) and one shared across
//! instances through Redis (`redis`):
//!
//! - [`bus::RoomBus`] carries events to every connection of a room;
//! - [`Presence`] remembers who is in a room, with an expiry that the
//!   connection holding a presence keeps pushing forward. A presence whose
//!   expiry passes (its connection or its whole instance is gone) is removed
//!   by whichever instance's reaper sees it first, and everyone is told.
//!
//! The server's signaling connection uses only these two.

pub mod bus;
pub mod local;
pub mod redis;

#[cfg(any(test, feature = "contract-tests"))]
pub mod contract;

use crate::ids::{ConnectionId, ParticipantId, PeerId};
use bus::{BusError, RoomBus, RoomEvent};
use protocol::{LeaveReason, MediaState, PeerInfo, PeerRole, ServerMessage};
use std::sync::Arc;
use std::time::Duration;

/// One presence as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PresenceEntry {
    pub peer: PeerInfo,
    /// The connection that currently holds this presence.
    pub conn_id: ConnectionId,
    /// Unix ms after which the presence counts as lost.
    pub expires_at_ms: i64,
}

/// A change to a stored presence that everyone in the room then sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerChange {
    /// Microphone, camera, screen, hand.
    Media(MediaState),
    /// Made or unmade co-host during the call.
    Role(PeerRole),
    /// The hand is up as of this time (server clock, ms): kept only while
    /// the hand is up, and only the first time, so the order in which
    /// hands went up survives repeated media updates.
    HandUpSince(i64),
}

impl PeerChange {
    pub fn apply(self, peer: &mut PeerInfo) {
        match self {
            PeerChange::Media(media) => {
                peer.media = media;
                if !media.hand {
                    peer.hand_raised_at_ms = None;
                }
            }
            PeerChange::Role(role) => peer.role = role,
            PeerChange::HandUpSince(at_ms) => {
                if peer.media.hand && peer.hand_raised_at_ms.is_none() {
                    peer.hand_raised_at_ms = Some(at_ms);
                }
            }
        }
    }
}

/// Who hears of a stored presence change (see
/// [`Presence::update_and_announce`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announce {
    /// Everyone but the changed presence's own connection (its page made
    /// the change and knows it).
    Others,
    /// Everyone, the changed presence's own page included (a host made the
    /// change).
    Everyone,
}

impl Announce {
    /// The room event that tells the changed `peer`.
    pub fn event(self, peer: &PeerInfo) -> RoomEvent {
        let message = ServerMessage::PeerUpdated { peer: peer.clone() };
        match self {
            Announce::Others => RoomEvent::to_others(&peer.peer_id, message),
            Announce::Everyone => RoomEvent::Broadcast {
                skip: None,
                message,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum JoinOutcome {
    /// In; `displaced` are older presences of the same participant (another
    /// tab, a reloaded page) that this one replaced.
    Joined {
        displaced: Vec<PeerInfo>,
    },
    Full,
}

#[derive(Debug, thiserror::Error)]
pub enum PresenceError {
    #[error("presence store unavailable: {0}")]
    Unavailable(String),
}

impl From<BusError> for PresenceError {
    fn from(err: BusError) -> Self {
        PresenceError::Unavailable(err.0)
    }
}

#[async_trait::async_trait]
pub trait Presence: Send + Sync + 'static {
    /// Adds `entry` unless the room already holds `max` other participants.
    /// Presences of the same participant are replaced, atomically.
    async fn join(
        &self,
        room: &str,
        entry: PresenceEntry,
        max: usize,
    ) -> Result<JoinOutcome, PresenceError>;
    /// Gives an existing presence of `participant_id` to connection
    /// `conn_id`; None when it is gone (the caller joins afresh).
    async fn resume(
        &self,
        room: &str,
        peer_id: &PeerId,
        participant_id: &ParticipantId,
        conn_id: &ConnectionId,
        expires_at_ms: i64,
    ) -> Result<Option<PeerInfo>, PresenceError>;
    /// Pushes the expiry forward if `conn_id` still holds the presence.
    async fn refresh(
        &self,
        room: &str,
        peer_id: &PeerId,
        conn_id: &ConnectionId,
        expires_at_ms: i64,
    ) -> Result<bool, PresenceError>;
    /// Changes a stored presence; None when it is gone.
    async fn update(
        &self,
        room: &str,
        peer_id: &str,
        change: PeerChange,
    ) -> Result<Option<PeerInfo>, PresenceError>;
    /// Applies `changes` in order to a stored presence and, when it was
    /// there, publishes the changed presence on `bus` to `announce`'s
    /// audience; None (and nothing published) when it is gone. A change and
    /// its announcement go together: the Redis store does both in one round
    /// trip, on its own bus (the one made with it), which every fan-out of
    /// a room event pays for otherwise three times over.
    async fn update_and_announce(
        &self,
        bus: &dyn RoomBus,
        room: &str,
        peer_id: &str,
        changes: &[PeerChange],
        announce: Announce,
    ) -> Result<Option<PeerInfo>, PresenceError> {
        if changes.is_empty() {
            // Nothing changed, so nothing to tell.
            return self.get(room, peer_id).await;
        }
        let mut changed = None;
        for change in changes {
            changed = self.update(room, peer_id, *change).await?;
            if changed.is_none() {
                return Ok(None);
            }
        }
        if let Some(peer) = &changed {
            bus.publish(room, announce.event(peer)).await?;
        }
        Ok(changed)
    }
    /// Removes a presence; Some only for the call that actually removed it.
    async fn remove(&self, room: &str, peer_id: &str) -> Result<Option<PeerInfo>, PresenceError>;
    /// Removes a presence only if it is still expired at `now_ms`.
    async fn remove_expired(
        &self,
        room: &str,
        peer_id: &str,
        now_ms: i64,
    ) -> Result<Option<PeerInfo>, PresenceError>;
    /// One presence, without reading the whole room (every relayed
    /// signal checks its target this way).
    async fn get(&self, room: &str, peer_id: &str) -> Result<Option<PeerInfo>, PresenceError>;
    async fn list(&self, room: &str) -> Result<Vec<PeerInfo>, PresenceError>;
    /// Every presence whose expiry has passed, as (room, peer).
    async fn expired(&self, now_ms: i64) -> Result<Vec<(String, PeerId)>, PresenceError>;
    /// Empties a room (meeting ended); returns who was in it.
    async fn clear(&self, room: &str) -> Result<Vec<PeerInfo>, PresenceError>;
}

/// Timings of presence and heartbeats.
#[derive(Debug, Clone)]
pub struct RoomSettings {
    /// Most people in a call with direct media (the mesh limit); a
    /// meeting's own may be lower.
    pub max_participants: u32,
    /// How long a dropped connection's presence waits for a resume.
    pub reconnect_grace: Duration,
    /// How often a connection proves it is alive (WebSocket ping, presence
    /// refresh).
    pub heartbeat: Duration,
    /// A presence not refreshed for this long is lost (its instance died).
    pub presence_ttl: Duration,
    /// A connection that sent nothing for this long is dead.
    pub idle_timeout: Duration,
    /// How long one write to a client may take before it counts as gone.
    pub write_timeout: Duration,
    /// When rooms use the media server.
    pub media: crate::media::paths::PathPolicy,
    /// Most people in a call whose media goes through the server.
    pub media_server_max_participants: u32,
}

impl Default for RoomSettings {
    fn default() -> Self {
        Self {
            max_participants: 6,
            reconnect_grace: Duration::from_secs(5),
            heartbeat: Duration::from_secs(5),
            presence_ttl: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(20),
            write_timeout: Duration::from_secs(10),
            media: crate::media::paths::PathPolicy::default(),
            media_server_max_participants: 100,
        }
    }
}

/// Told of every departure from a room, whoever noticed it (the
/// connection that left, or the reaper for one that was lost): the webhooks
/// listen here.
pub trait RoomWatcher: Send + Sync {
    fn left(&self, room: &str, peer: &PeerInfo, reason: LeaveReason);
}

/// The rooms of this instance: the two boundaries and the timings.
#[derive(Clone)]
pub struct Rooms {
    pub bus: Arc<dyn RoomBus>,
    pub presence: Arc<dyn Presence>,
    pub settings: RoomSettings,
    /// Told of departures (webhooks), when anyone listens.
    pub watcher: Option<Arc<dyn RoomWatcher>>,
}

impl Rooms {
    /// Tells everyone in the room but `about` (best effort: a failure is
    /// logged; clients resynchronise when they reconnect).
    pub async fn tell_others(&self, room: &str, about: &str, message: ServerMessage) {
        self.publish_best_effort(room, RoomEvent::to_others(about, message))
            .await;
    }

    async fn publish_best_effort(&self, room: &str, event: RoomEvent) {
        if let Err(err) = self.bus.publish(room, event).await {
            tracing::warn!(error = %err, "could not tell the room");
        }
    }

    /// Whether `peer_id` is in `room`. With presence unreachable (Redis
    /// down) the answer is yes: what is sent to a peer only ever reaches
    /// connections of this room, so relaying costs nothing and keeps calls
    /// on one instance going.
    pub async fn is_present(&self, room: &str, peer_id: &str) -> bool {
        self.presence
            .get(room, peer_id)
            .await
            .map_or(true, |peer| peer.is_some())
    }

    /// Tells the room (and the watcher) someone left.
    pub async fn announce_left(&self, room: &str, peer: &PeerInfo, reason: LeaveReason) {
        if let Some(watcher) = &self.watcher {
            watcher.left(room, peer, reason);
        }
        self.publish_best_effort(room, RoomEvent::left(&peer.peer_id, reason))
            .await;
    }

    /// Removes presences whose connection (or instance) is gone, and tells
    /// their rooms. Runs on every instance; the store decides who removes.
    pub async fn reap(&self, now_ms: i64) -> Result<usize, PresenceError> {
        let mut reaped = 0;
        for (room, peer_id) in self.presence.expired(now_ms).await? {
            if let Some(peer) = self
                .presence
                .remove_expired(&room, &peer_id, now_ms)
                .await?
            {
                tracing::info!(%room, %peer_id, "participant lost");
                self.announce_left(&room, &peer, LeaveReason::Lost).await;
                reaped += 1;
            }
        }
        Ok(reaped)
    }

    /// Reaps once a second until the process ends.
    pub fn spawn_reaper(&self) {
        let rooms = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(err) = rooms.reap(crate::clock::now_ms()).await {
                    tracing::warn!(error = %err, "presence reaper failed; retrying");
                }
            }
        });
    }
}
