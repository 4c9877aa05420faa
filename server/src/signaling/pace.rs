//! When a connection lets its room's events collect before reading them.
//!
//! Reading and writing each room event as it comes costs a wake-up and a
//! socket write per delivery; in a busy room (dozens of people toggling,
//! talking, raising hands) that is most of what the server does. Letting
//! the events of a few milliseconds collect and writing them together
//! costs each of them at most that wait, which nobody notices, and pays
//! only when there is something to collect: in a quiet room the wait would
//! delay every event and save nothing. So a connection waits only while its
//! room's recent pace brings at least one more event per wait.
//!
//! No clock here: the pump passes the time in.

use std::time::{Duration, Instant};

/// How long a busy connection lets room events collect after writing a
/// batch of them.
pub const EVENT_COALESCE: Duration = Duration::from_millis(4);

/// The pace is measured over windows this long.
const WINDOW: Duration = Duration::from_millis(100);

/// A connection's recent pace of room events.
#[derive(Debug)]
pub struct EventPace {
    window_start: Instant,
    in_window: u32,
    busy: bool,
}

impl EventPace {
    pub fn new(now: Instant) -> Self {
        Self {
            window_start: now,
            in_window: 0,
            busy: false,
        }
    }

    /// `events` room events were just read and their frames written: until
    /// when to leave the next ones to collect, if at all.
    pub fn after_batch(&mut self, events: u32, now: Instant) -> Option<Instant> {
        self.in_window = self.in_window.saturating_add(events);
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed >= WINDOW {
            let per_wait =
                f64::from(self.in_window) * EVENT_COALESCE.as_secs_f64() / elapsed.as_secs_f64();
            self.busy = per_wait >= 1.0;
            self.window_start = now;
            self.in_window = 0;
        }
        self.busy.then(|| now + EVENT_COALESCE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds one event every `gap` for `span`, as the pump would, and says
    /// how many of those batches were followed by a wait.
    fn waits(pace: &mut EventPace, start: Instant, gap: Duration, span: Duration) -> usize {
        let mut waits = 0;
        let mut now = start;
        while now < start + span {
            if let Some(until) = pace.after_batch(1, now) {
                assert_eq!(until, now + EVENT_COALESCE);
                waits += 1;
            }
            now += gap;
        }
        waits
    }

    #[test]
    fn a_quiet_room_never_waits() {
        let start = Instant::now();
        let mut pace = EventPace::new(start);
        // 180 events a second (a room of 10 toggling 20 times a second):
        // fewer than one per wait.
        let gap = Duration::from_micros(5_555);
        assert_eq!(waits(&mut pace, start, gap, Duration::from_secs(2)), 0);
    }

    #[test]
    fn a_busy_room_waits_after_its_first_window_and_stops_when_it_calms() {
        let start = Instant::now();
        let mut pace = EventPace::new(start);
        // 1,000 events a second: four per wait. Nothing is held back
        // until a window shows the pace.
        let busy = Duration::from_millis(1);
        assert_eq!(pace.after_batch(1, start), None);
        let waited = waits(&mut pace, start + busy, busy, Duration::from_secs(1));
        assert!(waited >= 890, "waited after {waited} of 1000 batches");
        // The room calms down: one event after a long silence goes out
        // without a wait, and so does everything at the quiet pace.
        let later = start + Duration::from_secs(5);
        assert_eq!(pace.after_batch(1, later), None);
        let quiet = Duration::from_millis(20);
        assert_eq!(
            waits(&mut pace, later + quiet, quiet, Duration::from_secs(1)),
            0
        );
    }

    #[test]
    fn batches_count_every_event_they_held() {
        let start = Instant::now();
        let mut pace = EventPace::new(start);
        // Batches of five every 10 ms: 500 a second, two per wait.
        let mut now = start;
        let mut last = None;
        for _ in 0..30 {
            now += Duration::from_millis(10);
            last = pace.after_batch(5, now);
        }
        assert_eq!(last, Some(now + EVENT_COALESCE));
    }
}
