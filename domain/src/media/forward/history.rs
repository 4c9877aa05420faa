//! The packets recently sent on one outgoing stream, by the sequence
//! number the receiving browser knows them by, so that its NACKs are
//! answered by the media server: a packet lost on one receiver's link is
//! resent on that link only, and the publisher's uplink never carries it
//! twice.

use std::time::{Duration, Instant};

/// How many packets a stream keeps: about a second of 720p video at
/// 1.5 Mbit/s in 1200-byte packets (a power of two, so a sequence number
/// picks its place).
pub const DEFAULT_CAPACITY: usize = 512;
/// A packet older than this is not resent: the browser's jitter buffer has
/// given up on it, and it would arrive too late to be shown.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_millis(1_000);

/// A ring of the last packets sent, each in the place its sequence number
/// picks (`sequence % capacity`).
#[derive(Debug, Clone)]
pub struct SentHistory<P> {
    places: Vec<Option<Sent<P>>>,
    max_age: Duration,
}

#[derive(Debug, Clone)]
struct Sent<P> {
    sequence: u16,
    at: Instant,
    packet: P,
}

impl<P> SentHistory<P> {
    /// A history of `capacity` packets (rounded up to a power of two, at
    /// most 32768 so a place is never shared by two numbers in flight)
    /// kept for `max_age`.
    pub fn new(capacity: usize, max_age: Duration) -> Self {
        let capacity = capacity.clamp(1, 1 << 15).next_power_of_two();
        Self {
            places: std::iter::repeat_with(|| None).take(capacity).collect(),
            max_age,
        }
    }

    /// `packet` went out numbered `sequence` at `now`.
    pub fn record(&mut self, sequence: u16, packet: P, now: Instant) {
        let place = self.place(sequence);
        self.places[place] = Some(Sent {
            sequence,
            at: now,
            packet,
        });
    }

    /// The packet numbered `sequence`, if it is still kept and young
    /// enough to be worth resending at `now`.
    pub fn lookup(&self, sequence: u16, now: Instant) -> Option<&P> {
        let sent = self.places[self.place(sequence)].as_ref()?;
        let young = now.saturating_duration_since(sent.at) <= self.max_age;
        (sent.sequence == sequence && young).then_some(&sent.packet)
    }

    fn place(&self, sequence: u16) -> usize {
        usize::from(sequence) & (self.places.len() - 1)
    }
}

impl<P> Default for SentHistory<P> {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY, DEFAULT_MAX_AGE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recent_packet_is_found_by_its_number_across_the_wrap() {
        let start = Instant::now();
        let mut history = SentHistory::new(8, Duration::from_secs(1));
        for sequence in [65_534u16, 65_535, 0, 1] {
            history.record(sequence, format!("packet {sequence}"), start);
        }
        assert_eq!(
            history.lookup(65_535, start).map(String::as_str),
            Some("packet 65535")
        );
        assert_eq!(
            history.lookup(1, start).map(String::as_str),
            Some("packet 1")
        );
        assert_eq!(history.lookup(2, start), None, "never sent");
    }

    #[test]
    fn a_packet_pushed_out_or_too_old_is_not_resent() {
        let start = Instant::now();
        let mut history = SentHistory::new(4, Duration::from_millis(500));
        for sequence in 0..6u16 {
            history.record(sequence, sequence, start);
        }
        assert_eq!(history.lookup(1, start), None, "its place holds 5 now");
        assert_eq!(history.lookup(5, start), Some(&5));
        assert_eq!(
            history.lookup(5, start + Duration::from_millis(500)),
            Some(&5)
        );
        assert_eq!(history.lookup(5, start + Duration::from_millis(501)), None);
    }

    #[test]
    fn the_capacity_is_a_power_of_two_within_bounds() {
        let history: SentHistory<()> = SentHistory::new(300, Duration::ZERO);
        assert_eq!(history.places.len(), 512);
        let history: SentHistory<()> = SentHistory::new(0, Duration::ZERO);
        assert_eq!(history.places.len(), 1);
        let history: SentHistory<()> = SentHistory::new(usize::MAX, Duration::ZERO);
        assert_eq!(history.places.len(), 1 << 15);
    }
}
