//! The connection to the built-in media server, in rooms whose media path
//! is `server`: one RTCPeerConnection for the whole call. The page
//! publishes its microphone and camera on it once, and the server adds a
//! track for everyone else's (offering again whenever they change); the
//! page is the polite side and only ever offers at the start.
//!
//! A forwarded stream is named after its sender's media client id, which
//! both sides derive from the peer id: that is how a track finds its tile.

use super::links::{description_init, local_description, rtc_configuration};
use super::*;
use crate::protocol::media_server::{media_client_id, publisher_of_stream, TileHeight};
use crate::protocol::{MediaPath, PeerInfo};
use web_sys::{RtcPeerConnectionState, RtcRtpTransceiverDirection, RtcRtpTransceiverInit};

/// The server link and what arrived on it.
#[derive(Default)]
pub(super) struct ServerMedia {
    pub(super) link: RefCell<Option<Rc<Link>>>,
    /// The sender of this page's video (camera or screen), for swaps.
    pub(super) video_sender: RefCell<Option<RtcRtpSender>>,
    /// Every track received, with its sender's media client id.
    tracks: RefCell<Vec<(u64, MediaStreamTrack)>>,
    /// Who speaks, as the media server last said (it reads everyone's
    /// audio level, this page included).
    pub(super) speakers: RefCell<Vec<PeerId>>,
    /// The cameras this page last asked the media server for whatever the
    /// last-N order (`None`: not asked on this connection yet).
    watching: RefCell<Option<Vec<PeerId>>>,
    /// The peers whose tile shows a stream from the media server (the
    /// others, while the room moves, still show their direct link's).
    shown: RefCell<std::collections::HashSet<PeerId>>,
    /// A restart of the connection is waiting.
    restarting: Cell<bool>,
    /// Restarts since the connection last came up: each waits twice as
    /// long as the one before (up to `RESTART_DELAY_MAX`), so a server
    /// that keeps refusing is not hammered.
    restarts: Cell<u32>,
    /// Received video tracks (by id) known to have decoded a frame: a tile
    /// changes over to a new stream only then, so it never goes black.
    decoded: RefCell<std::collections::HashSet<String>>,
    /// Looks for decoded frames while the room moves.
    switch_timer: RefCell<Option<IntervalHandle>>,
    /// When the grace of the last move ends (ms, `now()`): until then the
    /// old path stays up for the others' sake.
    switch_until: Cell<f64>,
    /// How tall each tile was when the media server was last told (see
    /// `ask_for_cameras`).
    heights: RefCell<Vec<TileHeight>>,
    /// Looks at the tiles' sizes every moment while connected.
    heights_timer: RefCell<Option<IntervalHandle>>,
}

/// The simulcast layers a camera is published in on the media-server
/// connection, smallest first (the server takes them in this order): a
/// quarter, half and full size, fewer for a small camera (see
/// `set_layers`). The smaller ones carry only what a grid tile needs. Bit
/// rates are ceilings.
const CAMERA_LAYERS: [(&str, f64, u32); 3] = [
    ("q", 4.0, 150_000),
    ("h", 2.0, 500_000),
    ("f", 1.0, 1_500_000),
];

/// A shared screen goes as one full-size layer (text must stay sharp),
/// with this much room.
const SCREEN_BITRATE: u32 = 2_500_000;

/// How often the tiles' sizes are looked at for the media server's
/// choice of layers.
const HEIGHTS_POLL: Duration = Duration::from_secs(1);

/// Tile heights are told in steps of this many device pixels, so a tile
/// that grows by a pixel sends nothing.
const HEIGHT_STEP: u16 = 90;

/// How often a moving room looks for the new path's first frames.
const SWITCH_POLL: Duration = Duration::from_millis(200);

/// How long a broken media-server connection waits before starting over.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// The longest wait before starting over again.
const RESTART_DELAY_MAX: Duration = Duration::from_secs(16);

/// How long a new media-server connection may take to come up (ICE and
/// DTLS) before it starts over. A lost handshake flight on a starved
/// machine, or an offer of the server's answered after it gave up waiting,
/// can leave a connection that never carries media; browsers take far
/// longer than this to call it failed.
const CONNECT_LIMIT: Duration = Duration::from_secs(15);

