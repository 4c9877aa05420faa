//! Per-connection rate limiting. Time comes in as an argument so the rule
//! is testable without waiting.

use std::time::Instant;

/// A token bucket: `capacity` messages at once, refilled at `per_second`.
#[derive(Debug, Clone)]
struct TokenBucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(capacity: u32, per_second: u32, now: Instant) -> Self {
        Self {
            capacity: f64::from(capacity),
            per_second: f64::from(per_second),
            tokens: f64::from(capacity),
            last: now,
        }
    }

    /// Takes one token if there is one.
    fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Signaling messages: a burst (ICE candidates come in bunches), then a
/// steady rate. Far above what a browser in a six-person call sends.
const BURST: u32 = 200;
const PER_SECOND: u32 = 50;
/// Messages refused for rate before the connection is closed as a flood.
const FLOOD_LIMIT: u32 = 100;
/// A connection refused nothing for this long starts its count of refused
/// messages afresh: a flood is closed, a long call with a burst now and
/// then is not.
const FLOOD_FORGIVEN_AFTER: std::time::Duration = std::time::Duration::from_secs(10);
/// Of refused messages, the first and every this many get an error back
/// (one per refused burst is enough).
const WARN_EVERY: u32 = 20;
/// Frames over the ordinary size limit (only a media-server session
/// description may be one): a page sends one per renegotiation, which the
/// server paces (one offer in flight per page), so a few a second is far
/// above need. Their own bucket keeps a client from making the server parse
/// large frames at the ordinary message rate.
const LARGE_BURST: u32 = 20;
const LARGE_PER_SECOND: u32 = 4;

/// What the limits make of one frame from a browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameVerdict {
    /// Within the limits: read it.
    Accept,
    /// Over the ordinary size limit but within the large one: read it, and
    /// take it only if it is a message that may be that large.
    AcceptLarge,
    /// Over the rate: dropped, and the client is told to slow down.
    DropAndWarn,
    /// Over the rate: dropped quietly (it was told already).
    Drop,
    /// Closed with this code: a frame over the size limit (1009), or a
    /// flood that went on after being told (1008).
    Close(u16),
}

/// The size and rate limits every frame of a connection passes: text,
/// binary, pings and pongs, before and after `join`.
#[derive(Debug, Clone)]
pub struct FrameGate {
    bucket: TokenBucket,
    large: TokenBucket,
    refused: u32,
    last_refused: Option<Instant>,
    max_bytes: usize,
    large_max_bytes: usize,
}

impl FrameGate {
    /// Frames up to `max_bytes` are ordinary; up to `large_max_bytes` they
    /// are large (see `FrameVerdict::AcceptLarge`); above, too big.
    pub fn new(max_bytes: usize, large_max_bytes: usize, now: Instant) -> Self {
        Self {
            bucket: TokenBucket::new(BURST, PER_SECOND, now),
            large: TokenBucket::new(LARGE_BURST, LARGE_PER_SECOND, now),
            refused: 0,
            last_refused: None,
            max_bytes,
            large_max_bytes: large_max_bytes.max(max_bytes),
        }
    }

    pub fn check(&mut self, bytes: usize, now: Instant) -> FrameVerdict {
        if bytes > self.large_max_bytes {
            return FrameVerdict::Close(protocol::close::TOO_BIG);
        }
        let large = bytes > self.max_bytes;
        // Both buckets are asked, so a large frame also counts against the
        // ordinary rate.
        let within_rate = self.bucket.try_take(now) && (!large || self.large.try_take(now));
        if within_rate {
            return if large {
                FrameVerdict::AcceptLarge
            } else {
                FrameVerdict::Accept
            };
        }
        let calm_since_last = self
            .last_refused
            .is_some_and(|last| now.saturating_duration_since(last) >= FLOOD_FORGIVEN_AFTER);
        if calm_since_last {
            self.refused = 0;
        }
        self.last_refused = Some(now);
        self.refused += 1;
        if self.refused > FLOOD_LIMIT {
            FrameVerdict::Close(protocol::close::POLICY)
        } else if self.refused == 1 || self.refused.is_multiple_of(WARN_EVERY) {
            FrameVerdict::DropAndWarn
        } else {
            FrameVerdict::Drop
        }
    }
}

/// Reactions: a few at once, then about one a second. They float over
/// everyone's screen, so a stuck key or a script must not fill it.
const REACTION_BURST: u32 = 5;
const REACTIONS_PER_SECOND: u32 = 1;

/// The reaction limit of one connection.
#[derive(Debug, Clone)]
pub struct ReactionGate(TokenBucket);

impl ReactionGate {
    pub fn new(now: Instant) -> Self {
        Self(TokenBucket::new(REACTION_BURST, REACTIONS_PER_SECOND, now))
    }

