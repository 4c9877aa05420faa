//! The call engine in the browser. One `Call` per room page: it opens the
//! camera and microphone, keeps the signaling WebSocket up (reconnecting
//! with backoff and resuming the same presence), and holds one
//! RTCPeerConnection per remote peer using the "perfect negotiation"
//! pattern, so either side may (re)negotiate at any time without glare.
//!
//! Everything the page shows goes into `CallView` signals; media streams
//! (which cannot live in signals) are in `streams`, looked up by peer id.

use super::decide;
use super::{
    merge_chat, CallView, ChatEntry, ChatNotice, ChatStatus, EndReason, LinkState, Notice, Phase,
};
use crate::ice::IceConfig;
use crate::media;
use crate::protocol::{
    close, ChatMessage, ClientMessage, ErrorCode, PeerId, ServerMessage, Signal, PROTOCOL_VERSION,
};
use leptos::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::time::Duration;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    CloseEvent, MediaStream, MediaStreamTrack, MessageEvent, RtcIceConnectionState,
    RtcPeerConnection, RtcPeerConnectionIceEvent, RtcRtpSender, RtcSignalingState, RtcTrackEvent,
    WebSocket,
};

/// Keep-alive period of the signaling connection.
const PING_EVERY: Duration = Duration::from_secs(5);
/// No message at all for this long: the connection is dead, reconnect.
const SILENCE_LIMIT_MS: f64 = 12_000.0;
/// How long ICE may stay "disconnected" before it is restarted.
const DISCONNECTED_GRACE: Duration = Duration::from_secs(3);
fn now() -> f64 {
    js_sys::Date::now()
}

fn log(message: &str) {
    web_sys::console::log_1(&JsValue::from_str(message));
}

/// A remote peer and our connection to it.
struct Link {
    pc: RtcPeerConnection,
    /// The polite peer yields when both offer at once.
    polite: bool,
    making_offer: Cell<bool>,
    ignore_offer: Cell<bool>,
    /// Whether our tracks were added to this connection.
    sending: Cell<bool>,
    stream: MediaStream,
    meter: RefCell<Option<media::LevelMeter>>,
    restart_timer: RefCell<Option<TimeoutHandle>>,
    // Kept alive as long as the connection.
    _callbacks: Vec<Closure<dyn FnMut(JsValue)>>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.pc.set_onnegotiationneeded(None);
        self.pc.set_onicecandidate(None);
        self.pc.set_ontrack(None);
        self.pc.set_oniceconnectionstatechange(None);
        self.pc.close();
        if let Some(meter) = self.meter.borrow_mut().take() {
            meter.close();
        }
    }
}

struct Socket {
    ws: WebSocket,
    _callbacks: Vec<Closure<dyn FnMut(JsValue)>>,
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        self.ws.set_onerror(None);
        let _ = self.ws.close();
    }
}

struct PendingChat {
    key: String,
    text: String,
    to: Option<PeerId>,
    last_sent_ms: f64,
}

pub struct Inner {
    view: CallView,
    url: String,
    code: String,
    socket: RefCell<Option<Socket>>,
    /// Counts sockets, so events of an old one are ignored.
    generation: Cell<u32>,
    attempts: Cell<u32>,
    failures_before_open: Cell<u32>,
    last_message_ms: Cell<f64>,
    me: RefCell<Option<PeerId>>,
    participant_id: RefCell<Option<String>>,
    links: RefCell<HashMap<PeerId, Rc<Link>>>,
    ice: RefCell<Option<IceConfig>>,
    /// Fetches fresh TURN credentials before the current ones expire.
    ice_refresh: RefCell<Option<TimeoutHandle>>,
    camera: RefCell<Option<MediaStream>>,
    screen: RefCell<Option<MediaStreamTrack>>,
    /// What is sent to every peer: the microphone and the camera or screen.
    outgoing: MediaStream,
    local_meter: RefCell<Option<media::LevelMeter>>,
    streams: StoredValue<HashMap<PeerId, MediaStream>, LocalStorage>,
    chat_synced_to: Cell<i64>,
    chat_pending: RefCell<Vec<PendingChat>>,
    timers: RefCell<Vec<IntervalHandle>>,
    closed: Cell<bool>,
}

/// A handle to the running call.
#[derive(Clone)]
pub struct Call(Rc<Inner>);

/// Where the page finds media streams: the local one under "" and remote
/// ones under their peer id.
pub type Streams = StoredValue<HashMap<PeerId, MediaStream>, LocalStorage>;

pub const LOCAL: &str = "";

impl Call {
    /// Opens media and connects. `code` is the meeting code.
    pub fn start(view: CallView, code: String, streams: Streams) -> Option<Self> {
        let location = window().location();
        let scheme = if location.protocol().ok()? == "https:" {
            "wss"
        } else {
            "ws"
        };
        let url = format!("{scheme}://{}/m/{code}/ws", location.host().ok()?);
        let outgoing = MediaStream::new().ok()?;
        let inner = Rc::new(Inner {
            view,
            url,
            code,
            socket: RefCell::new(None),
            generation: Cell::new(0),
            attempts: Cell::new(0),
            failures_before_open: Cell::new(0),
            last_message_ms: Cell::new(now()),
            me: RefCell::new(None),
            participant_id: RefCell::new(None),
            links: RefCell::new(HashMap::new()),
            ice: RefCell::new(None),
            ice_refresh: RefCell::new(None),
            camera: RefCell::new(None),
            screen: RefCell::new(None),
            outgoing,
            local_meter: RefCell::new(None),
            streams,
            chat_synced_to: Cell::new(0),
            chat_pending: RefCell::new(Vec::new()),
            timers: RefCell::new(Vec::new()),
            closed: Cell::new(false),
        });
        let call = Call(inner);
        let starting = call.clone();
        leptos::task::spawn_local(async move {
            starting.open_media().await;
            starting.connect();
            starting.start_timers();
        });
        Some(call)
    }

