//! One participant's signaling connection, from `join` to close.
//!
//! The loop waits on three things: a frame from the browser, an event of
//! the room (from the bus), and the heartbeat tick. Everything that must be
//! seen by others goes through the bus, so the same code works whether the
//! others are on this instance or another.

use super::limits::TokenBucket;
use super::SignalingState;
use crate::chat;
use crate::rooms::{JoinOutcome, PresenceEntry, Rooms};
use app::auth::ssr::now_ms;
use app::fanout::RoomEvent;
use app::meetings::ssr::MeetingRow;
use app::protocol::{
    close, parse_client_message, ClientMessage, ErrorCode, LeaveReason, MediaState, ParseProblem,
    PeerInfo, PeerRole, ServerMessage, MAX_MESSAGE_BYTES, PROTOCOL_VERSION,
};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use tower_sessions::Session;

/// Who is on the connection, settled at the upgrade.
#[derive(Debug, Clone)]
pub struct Caller {
    pub meeting: MeetingRow,
    pub participant_id: String,
    pub display_name: String,
    pub role: PeerRole,
}

/// How long a closing connection waits for the client's close reply.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// How long a new connection may take to send `join`.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Signaling messages: a burst (ICE candidates come in bunches), then a
/// steady rate. Far above what a browser in a six-person call sends.
const BURST: u32 = 200;
const PER_SECOND: u32 = 50;
/// Messages refused for rate before the connection is closed as a flood.
const FLOOD_LIMIT: u32 = 100;

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

pub async fn run(socket: WebSocket, state: SignalingState, caller: Caller, session: Session) {
    let (mut sink, mut stream) = socket.split();
    serve_connection(&mut sink, &mut stream, &state, &caller, &session).await;
    finish_close(sink, stream).await;
}

async fn serve_connection(
    sink: &mut Sink,
    stream: &mut Stream,
    state: &SignalingState,
    caller: &Caller,
    session: &Session,
) {
    let join = match tokio::time::timeout(JOIN_TIMEOUT, first_join(sink, stream)).await {
        Ok(Some(join)) => join,
        Ok(None) => return,
        Err(_) => {
            let _ = send_close(sink, close::NOT_ADMITTED, "join expected").await;
            return;
        }
    };
    let Some(mut live) = Live::enter(state, caller, sink, join).await else {
        return;
    };
    tracing::info!(
        meeting = %caller.meeting.id,
        peer = %live.peer.peer_id,
        participant = %caller.participant_id,
        "joined the call"
    );
    let ending = live.serve(sink, stream, session).await;
    if let Ending::Dropped = ending {
        live.hold_for_resume().await;
    }
}

