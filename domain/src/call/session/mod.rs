//! The call session: inputs and the time in, effects out.
//!
//! A session answers one input at a time. When it needs to know something
//! only a store can tell (is this peer still here, did the join fit), it
//! emits one [`Effect::Ask`] and the pump feeds the answer back as
//! [`Input::Answer`] before any other input: a step such as joining is a
//! chain of asks, never interleaved with frames or events.

mod entering;

use super::gate::{FrameGate, FrameVerdict, ReactionGate};
use super::io::*;
use super::replies::*;
use super::rules::{self, EventAction};
use super::verdict::{verdict, Leave, Verdict};
use super::Caller;
use crate::ids::ConnectionId;
use crate::media::FromMediaServer;
use crate::rooms::bus::{RoomEvent, SharedEvent};
use crate::rooms::{PeerChange, RoomSettings};
use protocol::media_server::{CameraWishes, MAX_TILE_HEIGHTS, MAX_WATCHED};
use protocol::{
    close, parse_client_message, ClientMessage, ErrorCode, LeaveReason, MediaPath, MediaState,
    PeerId, PeerInfo, ServerMessage, Signal, MAX_MEDIA_SIGNAL_BYTES, MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
};
use std::sync::Arc;
use std::time::Instant;

/// How a connection ended, which decides what happens to its presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Left, removed, ended, replaced or refused: presence settled.
    Settled,
    /// The connection broke: presence is kept for a resume.
    Dropped,
}

#[derive(Debug)]
enum Phase {
    /// Open, `join` not yet received.
    Waiting,
    /// `join` received; presence is being settled through asks.
    Entering {
        resume: Option<PeerId>,
        media: MediaState,
    },
    /// In the call.
    Live,
    Over,
}

/// One connection's call session.
#[derive(Debug)]
pub struct CallSession {
    caller: Caller,
    settings: RoomSettings,
    conn_id: ConnectionId,
    /// The peer id a fresh join takes (made by the pump, so tests can name
    /// it).
    fresh_peer_id: PeerId,
    phase: Phase,
    /// This connection's presence, once it holds one.
    peer: Option<PeerInfo>,
    /// The presence asked for at a fresh join, until the answer.
    joining: Option<PeerInfo>,
    resumed: bool,
    /// How the room's media travels, as last learned.
    media_path: MediaPath,
    gate: FrameGate,
    reactions: ReactionGate,
    last_inbound: Instant,
    /// What the frames handled since the last [`CallSession::take_tally`]
    /// were, for the instance's metrics.
    tally: Tally,
}

/// What the session saw of its frames, for counting (the pump reports it
/// to the metrics; nothing in the call depends on it).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// The types of the messages read, in order.
    pub received: Vec<&'static str>,
    /// Frames dropped or refused by the connection's rate limit.
    pub throttled: u32,
}

impl CallSession {
    pub fn new(
        caller: Caller,
        settings: RoomSettings,
        conn_id: ConnectionId,
        fresh_peer_id: PeerId,
        now: Now,
    ) -> Self {
        Self {
            caller,
            settings,
            conn_id,
            fresh_peer_id,
            phase: Phase::Waiting,
            peer: None,
            joining: None,
            resumed: false,
            media_path: MediaPath::Direct,
            gate: FrameGate::new(MAX_MESSAGE_BYTES, MAX_MEDIA_SIGNAL_BYTES, now.instant),
            reactions: ReactionGate::new(now.instant),
            last_inbound: now.instant,
            tally: Tally::default(),
        }
    }

    /// What the frames were since the last call (and starts afresh).
    pub fn take_tally(&mut self) -> Tally {
        std::mem::take(&mut self.tally)
    }

    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// This connection's presence, once it holds one.
    pub fn peer(&self) -> Option<&PeerInfo> {
        self.peer.as_ref()
    }

    pub fn conn_id(&self) -> &ConnectionId {
        &self.conn_id
    }

    pub fn is_waiting_for_join(&self) -> bool {
        matches!(self.phase, Phase::Waiting)
    }

