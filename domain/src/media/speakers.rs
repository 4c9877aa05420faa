//! Who is speaking in a room whose media goes through the media server,
//! from the audio level browsers stamp on their microphone's packets
//! (RFC 6464: 0 is the loudest, 127 silence, in -dBov).
//!
//! Pure: levels and the time in, the list to announce out
//! ([`SpeakerDetector::poll`]). The engine feeds it what it reads off the
//! wire; everything about timing is here, so it is tested without a clock.
//!
//! The rules, so the highlight neither flickers nor lags:
//! - time is cut into windows of [`WINDOW`]; in a window a person is
//!   *voiced* when at least [`VOICED_SHARE_PERCENT`] of their packets are
//!   at [`VOICED_LEVEL`] or louder (a click, a cough or a beep in one
//!   packet is not speech, and a muted microphone sends silence);
//! - a person becomes a speaker after [`ENTER_WINDOWS`] voiced windows in
//!   a row, and stays one until [`HOLD`] has passed without a voiced
//!   window (the pauses between words and sentences);
//! - at most [`MAX_SPEAKERS`] are announced: those already announced keep
//!   their place while they speak, newcomers fill free places loudest
//!   first;
//! - a new list is announced only when who is in it changed.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// How often the levels are weighed.
pub const WINDOW: Duration = Duration::from_millis(200);
/// A packet this loud or louder (-dBov; smaller is louder) is speech.
pub const VOICED_LEVEL: u8 = 50;
/// The share of a window's packets that must be speech.
pub const VOICED_SHARE_PERCENT: u32 = 30;
/// Voiced windows in a row that make a speaker (400 ms of speech).
pub const ENTER_WINDOWS: u32 = 2;
/// How long a speaker stays one without speaking.
pub const HOLD: Duration = Duration::from_millis(1500);
/// The most speakers announced at once.
pub const MAX_SPEAKERS: usize = 3;

#[derive(Debug, Default)]
struct Person {
    packets: u32,
    voiced: u32,
    /// The loudness (127 - level) summed over this window's packets.
    loudness: u64,
    voiced_in_a_row: u32,
    last_voiced: Option<Instant>,
    /// The last voiced window's mean loudness: who is louder.
    recent_loudness: u64,
}

/// One room's speakers.
#[derive(Debug)]
pub struct SpeakerDetector<K> {
    people: HashMap<K, Person>,
    window_started: Option<Instant>,
    announced: Vec<K>,
}

impl<K> Default for SpeakerDetector<K> {
    fn default() -> Self {
        Self {
            people: HashMap::new(),
            window_started: None,
            announced: Vec::new(),
        }
    }
}

impl<K: Clone + Eq + Hash + Ord> SpeakerDetector<K> {
    /// One packet of `who`'s microphone carried `level` (RFC 6464).
    pub fn level(&mut self, who: K, level: u8, now: Instant) {
        self.window_started.get_or_insert(now);
        let person = self.people.entry(who).or_default();
        let level = level.min(127);
        person.packets += 1;
        person.loudness += u64::from(127 - level);
        if level <= VOICED_LEVEL {
            person.voiced += 1;
        }
    }

    /// `who` left the room: gone from the list at the next poll.
    pub fn forget(&mut self, who: &K) {
        self.people.remove(who);
    }

    /// The speakers now, as last announced.
    pub fn speakers(&self) -> &[K] {
        &self.announced
    }