/// How long a move between direct and server media keeps both
/// connections. Tiles change over as soon as the new path decodes, but the
/// old connection stays this long whatever happens here: the others may
/// still be showing this page's video through it (their new path can be
/// seconds behind ours), so closing it at our own change-over would stall
/// their tile of us.
const SWITCH_GRACE: Duration = Duration::from_secs(10);

impl Call {
    pub(super) fn media_path(&self) -> MediaPath {
        self.view().media_path.get_untracked()
    }

    /// Connects to the media server afresh (at every welcome: the server
    /// closed the old media connection with the old call connection).
    pub(super) fn start_server_link(&self) {
        self.drop_server_link();
        let Some(link) = self.new_server_link() else {
            log("moim: could not open the connection to the media server");
            return;
        };
        let link = Rc::new(link);
        *self.0.server.link.borrow_mut() = Some(link.clone());
        // While direct links still show everyone, their state stands.
        if self.0.mesh.links.borrow().is_empty() {
            self.show_server_state(LinkState::Connecting);
        }
        // Both kinds are published from the start, so the page never has
        // to offer again (a camera turned on later takes the same sender).
        let outgoing = &self.0.local.outgoing;
        for kind in ["audio", "video"] {
            let init = RtcRtpTransceiverInit::new();
            init.set_direction(RtcRtpTransceiverDirection::Sendonly);
            init.set_streams(&js_sys::Array::of1(outgoing));
            let track = outgoing
                .get_tracks()
                .iter()
                .filter_map(|t| t.dyn_into::<MediaStreamTrack>().ok())
                .find(|t| t.kind() == kind);
            if kind == "video" {
                init.set_send_encodings(&camera_layers());
            }
            let transceiver = match &track {
                Some(track) => link
                    .pc
                    .add_transceiver_with_media_stream_track_and_init(track, &init),
                None => link.pc.add_transceiver_with_str_and_init(kind, &init),
            };
            if kind == "video" {
                let sender = transceiver.sender();
                let screen = self.0.local.screen.borrow().is_some();
                leptos::task::spawn_local(set_layers(Clone::clone(&sender), screen));
                *self.0.server.video_sender.borrow_mut() = Some(sender);
            }
        }
        link.sending.set(true);
        self.watch_server_link_come_up(&link);
        self.poll_tile_heights();
    }

    /// Tells the media server every moment how tall each tile is, when
    /// that changed (see `ask_for_cameras`).
    fn poll_tile_heights(&self) {
        self.repeat(&self.0.server.heights_timer, HEIGHTS_POLL, |call| {
            call.ask_for_cameras()
        });
    }

    /// Runs `tick` every `period` while the call lives, in place of the
    /// timer `slot` held.
    fn repeat(
        &self,
        slot: &RefCell<Option<IntervalHandle>>,
        period: Duration,
        tick: impl Fn(Call) + 'static,
    ) {
        if let Some(old) = slot.borrow_mut().take() {
            old.clear();
        }
        let weak = self.weak();
        let timer = set_interval_with_handle(
            move || {
                if let Some(call) = Call::from_weak(&weak) {
                    tick(call);
                }
            },
            period,
        );
        *slot.borrow_mut() = timer.ok();
    }

    /// Starts `link` over if it has not come up within `CONNECT_LIMIT`.
    fn watch_server_link_come_up(&self, link: &Rc<Link>) {
        let weak = self.weak();
        let watched = Rc::downgrade(link);
        // No handle kept: a replaced connection's timer finds it gone.
        set_timeout(
            move || {
                // Replaced or closed since: nothing to watch.
                let (Some(call), Some(link)) = (Call::from_weak(&weak), watched.upgrade()) else {
                    return;
                };
                let current = call.is_current_server_link(&link);
                let coming_up = matches!(
                    link.pc.connection_state(),
                    RtcPeerConnectionState::New | RtcPeerConnectionState::Connecting
                );
                if current && coming_up {
                    log("moim: the media server connection did not come up; connecting again");
                    call.restart_server_link_soon();
                }
            },
            CONNECT_LIMIT,
        );
    }