    pub fn is_live(&self) -> bool {
        matches!(self.phase, Phase::Live)
    }

    pub fn is_over(&self) -> bool {
        matches!(self.phase, Phase::Over)
    }

    /// Takes one input; returns what to do, in order.
    pub fn handle(&mut self, input: Input, now: Now) -> Vec<Effect> {
        let mut out = Vec::new();
        if self.is_over() {
            return out;
        }
        match input {
            Input::Frame(frame) => self.on_frame(frame, now, &mut out),
            Input::Event(event) => self.on_event(&event, now, &mut out),
            Input::FellBehind(missed) => {
                // Before `join` nothing is lost: `join` reads everything.
                if self.is_live() {
                    tracing::warn!(missed, peer = ?self.peer.as_ref().map(|p| &p.peer_id), "connection fell behind its room");
                    out.push(Effect::Send(ServerMessage::Reconnect));
                    self.close(close::TRY_AGAIN_LATER, "resynchronise", &mut out);
                    self.end(Ending::Dropped, now, &mut out);
                }
            }
            Input::RoomClosed => {
                if self.is_live() {
                    out.push(Effect::Send(ServerMessage::Reconnect));
                    self.close(close::GOING_AWAY, "going away", &mut out);
                } else {
                    self.close(close::INTERNAL, "room unavailable", &mut out);
                }
                self.end(Ending::Dropped, now, &mut out);
            }
            Input::Draining => {
                // The client reconnects (to another instance) and resumes.
                if self.is_live() {
                    out.push(Effect::Send(ServerMessage::Reconnect));
                    self.close(close::RESTART, "server restarting", &mut out);
                    self.end(Ending::Dropped, now, &mut out);
                }
            }
            Input::Timer(timer) => self.on_timer(timer, now, &mut out),
            Input::SocketGone => self.end(Ending::Dropped, now, &mut out),
            Input::Answer(answer) => self.on_answer(answer, now, &mut out),
            Input::FromMediaServer(said) => {
                if self.is_live() {
                    let message = match said {
                        FromMediaServer::Signal(signal) => {
                            ServerMessage::MediaServerSignal { signal }
                        }
                        FromMediaServer::Refused(why) | FromMediaServer::Dropped(why) => {
                            ServerMessage::error(ErrorCode::MediaRefused, why)
                        }
                        FromMediaServer::Speakers(peers) => ServerMessage::Speakers { peers },
                        FromMediaServer::VideoPaused(peers) => ServerMessage::VideoPaused { peers },
                        FromMediaServer::Moved => ServerMessage::MediaServerMoved,
                    };
                    self.reply(message, &mut out);
                }
            }
        }
        out
    }

    fn close(&self, code: u16, reason: &'static str, out: &mut Vec<Effect>) {
        out.push(Effect::Close { code, reason });
    }

    /// The session is over. A dropped connection that held a presence
    /// keeps it for the reconnect grace, so the same page can resume.
    fn end(&mut self, ending: Ending, now: Now, out: &mut Vec<Effect>) {
        if ending == Ending::Dropped {
            if let Some(peer) = &self.peer {
                tracing::info!(peer = %peer.peer_id, "connection dropped; waiting for a resume");
                out.push(Effect::HoldForResume {
                    peer_id: peer.peer_id.clone(),
                    conn_id: self.conn_id.clone(),
                    expires_at_ms: now.wall_ms + self.settings.reconnect_grace.as_millis() as i64,
                });
            }
        }
        self.phase = Phase::Over;
    }

    fn reply(&self, message: ServerMessage, out: &mut Vec<Effect>) {
        out.push(Effect::Send(message));
    }

    // ---- frames -------------------------------------------------------

