//! The live call in the browser: what the room page shows (reactive state,
//! compiled everywhere) and the engine that fills it (`engine`, browser
//! only): the signaling WebSocket, one RTCPeerConnection per remote peer
//! with perfect negotiation, local media, and chat delivery.

use crate::protocol::{MediaState, PeerId, PeerInfo, Reaction};
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
    /// A host called on me: my hand went down.
    HandLoweredBy(String),
    /// The chosen camera or microphone could not be opened; the old one
    /// stays.
    DeviceFailed,
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

/// A reaction floating over someone's tile for a few seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloatingReaction {
    /// Unique on this page (keys the list).
    pub id: u64,
    pub peer_id: PeerId,
    pub reaction: Reaction,
}

/// How long a reaction floats.
pub const REACTION_SHOWN_MS: u64 = 4_000;

/// Something that happened in the room, said once to everyone using the
/// page (a short visible line, read out by screen readers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activity {
    Joined(String),
    Left(String),
    /// A chat message arrived while the chat was closed.
    Message(String),
    RaisedHand(String),
    /// Someone started waiting at the door (hosts only).
    Knocked,
}

/// People with a raised hand, first raised first (the order hosts call on
/// them), then by name for the same moment.
pub fn raised_hands(peers: &[PeerInfo]) -> Vec<PeerInfo> {
    let mut raised: Vec<PeerInfo> = peers.iter().filter(|p| p.media.hand).cloned().collect();
    raised.sort_by(|a, b| {
        let at = |p: &PeerInfo| p.hand_raised_at_ms.unwrap_or(i64::MAX);
        at(a)
            .cmp(&at(b))
            .then_with(|| a.display_name.cmp(&b.display_name))
    });
    raised
}

/// Counters read from one connection's `getStats()`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StatsSample {
    /// Packets received and lost on every inbound stream, so far.
    pub packets_received: f64,
    pub packets_lost: f64,
    /// Round-trip time of the connection's ICE pair, seconds.
    pub round_trip_s: Option<f64>,
    /// The browser's estimate of what it may send, bits per second.
    pub available_bps: Option<f64>,
}

/// How a connection is doing, in words a person understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QualityLevel {
    Good,
    Fair,
    Poor,
}

/// One connection's quality over the last interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quality {
    pub level: QualityLevel,
    pub loss_percent: f64,
    pub round_trip_ms: Option<f64>,
    pub available_kbps: Option<f64>,
}

/// Rates a connection from two samples a few seconds apart. Loss counts
/// only what happened between them (a bad minute long ago does not stay
/// red); thresholds follow what people notice: a few percent loss or a
/// quarter-second round trip is audible, 8 % or half a second breaks
/// speech.
pub fn rate_quality(before: &StatsSample, now: &StatsSample) -> Quality {
    let received = (now.packets_received - before.packets_received).max(0.0);
    let lost = (now.packets_lost - before.packets_lost).max(0.0);
    let loss_percent = if received + lost > 0.0 {
        100.0 * lost / (received + lost)
    } else {
        0.0
    };
    let round_trip_ms = now.round_trip_s.map(|s| s * 1000.0);
    let available_kbps = now.available_bps.map(|b| b / 1000.0);
    let rtt = round_trip_ms.unwrap_or(0.0);
    let kbps = available_kbps.unwrap_or(f64::MAX);
    let level = if loss_percent >= 8.0 || rtt >= 500.0 || kbps < 150.0 {
        QualityLevel::Poor
    } else if loss_percent >= 2.0 || rtt >= 250.0 || kbps < 500.0 {
        QualityLevel::Fair
    } else {
        QualityLevel::Good
    };
    Quality {
        level,
        loss_percent,
        round_trip_ms,
        available_kbps,
    }
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
    /// The tile shown large whatever happens, if one is pinned (a peer id).
    pub pinned: RwSignal<Option<String>>,
    /// The peers whose camera the media server does not send this page now
    /// (past the last N speakers): their tiles show a paused state.
    pub video_paused: RwSignal<HashSet<PeerId>>,
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
    pub reactions: RwSignal<Vec<FloatingReaction>>,
    /// Connection quality by peer id ("" is my own: the worst of my
    /// connections).
    pub quality: RwSignal<HashMap<PeerId, Quality>>,
    /// A short sound when someone joins or knocks (off unless chosen).
    pub sounds: RwSignal<bool>,
    /// The latest thing that happened, with a counter so that the same
    /// text twice is still said twice.
    pub activity: RwSignal<Option<(u64, Activity)>>,
}