    /// Connects to the media server afresh after a moment (at most one
    /// restart waits at a time; each one more in a row waits longer).
    pub(super) fn restart_server_link_soon(&self) {
        if self.0.server.restarting.replace(true) {
            return;
        }
        let restarts = self.0.server.restarts.get();
        self.0.server.restarts.set(restarts.saturating_add(1));
        let delay = RESTART_DELAY
            .saturating_mul(1 << restarts.min(4))
            .min(RESTART_DELAY_MAX);
        let weak = self.weak();
        set_timeout(
            move || {
                if let Some(call) = Call::from_weak(&weak) {
                    call.0.server.restarting.set(false);
                    match call.media_path() {
                        // On the way back to direct: hand over now.
                        MediaPath::Direct => call.leave_server_for_direct(),
                        MediaPath::Server if call.server_link_active() => call.start_server_link(),
                        MediaPath::Server => {}
                    }
                }
            },
            delay,
        );
    }

    /// Closes the media-server connection; the tiles it fed go blank.
    pub(super) fn drop_server_link(&self) {
        let old = self.0.server.link.borrow_mut().take();
        // Closed now, not when the last task that holds it lets go (one
        // may be waiting on it for long).
        if let Some(link) = &old {
            link.pc.close();
        }
        let had = old.is_some();
        if let Some(timer) = self.0.server.heights_timer.borrow_mut().take() {
            timer.clear();
        }
        self.0.server.heights.borrow_mut().clear();
        *self.0.server.video_sender.borrow_mut() = None;
        self.0.server.tracks.borrow_mut().clear();
        self.0.server.speakers.borrow_mut().clear();
        *self.0.server.watching.borrow_mut() = None;
        self.0.server.decoded.borrow_mut().clear();
        self.view().video_paused.update(|p| p.clear());
        let shown: Vec<PeerId> = self.0.server.shown.borrow_mut().drain().collect();
        self.0.streams.update_value(|s| {
            for id in &shown {
                s.remove(id);
            }
        });
        if had && self.0.mesh.links.borrow().is_empty() {
            self.view().links.update(|l| l.clear());
        }
    }

    /// Whether `peer_id`'s tile shows the media server's stream.
    pub(super) fn shown_by_server(&self, peer_id: &str) -> bool {
        self.0.server.shown.borrow().contains(peer_id)
    }

    pub(super) fn server_link_active(&self) -> bool {
        self.0.server.link.borrow().is_some()
    }

    /// The room moved to the media server: connect to it, show each
    /// person through it once their video decodes, and keep the direct
    /// links until the grace is over.
    pub(super) fn move_to_server(&self) {
        self.start_server_link();
        self.begin_switch();
        let weak = self.weak();
        set_timeout(
            move || {
                if let Some(call) = Call::from_weak(&weak) {
                    if call.media_path() == MediaPath::Server {
                        call.drop_all_links();
                        call.assign_server_tracks();
                    }
                }
            },
            SWITCH_GRACE,
        );
    }

    /// The room went back to direct: connect to everyone (the side that
    /// would yield in a clash waits for the other's offer), show each
    /// person through their direct link once it decodes, and keep the media
    /// server until the grace is over.
    pub(super) fn move_to_direct(&self) {
        let Some(me) = self.0.me.borrow().clone() else {
            return;
        };
        for peer in self.view().peers.get_untracked() {
            self.ensure_link(&peer.peer_id, !decide::is_polite(&me, &peer.peer_id));
        }
        self.begin_switch();
        let weak = self.weak();
        set_timeout(
            move || {
                if let Some(call) = Call::from_weak(&weak) {
                    if call.media_path() == MediaPath::Direct {
                        call.leave_server_for_direct();
                    }
                }
            },
            SWITCH_GRACE,
        );
    }

    /// A move starts: its grace runs from now, and the new path's first
    /// frames are looked for.
    fn begin_switch(&self) {
        self.0
            .server
            .switch_until
            .set(now() + SWITCH_GRACE.as_millis() as f64);
        self.poll_switch();
    }

    /// While both paths are up, looks every moment for the new path's
    /// first decoded frames, and moves each tile over once its new video
    /// has one; stops when the move is done.
    fn poll_switch(&self) {
        self.repeat(&self.0.server.switch_timer, SWITCH_POLL, |call| {
            leptos::task::spawn_local(async move { call.check_switch().await })
        });
    }

