//! Keyframe requests (PLI) relayed to one publisher's video stream.
//!
//! Receivers ask for a keyframe when they start a stream (a newcomer, a
//! camera that comes back, a layer change) and when they lose one. Each
//! keyframe costs the publisher a burst of bits on its uplink, and thirty
//! receivers that join at once must not cost thirty. So requests are
//! relayed at most once per interval; one that arrives inside the interval
//! is kept and relayed when the interval is over, unless a keyframe came
//! in the meantime (it answers every request made before it).
//!
//! A request, or the keyframe answering it, can be lost (RTCP and RTP go
//! over UDP, and a browser ignores a request for a layer it has not
//! started yet). A receiver that waits for a keyframe gets nothing until
//! one comes, so an unanswered request is relayed again after
//! [`RETRY_AFTER`] for as long as someone still waits.

use std::time::{Duration, Instant};

/// The shortest time between two requests relayed to one publisher: about
/// the time a keyframe takes to arrive, so one request is not repeated
/// while its answer is on the way.
pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_millis(500);

/// How long after a relayed request with no keyframe since it is taken
/// for lost: a keyframe is on the wire well within a round trip and an
/// encoder's frame interval.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// One publisher stream's requests.
#[derive(Debug, Clone)]
pub struct KeyframeRequests {
    min_interval: Duration,
    last_relayed: Option<Instant>,
    /// A receiver asked since the last relay and no keyframe has come.
    waiting: bool,
    /// A request was relayed and no keyframe has come since.
    unanswered: bool,
}

impl KeyframeRequests {
    pub fn new(min_interval: Duration) -> Self {
        Self {
            min_interval,
            last_relayed: None,
            waiting: false,
            unanswered: false,
        }
    }

    /// A receiver asks at `now`. Answers whether to relay a request to the
    /// publisher now.
    pub fn ask(&mut self, now: Instant) -> bool {
        if self.may_relay(now) {
            self.relay(now);
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
        self.unanswered = false;
    }

    /// Called at [`Self::next_due`]: whether a held-back request is to be
    /// relayed now.
    pub fn poll(&mut self, now: Instant) -> bool {
        if self.waiting && self.may_relay(now) {
            self.relay(now);
            true
        } else {
            false
        }
    }

    /// Called at [`Self::retry_due`] while a receiver still waits for a
    /// keyframe: whether to relay the request again, the last one having
    /// gone unanswered for [`RETRY_AFTER`].
    pub fn retry(&mut self, now: Instant) -> bool {
        if self.retry_due().is_some_and(|due| now >= due) {
            self.relay(now);
            true
        } else {
            false
        }
    }

    /// When the last relayed request counts as lost, if no keyframe has
    /// come since it.
    pub fn retry_due(&self) -> Option<Instant> {
        self.last_relayed
            .filter(|_| self.unanswered)
            .map(|at| at + RETRY_AFTER)
    }

    /// Nobody waits for the answer to the last request any more.
    pub fn give_up(&mut self) {
        self.unanswered = false;
    }

    fn relay(&mut self, now: Instant) {
        self.last_relayed = Some(now);
        self.waiting = false;
        self.unanswered = true;
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
    fn an_unanswered_request_is_relayed_again_until_a_keyframe_comes() {
        let start = Instant::now();
        let mut requests = KeyframeRequests::default();
        assert!(requests.ask(start));
        assert_eq!(requests.retry_due(), Some(start + RETRY_AFTER));
        assert!(!requests.retry(start + RETRY_AFTER - Duration::from_millis(1)));
        assert!(requests.retry(start + RETRY_AFTER), "the request was lost");
        let again = start + RETRY_AFTER * 2;
        assert_eq!(requests.retry_due(), Some(again));
        requests.keyframe_arrived();
        assert_eq!(requests.retry_due(), None);
        assert!(!requests.retry(again), "answered");
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
