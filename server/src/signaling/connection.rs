//! The pump around one participant's call session (`domain::call`): it
//! owns the socket, the timers and the stores, feeds the session what
//! happens, and does what the session says. No rule of the call lives
//! here; what a frame, an event or a timer means is the session's.
//!
//! The loop waits on a frame from the browser, an event of the room (from
//! the bus), the timers and the instance draining. When the session asks
//! something of the stores, the answer goes back to it before anything
//! else is read, so a step such as joining is never interleaved.

use super::pace::EventPace;
use super::sockets::SocketSlot;
use super::state::{Credentials, SignalingState};
use app::error::ApiError;
use app::protocol::{close, ErrorCode, ServerMessage};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use domain::call::{
    Answer, Ask, CallSession, Caller, ChatRequest, Effect, Frame, Input, Now, RemovalAnswer,
    Rights, Timer,
};
use domain::chat::service as chat;
use domain::door::RemovalError;
use domain::ids::{ConnectionId, PeerId};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// How long a closing connection waits for the client's close reply.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// How long a new connection may take to send `join`.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this many waiting room events are handled before the frames
/// they made are flushed (and the socket read again).
const EVENT_BATCH: usize = 64;

type Sink = SplitSink<WebSocket, Message>;
type Stream = SplitStream<WebSocket>;

/// The connection's whole life, holding `slot` (its place in the per-person
/// and per-address counts) until it ends.
///
/// An `async` block rather than an `async fn`: an async fn copies its
/// arguments into locals, and the task then holds both copies for its
/// whole life; a block's captures are used in place. Every idle socket
/// pays for the size of this future, which is why the state comes shared
/// (`Arc`): by value it was most of a KiB in every connection's task.
#[allow(clippy::manual_async_fn)]
pub fn run(
    socket: WebSocket,
    state: Arc<SignalingState>,
    caller: Caller,
    credentials: Credentials,
    slot: SocketSlot,
) -> impl std::future::Future<Output = ()> + Send {
    async move {
        let _open = state.app.metrics.websocket_opened();
        let (sink, mut stream) = socket.split();
        let mut wire = Wire {
            sink,
            write_timeout: state.rooms.settings.write_timeout,
            broken: false,
            unflushed: false,
            metrics: state.app.metrics.clone(),
            sent_since_flush: Vec::new(),
        };
        // Subscribed from the first moment, so a removal, an end or a rights
        // change reaches a connection that has not joined yet too.
        match state.rooms.bus.subscribe(&caller.meeting.id).await {
            Ok(events) => {
                let caller_room = caller.meeting.id.clone();
                let session = CallSession::new(
                    caller,
                    state.rooms.settings.clone(),
                    ConnectionId::random(),
                    PeerId::new(uuid::Uuid::new_v4().simple().to_string()),
                    Now::system(),
                );
                let mut pump = Pump {
                    room: caller_room,
                    session,
                    state: &state,
                    credentials: &credentials,
                    wire: &mut wire,
                    media_server: None,
                    camera_told: None,
                    counted: None,
                };
                pump.run(&mut stream, events).await;
                pump.disconnect_media();
                pump.count_in(None);
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot subscribe to the room");
                let _ = wire
                    .send(&ServerMessage::error(ErrorCode::Internal, "try again"))
                    .await;
                let _ = wire.close(close::INTERNAL, "room unavailable").await;
            }
        }
        wire.finish_close(stream).await;
        drop(slot);
    }
}

struct Pump<'a> {
    /// The session's room, kept apart so effects can name it while the
    /// session is borrowed.
    room: String,
    session: CallSession,
    state: &'a SignalingState,
    credentials: &'a Credentials,
    wire: &'a mut Wire,
    /// This connection's link to the media server, from its first signal:
    /// where the server's answers and offers arrive.
    media_server: Option<MediaServerLink>,
    /// Whether the media server was last told this person's camera (or
    /// shared screen) is on, on the current link.
    camera_told: Option<bool>,
    /// The media path this connection is counted on in the census, while
    /// live.
    counted: Option<app::protocol::MediaPath>,
}