impl CallView {
    pub fn new(mic: bool, cam: bool) -> Self {
        Self {
            phase: RwSignal::new(Phase::Connecting),
            me: RwSignal::new(None),
            peers: RwSignal::new(Vec::new()),
            links: RwSignal::new(HashMap::new()),
            speaking: RwSignal::new(HashSet::new()),
            pinned: RwSignal::new(None),
            video_paused: RwSignal::new(HashSet::new()),
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
            reactions: RwSignal::new(Vec::new()),
            quality: RwSignal::new(HashMap::new()),
            sounds: RwSignal::new(false),
            activity: RwSignal::new(None),
        }
    }

    /// Says that something happened (see [`Activity`]).
    pub fn tell(&self, activity: Activity) {
        let count = self
            .activity
            .with_untracked(|a| a.as_ref().map_or(0, |(n, _)| n + 1));
        self.activity.set(Some((count, activity)));
    }

    /// Everyone in the call, me first.
    pub fn everyone(&self) -> Vec<PeerInfo> {
        let mut all: Vec<PeerInfo> = self.me.get().into_iter().collect();
        if let Some(me) = all.first_mut() {
            me.media.hand = self.local.get().hand;
        }
        all.extend(self.peers.get());
        all
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

    fn hand(name: &str, at: Option<i64>) -> PeerInfo {
        PeerInfo {
            peer_id: name.into(),
            participant_id: name.into(),
            display_name: name.into(),
            role: crate::protocol::PeerRole::Member,
            media: MediaState {
                hand: at.is_some(),
                ..MediaState::default()
            },
            joined_at_ms: 0,
            hand_raised_at_ms: at,
        }
    }

    fn sample(received: f64, lost: f64, rtt_s: f64, bps: f64) -> StatsSample {
        StatsSample {
            packets_received: received,
            packets_lost: lost,
            round_trip_s: Some(rtt_s),
            available_bps: Some(bps),
        }
    }

    #[test]
    fn quality_is_rated_from_what_changed_between_samples() {
        let start = sample(1000.0, 500.0, 0.02, 2_000_000.0);
        // 500 lost long ago, none since: good.
        let calm = rate_quality(&start, &sample(2000.0, 500.0, 0.02, 2_000_000.0));
        assert_eq!(calm.level, QualityLevel::Good);
        assert_eq!(calm.loss_percent, 0.0);
        assert_eq!(calm.round_trip_ms, Some(20.0));
        assert_eq!(calm.available_kbps, Some(2000.0));
        // 3 % lost in the interval: fair; 10 %: poor.
        let lossy = rate_quality(&start, &sample(1970.0, 530.0, 0.02, 2_000_000.0));
        assert_eq!(lossy.level, QualityLevel::Fair);
        assert!((lossy.loss_percent - 3.0).abs() < 1e-9);
        let bad = rate_quality(&start, &sample(1900.0, 600.0, 0.02, 2_000_000.0));
        assert_eq!(bad.level, QualityLevel::Poor);
        // A slow round trip or a thin pipe alone is enough.
        assert_eq!(
            rate_quality(&start, &sample(2000.0, 500.0, 0.3, 2e6)).level,
            QualityLevel::Fair
        );
        assert_eq!(
            rate_quality(&start, &sample(2000.0, 500.0, 0.02, 100_000.0)).level,
            QualityLevel::Poor
        );
        // Counters that went backwards (a new connection) are no loss.
        assert_eq!(
            rate_quality(&start, &sample(10.0, 0.0, 0.02, 2e6)).loss_percent,
            0.0
        );
    }

    #[test]
    fn raised_hands_are_in_the_order_they_went_up() {
        let peers = vec![
            hand("cy", Some(30)),
            hand("ann", None),
            hand("bo", Some(10)),
            hand("al", Some(30)),
        ];
        let names: Vec<_> = raised_hands(&peers)
            .into_iter()
            .map(|p| p.display_name)
            .collect();
        assert_eq!(names, ["bo", "al", "cy"]);
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
