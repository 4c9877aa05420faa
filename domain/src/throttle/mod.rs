//! Abuse limits: how often one key (an account, a client address, a pair of
//! both, a participant) may do something.
//!
//! Every limit is a GCRA ("generic cell rate algorithm", a token bucket kept
//! as one number: the theoretical arrival time of the next event). A rule
//! lets `burst` events through at once and then one every `interval`. Why
//! GCRA rather than fixed or sliding windows: one value per key and one
//! atomic read-modify-write (a short Lua script in Redis), no doubled burst
//! at window edges as with fixed windows, and the same burst-then-rate shape
//! the chat limit already had.
//!
//! The counters live behind `RateStore`: in this process by default, in
//! Redis with `REDIS_URL` (`redis`), so N instances do not give
//! an attacker N budgets. Time is passed in (unix milliseconds, since
//! instances share the wall clock, not `Instant`), so the rules are testable
//! without sleeping.

pub mod redis;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `burst` events at once, then one per `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub burst: u32,
    pub interval: Duration,
}

impl Rule {
    /// At most `limit` events in any `window` (refilling evenly).
    pub fn per(limit: u32, window: Duration) -> Self {
        let limit = limit.max(1);
        Self {
            burst: limit,
            interval: window / limit,
        }
    }

    fn interval_ms(&self) -> i64 {
        (self.interval.as_millis() as i64).max(1)
    }
}

/// The answer for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Events still counted against the key before this one (0: a clean
    /// slate).
    pub used: u32,
    /// How long until one more event would be allowed (zero when allowed).
    pub retry_after: Duration,
}

impl Decision {
    /// The decision for a key whose stored arrival time is `tat` (0 when
    /// absent). Shared by every store so they all answer alike.
    pub fn from_tat(tat: i64, rule: Rule, now_ms: i64) -> Self {
        let t = rule.interval_ms();
        let start = tat.max(now_ms);
        let next = start + t;
        let allowed = next - now_ms <= i64::from(rule.burst) * t;
        let used = ((start - now_ms) + t - 1) / t;
        let retry_after = if allowed {
            Duration::ZERO
        } else {
            Duration::from_millis((next - now_ms - i64::from(rule.burst) * t) as u64)
        };
        Self {
            allowed,
            used: used.clamp(0, i64::from(u32::MAX)) as u32,
            retry_after,
        }
    }

    /// The arrival time to store after counting an allowed event.
    pub fn next_tat(tat: i64, rule: Rule, now_ms: i64) -> i64 {
        tat.max(now_ms) + rule.interval_ms()
    }

    /// Retry-after in whole seconds, at least 1 (for answers to people).
    pub fn retry_secs(&self) -> u64 {
        self.retry_after.as_secs_f64().ceil().max(1.0) as u64
    }
}

#[derive(Debug, thiserror::Error)]
#[error("rate store unavailable: {0}")]
pub struct RateError(pub String);

/// Where the counters live.
#[async_trait::async_trait]
pub trait RateStore: Send + Sync + 'static {
    /// Decides one event for `key` under `rule` at `now_ms`, counting it
    /// when `count` is true and it is allowed (refused events are not
    /// counted: hammering does not push the refusal further away). Atomic
    /// per key.
    async fn hit(
        &self,
        key: &str,
        rule: Rule,
        now_ms: i64,
        count: bool,
    ) -> Result<Decision, RateError>;
    /// Forgets `key`.
    async fn clear(&self, key: &str) -> Result<(), RateError>;
}

/// Above this many tracked keys, spent ones are swept on the next write, so
/// a flood of random usernames cannot grow memory without bound.
const SWEEP_ABOVE: usize = 50_000;

/// Counters in this process (one instance, or the fallback when Redis is
/// down).
#[derive(Debug, Default)]
pub struct LocalRateStore {
    tats: Mutex<HashMap<String, i64>>,
}

impl LocalRateStore {
    fn decide(&self, key: &str, rule: Rule, now_ms: i64, count: bool) -> Decision {
        // A poisoned lock only means another thread panicked mid-update of a
        // counter; the map is still usable.
        let mut tats = self.tats.lock().unwrap_or_else(|e| e.into_inner());
        let tat = tats.get(key).copied().unwrap_or(0);
        let decision = Decision::from_tat(tat, rule, now_ms);
        if decision.allowed && count {
            if tats.len() > SWEEP_ABOVE {
                tats.retain(|_, tat| *tat > now_ms);
            }
            tats.insert(key.to_string(), Decision::next_tat(tat, rule, now_ms));
        }
        decision
    }
}

#[async_trait::async_trait]
impl RateStore for LocalRateStore {
    async fn hit(
        &self,
        key: &str,
        rule: Rule,
        now_ms: i64,
        count: bool,
    ) -> Result<Decision, RateError> {
        Ok(self.decide(key, rule, now_ms, count))
    }

    async fn clear(&self, key: &str) -> Result<(), RateError> {
        self.tats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        Ok(())
    }
}

/// The store the server uses, with a way down: when the shared store (Redis)
/// fails, this instance counts by itself until it answers again. Neither
/// fail-open (no limits at all while Redis is down: a free window for
/// guessing) nor fail-closed (every sign-in refused: a Redis outage, or an
/// attacker who can upset Redis, would lock everyone out); per-instance
/// counting is what a single instance always had.
///
/// While the store is failing it is asked again at most every
/// `RETRY_STORE_MS`, so an outage costs one slow request now and then, not
/// a timeout on every request.
pub struct Limiter {
    store: Arc<dyn RateStore>,
    fallback: LocalRateStore,
    degraded: AtomicBool,
    /// Unix ms before which the failing store is not asked again.
    retry_store_at: AtomicI64,
    /// Where refusals are counted (by the limit's name).
    metrics: crate::metrics::Metrics,
}

const RETRY_STORE_MS: i64 = 5_000;

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("degraded", &self.degraded.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Default for Limiter {
    fn default() -> Self {
        Self::new(Arc::new(LocalRateStore::default()))
    }
}

fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Limiter {
    pub fn new(store: Arc<dyn RateStore>) -> Self {
        Self {
            store,
            fallback: LocalRateStore::default(),
            degraded: AtomicBool::new(false),
            retry_store_at: AtomicI64::new(0),
            metrics: crate::metrics::Metrics::default(),
        }
    }

    /// Counts refusals into `metrics`.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Where this limiter's instance counts things.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// Counts one refusal by the limit named `limit` (a fixed name, never a
    /// client or an account).
    pub fn refused(&self, limit: &str) {
        self.metrics.rate_limited(limit);
    }

    /// Decides (and counts, if allowed) one event now.
    pub async fn hit(&self, key: &str, rule: Rule) -> Decision {
        self.hit_at(key, rule, wall_clock_ms(), true).await
    }

    /// Whether one more event would be allowed now, counting nothing.
    pub async fn peek(&self, key: &str, rule: Rule) -> Decision {
        self.hit_at(key, rule, wall_clock_ms(), false).await
    }

    pub async fn hit_at(&self, key: &str, rule: Rule, now_ms: i64, count: bool) -> Decision {
        if self.degraded.load(Ordering::Relaxed)
            && wall_clock_ms() < self.retry_store_at.load(Ordering::Relaxed)
        {
            return self.fallback.decide(key, rule, now_ms, count);
        }
        match self.store.hit(key, rule, now_ms, count).await {
            Ok(decision) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!("rate limits shared again");
                }
                decision
            }
            Err(err) => {
                self.retry_store_at
                    .store(wall_clock_ms() + RETRY_STORE_MS, Ordering::Relaxed);
                if !self.degraded.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %err, "rate limits unavailable: counting on this instance only");
                }
                self.fallback.decide(key, rule, now_ms, count)
            }
        }
    }

    pub async fn clear(&self, key: &str) {
        let _ = self.fallback.clear(key).await;
        if self.degraded.load(Ordering::Relaxed) {
            return;
        }
        if let Err(err) = self.store.clear(key).await {
            tracing::warn!(error = %err, "could not clear a rate limit");
        }
    }
}

/// The part of a client address that limits count against: an IPv4 address
/// as is, an IPv6 address by its /64 (one subscriber usually holds a whole
/// /64, so counting single addresses would hand out 2^64 budgets).
pub fn client_key(client: &str) -> String {
    match client.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Err(_) => client.to_string(),
    }
}

/// Sign-in limits. None of them locks an account as such: the owner
/// signing in from an address with no recent failure is never refused
/// because of guesses made elsewhere.
#[derive(Debug, Clone, Copy)]
pub struct LoginPolicy {
    /// Failures per account and client address.
    pub pair: Rule,
    /// Failures per client address, whatever the accounts.
    pub client: Rule,
    /// Attempts per account from addresses that already failed for it:
    /// many addresses guessing one password share this slow rate.
    pub account: Rule,
}

impl Default for LoginPolicy {
    fn default() -> Self {
        Self {
            pair: Rule::per(5, Duration::from_secs(15 * 60)),
            client: Rule::per(30, Duration::from_secs(15 * 60)),
            account: Rule::per(10, Duration::from_secs(60)),
        }
    }
}

/// Sign-in throttling (and checking the current password on a change).
#[derive(Debug)]
pub struct LoginThrottle {
    limiter: Arc<Limiter>,
    policy: LoginPolicy,
}

impl LoginThrottle {
    pub fn new(limiter: Arc<Limiter>, policy: LoginPolicy) -> Self {
        Self { limiter, policy }
    }

    fn keys(account: &str, client: &str) -> (String, String, String) {
        let client = client_key(client);
        (
            format!("login:pair:{client}:{account}"),
            format!("login:client:{client}"),
            format!("login:account:{account}"),
        )
    }

    /// `Err(retry_after)` when this attempt must wait.
    pub async fn check(&self, account: &str, client: &str) -> Result<(), Duration> {
        let (pair, client, account) = Self::keys(account, client);
        let l = &self.limiter;
        let pair = l.peek(&pair, self.policy.pair).await;
        if !pair.allowed {
            l.refused("sign_in");
            return Err(pair.retry_after);
        }
        let client = l.peek(&client, self.policy.client).await;
        if !client.allowed {
            l.refused("sign_in");
            return Err(client.retry_after);
        }
        // Only addresses that already failed for this account share its
        // slow rate, so guesses from elsewhere never stop the owner.
        if pair.used > 0 {
            let account = l.hit(&account, self.policy.account).await;
            if !account.allowed {
                l.refused("sign_in");
                return Err(account.retry_after);
            }
        }
        Ok(())
    }

    pub async fn record_failure(&self, account: &str, client: &str) {
        let (pair, client, _) = Self::keys(account, client);
        self.limiter.hit(&pair, self.policy.pair).await;
        self.limiter.hit(&client, self.policy.client).await;
    }

    /// A success clears this address's failures for the account only: one
    /// good password must not reset the address's budget for guessing
    /// others.
    pub async fn record_success(&self, account: &str, client: &str) {
        let (pair, _, _) = Self::keys(account, client);
        self.limiter.clear(&pair).await;
    }
}

/// Counts failures of one kind per client address (unknown meeting codes).
#[derive(Debug)]
pub struct FailureLimiter {
    limiter: Arc<Limiter>,
    name: &'static str,
    rule: Rule,
}

impl FailureLimiter {
    pub fn new(limiter: Arc<Limiter>, name: &'static str, rule: Rule) -> Self {
        Self {
            limiter,
            name,
            rule,
        }
    }

    fn key(&self, client: &str) -> String {
        format!("{}:{}", self.name, client_key(client))
    }

    /// `Err(retry_after)` while the client has used up its failures.
    pub async fn check(&self, client: &str) -> Result<(), Duration> {
        let decision = self.limiter.peek(&self.key(client), self.rule).await;
        if decision.allowed {
            Ok(())
        } else {
            self.limiter.refused(self.name);
            Err(decision.retry_after)
        }
    }

    pub async fn record_failure(&self, client: &str) {
        self.limiter.hit(&self.key(client), self.rule).await;
    }
}

/// Limits on costly things that succeed (creating accounts, guests,
/// knocks), per client address.
#[derive(Debug, Clone, Copy)]
pub struct ActionPolicy {
    pub sign_ups: Rule,
    pub guests: Rule,
    /// Knocks per meeting and client address.
    pub knocks: Rule,
    /// People waiting at one meeting's door, at most.
    pub max_waiting: u32,
}

impl Default for ActionPolicy {
    fn default() -> Self {
        Self {
            // Generous enough for a class signing up behind one address.
            sign_ups: Rule::per(20, Duration::from_secs(3600)),
            guests: Rule::per(50, Duration::from_secs(3600)),
            knocks: Rule::per(30, Duration::from_secs(10 * 60)),
            max_waiting: 100,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn store() -> Arc<dyn RateStore> {
        Arc::new(LocalRateStore::default())
    }

    #[test]
    fn gcra_lets_a_burst_through_then_one_per_interval() {
        let rule = Rule::per(3, Duration::from_secs(60)); // one per 20 s
        let mut tat = 0;
        let t0 = 1_000_000;
        for i in 0..3 {
            let d = Decision::from_tat(tat, rule, t0);
            assert!(d.allowed, "event {i}");
            assert_eq!(d.used, i);
            tat = Decision::next_tat(tat, rule, t0);
        }
        let refused = Decision::from_tat(tat, rule, t0);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_secs(20));
        assert_eq!(refused.retry_secs(), 20);
        assert!(Decision::from_tat(tat, rule, t0 + 20_000).allowed);
        // After the whole window the slate is clean.
        assert_eq!(Decision::from_tat(tat, rule, t0 + MIN).used, 0);
    }

    #[tokio::test]
    async fn refused_events_are_not_counted() {
        let limiter = Limiter::new(store());
        let rule = Rule::per(2, Duration::from_secs(60));
        let t0 = 5 * MIN;
        assert!(limiter.hit_at("k", rule, t0, true).await.allowed);
        assert!(limiter.hit_at("k", rule, t0, true).await.allowed);
        for _ in 0..10 {
            assert!(!limiter.hit_at("k", rule, t0, true).await.allowed);
        }
        assert!(limiter.hit_at("k", rule, t0 + 30_000, true).await.allowed);
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        assert_eq!(
            client_key("2001:db8:aa:bb:1::1"),
            client_key("2001:db8:aa:bb:ffff::2")
        );
        assert_ne!(
            client_key("2001:db8:aa:bb::1"),
            client_key("2001:db8:aa:bc::1")
        );
        assert_eq!(client_key("203.0.113.7"), "203.0.113.7");
        assert_eq!(client_key("::ffff:203.0.113.7"), "203.0.113.7");
        assert_eq!(client_key("unknown"), "unknown");
    }

    #[tokio::test]
    async fn guessing_from_elsewhere_never_stops_the_owner() {
        let throttle = LoginThrottle::new(Arc::new(Limiter::default()), LoginPolicy::default());
        // One address, five failures: that address is refused for alice.
        for _ in 0..5 {
            assert!(throttle.check("alice", "198.51.100.1").await.is_ok());
            throttle.record_failure("alice", "198.51.100.1").await;
        }
        assert!(throttle.check("alice", "198.51.100.1").await.is_err());
        // Many addresses guessing: they share the account's slow rate
        // (10 a minute), after which each of them waits...
        let mut refused = 0;
        for n in 10..40 {
            let attacker = format!("198.51.100.{n}");
            throttle.record_failure("alice", &attacker).await;
            if throttle.check("alice", &attacker).await.is_err() {
                refused += 1;
            }
        }
        assert_eq!(refused, 30 - 10 + 4, "the slow rate is shared");
        // ...but the owner's address, with no failure, is let through.
        assert!(throttle.check("alice", "203.0.113.9").await.is_ok());
        // Another account from an attacker's address is not affected.
        assert!(throttle.check("bob", "198.51.100.1").await.is_ok());
    }

    #[tokio::test]
    async fn success_clears_the_pair_but_not_the_address() {
        let policy = LoginPolicy {
            pair: Rule::per(3, Duration::from_secs(60)),
            client: Rule::per(3, Duration::from_secs(60)),
            account: Rule::per(10, Duration::from_secs(60)),
        };
        let throttle = LoginThrottle::new(Arc::new(Limiter::default()), policy);
        throttle.record_failure("a", "1.2.3.4").await;
        throttle.record_failure("a", "1.2.3.4").await;
        throttle.record_success("a", "1.2.3.4").await;
        throttle.record_failure("b", "1.2.3.4").await;
        assert!(throttle.check("a", "5.6.7.8").await.is_ok());
        assert!(throttle.check("c", "1.2.3.4").await.is_err());
    }

    /// A store that is down: the limiter counts locally instead.
    struct Down;

    #[async_trait::async_trait]
    impl RateStore for Down {
        async fn hit(&self, _: &str, _: Rule, _: i64, _: bool) -> Result<Decision, RateError> {
            Err(RateError("down".into()))
        }
        async fn clear(&self, _: &str) -> Result<(), RateError> {
            Err(RateError("down".into()))
        }
    }

    #[tokio::test]
    async fn a_failing_store_falls_back_to_local_counting() {
        let limiter = Limiter::new(Arc::new(Down));
        let rule = Rule::per(1, Duration::from_secs(60));
        assert!(limiter.hit_at("k", rule, MIN, true).await.allowed);
        assert!(!limiter.hit_at("k", rule, MIN, true).await.allowed);
    }
}