    async fn check_switch(&self) {
        let moving = self.server_link_active() && !self.0.mesh.links.borrow().is_empty();
        if !moving {
            if let Some(timer) = self.0.server.switch_timer.borrow_mut().take() {
                timer.clear();
            }
            return;
        }
        match self.media_path() {
            MediaPath::Server => {
                let Some(link) = self.server_link() else {
                    return;
                };
                let waiting: Vec<MediaStreamTrack> = {
                    let shown = self.0.server.shown.borrow();
                    let decoded = self.0.server.decoded.borrow();
                    let peers = self.view().peers.get_untracked();
                    self.0
                        .server
                        .tracks
                        .borrow()
                        .iter()
                        .filter(|(publisher, track)| {
                            track.kind() == "video"
                                && !decoded.contains(&track.id())
                                && peers.iter().any(|p| {
                                    media_client_id(&p.peer_id) == *publisher
                                        && !shown.contains(&p.peer_id)
                                })
                        })
                        .map(|(_, track)| Clone::clone(track))
                        .collect()
                };
                let mut any = false;
                for track in waiting {
                    if has_decoded(&link.pc, &track).await {
                        self.0.server.decoded.borrow_mut().insert(track.id());
                        any = true;
                    }
                }
                if any {
                    self.assign_server_tracks();
                }
            }
            MediaPath::Direct => {
                let waiting: Vec<PeerId> = self.0.server.shown.borrow().iter().cloned().collect();
                for peer_id in waiting {
                    let Some(link) = self.link(&peer_id) else {
                        continue;
                    };
                    let video = link
                        .stream
                        .get_video_tracks()
                        .iter()
                        .find_map(|t| t.dyn_into::<MediaStreamTrack>().ok());
                    let Some(video) = video else {
                        continue;
                    };
                    if has_decoded(&link.pc, &video).await {
                        self.show_mesh(&peer_id);
                    }
                }
            }
        }
    }

    fn show_mesh(&self, peer_id: &str) {
        if self.media_path() != MediaPath::Direct {
            return;
        }
        let Some(link) = self.link(peer_id) else {
            return;
        };
        let stream = Clone::clone(&link.stream);
        self.0.streams.update_value(|s| {
            s.insert(peer_id.into(), stream);
        });
        self.0.server.shown.borrow_mut().remove(peer_id);
        self.view().media_epoch.update(|e| *e += 1);
    }

    /// The grace of a move back to direct is over: the media server
    /// connection closes, and the server hears it.
    fn leave_server_for_direct(&self) {
        if !self.server_link_active() {
            return;
        }
        // Tiles the direct links have not taken over yet get theirs now.
        let waiting: Vec<PeerId> = self.0.server.shown.borrow().iter().cloned().collect();
        for id in waiting {
            if let Some(link) = self.link(&id) {
                let stream = Clone::clone(&link.stream);
                self.0.streams.update_value(|s| {
                    s.insert(id.clone(), stream);
                });
                self.0.server.shown.borrow_mut().remove(&id);
            }
        }
        self.drop_server_link();
        self.send(&ClientMessage::MediaServerClose);
        self.view().media_epoch.update(|e| *e += 1);
    }

    fn server_link(&self) -> Option<Rc<Link>> {
        self.0.server.link.borrow().clone()
    }

    /// Whether `link` is still the media-server connection (not one that
    /// was replaced while a task waited on it: its descriptions must not
    /// reach the server, which would take them for the new one's).
    fn is_current_server_link(&self, link: &Rc<Link>) -> bool {
        self.server_link()
            .is_some_and(|current| Rc::ptr_eq(&current, link))
    }