    fn weak(&self) -> Weak<Inner> {
        Rc::downgrade(&self.0)
    }

    fn from_weak(weak: &Weak<Inner>) -> Option<Call> {
        weak.upgrade().map(Call)
    }

    fn view(&self) -> CallView {
        self.0.view
    }

    // ------------------------------------------------------------ media

    async fn open_media(&self) {
        let view = self.view();
        let wanted = view.local.get_untracked();
        // The devices chosen in the lobby; the defaults if they are gone.
        let (camera, microphone) = media::remembered_devices();
        let opened = match media::open_media(camera.as_deref(), microphone.as_deref()).await {
            Err(_) if camera.is_some() || microphone.is_some() => {
                media::open_media(None, None).await
            }
            other => other,
        };
        match opened {
            Ok(stream) => {
                media::set_enabled(&stream, "audio", wanted.mic);
                media::set_enabled(&stream, "video", wanted.cam);
                for track in stream.get_tracks().iter() {
                    if let Ok(track) = track.dyn_into::<MediaStreamTrack>() {
                        self.0.outgoing.add_track(&track);
                    }
                }
                *self.0.local_meter.borrow_mut() = media::LevelMeter::new(&stream);
                let has_audio = stream.get_audio_tracks().length() > 0;
                let has_video = stream.get_video_tracks().length() > 0;
                view.local.update(|m| {
                    m.mic &= has_audio;
                    m.cam &= has_video;
                });
                *self.0.camera.borrow_mut() = Some(stream);
            }
            Err(problem) => {
                let reason = match problem {
                    media::MediaProblem::Denied => "permission denied",
                    media::MediaProblem::NoDevice => "no camera or microphone found",
                    media::MediaProblem::Failed => "the device could not be started",
                };
                view.notice.set(Some(Notice::NoMedia(reason.to_string())));
                view.local.update(|m| {
                    m.mic = false;
                    m.cam = false;
                });
            }
        }
        // `Clone::clone`, not `MediaStream.clone()` (which copies the tracks).
        let outgoing = Clone::clone(&self.0.outgoing);
        self.0.streams.update_value(|s| {
            s.insert(LOCAL.to_string(), outgoing);
        });
        view.media_epoch.update(|e| *e += 1);
    }

    fn camera_track(&self, kind: &str) -> Option<MediaStreamTrack> {
        let camera = self.0.camera.borrow();
        let stream = camera.as_ref()?;
        let tracks = if kind == "video" {
            stream.get_video_tracks()
        } else {
            stream.get_audio_tracks()
        };
        tracks.get(0).dyn_into::<MediaStreamTrack>().ok()
    }

    pub fn set_mic(&self, on: bool) {
        if let Some(track) = self.camera_track("audio") {
            track.set_enabled(on);
        } else if on {
            return;
        }
        self.view().local.update(|m| m.mic = on);
        self.send_media();
    }

    pub fn set_camera(&self, on: bool) {
        if let Some(track) = self.camera_track("video") {
            track.set_enabled(on);
        } else if on {
            return;
        }
        self.view().local.update(|m| m.cam = on);
        self.send_media();
    }

    pub fn set_hand(&self, raised: bool) {
        self.view().local.update(|m| m.hand = raised);
        self.send_media();
    }

    fn send_media(&self) {
        let media = self.view().local.get_untracked();
        self.send(&ClientMessage::Media { media });
    }

    /// Shares the screen in place of the camera (same video sender, so no
    /// renegotiation where a camera was sent).
    pub fn share_screen(&self) {
        let call = self.clone();
        leptos::task::spawn_local(async move {
            let Some(track) = call.pick_screen().await else {
                call.view().notice.set(Some(Notice::ShareFailed));
                return;
            };
            let weak = call.weak();
            let ended = Closure::<dyn FnMut(JsValue)>::new(move |_| {
                if let Some(call) = Call::from_weak(&weak) {
                    call.stop_screen();
                }
            });
            track.set_onended(Some(ended.as_ref().unchecked_ref()));
            ended.forget();
            call.swap_video(Some(&track)).await;
            *call.0.screen.borrow_mut() = Some(track);
            call.view().local.update(|m| m.screen = true);
            call.send_media();
        });
    }

    async fn pick_screen(&self) -> Option<MediaStreamTrack> {
        let devices = window().navigator().media_devices().ok()?;
        let constraints = web_sys::DisplayMediaStreamConstraints::new();
        constraints.set_video(&JsValue::TRUE);
        let promise = devices
            .get_display_media_with_constraints(&constraints)
            .ok()?;
        let stream: MediaStream = JsFuture::from(promise).await.ok()?.dyn_into().ok()?;
        stream.get_video_tracks().get(0).dyn_into().ok()
    }

