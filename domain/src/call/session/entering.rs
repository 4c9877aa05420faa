//! Entering the call: resume the page's presence or join afresh, then the
//! welcome.

use super::{CallSession, Phase};
use crate::call::io::*;
use crate::call::replies::*;
use crate::call::rules;
use crate::rooms::bus::RoomEvent;
use crate::rooms::{JoinOutcome, PresenceEntry};
use protocol::ice::IceConfig;
use protocol::{
    close, ErrorCode, LeaveReason, MediaPath, MediaState, PeerId, PeerInfo, ServerMessage,
    PROTOCOL_VERSION,
};

impl CallSession {
    // ---- entering -----------------------------------------------------

    /// `join` was accepted: resume the page's presence, or join afresh.
    pub(super) fn enter(&mut self, now: Now, out: &mut Vec<Effect>) {
        let Phase::Entering { resume, media } = &self.phase else {
            return;
        };
        match resume.clone() {
            Some(peer_id) => out.push(Effect::Ask(Ask::Resume {
                peer_id,
                conn_id: self.conn_id.clone(),
                expires_at_ms: self.presence_expiry(now),
            })),
            None => {
                let media = *media;
                self.join_afresh(now, media, out);
            }
        }
    }

    pub(super) fn join_afresh(&mut self, now: Now, media: MediaState, out: &mut Vec<Effect>) {
        let resume = match &self.phase {
            Phase::Entering { resume, .. } => resume.clone(),
            _ => None,
        };
        match resume {
            // A well-formed id whose presence is gone may be kept, if
            // nobody else holds it now.
            Some(peer_id) if rules::is_peer_id(&peer_id) => {
                out.push(Effect::Ask(Ask::Held { peer_id }))
            }
            _ => self.ask_to_join(self.fresh_peer_id.clone(), media, now, out),
        }
    }

    pub(super) fn ask_to_join(
        &mut self,
        peer_id: PeerId,
        media: MediaState,
        now: Now,
        out: &mut Vec<Effect>,
    ) {
        let peer = PeerInfo {
            peer_id,
            participant_id: self.caller.participant_id.clone(),
            display_name: self.caller.display_name.clone(),
            role: self.caller.role,
            media,
            joined_at_ms: now.wall_ms,
            hand_raised_at_ms: media.hand.then_some(now.wall_ms),
        };
        self.joining = Some(peer.clone());
        let entry = PresenceEntry {
            peer,
            conn_id: self.conn_id.clone(),
            expires_at_ms: self.presence_expiry(now),
        };
        let limit = rules::join_limit(self.caller.role, self.room_limit());
        out.push(Effect::Ask(Ask::Join { entry, limit }));
    }

    pub(super) fn room_limit(&self) -> u32 {
        let mode = self.caller.meeting.media_mode();
        let server_max = if self.settings.media.may_use_server(mode) {
            self.settings.media_server_max_participants
        } else {
            self.settings.max_participants
        };
        rules::room_limit(self.caller.meeting.max_participants, server_max)
    }

    /// How this room's media travels now.
    pub fn media_path(&self) -> MediaPath {
        self.media_path
    }

    /// Whether this room's path follows its size.
    pub(super) fn media_path_follows_size(&self) -> bool {
        let mode = self.caller.meeting.media_mode();
        self.settings.media.fixed(mode).is_none()
    }

    pub(super) fn on_resumed(&mut self, found: Option<PeerInfo>, now: Now, out: &mut Vec<Effect>) {
        let Phase::Entering { media, .. } = self.phase else {
            return;
        };
        let Some(peer) = found else {
            return self.join_afresh(now, media, out);
        };
        // An older connection of this page may still be open on some
        // instance: it must let go.
        out.push(Effect::Publish(RoomEvent::Takeover {
            peer_id: peer.peer_id.clone(),
            conn_id: self.conn_id.clone(),
        }));
        self.resumed = true;
        let changes = rules::changes_on_resume(&peer, media, self.caller.role);
        let peer_id = peer.peer_id.clone();
        self.peer = Some(peer);
        if changes.is_empty() {
            out.push(Effect::Ask(Ask::Roster {
                with_turn: self.caller.may_use_turn,
            }));
        } else {
            out.push(Effect::Ask(Ask::Update {
                peer_id,
                changes,
                why: Change::Resume,
            }));
        }
    }

