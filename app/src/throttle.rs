//! Slows down password guessing: after too many failures for one key (an
//! account, or a client address) within a window, that key is locked out for
//! a while. In memory, per instance; time is passed in so the logic is
//! testable without sleeping.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    pub max_failures: u32,
    pub window: Duration,
    pub lockout: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start: Instant,
    failures: u32,
    locked_until: Option<Instant>,
}

/// Above this many tracked keys, stale entries are swept on the next failure,
/// so a flood of random usernames cannot grow memory without bound.
const SWEEP_ABOVE: usize = 50_000;

#[derive(Debug)]
pub struct FailureLimiter {
    policy: ThrottlePolicy,
    entries: Mutex<HashMap<String, Entry>>,
}

impl FailureLimiter {
    pub fn new(policy: ThrottlePolicy) -> Self {
        Self {
            policy,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A poisoned lock only means another thread panicked mid-update of a
        // counter; the map is still usable.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Err(retry_after)` while the key is locked out.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        match self.lock().get(key).and_then(|e| e.locked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    pub fn record_failure(&self, key: &str, now: Instant) {
        let policy = self.policy;
        let mut entries = self.lock();
        if entries.len() > SWEEP_ABOVE {
            entries.retain(|_, e| {
                now.duration_since(e.window_start) < policy.window
                    || e.locked_until.is_some_and(|until| until > now)
            });
        }
        let entry = entries.entry(key.to_string()).or_insert(Entry {
            window_start: now,
            failures: 0,
            locked_until: None,
        });
        if now.duration_since(entry.window_start) >= policy.window {
            entry.window_start = now;
            entry.failures = 0;
        }
        entry.failures += 1;
        if entry.failures >= policy.max_failures {
            entry.locked_until = Some(now + policy.lockout);
            entry.failures = 0;
            entry.window_start = now;
        }
    }

    pub fn record_success(&self, key: &str) {
        self.lock().remove(key);
    }
}

/// Sign-in throttling by account and by client address.
#[derive(Debug)]
pub struct LoginThrottle {
    per_account: FailureLimiter,
    per_client: FailureLimiter,
}

impl LoginThrottle {
    pub fn new(per_account: ThrottlePolicy, per_client: ThrottlePolicy) -> Self {
        Self {
            per_account: FailureLimiter::new(per_account),
            per_client: FailureLimiter::new(per_client),
        }
    }

    pub fn check(&self, account: &str, client: &str, now: Instant) -> Result<(), Duration> {
        let account = self.per_account.check(account, now);
        let client = self.per_client.check(client, now);
        match (account, client) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(a), Err(b)) => Err(a.max(b)),
            (Err(d), _) | (_, Err(d)) => Err(d),
        }
    }

    pub fn record_failure(&self, account: &str, client: &str, now: Instant) {
        self.per_account.record_failure(account, now);
        self.per_client.record_failure(client, now);
    }

    /// A success clears the account's counter only: one good password from an
    /// address must not reset that address's budget for guessing others.
    pub fn record_success(&self, account: &str) {
        self.per_account.record_success(account);
    }
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::new(
            ThrottlePolicy {
                max_failures: 5,
                window: Duration::from_secs(15 * 60),
                lockout: Duration::from_secs(15 * 60),
            },
            ThrottlePolicy {
                max_failures: 30,
                window: Duration::from_secs(15 * 60),
                lockout: Duration::from_secs(15 * 60),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ThrottlePolicy {
        ThrottlePolicy {
            max_failures: 3,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(300),
        }
    }

    #[test]
    fn locks_after_max_failures_and_unlocks_after_lockout() {
        let limiter = FailureLimiter::new(policy());
        let t0 = Instant::now();
        for i in 0..2 {
            limiter.record_failure("alice", t0 + Duration::from_secs(i));
            assert!(limiter.check("alice", t0 + Duration::from_secs(i)).is_ok());
        }
        limiter.record_failure("alice", t0 + Duration::from_secs(2));
        let retry = limiter
            .check("alice", t0 + Duration::from_secs(3))
            .unwrap_err();
        assert_eq!(retry, Duration::from_secs(299));
        assert!(limiter.check("bob", t0).is_ok());
        assert!(limiter
            .check("alice", t0 + Duration::from_secs(303))
            .is_ok());
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let limiter = FailureLimiter::new(policy());
        let t0 = Instant::now();
        limiter.record_failure("a", t0);
        limiter.record_failure("a", t0 + Duration::from_secs(1));
        limiter.record_failure("a", t0 + Duration::from_secs(61));
        assert!(limiter.check("a", t0 + Duration::from_secs(62)).is_ok());
    }

    #[test]
    fn success_clears_account_but_not_client() {
        let throttle = LoginThrottle::new(policy(), policy());
        let t0 = Instant::now();
        throttle.record_failure("a", "1.2.3.4", t0);
        throttle.record_failure("a", "1.2.3.4", t0);
        throttle.record_success("a");
        throttle.record_failure("b", "1.2.3.4", t0);
        assert!(throttle.check("a", "5.6.7.8", t0).is_ok());
        assert!(throttle.check("c", "1.2.3.4", t0).is_err());
    }
}