    pub fn stop_screen(&self) {
        let Some(screen) = self.0.screen.borrow_mut().take() else {
            return;
        };
        screen.set_onended(None);
        screen.stop();
        let call = self.clone();
        leptos::task::spawn_local(async move {
            let camera = call.camera_track("video");
            call.swap_video(camera.as_ref()).await;
            call.view().local.update(|m| m.screen = false);
            call.send_media();
        });
    }

    /// Puts `track` (or nothing) where the outgoing video was, on every
    /// connection and in the local preview.
    async fn swap_video(&self, track: Option<&MediaStreamTrack>) {
        let outgoing = &self.0.outgoing;
        for old in outgoing.get_video_tracks().iter() {
            if let Ok(old) = old.dyn_into::<MediaStreamTrack>() {
                outgoing.remove_track(&old);
            }
        }
        if let Some(track) = track {
            outgoing.add_track(track);
        }
        let links: Vec<Rc<Link>> = self.0.links.borrow().values().cloned().collect();
        for link in links {
            match video_sender(&link.pc) {
                Some(sender) => {
                    let _ = JsFuture::from(sender.replace_track(track)).await;
                }
                None => {
                    // No video was sent on this connection (joined without a
                    // camera): add it; negotiation follows by itself.
                    // (Links not sending yet pick the track up when they start.)
                    if let (Some(track), true) = (track, link.sending.get()) {
                        link.pc.add_track_0(track, outgoing);
                    }
                }
            }
        }
        self.view().media_epoch.update(|e| *e += 1);
    }

    // ------------------------------------------------------------ signaling

