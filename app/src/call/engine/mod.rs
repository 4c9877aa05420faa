//! The call engine in the browser. One `Call` per room page: it opens the
//! camera and microphone, keeps the signaling WebSocket up (reconnecting
//! with backoff and resuming the same presence), and holds one
//! RTCPeerConnection per remote peer using the "perfect negotiation"
//! pattern, so either side may (re)negotiate at any time without glare.
//!
//! Everything the page shows goes into `CallView` signals; media streams
//! (which cannot live in signals) are in `streams`, looked up by peer id.

mod chat;
mod connection;
mod devices;
pub use devices::apply_speaker;
pub(crate) use links::rtc_configuration;
mod links;
mod quality;
mod server_link;

use super::decide;
use super::{
    merge_chat, Activity, CallView, ChatEntry, ChatNotice, ChatStatus, EndReason, FloatingReaction,
    LinkState, Notice, Phase, REACTION_SHOWN_MS,
};
use crate::ice::IceConfig;
use crate::media;
use crate::protocol::{
    close, ChatMessage, ClientMessage, ErrorCode, PeerId, Reaction, ServerMessage, Signal,
    PROTOCOL_VERSION,
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

impl Link {
    fn new(
        pc: RtcPeerConnection,
        polite: bool,
        stream: MediaStream,
        callbacks: Vec<Closure<dyn FnMut(JsValue)>>,
    ) -> Self {
        Self {
            pc,
            polite,
            making_offer: Cell::new(false),
            ignore_offer: Cell::new(false),
            sending: Cell::new(false),
            stream,
            meter: RefCell::new(None),
            restart_timer: RefCell::new(None),
            _callbacks: callbacks,
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.pc.set_onnegotiationneeded(None);
        self.pc.set_onicecandidate(None);
        self.pc.set_ontrack(None);
        self.pc.set_oniceconnectionstatechange(None);
        self.pc.set_onconnectionstatechange(None);
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

pub struct Inner {
    view: CallView,
    url: String,
    code: String,
    /// The signaling connection (`connection`).
    conn: connection::SocketState,
    me: RefCell<Option<PeerId>>,
    participant_id: RefCell<Option<String>>,
    /// The peer connections (`links`).
    mesh: links::Mesh,
    /// The connection to the media server (`server_link`).
    server: server_link::ServerMedia,
    /// Camera, microphone and screen (`devices`).
    local: devices::LocalMedia,
    streams: StoredValue<HashMap<PeerId, MediaStream>, LocalStorage>,
    /// Chat delivery (`chat`).
    chat: chat::ChatState,
    timers: RefCell<Vec<IntervalHandle>>,
    closed: Cell<bool>,
    reaction_count: Cell<u64>,
    /// Connection quality sampling (`quality`).
    quality: quality::QualityState,
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
            conn: connection::SocketState::new(now()),
            me: RefCell::new(None),
            participant_id: RefCell::new(None),
            mesh: links::Mesh::default(),
            server: server_link::ServerMedia::default(),
            local: devices::LocalMedia::new(outgoing),
            streams,
            chat: chat::ChatState::default(),
            timers: RefCell::new(Vec::new()),
            closed: Cell::new(false),
            reaction_count: Cell::new(0),
            quality: quality::QualityState::default(),
        });
        view.sounds.set(remembered_sounds());
        let call = Call(inner);
        let starting = call.clone();
        leptos::task::spawn_local(async move {
            starting.open_media().await;
            starting.connect();
            starting.start_timers();
            starting.start_quality_sampling();
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

    /// The call is over for this page.
    fn finish(&self, reason: EndReason) {
        if self.0.closed.replace(true) {
            return;
        }
        *self.0.conn.socket.borrow_mut() = None;
        self.drop_all_links();
        self.drop_server_link();
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

    /// A host calls on someone: their hand goes down.
    pub fn lower_hand(&self, peer: PeerId) {
        self.send(&ClientMessage::LowerHand { peer });
    }

    /// Sends a reaction; it floats once the server passed it on (so a
    /// refused one is not shown to me alone).
    pub fn react(&self, reaction: Reaction) {
        self.send(&ClientMessage::React { reaction });
    }

    fn show_reaction(&self, peer_id: PeerId, reaction: Reaction) {
        let view = self.view();
        let id = self.0.reaction_count.get() + 1;
        self.0.reaction_count.set(id);
        // My own comes back under my peer id; my tile is keyed "".
        let mine = self.0.me.borrow().as_ref() == Some(&peer_id);
        let peer_id = if mine { PeerId::from(LOCAL) } else { peer_id };
        view.reactions.update(|list| {
            list.push(FloatingReaction {
                id,
                peer_id,
                reaction,
            })
        });
        set_timeout(
            move || view.reactions.update(|list| list.retain(|r| r.id != id)),
            Duration::from_millis(REACTION_SHOWN_MS),
        );
    }

    pub fn remove(&self, peer: PeerId) {
        self.send(&ClientMessage::Remove { peer });
    }

    pub fn end_meeting(&self) {
        self.send(&ClientMessage::EndMeeting);
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
                    .conn
                    .socket
                    .borrow()
                    .as_ref()
                    .is_some_and(|s| s.ws.ready_state() == WebSocket::OPEN);
                if !open {
                    return;
                }
                if now() - call.0.conn.last_message_ms.get() > SILENCE_LIMIT_MS {
                    // Half-open connection: drop it and reconnect.
                    log("moim: signaling connection silent; reconnecting");
                    *call.0.conn.socket.borrow_mut() = None;
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
                    call.ask_for_cameras();
                }
            },
            Duration::from_millis(250),
        );
        let mut timers = self.0.timers.borrow_mut();
        timers.extend(heartbeat.ok());
        timers.extend(meters.ok());
    }

    /// Who speaks now: in a room through the media server, whom it names
    /// (it hears everyone's audio level); with direct media, this page's
    /// own level meters on each stream.
    pub(super) fn measure_speaking(&self) {
        let view = self.view();
        let speaking: std::collections::HashSet<PeerId> =
            if self.media_path() == crate::protocol::MediaPath::Server {
                self.0.server.speakers.borrow().iter().cloned().collect()
            } else {
                self.measure_direct_speaking()
            };
        if view.speaking.with_untracked(|s| *s != speaking) {
            view.speaking.set(speaking);
        }
    }

    fn measure_direct_speaking(&self) -> std::collections::HashSet<PeerId> {
        let view = self.view();
        let mut speaking = std::collections::HashSet::new();
        let local = view.local.get_untracked();
        if local.mic {
            if let Some(meter) = self.0.local.local_meter.borrow_mut().as_mut() {
                if meter.level() > SPEAKING_LEVEL {
                    if let Some(me) = self.0.me.borrow().clone() {
                        speaking.insert(me);
                    }
                }
            }
        }
        let peers = view.peers.get_untracked();
        for (id, link) in self.0.mesh.links.borrow().iter() {
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
        speaking
    }
}

/// How long a new peer connection may take before ICE is restarted.
const CONNECT_WATCHDOG: Duration = Duration::from_secs(10);

/// Above this (0-100) someone counts as speaking.
const SPEAKING_LEVEL: u32 = 12;

/// `setLocalDescription()` without arguments: the browser creates the
/// right offer or answer itself (web-sys only has the one-argument form).
async fn set_local_description(pc: &RtcPeerConnection) -> Result<JsValue, JsValue> {
    let method = js_sys::Reflect::get(pc, &"setLocalDescription".into())?;
    let method: js_sys::Function = method.dyn_into()?;
    let promise: js_sys::Promise = method.call0(pc)?.dyn_into()?;
    JsFuture::from(promise).await
}

const SOUNDS_KEY: &str = "moim.sounds";

/// Whether the person chose sounds for joins and knocks (off by default).
pub fn remembered_sounds() -> bool {
    stored_switch(SOUNDS_KEY).unwrap_or(false)
}

pub fn remember_sounds(on: bool) {
    store_switch(SOUNDS_KEY, on);
}

/// A short, soft sound, if the person chose sounds.
pub fn chime(view: CallView) {
    if view.sounds.get_untracked() {
        media::play_tone(660.0, 180);
    }
}

/// An on/off choice kept in this browser under `key`, if one was made.
pub fn stored_switch(key: &str) -> Option<bool> {
    let storage = window().local_storage().ok().flatten()?;
    match storage.get_item(key).ok().flatten()?.as_str() {
        "on" => Some(true),
        "off" => Some(false),
        _ => None,
    }
}

pub fn store_switch(key: &str, on: bool) {
    if let Ok(Some(storage)) = window().local_storage() {
        let _ = storage.set_item(key, if on { "on" } else { "off" });
    }
}

/// Starts every remote `<audio>` element again after a click, for browsers
/// that refused to play sound before the person interacted with the page.
pub fn resume_sound(view: CallView) {
    for audio in media::remote_audio() {
        media::play_quietly(&audio);
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
    if stream.is_some() && element.has_attribute("data-remote-audio") {
        if let Some(device) = media::remembered_speaker() {
            media::set_speaker(element, &device);
        }
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