struct MediaServerLink {
    outbox: domain::media::MediaServerOutbox,
    inbox: tokio::sync::mpsc::Receiver<domain::media::FromMediaServer>,
}

/// The next signal from the media server, or never without a link.
async fn from_media_server(
    link: &mut Option<MediaServerLink>,
) -> Option<domain::media::FromMediaServer> {
    match link {
        Some(link) => link.inbox.recv().await,
        None => std::future::pending().await,
    }
}

impl Pump<'_> {
    /// Counts this connection on `path` (`None`: not in the call).
    fn count_in(&mut self, path: Option<app::protocol::MediaPath>) {
        if path != self.counted {
            self.state.census.moved(&self.room, self.counted, path);
            self.counted = path;
        }
    }

    /// The call connection ended: so does its media connection.
    fn disconnect_media(&mut self) {
        self.camera_told = None;
        if self.media_server.take().is_none() {
            return;
        }
        if let (Some(server), Some(peer)) = (&self.state.media_server, self.session.peer()) {
            server.disconnect(&self.room, &peer.peer_id, self.session.conn_id());
        }
    }

    async fn run(
        &mut self,
        stream: &mut Stream,
        mut events: broadcast::Receiver<std::sync::Arc<domain::rooms::bus::SharedEvent>>,
    ) {
        let settings = self.state.rooms.settings.clone();
        let join_deadline = tokio::time::sleep(JOIN_TIMEOUT);
        tokio::pin!(join_deadline);
        let mut heartbeat = tokio::time::interval(settings.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.tick().await;
        let mut recheck = tokio::time::interval(self.state.rights_recheck);
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        recheck.tick().await;
        let mut draining = self.state.draining.clone();
        // While set, room events are left to collect until then (see
        // `pace`).
        let mut hold_events_until: Option<tokio::time::Instant> = None;
        let mut pace = EventPace::new(std::time::Instant::now());
        while !self.session.is_over() {
            let waiting = self.session.is_waiting_for_join();
            let live = self.session.is_live();
            let holding = hold_events_until.is_some();
            let hold_over = hold_events_until.unwrap_or_else(tokio::time::Instant::now);
            let woke = tokio::select! {
                frame = stream.next() => Some(Input::Frame(read_frame(frame))),
                event = events.recv(), if !holding => Some(match event {
                    Ok(event) => Input::Event(event),
                    Err(broadcast::error::RecvError::Lagged(missed)) => Input::FellBehind(missed),
                    Err(broadcast::error::RecvError::Closed) => Input::RoomClosed,
                }),
                // The events that collected are read below.
                _ = tokio::time::sleep_until(hold_over), if holding => None,
                _ = &mut join_deadline, if waiting => Some(Input::Timer(Timer::JoinDeadline)),
                _ = heartbeat.tick() => Some(Input::Timer(Timer::Heartbeat)),
                _ = recheck.tick() => Some(Input::Timer(Timer::Recheck)),
                // Shutting down: the client reconnects (to another
                // instance) and resumes its presence.
                _ = draining.wait_for(|draining| *draining), if live => Some(Input::Draining),
                Some(signal) = from_media_server(&mut self.media_server) => Some(Input::FromMediaServer(signal)),
            };
            if woke.is_none() {
                hold_events_until = None;
            }
            // Boxed, one allocation per wake-up: what handling an input
            // may await (the stores, the socket) would otherwise be room
            // every idle socket's task keeps for its whole life.
            let holding = hold_events_until.is_some();
            let (room_events, all_read) =
                Box::pin(self.handle_wake(woke, &mut events, holding)).await;
            if room_events > 0 && all_read {
                let now = tokio::time::Instant::now();
                hold_events_until = pace
                    .after_batch(room_events, now.into_std())
                    .map(tokio::time::Instant::from_std);
            }
        }
    }

    /// Handles what woke the connection (`None`: a hold on room events is
    /// over) and the room events already waiting unless `holding`, then
    /// flushes their frames: how many room events it handled, and whether
    /// that emptied the queue.
    async fn handle_wake(
        &mut self,
        woke: Option<Input>,
        events: &mut broadcast::Receiver<std::sync::Arc<domain::rooms::bus::SharedEvent>>,
        holding: bool,
    ) -> (u32, bool) {
        let mut room_events: u32 = 0;
        if let Some(input) = woke {
            if matches!(input, Input::Event(_) | Input::FellBehind(_)) {
                room_events += 1;
            }
            self.drive(input).await;
        }
        // Room events already waiting are handled now and their frames
        // go out in one write: in a busy room a connection wakes once
        // for many deliveries instead of once (and one syscall) each.
        // While holding, they are left for when the hold is over.
        let all_read = !holding && self.handle_waiting_events(events, &mut room_events).await;
        let _ = self.wire.flush().await;
        if self.wire.take_broken() && !self.session.is_over() {
            self.drive(Input::SocketGone).await;
        }
        (room_events, all_read)
    }

    /// Handles up to `EVENT_BATCH` room events that are already waiting,
    /// counting them in `handled`; whether that emptied the queue.
    async fn handle_waiting_events(
        &mut self,
        events: &mut broadcast::Receiver<std::sync::Arc<domain::rooms::bus::SharedEvent>>,
        handled: &mut u32,
    ) -> bool {
        for _ in 0..EVENT_BATCH {
            if self.session.is_over() {
                return false;
            }
            let input = match events.try_recv() {
                Ok(event) => Input::Event(event),
                Err(broadcast::error::TryRecvError::Lagged(missed)) => Input::FellBehind(missed),
                Err(_) => return true,
            };
            *handled += 1;
            self.drive(input).await;
        }
        false
    }

    /// Feeds one input and carries out the effects, feeding the answers
    /// of the stores back until the session has nothing more to ask.
    async fn drive(&mut self, input: Input) {
        let mut inputs = VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            let effects = self.session.handle(input, Now::system());
            let tally = self.session.take_tally();
            let metrics = &self.state.app.metrics;
            for received in tally.received {
                metrics.signaling_in(received);
            }
            for _ in 0..tally.throttled {
                metrics.rate_limited("signaling");
            }
            for effect in effects {
                if let Some(answer) = self.carry_out(effect).await {
                    inputs.push_back(Input::Answer(answer));
                }
            }
            if self.wire.take_broken() {
                inputs.push_front(Input::SocketGone);
            }
        }
        let live = self.session.is_live().then(|| self.session.media_path());
        self.count_in(live);
        self.tell_media_server_camera();
    }

    /// Tells the media server whether this person's camera (or shared
    /// screen) is on, when that changed: a camera turned off still sends
    /// black frames, and must not keep someone else's out of the last N.
    fn tell_media_server_camera(&mut self) {
        let (Some(server), Some(_), Some(peer)) = (
            &self.state.media_server,
            &self.media_server,
            self.session.peer(),
        ) else {
            return;
        };
        let on = peer.media.cam || peer.media.screen;
        if self.camera_told != Some(on) {
            server.camera(&self.room, &peer.peer_id, self.session.conn_id(), on);
            self.camera_told = Some(on);
        }
    }

    async fn carry_out(&mut self, effect: Effect) -> Option<Answer> {
        let rooms = &self.state.rooms;
        let room = self.room.as_str();
        match effect {
            Effect::Send(message) => {
                let _ = self.wire.send(&message).await;
            }
            Effect::SendShared(shared) => {
                let _ = self.wire.send_shared(&shared).await;
            }
            Effect::Close { code, reason } => {
                let _ = self.wire.close(code, reason).await;
            }
            Effect::Ping => {
                let _ = self.wire.write(Message::Ping(Default::default())).await;
            }
            Effect::Publish(event) => {
                if let Err(err) = rooms.bus.publish(room, event).await {
                    tracing::warn!(error = %err, "could not publish to the room");
                }
            }
            Effect::RemovePresence { peer_id, announce } => {
                if let Ok(Some(peer)) = rooms.presence.remove(room, &peer_id).await {
                    if let Some(reason) = announce {
                        rooms.announce_left(room, &peer, reason).await;
                    }
                }
            }
            Effect::ClearRoom => {
                if let Err(err) = rooms.presence.clear(room).await {
                    tracing::warn!(error = %err, "could not empty the room");
                }
            }
            Effect::HoldForResume {
                peer_id,
                conn_id,
                expires_at_ms,
            } => {
                if let Err(err) = rooms
                    .presence
                    .refresh(room, &peer_id, &conn_id, expires_at_ms)
                    .await
                {
                    tracing::warn!(error = %err, "could not shorten a dropped presence");
                }
            }
            Effect::CloseMediaServer => self.disconnect_media(),
            Effect::WatchOnMediaServer { peer_id, wishes } => {
                // Only a page with a media connection has cameras to pick.
                if let (Some(server), Some(_)) = (&self.state.media_server, &self.media_server) {
                    server.watch(room, &peer_id, self.session.conn_id(), &wishes);
                }
            }
            Effect::ToMediaServer { peer_id, signal } => {
                let Some(server) = &self.state.media_server else {
                    let message = ServerMessage::error(
                        ErrorCode::MediaRefused,
                        "this server has no media server",
                    );
                    let _ = self.wire.send(&message).await;
                    return None;
                };
                let link = self.media_server.get_or_insert_with(|| {
                    let (outbox, inbox) = tokio::sync::mpsc::channel(domain::media::OUTBOX_DEPTH);
                    MediaServerLink { outbox, inbox }
                });
                server.signal(room, &peer_id, self.session.conn_id(), &link.outbox, signal);
            }
            // Boxed: a future holds room for the largest one it may await,
            // and the stores' answers (a rights re-check, a chat message
            // stored: about 6 KiB) are awaited now and then; the box every
            // wake-up takes (see `Pump::run`) stays small without them.
            Effect::Ask(ask) => return Some(Box::pin(self.ask(room, ask)).await),
        }
        None
    }

    /// The room's media path given its `size`; a change is told to the
    /// whole room (once: only the observation that makes it sees it).
    async fn room_media(&self, room: &str, size: usize) -> app::protocol::MediaPath {
        let mode = self.session.caller().meeting.media_mode();
        let observed = self
            .state
            .media_paths
            .observe(room, mode, size, domain::clock::now_ms())
            .await;
        if observed.changed {
            tracing::info!(meeting = %room, path = ?observed.path, size, "the call's media moves");
            self.state.app.metrics.media_path_switched(observed.path);
            let event = domain::rooms::bus::RoomEvent::Broadcast {
                skip: None,
                message: ServerMessage::MediaPathChanged {
                    path: observed.path,
                },
            };
            if let Err(err) = self.state.rooms.bus.publish(room, event).await {
                tracing::warn!(error = %err, "could not tell the room its media moved");
            }
        }
        observed.path
    }

    /// Answers one question of the session from the stores.
    async fn ask(&self, room: &str, ask: Ask) -> Answer {
        let state = self.state;
        let rooms = &state.rooms;
        let caller = self.session.caller();
        match ask {
            Ask::Rights(purpose) => {
                let rights = rights(state.recheck(self.credentials).await);
                Answer::Rights(purpose, rights)
            }
            Ask::Resume {
                peer_id,
                conn_id,
                expires_at_ms,
            } => Answer::Resumed(
                rooms
                    .presence
                    .resume(
                        room,
                        &peer_id,
                        &caller.participant_id,
                        &conn_id,
                        expires_at_ms,
                    )
                    .await
                    .unwrap_or_else(|err| {
                        tracing::warn!(error = %err, "resume failed; joining afresh");
                        None
                    }),
            ),
            // Unreadable presence counts as held: a fresh id is safe.
            Ask::Held { peer_id } => Answer::Held(
                rooms
                    .presence
                    .get(room, &peer_id)
                    .await
                    .map_or(true, |holder| holder.is_some()),
            ),
            Ask::Join { entry, limit } => {
                let peer = entry.peer.clone();
                let joined = rooms
                    .presence
                    .join(room, entry, limit)
                    .await
                    .map_err(|err| tracing::error!(error = %err, "cannot join the room"))
                    .ok();
                // A new person (not the same one from another tab): the
                // host's webhooks hear of it, and of the call starting when
                // they are alone in it.
                if let Some(domain::rooms::JoinOutcome::Joined { displaced }) = &joined {
                    if displaced.is_empty() {
                        state.webhooks.participant_joined(&caller.meeting, &peer);
                        if let Ok(peers) = rooms.presence.list(room).await {
                            if peers.len() == 1 {
                                state.webhooks.meeting_started(&caller.meeting);
                            }
                        }
                    }
                }
                Answer::Joined(joined)
            }
            Ask::Update {
                peer_id,
                changes,
                why,
            } => {
                let result = rooms
                    .presence
                    .update_and_announce(
                        rooms.bus.as_ref(),
                        room,
                        &peer_id,
                        &changes,
                        why.announce(),
                    )
                    .await;
                Answer::Updated(
                    why,
                    result.map_err(|err| {
                        tracing::warn!(error = %err, "could not store a presence change");
                    }),
                )
            }
            Ask::Roster { with_turn } => {
                let peers = rooms.presence.list(room).await.unwrap_or_default();
                let chat_head = chat::head(&state.app.db, room, &caller.participant_id)
                    .await
                    .unwrap_or(0);
                let ice = if with_turn {
                    state
                        .app
                        .ice
                        .config_for(&caller.participant_id, domain::clock::now_ms())
                } else {
                    state.app.ice.stun_only()
                };
                // This arrival may be the one that moves the room.
                let media_path = self.room_media(room, peers.len()).await;
                Answer::Roster {
                    peers,
                    chat_head,
                    ice,
                    media_path,
                }
            }
            Ask::RoomMedia => match rooms.presence.list(room).await {
                Ok(peers) => Answer::RoomMedia(self.room_media(room, peers.len()).await),
                // Unknown size: the path stays as it is.
                Err(_) => Answer::RoomMedia(
                    state
                        .media_paths
                        .current(room, caller.meeting.media_mode())
                        .await,
                ),
            },
            Ask::Refresh {
                peer_id,
                conn_id,
                expires_at_ms,
            } => Answer::Refreshed(
                rooms
                    .presence
                    .refresh(room, &peer_id, &conn_id, expires_at_ms)
                    .await
                    .map_err(|err| tracing::warn!(error = %err, "presence refresh failed"))
                    .ok(),
            ),
            Ask::Signal { from, to, signal } => {
                let taken = state.media.signal(room, &from, &to, signal).await.is_ok();
                Answer::Signalled { to, taken }
            }
            Ask::IsPresent { peer_id, request } => {
                let present = rooms.is_present(room, &peer_id).await;
                Answer::Present {
                    peer_id,
                    present,
                    request,
                }
            }
            Ask::Find { peer_id } => {
                let peer = rooms.presence.get(room, &peer_id).await.ok().flatten();
                Answer::Found { peer_id, peer }
            }
            Ask::RemoveParticipant {
                peer_id,
                participant_id,
            } => {
                let stored = domain::door::remove_participant(
                    &state.app.db,
                    rooms.bus.as_ref(),
                    &caller.meeting,
                    &participant_id,
                    &caller.participant_id,
                    domain::clock::now_ms(),
                )
                .await;
                let result = match stored {
                    Ok(()) => RemovalAnswer::Done,
                    Err(RemovalError::Host) => RemovalAnswer::Host,
                    Err(RemovalError::NotFound) => RemovalAnswer::NotFound,
                    Err(RemovalError::Store(err)) => {
                        tracing::error!(error = %err, "could not store a removal");
                        RemovalAnswer::Failed
                    }
                };
                Answer::Removal { peer_id, result }
            }
            Ask::EndMeeting => {
                let ended =
                    domain::door::end_meeting(&state.app.db, room, domain::clock::now_ms()).await;
                match &ended {
                    Ok(()) => state.webhooks.meeting_ended(&caller.meeting),
                    Err(err) => tracing::error!(error = %err, "could not end the meeting"),
                }
                Answer::MeetingEnded(ended.is_ok())
            }
            Ask::Chat(request) => Answer::Chat(self.chat(room, request).await),
        }
    }

    async fn chat(&self, room: &str, request: ChatRequest) -> Vec<ServerMessage> {
        let state = self.state;
        let caller = self.session.caller();
        let db = &state.app.db;
        match request {
            ChatRequest::Send { key, text, to } => {
                let cx = chat::ChatCx {
                    db,
                    rooms: &state.rooms,
                    limits: &state.chat_limits,
                };
                let sender = chat::Sender {
                    participant_id: &caller.participant_id,
                    display_name: &caller.display_name,
                };
                chat::send(&cx, &sender, room, key, text, to).await
            }
            ChatRequest::Sync { after } => {
                chat::sync(db, room, &caller.participant_id, after).await
            }
            ChatRequest::History { before } => {
                chat::older(db, room, &caller.participant_id, before).await
            }
        }
    }
}

