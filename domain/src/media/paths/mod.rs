//! Which way a room's media travels: straight between browsers or
//! through the media server, and when an automatic room switches.
//!
//! The rule is pure ([`next_path`]: the room's stored state, its size and
//! the time in; the new state and what changed out). Where the state lives
//! is a boundary, [`PathStore`], with two sides that pass one contract
//! suite ([`contract`]):
//! - [`LocalPathStore`]: one process;
//! - [`redis::RedisPathStore`]: shared by every instance through Redis, so
//!   a room whose people are spread over instances has one path, and
//!   exactly one instance sees (and announces) each switch.

pub mod redis;

#[cfg(any(test, feature = "contract-tests"))]
pub mod contract;

use protocol::meetings::MediaMode;
use protocol::MediaPath;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the server's operator chose (`--media-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerMediaMode {
    /// As each meeting's setting says.
    Auto,
    /// Never through the media server.
    Mesh,
    /// Always through the media server.
    Sfu,
}

/// When rooms switch.
#[derive(Debug, Clone)]
pub struct PathPolicy {
    pub server: ServerMediaMode,
    /// The arrival that makes an automatic room this big moves it to the
    /// media server.
    pub switch_at: usize,
    /// An automatic room this small or smaller...
    pub back_at: usize,
    /// ...for this long goes back to direct.
    pub back_after: Duration,
}

impl Default for PathPolicy {
    fn default() -> Self {
        Self {
            server: ServerMediaMode::Auto,
            switch_at: 5,
            back_at: 2,
            back_after: Duration::from_secs(30),
        }
    }
}

impl PathPolicy {
    /// The path of a meeting's room when it does not depend on its size.
    pub fn fixed(&self, meeting: MediaMode) -> Option<MediaPath> {
        match (self.server, meeting) {
            (ServerMediaMode::Sfu, _) => Some(MediaPath::Server),
            (ServerMediaMode::Mesh, _) => Some(MediaPath::Direct),
            (ServerMediaMode::Auto, MediaMode::Server) => Some(MediaPath::Server),
            (ServerMediaMode::Auto, MediaMode::Direct) => Some(MediaPath::Direct),
            (ServerMediaMode::Auto, MediaMode::Automatic) => None,
        }
    }

    /// Whether a meeting's room may ever go through the media server (its
    /// size limit is then the media server's).
    pub fn may_use_server(&self, meeting: MediaMode) -> bool {
        self.fixed(meeting) != Some(MediaPath::Direct)
    }

    fn back_after_ms(&self) -> i64 {
        i64::try_from(self.back_after.as_millis()).unwrap_or(i64::MAX)
    }
}

/// An automatic room's path and since when it has been small (wall-clock
/// milliseconds, so the state can be kept where every instance reads it;
/// instances' clocks agree to well within the 30 s rule, as NTP gives).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomPath {
    pub path: MediaPath,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub small_since_ms: Option<i64>,
}

/// The rule. `stored` is the room's state (None: nothing kept, which means
/// direct); the room has `size` people at `now_ms`. Answers the state to
/// keep (None: forget the room) and what the room's path is now.
///
/// Up at once when `switch_at` is reached; down only after the room stayed
/// at `back_at` or fewer for `back_after` (so a call does not flap when
/// someone reconnects); a room of one or none is forgotten (a call that
/// starts again starts direct, whatever it was before).
pub fn next_path(
    stored: Option<&RoomPath>,
    size: usize,
    now_ms: i64,
    policy: &PathPolicy,
) -> (Option<RoomPath>, Observed) {
    let was = stored.map_or(MediaPath::Direct, |state| state.path);
    let observed = |path: MediaPath| Observed {
        path,
        changed: path != was,
    };
    if size <= 1 {
        return (None, observed(MediaPath::Direct));
    }
    let state = match was {
        MediaPath::Direct if size >= policy.switch_at => RoomPath {
            path: MediaPath::Server,
            small_since_ms: None,
        },
        MediaPath::Direct => RoomPath::default(),
        MediaPath::Server if size > policy.back_at => RoomPath {
            path: MediaPath::Server,
            small_since_ms: None,
        },
        MediaPath::Server => {
            let since = stored
                .and_then(|state| state.small_since_ms)
                .unwrap_or(now_ms);
            if now_ms.saturating_sub(since) >= policy.back_after_ms() {
                RoomPath::default()
            } else {
                RoomPath {
                    path: MediaPath::Server,
                    small_since_ms: Some(since),
                }
            }
        }
    };
    let path = state.path;
    (Some(state), observed(path))
}

