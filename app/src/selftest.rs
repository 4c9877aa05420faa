//! The connection self-test: what the browser found, and what it means in
//! plain words. The probing itself runs in the browser
//! (`pages::selftest`); the judgement is here, testable anywhere.

use serde::Serialize;

/// What the device check found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeviceFindings {
    /// The camera's picture size, if a camera opened.
    pub camera: Option<String>,
    pub microphone: bool,
}

/// What the network probe found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NetworkFindings {
    /// Candidates gathered, by type.
    pub host: u32,
    pub srflx: u32,
    pub relay: u32,
    /// Whether the server offers a TURN relay at all.
    pub turn_configured: bool,
    /// A call from this page to itself through the relay only: its round
    /// trip in ms, or why it failed. `None` when not tried.
    pub relay_call: Option<Result<u32, String>>,
}

/// The verdict, worst news first where it matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkVerdict {
    /// Direct and relayed connections both work.
    Good,
    /// Only the relay gets out (UDP to the outside is blocked): calls work,
    /// through the relay.
    RelayOnly,
    /// The relay is configured but could not be used; direct connections
    /// may still work.
    RelayFailed,
    /// No relay is configured; direct connections work.
    NoRelay,
    /// Nothing outside this network answered: calls will likely fail.
    Blocked,
}

impl NetworkVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkVerdict::Good => "good",
            NetworkVerdict::RelayOnly => "relay_only",
            NetworkVerdict::RelayFailed => "relay_failed",
            NetworkVerdict::NoRelay => "no_relay",
            NetworkVerdict::Blocked => "blocked",
        }
    }
}

pub fn network_verdict(found: &NetworkFindings) -> NetworkVerdict {
    let relay_works = found.relay > 0 && matches!(found.relay_call, Some(Ok(_)));
    let direct_out = found.srflx > 0;
    match (found.turn_configured, relay_works, direct_out) {
        (true, true, true) => NetworkVerdict::Good,
        (true, true, false) => NetworkVerdict::RelayOnly,
        (true, false, true) => NetworkVerdict::RelayFailed,
        (false, _, true) => NetworkVerdict::NoRelay,
        (_, _, false) => NetworkVerdict::Blocked,
    }
}

/// The candidate type of an ICE candidate line (`… typ relay …`).
pub fn candidate_type(candidate: &str) -> Option<&str> {
    let mut words = candidate.split_whitespace();
    while let Some(word) = words.next() {
        if word == "typ" {
            return words.next();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(
        srflx: u32,
        relay: u32,
        turn: bool,
        call: Option<Result<u32, String>>,
    ) -> NetworkFindings {
        NetworkFindings {
            host: 1,
            srflx,
            relay,
            turn_configured: turn,
            relay_call: call,
        }
    }

    #[test]
    fn verdicts_follow_what_got_out() {
        assert_eq!(
            network_verdict(&found(1, 1, true, Some(Ok(20)))),
            NetworkVerdict::Good
        );
        assert_eq!(
            network_verdict(&found(0, 1, true, Some(Ok(20)))),
            NetworkVerdict::RelayOnly
        );
        // Relay candidates but the call through them failed: not working.
        assert_eq!(
            network_verdict(&found(1, 1, true, Some(Err("timeout".into())))),
            NetworkVerdict::RelayFailed
        );
        assert_eq!(
            network_verdict(&found(1, 0, true, None)),
            NetworkVerdict::RelayFailed
        );
        assert_eq!(
            network_verdict(&found(1, 0, false, None)),
            NetworkVerdict::NoRelay
        );
        assert_eq!(
            network_verdict(&found(0, 0, true, None)),
            NetworkVerdict::Blocked
        );
        assert_eq!(
            network_verdict(&found(0, 0, false, None)),
            NetworkVerdict::Blocked
        );
    }

    #[test]
    fn candidate_types_are_read_from_the_line() {
        assert_eq!(
            candidate_type("candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host generation 0"),
            Some("host")
        );
        assert_eq!(
            candidate_type(
                "candidate:2 1 udp 41885439 203.0.113.9 49160 typ relay raddr 0.0.0.0 rport 0"
            ),
            Some("relay")
        );
        assert_eq!(candidate_type("garbage"), None);
    }
}