/// The answer of a rights re-check, as the session reads it.
fn rights(result: Result<Caller, ApiError>) -> Rights {
    match result {
        Ok(caller) => Rights::Admitted(Box::new(caller)),
        Err(ApiError::Unauthenticated) => Rights::SignedOut,
        // A cancelled meeting looks like a missing one.
        Err(ApiError::NotFound) => Rights::Cancelled,
        Err(ApiError::Ended) => Rights::Ended,
        Err(ApiError::Internal) => Rights::Unknown,
        Err(_) => Rights::NotAdmitted,
    }
}

/// What one read from the socket was, for the session.
fn read_frame(frame: Option<Result<Message, axum::Error>>) -> Frame {
    match frame {
        Some(Ok(Message::Text(text))) => Frame::Text(text.to_string()),
        Some(Ok(Message::Binary(bytes))) => Frame::Binary(bytes.len()),
        Some(Ok(Message::Ping(_) | Message::Pong(_))) => Frame::Control,
        Some(Ok(Message::Close(_))) | None => Frame::Close,
        Some(Err(err)) => {
            if is_capacity_error(err) {
                Frame::TooBig
            } else {
                Frame::Broken
            }
        }
    }
}

/// Whether a read failed because the frame was over the size limit (the
/// client is told why: 1009) rather than because the connection broke.
fn is_capacity_error(err: axum::Error) -> bool {
    err.into_inner()
        .downcast::<tungstenite::Error>()
        .is_ok_and(|err| matches!(*err, tungstenite::Error::Capacity(_)))
}