    fn connect(&self) {
        if self.0.closed.get() {
            return;
        }
        let generation = self.0.generation.get() + 1;
        self.0.generation.set(generation);
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
                if call.0.generation.get() == generation {
                    call.on_open();
                }
            }
        });
        let weak = self.weak();
        let on_message = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            let Some(call) = Call::from_weak(&weak) else {
                return;
            };
            if call.0.generation.get() != generation {
                return;
            }
            let Ok(event) = event.dyn_into::<MessageEvent>() else {
                return;
            };
            if let Some(text) = event.data().as_string() {
                call.0.last_message_ms.set(now());
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
            if call.0.generation.get() != generation {
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
        *self.0.socket.borrow_mut() = Some(Socket {
            ws,
            _callbacks: vec![on_open, on_message, on_close],
        });
    }

    fn on_open(&self) {
        self.0.last_message_ms.set(now());
        self.0.failures_before_open.set(0);
        let resume = self.0.me.borrow().clone();
        let media = self.view().local.get_untracked();
        self.send(&ClientMessage::Join {
            version: PROTOCOL_VERSION,
            resume,
            media,
        });
    }

    fn on_close(&self, code: u16) {
        *self.0.socket.borrow_mut() = None;
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
            self.0.attempts.set(0);
        }
        if refused_before_open {
            self.0
                .failures_before_open
                .set(self.0.failures_before_open.get() + 1);
        }
        self.schedule_reconnect();
    }

    fn schedule_reconnect(&self) {
        let attempt = self.0.attempts.get();
        self.0.attempts.set(attempt + 1);
        let delay = decide::reconnect_delay_ms(attempt, js_sys::Math::random());
        let weak = self.weak();
        set_timeout(
            move || {
                if let Some(call) = Call::from_weak(&weak) {
                    if decide::should_ask_the_door(call.0.failures_before_open.get()) {
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
    fn check_still_admitted(&self) {
        let call = self.clone();
        leptos::task::spawn_local(async move {
            match crate::lobby::door_state(call.0.code.clone()).await {
                Ok(door) if door.admission != Some(crate::lobby::Admission::Admitted) => {
                    call.finish(EndReason::Removed);
                }
                Err(crate::error::ApiError::Ended) => call.finish(EndReason::Ended),
                _ => {
                    call.0.failures_before_open.set(0);
                    call.connect();
                }
            }
        });
    }

    fn send(&self, message: &ClientMessage) -> bool {
        let socket = self.0.socket.borrow();
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

    fn on_message(&self, message: ServerMessage) {
        let view = self.view();
        match message {
            ServerMessage::Welcome {
                you,
                peers,
                resumed,
                ice,
                max_participants,
                chat_head,
                ..
            } => {
                self.0.attempts.set(0);
                let had_presence = self.0.me.borrow().is_some();
                if had_presence && !resumed {
                    // Our old presence was gone: everyone starts over with us.
                    self.drop_all_links();
                }
                *self.0.me.borrow_mut() = Some(you.peer_id.clone());
                *self.0.participant_id.borrow_mut() = Some(you.participant_id.clone());
                self.use_ice(ice, false);
                view.max_participants.set(max_participants);
                view.me.set(Some(you));
                // Reconcile: connect to new peers, forget vanished ones.
                let known: Vec<PeerId> = self.0.links.borrow().keys().cloned().collect();
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
            ServerMessage::PeerJoined { peer } => {
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
                view.peers.update(|list| {
                    if let Some(p) = list.iter_mut().find(|p| p.peer_id == peer.peer_id) {
                        *p = peer;
                    }
                });
            }
            ServerMessage::PeerLeft { peer_id, .. } => {
                self.drop_link(&peer_id);
                view.peers
                    .update(|list| list.retain(|p| p.peer_id != peer_id));
            }
            ServerMessage::Signal { from, signal } => self.on_signal(from, signal),
            ServerMessage::MuteRequested { by_name } => {
                self.set_mic(false);
                view.notice.set(Some(Notice::MutedBy(by_name)));
            }
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

    fn on_error(&self, code: ErrorCode, message: &str, about: Option<String>) {
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
            _ => log(&format!("moim: server error {code:?}: {message}")),
        }
    }

    /// The call is over for this page.
    fn finish(&self, reason: EndReason) {
        if self.0.closed.replace(true) {
            return;
        }
        *self.0.socket.borrow_mut() = None;
        self.drop_all_links();
        self.release_media();
        self.view().phase.set(Phase::Closed(reason));
    }

    /// Leaves on purpose: everyone sees it at once.
    pub fn leave(&self) {
        self.send(&ClientMessage::Leave);
        self.finish(EndReason::Left);
    }

    pub fn ask_to_mute(&self, peer: PeerId) {
        self.send(&ClientMessage::AskToMute { peer });
    }

    pub fn remove(&self, peer: PeerId) {
        self.send(&ClientMessage::Remove { peer });
    }

    pub fn end_meeting(&self) {
        self.send(&ClientMessage::EndMeeting);
    }

    fn release_media(&self) {
        if let Some(timer) = self.0.ice_refresh.borrow_mut().take() {
            timer.clear();
        }
        if let Some(stream) = self.0.camera.borrow_mut().take() {
            media::stop(&stream);
        }
        if let Some(track) = self.0.screen.borrow_mut().take() {
            track.set_onended(None);
            track.stop();
        }
        if let Some(meter) = self.0.local_meter.borrow_mut().take() {
            meter.close();
        }
        for handle in self.0.timers.borrow_mut().drain(..) {
            handle.clear();
        }
    }

    fn start_timers(&self) {
        let weak = self.weak();
        let heartbeat = set_interval_with_handle(
            move || {
                let Some(call) = Call::from_weak(&weak) else {
                    return;
                };
                let open = call
                    .0
                    .socket
                    .borrow()
                    .as_ref()
                    .is_some_and(|s| s.ws.ready_state() == WebSocket::OPEN);
                if !open {
                    return;
                }
                if now() - call.0.last_message_ms.get() > SILENCE_LIMIT_MS {
                    // Half-open connection: drop it and reconnect.
                    log("moim: signaling connection silent; reconnecting");
                    *call.0.socket.borrow_mut() = None;
                    call.on_close(close::ABNORMAL);
                    return;
                }
                call.send(&ClientMessage::Ping);
                call.resend_chat(true);
            },
            PING_EVERY,
        );
        let weak = self.weak();
        let meters = set_interval_with_handle(
            move || {
                if let Some(call) = Call::from_weak(&weak) {
                    call.measure_speaking();
                }
            },
            Duration::from_millis(250),
        );
        let mut timers = self.0.timers.borrow_mut();
        timers.extend(heartbeat.ok());
        timers.extend(meters.ok());
    }

    fn measure_speaking(&self) {
        let view = self.view();
        let mut speaking = std::collections::HashSet::new();
        let local = view.local.get_untracked();
        if local.mic {
            if let Some(meter) = self.0.local_meter.borrow_mut().as_mut() {
                if meter.level() > SPEAKING_LEVEL {
                    if let Some(me) = self.0.me.borrow().clone() {
                        speaking.insert(me);
                    }
                }
            }
        }
        let peers = view.peers.get_untracked();
        for (id, link) in self.0.links.borrow().iter() {
            let mic_on = peers.iter().any(|p| &p.peer_id == id && p.media.mic);
            if !mic_on {
                continue;
            }
            let mut meter = link.meter.borrow_mut();
            if meter.is_none() && link.stream.get_audio_tracks().length() > 0 {
                *meter = media::LevelMeter::new(&link.stream);
            }
            if let Some(meter) = meter.as_mut() {
                if meter.level() > SPEAKING_LEVEL {
                    speaking.insert(id.clone());
                }
            }
        }
        if view.speaking.with_untracked(|s| *s != speaking) {
            view.speaking.set(speaking);
        }
    }

    /// Takes new ICE servers for new and existing connections. With
    /// `restart`, existing connections gather again, so TURN allocations
    /// move to the new credentials before the old ones expire.
    fn use_ice(&self, ice: IceConfig, restart: bool) {
        let expires = ice.expires_at_ms;
        let config = rtc_configuration(Some(&ice));
        *self.0.ice.borrow_mut() = Some(ice);
        for link in self.0.links.borrow().values() {
            let _ = link.pc.set_configuration_with_configuration(&config);
            if restart {
                restart_ice(&link.pc);
            }
        }
        if let Some(old) = self.0.ice_refresh.borrow_mut().take() {
            old.clear();
        }
        let Some(expires) = expires else {
            return;
        };
        let wait = crate::ice::refresh_in_ms(expires, now() as i64);
        let weak = self.weak();
        let timer = set_timeout_with_handle(
            move || {
                let Some(call) = Call::from_weak(&weak) else {
                    return;
                };
                leptos::task::spawn_local(async move {
                    match crate::ice::ice_servers(call.0.code.clone()).await {
                        Ok(ice) => call.use_ice(ice, true),
                        Err(_) => log("moim: could not refresh TURN credentials"),
                    }
                });
            },
            Duration::from_millis(wait.max(0) as u64),
        );
        *self.0.ice_refresh.borrow_mut() = timer.ok();
    }

    // ------------------------------------------------------------ peers

    /// The connection to `peer_id`, made if missing. The side that
    /// `initiates` adds its tracks now and so sends the first offer; the
    /// other adds them while answering that offer. Both sides offering at
    /// once is handled by perfect negotiation, but Chromium sometimes never
    /// gathers candidates after rolling back a brand-new connection's
    /// offer, so first contact avoids it.
    fn ensure_link(&self, peer_id: &str, initiate: bool) -> Option<Rc<Link>> {
        if let Some(link) = self.0.links.borrow().get(peer_id) {
            return Some(link.clone());
        }
        let me = self.0.me.borrow().clone()?;
        let link = Rc::new(self.new_link(peer_id, &me)?);
        self.0
            .links
            .borrow_mut()
            .insert(peer_id.to_string(), link.clone());
        let stream = Clone::clone(&link.stream);
        self.0.streams.update_value(|s| {
            s.insert(peer_id.to_string(), stream);
        });
        self.view().links.update(|l| {
            l.insert(peer_id.to_string(), LinkState::Connecting);
        });
        if initiate {
            // Adding tracks fires `negotiationneeded`: the offer follows.
            self.start_sending(&link);
        }
        // Still not connected after a while (lost candidates, a stuck
        // negotiation): restart ICE, which renegotiates from scratch.
        let weak = self.weak();
        let id = peer_id.to_string();
        set_timeout(
            move || {
                let Some(link) = Call::from_weak(&weak).and_then(|c| c.link(&id)) else {
                    return;
                };
                if matches!(
                    link.pc.ice_connection_state(),
                    RtcIceConnectionState::New | RtcIceConnectionState::Checking
                ) {
                    log("moim: peer connection not up after 10 s; restarting ICE");
                    if !link.sending.get() {
                        call_start_sending(&weak, &link);
                    }
                    restart_ice(&link.pc);
                }
            },
            CONNECT_WATCHDOG,
        );
        Some(link)
    }

    fn start_sending(&self, link: &Link) {
        if link.sending.replace(true) {
            return;
        }
        for track in self.0.outgoing.get_tracks().iter() {
            if let Ok(track) = track.dyn_into::<MediaStreamTrack>() {
                link.pc.add_track_0(&track, &self.0.outgoing);
            }
        }
    }

    fn new_link(&self, peer_id: &str, me: &str) -> Option<Link> {
        let config = rtc_configuration(self.0.ice.borrow().as_ref());
        let pc = RtcPeerConnection::new_with_configuration(&config).ok()?;
        let stream = MediaStream::new().ok()?;
        let mut callbacks = Vec::new();

        let weak = self.weak();
        let id = peer_id.to_string();
        let on_negotiation = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            if let Some(call) = Call::from_weak(&weak) {
                let id = id.clone();
                leptos::task::spawn_local(async move { call.negotiate(&id).await });
            }
        });
        pc.set_onnegotiationneeded(Some(on_negotiation.as_ref().unchecked_ref()));
        callbacks.push(on_negotiation);

        let weak = self.weak();
        let id = peer_id.to_string();
        let on_candidate = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            let Some(call) = Call::from_weak(&weak) else {
                return;
            };
            let Ok(event) = event.dyn_into::<RtcPeerConnectionIceEvent>() else {
                return;
            };
            // `null` marks the end of gathering; nothing to relay.
            if let Some(candidate) = event.candidate() {
                call.send(&ClientMessage::Signal {
                    to: id.clone(),
                    signal: Signal::Candidate {
                        candidate: candidate.candidate(),
                        sdp_mid: candidate.sdp_mid(),
                        sdp_m_line_index: candidate.sdp_m_line_index(),
                    },
                });
            }
        });
        pc.set_onicecandidate(Some(on_candidate.as_ref().unchecked_ref()));
        callbacks.push(on_candidate);

        let weak = self.weak();
        let remote = Clone::clone(&stream);
        let on_track = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            let Ok(event) = event.dyn_into::<RtcTrackEvent>() else {
                return;
            };
            let track = event.track();
            remote.add_track(&track);
            if let Some(call) = Call::from_weak(&weak) {
                call.view().media_epoch.update(|e| *e += 1);
            }
        });
        pc.set_ontrack(Some(on_track.as_ref().unchecked_ref()));
        callbacks.push(on_track);

        let weak = self.weak();
        let id = peer_id.to_string();
        let on_ice_state = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            if let Some(call) = Call::from_weak(&weak) {
                call.on_ice_state(&id);
            }
        });
        pc.set_oniceconnectionstatechange(Some(on_ice_state.as_ref().unchecked_ref()));
        callbacks.push(on_ice_state);

        Some(Link {
            pc,
            // Any fixed rule both sides agree on will do.
            polite: decide::is_polite(me, peer_id),
            making_offer: Cell::new(false),
            ignore_offer: Cell::new(false),
            sending: Cell::new(false),
            stream,
            meter: RefCell::new(None),
            restart_timer: RefCell::new(None),
            _callbacks: callbacks,
        })
    }

    fn link(&self, peer_id: &str) -> Option<Rc<Link>> {
        self.0.links.borrow().get(peer_id).cloned()
    }

    fn drop_link(&self, peer_id: &str) {
        let removed = self.0.links.borrow_mut().remove(peer_id);
        if removed.is_some() {
            self.0.streams.update_value(|s| {
                s.remove(peer_id);
            });
            self.view().links.update(|l| {
                l.remove(peer_id);
            });
        }
    }

    fn drop_all_links(&self) {
        let ids: Vec<PeerId> = self.0.links.borrow().keys().cloned().collect();
        for id in ids {
            self.drop_link(&id);
        }
    }

    /// Perfect negotiation, offering side.
    async fn negotiate(&self, peer_id: &str) {
        let Some(link) = self.link(peer_id) else {
            return;
        };
        link.making_offer.set(true);
        let result = set_local_description(&link.pc).await;
        if result.is_ok() {
            if let Some(signal) = local_description(&link.pc) {
                self.send(&ClientMessage::Signal {
                    to: peer_id.to_string(),
                    signal,
                });
            }
        } else {
            log("moim: could not create an offer");
        }
        link.making_offer.set(false);
    }

    /// Perfect negotiation, receiving side.
    fn on_signal(&self, from: PeerId, signal: Signal) {
        let Some(link) = self.ensure_link(&from, false) else {
            return;
        };
        let call = self.clone();
        match signal {
            Signal::Description { sdp_type, sdp } => {
                let is_offer = sdp_type == "offer";
                link.ignore_offer.set(decide::ignores_offer(
                    link.polite,
                    is_offer,
                    link.making_offer.get(),
                    link.pc.signaling_state() == RtcSignalingState::Stable,
                ));
                if link.ignore_offer.get() {
                    return;
                }
                // Called now, in arrival order: the connection's own
                // operations chain keeps later candidates behind it.
                let remote = description_init(&sdp_type, &sdp);
                let applying = JsFuture::from(link.pc.set_remote_description(&remote));
                leptos::task::spawn_local(async move {
                    if applying.await.is_err() {
                        log("moim: remote description refused");
                        return;
                    }
                    if is_offer {
                        // Added now, our tracks take the transceivers the
                        // offer made, and the answer carries them.
                        call.start_sending(&link);
                        if set_local_description(&link.pc).await.is_ok() {
                            if let Some(answer) = local_description(&link.pc) {
                                call.send(&ClientMessage::Signal {
                                    to: from,
                                    signal: answer,
                                });
                            }
                        }
                    }
                });
            }
            Signal::Candidate {
                candidate,
                sdp_mid,
                sdp_m_line_index,
            } => {
                let init = web_sys::RtcIceCandidateInit::new(&candidate);
                init.set_sdp_mid(sdp_mid.as_deref());
                init.set_sdp_m_line_index(sdp_m_line_index);
                let adding = JsFuture::from(
                    link.pc
                        .add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(&init)),
                );
                leptos::task::spawn_local(async move {
                    if adding.await.is_err() && !link.ignore_offer.get() {
                        log("moim: ICE candidate refused");
                    }
                });
            }
        }
    }

    fn on_ice_state(&self, peer_id: &str) {
        let Some(link) = self.link(peer_id) else {
            return;
        };
        let state = link.pc.ice_connection_state();
        let shown = match state {
            RtcIceConnectionState::Connected | RtcIceConnectionState::Completed => {
                if let Some(timer) = link.restart_timer.borrow_mut().take() {
                    timer.clear();
                }
                LinkState::Connected
            }
            RtcIceConnectionState::Failed => {
                restart_ice(&link.pc);
                LinkState::Reconnecting
            }
            RtcIceConnectionState::Disconnected => {
                // Often recovers by itself; restart if it does not.
                let weak = self.weak();
                let id = peer_id.to_string();
                let timer = set_timeout_with_handle(
                    move || {
                        if let Some(link) = Call::from_weak(&weak).and_then(|c| c.link(&id)) {
                            if link.pc.ice_connection_state() == RtcIceConnectionState::Disconnected
                            {
                                restart_ice(&link.pc);
                            }
                        }
                    },
                    DISCONNECTED_GRACE,
                );
                *link.restart_timer.borrow_mut() = timer.ok();
                LinkState::Reconnecting
            }
            _ => return,
        };
        self.view().links.update(|l| {
            l.insert(peer_id.to_string(), shown);
        });
    }

    // ------------------------------------------------------------ chat

    fn my_participant(&self) -> String {
        self.0.participant_id.borrow().clone().unwrap_or_default()
    }

    fn after_welcome_chat(&self, resumed_page: bool, head: i64) {
        let synced = self.0.chat_synced_to.get();
        if !resumed_page && synced == 0 && head > crate::protocol::CHAT_PAGE as i64 {
            // A late joiner: the newest page now, older on request.
            self.send(&ClientMessage::ChatHistory { before: head + 1 });
            self.0.chat_synced_to.set(head);
            self.send(&ClientMessage::ChatSync { after: head });
        } else {
            self.send(&ClientMessage::ChatSync { after: synced });
        }
        // Whatever was not confirmed goes again, with the same keys.
        self.resend_chat(false);
    }

    pub fn send_chat(&self, text: String, to: Option<PeerId>) {
        let view = self.view();
        if text.trim().is_empty() {
            view.chat_notice.set(Some(ChatNotice::Empty));
            return;
        }
        if text.chars().count() > crate::protocol::CHAT_MAX_CHARS {
            view.chat_notice.set(Some(ChatNotice::TooLong));
            return;
        }
        view.chat_notice.set(None);
        let key = new_key();
        let to_name = to.as_ref().and_then(|id| {
            view.peers.with_untracked(|peers| {
                peers
                    .iter()
                    .find(|p| &p.peer_id == id)
                    .map(|p| p.display_name.clone())
            })
        });
        let me = view.me.get_untracked();
        view.chat.update(|list| {
            merge_chat(
                list,
                ChatEntry {
                    key: key.clone(),
                    seq: None,
                    sender_id: self.my_participant(),
                    sender_name: me.map(|m| m.display_name).unwrap_or_default(),
                    text: text.clone(),
                    sent_at_ms: None,
                    to_id: None,
                    to_name,
                    mine: true,
                    status: ChatStatus::Pending,
                },
            )
        });
        self.0.chat_pending.borrow_mut().push(PendingChat {
            key: key.clone(),
            text: text.clone(),
            to: to.clone(),
            last_sent_ms: now(),
        });
        self.transmit_chat(&key, &text, to);
    }

    fn transmit_chat(&self, key: &str, text: &str, to: Option<PeerId>) {
        let sent = self.send(&ClientMessage::ChatSend {
            key: key.to_string(),
            text: text.to_string(),
            to,
        });
        if let Some(p) = self
            .0
            .chat_pending
            .borrow_mut()
            .iter_mut()
            .find(|p| p.key == key)
        {
            p.last_sent_ms = now();
        }
        if !sent {
            self.set_chat_status(key, ChatStatus::Retrying);
        }
    }

    /// Sends unconfirmed messages again (same keys): all of them, or with
    /// `stale_only` those unconfirmed for `decide::CHAT_RESEND_MS`, shown as
    /// retrying.
    fn resend_chat(&self, stale_only: bool) {
        let pending: Vec<(String, String, Option<PeerId>)> = self
            .0
            .chat_pending
            .borrow()
            .iter()
            .filter(|p| decide::resend_chat_now(!stale_only, p.last_sent_ms, now()))
            .map(|p| (p.key.clone(), p.text.clone(), p.to.clone()))
            .collect();
        for (key, text, to) in pending {
            if stale_only {
                self.set_chat_status(&key, ChatStatus::Retrying);
            }
            self.transmit_chat(&key, &text, to);
        }
    }

    fn is_pending(&self, key: &str) -> bool {
        self.0.chat_pending.borrow().iter().any(|p| p.key == key)
    }

    fn set_chat_status(&self, key: &str, status: ChatStatus) {
        self.view().chat.update(|list| {
            if let Some(e) = list
                .iter_mut()
                .find(|e| e.mine && e.seq.is_none() && e.key == key)
            {
                e.status = status;
            }
        });
    }

    fn chat_failed(&self, key: &str, final_: bool) {
        if final_ {
            self.0.chat_pending.borrow_mut().retain(|p| p.key != key);
            self.set_chat_status(key, ChatStatus::Failed);
        } else {
            self.set_chat_status(key, ChatStatus::Retrying);
        }
    }

    fn on_chat_ack(&self, key: &str, seq: i64, sent_at_ms: i64) {
        self.0.chat_pending.borrow_mut().retain(|p| p.key != key);
        self.view().chat.update(|list| {
            if let Some(at) = list
                .iter()
                .position(|e| e.mine && e.seq.is_none() && e.key == key)
            {
                let mut entry = list.remove(at);
                entry.seq = Some(seq);
                entry.sent_at_ms = Some(sent_at_ms);
                entry.status = ChatStatus::Sent;
                merge_chat(list, entry);
            }
        });
    }

    fn entry_of(&self, message: ChatMessage) -> ChatEntry {
        let mine = message.sender_id == self.my_participant();
        ChatEntry {
            key: message.key,
            seq: Some(message.seq),
            sender_id: message.sender_id,
            sender_name: message.sender_name,
            text: message.text,
            sent_at_ms: Some(message.sent_at_ms),
            to_id: message.to_id,
            to_name: message.to_name,
            mine,
            status: ChatStatus::Sent,
        }
    }

    fn on_chat(&self, message: ChatMessage, live: bool) {
        let view = self.view();
        let seq = message.seq;
        let synced = self.0.chat_synced_to.get();
        let from_other = message.sender_id != self.my_participant();
        let entry = self.entry_of(message);
        let is_new = view
            .chat
            .with_untracked(|list| !list.iter().any(|e| e.seq == Some(seq)));
        view.chat.update(|list| merge_chat(list, entry));
        if live && is_new && from_other && !view.chat_open.get_untracked() {
            view.chat_unread.update(|n| *n += 1);
        }
        if seq == synced + 1 {
            self.0.chat_synced_to.set(seq);
        } else if seq > synced + 1 {
            // Something in between never arrived (or is private to
            // others): the database fills the gap.
            self.send(&ClientMessage::ChatSync { after: synced });
        }
    }

    fn on_chat_batch(&self, messages: Vec<ChatMessage>, older: bool, more: bool) {
        let view = self.view();
        let newest = messages.iter().map(|m| m.seq).max();
        let entries: Vec<ChatEntry> = messages.into_iter().map(|m| self.entry_of(m)).collect();
        view.chat.update(|list| {
            for entry in entries {
                merge_chat(list, entry);
            }
        });
        if older {
            view.chat_older.set(more);
            return;
        }
        if let Some(newest) = newest {
            if newest > self.0.chat_synced_to.get() {
                self.0.chat_synced_to.set(newest);
            }
        }
        if more {
            let after = self.0.chat_synced_to.get();
            self.send(&ClientMessage::ChatSync { after });
        }
        if view
            .chat
            .with_untracked(|list| list.first().and_then(|e| e.seq))
            .unwrap_or(1)
            > 1
        {
            view.chat_older.set(true);
        }
    }

    pub fn load_older_chat(&self) {
        let before = self
            .view()
            .chat
            .with_untracked(|list| list.iter().filter_map(|e| e.seq).min())
            .unwrap_or(i64::MAX);
        self.send(&ClientMessage::ChatHistory { before });
    }
}

