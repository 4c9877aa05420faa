//! Meeting types the browser and the server both use.

use serde::{Deserialize, Serialize};

/// The join button turns on this long before the start.
pub const JOIN_EARLY_MS: i64 = 10 * 60 * 1000;

/// Someone's stored state at a meeting's door.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Admission {
    Admitted,
    Waiting,
    Denied,
    Removed,
}

impl Admission {
    pub fn as_str(self) -> &'static str {
        match self {
            Admission::Admitted => "admitted",
            Admission::Waiting => "waiting",
            Admission::Denied => "denied",
            Admission::Removed => "removed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "admitted" => Admission::Admitted,
            "waiting" => Admission::Waiting,
            "denied" => Admission::Denied,
            "removed" => Admission::Removed,
            _ => return None,
        })
    }
}

/// A person's standing in a meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    Host,
    CoHost,
    Invitee,
    /// Has the link, nothing more.
    Visitor,
}

/// How a meeting's media travels, as its host set it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MediaMode {
    /// Direct for small calls, through the media server from the server's
    /// switch point on (`--sfu-switch-at`).
    #[default]
    Automatic,
    /// Always browser to browser (up to the mesh limit).
    Direct,
    /// Always through the media server, even for two people: nobody
    /// learns anyone else's network address.
    Server,
}

impl MediaMode {
    pub const ALL: [MediaMode; 3] = [MediaMode::Automatic, MediaMode::Direct, MediaMode::Server];

    pub fn as_str(self) -> &'static str {
        match self {
            MediaMode::Automatic => "automatic",
            MediaMode::Direct => "direct",
            MediaMode::Server => "server",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|mode| mode.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_modes_read_back_what_they_write() {
        for mode in MediaMode::ALL {
            assert_eq!(MediaMode::parse(mode.as_str()), Some(mode));
        }
        assert_eq!(MediaMode::parse("sfu"), None);
    }
}
