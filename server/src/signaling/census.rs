//! How many calls and people this instance carries, by media path, for
//! the metrics. Each live connection counts itself in and out; the gauges
//! are read from here when `/metrics` is scraped.

use app::protocol::MediaPath;
use std::collections::HashMap;
use std::sync::Mutex;

/// Live connections per room, by media path (`[direct, server]`).
#[derive(Debug, Default)]
pub struct CallCensus {
    rooms: Mutex<HashMap<String, [usize; 2]>>,
}

fn slot(path: MediaPath) -> usize {
    match path {
        MediaPath::Direct => 0,
        MediaPath::Server => 1,
    }
}

/// Calls and people on one media path.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PathCount {
    pub calls: usize,
    pub participants: usize,
}

impl CallCensus {
    /// One connection of `room` moves from `from` to `to` (`None`: not
    /// live).
    pub fn moved(&self, room: &str, from: Option<MediaPath>, to: Option<MediaPath>) {
        if from == to {
            return;
        }
        let Ok(mut rooms) = self.rooms.lock() else {
            return;
        };
        if let Some(to) = to {
            rooms.entry(room.to_string()).or_default()[slot(to)] += 1;
        }
        if let Some(from) = from {
            if let Some(counts) = rooms.get_mut(room) {
                counts[slot(from)] = counts[slot(from)].saturating_sub(1);
                if counts == &[0, 0] {
                    rooms.remove(room);
                }
            }
        }
    }

    /// `(direct, server)` now. A room in the middle of a switch can count
    /// on both paths.
    pub fn count(&self) -> (PathCount, PathCount) {
        let mut direct = PathCount::default();
        let mut server = PathCount::default();
        if let Ok(rooms) = self.rooms.lock() {
            for [on_direct, on_server] in rooms.values() {
                if *on_direct > 0 {
                    direct.calls += 1;
                    direct.participants += on_direct;
                }
                if *on_server > 0 {
                    server.calls += 1;
                    server.participants += on_server;
                }
            }
        }
        (direct, server)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_counted_by_room_and_path_and_rooms_are_forgotten_when_empty() {
        let census = CallCensus::default();
        census.moved("a", None, Some(MediaPath::Direct));
        census.moved("a", None, Some(MediaPath::Direct));
        census.moved("b", None, Some(MediaPath::Server));
        let (direct, server) = census.count();
        assert_eq!(
            direct,
            PathCount {
                calls: 1,
                participants: 2
            }
        );
        assert_eq!(
            server,
            PathCount {
                calls: 1,
                participants: 1
            }
        );
        // One person of `a` moves to the server, then everyone leaves.
        census.moved("a", Some(MediaPath::Direct), Some(MediaPath::Server));
        let (direct, server) = census.count();
        assert_eq!(
            direct,
            PathCount {
                calls: 1,
                participants: 1
            }
        );
        assert_eq!(
            server,
            PathCount {
                calls: 2,
                participants: 2
            }
        );
        census.moved("a", Some(MediaPath::Direct), None);
        census.moved("a", Some(MediaPath::Server), None);
        census.moved("b", Some(MediaPath::Server), None);
        assert_eq!(census.count(), Default::default());
        assert!(census.rooms.lock().unwrap().is_empty());
    }
}