/// What an observation found: the room's path, and whether this
/// observation moved it (then the room must be told, once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    pub path: MediaPath,
    pub changed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PathStoreError {
    #[error("media path store unavailable: {0}")]
    Unavailable(String),
    #[error("media path of room {0} changed under every attempt")]
    Contended(String),
}

/// Where automatic rooms' paths are kept. Each observation applies
/// [`next_path`] atomically: of many observers of one switch, exactly one
/// gets `changed`.
#[async_trait::async_trait]
pub trait PathStore: Send + Sync + 'static {
    async fn observe(
        &self,
        room: &str,
        size: usize,
        now_ms: i64,
        policy: &PathPolicy,
    ) -> Result<Observed, PathStoreError>;

    /// The room's path as kept (direct when nothing is).
    async fn current(&self, room: &str) -> Result<MediaPath, PathStoreError>;
}

/// Paths inside one process.
#[derive(Debug, Default)]
pub struct LocalPathStore {
    rooms: Mutex<HashMap<String, RoomPath>>,
}

impl LocalPathStore {
    fn with_rooms<T>(&self, f: impl FnOnce(&mut HashMap<String, RoomPath>) -> T) -> T {
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut rooms)
    }
}

#[async_trait::async_trait]
impl PathStore for LocalPathStore {
    async fn observe(
        &self,
        room: &str,
        size: usize,
        now_ms: i64,
        policy: &PathPolicy,
    ) -> Result<Observed, PathStoreError> {
        Ok(self.with_rooms(|rooms| {
            let (state, observed) = next_path(rooms.get(room), size, now_ms, policy);
            match state {
                Some(state) => {
                    rooms.insert(room.to_string(), state);
                }
                None => {
                    rooms.remove(room);
                }
            }
            observed
        }))
    }

    async fn current(&self, room: &str) -> Result<MediaPath, PathStoreError> {
        Ok(self.with_rooms(|rooms| rooms.get(room).map_or(MediaPath::Direct, |s| s.path)))
    }
}

/// The rooms' paths as the signaling sees them: the policy (fixed settings
/// never reach the store) over a [`PathStore`].
pub struct MediaPaths {
    pub policy: PathPolicy,
    store: Arc<dyn PathStore>,
    /// The last path read per room, answered while the store cannot be
    /// reached (a room is not moved by an outage). Rooms leave it when
    /// they empty, as they leave the store.
    last_known: Mutex<HashMap<String, MediaPath>>,
}

impl MediaPaths {
    pub fn new(policy: PathPolicy, store: Arc<dyn PathStore>) -> Self {
        Self {
            policy,
            store,
            last_known: Mutex::new(HashMap::new()),
        }
    }

    /// One process, nothing shared.
    pub fn local(policy: PathPolicy) -> Self {
        Self::new(policy, Arc::new(LocalPathStore::default()))
    }

    /// The room's path now that it has `size` people; `changed` says
    /// whether this observation moved it (then the room is told).
    pub async fn observe(
        &self,
        room: &str,
        meeting: MediaMode,
        size: usize,
        now_ms: i64,
    ) -> Observed {
        if let Some(path) = self.policy.fixed(meeting) {
            return Observed {
                path,
                changed: false,
            };
        }
        match self.store.observe(room, size, now_ms, &self.policy).await {
            Ok(observed) => {
                self.remember(room, (size > 1).then_some(observed.path));
                observed
            }
            Err(err) => {
                tracing::warn!(error = %err, meeting = %room, "media path unknown; kept as last seen");
                Observed {
                    path: self.last_seen(room),
                    changed: false,
                }
            }
        }
    }