/// Ends the WebSocket close handshake: reads (and drops) what the client
/// still sends until its own close, for a moment, instead of dropping the
/// socket at once, which could reset the connection before the client has
/// read our close code.
async fn finish_close(mut sink: Sink, mut stream: Stream) {
    let _ = sink.close().await;
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(frame)) = stream.next().await {
            if matches!(frame, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

struct JoinRequest {
    resume: Option<String>,
    media: MediaState,
}

/// Reads until a valid `join`; answers anything else with an error.
async fn first_join(sink: &mut Sink, stream: &mut Stream) -> Option<JoinRequest> {
    while let Some(Ok(frame)) = stream.next().await {
        let text = match frame {
            Message::Text(text) => text,
            Message::Close(_) => return None,
            Message::Binary(_) => {
                let _ = send(sink, &bad_message("text frames only")).await;
                continue;
            }
            _ => continue,
        };
        if text.len() > MAX_MESSAGE_BYTES {
            let _ = send_close(sink, 1009, "message too big").await;
            return None;
        }
        match parse_client_message(&text) {
            Ok(ClientMessage::Join {
                version,
                resume,
                media,
            }) => {
                if version != PROTOCOL_VERSION {
                    let message = ServerMessage::error(
                        ErrorCode::VersionUnsupported,
                        format!("this server speaks protocol version {PROTOCOL_VERSION}"),
                    );
                    let _ = send(sink, &message).await;
                    let _ = send_close(sink, close::VERSION, "protocol version").await;
                    return None;
                }
                return Some(JoinRequest { resume, media });
            }
            Ok(_) => {
                let message = ServerMessage::error(ErrorCode::NotJoined, "send join first");
                let _ = send(sink, &message).await;
            }
            Err(problem) => {
                let _ = send(sink, &parse_error(problem)).await;
            }
        }
    }
    None
}

/// A joined connection.
struct Live {
    rooms: Rooms,
    state: SignalingState,
    caller: Caller,
    room: String,
    peer: PeerInfo,
    conn_id: String,
    events: broadcast::Receiver<Arc<RoomEvent>>,
    bucket: TokenBucket,
    refused: u32,
    last_inbound: Instant,
}

impl Live {
    async fn enter(
        state: &SignalingState,
        caller: &Caller,
        sink: &mut Sink,
        join: JoinRequest,
    ) -> Option<Self> {
        let rooms = state.rooms.clone();
        let room = caller.meeting.id.clone();
        let conn_id = uuid::Uuid::new_v4().to_string();
        // Subscribe before anyone can see us, so no event addressed to us
        // is missed.
        let events = match rooms.bus.subscribe(&room).await {
            Ok(events) => events,
            Err(err) => {
                tracing::error!(error = %err, "cannot subscribe to the room");
                let _ = send(
                    sink,
                    &ServerMessage::error(ErrorCode::Internal, "try again"),
                )
                .await;
                let _ = send_close(sink, 1011, "room unavailable").await;
                return None;
            }
        };
        let limit = effective_limit(&caller.meeting, rooms.settings.max_participants);
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
                if peer.media != join.media {
                    if let Ok(Some(updated)) = rooms
                        .presence
                        .set_media(&room, &peer.peer_id, join.media)
                        .await
                    {
                        peer = updated;
                        let message = ServerMessage::PeerUpdated { peer: peer.clone() };
                        rooms.tell_others(&room, &peer.peer_id, message).await;
                    }
                }
                (peer, true)
            }
            None => {
                // A page whose presence was lost (Redis restarted empty,
                // reaped during a long stall) keeps its peer id when nobody
                // holds it: everyone else sees it leave and come back, and
                // no tile is left behind under an old id.
                let reusable = match &join.resume {
                    Some(id) if is_peer_id(id) => rooms
                        .presence
                        .get(&room, id)
                        .await
                        .is_ok_and(|held| held.is_none()),
                    _ => false,
                };
                let peer_id = match (&join.resume, reusable) {
                    (Some(id), true) => id.clone(),
                    _ => uuid::Uuid::new_v4().simple().to_string(),
                };
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
                match rooms.presence.join(&room, entry, limit as usize).await {
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
                        let _ = send(sink, &message).await;
                        let _ = send_close(sink, close::FULL, "room full").await;
                        return None;
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "cannot join the room");
                        let _ = send(
                            sink,
                            &ServerMessage::error(ErrorCode::Internal, "try again"),
                        )
                        .await;
                        let _ = send_close(sink, 1011, "room unavailable").await;
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
            ice: state.app.ice.config_for(&caller.participant_id, now_ms()),
            max_participants: limit,
            chat_head,
        };
        if send(sink, &welcome).await.is_err() {
            let live = Self::new(state, caller, room, peer, conn_id, events);
            live.hold_for_resume().await;
            return None;
        }
        Some(Self::new(state, caller, room, peer, conn_id, events))
    }

    fn new(
        state: &SignalingState,
        caller: &Caller,
        room: String,
        peer: PeerInfo,
        conn_id: String,
        events: broadcast::Receiver<Arc<RoomEvent>>,
    ) -> Self {
        let now = Instant::now();
        Self {
            rooms: state.rooms.clone(),
            state: state.clone(),
            caller: caller.clone(),
            room,
            peer,
            conn_id,
            events,
            bucket: TokenBucket::new(BURST, PER_SECOND, now),
            refused: 0,
            last_inbound: now,
        }
    }

    async fn serve(&mut self, sink: &mut Sink, stream: &mut Stream, session: &Session) -> Ending {
        let settings = self.rooms.settings.clone();
        let mut draining = self.state.draining.clone();
        let drained = async move {
            let _ = draining.wait_for(|d| *d).await;
        };
        tokio::pin!(drained);
        let mut heartbeat = tokio::time::interval(settings.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.tick().await;
        loop {
            tokio::select! {
                frame = stream.next() => {
                    let frame = match frame {
                        Some(Ok(frame)) => frame,
                        Some(Err(err)) => {
                            if is_capacity_error(&err) {
                                let _ = send_close(sink, 1009, "message too big").await;
                            }
                            return Ending::Dropped;
                        }
                        None => return Ending::Dropped,
                    };
                    self.last_inbound = Instant::now();
                    match self.on_frame(sink, frame).await {
                        Flow::Continue => {}
                        Flow::Stop(ending) => return ending,
                    }
                }
                event = self.events.recv() => {
                    match event {
                        Ok(event) => match self.on_event(sink, &event).await {
                            Flow::Continue => {}
                            Flow::Stop(ending) => return ending,
                        },
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            // Events were lost for this connection: let the
                            // client resume, which resynchronises everything.
                            tracing::warn!(missed, peer = %self.peer.peer_id, "connection fell behind its room");
                            let _ = send(sink, &ServerMessage::Reconnect).await;
                            let _ = send_close(sink, 1013, "resynchronise").await;
                            return Ending::Dropped;
                        }
                        Err(broadcast::error::RecvError::Closed) => {
                            let _ = send(sink, &ServerMessage::Reconnect).await;
                            let _ = send_close(sink, 1001, "going away").await;
                            return Ending::Dropped;
                        }
                    }
                }
                _ = &mut drained => {
                    // This instance is shutting down: the client reconnects
                    // (to another instance) and resumes its presence.
                    let _ = send(sink, &ServerMessage::Reconnect).await;
                    let _ = send_close(sink, 1012, "server restarting").await;
                    return Ending::Dropped;
                }
                _ = heartbeat.tick() => {
                    if self.last_inbound.elapsed() > settings.idle_timeout {
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
                            let _ = send(sink, &ServerMessage::Reconnect).await;
                            let _ = send_close(sink, 1013, "presence lost").await;
                            return Ending::Settled;
                        }
                        Err(err) => tracing::warn!(error = %err, "presence refresh failed"),
                    }
                    if sink.send(Message::Ping(Default::default())).await.is_err() {
                        return Ending::Dropped;
                    }
                    // Being in a meeting is activity: keep the session alive.
                    let interval = self.state.app.auth.touch_interval.as_millis() as i64;
                    if app::auth::ssr::touch_session(session, interval).await.is_ok() {
                        if let Err(err) = session.save().await {
                            tracing::warn!(error = %err, "could not refresh the session");
                        }
                    }
                }
            }
        }
    }

    async fn on_frame(&mut self, sink: &mut Sink, frame: Message) -> Flow {
        let text = match frame {
            Message::Text(text) => text,
            Message::Binary(bytes) => {
                if bytes.len() > MAX_MESSAGE_BYTES {
                    let _ = send_close(sink, 1009, "message too big").await;
                    return Flow::Stop(Ending::Dropped);
                }
                return self.reply(sink, bad_message("text frames only")).await;
            }
            Message::Close(_) => return Flow::Stop(Ending::Dropped),
            Message::Ping(_) | Message::Pong(_) => return Flow::Continue,
        };
        if text.len() > MAX_MESSAGE_BYTES {
            tracing::warn!(peer = %self.peer.peer_id, bytes = text.len(), "oversized message");
            let _ = send_close(sink, 1009, "message too big").await;
            return Flow::Stop(Ending::Dropped);
        }
        if !self.bucket.try_take(Instant::now()) {
            self.refused += 1;
            if self.refused > FLOOD_LIMIT {
                tracing::warn!(peer = %self.peer.peer_id, "flooding; closing");
                let _ = send_close(sink, 1008, "too many messages").await;
                return Flow::Stop(Ending::Dropped);
            }
            // One error per refused burst is enough.
            if self.refused == 1 || self.refused.is_multiple_of(20) {
                let message =
                    ServerMessage::error(ErrorCode::RateLimited, "slow down: message dropped");
                return self.reply(sink, message).await;
            }
            return Flow::Continue;
        }
        match parse_client_message(&text) {
            Ok(message) => self.on_message(sink, message).await,
            Err(problem) => self.reply(sink, parse_error(problem)).await,
        }
    }

    async fn on_message(&mut self, sink: &mut Sink, message: ClientMessage) -> Flow {
        match message {
            ClientMessage::Join { .. } => {
                self.reply(
                    sink,
                    ServerMessage::error(ErrorCode::NotJoined, "already joined"),
                )
                .await
            }
            ClientMessage::Ping => self.reply(sink, ServerMessage::Pong).await,
            ClientMessage::Signal { to, signal } => {
                if !self.in_room(&to).await || to == self.peer.peer_id {
                    return self.reply(sink, unknown_peer(&to)).await;
                }
                let message = ServerMessage::Signal {
                    from: self.peer.peer_id.clone(),
                    signal,
                };
                self.publish(RoomEvent::Direct { to, message }).await;
                Flow::Continue
            }
            ClientMessage::Media { media } => {
                match self
                    .rooms
                    .presence
                    .set_media(&self.room, &self.peer.peer_id, media)
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
                let _ = send_close(sink, 1000, "left").await;
                Flow::Stop(Ending::Settled)
            }
            ClientMessage::AskToMute { peer } => {
                if !self.caller.role.is_moderator() {
                    return self.reply(sink, forbidden()).await;
                }
                if !self.in_room(&peer).await {
                    return self.reply(sink, unknown_peer(&peer)).await;
                }
                let message = ServerMessage::MuteRequested {
                    by_name: self.caller.display_name.clone(),
                };
                self.publish(RoomEvent::Direct { to: peer, message }).await;
                Flow::Continue
            }
            ClientMessage::Remove { peer } => self.remove(sink, &peer).await,
            ClientMessage::EndMeeting => {
                if !self.caller.role.is_moderator() {
                    return self.reply(sink, forbidden()).await;
                }
                if let Err(err) = app::lobby::ssr::end_meeting(&self.state.app.db, &self.room).await
                {
                    tracing::error!(error = %err, "could not end the meeting");
                    return self
                        .reply(sink, ServerMessage::error(ErrorCode::Internal, "try again"))
                        .await;
                }
                tracing::info!(meeting = %self.room, by = %self.caller.participant_id, "meeting ended by a host");
                self.publish(RoomEvent::Ended).await;
                let _ = self.rooms.presence.clear(&self.room).await;
                let _ = send(sink, &ServerMessage::MeetingEnded).await;
                let _ = send_close(sink, close::ENDED, "meeting ended").await;
                Flow::Stop(Ending::Settled)
            }
            ClientMessage::ChatSend { key, text, to } => {
                let result = chat::send(&self.state, &self.caller, &self.room, key, text, to).await;
                self.reply_all(sink, result).await
            }
            ClientMessage::ChatSync { after } => {
                let result = chat::sync(
                    &self.state.app.db,
                    &self.room,
                    &self.caller.participant_id,
                    after,
                )
                .await;
                self.reply_all(sink, result).await
            }
            ClientMessage::ChatHistory { before } => {
                let result = chat::older(
                    &self.state.app.db,
                    &self.room,
                    &self.caller.participant_id,
                    before,
                )
                .await;
                self.reply_all(sink, result).await
            }
        }
    }

    async fn remove(&mut self, sink: &mut Sink, peer_id: &str) -> Flow {
        if !self.caller.role.is_moderator() {
            return self.reply(sink, forbidden()).await;
        }
        let target = self.rooms.presence.get(&self.room, peer_id).await;
        let Ok(Some(target)) = target else {
            return self.reply(sink, unknown_peer(peer_id)).await;
        };
        let stored = app::lobby::ssr::remove_participant(
            &self.state.app.db,
            self.rooms.bus.as_ref(),
            &self.caller.meeting,
            &target.participant_id,
            &self.caller.participant_id,
        )
        .await;
        if let Err(err) = stored {
            let message = match err {
                app::error::ApiError::Forbidden => forbidden(),
                app::error::ApiError::NotFound => unknown_peer(peer_id),
                _ => ServerMessage::error(ErrorCode::Internal, "try again"),
            };
            return self.reply(sink, message).await;
        }
        // Gone from every grid at once, even if their connection is away.
        if let Ok(Some(_)) = self.rooms.presence.remove(&self.room, peer_id).await {
            self.rooms
                .announce_left(&self.room, peer_id, LeaveReason::Removed)
                .await;
        }
        Flow::Continue
    }

    async fn on_event(&mut self, sink: &mut Sink, event: &RoomEvent) -> Flow {
        let me = &self.peer.peer_id;
        match event {
            RoomEvent::Broadcast { skip, message } => {
                if skip.as_ref() == Some(me) {
                    return Flow::Continue;
                }
                if matches!(message, ServerMessage::KnocksChanged)
                    && !self.caller.role.is_moderator()
                {
                    return Flow::Continue;
                }
                if let ServerMessage::PeerUpdated { peer } = message {
                    if peer.peer_id == *me {
                        self.peer = peer.clone();
                    }
                }
                self.forward(sink, message).await
            }
            RoomEvent::Direct { to, message } if to == me => {
                if let ServerMessage::MuteRequested { .. } = message {
                    self.peer.media.mic = false;
                }
                self.forward(sink, message).await
            }
            RoomEvent::Direct { .. } => Flow::Continue,
            RoomEvent::Participants { ids, message } => {
                if ids.contains(&self.caller.participant_id) {
                    self.forward(sink, message).await
                } else {
                    Flow::Continue
                }
            }
            RoomEvent::Takeover { peer_id, conn_id } => {
                if peer_id == me && *conn_id != self.conn_id {
                    let _ =
                        send_close(sink, close::REPLACED, "replaced by a newer connection").await;
                    Flow::Stop(Ending::Settled)
                } else {
                    Flow::Continue
                }
            }
            RoomEvent::Removed { participant_id } => {
                if *participant_id != self.caller.participant_id {
                    return Flow::Continue;
                }
                if let Ok(Some(_)) = self.rooms.presence.remove(&self.room, me).await {
                    self.rooms
                        .announce_left(&self.room, me, LeaveReason::Removed)
                        .await;
                }
                let _ = send(sink, &ServerMessage::Removed).await;
                let _ = send_close(sink, close::REMOVED, "removed by a host").await;
                Flow::Stop(Ending::Settled)
            }
            // Acted on in the connection-side change that follows.
            RoomEvent::AccessChanged { .. } => Flow::Continue,
            RoomEvent::Resync => {
                let _ = send(sink, &ServerMessage::Reconnect).await;
                let _ = send_close(sink, 1012, "resynchronise").await;
                Flow::Stop(Ending::Dropped)
            }
            RoomEvent::Ended => {
                let _ = send(sink, &ServerMessage::MeetingEnded).await;
                let _ = send_close(sink, close::ENDED, "meeting ended").await;
                Flow::Stop(Ending::Settled)
            }
        }
    }

    async fn in_room(&self, peer_id: &str) -> bool {
        // With presence unreachable (Redis down), relay anyway: delivery
        // only ever reaches connections of this room.
        self.rooms
            .presence
            .get(&self.room, peer_id)
            .await
            .map_or(true, |peer| peer.is_some())
    }

    async fn publish(&self, event: RoomEvent) {
        if let Err(err) = self.rooms.bus.publish(&self.room, event).await {
            tracing::warn!(error = %err, "could not publish to the room");
        }
    }

    async fn forward(&self, sink: &mut Sink, message: &ServerMessage) -> Flow {
        match send(sink, message).await {
            Ok(()) => Flow::Continue,
            Err(()) => Flow::Stop(Ending::Dropped),
        }
    }

    async fn reply(&self, sink: &mut Sink, message: ServerMessage) -> Flow {
        self.forward(sink, &message).await
    }

    async fn reply_all(&self, sink: &mut Sink, messages: Vec<ServerMessage>) -> Flow {
        for message in &messages {
            if let Flow::Stop(ending) = self.forward(sink, message).await {
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

/// Peer ids are 32 lowercase hex digits (a UUID without dashes).
fn is_peer_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The lower of the meeting's own limit and the server's mesh limit.
fn effective_limit(meeting: &MeetingRow, server_max: u32) -> u32 {
    u32::try_from(meeting.max_participants)
        .unwrap_or(server_max)
        .clamp(1, server_max)
}

fn is_capacity_error(err: &axum::Error) -> bool {
    let text = err.to_string();
    text.contains("Space limit exceeded") || text.contains("too long") || text.contains("Capacity")
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

async fn send(sink: &mut Sink, message: &ServerMessage) -> Result<(), ()> {
    let text = serde_json::to_string(message).map_err(|err| {
        tracing::error!(error = %err, "cannot encode a server message");
    })?;
    sink.send(Message::Text(Utf8Bytes::from(text)))
        .await
        .map_err(|_| ())
}

async fn send_close(sink: &mut Sink, code: u16, reason: &'static str) -> Result<(), ()> {
    sink.send(Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    })))
    .await
    .map_err(|_| ())
}
