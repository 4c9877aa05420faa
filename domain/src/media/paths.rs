//! Which way a room's media travels: straight between browsers or
//! through the media server, and when an automatic room switches.
//!
//! The rule is pure ([`RoomPath::observe`]: the room's size and the time
//! in, the path out); [`MediaPaths`] keeps each room's state on this
//! instance. Rooms spread over instances keep their media direct for now
//! (the media server of one instance cannot reach participants on
//! another), so automatic switching is on only where every participant of
//! a room is on one instance.

use protocol::meetings::MediaMode;
use protocol::MediaPath;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
    /// Whether automatic rooms may switch at all (not when a room's
    /// participants may be on several instances).
    pub switching: bool,
}

impl Default for PathPolicy {
    fn default() -> Self {
        Self {
            server: ServerMediaMode::Auto,
            switch_at: 5,
            back_at: 2,
            back_after: Duration::from_secs(30),
            switching: true,
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
            (ServerMediaMode::Auto, MediaMode::Automatic) if !self.switching => {
                Some(MediaPath::Direct)
            }
            (ServerMediaMode::Auto, MediaMode::Automatic) => None,
        }
    }

    /// Whether a meeting's room may ever go through the media server (its
    /// size limit is then the media server's).
    pub fn may_use_server(&self, meeting: MediaMode) -> bool {
        self.fixed(meeting) != Some(MediaPath::Direct)
    }
}

/// An automatic room's path and how long it has been small.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomPath {
    pub path: MediaPath,
    small_since: Option<Instant>,
}

impl Default for RoomPath {
    fn default() -> Self {
        Self {
            path: MediaPath::Direct,
            small_since: None,
        }
    }
}

impl RoomPath {
    /// The room has `size` people at `now`; answers whether the path
    /// changed. Up at once when `switch_at` is reached; down only after the
    /// room stayed at `back_at` or fewer for `back_after` (so a call does
    /// not flap when someone reconnects).
    pub fn observe(&mut self, size: usize, now: Instant, policy: &PathPolicy) -> bool {
        match self.path {
            MediaPath::Direct => {
                self.small_since = None;
                if size >= policy.switch_at {
                    self.path = MediaPath::Server;
                    return true;
                }
            }
            MediaPath::Server => {
                if size > policy.back_at {
                    self.small_since = None;
                    return false;
                }
                let since = *self.small_since.get_or_insert(now);
                if now.duration_since(since) >= policy.back_after {
                    self.path = MediaPath::Direct;
                    self.small_since = None;
                    return true;
                }
            }
        }
        false
    }
}

/// The paths of this instance's rooms.
#[derive(Debug, Default)]
pub struct MediaPaths {
    pub policy: PathPolicy,
    rooms: Mutex<HashMap<String, RoomPath>>,
}

impl MediaPaths {
    pub fn new(policy: PathPolicy) -> Self {
        Self {
            policy,
            rooms: Mutex::new(HashMap::new()),
        }
    }

    /// The room's path now that it has `size` people; `changed` says
    /// whether this observation moved it (then the room is told).
    pub fn observe(&self, room: &str, meeting: MediaMode, size: usize, now: Instant) -> Observed {
        if let Some(path) = self.policy.fixed(meeting) {
            return Observed {
                path,
                changed: false,
            };
        }
        let Ok(mut rooms) = self.rooms.lock() else {
            return Observed {
                path: MediaPath::Direct,
                changed: false,
            };
        };
        if size <= 1 {
            // Nobody to send media to: a call that starts again here
            // starts direct, whatever it was before.
            let was = rooms.remove(room).map(|state| state.path);
            return Observed {
                path: MediaPath::Direct,
                changed: was == Some(MediaPath::Server),
            };
        }
        let state = rooms.entry(room.to_string()).or_default();
        let changed = state.observe(size, now, &self.policy);
        Observed {
            path: state.path,
            changed,
        }
    }
}

