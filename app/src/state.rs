//! What the server hands to every request: database, settings and the
//! in-memory guards. Built once in `server`, reached from server functions
//! through Leptos context and from axum handlers through `State`.

use axum::extract::FromRef;
use domain::throttle::{ActionPolicy, FailureLimiter, Limiter, LoginThrottle, Rule};
use leptos::prelude::LeptosOptions;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// A signed-in session ends this long after sign-in, however active.
    pub absolute_lifetime: Duration,
    /// How often an active session's idle deadline is pushed forward (a
    /// database write), at most.
    pub touch_interval: Duration,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            absolute_lifetime: Duration::from_secs(7 * 24 * 3600),
            touch_interval: Duration::from_secs(60),
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub db: sqlx::AnyPool,
    pub auth: AuthSettings,
    pub login_throttle: Arc<LoginThrottle>,
    /// Counts meeting-code misses per client, so links cannot be guessed.
    pub meeting_lookups: Arc<FailureLimiter>,
    /// The counters behind every abuse limit (shared through Redis when
    /// there is one).
    pub limiter: Arc<Limiter>,
    /// Limits on sign-ups, guests and knocks per client address.
    pub actions: ActionPolicy,
    /// The URL people use to reach moim, for links in calendar files.
    pub public_url: String,
    /// STUN/TURN servers handed to admitted participants.
    pub ice: Arc<domain::ice::IceSettings>,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Arc<Vec<std::net::IpAddr>>,
    /// Bounds concurrent argon2 work so a burst of sign-ins cannot starve
    /// the blocking pool.
    pub hashing_permits: Arc<tokio::sync::Semaphore>,
    /// Sign-ups hash with permits of their own, so a sign-up flood cannot
    /// take the ones sign-ins need.
    pub sign_up_permits: Arc<tokio::sync::Semaphore>,
    /// Room fan-out (in-process, or Redis across instances).
    pub bus: Arc<dyn domain::rooms::bus::RoomBus>,
    /// Tells hosts the waiting list changed, at most every half second per
    /// meeting.
    pub knock_notices: Arc<domain::rooms::bus::KnockNotices>,
    /// Outgoing mail (SMTP, or nothing when none is configured).
    pub mailer: Arc<dyn crate::mail::Mailer>,
    /// This instance's numbers for `/metrics`.
    pub metrics: domain::metrics::Metrics,
    /// Webhooks may use http:// and private addresses
    /// (`--webhooks-allow-private`).
    pub webhooks_allow_private: bool,
}

/// 30 unknown meeting codes from one address at once, then one every 20 s
/// (30 in any 10 minutes).
pub fn meeting_lookup_policy() -> Rule {
    Rule::per(30, Duration::from_secs(10 * 60))
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

impl FromRef<AppState> for sqlx::AnyPool {
    fn from_ref(state: &AppState) -> Self {
        state.db.clone()
    }
}

impl AppState {
    /// The state of the current request, inside a server function or a
    /// server-rendered component.
    pub fn from_context() -> Result<Self, crate::error::ApiError> {
        leptos::prelude::use_context::<AppState>().ok_or_else(|| {
            tracing::error!("AppState missing from the Leptos context");
            crate::error::ApiError::Internal
        })
    }
}

/// The address a request really comes from. Behind a trusted reverse proxy
/// that is the nearest `X-Forwarded-For` hop that is not itself a trusted
/// proxy; otherwise the TCP peer. Forwarded headers from anyone else are
/// ignored, since a client can write whatever it likes there.
pub fn client_address(
    peer: std::net::IpAddr,
    headers: &http::HeaderMap,
    trusted_proxies: &[std::net::IpAddr],
) -> std::net::IpAddr {
    if !trusted_proxies.contains(&peer) {
        return peer;
    }
    let hops: Vec<std::net::IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|hop| hop.trim().parse().ok())
        .collect();
    hops.into_iter()
        .rev()
        .find(|hop| !trusted_proxies.contains(hop))
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::client_address;
    use std::net::IpAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-forwarded-for", "6.6.6.6, 203.0.113.7".parse().unwrap());
        let proxy = ip("10.0.0.2");
        // From the proxy: the hop it saw (the spoofed first entry is ignored).
        assert_eq!(client_address(proxy, &headers, &[proxy]), ip("203.0.113.7"));
        // From anyone else: the header is theirs to forge, so the peer counts.
        assert_eq!(
            client_address(ip("198.51.100.1"), &headers, &[proxy]),
            ip("198.51.100.1")
        );
        assert_eq!(client_address(proxy, &headers, &[]), proxy);
        // Chained proxies are skipped.
        headers.insert("x-forwarded-for", "203.0.113.9, 10.0.0.3".parse().unwrap());
        assert_eq!(
            client_address(proxy, &headers, &[proxy, ip("10.0.0.3")]),
            ip("203.0.113.9")
        );
        // No usable header: the proxy itself.
        assert_eq!(
            client_address(proxy, &http::HeaderMap::new(), &[proxy]),
            proxy
        );
    }
}
