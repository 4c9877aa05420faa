//! Keyframe requests (PLI) relayed to one publisher's video stream.
//!
//! Receivers ask for a keyframe when they start a stream (a newcomer, a
//! camera that comes back, a layer change) and when they lose one. Each
//! keyframe costs the publisher a burst of bits on its uplink, and thirty
//! receivers that join at once must not cost thirty. So requests are
//! relayed at most once per interval; one that arrives inside the interval
//! is kept and relayed when the interval is over, unless a keyframe came
//! in the meantime (it answers every request made before it).

use std::time::{Duration, Instant};

/// The shortest time between two requests relayed to one publisher: about
/// the time a keyframe takes to arrive, so one request is not repeated
/// while its answer is on the way.
pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_millis(500);

/// One publisher stream's requests.
#[derive(Debug, Clone)]
pub struct KeyframeRequests {
    min_interval: Duration,
    last_relayed: Option<Instant>,
    /// A receiver asked since the last relay and no keyframe has come.
    waiting: bool,
}

impl KeyframeRequests {
    pub fn new(min_interval: Duration) -> Self {
        Self {
            min_interval,
            last_relayed: None,
            waiting: false,
        }
    }

    /// A receiver asks at `now`. Answers whether to relay a request to the
    /// publisher now.
    pub fn ask(&mut self, now: Instant) -> bool {
        if self.may_relay(now) {
            self.last_relayed = Some(now);
            self.waiting = false;
            true
        } else {
            self.waiting = true;
            false
        }
    }

    /// A keyframe arrived from the publisher: it answers every request
    /// made so far.
    pub fn keyframe_arrived(&mut self) {
        self.waiting = false;
    }

    /// Called at [`Self::next_due`]: whether a held-back request is to be
    /// relayed now.
    pub fn poll(&mut self, now: Instant) -> bool {
        if self.waiting && self.may_relay(now) {
            self.last_relayed = Some(now);
            self.waiting = false;
            true
        } else {
            false
        }
    }

    /// When a held-back request falls due, if one is waiting.
    pub fn next_due(&self) -> Option<Instant> {
        // A request is held back only after one was relayed.
        self.last_relayed
            .filter(|_| self.waiting)
            .map(|at| at + self.min_interval)
    }

    fn may_relay(&self, now: Instant) -> bool {
        self.last_relayed
            .is_none_or(|at| now.saturating_duration_since(at) >= self.min_interval)
    }
}

impl Default for KeyframeRequests {
    fn default() -> Self {
        Self::new(DEFAULT_MIN_INTERVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_receivers_asking_at_once_cost_the_publisher_one_keyframe_request() {
        let start = Instant::now();
        let mut requests = KeyframeRequests::default();
        let relayed = (0..30)
            .filter(|i| requests.ask(start + Duration::from_millis(*i)))
            .count();
        assert_eq!(relayed, 1);
        // The ones held back are relayed once, when the interval is over.
        assert_eq!(requests.next_due(), Some(start + DEFAULT_MIN_INTERVAL));
        assert!(!requests.poll(start + Duration::from_millis(499)));
        assert!(requests.poll(start + DEFAULT_MIN_INTERVAL));
        assert!(!requests.poll(start + Duration::from_secs(2)), "only once");
        assert_eq!(requests.next_due(), None);
    }

    #[test]
    fn a_keyframe_answers_the_requests_held_back() {
        let start = Instant::now();
        let mut requests = KeyframeRequests::default();
        assert!(requests.ask(start));
        assert!(!requests.ask(start + Duration::from_millis(100)));
        requests.keyframe_arrived();
        assert_eq!(requests.next_due(), None);
        assert!(!requests.poll(start + Duration::from_secs(1)));
    }

    #[test]
    fn a_request_after_the_interval_is_relayed_at_once() {
        let start = Instant::now();
        let mut requests = KeyframeRequests::new(Duration::from_millis(200));
        assert!(requests.ask(start));
        assert!(requests.ask(start + Duration::from_millis(200)));
        assert!(!requests.ask(start + Duration::from_millis(300)));
    }
}