    /// Checks one frame against the limits and parses it. Every frame
    /// counts against the rate limit: text, binary, pings and pongs, before
    /// and after `join`.
    fn on_frame(&mut self, frame: Frame, now: Now, out: &mut Vec<Effect>) {
        let size = match &frame {
            Frame::Text(text) => text.len(),
            Frame::Binary(bytes) => *bytes,
            Frame::Control => 0,
            Frame::TooBig => {
                self.close(close::TOO_BIG, "message too big", out);
                return self.end(Ending::Dropped, now, out);
            }
            Frame::Close | Frame::Broken => return self.end(Ending::Dropped, now, out),
        };
        self.last_inbound = now.instant;
        let verdict = self.gate.check(size, now.instant);
        let throttled = match verdict {
            FrameVerdict::Accept | FrameVerdict::AcceptLarge => false,
            FrameVerdict::Drop | FrameVerdict::DropAndWarn => true,
            // Too big is a size limit, not a rate.
            FrameVerdict::Close(code) => code != close::TOO_BIG,
        };
        if throttled {
            self.tally.throttled += 1;
        }
        match verdict {
            FrameVerdict::Accept | FrameVerdict::AcceptLarge => {}
            FrameVerdict::Drop => return,
            FrameVerdict::DropAndWarn => {
                let message =
                    ServerMessage::error(ErrorCode::RateLimited, "slow down: message dropped");
                return self.reply(message, out);
            }
            FrameVerdict::Close(code) if code == close::TOO_BIG => {
                return self.too_big(size, now, out);
            }
            FrameVerdict::Close(code) => {
                tracing::warn!("flooding; closing");
                self.close(code, "too many messages", out);
                return self.end(Ending::Dropped, now, out);
            }
        }
        let large = verdict == FrameVerdict::AcceptLarge;
        let text = match frame {
            Frame::Text(text) => text,
            Frame::Binary(_) if large => return self.too_big(size, now, out),
            Frame::Binary(_) => return self.reply(bad_message("text frames only"), out),
            _ => return,
        };
        let parsed = parse_client_message(&text);
        // Only a session description for the media server may be larger
        // than an ordinary message (`MAX_MEDIA_SIGNAL_BYTES`).
        let may_be_large = matches!(
            parsed,
            Ok(ClientMessage::MediaServerSignal {
                signal: Signal::Description { .. }
            })
        );
        if large && !may_be_large {
            return self.too_big(size, now, out);
        }
        match parsed {
            Ok(message) => {
                self.tally.received.push(message.type_name());
                self.on_message(message, now, out)
            }
            Err(problem) => self.reply(parse_error(problem), out),
        }
    }

    /// A frame over the size limit for what it is: closed with 1009.
    fn too_big(&mut self, size: usize, now: Now, out: &mut Vec<Effect>) {
        tracing::warn!(bytes = size, "oversized message");
        self.close(close::TOO_BIG, "message too big", out);
        self.end(Ending::Dropped, now, out)
    }

    fn on_message(&mut self, message: ClientMessage, now: Now, out: &mut Vec<Effect>) {
        match self.phase {
            Phase::Waiting => self.before_join(message, out),
            Phase::Live => {
                if rules::is_host_only(&message) {
                    // Allowed by the role the person has now, not the one
                    // they had when the connection opened.
                    out.push(Effect::Ask(Ask::Rights(Purpose::HostAction(message))));
                } else {
                    self.in_call(message, now, out);
                }
            }
            // Frames are not read while entering; nothing after the end.
            Phase::Entering { .. } | Phase::Over => {}
        }
    }

    fn before_join(&mut self, message: ClientMessage, out: &mut Vec<Effect>) {
        match message {
            ClientMessage::Join {
                version,
                resume,
                media,
            } => {
                if version != PROTOCOL_VERSION {
                    let message = ServerMessage::error(
                        ErrorCode::VersionUnsupported,
                        format!("this server speaks protocol version {PROTOCOL_VERSION}"),
                    );
                    self.reply(message, out);
                    self.close(close::VERSION, "protocol version", out);
                    self.phase = Phase::Over;
                    return;
                }
                self.phase = Phase::Entering { resume, media };
                // Rights are read again at `join`: a socket opened before a
                // removal (or a demotion) and joined after it gets what is
                // true now.
                out.push(Effect::Ask(Ask::Rights(Purpose::AtJoin)));
            }
            _ => self.reply(
                ServerMessage::error(ErrorCode::NotJoined, "send join first"),
                out,
            ),
        }
    }

