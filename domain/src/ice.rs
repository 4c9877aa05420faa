//! ICE servers for a participant: STUN, and TURN with coturn REST
//! credentials (`use-auth-secret`) for someone allowed to relay.

use base64::Engine;
use hmac::{Hmac, Mac};
use protocol::ice::{IceConfig, IceServer};
use std::time::Duration;

/// STUN/TURN settings, from the server configuration.
#[derive(Debug, Clone, Default)]
pub struct IceSettings {
    pub stun_urls: Vec<String>,
    pub turn_urls: Vec<String>,
    /// coturn `static-auth-secret`; required when `turn_urls` is set.
    pub turn_secret: Option<String>,
    pub credential_ttl: Duration,
    /// Force media through TURN (`--ice-transport-policy relay`).
    pub relay_only: bool,
}

/// coturn REST credentials for `participant`, valid until `now + ttl`.
pub fn turn_credentials(
    secret: &str,
    participant: &str,
    now_secs: i64,
    ttl: Duration,
) -> (String, String) {
    let expiry = now_secs + ttl.as_secs() as i64;
    let username = format!("{expiry}:{participant}");
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return (username, String::new()),
    };
    mac.update(username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, password)
}

impl IceSettings {
    /// The servers for someone whose access was just read: TURN
    /// credentials only when `turn_allowed` (`door::access::Access::
    /// may_use_turn`), else STUN alone (nothing that lets anyone relay
    /// through our TURN server).
    pub fn config_for_access(
        &self,
        participant: &str,
        now_ms: i64,
        turn_allowed: bool,
    ) -> IceConfig {
        if turn_allowed {
            self.config_for(participant, now_ms)
        } else {
            self.stun_only()
        }
    }

    /// STUN servers only. `relay_only` stays as configured: an operator
    /// who hides addresses behind TURN would rather have no media than
    /// leak them.
    pub fn stun_only(&self) -> IceConfig {
        IceConfig {
            ice_servers: self.stun_servers(),
            expires_at_ms: None,
            relay_only: self.relay_only,
        }
    }

    fn stun_servers(&self) -> Vec<IceServer> {
        if self.stun_urls.is_empty() {
            return Vec::new();
        }
        vec![IceServer {
            urls: self.stun_urls.clone(),
            username: None,
            credential: None,
        }]
    }

    /// STUN and TURN with fresh credentials for `participant`. Call only
    /// for someone whose access allows TURN (`config_for_access`).
    pub fn config_for(&self, participant: &str, now_ms: i64) -> IceConfig {
        let mut ice_servers = self.stun_servers();
        let mut expires_at_ms = None;
        if let (false, Some(secret)) = (self.turn_urls.is_empty(), &self.turn_secret) {
            let now_secs = now_ms / 1000;
            let (username, credential) =
                turn_credentials(secret, participant, now_secs, self.credential_ttl);
            expires_at_ms = Some((now_secs + self.credential_ttl.as_secs() as i64) * 1000);
            ice_servers.push(IceServer {
                urls: self.turn_urls.clone(),
                username: Some(username),
                credential: Some(credential),
            });
        }
        IceConfig {
            ice_servers,
            expires_at_ms,
            relay_only: self.relay_only,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_coturn_rest_scheme() {
        // Reference computed independently (Python hmac/hashlib/base64).
        let (username, password) =
            turn_credentials("s3cret", "alice", 1_700_000_000, Duration::from_secs(3600));
        assert_eq!(username, "1700003600:alice");
        assert_eq!(password, "YAFdW/YDZewZsR1QSgUk2IrfbRI=");
    }

    #[test]
    fn stun_only_hands_out_no_credentials() {
        let settings = IceSettings {
            stun_urls: vec!["stun:stun.example.org:3478".into()],
            turn_urls: vec!["turn:turn.example.org:3478".into()],
            turn_secret: Some("s3cret".into()),
            credential_ttl: Duration::from_secs(60),
            relay_only: true,
        };
        assert_eq!(settings.config_for("p", 0).ice_servers.len(), 2);
        let stun = settings.stun_only();
        assert_eq!(stun.ice_servers.len(), 1);
        assert_eq!(stun.ice_servers[0].urls, settings.stun_urls);
        assert!(stun.ice_servers[0].credential.is_none());
        assert_eq!(stun.expires_at_ms, None);
        assert!(stun.relay_only, "the operator's relay policy stays");
    }

    #[test]
    fn no_turn_without_secret() {
        let settings = IceSettings {
            stun_urls: vec!["stun:stun.example.org:3478".into()],
            turn_urls: vec!["turn:turn.example.org:3478".into()],
            turn_secret: None,
            credential_ttl: Duration::from_secs(60),
            relay_only: false,
        };
        let config = settings.config_for("p", 0);
        assert_eq!(config.ice_servers.len(), 1);
        assert_eq!(config.expires_at_ms, None);
    }
}
