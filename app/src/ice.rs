//! ICE servers for the browser: STUN and TURN from the server's settings.
//! TURN uses coturn's REST-style ephemeral credentials (`use-auth-secret`):
//! username `expiry:participant`, password base64(HMAC-SHA1(secret,
//! username)). They are handed only to admitted participants of a meeting.

use crate::error::ApiError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
pub mod ssr;

/// One entry of `RTCConfiguration.iceServers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    pub username: Option<String>,
    pub credential: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceConfig {
    pub ice_servers: Vec<IceServer>,
    /// When the TURN credentials stop working (unix ms); fetch again before.
    pub expires_at_ms: Option<i64>,
    /// `iceTransportPolicy: "relay"`: media only through TURN, so peers never
    /// learn each other's addresses.
    pub relay_only: bool,
}

/// STUN/TURN servers for this meeting, for an admitted participant only.
#[server(endpoint = "ice_servers")]
pub async fn ice_servers(code: String) -> Result<IceConfig, ApiError> {
    let cx = crate::lobby::ssr::LobbyCx::new(&code).await?;
    let result = cx.ice_config().await;
    cx.finish(result)
}