    fn in_call(&mut self, message: ClientMessage, now: Now, out: &mut Vec<Effect>) {
        let media_path = self.media_path();
        let Some(me) = &mut self.peer else {
            return;
        };
        match message {
            ClientMessage::Join { .. } => self.reply(
                ServerMessage::error(ErrorCode::NotJoined, "already joined"),
                out,
            ),
            ClientMessage::Ping => self.reply(ServerMessage::Pong, out),
            ClientMessage::Signal { to, signal } => out.push(Effect::Ask(Ask::Signal {
                from: me.clone(),
                to,
                signal,
            })),
            ClientMessage::MediaServerClose => out.push(Effect::CloseMediaServer),
            ClientMessage::MediaServerWatch { peers, heights } => {
                if peers.len() > MAX_WATCHED {
                    let text = format!("media_server_watch names at most {MAX_WATCHED} peers");
                    self.reply(bad_message(&text), out);
                } else if heights.len() > MAX_TILE_HEIGHTS {
                    let text =
                        format!("media_server_watch gives at most {MAX_TILE_HEIGHTS} heights");
                    self.reply(bad_message(&text), out);
                } else if media_path == MediaPath::Server {
                    out.push(Effect::WatchOnMediaServer {
                        peer_id: me.peer_id.clone(),
                        wishes: CameraWishes { peers, heights },
                    });
                }
                // With direct media every camera comes anyway: nothing to
                // do (a page that has not heard of a move yet may ask).
            }
            ClientMessage::MediaServerSignal { signal } => {
                if media_path == MediaPath::Server {
                    out.push(Effect::ToMediaServer {
                        peer_id: me.peer_id.clone(),
                        signal,
                    });
                } else {
                    let message = ServerMessage::error(
                        ErrorCode::MediaRefused,
                        "this room's media goes directly between browsers",
                    );
                    out.push(Effect::Send(message));
                }
            }
            ClientMessage::Media { media } => {
                // Shown to the others even if it cannot be stored.
                me.media = media;
                let mut changes = vec![PeerChange::Media(media)];
                if media.hand {
                    // Kept only the first time: the queue of hands.
                    changes.push(PeerChange::HandUpSince(now.wall_ms));
                }
                out.push(Effect::Ask(Ask::Update {
                    peer_id: me.peer_id.clone(),
                    changes,
                    why: Change::Media,
                }));
            }
            ClientMessage::React { reaction } => {
                let peer_id = me.peer_id.clone();
                if self.reactions.allow(now.instant) {
                    out.push(Effect::Publish(RoomEvent::Broadcast {
                        skip: None,
                        message: ServerMessage::Reacted { peer_id, reaction },
                    }));
                } else {
                    self.tally.throttled += 1;
                    self.reply(
                        ServerMessage::Error {
                            code: ErrorCode::RateLimited,
                            message: "too many reactions; wait a moment".to_string(),
                            about: Some("reaction".to_string()),
                        },
                        out,
                    );
                }
            }
            ClientMessage::Leave => {
                out.push(Effect::RemovePresence {
                    peer_id: me.peer_id.clone(),
                    announce: Some(LeaveReason::Left),
                });
                self.close(close::NORMAL, "left", out);
                self.end(Ending::Settled, now, out);
            }
            // Host actions come here once the rights said yes.
            ClientMessage::AskToMute { peer } => out.push(Effect::Ask(Ask::IsPresent {
                peer_id: peer,
                request: HostRequest::Mute,
            })),
            ClientMessage::LowerHand { peer } => out.push(Effect::Ask(Ask::IsPresent {
                peer_id: peer,
                request: HostRequest::LowerHand,
            })),
            ClientMessage::Remove { peer } => out.push(Effect::Ask(Ask::Find { peer_id: peer })),
            ClientMessage::EndMeeting => out.push(Effect::Ask(Ask::EndMeeting)),
            ClientMessage::ChatSend { key, text, to } => {
                out.push(Effect::Ask(Ask::Chat(ChatRequest::Send { key, text, to })))
            }
            ClientMessage::ChatSync { after } => {
                out.push(Effect::Ask(Ask::Chat(ChatRequest::Sync { after })))
            }
            ClientMessage::ChatHistory { before } => {
                out.push(Effect::Ask(Ask::Chat(ChatRequest::History { before })))
            }
        }
    }
}