    pub(super) fn on_joined(&mut self, outcome: Option<JoinOutcome>, out: &mut Vec<Effect>) {
        let Phase::Entering { .. } = self.phase else {
            return;
        };
        match outcome {
            Some(JoinOutcome::Joined { displaced }) => {
                let Some(peer) = self.joining.take() else {
                    return;
                };
                for old in displaced {
                    out.push(Effect::Publish(RoomEvent::left(
                        &old.peer_id,
                        LeaveReason::Replaced,
                    )));
                    out.push(Effect::Publish(RoomEvent::Takeover {
                        peer_id: old.peer_id,
                        conn_id: self.conn_id.clone(),
                    }));
                }
                out.push(Effect::Publish(RoomEvent::to_others(
                    &peer.peer_id,
                    ServerMessage::PeerJoined { peer: peer.clone() },
                )));
                self.peer = Some(peer);
                out.push(Effect::Ask(Ask::Roster {
                    with_turn: self.caller.may_use_turn,
                }));
            }
            Some(JoinOutcome::Full) => {
                let limit = self.room_limit();
                self.reply(
                    ServerMessage::error(
                        ErrorCode::RoomFull,
                        format!("this call is full ({limit} people)"),
                    ),
                    out,
                );
                self.close(close::FULL, "room full", out);
                self.phase = Phase::Over;
            }
            None => {
                tracing::error!("cannot join the room");
                self.reply(try_again(), out);
                self.close(close::INTERNAL, "room unavailable", out);
                self.phase = Phase::Over;
            }
        }
    }
    pub(super) fn on_updated(
        &mut self,
        why: Change,
        result: Result<Option<PeerInfo>, ()>,
        out: &mut Vec<Effect>,
    ) {
        let gone = matches!(result, Ok(None));
        let hand_before = self.peer.as_ref().and_then(|p| p.hand_raised_at_ms);
        let stored = match result {
            Ok(Some(peer)) => {
                self.peer = Some(peer);
                true
            }
            Ok(None) => false,
            Err(()) => {
                tracing::warn!(?why, "could not store a presence change");
                false
            }
        };
        let Some(peer) = self.peer.clone() else {
            return;
        };
        // A stored change was told to the room with it (Ask::Update).
        match why {
            Change::Resume => {
                out.push(Effect::Ask(Ask::Roster {
                    with_turn: self.caller.may_use_turn,
                }));
            }
            // Not stored, but those who can be reached still see it; a
            // presence that is gone has nobody to tell.
            Change::Media => {
                if !gone && !stored {
                    out.push(Effect::Publish(why.announce().event(&peer)));
                }
                // The page learns when the server saw its own hand go up,
                // so it places itself in the queue as everyone else does.
                if stored && peer.hand_raised_at_ms != hand_before {
                    out.push(Effect::Send(ServerMessage::PeerUpdated { peer }));
                }
            }
            // Everyone, the person's own page included.
            Change::Role => {
                if !stored {
                    out.push(Effect::Publish(why.announce().event(&peer)));
                }
            }
        }
    }

    pub(super) fn welcome(
        &mut self,
        peers: Vec<PeerInfo>,
        chat_head: i64,
        ice: IceConfig,
        media_path: MediaPath,
        out: &mut Vec<Effect>,
    ) {
        let Some(me) = self.peer.clone() else {
            return;
        };
        if !matches!(self.phase, Phase::Entering { .. }) {
            return;
        }
        self.media_path = media_path;
        tracing::info!(
            meeting = %self.caller.meeting.id,
            peer = %me.peer_id,
            participant = %self.caller.participant_id,
            "joined the call"
        );
        let peers = peers
            .into_iter()
            .filter(|p| p.peer_id != me.peer_id)
            .collect();
        self.reply(
            ServerMessage::Welcome {
                version: PROTOCOL_VERSION,
                you: me,
                peers,
                resumed: self.resumed,
                ice,
                max_participants: self.room_limit(),
                chat_head,
                media_path: self.media_path(),
            },
            out,
        );
        self.phase = Phase::Live;
    }
}