/// What [`MediaPaths::observe`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    pub path: MediaPath,
    pub changed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> PathPolicy {
        PathPolicy::default()
    }

    #[test]
    fn the_fifth_arrival_moves_an_automatic_room_to_the_server() {
        let mut room = RoomPath::default();
        let t0 = Instant::now();
        for size in 1..=4 {
            assert!(!room.observe(size, t0, &policy()));
            assert_eq!(room.path, MediaPath::Direct);
        }
        assert!(room.observe(5, t0, &policy()));
        assert_eq!(room.path, MediaPath::Server);
        // Staying big changes nothing.
        assert!(!room.observe(6, t0, &policy()));
    }

    #[test]
    fn back_to_direct_only_after_thirty_seconds_at_two_or_fewer() {
        let mut room = RoomPath::default();
        let t0 = Instant::now();
        room.observe(5, t0, &policy());
        // Three people stay on the server however long.
        assert!(!room.observe(3, t0 + Duration::from_secs(60), &policy()));
        assert!(!room.observe(2, t0 + Duration::from_secs(61), &policy()));
        assert!(!room.observe(2, t0 + Duration::from_secs(90), &policy()));
        // Someone came back within the 30 s: the count starts over.
        assert!(!room.observe(3, t0 + Duration::from_secs(91), &policy()));
        assert!(!room.observe(2, t0 + Duration::from_secs(92), &policy()));
        assert!(!room.observe(2, t0 + Duration::from_secs(121), &policy()));
        assert!(room.observe(1, t0 + Duration::from_secs(122), &policy()));
        assert_eq!(room.path, MediaPath::Direct);
    }

    #[test]
    fn fixed_settings_never_switch() {
        let paths = MediaPaths::new(policy());
        let now = Instant::now();
        let direct = paths.observe("r", MediaMode::Direct, 9, now);
        assert_eq!(direct.path, MediaPath::Direct);
        let server = paths.observe("r", MediaMode::Server, 2, now);
        assert_eq!(server.path, MediaPath::Server);
        let forced = MediaPaths::new(PathPolicy {
            server: ServerMediaMode::Sfu,
            ..policy()
        });
        assert_eq!(
            forced.observe("r", MediaMode::Direct, 2, now).path,
            MediaPath::Server
        );
        let mesh = MediaPaths::new(PathPolicy {
            server: ServerMediaMode::Mesh,
            ..policy()
        });
        assert_eq!(
            mesh.observe("r", MediaMode::Server, 9, now).path,
            MediaPath::Direct
        );
        assert!(!mesh.policy.may_use_server(MediaMode::Automatic));
    }

    #[test]
    fn without_switching_automatic_rooms_stay_direct() {
        let paths = MediaPaths::new(PathPolicy {
            switching: false,
            ..policy()
        });
        let seen = paths.observe("r", MediaMode::Automatic, 9, Instant::now());
        assert_eq!(seen.path, MediaPath::Direct);
        assert!(!seen.changed);
    }

    #[test]
    fn each_room_switches_once_and_a_room_of_one_starts_over_direct() {
        let paths = MediaPaths::new(policy());
        let now = Instant::now();
        assert!(paths.observe("a", MediaMode::Automatic, 5, now).changed);
        // Everyone who looks after that sees the path, not a change.
        let again = paths.observe("a", MediaMode::Automatic, 5, now);
        assert_eq!((again.path, again.changed), (MediaPath::Server, false));
        assert_eq!(
            paths.observe("b", MediaMode::Automatic, 2, now).path,
            MediaPath::Direct
        );
        // The call emptied: the next one here starts direct.
        let alone = paths.observe("a", MediaMode::Automatic, 1, now);
        assert_eq!((alone.path, alone.changed), (MediaPath::Direct, true));
        assert_eq!(
            paths.observe("a", MediaMode::Automatic, 2, now).path,
            MediaPath::Direct
        );
    }
}
