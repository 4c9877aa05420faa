//! The STUN and TURN servers the server hands to a browser in a call.

use serde::{Deserialize, Serialize};

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
