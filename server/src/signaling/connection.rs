//! One participant's signaling connection, from `join` to close.
//!
//! The loop waits on three things: a frame from the browser, an event of
//! the room (from the bus), and the heartbeat tick. Everything that must be
//! seen by others goes through the bus, so the same code works whether the
//! others are on this instance or another.

use super::limits::{FrameGate, FrameVerdict};
use super::media::MediaRefusal;
use super::session::{self, EventAction};
use super::{Credentials, SignalingState};
use crate::chat;
use app::error::ApiError;
use app::protocol::{
    close, parse_client_message, ClientMessage, ErrorCode, LeaveReason, MediaState, ParseProblem,
    PeerInfo, PeerRole, ServerMessage, MAX_MESSAGE_BYTES, PROTOCOL_VERSION,
};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use domain::clock::now_ms;
use domain::door::RemovalError;
use domain::meetings::MeetingRow;
use domain::rooms::bus::RoomEvent;
use domain::rooms::{JoinOutcome, PeerChange, PresenceEntry, Rooms};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// Who is on the connection, settled at the upgrade.
#[derive(Debug, Clone)]
pub struct Caller {
    pub meeting: MeetingRow,
    pub participant_id: String,
    pub display_name: String,
    pub role: PeerRole,
    /// TURN credentials only while the meeting is in session (read with
    /// the rights, so at `join` it is fresh).
    pub may_use_turn: bool,
}

/// How long a closing connection waits for the client's close reply.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// How long a new connection may take to send `join`.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

type Sink = SplitSink<WebSocket, Message>;
type Stream = SplitStream<WebSocket>;

/// How a connection ended, which decides what happens to its presence.
enum Ending {
    /// Left, removed, ended or replaced: presence already settled.
    Settled,
    /// The connection broke: keep the presence for the grace period so
    /// the same page can resume.
    Dropped,
}

pub async fn run(
    socket: WebSocket,
    state: SignalingState,
    caller: Caller,
    credentials: Credentials,
) {
    let (sink, stream) = socket.split();
    let mut wire = Wire::new(sink, stream, state.rooms.settings.write_timeout);
    serve_connection(&mut wire, &state, caller, &credentials).await;
    wire.finish_close().await;
}

async fn serve_connection(
    wire: &mut Wire,
    state: &SignalingState,
    caller: Caller,
    credentials: &Credentials,
) {
    let room = caller.meeting.id.clone();
    // Subscribed from the first moment, so a removal, an end or a rights
    // change reaches a connection that has not joined yet too.
    let mut events = match state.rooms.bus.subscribe(&room).await {
        Ok(events) => events,
        Err(err) => {
            tracing::error!(error = %err, "cannot subscribe to the room");
            let _ = wire
                .send(&ServerMessage::error(ErrorCode::Internal, "try again"))
                .await;
            let _ = wire.close(close::INTERNAL, "room unavailable").await;
            return;
        }
    };
    let join = match wait_for_join(wire, &mut events, state, &caller, credentials).await {
        Some(join) => join,
        None => return,
    };
    // Rights are read again at `join`: a socket opened before a removal
    // (or a demotion) and joined after it gets what is true now.
    let caller = match rights_verdict(state.recheck(credentials).await, &caller) {
        Verdict::Stay(current) => current,
        Verdict::Unknown => caller,
        Verdict::Leave(leave) => {
            leave.tell(wire).await;
            return;
        }
    };
    let Some(mut live) = Live::enter(state, caller, credentials, wire, join, events).await else {
        return;
    };
    tracing::info!(
        meeting = %live.caller.meeting.id,
        peer = %live.peer.peer_id,
        participant = %live.caller.participant_id,
        "joined the call"
    );
    let ending = live.serve(wire).await;
    if let Ending::Dropped = ending {
        live.hold_for_resume().await;
    }
}

/// The socket, with the limits every frame passes through (size, rate,
/// and a bounded time for every write).
struct Wire {
    sink: Sink,
    stream: Stream,
    gate: FrameGate,
    last_inbound: Instant,
    /// How long one write may take (`RoomSettings::write_timeout`).
    write_timeout: Duration,
}

/// What one frame from the browser amounts to.
enum Inbound {
    Message(ClientMessage),
    /// Handled already (a control frame, or an error answered): read on.
    Handled,
    Stop(Ending),
}

impl Wire {
    fn new(sink: Sink, stream: Stream, write_timeout: Duration) -> Self {
        let now = Instant::now();
        Self {
            sink,
            stream,
            gate: FrameGate::new(MAX_MESSAGE_BYTES, now),
            last_inbound: now,
            write_timeout,
        }
    }

