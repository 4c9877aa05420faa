//! How many call connections each participant and each client address
//! holds open on this instance. A socket costs a task, buffers and a
//! database re-check now and then: without a cap one account (or one
//! script) could open them without bound.
//!
//! Counted per instance: behind a load balancer an attacker's sockets are
//! spread over N instances, and each of them still holds its own bound.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// Windows one person may have in calls at once (a second window replaces
/// the first in the same meeting; several meetings at once are rare).
pub const PER_PARTICIPANT: u32 = 8;

#[derive(Debug, Default)]
struct Counts {
    participants: HashMap<String, u32>,
    addresses: HashMap<String, u32>,
}

#[derive(Debug)]
pub struct SocketCounts {
    per_address: u32,
    counts: Mutex<Counts>,
}

impl SocketCounts {
    /// `per_address` 0 means no limit per address.
    pub fn new(per_address: u32) -> Self {
        Self {
            per_address,
            counts: Mutex::new(Counts::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        // Plain counters: a panic elsewhere while holding the lock leaves
        // them usable.
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A slot for one more connection, or None when the participant or the
    /// address is at its limit. The slot gives itself back when dropped.
    pub fn take(self: &Arc<Self>, participant: &str, client: IpAddr) -> Option<SocketSlot> {
        let address = address_key(client);
        let mut counts = self.lock();
        let by_participant = counts.participants.get(participant).copied().unwrap_or(0);
        let by_address = counts.addresses.get(&address).copied().unwrap_or(0);
        if by_participant >= PER_PARTICIPANT
            || (self.per_address > 0 && by_address >= self.per_address)
        {
            return None;
        }
        *counts
            .participants
            .entry(participant.to_string())
            .or_default() += 1;
        *counts.addresses.entry(address.clone()).or_default() += 1;
        Some(SocketSlot {
            counts: Arc::clone(self),
            participant: participant.to_string(),
            address,
        })
    }

    fn give_back(&self, participant: &str, address: &str) {
        let mut counts = self.lock();
        decrement(&mut counts.participants, participant);
        decrement(&mut counts.addresses, address);
    }

    /// Connections open now (for tests and metrics).
    pub fn open(&self) -> u32 {
        self.lock().participants.values().sum()
    }
}

fn decrement(map: &mut HashMap<String, u32>, key: &str) {
    if let Some(count) = map.get_mut(key) {
        *count = count.saturating_sub(1);
        if *count == 0 {
            map.remove(key);
        }
    }
}

/// One client for counting: the same key as every other limit
/// (`domain::throttle::client_key`: IPv4, or an IPv6 /64).
fn address_key(ip: IpAddr) -> String {
    domain::throttle::client_key(&ip.to_string())
}

#[derive(Debug)]
pub struct SocketSlot {
    counts: Arc<SocketCounts>,
    participant: String,
    address: String,
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        self.counts.give_back(&self.participant, &self.address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn a_participant_gets_a_bounded_number_of_sockets_back_when_dropped() {
        let counts = Arc::new(SocketCounts::new(0));
        let slots: Vec<_> = (0..PER_PARTICIPANT)
            .map(|_| counts.take("ann", ip("192.0.2.1")).expect("slot"))
            .collect();
        assert!(counts.take("ann", ip("192.0.2.1")).is_none());
        // Someone else is not affected.
        assert!(counts.take("bob", ip("192.0.2.1")).is_some());
        drop(slots);
        assert!(counts.take("ann", ip("192.0.2.1")).is_some());
        assert_eq!(counts.open(), 0, "every slot given back");
    }

    #[test]
    fn an_address_is_capped_and_ipv6_counts_by_its_64() {
        let counts = Arc::new(SocketCounts::new(2));
        let _a = counts.take("p1", ip("2001:db8:1:2::1")).expect("first");
        let _b = counts
            .take("p2", ip("2001:db8:1:2:ffff::9"))
            .expect("second");
        assert!(
            counts.take("p3", ip("2001:db8:1:2::77")).is_none(),
            "a third address in the same /64 shares the budget"
        );
        assert!(counts.take("p3", ip("2001:db8:1:3::1")).is_some());
        assert!(counts.take("p4", ip("192.0.2.7")).is_some());
    }

    #[test]
    fn address_keys() {
        assert_eq!(address_key(ip("192.0.2.1")), "192.0.2.1");
        assert_eq!(address_key(ip("::ffff:192.0.2.1")), "192.0.2.1");
        assert_eq!(address_key(ip("2001:db8::1")), "2001:db8:0:0::/64");
    }
}