    /// Weighs the window if it is over; `Some(list)` when who speaks
    /// changed (loudest first among newcomers), to be announced.
    pub fn poll(&mut self, now: Instant) -> Option<Vec<K>> {
        let started = self.window_started?;
        if now.saturating_duration_since(started) < WINDOW {
            return None;
        }
        self.window_started = if self.people.is_empty() {
            None
        } else {
            Some(now)
        };
        let mut speaking: Vec<(K, u64)> = Vec::new();
        for (who, person) in self.people.iter_mut() {
            let voiced =
                person.packets > 0 && person.voiced * 100 >= person.packets * VOICED_SHARE_PERCENT;
            if voiced {
                person.voiced_in_a_row += 1;
                person.last_voiced = Some(now);
                person.recent_loudness = person.loudness / u64::from(person.packets);
            } else {
                person.voiced_in_a_row = 0;
            }
            person.packets = 0;
            person.voiced = 0;
            person.loudness = 0;
            let held = person
                .last_voiced
                .is_some_and(|at| now.saturating_duration_since(at) < HOLD);
            let was_speaker = self.announced.contains(who);
            if (was_speaker && held) || person.voiced_in_a_row >= ENTER_WINDOWS {
                speaking.push((who.clone(), person.recent_loudness));
            }
        }
        // Those announced keep their places; newcomers fill the rest,
        // loudest first (ties by key, so the same input gives the same list).
        let mut next: Vec<K> = self
            .announced
            .iter()
            .filter(|k| speaking.iter().any(|(s, _)| s == *k))
            .cloned()
            .collect();
        let mut newcomers: Vec<(K, u64)> = speaking
            .into_iter()
            .filter(|(k, _)| !next.contains(k))
            .collect();
        newcomers.sort_by(|(a, la), (b, lb)| lb.cmp(la).then_with(|| a.cmp(b)));
        for (who, _) in newcomers {
            if next.len() >= MAX_SPEAKERS {
                break;
            }
            next.push(who);
        }
        if next == self.announced {
            return None;
        }
        self.announced = next.clone();
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opus sends a packet every 20 ms: ten per window.
    const PACKETS_PER_WINDOW: u32 = 10;

    struct Room {
        detector: SpeakerDetector<&'static str>,
        now: Instant,
        announcements: Vec<Vec<&'static str>>,
    }

    impl Room {
        fn new() -> Self {
            Self {
                detector: SpeakerDetector::default(),
                now: Instant::now(),
                announcements: Vec::new(),
            }
        }

        /// One window in which each of `levels` sends ten packets, the
        /// first `loud` of them at `level`, the rest silent.
        fn window(&mut self, levels: &[(&'static str, u8, u32)]) {
            for step in 0..PACKETS_PER_WINDOW {
                let at = self.now + WINDOW * step / PACKETS_PER_WINDOW;
                for &(who, level, loud) in levels {
                    let level = if step < loud { level } else { 127 };
                    self.detector.level(who, level, at);
                }
            }
            self.now += WINDOW;
            if let Some(list) = self.detector.poll(self.now) {
                self.announcements.push(list);
            }
        }

        fn windows(&mut self, n: u32, levels: &[(&'static str, u8, u32)]) {
            for _ in 0..n {
                self.window(levels);
            }
        }
    }

    #[test]
    fn speech_makes_a_speaker_after_two_windows_and_silence_ends_it_after_the_hold() {
        let mut room = Room::new();
        room.window(&[("ann", 30, 10), ("bob", 127, 0)]);
        assert!(room.announcements.is_empty(), "one window is not enough");
        room.window(&[("ann", 30, 10), ("bob", 127, 0)]);
        assert_eq!(room.announcements, vec![vec!["ann"]]);
        // Pauses shorter than the hold keep the highlight.
        room.windows(5, &[("ann", 127, 0), ("bob", 127, 0)]);
        room.window(&[("ann", 30, 10), ("bob", 127, 0)]);
        assert_eq!(room.announcements.len(), 1, "{:?}", room.announcements);
        // Silence longer than the hold ends it.
        room.windows(8, &[("ann", 127, 0), ("bob", 127, 0)]);
        assert_eq!(room.announcements, vec![vec!["ann"], vec![]]);
    }

    #[test]
    fn a_beep_or_a_quiet_room_is_not_speech() {
        let mut room = Room::new();
        // One loud packet a window (a click, the fake device's beep).
        room.windows(20, &[("ann", 10, 1)]);
        // Steady background noise below the speech level.
        room.windows(20, &[("bob", 70, 10)]);
        assert!(room.announcements.is_empty(), "{:?}", room.announcements);
        assert!(room.detector.speakers().is_empty());
    }

    #[test]
    fn speakers_alternating_quickly_do_not_flicker() {
        let mut room = Room::new();
        // Ann and Bob take turns every window: both stay speakers.
        for _ in 0..10 {
            room.window(&[("ann", 30, 10), ("bob", 30, 10)]);
        }
        assert_eq!(room.announcements.len(), 1);
        for turn in 0..20 {
            if turn % 2 == 0 {
                room.window(&[("ann", 30, 10), ("bob", 127, 0)]);
            } else {
                room.window(&[("ann", 127, 0), ("bob", 30, 10)]);
            }
        }
        assert_eq!(room.announcements.len(), 1, "{:?}", room.announcements);
        assert_eq!(room.announcements[0], vec!["ann", "bob"]);
    }

    #[test]
    fn at_most_three_and_those_speaking_keep_their_places() {
        let mut room = Room::new();
        room.windows(2, &[("ann", 40, 10), ("bob", 30, 10), ("cy", 20, 10)]);
        assert_eq!(room.announcements, vec![vec!["cy", "bob", "ann"]]);
        // A louder fourth does not push out someone still speaking...
        room.windows(
            3,
            &[
                ("ann", 40, 10),
                ("bob", 30, 10),
                ("cy", 20, 10),
                ("di", 5, 10),
            ],
        );
        assert_eq!(room.announcements.len(), 1);
        // ...but takes the place of one who stopped, once the hold is over.
        room.windows(
            9,
            &[
                ("ann", 127, 0),
                ("bob", 30, 10),
                ("cy", 20, 10),
                ("di", 5, 10),
            ],
        );
        assert_eq!(room.announcements.last().unwrap(), &vec!["cy", "bob", "di"]);
    }

    #[test]
    fn a_person_who_left_is_gone_from_the_list() {
        let mut room = Room::new();
        room.windows(2, &[("ann", 30, 10), ("bob", 30, 10)]);
        assert_eq!(room.announcements, vec![vec!["ann", "bob"]]);
        room.detector.forget(&"bob");
        room.window(&[("ann", 30, 10)]);
        assert_eq!(room.announcements.last().unwrap(), &vec!["ann"]);
    }

    #[test]
    fn nothing_is_announced_before_a_window_is_over_or_without_levels() {
        let mut detector = SpeakerDetector::<u64>::default();
        let start = Instant::now();
        assert_eq!(detector.poll(start + Duration::from_secs(5)), None);
        detector.level(1, 20, start);
        assert_eq!(detector.poll(start + WINDOW / 2), None);
        // An out-of-range level counts as silence, not as a panic.
        detector.level(1, 200, start);
        assert_eq!(detector.poll(start + WINDOW), None);
    }
}