    /// The room's path without observing its size (when the size cannot
    /// be read: the path stays as it is).
    pub async fn current(&self, room: &str, meeting: MediaMode) -> MediaPath {
        if let Some(path) = self.policy.fixed(meeting) {
            return path;
        }
        match self.store.current(room).await {
            Ok(path) => path,
            Err(err) => {
                tracing::warn!(error = %err, meeting = %room, "media path unknown; kept as last seen");
                self.last_seen(room)
            }
        }
    }

    fn remember(&self, room: &str, path: Option<MediaPath>) {
        let mut known = self.last_known.lock().unwrap_or_else(|e| e.into_inner());
        match path {
            Some(path) => {
                known.insert(room.to_string(), path);
            }
            None => {
                known.remove(room);
            }
        }
    }

    fn last_seen(&self, room: &str) -> MediaPath {
        let known = self.last_known.lock().unwrap_or_else(|e| e.into_inner());
        known.get(room).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> PathPolicy {
        PathPolicy::default()
    }

    /// Applies the rule to a kept state; true when the path changed.
    fn step(state: &mut Option<RoomPath>, size: usize, now_ms: i64) -> bool {
        let (next, observed) = next_path(state.as_ref(), size, now_ms, &policy());
        *state = next;
        observed.changed
    }

    fn path(state: &Option<RoomPath>) -> MediaPath {
        state.as_ref().map_or(MediaPath::Direct, |s| s.path)
    }

    const T0: i64 = 1_800_000_000_000;
    const SECOND: i64 = 1_000;

    #[test]
    fn the_fifth_arrival_moves_an_automatic_room_to_the_server() {
        let mut room = None;
        for size in 1..=4 {
            assert!(!step(&mut room, size, T0));
            assert_eq!(path(&room), MediaPath::Direct);
        }
        assert!(step(&mut room, 5, T0));
        assert_eq!(path(&room), MediaPath::Server);
        // Staying big changes nothing.
        assert!(!step(&mut room, 6, T0));
    }

    #[test]
    fn back_to_direct_only_after_thirty_seconds_at_two_or_fewer() {
        let mut room = None;
        step(&mut room, 5, T0);
        // Three people stay on the server however long.
        assert!(!step(&mut room, 3, T0 + 60 * SECOND));
        assert!(!step(&mut room, 2, T0 + 61 * SECOND));
        assert!(!step(&mut room, 2, T0 + 90 * SECOND));
        // Someone came back within the 30 s: the count starts over.
        assert!(!step(&mut room, 3, T0 + 91 * SECOND));
        assert!(!step(&mut room, 2, T0 + 92 * SECOND));
        assert!(!step(&mut room, 2, T0 + 121 * SECOND));
        assert!(step(&mut room, 2, T0 + 122 * SECOND));
        assert_eq!(path(&room), MediaPath::Direct);
    }

    #[test]
    fn a_room_of_one_is_forgotten_and_starts_over_direct() {
        let mut room = None;
        step(&mut room, 5, T0);
        assert!(step(&mut room, 1, T0 + SECOND), "the move back is told");
        assert_eq!(room, None);
        assert!(!step(&mut room, 2, T0 + 2 * SECOND));
        assert_eq!(path(&room), MediaPath::Direct);
        // A direct room that empties changes nothing.
        assert!(!step(&mut room, 0, T0 + 3 * SECOND));
    }

    #[test]
    fn a_clock_that_steps_back_never_moves_a_room_early() {
        let mut room = None;
        step(&mut room, 5, T0);
        step(&mut room, 2, T0);
        // Another instance's clock a little behind: not 30 s yet.
        assert!(!step(&mut room, 2, T0 - 5 * SECOND));
        assert_eq!(path(&room), MediaPath::Server);
    }

    #[test]
    fn the_kept_state_reads_back_as_written() {
        let state = RoomPath {
            path: MediaPath::Server,
            small_since_ms: Some(T0),
        };
        let text = serde_json::to_string(&state).expect("json");
        assert_eq!(text, r#"{"path":"server","small_since_ms":1800000000000}"#);
        assert_eq!(
            serde_json::from_str::<RoomPath>(&text).expect("json"),
            state
        );
        assert_eq!(
            serde_json::from_str::<RoomPath>(r#"{"path":"direct"}"#).expect("json"),
            RoomPath::default()
        );
    }

    #[tokio::test]
    async fn fixed_settings_never_switch() {
        let paths = MediaPaths::local(policy());
        let direct = paths.observe("r", MediaMode::Direct, 9, T0).await;
        assert_eq!(direct.path, MediaPath::Direct);
        let server = paths.observe("r", MediaMode::Server, 2, T0).await;
        assert_eq!(server.path, MediaPath::Server);
        let forced = MediaPaths::local(PathPolicy {
            server: ServerMediaMode::Sfu,
            ..policy()
        });
        assert_eq!(
            forced.observe("r", MediaMode::Direct, 2, T0).await.path,
            MediaPath::Server
        );
        assert_eq!(
            forced.current("r", MediaMode::Direct).await,
            MediaPath::Server
        );
        let mesh = MediaPaths::local(PathPolicy {
            server: ServerMediaMode::Mesh,
            ..policy()
        });
        assert_eq!(
            mesh.observe("r", MediaMode::Server, 9, T0).await.path,
            MediaPath::Direct
        );
        assert!(!mesh.policy.may_use_server(MediaMode::Automatic));
    }

    #[tokio::test]
    async fn the_in_process_side_keeps_the_contract() {
        let store = Arc::new(LocalPathStore::default());
        contract::paths_contract([store.clone(), store], "local").await;
    }

    /// A store that cannot be reached.
    struct Unreachable;

    #[async_trait::async_trait]
    impl PathStore for Unreachable {
        async fn observe(
            &self,
            _: &str,
            _: usize,
            _: i64,
            _: &PathPolicy,
        ) -> Result<Observed, PathStoreError> {
            Err(PathStoreError::Unavailable("down".into()))
        }
        async fn current(&self, _: &str) -> Result<MediaPath, PathStoreError> {
            Err(PathStoreError::Unavailable("down".into()))
        }
    }

    /// A store that answers until told to fail.
    struct Flaky {
        inner: LocalPathStore,
        down: std::sync::atomic::AtomicBool,
    }

    #[async_trait::async_trait]
    impl PathStore for Flaky {
        async fn observe(
            &self,
            room: &str,
            size: usize,
            now_ms: i64,
            policy: &PathPolicy,
        ) -> Result<Observed, PathStoreError> {
            if self.down.load(std::sync::atomic::Ordering::SeqCst) {
                return Unreachable.observe(room, size, now_ms, policy).await;
            }
            self.inner.observe(room, size, now_ms, policy).await
        }
        async fn current(&self, room: &str) -> Result<MediaPath, PathStoreError> {
            if self.down.load(std::sync::atomic::Ordering::SeqCst) {
                return Unreachable.current(room).await;
            }
            self.inner.current(room).await
        }
    }

    #[tokio::test]
    async fn an_unreachable_store_keeps_each_room_on_its_last_seen_path() {
        let store = Arc::new(Flaky {
            inner: LocalPathStore::default(),
            down: false.into(),
        });
        let paths = MediaPaths::new(policy(), store.clone());
        assert!(
            paths
                .observe("big", MediaMode::Automatic, 5, T0)
                .await
                .changed
        );
        paths.observe("small", MediaMode::Automatic, 2, T0).await;
        store.down.store(true, std::sync::atomic::Ordering::SeqCst);
        // Nobody is moved by the outage, and nobody is told of a move.
        let big = paths.observe("big", MediaMode::Automatic, 6, T0).await;
        assert_eq!((big.path, big.changed), (MediaPath::Server, false));
        assert_eq!(
            paths.current("big", MediaMode::Automatic).await,
            MediaPath::Server
        );
        let small = paths.observe("small", MediaMode::Automatic, 9, T0).await;
        assert_eq!((small.path, small.changed), (MediaPath::Direct, false));
        assert_eq!(
            paths.current("unknown", MediaMode::Automatic).await,
            MediaPath::Direct
        );
        // Fixed settings need no store.
        assert_eq!(
            paths.observe("big", MediaMode::Server, 2, T0).await.path,
            MediaPath::Server
        );
    }
}