    fn new_server_link(&self) -> Option<Link> {
        let config = rtc_configuration(self.0.mesh.ice.borrow().as_ref());
        let pc = RtcPeerConnection::new_with_configuration(&config).ok()?;
        let stream = MediaStream::new().ok()?;
        let mut callbacks = Vec::new();

        let weak = self.weak();
        let on_negotiation = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            if let Some(call) = Call::from_weak(&weak) {
                leptos::task::spawn_local(async move { call.offer_to_server().await });
            }
        });
        pc.set_onnegotiationneeded(Some(on_negotiation.as_ref().unchecked_ref()));
        callbacks.push(on_negotiation);

        let weak = self.weak();
        let on_track = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            let Ok(event) = event.dyn_into::<RtcTrackEvent>() else {
                return;
            };
            let Some(call) = Call::from_weak(&weak) else {
                return;
            };
            let stream_id = event
                .streams()
                .get(0)
                .dyn_into::<MediaStream>()
                .ok()
                .map(|s| s.id());
            let Some(publisher) = stream_id.as_deref().and_then(publisher_of_stream) else {
                return;
            };
            let track = event.track();
            // The server reuses an m-line someone left for someone else
            // (a new stream id on the same receiver's track): the track
            // now belongs to its new publisher only.
            let mut tracks = call.0.server.tracks.borrow_mut();
            tracks.retain(|(_, known)| known.id() != track.id());
            tracks.push((publisher, track));
            drop(tracks);
            call.assign_server_tracks();
        });
        pc.set_ontrack(Some(on_track.as_ref().unchecked_ref()));
        callbacks.push(on_track);

        let weak = self.weak();
        let on_ice_state = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            if let Some(call) = Call::from_weak(&weak) {
                call.on_server_ice_state();
            }
        });
        pc.set_oniceconnectionstatechange(Some(on_ice_state.as_ref().unchecked_ref()));
        callbacks.push(on_ice_state);

        // ICE may hold while DTLS fails (only the connection state says).
        let weak = self.weak();
        let on_state = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            if let Some(call) = Call::from_weak(&weak) {
                call.on_server_connection_state();
            }
        });
        pc.set_onconnectionstatechange(Some(on_state.as_ref().unchecked_ref()));
        callbacks.push(on_state);

        // The server is ICE-lite and learns this page's addresses from its
        // connectivity checks: candidates need not be sent.
        Some(Link::new(pc, true, stream, callbacks))
    }

    async fn offer_to_server(&self) {
        let Some(link) = self.server_link() else {
            return;
        };
        link.making_offer.set(true);
        let offered = set_local_description(&link.pc).await.is_ok();
        if !self.is_current_server_link(&link) {
            // Replaced meanwhile: the new connection makes its own offer.
        } else if offered {
            if let Some(signal) = local_description(&link.pc) {
                self.send(&ClientMessage::MediaServerSignal { signal });
                // A new media connection: it hears the wishes again, after
                // the offer that opens it.
                *self.0.server.watching.borrow_mut() = None;
                self.ask_for_cameras();
            }
        } else {
            log("moim: could not create an offer for the media server");
        }
        link.making_offer.set(false);
    }

    /// An answer to our offer, or the server's own offer (the tracks to
    /// receive changed), which we answer.
    pub(super) fn on_server_signal(&self, signal: Signal) {
        let Some(link) = self.server_link() else {
            return;
        };
        let Signal::Description { sdp_type, sdp } = signal else {
            return;
        };
        let is_offer = sdp_type == "offer";
        if is_offer && crate::protocol::media_server::too_many_stale_m_lines(&sdp) {
            log("moim: the media server's offer has grown large; connecting afresh");
            self.start_server_link();
            return;
        }
        let kind = sdp_type.clone();
        let call = self.clone();
        // Applied now, in arrival order (the connection chains its own
        // operations). An offer while ours is out rolls ours back: the
        // page is the polite side.
        let remote = description_init(&sdp_type, &sdp);
        let applying = JsFuture::from(link.pc.set_remote_description(&remote));
        leptos::task::spawn_local(async move {
            let applied = applying.await;
            if !call.is_current_server_link(&link) {
                return;
            }
            if let Err(err) = applied {
                let why = js_sys::Reflect::get(&err, &"message".into())
                    .ok()
                    .and_then(|m| m.as_string())
                    .unwrap_or_default();
                log(&format!(
                    "moim: the media server's {kind} was refused: {why}"
                ));
                // The two sides no longer agree on the connection (an
                // answer that came too late for the server): start over.
                call.restart_server_link_soon();
                return;
            }
            if is_offer {
                let answered = set_local_description(&link.pc).await.is_ok();
                if answered && call.is_current_server_link(&link) {
                    if let Some(answer) = local_description(&link.pc) {
                        call.send(&ClientMessage::MediaServerSignal { signal: answer });
                    }
                }
                call.assign_server_tracks();
            }
        });
    }

    fn on_server_connection_state(&self) {
        let Some(link) = self.server_link() else {
            return;
        };
        match link.pc.connection_state() {
            RtcPeerConnectionState::Connected => self.0.server.restarts.set(0),
            RtcPeerConnectionState::Failed => {
                log("moim: the media server connection failed (DTLS); connecting again");
                self.restart_server_link_soon();
            }
            _ => {}
        }
    }

    fn on_server_ice_state(&self) {
        let Some(link) = self.server_link() else {
            return;
        };
        let shown = match link.pc.ice_connection_state() {
            RtcIceConnectionState::Connected | RtcIceConnectionState::Completed => {
                LinkState::Connected
            }
            RtcIceConnectionState::Failed => {
                // An ICE-lite server cannot restart ICE on the same
                // connection: start a new one.
                log("moim: the media server connection failed; connecting again");
                self.restart_server_link_soon();
                return;
            }
            RtcIceConnectionState::Disconnected => LinkState::Reconnecting,
            _ => return,
        };
        // On the way back to direct the tiles show the direct links' state.
        if self.media_path() == MediaPath::Direct {
            return;
        }
        self.show_server_state(shown);
    }

    /// Everyone's tile shows the state of the one media connection.
    fn show_server_state(&self, state: LinkState) {
        let peers = self.view().peers.get_untracked();
        self.view().links.update(|links| {
            links.clear();
            for peer in &peers {
                links.insert(peer.peer_id.clone(), state);
            }
        });
    }

    /// The state to show for a peer that just came.
    pub(super) fn server_state(&self) -> LinkState {
        match self.server_link().map(|l| l.pc.ice_connection_state()) {
            Some(RtcIceConnectionState::Connected | RtcIceConnectionState::Completed) => {
                LinkState::Connected
            }
            _ => LinkState::Connecting,
        }
    }

    /// Puts each received live track in its sender's stream, so tiles find
    /// it under the sender's peer id. A peer still shown through a direct
    /// link (the room is moving to the server) changes over only once the
    /// server's video of it flows; the direct links themselves go when
    /// everyone has and the move's grace is over (see `SWITCH_GRACE`).
    pub(super) fn assign_server_tracks(&self) {
        if !self.server_link_active() {
            return;
        }
        let peers: Vec<PeerInfo> = self.view().peers.get_untracked();
        let mut tracks = self.0.server.tracks.borrow_mut();
        tracks.retain(|(_, track)| track.ready_state() != web_sys::MediaStreamTrackState::Ended);
        let mut changed = false;
        for peer in &peers {
            let client = media_client_id(&peer.peer_id);
            // The newest track of each kind is shown (a sender that came
            // back publishes new ones; a tile plays a stream's first). The
            // receiver's own track, not `track.clone()`: that is the web
            // API's clone, a new track each time, which no receiver's
            // statistics name and which replaced the tile's every time.
            let newest = |kind: &str| {
                tracks
                    .iter()
                    .rev()
                    .find(|(publisher, track)| *publisher == client && track.kind() == kind)
                    .map(|(_, track)| Clone::clone(track))
            };
            let (audio, video) = (newest("audio"), newest("video"));
            let shown_by_server = self.0.server.shown.borrow().contains(&peer.peer_id);
            let stream = if shown_by_server {
                self.0.streams.with_value(|s| s.get(&peer.peer_id).cloned())
            } else {
                // Back to direct: the server link only lingers for the
                // others' sake and takes no tile back.
                if self.media_path() == MediaPath::Direct {
                    continue;
                }
                let direct = self.0.mesh.links.borrow().contains_key(&peer.peer_id);
                let flowing = video
                    .as_ref()
                    .is_some_and(|v| self.0.server.decoded.borrow().contains(&v.id()));
                if direct && !flowing {
                    continue;
                }
                let Ok(stream) = MediaStream::new() else {
                    continue;
                };
                let kept = Clone::clone(&stream);
                self.0.streams.update_value(|s| {
                    s.insert(peer.peer_id.clone(), kept);
                });
                self.0
                    .server
                    .shown
                    .borrow_mut()
                    .insert(peer.peer_id.clone());
                changed = true;
                Some(stream)
            };
            let Some(stream) = stream else {
                continue;
            };
            for newest in [audio, video].into_iter().flatten() {
                if stream.get_track_by_id(&newest.id()).is_some() {
                    continue;
                }
                for old in stream.get_tracks().iter() {
                    if let Ok(old) = old.dyn_into::<MediaStreamTrack>() {
                        if old.kind() == newest.kind() {
                            stream.remove_track(&old);
                        }
                    }
                }
                stream.add_track(&newest);
                changed = true;
            }
        }
        drop(tracks);
        if changed {
            self.view().media_epoch.update(|e| *e += 1);
        }
        // Everyone shows through the server and no move of this page's is
        // in its grace (direct links a newcomer got from people still
        // moving, say): the direct links can go.
        let all_moved = {
            let shown = self.0.server.shown.borrow();
            peers.iter().all(|p| shown.contains(&p.peer_id))
        };
        if all_moved
            && !self.0.mesh.links.borrow().is_empty()
            && now() >= self.0.server.switch_until.get()
        {
            self.drop_all_links();
        }
    }

    /// Tells the media server whose camera this page wants whatever the
    /// last-N order (the pinned tile, then whoever shares a screen), and
    /// how tall it shows each (it sends the simulcast layer that fits:
    /// a grid tile a small one, the pinned or large tile the full one, a
    /// tile off screen or a hidden page none), when that changed.
    pub(super) fn ask_for_cameras(&self) {
        if !self.server_link_active() || self.media_path() != MediaPath::Server {
            return;
        }
        let view = self.view();
        let peers = view.peers.get_untracked();
        let pinned = view
            .pinned
            .get_untracked()
            .filter(|id| peers.iter().any(|p| p.peer_id == id.as_str()));
        let mut wanted: Vec<PeerId> = pinned.into_iter().map(PeerId::from).collect();
        for peer in &peers {
            if peer.media.screen && !wanted.contains(&peer.peer_id) {
                wanted.push(peer.peer_id.clone());
            }
        }
        wanted.truncate(crate::protocol::media_server::MAX_WATCHED);
        let heights = tile_heights(&peers);
        let same_heights = *self.0.server.heights.borrow() == heights;
        if self.0.server.watching.borrow().as_ref() == Some(&wanted) && same_heights {
            return;
        }
        *self.0.server.watching.borrow_mut() = Some(wanted.clone());
        *self.0.server.heights.borrow_mut() = heights.clone();
        self.send(&ClientMessage::MediaServerWatch {
            peers: wanted,
            heights,
        });
    }

    /// A peer left: its stream goes.
    pub(super) fn forget_server_peer(&self, peer_id: &str) {
        if self.0.server.shown.borrow_mut().remove(peer_id) {
            self.0.streams.update_value(|s| {
                s.remove(peer_id);
            });
        }
        self.0.server.speakers.borrow_mut().retain(|p| p != peer_id);
        self.view().links.update(|l| {
            l.remove(peer_id);
        });
    }
}