    /// Writes one frame, giving up after `write_timeout`: a client that
    /// stops reading must not pin this task and its buffers forever.
    async fn write(&mut self, frame: Message) -> Result<(), ()> {
        match tokio::time::timeout(self.write_timeout, self.sink.send(frame)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(()),
            Err(_) => {
                tracing::info!("a client stopped reading; dropping its connection");
                Err(())
            }
        }
    }

    async fn send(&mut self, message: &ServerMessage) -> Result<(), ()> {
        let text = serde_json::to_string(message).map_err(|err| {
            tracing::error!(error = %err, "cannot encode a server message");
        })?;
        self.write(Message::Text(Utf8Bytes::from(text))).await
    }

    async fn close(&mut self, code: u16, reason: &'static str) -> Result<(), ()> {
        self.write(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        })))
        .await
    }

    /// Ends the WebSocket close handshake: reads (and drops) what the
    /// client still sends until its own close, for a moment, instead of
    /// dropping the socket at once, which could reset the connection
    /// before the client has read our close code.
    async fn finish_close(mut self) {
        let _ = tokio::time::timeout(CLOSE_WAIT, self.sink.close()).await;
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            while let Some(Ok(frame)) = self.stream.next().await {
                if matches!(frame, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }

    /// Checks one frame against the limits and parses it. Every frame
    /// counts against the rate limit: text, binary, pings and pongs, before
    /// and after `join`.
    async fn inbound(&mut self, frame: Option<Result<Message, axum::Error>>) -> Inbound {
        let frame = match frame {
            Some(Ok(frame)) => frame,
            Some(Err(err)) => {
                if is_capacity_error(err) {
                    let _ = self.close(close::TOO_BIG, "message too big").await;
                }
                return Inbound::Stop(Ending::Dropped);
            }
            None => return Inbound::Stop(Ending::Dropped),
        };
        self.last_inbound = Instant::now();
        if matches!(frame, Message::Close(_)) {
            return Inbound::Stop(Ending::Dropped);
        }
        let size = match &frame {
            Message::Text(text) => text.len(),
            Message::Binary(bytes) => bytes.len(),
            _ => 0,
        };
        match self.gate.check(size, Instant::now()) {
            FrameVerdict::Accept => {}
            FrameVerdict::Drop => return Inbound::Handled,
            FrameVerdict::DropAndWarn => {
                let message =
                    ServerMessage::error(ErrorCode::RateLimited, "slow down: message dropped");
                return self.answered(&message).await;
            }
            FrameVerdict::Close(code) => {
                let reason = if code == close::TOO_BIG {
                    tracing::warn!(bytes = size, "oversized message");
                    "message too big"
                } else {
                    tracing::warn!("flooding; closing");
                    "too many messages"
                };
                let _ = self.close(code, reason).await;
                return Inbound::Stop(Ending::Dropped);
            }
        }
        let text = match frame {
            Message::Text(text) => text,
            Message::Binary(_) => return self.answered(&bad_message("text frames only")).await,
            _ => return Inbound::Handled,
        };
        match parse_client_message(&text) {
            Ok(message) => Inbound::Message(message),
            Err(problem) => self.answered(&parse_error(problem)).await,
        }
    }

    async fn answered(&mut self, message: &ServerMessage) -> Inbound {
        match self.send(message).await {
            Ok(()) => Inbound::Handled,
            Err(()) => Inbound::Stop(Ending::Dropped),
        }
    }
}

struct JoinRequest {
    resume: Option<String>,
    media: MediaState,
}

/// Reads until a valid `join`, answering anything else with an error,
/// within `JOIN_TIMEOUT`. Meanwhile the room is watched: a removal, an
/// end or a withdrawn right closes this connection before it ever joins.
async fn wait_for_join(
    wire: &mut Wire,
    events: &mut broadcast::Receiver<Arc<RoomEvent>>,
    state: &SignalingState,
    caller: &Caller,
    credentials: &Credentials,
) -> Option<JoinRequest> {
    let deadline = tokio::time::sleep(JOIN_TIMEOUT);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            frame = wire.stream.next() => match wire.inbound(frame).await {
                Inbound::Message(ClientMessage::Join { version, resume, media }) => {
                    if version != PROTOCOL_VERSION {
                        let message = ServerMessage::error(
                            ErrorCode::VersionUnsupported,
                            format!("this server speaks protocol version {PROTOCOL_VERSION}"),
                        );
                        let _ = wire.send(&message).await;
                        let _ = wire.close(close::VERSION, "protocol version").await;
                        return None;
                    }
                    return Some(JoinRequest { resume, media });
                }
                Inbound::Message(_) => {
                    let message = ServerMessage::error(ErrorCode::NotJoined, "send join first");
                    if wire.send(&message).await.is_err() {
                        return None;
                    }
                }
                Inbound::Handled => {}
                Inbound::Stop(_) => return None,
            },
            event = events.recv() => {
                let leave = match event {
                    Ok(event) => match &*event {
                        RoomEvent::Removed { participant_id } if *participant_id == caller.participant_id => {
                            Some(Leave::removed())
                        }
                        RoomEvent::Ended => Some(Leave::ended()),
                        RoomEvent::AccessChanged { participant_id }
                            if participant_id.as_ref().is_none_or(|id| *id == caller.participant_id) =>
                        {
                            match rights_verdict(state.recheck(credentials).await, caller) {
                                Verdict::Leave(leave) => Some(leave),
                                _ => None,
                            }
                        }
                        _ => None,
                    },
                    // Missed events: `join` re-reads the rights anyway.
                    Err(broadcast::error::RecvError::Lagged(_)) => None,
                    Err(broadcast::error::RecvError::Closed) => {
                        let _ = wire.close(close::INTERNAL, "room unavailable").await;
                        return None;
                    }
                };
                if let Some(leave) = leave {
                    leave.tell(wire).await;
                    return None;
                }
            }
            _ = &mut deadline => {
                let _ = wire.close(close::NOT_ADMITTED, "join expected").await;
                return None;
            }
        }
    }
}

