//! Last-N: in a large room through the media server, each browser receives
//! the camera of only the N people who spoke most recently, and of those it
//! asks for by name (its pinned tile, a shared screen). Everyone else's
//! video is paused for it: their tile shows their name, their microphone
//! still plays, and nothing of their camera crosses that browser's link.
//! Fifty cameras would otherwise be fifty decoders on a phone.
//!
//! Pure: who came, left, spoke and asked in; who is paused for whom out
//! ([`LastN::paused_for`]). The engine turns the answer into packets it
//! does not send.
//!
//! The order is "most recently heard first": the media server's speakers
//! move to the front when they are announced, everyone else keeps their
//! place, and newcomers who have not spoken yet queue behind, in the order
//! they came. So a room of thirty where nobody spoke shows the first N to
//! come, and whoever speaks comes in within one speaker announcement.
//! Only cameras that send take places: a person with their camera off has
//! nothing to pause, and does not keep someone else's camera out.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

pub use protocol::media_server::MAX_WATCHED;

/// One room's order of recent speakers and each browser's wishes.
#[derive(Debug)]
pub struct LastN<K> {
    limit: usize,
    /// Everyone, most recently heard first.
    recency: Vec<K>,
    /// Those each browser asked to see whatever the order.
    watched: HashMap<K, Vec<K>>,
    /// Those whose camera sends now.
    showing: HashSet<K>,
}