impl CallSession {
    // ---- room events --------------------------------------------------

    fn on_event(&mut self, event: &Arc<SharedEvent>, now: Now, out: &mut Vec<Effect>) {
        match self.phase {
            Phase::Waiting => self.event_before_join(event, out),
            Phase::Live => self.event_in_call(event, now, out),
            Phase::Entering { .. } | Phase::Over => {}
        }
    }

    /// Subscribed from the first moment, so a removal, an end or a rights
    /// change reaches a connection that has not joined yet too.
    fn event_before_join(&mut self, event: &RoomEvent, out: &mut Vec<Effect>) {
        match event {
            RoomEvent::Removed { participant_id }
                if *participant_id == self.caller.participant_id =>
            {
                self.tell(Leave::removed(), out);
            }
            RoomEvent::Ended => self.tell(Leave::ended(), out),
            RoomEvent::AccessChanged { participant_id }
                if participant_id
                    .as_ref()
                    .is_none_or(|id| *id == self.caller.participant_id) =>
            {
                out.push(Effect::Ask(Ask::Rights(Purpose::BeforeJoin)));
            }
            _ => {}
        }
    }

    /// The room's media path is `path`: the page hears of a change once.
    fn media_path_now(&mut self, path: MediaPath, out: &mut Vec<Effect>) {
        if self.is_live() && path != self.media_path {
            self.media_path = path;
            self.reply(ServerMessage::MediaPathChanged { path }, out);
        }
    }

    fn event_in_call(&mut self, shared: &Arc<SharedEvent>, now: Now, out: &mut Vec<Effect>) {
        let event = shared.event();
        if let RoomEvent::Broadcast {
            message: ServerMessage::MediaPathChanged { path },
            ..
        } = event
        {
            return self.media_path_now(*path, out);
        }
        // Every room event passes here for every connection: decide on
        // borrowed ids, copy only what an action keeps.
        let Some(me) = &self.peer else {
            return;
        };
        let who = rules::Me {
            peer_id: &me.peer_id,
            conn_id: &self.conn_id,
            participant_id: &self.caller.participant_id,
            role: self.caller.role,
        };
        let action = rules::on_event(who, event);
        let my_peer_id = || me.peer_id.clone();
        match action {
            EventAction::Ignore => {}
            EventAction::Forward => out.push(Effect::SendShared(shared.clone())),
            EventAction::ForwardOwnUpdate(peer) => {
                self.reply(ServerMessage::PeerUpdated { peer: peer.clone() }, out);
                self.peer = Some(peer);
            }
            EventAction::ForwardMute(message) => {
                if let Some(peer) = &mut self.peer {
                    peer.media.mic = false;
                }
                self.reply(message, out);
            }
            EventAction::ForwardHandLowered(message) => {
                if let Some(peer) = &mut self.peer {
                    peer.media.hand = false;
                    out.push(Effect::Ask(Ask::Update {
                        peer_id: peer.peer_id.clone(),
                        changes: vec![PeerChange::Media(peer.media)],
                        why: Change::Media,
                    }));
                }
                self.reply(message, out);
            }
            EventAction::Replaced => {
                self.close(close::REPLACED, "replaced by a newer connection", out);
                self.end(Ending::Settled, now, out);
            }
            EventAction::Removed => {
                out.push(Effect::RemovePresence {
                    peer_id: my_peer_id(),
                    announce: Some(LeaveReason::Removed),
                });
                self.tell(Leave::removed(), out);
            }
            EventAction::RecheckRights => {
                out.push(Effect::Ask(Ask::Rights(Purpose::DuringCall)));
            }
            EventAction::Resync => {
                self.reply(ServerMessage::Reconnect, out);
                self.close(close::RESTART, "resynchronise", out);
                self.end(Ending::Dropped, now, out);
            }
            EventAction::Ended => {
                // Ended or cancelled: whoever published it may not have
                // reached presence (a cancel from the meetings page), so
                // each connection takes its own presence away.
                out.push(Effect::RemovePresence {
                    peer_id: my_peer_id(),
                    announce: None,
                });
                self.tell(Leave::ended(), out);
            }
        }
    }