/// What a re-check of someone's rights decided.
#[derive(Debug)]
enum Verdict {
    /// Still allowed; the current rights (the role may have changed).
    Stay(Caller),
    /// No longer allowed: the connection closes, telling the page why.
    Leave(Leave),
    /// The check itself failed (the database did not answer): carry on,
    /// and ask again at the next re-check, rather than drop a whole call
    /// over a hiccup.
    Unknown,
}

/// How a connection that may no longer stay is closed.
#[derive(Debug, Clone, PartialEq)]
struct Leave {
    /// Sent before the close, for pages that show a reason from it.
    message: Option<ServerMessage>,
    code: u16,
    reason: &'static str,
    /// How the others see this person go.
    seen_as: LeaveReason,
}

impl Leave {
    fn removed() -> Self {
        Self {
            message: Some(ServerMessage::Removed),
            code: close::REMOVED,
            reason: "removed by a host",
            seen_as: LeaveReason::Removed,
        }
    }

    fn ended() -> Self {
        Self {
            message: Some(ServerMessage::MeetingEnded),
            code: close::ENDED,
            reason: "meeting ended",
            seen_as: LeaveReason::Left,
        }
    }

    async fn tell(&self, wire: &mut Wire) {
        if let Some(message) = &self.message {
            let _ = wire.send(message).await;
        }
        let _ = wire.close(self.code, self.reason).await;
    }
}

/// Turns the answer of `SignalingState::recheck` into what the connection
/// does. A pure function, so every outcome is unit-tested.
fn rights_verdict(result: Result<Caller, ApiError>, current: &Caller) -> Verdict {
    match result {
        Ok(caller) if caller.participant_id == current.participant_id => Verdict::Stay(caller),
        // The session now names someone else: the person on this
        // connection is no longer signed in.
        Ok(_) | Err(ApiError::Unauthenticated) => Verdict::Leave(Leave {
            message: None,
            code: close::SIGNED_OUT,
            reason: "signed out",
            seen_as: LeaveReason::Left,
        }),
        // A cancelled meeting looks like a missing one.
        Err(ApiError::NotFound) => Verdict::Leave(Leave {
            message: None,
            code: close::CANCELLED,
            reason: "meeting cancelled",
            seen_as: LeaveReason::Left,
        }),
        Err(ApiError::Ended) => Verdict::Leave(Leave::ended()),
        Err(ApiError::Internal) => Verdict::Unknown,
        Err(_) => Verdict::Leave(Leave {
            message: None,
            code: close::NOT_ADMITTED,
            reason: "not admitted",
            seen_as: LeaveReason::Removed,
        }),
    }
}

/// A joined connection.
struct Live {
    rooms: Rooms,
    state: SignalingState,
    caller: Caller,
    credentials: Credentials,
    room: String,
    peer: PeerInfo,
    conn_id: String,
    events: broadcast::Receiver<Arc<RoomEvent>>,
}

