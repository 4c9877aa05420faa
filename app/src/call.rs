//! The live call in the browser: what the room page shows (reactive state,
//! compiled everywhere) and the engine that fills it (`engine`, browser
//! only): the signaling WebSocket, one RTCPeerConnection per remote peer
//! with perfect negotiation, local media, and chat delivery.

use crate::protocol::{MediaState, PeerId, PeerInfo};
use leptos::prelude::*;
use std::collections::{HashMap, HashSet};

pub mod decide;
#[cfg(feature = "hydrate")]
pub mod engine;

/// Where the call as a whole stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Opening media and the first connection.
    Connecting,
    Live,
    /// The signaling connection dropped; media between peers may go on.
    Reconnecting,
    /// Over for this page, with the reason.
    Closed(EndReason),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    Left,
    Removed,
    Ended,
    /// The same person joined from another window.
    Replaced,
    Full(u32),
    Failed,
    /// The session ended (sign-out here or elsewhere, password change,
    /// expiry).
    SignedOut,
    /// The host cancelled the meeting.
    Cancelled,
}

/// The state of the direct connection to one remote peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Connecting,
    Connected,
    /// ICE went to disconnected/failed: being restarted.
    Reconnecting,
}

/// Something to tell the user once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    MutedBy(String),
    ShareFailed,
    NoMedia(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChatStatus {
    /// Sent, not yet confirmed as stored.
    Pending,
    Sent,
    /// Not confirmed (connection down, server busy or rate limit): will be
    /// sent again with the same key.
    Retrying,
    /// Refused for good (too long, recipient gone).
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatEntry {
    pub key: String,
    /// None until stored.
    pub seq: Option<i64>,
    pub sender_id: String,
    pub sender_name: String,
    pub text: String,
    pub sent_at_ms: Option<i64>,
    pub to_id: Option<String>,
    pub to_name: Option<String>,
    pub mine: bool,
    pub status: ChatStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatNotice {
    TooLong,
    Empty,
    RateLimited,
    RecipientGone,
}

/// Reactive state of the call, shared by the engine and the page.
#[derive(Clone, Copy)]
pub struct CallView {
    pub phase: RwSignal<Phase>,
    pub me: RwSignal<Option<PeerInfo>>,
    /// Everyone else, in the order they came.
    pub peers: RwSignal<Vec<PeerInfo>>,
    pub links: RwSignal<HashMap<PeerId, LinkState>>,
    pub speaking: RwSignal<HashSet<PeerId>>,
    /// What this page sends.
    pub local: RwSignal<MediaState>,
    pub notice: RwSignal<Option<Notice>>,
    /// Bumped when a media stream is attached, so tiles bind it.
    pub media_epoch: RwSignal<u64>,
    /// Some remote audio could not start without a click.
    pub needs_sound: RwSignal<bool>,
    pub max_participants: RwSignal<u32>,
    /// Whether media goes browser to browser or through the server.
    pub media_path: RwSignal<crate::protocol::MediaPath>,
    pub knocks_epoch: RwSignal<u64>,
    pub chat: RwSignal<Vec<ChatEntry>>,
    pub chat_open: RwSignal<bool>,
    pub chat_unread: RwSignal<u32>,
    pub chat_older: RwSignal<bool>,
    pub chat_notice: RwSignal<Option<ChatNotice>>,
}

impl CallView {
    pub fn new(mic: bool, cam: bool) -> Self {
        Self {
            phase: RwSignal::new(Phase::Connecting),
            me: RwSignal::new(None),
            peers: RwSignal::new(Vec::new()),
            links: RwSignal::new(HashMap::new()),
            speaking: RwSignal::new(HashSet::new()),
            local: RwSignal::new(MediaState {
                mic,
                cam,
                screen: false,
                hand: false,
            }),
            notice: RwSignal::new(None),
            media_epoch: RwSignal::new(0),
            needs_sound: RwSignal::new(false),
            max_participants: RwSignal::new(0),
            media_path: RwSignal::new(crate::protocol::MediaPath::Direct),
            knocks_epoch: RwSignal::new(0),
            chat: RwSignal::new(Vec::new()),
            chat_open: RwSignal::new(false),
            chat_unread: RwSignal::new(0),
            chat_older: RwSignal::new(false),
            chat_notice: RwSignal::new(None),
        }
    }

    pub fn is_moderator(&self) -> bool {
        self.me
            .with(|me| me.as_ref().is_some_and(|me| me.role.is_moderator()))
    }
}

/// Puts a message into the chat list: a stored copy replaces the pending
/// one with the same key, a sequence number is never listed twice, and
/// stored messages stay in sequence order ahead of pending ones.
pub fn merge_chat(list: &mut Vec<ChatEntry>, entry: ChatEntry) {
    if let Some(seq) = entry.seq {
        if list.iter().any(|e| e.seq == Some(seq)) {
            return;
        }
        if let Some(pending) = list
            .iter()
            .position(|e| e.seq.is_none() && e.mine && e.key == entry.key)
        {
            list.remove(pending);
        }
        let at = list
            .iter()
            .position(|e| e.seq.is_none_or(|s| s > seq))
            .unwrap_or(list.len());
        list.insert(at, entry);
    } else {
        list.push(entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, seq: Option<i64>, mine: bool) -> ChatEntry {
        ChatEntry {
            key: key.into(),
            seq,
            sender_id: "s".into(),
            sender_name: "S".into(),
            text: key.into(),
            sent_at_ms: None,
            to_id: None,
            to_name: None,
            mine,
            status: if seq.is_some() {
                ChatStatus::Sent
            } else {
                ChatStatus::Pending
            },
        }
    }

    #[test]
    fn chat_merge_orders_dedupes_and_confirms() {
        let mut list = Vec::new();
        merge_chat(&mut list, entry("mine", None, true));
        merge_chat(&mut list, entry("b", Some(2), false));
        merge_chat(&mut list, entry("a", Some(1), false));
        merge_chat(&mut list, entry("b", Some(2), false));
        let keys: Vec<_> = list.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["a", "b", "mine"]);
        // The stored copy of my message replaces the pending one.
        merge_chat(&mut list, entry("mine", Some(3), true));
        let seqs: Vec<_> = list.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [Some(1), Some(2), Some(3)]);
    }
}
