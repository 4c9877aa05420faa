//! The signaling connection: connect, reconnect with backoff, what each
//! server message does.

use super::*;
use crate::protocol::MediaPath;

/// The signaling connection's own state.
pub(super) struct SocketState {
    pub(super) socket: RefCell<Option<Socket>>,
    /// Counts sockets, so events of an old one are ignored.
    pub(super) generation: Cell<u32>,
    /// Reconnect attempts since the last welcome (the backoff step).
    pub(super) attempts: Cell<u32>,
    /// Refusals in a row before a socket opened (see `decide`).
    pub(super) failures_before_open: Cell<u32>,
    pub(super) last_message_ms: Cell<f64>,
}

impl SocketState {
    pub(super) fn new(now_ms: f64) -> Self {
        Self {
            socket: RefCell::new(None),
            generation: Cell::new(0),
            attempts: Cell::new(0),
            failures_before_open: Cell::new(0),
            last_message_ms: Cell::new(now_ms),
        }
    }
}

impl Call {
    pub(super) fn connect(&self) {
        if self.0.closed.get() {
            return;
        }
        let generation = self.0.conn.generation.get() + 1;
        self.0.conn.generation.set(generation);
        let ws = match WebSocket::new(&self.0.url) {
            Ok(ws) => ws,
            Err(_) => {
                self.schedule_reconnect();
                return;
            }
        };
        let weak = self.weak();
        let on_open = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            if let Some(call) = Call::from_weak(&weak) {
                if call.0.conn.generation.get() == generation {
                    call.on_open();
                }
            }
        });
        let weak = self.weak();
        let on_message = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            let Some(call) = Call::from_weak(&weak) else {
                return;
            };
            if call.0.conn.generation.get() != generation {
                return;
            }
            let Ok(event) = event.dyn_into::<MessageEvent>() else {
                return;
            };
            if let Some(text) = event.data().as_string() {
                call.0.conn.last_message_ms.set(now());
                match serde_json::from_str::<ServerMessage>(&text) {
                    Ok(message) => call.on_message(message),
                    Err(err) => log(&format!("moim: unreadable server message: {err}")),
                }
            }
        });
        let weak = self.weak();
        let on_close = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            let Some(call) = Call::from_weak(&weak) else {
                return;
            };
            if call.0.conn.generation.get() != generation {
                return;
            }
            let code = event
                .dyn_into::<CloseEvent>()
                .map(|e| e.code())
                .unwrap_or(close::ABNORMAL);
            call.on_close(code);
        });
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        *self.0.conn.socket.borrow_mut() = Some(Socket {
            ws,
            _callbacks: vec![on_open, on_message, on_close],
        });
    }

    pub(super) fn on_open(&self) {
        self.0.conn.last_message_ms.set(now());
        self.0.conn.failures_before_open.set(0);
        let resume = self.0.me.borrow().clone();
        let media = self.view().local.get_untracked();
        self.send(&ClientMessage::Join {
            version: PROTOCOL_VERSION,
            resume,
            media,
        });
    }

    pub(super) fn on_close(&self, code: u16) {
        *self.0.conn.socket.borrow_mut() = None;
        if self.0.closed.get() {
            return;
        }
        let view = self.view();
        let live = self.0.me.borrow().is_some() && view.phase.get_untracked() == Phase::Live;
        let (at_once, refused_before_open) =
            match decide::after_close(code, live, view.max_participants.get_untracked()) {
                decide::AfterClose::End(reason) => {
                    self.finish(reason);
                    return;
                }
                decide::AfterClose::Reconnect {
                    at_once,
                    refused_before_open,
                } => (at_once, refused_before_open),
            };
        if view.phase.get_untracked() != Phase::Connecting {
            view.phase.set(Phase::Reconnecting);
        }
        if at_once {
            self.0.conn.attempts.set(0);
        }
        if refused_before_open {
            self.0
                .conn
                .failures_before_open
                .set(self.0.conn.failures_before_open.get() + 1);
        }
        self.schedule_reconnect();
    }

    pub(super) fn schedule_reconnect(&self) {
        let attempt = self.0.conn.attempts.get();
        self.0.conn.attempts.set(attempt + 1);
        let delay = decide::reconnect_delay_ms(attempt, js_sys::Math::random());
        let weak = self.weak();
        set_timeout(
            move || {
                if let Some(call) = Call::from_weak(&weak) {
                    if decide::should_ask_the_door(call.0.conn.failures_before_open.get()) {
                        call.check_still_admitted();
                    } else {
                        call.connect();
                    }
                }
            },
            Duration::from_millis(delay),
        );
    }

    /// Repeated refusals before the socket even opened: maybe we are not
    /// admitted any more (removed while away). Ask the door.
    pub(super) fn check_still_admitted(&self) {
        let call = self.clone();
        leptos::task::spawn_local(async move {
            match crate::lobby::door_state(call.0.code.clone()).await {
                Ok(door) if door.admission != Some(crate::lobby::Admission::Admitted) => {
                    call.finish(EndReason::Removed);
                }
                Err(crate::error::ApiError::Ended) => call.finish(EndReason::Ended),
                _ => {
                    call.0.conn.failures_before_open.set(0);
                    call.connect();
                }
            }
        });
    }

    pub(super) fn send(&self, message: &ClientMessage) -> bool {
        let socket = self.0.conn.socket.borrow();
        let Some(socket) = socket.as_ref() else {
            return false;
        };
        if socket.ws.ready_state() != WebSocket::OPEN {
            return false;
        }
        match serde_json::to_string(message) {
            Ok(text) => socket.ws.send_with_str(&text).is_ok(),
            Err(_) => false,
        }
    }

    pub(super) fn on_message(&self, message: ServerMessage) {
        let view = self.view();
        match message {
            ServerMessage::Welcome {
                you,
                peers,
                resumed,
                ice,
                max_participants,
                chat_head,
                media_path,
                ..
            } => {
                self.0.conn.attempts.set(0);
                let had_presence = self.0.me.borrow().is_some();
                if had_presence && !resumed {
                    // Our old presence was gone: everyone starts over with us.
                    self.drop_all_links();
                }
                *self.0.me.borrow_mut() = Some(you.peer_id.clone());
                *self.0.participant_id.borrow_mut() = Some(you.participant_id.to_string());
                self.use_ice(ice, false);
                view.max_participants.set(max_participants);
                view.me.set(Some(you));
                view.media_path.set(media_path);
                if media_path == MediaPath::Server {
                    // One connection to the server carries everything.
                    self.drop_all_links();
                    view.peers.set(peers);
                    self.start_server_link();
                    view.phase.set(Phase::Live);
                    self.after_welcome_chat(had_presence, chat_head);
                    return;
                }
                self.drop_server_link();
                // Reconcile: connect to new peers, forget vanished ones.
                let known: Vec<PeerId> = self.0.mesh.links.borrow().keys().cloned().collect();
                for id in known {
                    if !peers.iter().any(|p| p.peer_id == id) {
                        self.drop_link(&id);
                    }
                }
                // A newcomer offers to everyone already there; after a
                // resume, peers that came meanwhile have offered to us.
                for peer in &peers {
                    self.ensure_link(&peer.peer_id, !resumed);
                }
                view.peers.set(peers);
                view.phase.set(Phase::Live);
                self.after_welcome_chat(had_presence, chat_head);
            }
            ServerMessage::PeerJoined { peer } if self.media_path() == MediaPath::Server => {
                view.tell(Activity::Joined(peer.display_name.clone()));
                chime(view);
                let id = peer.peer_id.clone();
                view.peers.update(|list| {
                    list.retain(|p| p.peer_id != peer.peer_id);
                    list.push(peer);
                });
                let state = self.server_state();
                view.links.update(|l| {
                    l.insert(id, state);
                });
                self.assign_server_tracks();
            }
            ServerMessage::PeerJoined { peer } => {
                view.tell(Activity::Joined(peer.display_name.clone()));
                chime(view);
                self.drop_link(&peer.peer_id);
                // The newcomer offers; we answer (no glare on first contact).
                self.ensure_link(&peer.peer_id, false);
                view.peers.update(|list| {
                    list.retain(|p| p.peer_id != peer.peer_id);
                    list.push(peer);
                });
            }
            ServerMessage::PeerUpdated { peer } => {
                if self.0.me.borrow().as_deref() == Some(peer.peer_id.as_str()) {
                    view.me.set(Some(peer));
                    return;
                }
                let raised = view.peers.with_untracked(|list| {
                    list.iter()
                        .any(|p| p.peer_id == peer.peer_id && !p.media.hand && peer.media.hand)
                });
                if raised {
                    view.tell(Activity::RaisedHand(peer.display_name.clone()));
                }
                view.peers.update(|list| {
                    if let Some(p) = list.iter_mut().find(|p| p.peer_id == peer.peer_id) {
                        *p = peer;
                    }
                });
            }
            ServerMessage::PeerLeft { peer_id, .. } => {
                let name = view.peers.with_untracked(|list| {
                    list.iter()
                        .find(|p| p.peer_id == peer_id)
                        .map(|p| p.display_name.clone())
                });
                if let Some(name) = name {
                    view.tell(Activity::Left(name));
                }
                self.drop_link(&peer_id);
                self.forget_server_peer(&peer_id);
                view.peers
                    .update(|list| list.retain(|p| p.peer_id != peer_id));
            }
            ServerMessage::Signal { from, signal } => self.on_signal(from, signal),
            ServerMessage::MediaServerSignal { signal } => self.on_server_signal(signal),
            ServerMessage::Speakers { peers } => {
                *self.0.server.speakers.borrow_mut() = peers;
                self.measure_speaking();
            }
            ServerMessage::VideoPaused { peers } => {
                if self.server_link_active() {
                    view.video_paused.set(peers.into_iter().collect());
                }
            }
            ServerMessage::MediaServerMoved => {
                // The instance that carried this room's media stopped:
                // the next offer finds the one that carries it now.
                if self.server_link_active() && self.media_path() == MediaPath::Server {
                    log("moim: the room's media server moved; connecting again");
                    self.start_server_link();
                }
            }
            ServerMessage::MediaPathChanged { path } => {
                if view.media_path.get_untracked() != path {
                    view.media_path.set(path);
                    match path {
                        MediaPath::Server => self.move_to_server(),
                        MediaPath::Direct => self.move_to_direct(),
                    }
                }
            }
            ServerMessage::MuteRequested { by_name } => {
                self.set_mic(false);
                view.notice.set(Some(Notice::MutedBy(by_name)));
            }
            ServerMessage::HandLowered { by_name } => {
                self.set_hand(false);
                view.notice.set(Some(Notice::HandLoweredBy(by_name)));
            }
            ServerMessage::Reacted { peer_id, reaction } => self.show_reaction(peer_id, reaction),
            ServerMessage::Removed => self.finish(EndReason::Removed),
            ServerMessage::MeetingEnded => self.finish(EndReason::Ended),
            ServerMessage::KnocksChanged => view.knocks_epoch.update(|e| *e += 1),
            ServerMessage::Pong => {}
            ServerMessage::Reconnect => {}
            ServerMessage::ChatAck {
                key,
                seq,
                sent_at_ms,
            } => self.on_chat_ack(&key, seq, sent_at_ms),
            ServerMessage::Chat { message } => self.on_chat(message, true),
            ServerMessage::ChatBatch {
                messages,
                older,
                more,
            } => self.on_chat_batch(messages, older, more),
            ServerMessage::Error {
                code,
                message,
                about,
            } => self.on_error(code, &message, about),
        }
    }

    pub(super) fn on_error(&self, code: ErrorCode, message: &str, about: Option<String>) {
        let view = self.view();
        match code {
            ErrorCode::RoomFull => {
                self.finish(EndReason::Full(view.max_participants.get_untracked()));
            }
            ErrorCode::ChatTooLong | ErrorCode::ChatEmpty | ErrorCode::ChatBadKey => {
                if let Some(key) = about {
                    self.chat_failed(&key, true);
                }
                view.chat_notice.set(Some(if code == ErrorCode::ChatEmpty {
                    ChatNotice::Empty
                } else {
                    ChatNotice::TooLong
                }));
            }
            ErrorCode::UnknownPeer if about.as_ref().is_some_and(|k| self.is_pending(k)) => {
                if let Some(key) = about {
                    self.chat_failed(&key, true);
                }
                view.chat_notice.set(Some(ChatNotice::RecipientGone));
            }
            ErrorCode::RateLimited | ErrorCode::Internal
                if about.as_ref().is_some_and(|k| self.is_pending(k)) =>
            {
                if code == ErrorCode::RateLimited {
                    view.chat_notice.set(Some(ChatNotice::RateLimited));
                }
                if let Some(key) = about {
                    self.chat_failed(&key, false);
                }
            }
            ErrorCode::MediaRefused
                if self.media_path() == MediaPath::Server && self.server_link_active() =>
            {
                // The media server did not take a description of ours
                // (most often an answer that came after it stopped waiting
                // for it): the two sides no longer agree on what the
                // connection carries, so it starts over.
                log(&format!(
                    "moim: the media server refused: {message}; connecting again"
                ));
                self.restart_server_link_soon();
            }
            _ => log(&format!("moim: server error {code:?}: {message}")),
        }
    }
}