impl Live {
    async fn enter(
        state: &SignalingState,
        caller: Caller,
        credentials: &Credentials,
        wire: &mut Wire,
        join: JoinRequest,
        events: broadcast::Receiver<Arc<RoomEvent>>,
    ) -> Option<Self> {
        let rooms = state.rooms.clone();
        let room = caller.meeting.id.clone();
        let conn_id = uuid::Uuid::new_v4().to_string();
        let limit = session::room_limit(
            caller.meeting.max_participants,
            rooms.settings.max_participants,
        );
        let join_limit = session::join_limit(caller.role, limit);
        let expires = now_ms() + rooms.settings.presence_ttl.as_millis() as i64;

        let resumed = match &join.resume {
            Some(peer_id) => rooms
                .presence
                .resume(&room, peer_id, &caller.participant_id, &conn_id, expires)
                .await
                .unwrap_or_else(|err| {
                    tracing::warn!(error = %err, "resume failed; joining afresh");
                    None
                }),
            None => None,
        };
        let (peer, was_resumed) = match resumed {
            Some(mut peer) => {
                // An older connection of this page may still be open on
                // some instance: it must let go.
                let _ = rooms
                    .bus
                    .publish(
                        &room,
                        RoomEvent::Takeover {
                            peer_id: peer.peer_id.clone(),
                            conn_id: conn_id.clone(),
                        },
                    )
                    .await;
                for change in session::changes_on_resume(&peer, join.media, caller.role) {
                    if let Ok(Some(updated)) =
                        rooms.presence.update(&room, &peer.peer_id, change).await
                    {
                        peer = updated;
                        let message = ServerMessage::PeerUpdated { peer: peer.clone() };
                        rooms.tell_others(&room, &peer.peer_id, message).await;
                    }
                }
                (peer, true)
            }
            None => {
                let held = match join.resume.as_deref() {
                    Some(id) if session::is_peer_id(id) => rooms
                        .presence
                        .get(&room, id)
                        .await
                        .map_or(true, |holder| holder.is_some()),
                    _ => false,
                };
                let peer_id = session::reusable_peer_id(join.resume.as_deref(), held)
                    .map(str::to_string)
                    .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
                let peer = PeerInfo {
                    peer_id,
                    participant_id: caller.participant_id.clone(),
                    display_name: caller.display_name.clone(),
                    role: caller.role,
                    media: join.media,
                    joined_at_ms: now_ms(),
                };
                let entry = PresenceEntry {
                    peer: peer.clone(),
                    conn_id: conn_id.clone(),
                    expires_at_ms: expires,
                };
                match rooms.presence.join(&room, entry, join_limit).await {
                    Ok(JoinOutcome::Joined { displaced }) => {
                        for old in displaced {
                            rooms
                                .announce_left(&room, &old.peer_id, LeaveReason::Replaced)
                                .await;
                            let _ = rooms
                                .bus
                                .publish(
                                    &room,
                                    RoomEvent::Takeover {
                                        peer_id: old.peer_id,
                                        conn_id: conn_id.clone(),
                                    },
                                )
                                .await;
                        }
                        let message = ServerMessage::PeerJoined { peer: peer.clone() };
                        rooms.tell_others(&room, &peer.peer_id, message).await;
                        (peer, false)
                    }
                    Ok(JoinOutcome::Full) => {
                        let message = ServerMessage::error(
                            ErrorCode::RoomFull,
                            format!("this call is full ({limit} people)"),
                        );
                        let _ = wire.send(&message).await;
                        let _ = wire.close(close::FULL, "room full").await;
                        return None;
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "cannot join the room");
                        let _ = wire
                            .send(&ServerMessage::error(ErrorCode::Internal, "try again"))
                            .await;
                        let _ = wire.close(close::INTERNAL, "room unavailable").await;
                        return None;
                    }
                }
            }
        };