/// The `sendEncodings` of a camera on the media-server connection (see
/// `CAMERA_LAYERS`).
fn camera_layers() -> js_sys::Array {
    CAMERA_LAYERS
        .iter()
        .map(|(rid, scale, bitrate)| {
            let encoding = JsValue::from(js_sys::Object::new());
            set_field(&encoding, "rid", (*rid).into());
            set_field(&encoding, "scaleResolutionDownBy", (*scale).into());
            set_field(&encoding, "maxBitrate", (*bitrate).into());
            encoding
        })
        .collect()
}

/// Sets field `key` of a JavaScript object (an encoding's parameters).
fn set_field(object: &JsValue, key: &str, value: JsValue) {
    let _ = js_sys::Reflect::set(object, &key.into(), &value);
}

/// Fits the layers the video goes in to what `sender` sends now: a
/// camera in as many as its picture is tall enough for (three from 540
/// lines, two from 270, else one), each half the size of the next; a
/// shared screen (`screen`) in one full-size layer at a higher bit rate,
/// so text stays sharp.
///
/// The first layers carry them and the rest are turned off, because that
/// is how Chrome limits a small capture: it keeps only the first
/// encodings, whatever their scale (a 640x360 camera sent as a quarter
/// and a half would never reach anyone at full size).
pub(super) async fn set_layers(sender: RtcRtpSender, screen: bool) {
    // Through JavaScript: web-sys's typed parameters would pull in a
    // dictionary binding per field for three fields.
    let call = |target: &JsValue, name: &str, argument: Option<&JsValue>| {
        let method = js_sys::Reflect::get(target, &name.into())
            .ok()?
            .dyn_into::<js_sys::Function>()
            .ok()?;
        match argument {
            Some(argument) => method.call1(target, argument).ok(),
            None => method.call0(target).ok(),
        }
    };
    let height = sender
        .track()
        .and_then(|track| call(&track, "getSettings", None))
        .and_then(|settings| super::quality::number(&settings, "height"));
    let Some(height) = height else {
        // No video yet: the defaults stand until a track comes.
        return;
    };
    let layers: usize = match (screen, height) {
        (true, _) => 1,
        (false, h) if h >= 540.0 => 3,
        (false, h) if h >= 270.0 => 2,
        _ => 1,
    };
    let sender_value = JsValue::from(sender.clone());
    let Some(parameters) = call(&sender_value, "getParameters", None) else {
        return;
    };
    let Ok(encodings) = js_sys::Reflect::get(&parameters, &"encodings".into()) else {
        return;
    };
    let encodings = js_sys::Array::from(&encodings);
    for (index, encoding) in encodings.iter().enumerate() {
        let active = index < layers;
        // The top layer is full size, each one below half the next.
        let scale = if active {
            f64::from(1u32 << (layers - 1 - index))
        } else {
            1.0
        };
        let bitrate = if screen {
            SCREEN_BITRATE
        } else {
            let at = (CAMERA_LAYERS.len() - layers + index).min(CAMERA_LAYERS.len() - 1);
            CAMERA_LAYERS[at].2
        };
        set_field(&encoding, "active", active.into());
        set_field(&encoding, "scaleResolutionDownBy", scale.into());
        set_field(&encoding, "maxBitrate", bitrate.into());
    }
    let applied = match call(&sender_value, "setParameters", Some(&parameters)) {
        Some(promise) => match promise.dyn_into::<js_sys::Promise>() {
            Ok(promise) => JsFuture::from(promise).await.is_ok(),
            Err(_) => false,
        },
        None => false,
    };
    if !applied {
        log("moim: could not change the layers the video is sent in");
    }
}