    /// Tells the page why it must go, closes, and ends the session (its
    /// presence, if any, was settled by the caller).
    fn tell(&mut self, leave: Leave, out: &mut Vec<Effect>) {
        if let Some(message) = leave.message {
            out.push(Effect::Send(message));
        }
        out.push(Effect::Close {
            code: leave.code,
            reason: leave.reason,
        });
        self.phase = Phase::Over;
    }

    // ---- timers -------------------------------------------------------

    fn on_timer(&mut self, timer: Timer, now: Now, out: &mut Vec<Effect>) {
        match (timer, &self.phase) {
            (Timer::JoinDeadline, Phase::Waiting) => {
                self.close(close::NOT_ADMITTED, "join expected", out);
                self.end(Ending::Settled, now, out);
            }
            (Timer::Heartbeat, Phase::Live) => {
                let silent = now.instant.saturating_duration_since(self.last_inbound);
                if silent > self.settings.idle_timeout {
                    tracing::info!(peer = ?self.peer.as_ref().map(|p| &p.peer_id), "connection silent; dropping it");
                    return self.end(Ending::Dropped, now, out);
                }
                if let Some(peer) = &self.peer {
                    out.push(Effect::Ask(Ask::Refresh {
                        peer_id: peer.peer_id.clone(),
                        conn_id: self.conn_id.clone(),
                        expires_at_ms: self.presence_expiry(now),
                    }));
                }
                // A room that shrank goes back to direct media after a
                // while; someone has to look.
                if self.media_path_follows_size() {
                    out.push(Effect::Ask(Ask::RoomMedia));
                }
            }
            (Timer::Recheck, Phase::Live) => {
                out.push(Effect::Ask(Ask::Rights(Purpose::DuringCall)));
            }
            _ => {}
        }
    }

    fn presence_expiry(&self, now: Now) -> i64 {
        now.wall_ms + self.settings.presence_ttl.as_millis() as i64
    }

    // ---- answers ------------------------------------------------------