        let peers = rooms
            .presence
            .list(&room)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p.peer_id != peer.peer_id)
            .collect();
        let chat_head = chat::head(&state.app.db, &room, &caller.participant_id)
            .await
            .unwrap_or(0);
        let welcome = ServerMessage::Welcome {
            version: PROTOCOL_VERSION,
            you: peer.clone(),
            peers,
            resumed: was_resumed,
            ice: if caller.may_use_turn {
                state.app.ice.config_for(&caller.participant_id, now_ms())
            } else {
                state.app.ice.stun_only()
            },
            max_participants: limit,
            chat_head,
        };
        let live = Self {
            rooms: state.rooms.clone(),
            state: state.clone(),
            caller,
            credentials: credentials.clone(),
            room,
            peer,
            conn_id,
            events,
        };
        if wire.send(&welcome).await.is_err() {
            live.hold_for_resume().await;
            return None;
        }
        Some(live)
    }

    async fn serve(&mut self, wire: &mut Wire) -> Ending {
        let settings = self.rooms.settings.clone();
        let mut draining = self.state.draining.clone();
        let drained = async move {
            let _ = draining.wait_for(|d| *d).await;
        };
        tokio::pin!(drained);
        let mut heartbeat = tokio::time::interval(settings.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.tick().await;
        let mut recheck = tokio::time::interval(self.state.rights_recheck);
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        recheck.tick().await;
        loop {
            tokio::select! {
                frame = wire.stream.next() => {
                    let flow = match wire.inbound(frame).await {
                        Inbound::Message(message) => self.on_message(wire, message).await,
                        Inbound::Handled => Flow::Continue,
                        Inbound::Stop(ending) => Flow::Stop(ending),
                    };
                    if let Flow::Stop(ending) = flow {
                        return ending;
                    }
                }
                event = self.events.recv() => {
                    match event {
                        Ok(event) => {
                            if let Flow::Stop(ending) = self.on_event(wire, &event).await {
                                return ending;
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            // Events were lost for this connection: let the
                            // client resume, which resynchronises everything.
                            tracing::warn!(missed, peer = %self.peer.peer_id, "connection fell behind its room");
                            let _ = wire.send(&ServerMessage::Reconnect).await;
                            let _ = wire.close(close::TRY_AGAIN_LATER, "resynchronise").await;
                            return Ending::Dropped;
                        }
                        Err(broadcast::error::RecvError::Closed) => {
                            let _ = wire.send(&ServerMessage::Reconnect).await;
                            let _ = wire.close(close::GOING_AWAY, "going away").await;
                            return Ending::Dropped;
                        }
                    }
                }
                _ = &mut drained => {
                    // This instance is shutting down: the client reconnects
                    // (to another instance) and resumes its presence.
                    let _ = wire.send(&ServerMessage::Reconnect).await;
                    let _ = wire.close(close::RESTART, "server restarting").await;
                    return Ending::Dropped;
                }
                _ = recheck.tick() => {
                    if let Flow::Stop(ending) = self.recheck_rights(wire).await {
                        return ending;
                    }
                }
                _ = heartbeat.tick() => {
                    if wire.last_inbound.elapsed() > settings.idle_timeout {
                        tracing::info!(peer = %self.peer.peer_id, "connection silent; dropping it");
                        return Ending::Dropped;
                    }
                    let expires = now_ms() + settings.presence_ttl.as_millis() as i64;
                    match self.rooms.presence.refresh(&self.room, &self.peer.peer_id, &self.conn_id, expires).await {
                        Ok(true) => {}
                        Ok(false) => {
                            // Lost (reaped during a stall, or Redis came
                            // back empty): the client reconnects and joins
                            // again under the same peer id.
                            let _ = wire.send(&ServerMessage::Reconnect).await;
                            let _ = wire.close(close::TRY_AGAIN_LATER, "presence lost").await;
                            return Ending::Settled;
                        }
                        Err(err) => tracing::warn!(error = %err, "presence refresh failed"),
                    }
                    if wire.write(Message::Ping(Default::default())).await.is_err() {
                        return Ending::Dropped;
                    }
                }
            }
        }
    }

    /// Asks again whether this person may be here, and applies the answer:
    /// a changed role is stored and shown to everyone (the person's own
    /// page included, which adds or drops host controls); a withdrawn right
    /// closes the connection.
    async fn recheck_rights(&mut self, wire: &mut Wire) -> Flow {
        let verdict = rights_verdict(self.state.recheck(&self.credentials).await, &self.caller);
        match verdict {
            Verdict::Stay(current) => {
                if current.role != self.caller.role {
                    tracing::info!(peer = %self.peer.peer_id, role = ?current.role, "role changed during the call");
                    self.caller.role = current.role;
                    let change = PeerChange::Role(current.role);
                    match self
                        .rooms
                        .presence
                        .update(&self.room, &self.peer.peer_id, change)
                        .await
                    {
                        Ok(Some(peer)) => self.peer = peer,
                        _ => change.apply(&mut self.peer),
                    }
                    let event = RoomEvent::Broadcast {
                        skip: None,
                        message: ServerMessage::PeerUpdated {
                            peer: self.peer.clone(),
                        },
                    };
                    self.publish(event).await;
                }
                Flow::Continue
            }
            Verdict::Unknown => Flow::Continue,
            Verdict::Leave(leave) => {
                tracing::info!(peer = %self.peer.peer_id, code = leave.code, "rights withdrawn; closing");
                if leave.code == close::ENDED {
                    let _ = self.rooms.presence.clear(&self.room).await;
                } else if let Ok(Some(_)) = self
                    .rooms
                    .presence
                    .remove(&self.room, &self.peer.peer_id)
                    .await
                {
                    self.rooms
                        .announce_left(&self.room, &self.peer.peer_id, leave.seen_as)
                        .await;
                }
                leave.tell(wire).await;
                Flow::Stop(Ending::Settled)
            }
        }
    }

    /// Host actions are allowed by the role the person has now, not the
    /// one they had when the connection opened.
    async fn may_moderate(&mut self, wire: &mut Wire) -> Result<(), Flow> {
        if let Flow::Stop(ending) = self.recheck_rights(wire).await {
            return Err(Flow::Stop(ending));
        }
        if self.caller.role.is_moderator() {
            Ok(())
        } else {
            Err(self.reply(wire, forbidden()).await)
        }
    }

    async fn on_message(&mut self, wire: &mut Wire, message: ClientMessage) -> Flow {
        if session::is_host_only(&message) {
            if let Err(flow) = self.may_moderate(wire).await {
                return flow;
            }
        }
        match message {
            ClientMessage::Join { .. } => {
                self.reply(
                    wire,
                    ServerMessage::error(ErrorCode::NotJoined, "already joined"),
                )
                .await
            }
            ClientMessage::Ping => self.reply(wire, ServerMessage::Pong).await,
            ClientMessage::Signal { to, signal } => {
                match self
                    .state
                    .media
                    .signal(&self.room, &self.peer, &to, signal)
                    .await
                {
                    Ok(()) => Flow::Continue,
                    Err(MediaRefusal::UnknownPeer) => self.reply(wire, unknown_peer(&to)).await,
                }
            }
            ClientMessage::Media { media } => {
                match self
                    .rooms
                    .presence
                    .update(&self.room, &self.peer.peer_id, PeerChange::Media(media))
                    .await
                {
                    Ok(Some(peer)) => self.peer = peer,
                    Ok(None) => return Flow::Continue,
                    // Not stored, but those who can be reached still see it.
                    Err(err) => {
                        tracing::warn!(error = %err, "could not store media state");
                        self.peer.media = media;
                    }
                }
                let message = ServerMessage::PeerUpdated {
                    peer: self.peer.clone(),
                };
                self.rooms
                    .tell_others(&self.room, &self.peer.peer_id, message)
                    .await;
                Flow::Continue
            }
            ClientMessage::Leave => {
                if let Ok(Some(_)) = self
                    .rooms
                    .presence
                    .remove(&self.room, &self.peer.peer_id)
                    .await
                {
                    self.rooms
                        .announce_left(&self.room, &self.peer.peer_id, LeaveReason::Left)
                        .await;
                }
                let _ = wire.close(close::NORMAL, "left").await;
                Flow::Stop(Ending::Settled)
            }
            ClientMessage::AskToMute { peer } => {
                if !self.in_room(&peer).await {
                    return self.reply(wire, unknown_peer(&peer)).await;
                }
                let message = ServerMessage::MuteRequested {
                    by_name: self.caller.display_name.clone(),
                };
                self.publish(RoomEvent::Direct { to: peer, message }).await;
                Flow::Continue
            }
            ClientMessage::Remove { peer } => self.remove(wire, &peer).await,
            ClientMessage::EndMeeting => {
                if let Err(err) =
                    domain::door::end_meeting(&self.state.app.db, &self.room, now_ms()).await
                {
                    tracing::error!(error = %err, "could not end the meeting");
                    return self
                        .reply(wire, ServerMessage::error(ErrorCode::Internal, "try again"))
                        .await;
                }
                tracing::info!(meeting = %self.room, by = %self.caller.participant_id, "meeting ended by a host");
                self.publish(RoomEvent::Ended).await;
                let _ = self.rooms.presence.clear(&self.room).await;
                Leave::ended().tell(wire).await;
                Flow::Stop(Ending::Settled)
            }
            ClientMessage::ChatSend { key, text, to } => {
                let cx = chat::ChatCx {
                    db: &self.state.app.db,
                    rooms: &self.rooms,
                    limits: &self.state.chat_limits,
                };
                let sender = chat::Sender {
                    participant_id: &self.caller.participant_id,
                    display_name: &self.caller.display_name,
                };
                let result = chat::send(&cx, &sender, &self.room, key, text, to).await;
                self.reply_all(wire, result).await
            }
            ClientMessage::ChatSync { after } => {
                let result = chat::sync(
                    &self.state.app.db,
                    &self.room,
                    &self.caller.participant_id,
                    after,
                )
                .await;
                self.reply_all(wire, result).await
            }
            ClientMessage::ChatHistory { before } => {
                let result = chat::older(
                    &self.state.app.db,
                    &self.room,
                    &self.caller.participant_id,
                    before,
                )
                .await;
                self.reply_all(wire, result).await
            }
        }
    }

    /// A host removes someone (the role was checked in `on_message`).
    async fn remove(&mut self, wire: &mut Wire, peer_id: &str) -> Flow {
        let target = self.rooms.presence.get(&self.room, peer_id).await;
        let Ok(Some(target)) = target else {
            return self.reply(wire, unknown_peer(peer_id)).await;
        };
        let stored = domain::door::remove_participant(
            &self.state.app.db,
            self.rooms.bus.as_ref(),
            &self.caller.meeting,
            &target.participant_id,
            &self.caller.participant_id,
            now_ms(),
        )
        .await;
        if let Err(err) = stored {
            let message = match err {
                RemovalError::Host => forbidden(),
                RemovalError::NotFound => unknown_peer(peer_id),
                RemovalError::Store(err) => {
                    tracing::error!(error = %err, "could not store a removal");
                    ServerMessage::error(ErrorCode::Internal, "try again")
                }
            };
            return self.reply(wire, message).await;
        }
        // Gone from every grid at once, even if their connection is away.
        if let Ok(Some(_)) = self.rooms.presence.remove(&self.room, peer_id).await {
            self.rooms
                .announce_left(&self.room, peer_id, LeaveReason::Removed)
                .await;
        }
        Flow::Continue
    }

    fn me(&self) -> session::Me<'_> {
        session::Me {
            peer_id: &self.peer.peer_id,
            conn_id: &self.conn_id,
            participant_id: &self.caller.participant_id,
            role: self.caller.role,
        }
    }

    async fn on_event(&mut self, wire: &mut Wire, event: &RoomEvent) -> Flow {
        match session::on_event(self.me(), event) {
            EventAction::Ignore => Flow::Continue,
            EventAction::Forward(message) => self.forward(wire, &message).await,
            EventAction::ForwardOwnUpdate(peer) => {
                let message = ServerMessage::PeerUpdated { peer: peer.clone() };
                self.peer = peer;
                self.forward(wire, &message).await
            }
            EventAction::ForwardMute(message) => {
                self.peer.media.mic = false;
                self.forward(wire, &message).await
            }
            EventAction::Replaced => {
                let _ = wire
                    .close(close::REPLACED, "replaced by a newer connection")
                    .await;
                Flow::Stop(Ending::Settled)
            }
            EventAction::Removed => {
                let me = &self.peer.peer_id;
                if let Ok(Some(_)) = self.rooms.presence.remove(&self.room, me).await {
                    self.rooms
                        .announce_left(&self.room, me, LeaveReason::Removed)
                        .await;
                }
                Leave::removed().tell(wire).await;
                Flow::Stop(Ending::Settled)
            }
            EventAction::RecheckRights => self.recheck_rights(wire).await,
            EventAction::Resync => {
                let _ = wire.send(&ServerMessage::Reconnect).await;
                let _ = wire.close(close::RESTART, "resynchronise").await;
                Flow::Stop(Ending::Dropped)
            }
            EventAction::Ended => {
                // Ended or cancelled: whoever published it may not have
                // reached presence (a cancel from the meetings page), so
                // each connection takes its own presence away.
                let _ = self
                    .rooms
                    .presence
                    .remove(&self.room, &self.peer.peer_id)
                    .await;
                Leave::ended().tell(wire).await;
                Flow::Stop(Ending::Settled)
            }
        }
    }

    async fn in_room(&self, peer_id: &str) -> bool {
        self.rooms.is_present(&self.room, peer_id).await
    }

    async fn publish(&self, event: RoomEvent) {
        if let Err(err) = self.rooms.bus.publish(&self.room, event).await {
            tracing::warn!(error = %err, "could not publish to the room");
        }
    }

    async fn forward(&self, wire: &mut Wire, message: &ServerMessage) -> Flow {
        match wire.send(message).await {
            Ok(()) => Flow::Continue,
            Err(()) => Flow::Stop(Ending::Dropped),
        }
    }

    async fn reply(&self, wire: &mut Wire, message: ServerMessage) -> Flow {
        self.forward(wire, &message).await
    }

    async fn reply_all(&self, wire: &mut Wire, messages: Vec<ServerMessage>) -> Flow {
        for message in &messages {
            if let Flow::Stop(ending) = self.forward(wire, message).await {
                return Flow::Stop(ending);
            }
        }
        Flow::Continue
    }

    /// The connection broke: keep the presence a little while for a resume.
    async fn hold_for_resume(&self) {
        let expires = now_ms() + self.rooms.settings.reconnect_grace.as_millis() as i64;
        if let Err(err) = self
            .rooms
            .presence
            .refresh(&self.room, &self.peer.peer_id, &self.conn_id, expires)
            .await
        {
            tracing::warn!(error = %err, "could not shorten a dropped presence");
        }
        tracing::info!(peer = %self.peer.peer_id, "connection dropped; waiting for a resume");
    }
}