/// One step of writing to the socket, given at most `timeout`.
async fn bounded(
    timeout: Duration,
    step: impl std::future::Future<Output = Result<(), axum::Error>>,
) -> Result<(), ()> {
    match tokio::time::timeout(timeout, step).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(()),
        Err(_) => {
            tracing::info!("a client stopped reading; dropping its connection");
            Err(())
        }
    }
}

/// The socket's sending half, with a bounded time for every write.
struct Wire {
    sink: Sink,
    /// How long one write may take (`RoomSettings::write_timeout`).
    write_timeout: Duration,
    /// A write failed: the rest are skipped and the session is told.
    broken: bool,
    /// Frames were queued since the last flush.
    unflushed: bool,
    /// Counts messages sent and closes by code.
    metrics: domain::metrics::Metrics,
    /// Messages sent since the last flush, by type, counted at the flush.
    sent_since_flush: Vec<(&'static str, u64)>,
}

impl Wire {
    /// Queues one frame; the pump flushes after each batch of inputs (see
    /// `flush`). Gives up after `write_timeout`: a client that stops
    /// reading must not pin this task and its buffers forever.
    async fn write(&mut self, frame: Message) -> Result<(), ()> {
        if self.broken {
            return Err(());
        }
        let queued = bounded(self.write_timeout, self.sink.feed(frame)).await;
        self.unflushed |= queued.is_ok();
        self.broken = queued.is_err();
        queued
    }

