//! What the server hands to every request: database, settings and the
//! in-memory guards. Built once in `server`, reached from server functions
//! through Leptos context and from axum handlers through `State`.

use crate::throttle::{FailureLimiter, LoginThrottle, ThrottlePolicy};
use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    Sqlite,
    Postgres,
}

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
    pub db_kind: DbKind,
    pub auth: AuthSettings,
    pub login_throttle: Arc<LoginThrottle>,
    /// Counts meeting-code misses per client, so links cannot be guessed.
    pub meeting_lookups: Arc<FailureLimiter>,
    /// The URL people use to reach moim, for links in calendar files.
    pub public_url: String,
    /// Bounds concurrent argon2 work so a burst of sign-ins cannot starve
    /// the blocking pool.
    pub hashing_permits: Arc<tokio::sync::Semaphore>,
}

/// 30 unknown meeting codes from one address in 10 minutes lock that
/// address out of meeting look-ups for 10 minutes.
pub fn meeting_lookup_policy() -> ThrottlePolicy {
    ThrottlePolicy {
        max_failures: 30,
        window: Duration::from_secs(10 * 60),
        lockout: Duration::from_secs(10 * 60),
    }
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