impl<K: Copy + Eq + Hash> LastN<K> {
    /// A room where each browser receives at most `limit` cameras besides
    /// those it asks for.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            recency: Vec::new(),
            watched: HashMap::new(),
            showing: HashSet::new(),
        }
    }

    /// `who` came: behind everyone already here.
    pub fn joined(&mut self, who: K) {
        if !self.recency.contains(&who) {
            self.recency.push(who);
        }
    }

    /// `who` left: out of the order and of everyone's wishes.
    pub fn left(&mut self, who: &K) {
        self.recency.retain(|k| k != who);
        self.showing.remove(who);
        self.watched.remove(who);
        for wishes in self.watched.values_mut() {
            wishes.retain(|k| k != who);
        }
    }

    /// The media server announced `speakers` (first is first): they move to
    /// the front, in that order. Someone not (or no longer) in the room is
    /// left out.
    pub fn heard(&mut self, speakers: &[K]) {
        for speaker in speakers.iter().rev() {
            if let Some(at) = self.recency.iter().position(|k| k == speaker) {
                self.recency.remove(at);
                self.recency.insert(0, *speaker);
            }
        }
    }

    /// Whether `who`'s camera sends now.
    pub fn showing(&mut self, who: K, sends: bool) {
        if sends {
            self.showing.insert(who);
        } else {
            self.showing.remove(&who);
        }
    }

    /// `subscriber` wants to see `publishers` whatever the order (at most
    /// [`MAX_WATCHED`]; the rest is ignored). Replaces its earlier wish.
    pub fn watch(&mut self, subscriber: K, mut publishers: Vec<K>) {
        publishers.retain(|p| *p != subscriber && self.recency.contains(p));
        publishers.truncate(MAX_WATCHED);
        if publishers.is_empty() {
            self.watched.remove(&subscriber);
        } else {
            self.watched.insert(subscriber, publishers);
        }
    }

    /// Those whose camera `subscriber` does not receive now, most recently
    /// heard first: every other sending camera past the first `limit`,
    /// except those it asked for.
    pub fn paused_for(&self, subscriber: &K) -> Vec<K> {
        let watched = self.watched.get(subscriber);
        self.recency
            .iter()
            .filter(|k| *k != subscriber && self.showing.contains(k))
            .skip(self.limit)
            .filter(|k| watched.is_none_or(|w| !w.contains(k)))
            .copied()
            .collect()
    }

    /// Whether nobody is left.
    pub fn is_empty(&self) -> bool {
        self.recency.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(limit: usize, people: &[u32]) -> LastN<u32> {
        let mut last_n = LastN::new(limit);
        for who in people {
            last_n.joined(*who);
            last_n.showing(*who, true);
        }
        last_n
    }

    #[test]
    fn a_room_no_larger_than_the_limit_pauses_nobody() {
        let last_n = room(3, &[1, 2, 3, 4]);
        for who in 1..=4 {
            assert!(last_n.paused_for(&who).is_empty(), "{who}");
        }
    }

    #[test]
    fn before_anyone_speaks_the_first_to_come_are_seen() {
        let last_n = room(2, &[1, 2, 3, 4, 5]);
        assert_eq!(last_n.paused_for(&1), vec![4, 5]);
        // One's own camera is not a place: 5 sees 1 and 2.
        assert_eq!(last_n.paused_for(&5), vec![3, 4]);
    }

    #[test]
    fn whoever_speaks_comes_in_and_the_longest_silent_goes_out() {
        let mut last_n = room(2, &[1, 2, 3, 4, 5]);
        last_n.heard(&[5]);
        assert_eq!(last_n.paused_for(&3), vec![2, 4]);
        last_n.heard(&[4, 2]);
        // 4 and 2 now, then 5 who spoke before, then 1 who never did.
        assert_eq!(last_n.paused_for(&3), vec![5, 1]);
        assert_eq!(last_n.paused_for(&4), vec![1, 3]);
        // An announcement naming nobody (silence) changes nothing.
        last_n.heard(&[]);
        assert_eq!(last_n.paused_for(&3), vec![5, 1]);
    }

    #[test]
    fn a_pinned_person_is_seen_without_taking_a_place() {
        let mut last_n = room(1, &[1, 2, 3, 4]);
        last_n.watch(1, vec![4]);
        assert_eq!(last_n.paused_for(&1), vec![3]);
        // Only for the one who asked.
        assert_eq!(last_n.paused_for(&2), vec![3, 4]);
        // Unpinned: paused again.
        last_n.watch(1, vec![]);
        assert_eq!(last_n.paused_for(&1), vec![3, 4]);
    }

    #[test]
    fn wishes_are_bounded_and_name_only_others_in_the_room() {
        let mut last_n = room(0, &[1, 2, 3, 4, 5, 6, 7]);
        last_n.watch(1, vec![1, 9, 2, 3, 4, 5, 6, 7]);
        // Itself and a stranger dropped, then the first MAX_WATCHED kept.
        assert_eq!(last_n.paused_for(&1), vec![6, 7]);
    }

    #[test]
    fn someone_who_leaves_frees_their_place_and_wishes() {
        let mut last_n = room(2, &[1, 2, 3, 4]);
        last_n.watch(4, vec![3]);
        last_n.left(&2);
        assert_eq!(last_n.paused_for(&1), Vec::<u32>::new());
        last_n.joined(5);
        last_n.showing(5, true);
        assert_eq!(last_n.paused_for(&1), vec![5]);
        last_n.left(&3);
        assert!(last_n.paused_for(&4).is_empty());
        last_n.left(&1);
        last_n.left(&4);
        last_n.left(&5);
        assert!(last_n.is_empty());
    }

    #[test]
    fn a_camera_that_is_off_takes_no_place() {
        let mut last_n = room(2, &[1, 2, 3, 4, 5]);
        assert_eq!(last_n.paused_for(&1), vec![4, 5]);
        last_n.showing(2, false);
        // 2 has nothing to pause, and 4 comes in in its place.
        assert_eq!(last_n.paused_for(&1), vec![5]);
        last_n.showing(2, true);
        assert_eq!(last_n.paused_for(&1), vec![4, 5]);
        // A newcomer whose camera has not sent yet is not paused either.
        last_n.joined(6);
        assert_eq!(last_n.paused_for(&1), vec![4, 5]);
    }
}
