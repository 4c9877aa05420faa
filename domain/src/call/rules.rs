//! The call session's rules, as pure functions: what a room event means for
//! this connection, who may do what, how big a room may get. The session
//! (`super::session`) applies them; their tests need no session at all.

use crate::rooms::bus::RoomEvent;
use crate::rooms::PeerChange;
use protocol::{ClientMessage, MediaState, PeerInfo, PeerRole, ServerMessage};

/// The connection as the decisions see it.
#[derive(Debug, Clone, Copy)]
pub struct Me<'a> {
    pub peer_id: &'a str,
    pub conn_id: &'a str,
    pub participant_id: &'a str,
    pub role: PeerRole,
}

/// What a room event means for this connection.
#[derive(Debug, Clone, PartialEq)]
pub enum EventAction {
    /// Not for this connection.
    Ignore,
    /// Send its message to the client as it is.
    Forward,
    /// Send it; it carries this peer's own new state (a role changed by
    /// another instance's check, for example), which the session keeps.
    ForwardOwnUpdate(PeerInfo),
    /// A host asked this peer to mute: send it, and the stored media state
    /// now has the microphone off.
    ForwardMute(ServerMessage),
    /// A host lowered this peer's hand: send it, and store the hand down
    /// (the host's list of raised hands follows at once, whatever the
    /// page does).
    ForwardHandLowered(ServerMessage),
    /// A newer connection holds this peer now: close this one (replaced).
    Replaced,
    /// This participant was removed: leave the room and close.
    Removed,
    /// Rights changed somewhere: read them again.
    RecheckRights,
    /// Events may have been lost: the client reconnects and resynchronises.
    Resync,
    /// The meeting ended or was cancelled: leave and close.
    Ended,
}

pub fn on_event(me: Me<'_>, event: &RoomEvent) -> EventAction {
    match event {
        RoomEvent::Broadcast { skip, message } => {
            if skip.as_deref() == Some(me.peer_id) {
                return EventAction::Ignore;
            }
            // The waiting list is for those who can admit.
            if matches!(message, ServerMessage::KnocksChanged) && !me.role.is_moderator() {
                return EventAction::Ignore;
            }
            match message {
                ServerMessage::PeerUpdated { peer } if peer.peer_id == me.peer_id => {
                    EventAction::ForwardOwnUpdate(peer.clone())
                }
                _ => EventAction::Forward,
            }
        }
        RoomEvent::Direct { to, message } if to == me.peer_id => match message {
            ServerMessage::MuteRequested { .. } => EventAction::ForwardMute(message.clone()),
            ServerMessage::HandLowered { .. } => EventAction::ForwardHandLowered(message.clone()),
            _ => EventAction::Forward,
        },
        RoomEvent::Direct { .. } => EventAction::Ignore,
        RoomEvent::Participants { ids, .. } => {
            if ids.iter().any(|id| id == me.participant_id) {
                EventAction::Forward
            } else {
                EventAction::Ignore
            }
        }
        RoomEvent::Takeover { peer_id, conn_id } => {
            if peer_id == me.peer_id && conn_id != me.conn_id {
                EventAction::Replaced
            } else {
                EventAction::Ignore
            }
        }
        RoomEvent::Removed { participant_id } => {
            if participant_id == me.participant_id {
                EventAction::Removed
            } else {
                EventAction::Ignore
            }
        }
        RoomEvent::AccessChanged { participant_id } => {
            if participant_id
                .as_deref()
                .is_none_or(|id| id == me.participant_id)
            {
                EventAction::RecheckRights
            } else {
                EventAction::Ignore
            }
        }
        RoomEvent::Resync => EventAction::Resync,
        RoomEvent::Ended => EventAction::Ended,
        // Never on a room's channel.
        RoomEvent::Media { .. } => EventAction::Ignore,
    }
}

/// What must change in a resumed presence: the media state the page has
/// now, and the role the person has now (it may have changed while away).
pub fn changes_on_resume(stored: &PeerInfo, media: MediaState, role: PeerRole) -> Vec<PeerChange> {
    [PeerChange::Media(media), PeerChange::Role(role)]
        .into_iter()
        .filter(|change| {
            let mut wanted = stored.clone();
            change.apply(&mut wanted);
            wanted != *stored
        })
        .collect()
}

/// Peer ids are 32 lowercase hex digits (a UUID without dashes).
pub fn is_peer_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The peer id a page asks to resume, when it may keep it although its
/// presence is gone (Redis came back empty, reaped during a stall): only a
/// well-formed id that nobody holds. Everyone else then sees it leave and
/// come back, and no tile is left behind under an old id.
pub fn reusable_peer_id(resume: Option<&str>, held_by_someone: bool) -> Option<&str> {
    resume.filter(|id| is_peer_id(id) && !held_by_someone)
}