    fn on_answer(&mut self, answer: Answer, now: Now, out: &mut Vec<Effect>) {
        match answer {
            Answer::Rights(purpose, rights) => self.on_rights(purpose, rights, now, out),
            Answer::Resumed(found) => self.on_resumed(found, now, out),
            Answer::Held(held) => {
                let Phase::Entering { resume, media } = &self.phase else {
                    return;
                };
                let peer_id = rules::reusable_peer_id(resume.as_deref(), held)
                    .map(PeerId::from)
                    .unwrap_or_else(|| self.fresh_peer_id.clone());
                let media = *media;
                self.ask_to_join(peer_id, media, now, out);
            }
            Answer::Joined(outcome) => self.on_joined(outcome, out),
            Answer::Updated(why, result) => self.on_updated(why, result, out),
            Answer::Roster {
                peers,
                chat_head,
                ice,
                media_path,
            } => self.welcome(peers, chat_head, ice, media_path, out),
            Answer::RoomMedia(path) => self.media_path_now(path, out),
            Answer::Refreshed(refreshed) => match refreshed {
                // Lost (reaped during a stall, or Redis came back empty):
                // the client reconnects and joins again under the same id.
                Some(false) => {
                    self.reply(ServerMessage::Reconnect, out);
                    self.close(close::TRY_AGAIN_LATER, "presence lost", out);
                    self.end(Ending::Settled, now, out);
                }
                Some(true) | None => out.push(Effect::Ping),
            },
            Answer::Signalled { to, taken } => {
                if !taken {
                    self.reply(unknown_peer(&to), out);
                }
            }
            Answer::Present {
                peer_id,
                present,
                request,
            } => {
                if !present {
                    return self.reply(unknown_peer(&peer_id), out);
                }
                let by_name = self.caller.display_name.clone();
                let message = match request {
                    HostRequest::Mute => ServerMessage::MuteRequested { by_name },
                    HostRequest::LowerHand => ServerMessage::HandLowered { by_name },
                };
                out.push(Effect::Publish(RoomEvent::Direct {
                    to: peer_id,
                    message,
                }));
            }
            Answer::Found { peer_id, peer } => match peer {
                Some(target) => out.push(Effect::Ask(Ask::RemoveParticipant {
                    peer_id,
                    participant_id: target.participant_id,
                })),
                None => self.reply(unknown_peer(&peer_id), out),
            },
            Answer::Removal { peer_id, result } => match result {
                // Gone from every grid at once, even if their connection
                // is away.
                RemovalAnswer::Done => out.push(Effect::RemovePresence {
                    peer_id,
                    announce: Some(LeaveReason::Removed),
                }),
                RemovalAnswer::Host => self.reply(forbidden(), out),
                RemovalAnswer::NotFound => self.reply(unknown_peer(&peer_id), out),
                RemovalAnswer::Failed => self.reply(try_again(), out),
            },
            Answer::MeetingEnded(stored) => {
                if !stored {
                    return self.reply(try_again(), out);
                }
                tracing::info!(meeting = %self.caller.meeting.id, by = %self.caller.participant_id, "meeting ended by a host");
                out.push(Effect::Publish(RoomEvent::Ended));
                out.push(Effect::ClearRoom);
                self.tell(Leave::ended(), out);
            }
            Answer::Chat(replies) => out.extend(replies.into_iter().map(Effect::Send)),
        }
    }

    fn on_rights(&mut self, purpose: Purpose, rights: Rights, now: Now, out: &mut Vec<Effect>) {
        match verdict(rights, &self.caller) {
            Verdict::Leave(leave) => {
                tracing::info!(participant = %self.caller.participant_id, code = leave.code, "rights withdrawn; closing");
                if let Some(peer) = &self.peer {
                    if leave.code == close::ENDED {
                        out.push(Effect::ClearRoom);
                    } else {
                        out.push(Effect::RemovePresence {
                            peer_id: peer.peer_id.clone(),
                            announce: Some(leave.seen_as),
                        });
                    }
                }
                self.tell(leave, out);
            }
            Verdict::Stay(current) => {
                let role_changed = current.role != self.caller.role;
                self.caller = current;
                self.after_rights(purpose, role_changed, now, out);
            }
            Verdict::Unknown => self.after_rights(purpose, false, now, out),
        }
    }

    fn after_rights(
        &mut self,
        purpose: Purpose,
        role_changed: bool,
        now: Now,
        out: &mut Vec<Effect>,
    ) {
        match purpose {
            Purpose::BeforeJoin => {}
            Purpose::AtJoin => self.enter(now, out),
            Purpose::DuringCall | Purpose::HostAction(_) => {
                if role_changed {
                    self.show_new_role(out);
                }
                if let Purpose::HostAction(message) = purpose {
                    if self.caller.role.is_moderator() {
                        self.in_call(message, now, out);
                    } else {
                        self.reply(forbidden(), out);
                    }
                }
            }
        }
    }

    /// A changed role is stored and shown to everyone (the person's own
    /// page included, which adds or drops host controls).
    fn show_new_role(&mut self, out: &mut Vec<Effect>) {
        let role = self.caller.role;
        let Some(peer) = &mut self.peer else {
            return;
        };
        tracing::info!(peer = %peer.peer_id, ?role, "role changed during the call");
        PeerChange::Role(role).apply(peer);
        out.push(Effect::Ask(Ask::Update {
            peer_id: peer.peer_id.clone(),
            changes: vec![PeerChange::Role(role)],
            why: Change::Role,
        }));
    }
}
