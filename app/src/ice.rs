//! ICE servers for the browser: STUN and TURN from the server's settings.
//! TURN uses coturn's REST-style ephemeral credentials (`use-auth-secret`):
//! username `expiry:participant`, password base64(HMAC-SHA1(secret,
//! username)). They are handed only to someone admitted to a meeting that is
//! in session (within its scheduled time, or started by a host or co-host,
//! and neither ended nor cancelled): a relay on the operator's bill must not
//! outlive the right to be in the call. See `domain::door::access::Access`.

use crate::error::ApiError;
use leptos::prelude::*;

pub use protocol::ice::{IceConfig, IceServer};

/// How long to wait before fetching fresh TURN credentials that expire at
/// `expires_at_ms`: ten minutes ahead when there is time, else halfway,
/// never sooner than five seconds.
pub fn refresh_in_ms(expires_at_ms: i64, now_ms: i64) -> i64 {
    let remaining = expires_at_ms - now_ms;
    let wait = if remaining > 20 * 60_000 {
        remaining - 10 * 60_000
    } else {
        remaining / 2
    };
    wait.max(5_000)
}

/// STUN/TURN servers for this meeting, for someone in its call now: TURN
/// credentials while it is in session, STUN only outside its time; `Ended`
/// (410) after a host ended it, `Forbidden` (403) when not admitted. The
/// page keeps the servers it has when a refresh fails.
#[server(endpoint = "ice_servers")]
pub async fn ice_servers(code: String) -> Result<IceConfig, ApiError> {
    let cx = crate::lobby::ssr::LobbyCx::new(&code).await?;
    let result = cx.ice_config().await;
    cx.finish(result)
}

/// STUN/TURN servers for the connection self-test page (`/selftest`): the
/// ones calls use, with TURN credentials that last five minutes. With a
/// meeting `code`, the same rights as `ice_servers` (a guest in a lobby);
/// without one, for signed-in accounts only, 20 an hour per address: a
/// relay on the operator's bill is not for passers-by.
#[server(endpoint = "self_test_servers")]
pub async fn self_test_servers(code: Option<String>) -> Result<IceConfig, ApiError> {
    if let Some(code) = code.filter(|c| !c.is_empty()) {
        let cx = crate::lobby::ssr::LobbyCx::new(&code).await?;
        let result = cx.ice_config().await;
        return cx.finish(result);
    }
    let cx = crate::auth::ssr::RequestCx::new().await?;
    let result = cx.self_test_ice().await;
    if let Err(err) = &result {
        crate::error::set_error_status(err);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::refresh_in_ms;

    #[test]
    fn credentials_are_refreshed_well_before_they_expire() {
        let hour = 3_600_000;
        assert_eq!(refresh_in_ms(hour, 0), 50 * 60_000);
        assert_eq!(refresh_in_ms(60_000, 0), 30_000);
        assert_eq!(refresh_in_ms(1_000, 0), 5_000);
        assert_eq!(refresh_in_ms(0, 10_000), 5_000);
    }
}