/// Messages only hosts and co-hosts may send; the session re-reads the
/// sender's role before acting on one.
pub fn is_host_only(message: &ClientMessage) -> bool {
    matches!(
        message,
        ClientMessage::AskToMute { .. }
            | ClientMessage::LowerHand { .. }
            | ClientMessage::Remove { .. }
            | ClientMessage::EndMeeting
    )
}

/// How many other people a joiner may find in the room: the room's limit,
/// except that hosts and co-hosts are never kept out of their own meeting.
pub fn join_limit(role: PeerRole, room_limit: u32) -> usize {
    if role.is_moderator() {
        usize::MAX
    } else {
        room_limit as usize
    }
}

/// The room's limit: the meeting's own, within the server's mesh limit.
pub fn room_limit(meeting_max: i64, server_max: u32) -> u32 {
    u32::try_from(meeting_max)
        .unwrap_or(server_max)
        .clamp(1, server_max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{LeaveReason, MediaState, ParticipantId, PeerId, Signal};

    fn me(role: PeerRole) -> Me<'static> {
        Me {
            peer_id: "p-me",
            conn_id: "c-now",
            participant_id: "u-me",
            role,
        }
    }

    fn peer(peer_id: &str, role: PeerRole) -> PeerInfo {
        PeerInfo {
            peer_id: peer_id.into(),
            participant_id: format!("u-{peer_id}").into(),
            display_name: peer_id.into(),
            role,
            media: MediaState::default(),
            joined_at_ms: 0,
            hand_raised_at_ms: None,
        }
    }

    fn broadcast(skip: Option<&str>, message: ServerMessage) -> RoomEvent {
        RoomEvent::Broadcast {
            skip: skip.map(PeerId::from),
            message,
        }
    }

    #[test]
    fn broadcasts_reach_everyone_but_the_one_they_are_about() {
        let left = ServerMessage::PeerLeft {
            peer_id: "p-other".into(),
            reason: LeaveReason::Left,
        };
        assert_eq!(
            on_event(
                me(PeerRole::Member),
                &broadcast(Some("p-other"), left.clone())
            ),
            EventAction::Forward
        );
        assert_eq!(
            on_event(me(PeerRole::Member), &broadcast(Some("p-me"), left)),
            EventAction::Ignore
        );
    }

    #[test]
    fn the_waiting_list_is_news_for_hosts_only() {
        let knocks = broadcast(None, ServerMessage::KnocksChanged);
        assert_eq!(on_event(me(PeerRole::Member), &knocks), EventAction::Ignore);
        assert_eq!(
            on_event(me(PeerRole::CoHost), &knocks),
            EventAction::Forward
        );
    }

    #[test]
    fn an_update_of_my_own_peer_is_kept() {
        let mine = peer("p-me", PeerRole::CoHost);
        let update = broadcast(None, ServerMessage::PeerUpdated { peer: mine.clone() });
        assert_eq!(
            on_event(me(PeerRole::Member), &update),
            EventAction::ForwardOwnUpdate(mine)
        );
    }

    #[test]
    fn direct_messages_reach_only_their_peer_and_a_mute_request_mutes() {
        let signal = ServerMessage::Signal {
            from: "p-other".into(),
            signal: Signal::Candidate {
                candidate: "c".into(),
                sdp_mid: None,
                sdp_m_line_index: None,
            },
        };
        let to_me = RoomEvent::Direct {
            to: "p-me".into(),
            message: signal.clone(),
        };
        let to_other = RoomEvent::Direct {
            to: "p-other".into(),
            message: signal.clone(),
        };
        assert_eq!(on_event(me(PeerRole::Member), &to_me), EventAction::Forward);
        assert_eq!(
            on_event(me(PeerRole::Member), &to_other),
            EventAction::Ignore
        );
        let mute = ServerMessage::MuteRequested {
            by_name: "Ann".into(),
        };
        let asked = RoomEvent::Direct {
            to: "p-me".into(),
            message: mute.clone(),
        };
        assert_eq!(
            on_event(me(PeerRole::Member), &asked),
            EventAction::ForwardMute(mute)
        );
    }

    #[test]
    fn private_chat_reaches_only_its_participants() {
        let event = |ids: &[&str]| RoomEvent::Participants {
            ids: ids.iter().map(|s| ParticipantId::from(*s)).collect(),
            message: ServerMessage::Pong,
        };
        assert_eq!(
            on_event(me(PeerRole::Member), &event(&["u-me", "u-x"])),
            EventAction::Forward
        );
        assert_eq!(
            on_event(me(PeerRole::Member), &event(&["u-x"])),
            EventAction::Ignore
        );
    }

    #[test]
    fn a_newer_connection_replaces_this_one_not_itself() {
        let takeover = |conn: &str| RoomEvent::Takeover {
            peer_id: "p-me".into(),
            conn_id: conn.into(),
        };
        assert_eq!(
            on_event(me(PeerRole::Member), &takeover("c-newer")),
            EventAction::Replaced
        );
        assert_eq!(
            on_event(me(PeerRole::Member), &takeover("c-now")),
            EventAction::Ignore
        );
        let someone_else = RoomEvent::Takeover {
            peer_id: "p-other".into(),
            conn_id: "c-newer".into(),
        };
        assert_eq!(
            on_event(me(PeerRole::Member), &someone_else),
            EventAction::Ignore
        );
    }

    #[test]
    fn removal_end_resync_and_changed_rights() {
        let removed = |who: &str| RoomEvent::Removed {
            participant_id: who.into(),
        };
        assert_eq!(
            on_event(me(PeerRole::Member), &removed("u-me")),
            EventAction::Removed
        );
        assert_eq!(
            on_event(me(PeerRole::Member), &removed("u-x")),
            EventAction::Ignore
        );
        assert_eq!(
            on_event(me(PeerRole::Host), &RoomEvent::Ended),
            EventAction::Ended
        );
        assert_eq!(
            on_event(me(PeerRole::Member), &RoomEvent::Resync),
            EventAction::Resync
        );
        let access = |who: Option<&str>| RoomEvent::AccessChanged {
            participant_id: who.map(ParticipantId::from),
        };
        assert_eq!(
            on_event(me(PeerRole::Member), &access(None)),
            EventAction::RecheckRights
        );
        assert_eq!(
            on_event(me(PeerRole::Member), &access(Some("u-me"))),
            EventAction::RecheckRights
        );
        assert_eq!(
            on_event(me(PeerRole::Member), &access(Some("u-x"))),
            EventAction::Ignore
        );
    }

    #[test]
    fn moderation_messages_are_host_only() {
        assert!(is_host_only(&ClientMessage::EndMeeting));
        assert!(is_host_only(&ClientMessage::Remove { peer: "p".into() }));
        assert!(is_host_only(&ClientMessage::AskToMute { peer: "p".into() }));
        assert!(is_host_only(&ClientMessage::LowerHand { peer: "p".into() }));
        assert!(!is_host_only(&ClientMessage::React {
            reaction: protocol::Reaction::Clap
        }));
        assert!(!is_host_only(&ClientMessage::Ping));
        assert!(!is_host_only(&ClientMessage::Leave));
        assert!(!is_host_only(&ClientMessage::ChatSync { after: 0 }));
    }

    #[test]
    fn a_resume_changes_only_what_differs() {
        let stored = peer("p-me", PeerRole::Member);
        assert!(changes_on_resume(&stored, stored.media, PeerRole::Member).is_empty());
        let muted = MediaState {
            mic: false,
            cam: true,
            screen: false,
            hand: false,
        };
        assert_eq!(
            changes_on_resume(&stored, muted, PeerRole::CoHost),
            vec![PeerChange::Media(muted), PeerChange::Role(PeerRole::CoHost)]
        );
        assert_eq!(
            changes_on_resume(&stored, stored.media, PeerRole::Host),
            vec![PeerChange::Role(PeerRole::Host)]
        );
    }

    #[test]
    fn a_lost_presence_keeps_its_peer_id_only_if_well_formed_and_free() {
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(reusable_peer_id(Some(id), false), Some(id));
        assert_eq!(reusable_peer_id(Some(id), true), None);
        assert_eq!(reusable_peer_id(Some("../../x"), false), None);
        assert_eq!(reusable_peer_id(Some(&id.to_uppercase()), false), None);
        assert_eq!(reusable_peer_id(None, false), None);
    }

    #[test]
    fn a_full_room_keeps_members_out_but_never_hosts() {
        assert_eq!(join_limit(PeerRole::Member, 6), 6);
        assert_eq!(join_limit(PeerRole::Host, 6), usize::MAX);
        assert_eq!(join_limit(PeerRole::CoHost, 6), usize::MAX);
        assert_eq!(room_limit(4, 6), 4);
        assert_eq!(room_limit(50, 6), 6);
        assert_eq!(room_limit(0, 6), 1);
        assert_eq!(room_limit(-3, 6), 6);
    }
}