/// How tall this page shows each peer's video, in device pixels, rounded
/// up to `HEIGHT_STEP`: 0 for a tile off screen, or every tile while the
/// page is hidden.
fn tile_heights(peers: &[PeerInfo]) -> Vec<TileHeight> {
    let window = web_sys::window();
    let document = window.as_ref().and_then(|w| w.document());
    let hidden = document.as_ref().is_none_or(|d| d.hidden());
    let ratio = window.as_ref().map_or(1.0, |w| w.device_pixel_ratio());
    let viewport = window
        .as_ref()
        .and_then(|w| w.inner_height().ok())
        .and_then(|h| h.as_f64())
        .unwrap_or(0.0);
    peers
        .iter()
        .map(|peer| {
            let selector = format!(
                "figure[data-peer=\"{}\"] video",
                peer.peer_id.as_str().replace(['"', '\\'], "")
            );
            let video = document
                .as_ref()
                .and_then(|d| d.query_selector(&selector).ok().flatten());
            let height = match (hidden, video) {
                (false, Some(video)) => {
                    let rect = video.get_bounding_client_rect();
                    let on_screen = rect.bottom() > 0.0 && rect.top() < viewport;
                    if on_screen {
                        rect.height() * ratio
                    } else {
                        0.0
                    }
                }
                _ => 0.0,
            };
            let step = f64::from(HEIGHT_STEP);
            let rounded = ((height / step).ceil() * step).min(f64::from(u16::MAX));
            TileHeight {
                peer: peer.peer_id.clone(),
                height: rounded as u16,
            }
        })
        .collect()
}

/// Whether `pc` has decoded a frame of `track` (its receiver's stats).
async fn has_decoded(pc: &RtcPeerConnection, track: &MediaStreamTrack) -> bool {
    let receiver = pc
        .get_receivers()
        .iter()
        .filter_map(|r| r.dyn_into::<web_sys::RtcRtpReceiver>().ok())
        .find(|r| r.track().id() == track.id());
    let Some(receiver) = receiver else {
        return false;
    };
    let Ok(report) = JsFuture::from(receiver.get_stats()).await else {
        return false;
    };
    let values = js_sys::Reflect::get(&report, &"values".into())
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
        .and_then(|f| f.call0(&report).ok());
    let Some(Ok(Some(entries))) = values.map(|v| js_sys::try_iter(&v)) else {
        return false;
    };
    entries.flatten().any(|stat| {
        let kind = js_sys::Reflect::get(&stat, &"type".into())
            .ok()
            .and_then(|t| t.as_string());
        let frames = js_sys::Reflect::get(&stat, &"framesDecoded".into())
            .ok()
            .and_then(|f| f.as_f64())
            .unwrap_or(0.0);
        kind.as_deref() == Some("inbound-rtp") && frames > 0.0
    })
}