enum Flow {
    Continue,
    Stop(Ending),
}

/// Whether a read failed because the frame was over the size limit (the
/// client is told why: 1009) rather than because the connection broke.
fn is_capacity_error(err: axum::Error) -> bool {
    err.into_inner()
        .downcast::<tungstenite::Error>()
        .is_ok_and(|err| matches!(*err, tungstenite::Error::Capacity(_)))
}

fn bad_message(text: &str) -> ServerMessage {
    ServerMessage::error(ErrorCode::BadMessage, text)
}

fn forbidden() -> ServerMessage {
    ServerMessage::error(ErrorCode::Forbidden, "only hosts and co-hosts may do that")
}

fn unknown_peer(peer_id: &str) -> ServerMessage {
    ServerMessage::Error {
        code: ErrorCode::UnknownPeer,
        message: "no such peer in this room".to_string(),
        about: Some(peer_id.chars().take(64).collect()),
    }
}

fn parse_error(problem: ParseProblem) -> ServerMessage {
    match problem {
        ParseProblem::Malformed(why) => ServerMessage::error(
            ErrorCode::BadMessage,
            format!(
                "malformed message: {}",
                why.chars().take(200).collect::<String>()
            ),
        ),
        ParseProblem::UnknownType(kind) => ServerMessage::error(
            ErrorCode::UnknownType,
            format!(
                "unknown message type {:?}",
                kind.chars().take(64).collect::<String>()
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::meetings::MeetingRow;

    fn caller(participant: &str, role: PeerRole) -> Caller {
        Caller {
            meeting: MeetingRow {
                id: "m1".into(),
                code: "code".into(),
                host_id: "ann".into(),
                host_name: "Ann".into(),
                title: "Review".into(),
                description: String::new(),
                starts_at: 0,
                duration_minutes: 30,
                waiting_room: 1,
                allow_guests: 0,
                max_participants: 6,
                revision: 1,
                cancelled_at: None,
                updated_at: 0,
                ended_at: None,
            },
            participant_id: participant.into(),
            display_name: participant.into(),
            role,
            may_use_turn: true,
        }
    }

    fn leave_code(verdict: Verdict) -> u16 {
        match verdict {
            Verdict::Leave(leave) => leave.code,
            other => panic!("expected a leave, got {other:?}"),
        }
    }

    #[test]
    fn the_same_person_stays_with_their_current_role() {
        let before = caller("bob", PeerRole::CoHost);
        let now = caller("bob", PeerRole::Member);
        match rights_verdict(Ok(now), &before) {
            Verdict::Stay(current) => assert_eq!(current.role, PeerRole::Member),
            other => panic!("expected stay, got {other:?}"),
        }
    }

    #[test]
    fn a_session_that_ended_or_names_someone_else_signs_the_connection_out() {
        let bob = caller("bob", PeerRole::Member);
        let signed_out = rights_verdict(Err(ApiError::Unauthenticated), &bob);
        assert_eq!(leave_code(signed_out), close::SIGNED_OUT);
        let someone_else = rights_verdict(Ok(caller("eve", PeerRole::Host)), &bob);
        assert_eq!(leave_code(someone_else), close::SIGNED_OUT);
    }

    #[test]
    fn withdrawn_rights_close_with_a_code_the_page_explains() {
        let bob = caller("bob", PeerRole::Member);
        assert_eq!(
            leave_code(rights_verdict(Err(ApiError::NotFound), &bob)),
            close::CANCELLED
        );
        assert_eq!(
            leave_code(rights_verdict(Err(ApiError::Ended), &bob)),
            close::ENDED
        );
        let not_admitted = rights_verdict(Err(ApiError::Forbidden), &bob);
        match not_admitted {
            Verdict::Leave(leave) => {
                assert_eq!(leave.code, close::NOT_ADMITTED);
                assert_eq!(leave.seen_as, LeaveReason::Removed);
            }
            other => panic!("expected a leave, got {other:?}"),
        }
    }

    #[test]
    fn a_database_hiccup_keeps_the_call_going() {
        let bob = caller("bob", PeerRole::Member);
        assert!(matches!(
            rights_verdict(Err(ApiError::Internal), &bob),
            Verdict::Unknown
        ));
    }
}
