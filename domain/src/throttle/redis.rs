//! Abuse-limit counters shared by every instance through Redis
//! (`REDIS_URL`), so N instances do not hand an attacker N budgets.
//!
//! One key per limited thing (`moim:rate:{key}`) holding the GCRA arrival
//! time in unix milliseconds (see `super`), read and advanced by one
//! Lua script: atomic across instances, and expiring by itself once the
//! key's slate would be clean (`PX`). The decision itself is computed by the
//! same Rust function as the in-process store; the script only applies the
//! same comparison to decide whether to store. Time comes from the caller:
//! instances' clocks agree to well under the intervals used (seconds and
//! more), and it keeps the contract tests deterministic.
//!
//! When Redis fails, `super::Limiter` counts on this instance until
//! it answers again (and says so in the log).

use super::{Decision, RateError, RateStore, Rule};
use redis::aio::ConnectionManager;
use redis::Script;

fn key(name: &str) -> String {
    format!("moim:rate:{name}")
}

fn unavailable(err: redis::RedisError) -> RateError {
    RateError(err.to_string())
}

pub struct RedisRateStore {
    manager: ConnectionManager,
    hit: Script,
}

impl RedisRateStore {
    /// Its own connection manager, configured like the room bus's.
    pub async fn connect(url: &str) -> Result<Self, redis::RedisError> {
        Ok(Self::new(
            crate::rooms::redis::command_connection(url).await?,
        ))
    }

    pub fn new(manager: ConnectionManager) -> Self {
        Self {
            manager,
            // KEYS: the key. ARGV: now ms, interval ms, burst, count (1/0).
            // Returns the stored arrival time before this event (0: none).
            hit: Script::new(
                r"
                local now = tonumber(ARGV[1])
                local interval = tonumber(ARGV[2])
                local burst = tonumber(ARGV[3])
                local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
                local start = math.max(tat, now)
                local next = start + interval
                if ARGV[4] == '1' and next - now <= burst * interval then
                  redis.call('SET', KEYS[1], string.format('%d', next), 'PX', string.format('%d', next - now))
                end
                return string.format('%d', tat)
                ",
            ),
        }
    }
}

#[async_trait::async_trait]
impl RateStore for RedisRateStore {
    async fn hit(
        &self,
        name: &str,
        rule: Rule,
        now_ms: i64,
        count: bool,
    ) -> Result<Decision, RateError> {
        let interval_ms = (rule.interval.as_millis() as i64).max(1);
        let mut manager = self.manager.clone();
        let mut invocation = self.hit.key(key(name));
        invocation
            .arg(now_ms)
            .arg(interval_ms)
            .arg(rule.burst)
            .arg(if count { 1 } else { 0 });
        let mut result: redis::RedisResult<String> = invocation.invoke_async(&mut manager).await;
        if result.is_err() {
            // The first command on a connection that Redis dropped fails and
            // makes the manager reconnect: one more try (as the room bus).
            result = invocation.invoke_async(&mut manager).await;
        }
        let tat = result.map_err(unavailable)?;
        let tat = tat
            .parse::<i64>()
            .map_err(|e| RateError(format!("unreadable counter: {e}")))?;
        Ok(Decision::from_tat(tat, rule, now_ms))
    }

    async fn clear(&self, name: &str) -> Result<(), RateError> {
        let mut manager = self.manager.clone();
        redis::cmd("DEL")
            .arg(key(name))
            .query_async::<i64>(&mut manager)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