    /// Whether one more reaction may be shown now.
    pub fn allow(&mut self, now: Instant) -> bool {
        self.0.try_take(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn an_oversized_frame_closes_with_1009() {
        let now = Instant::now();
        let mut gate = FrameGate::new(100, 100, now);
        assert_eq!(gate.check(100, now), FrameVerdict::Accept);
        assert_eq!(
            gate.check(101, now),
            FrameVerdict::Close(protocol::close::TOO_BIG)
        );
    }

    #[test]
    fn large_frames_pass_at_a_rate_of_their_own() {
        let start = Instant::now();
        let mut gate = FrameGate::new(100, 1000, start);
        assert_eq!(gate.check(100, start), FrameVerdict::Accept);
        assert_eq!(
            gate.check(1001, start),
            FrameVerdict::Close(protocol::close::TOO_BIG)
        );
        let mut gate = FrameGate::new(100, 1000, start);
        assert!((0..LARGE_BURST).all(|_| gate.check(1000, start) == FrameVerdict::AcceptLarge));
        // Past the large burst: refused like a flood, while small frames
        // (those left in the ordinary burst) still pass.
        assert_eq!(gate.check(1000, start), FrameVerdict::DropAndWarn);
        assert_eq!(gate.check(10, start), FrameVerdict::Accept);
        let later = start + Duration::from_millis(250);
        assert_eq!(gate.check(1000, later), FrameVerdict::AcceptLarge);
    }

    #[test]
    fn a_flood_is_warned_then_dropped_then_closed_and_a_pause_refills() {
        let start = Instant::now();
        let mut gate = FrameGate::new(1000, 1000, start);
        // The burst passes.
        assert!((0..BURST).all(|_| gate.check(10, start) == FrameVerdict::Accept));
        // Then: one warning, quiet drops, a warning every 20th.
        let verdicts: Vec<FrameVerdict> = (0..FLOOD_LIMIT).map(|_| gate.check(10, start)).collect();
        assert_eq!(verdicts[0], FrameVerdict::DropAndWarn);
        assert_eq!(verdicts[1], FrameVerdict::Drop);
        assert_eq!(verdicts[19], FrameVerdict::DropAndWarn);
        assert_eq!(
            verdicts
                .iter()
                .filter(|v| **v == FrameVerdict::DropAndWarn)
                .count(),
            6
        );
        // Past the flood limit: closed as a policy violation.
        assert_eq!(
            gate.check(10, start),
            FrameVerdict::Close(protocol::close::POLICY)
        );
        // A connection that slows down is fine again.
        let mut calm = FrameGate::new(1000, 1000, start);
        assert!((0..BURST).all(|_| calm.check(10, start) == FrameVerdict::Accept));
        assert_eq!(calm.check(10, start), FrameVerdict::DropAndWarn);
        let later = start + Duration::from_secs(1);
        assert_eq!(calm.check(10, later), FrameVerdict::Accept);
    }

    #[test]
    fn bursts_far_apart_are_forgiven_a_flood_is_not() {
        let start = Instant::now();
        let mut gate = FrameGate::new(1000, 1000, start);
        // A long call: every 15 s a burst 60 frames over the limit. Each
        // burst is warned about and dropped, and the count starts afresh,
        // so it is never closed, though it adds up to far past the limit.
        let mut now = start;
        for _ in 0..10 {
            assert!((0..BURST).all(|_| gate.check(10, now) == FrameVerdict::Accept));
            let verdicts: Vec<FrameVerdict> = (0..60).map(|_| gate.check(10, now)).collect();
            assert_eq!(verdicts[0], FrameVerdict::DropAndWarn);
            assert!(!verdicts.iter().any(|v| matches!(v, FrameVerdict::Close(_))));
            now += Duration::from_secs(15);
        }
        // Refused frames closer together than that keep counting: closed.
        let mut flood = FrameGate::new(1000, 1000, start);
        let mut now = start;
        assert!((0..BURST).all(|_| flood.check(10, now) == FrameVerdict::Accept));
        let mut closed = false;
        for _ in 0..10 * FLOOD_LIMIT {
            now += Duration::from_millis(5);
            if flood.check(10, now) == FrameVerdict::Close(protocol::close::POLICY) {
                closed = true;
                break;
            }
        }
        assert!(closed, "a flood at 200 frames a second is closed");
    }

    #[test]
    fn bursts_up_to_capacity_then_refills() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(3, 2, start);
        assert!((0..3).all(|_| bucket.try_take(start)));
        assert!(!bucket.try_take(start));
        // Half a second at 2/s: one more.
        let later = start + Duration::from_millis(500);
        assert!(bucket.try_take(later));
        assert!(!bucket.try_take(later));
        // A long pause refills only to capacity.
        let much_later = later + Duration::from_secs(60);
        assert!((0..3).all(|_| bucket.try_take(much_later)));
        assert!(!bucket.try_take(much_later));
    }

    #[test]
    fn reactions_pass_a_few_at_once_then_one_a_second() {
        let start = Instant::now();
        let mut gate = ReactionGate::new(start);
        assert!((0..REACTION_BURST).all(|_| gate.allow(start)));
        assert!(!gate.allow(start));
        assert!(!gate.allow(start + Duration::from_millis(500)));
        assert!(gate.allow(start + Duration::from_millis(1000)));
    }
}