    /// Whether a write failed since the last call: the session is told
    /// once, and holds the presence for a resume.
    fn take_broken(&mut self) -> bool {
        std::mem::take(&mut self.broken)
    }

    fn count_sent(&mut self, r#type: &'static str) {
        match self.sent_since_flush.iter_mut().find(|(t, _)| *t == r#type) {
            Some((_, count)) => *count += 1,
            None => self.sent_since_flush.push((r#type, 1)),
        }
    }

    fn count_sent_messages(&mut self) {
        for (r#type, count) in self.sent_since_flush.drain(..) {
            self.metrics.signaling_out(r#type, count);
        }
    }

    /// Sends what `write` queued, in as few writes to the socket as fit.
    async fn flush(&mut self) -> Result<(), ()> {
        self.count_sent_messages();
        if self.broken {
            return Err(());
        }
        if !std::mem::take(&mut self.unflushed) {
            return Ok(());
        }
        let flushed = bounded(self.write_timeout, self.sink.flush()).await;
        self.broken = flushed.is_err();
        flushed
    }

    async fn send(&mut self, message: &ServerMessage) -> Result<(), ()> {
        let text = serde_json::to_string(message).map_err(|err| {
            tracing::error!(error = %err, "cannot encode a server message");
        })?;
        self.count_sent(message.type_name());
        self.write(Message::Text(Utf8Bytes::from(text))).await
    }

    /// A room event's message, in the wire text every connection of the
    /// room shares (encoded by the first to send it).
    async fn send_shared(&mut self, shared: &domain::rooms::bus::SharedEvent) -> Result<(), ()> {
        let (Some(message), Some(text)) = (shared.message(), shared.wire_text()) else {
            return Err(());
        };
        let text = Utf8Bytes::try_from(text).map_err(|err| {
            tracing::error!(error = %err, "a server message encoded to invalid UTF-8");
        })?;
        self.count_sent(message.type_name());
        self.write(Message::Text(text)).await
    }

    async fn close(&mut self, code: u16, reason: &'static str) -> Result<(), ()> {
        self.metrics.websocket_closed(code);
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
    async fn finish_close(mut self, mut stream: Stream) {
        self.count_sent_messages();
        let _ = tokio::time::timeout(CLOSE_WAIT, self.sink.close()).await;
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            while let Some(Ok(frame)) = stream.next().await {
                if matches!(frame, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_what_the_session_decides_on() {
        assert!(matches!(
            rights(Err(ApiError::Unauthenticated)),
            Rights::SignedOut
        ));
        assert!(matches!(rights(Err(ApiError::NotFound)), Rights::Cancelled));
        assert!(matches!(rights(Err(ApiError::Ended)), Rights::Ended));
        assert!(matches!(rights(Err(ApiError::Internal)), Rights::Unknown));
        assert!(matches!(
            rights(Err(ApiError::Forbidden)),
            Rights::NotAdmitted
        ));
    }
}