fn call_start_sending(weak: &Weak<Inner>, link: &Link) {
    if let Some(call) = Call::from_weak(weak) {
        call.start_sending(link);
    }
}

/// How long a new peer connection may take before ICE is restarted.
const CONNECT_WATCHDOG: Duration = Duration::from_secs(10);

/// Above this (0-100) someone counts as speaking.
const SPEAKING_LEVEL: u32 = 12;

/// A random idempotency key for a chat message.
fn new_key() -> String {
    let mut bytes = [0u8; 16];
    let filled = window()
        .crypto()
        .ok()
        .and_then(|c| c.get_random_values_with_u8_array(&mut bytes).ok())
        .is_some();
    if !filled {
        for b in bytes.iter_mut() {
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn video_sender(pc: &RtcPeerConnection) -> Option<RtcRtpSender> {
    pc.get_senders().iter().find_map(|sender| {
        let sender = sender.dyn_into::<RtcRtpSender>().ok()?;
        let is_video = sender.track().map(|t| t.kind() == "video").unwrap_or(false);
        is_video.then_some(sender)
    })
}

fn rtc_configuration(ice: Option<&IceConfig>) -> web_sys::RtcConfiguration {
    let mut servers = Vec::new();
    let mut relay_only = false;
    if let Some(ice) = ice {
        relay_only = ice.relay_only;
        for server in &ice.ice_servers {
            let mut entry = serde_json::json!({ "urls": server.urls });
            if let (Some(user), Some(credential)) = (&server.username, &server.credential) {
                entry["username"] = user.clone().into();
                entry["credential"] = credential.clone().into();
            }
            servers.push(entry);
        }
    }
    let config = serde_json::json!({
        "iceServers": servers,
        "iceTransportPolicy": if relay_only { "relay" } else { "all" },
    });
    js_sys::JSON::parse(&config.to_string())
        .unwrap_or_else(|_| js_sys::Object::new().into())
        .unchecked_into()
}

fn description_init(sdp_type: &str, sdp: &str) -> web_sys::RtcSessionDescriptionInit {
    let object = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&object, &"type".into(), &sdp_type.into());
    let _ = js_sys::Reflect::set(&object, &"sdp".into(), &sdp.into());
    object.unchecked_into()
}

/// `setLocalDescription()` without arguments: the browser creates the
/// right offer or answer itself (web-sys only has the one-argument form).
async fn set_local_description(pc: &RtcPeerConnection) -> Result<JsValue, JsValue> {
    let method = js_sys::Reflect::get(pc, &"setLocalDescription".into())?;
    let method: js_sys::Function = method.dyn_into()?;
    let promise: js_sys::Promise = method.call0(pc)?.dyn_into()?;
    JsFuture::from(promise).await
}

fn local_description(pc: &RtcPeerConnection) -> Option<Signal> {
    let description = pc.local_description()?;
    let sdp_type = js_sys::Reflect::get(&description, &"type".into())
        .ok()?
        .as_string()?;
    Some(Signal::Description {
        sdp_type,
        sdp: description.sdp(),
    })
}

fn restart_ice(pc: &RtcPeerConnection) {
    if let Ok(method) = js_sys::Reflect::get(pc, &"restartIce".into()) {
        if let Ok(method) = method.dyn_into::<js_sys::Function>() {
            let _ = method.call0(pc);
        }
    }
}

/// Starts every remote `<audio>` element again after a click, for browsers
/// that refused to play sound before the person interacted with the page.
pub fn resume_sound(view: CallView) {
    let Some(document) = window().document() else {
        return;
    };
    if let Ok(list) = document.query_selector_all("audio[data-remote-audio]") {
        for i in 0..list.length() {
            if let Some(audio) = list
                .item(i)
                .and_then(|n| n.dyn_into::<web_sys::HtmlMediaElement>().ok())
            {
                crate::media::play_quietly(&audio);
            }
        }
    }
    view.needs_sound.set(false);
}

/// Binds a stream to a media element and starts it; reports a refused
/// autoplay (sound needs a click first).
pub fn attach(element: &web_sys::HtmlMediaElement, stream: Option<&MediaStream>, view: CallView) {
    let current = element.src_object();
    let same = match (&current, stream) {
        (Some(a), Some(b)) => a.id() == b.id(),
        (None, None) => true,
        _ => false,
    };
    if !same {
        element.set_src_object(stream);
    }
    if stream.is_some() {
        if let Ok(promise) = element.play() {
            let is_audio = element.has_attribute("data-remote-audio");
            leptos::task::spawn_local(async move {
                if JsFuture::from(promise).await.is_err() && is_audio {
                    view.needs_sound.set(true);
                }
            });
        }
    }
}
