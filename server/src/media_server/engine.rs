//! The media server's thread: the UDP socket and the clock around the
//! sans-IO SFU, and the signaling in (commands) and out (outboxes).

use super::addresses::{checked_ufrag, AddressBook, Owner};
use super::audio_level;
use super::datagram::{self, Datagram};
use super::paused_video::{self, PausedVideo};
use app::protocol::{PeerId, Signal};
use bytes::BytesMut;
use domain::ids::ConnectionId;
use domain::media::last_n::LastN;
use domain::media::speakers::SpeakerDetector;
use domain::media::{FromMediaServer, MediaServerOutbox};
use rtc::peer_connection::sdp::{RTCSdpType, RTCSessionDescription};
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use sansio::Protocol;
use sfu::{ClientId, RequestId, RoomId, SFUEvent, Sfu, TaggedSFUEvent};
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

/// One call connection's request to the engine.
pub(super) enum Command {
    Signal {
        room: String,
        client: u64,
        peer: PeerId,
        conn: ConnectionId,
        outbox: MediaServerOutbox,
        signal: Signal,
    },
    /// The cameras a connection's page wants whatever the last-N order.
    Watch {
        room: String,
        client: u64,
        conn: ConnectionId,
        watched: Vec<u64>,
    },
    /// Whether a connection's camera (or shared screen) is on.
    Camera {
        room: String,
        client: u64,
        conn: ConnectionId,
        on: bool,
    },
    Disconnect {
        room: String,
        client: u64,
        conn: ConnectionId,
    },
    Stop,
}

/// Longest wait for a datagram before commands are looked at again: the
/// delay a signal may see when no media flows.
const COMMAND_TICK: Duration = Duration::from_millis(10);
/// Larger than any datagram a browser sends (MTU-sized RTP, DTLS).
const DATAGRAM_MAX: usize = 2048;
/// How often the rooms' speaker detectors are asked for news: a fraction
/// of their 200 ms window, and not on every datagram (each ask walks every
/// room).
const SPEAKERS_POLL_EVERY: Duration = Duration::from_millis(50);
/// A camera with no packet for this long is off: it takes no place among
/// the last N (a browser keeps its video sender when the camera is off,
/// and sends nothing on it).
const CAMERA_QUIET: Duration = Duration::from_secs(2);
/// How often media connections are looked at for silence.
const SILENCE_CHECK_EVERY: Duration = Duration::from_secs(1);

/// One media connection: which call connection owns it and where its
/// signals go.
struct Client {
    /// Who it is, for the speakers announced to the room.
    peer: PeerId,
    conn: ConnectionId,
    outbox: MediaServerOutbox,
    /// The server's offer waiting for the browser's answer: its request id
    /// (the engine pairs them) and when it left (a late answer is worth a
    /// line in the log: the engine gives up on an offer after 5 s).
    offer_pending: Option<(RequestId, Instant)>,
    /// The browser's ICE username fragment: a new one means a new peer
    /// connection (the page started over), so a new media connection.
    ufrag: Option<String>,
    /// The SSRCs its last offer announced (`a=ssrc`): its own streams.
    ssrcs: Vec<u32>,
    /// The id its offer gave the audio level extension: every
    /// description sent to it accepts that extension (see `audio_level`).
    audio_level_id: Option<u8>,
    /// The SSRCs its last offer announced for video (camera or screen).
    video_ssrcs: Vec<u32>,
    /// When its last video packet came: a camera that sends takes a place
    /// among the last N.
    video_seen: Option<Instant>,
    /// Whether its page says the camera (or a shared screen) is on: one
    /// turned off still sends black frames.
    camera_on: bool,
    /// The SSRC under which the engine resends each stream it forwards to
    /// this browser (from the descriptions sent to it): paused with it.
    retransmissions: HashMap<u32, u32>,
    /// The cameras it does not receive now (last-N), as it was told.
    paused_peers: Vec<PeerId>,
    /// Their streams, held back on the way out (see `paused_video`).
    paused_video: PausedVideo,
    /// When its browser was last heard (any datagram; at first, when it
    /// offered): see `Engine::drop_silent`.
    heard: Instant,
}

/// The SSRCs a session description announces (`a=ssrc:<n> ...`).
fn announced_ssrcs(sdp: &str) -> Vec<u32> {
    let mut ssrcs: Vec<u32> = sdp
        .lines()
        .filter_map(|line| line.strip_prefix("a=ssrc:"))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect();
    ssrcs.sort_unstable();
    ssrcs.dedup();
    ssrcs
}

/// The `a=ice-ufrag` of a session description.
fn ice_ufrag(sdp: &str) -> Option<&str> {
    sdp.lines()
        .find_map(|line| line.trim_end().strip_prefix("a=ice-ufrag:"))
}

struct Engine {
    sfu: Sfu,
    socket: UdpSocket,
    advertised: SocketAddr,
    /// Room (meeting id) to the engine's room id, while anyone is in it.
    rooms: HashMap<String, RoomId>,
    clients: HashMap<(RoomId, ClientId), Client>,
    next_request: RequestId,
    metrics: domain::metrics::Metrics,
    /// The stand-in addresses the engine sees (see `addresses`).
    addresses: AddressBook,
    /// Who speaks, per room with anyone in it.
    speakers: HashMap<RoomId, SpeakerDetector<ClientId>>,
    /// When the speaker detectors were last asked.
    speakers_polled: Instant,
    /// How many cameras each browser receives besides those it asks for.
    last_n_limit: usize,
    /// Per room with anyone in it: who spoke last, and who asked for whom.
    last_n: HashMap<RoomId, LastN<ClientId>>,
    /// Whether any browser has a paused camera: if not, outgoing packets
    /// are not looked at.
    any_paused: bool,
    /// A media connection not heard from for this long is dropped.
    silence_limit: Duration,
    /// When media connections were last looked at for silence.
    silence_checked: Instant,
}

pub(super) fn run(
    socket: UdpSocket,
    advertised: SocketAddr,
    commands: Receiver<Command>,
    metrics: domain::metrics::Metrics,
    last_n_limit: usize,
    silence_limit: Duration,
) {
    let mut engine = Engine {
        sfu: Sfu::new(rand_id(), advertised),
        socket,
        advertised,
        rooms: HashMap::new(),
        clients: HashMap::new(),
        next_request: 1,
        metrics,
        addresses: AddressBook::default(),
        speakers: HashMap::new(),
        speakers_polled: Instant::now(),
        last_n_limit,
        last_n: HashMap::new(),
        any_paused: false,
        silence_limit,
        silence_checked: Instant::now(),
    };
    let mut buffer = vec![0u8; DATAGRAM_MAX];
    loop {
        // The engine is third-party code fed by strangers' datagrams and
        // SDP: should it ever panic, the media server starts over empty
        // (pages reconnect when their connection fails) instead of dying.
        let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            engine.step(&commands, &mut buffer)
        }));
        match step {
            Ok(Step::Go) => {}
            Ok(Step::Stop) => return,
            Err(_) => {
                tracing::error!("the media engine failed; every media connection starts over");
                engine.metrics.sfu_restarted();
                engine.clients.clear();
                engine.rooms.clear();
                engine.addresses.clear();
                engine.speakers.clear();
                engine.last_n.clear();
                engine.any_paused = false;
                engine.sfu = Sfu::new(rand_id(), engine.advertised);
                engine.count_size();
            }
        }
    }
}

enum Step {
    Go,
    Stop,
}

fn rand_id() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0
}

impl Engine {
    /// Takes the queued commands, then one datagram or timeout.
    fn step(&mut self, commands: &Receiver<Command>, buffer: &mut [u8]) -> Step {
        loop {
            match commands.try_recv() {
                Ok(Command::Stop) | Err(TryRecvError::Disconnected) => {
                    self.stop();
                    return Step::Stop;
                }
                Ok(command) => self.command(command),
                Err(TryRecvError::Empty) => break,
            }
        }
        self.flush();
        let now = Instant::now();
        let wait = self
            .sfu
            .poll_timeout()
            .map(|at| at.saturating_duration_since(now))
            .unwrap_or(COMMAND_TICK)
            .min(COMMAND_TICK);
        if wait.is_zero() {
            self.tick();
            return Step::Go;
        }
        // A zero timeout would mean "block forever".
        let _ = self
            .socket
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))));
        match self.socket.recv_from(buffer) {
            Ok((size, from)) => self.datagram(&buffer[..size], from),
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            // An ICMP "port unreachable" for an earlier send: that peer is
            // gone, the others are not.
            Err(err) if err.kind() == ErrorKind::ConnectionReset => {}
            Err(err) => {
                tracing::error!(error = %err, "the media server's socket failed");
                std::thread::sleep(COMMAND_TICK);
            }
        }
        self.tick();
        Step::Go
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Signal {
                room,
                client,
                peer,
                conn,
                outbox,
                signal,
            } => self.signal(room, client, peer, conn, outbox, signal),
            Command::Watch {
                room,
                client,
                conn,
                watched,
            } => {
                let Some(room_id) = self.owned_by(&room, client, &conn) else {
                    return;
                };
                if let Some(order) = self.last_n.get_mut(&room_id) {
                    order.watch(client, watched);
                    self.apply_last_n(room_id);
                }
            }
            Command::Camera {
                room,
                client,
                conn,
                on,
            } => {
                let Some(room_id) = self.owned_by(&room, client, &conn) else {
                    return;
                };
                if let Some(own) = self.clients.get_mut(&(room_id, client)) {
                    own.camera_on = on;
                }
                self.update_showing((room_id, client));
            }
            Command::Disconnect { room, client, conn } => {
                if let Some(room_id) = self.owned_by(&room, client, &conn) {
                    self.leave(&room, room_id, client, "call connection ended");
                }
            }
            Command::Stop => {}
        }
    }

    /// The room's id if `client`'s media connection there belongs to call
    /// connection `conn` (and not to a newer one of the same person).
    fn owned_by(&self, room: &str, client: ClientId, conn: &ConnectionId) -> Option<RoomId> {
        let room_id = *self.rooms.get(room)?;
        self.clients
            .get(&(room_id, client))
            .is_some_and(|c| c.conn == *conn)
            .then_some(room_id)
    }

    fn signal(
        &mut self,
        room: String,
        client: ClientId,
        peer: PeerId,
        conn: ConnectionId,
        outbox: MediaServerOutbox,
        signal: Signal,
    ) {
        let Signal::Description { sdp_type, sdp } = signal else {
            // ICE-lite: the server learns the browser's addresses from its
            // connectivity checks; trickled candidates are not needed.
            return;
        };
        // Only an offer may open a media connection (and name a room).
        let room_id = match (sdp_type.as_str(), self.rooms.get(&room)) {
            (_, Some(&room_id)) => room_id,
            ("offer", None) => *self
                .rooms
                .entry(room.clone())
                .or_insert_with(uuid::Uuid::new_v4),
            (_, None) => return,
        };
        let key = (room_id, client);
        let description = match sdp_type.as_str() {
            "offer" => {
                // The media server routes a publisher's packets by their
                // SSRC: an offer announcing one another connection of the
                // room already sends under would take that person's
                // stream over (or stop it). Nobody may.
                let announced = announced_ssrcs(&sdp);
                let taken = self.clients.iter().any(|((r, c), other)| {
                    *r == room_id
                        && *c != client
                        && other.ssrcs.iter().any(|s| announced.contains(s))
                });
                if taken {
                    tracing::info!(
                        "an offer announced an SSRC someone else in the room sends under"
                    );
                    let _ = outbox.try_send(FromMediaServer::Refused(
                        "the offer announces a stream (SSRC) that someone else in the room sends"
                            .into(),
                    ));
                    if !self.clients.keys().any(|(r, _)| *r == room_id) {
                        self.rooms.remove(&room);
                    }
                    return;
                }
                let ufrag = ice_ufrag(&sdp).map(str::to_string);
                let same = self
                    .clients
                    .get(&key)
                    .map(|c| c.conn == conn && c.ufrag == ufrag);
                if same == Some(false) {
                    // A resumed page, or one that started its connection
                    // over: the old media connection goes first.
                    self.leave(&room, room_id, client, "replaced by a newer connection");
                    self.rooms.insert(room.clone(), room_id);
                }
                if same != Some(true) {
                    // Who speaks already, so the page need not wait for
                    // the next change.
                    let speakers = self.speaker_peers(room_id);
                    if !speakers.is_empty() {
                        let _ = outbox.try_send(FromMediaServer::Speakers(speakers));
                    }
                    self.clients.insert(
                        key,
                        Client {
                            peer,
                            conn,
                            outbox,
                            offer_pending: None,
                            ufrag,
                            ssrcs: Vec::new(),
                            audio_level_id: None,
                            video_ssrcs: Vec::new(),
                            video_seen: None,
                            camera_on: true,
                            retransmissions: HashMap::new(),
                            paused_peers: Vec::new(),
                            paused_video: PausedVideo::default(),
                            heard: Instant::now(),
                        },
                    );
                    let limit = self.last_n_limit;
                    self.last_n
                        .entry(room_id)
                        .or_insert_with(|| LastN::new(limit))
                        .joined(client);
                    self.count_size();
                    let request_id = self.request_id();
                    self.event(SFUEvent::Join {
                        request_id,
                        room_id,
                        client_id: client,
                    });
                }
                if let Some(own) = self.clients.get_mut(&key) {
                    own.ssrcs = announced;
                    own.audio_level_id = audio_level::extension_id(&sdp);
                    own.video_ssrcs = paused_video::video_ssrcs(&sdp);
                }
                // Its cameras may have new SSRCs, and a newcomer has
                // cameras to be paused.
                self.apply_last_n(room_id);
                RTCSessionDescription::offer(sdp)
            }
            "answer" => {
                if self.clients.get(&key).is_none_or(|c| c.conn != conn) {
                    return;
                }
                RTCSessionDescription::answer(sdp)
            }
            // Rollbacks and provisional answers: the browser is the polite
            // side and never needs them with the server.
            _ => return,
        };
        let description = match description {
            Ok(description) => description,
            Err(err) => {
                tracing::info!(error = %err, "unreadable session description from a browser");
                self.refuse(room_id, client, "unreadable session description");
                return;
            }
        };
        let request_id = match description.sdp_type {
            RTCSdpType::Answer => {
                let pending = self
                    .clients
                    .get_mut(&key)
                    .and_then(|c| c.offer_pending.take());
                match pending {
                    Some((request_id, sent)) => {
                        let waited = sent.elapsed();
                        if waited > Duration::from_secs(2) {
                            tracing::warn!(
                                ?waited,
                                "a browser answered the media server's offer late"
                            );
                        }
                        request_id
                    }
                    None => self.request_id(),
                }
            }
            _ => self.request_id(),
        };
        self.event(SFUEvent::SessionDescription {
            request_id,
            room_id,
            client_id: client,
            sdp: description,
        });
    }

    /// Tells a connection its last signal was not taken.
    fn refuse(&mut self, room_id: RoomId, client: ClientId, why: &str) {
        if let Some(client) = self.clients.get(&(room_id, client)) {
            let _ = client
                .outbox
                .try_send(FromMediaServer::Refused(why.to_string()));
        }
    }

    fn leave(&mut self, room: &str, room_id: RoomId, client: ClientId, reason: &str) {
        self.clients.remove(&(room_id, client));
        self.addresses.forget((room_id, client));
        if let Some(detector) = self.speakers.get_mut(&room_id) {
            detector.forget(&client);
        }
        if let Some(order) = self.last_n.get_mut(&room_id) {
            order.left(&client);
        }
        let request_id = self.request_id();
        self.event(SFUEvent::Leave {
            request_id,
            room_id,
            client_id: client,
            reason: reason.to_string(),
        });
        if !self.clients.keys().any(|(r, _)| *r == room_id) {
            self.rooms.remove(room);
            self.speakers.remove(&room_id);
            self.last_n.remove(&room_id);
        }
        // Whoever was paused behind them comes in.
        self.apply_last_n(room_id);
        self.count_size();
        if self.clients.is_empty() {
            // sfu 0.5 never forgets the addresses it has seen (its
            // demuxer's TODO): they would pile up and a reused address
            // (a TURN relay port) would stay tied to a closed connection.
            // With nobody connected, a fresh engine costs nothing.
            self.flush();
            self.addresses.clear();
            self.sfu = Sfu::new(rand_id(), self.advertised);
        }
    }

    fn request_id(&mut self) -> RequestId {
        self.next_request += 1;
        self.next_request
    }

    fn event(&mut self, event: SFUEvent) {
        // Only a description the engine would not take is the page's to
        // hear of (a join or leave it refuses is the engine's business).
        let about = match &event {
            SFUEvent::SessionDescription {
                room_id, client_id, ..
            } => Some((*room_id, *client_id)),
            _ => None,
        };
        let tagged = TaggedSFUEvent {
            now: Instant::now(),
            event,
        };
        if let Err(err) = self.sfu.handle_event(tagged) {
            tracing::info!(error = %err, "the media server refused a signal");
            if let Some((room_id, client)) = about {
                self.refuse(
                    room_id,
                    client,
                    &format!("the media server refused it: {err}"),
                );
            }
        }
        self.deliver_events();
    }

    /// Sends the engine's answers and offers to their call connections.
    fn deliver_events(&mut self) {
        let mut rooms_to_apply = Vec::new();
        while let Some(TaggedSFUEvent { event, .. }) = self.sfu.poll_event() {
            match event {
                SFUEvent::SessionDescription {
                    request_id,
                    room_id,
                    client_id,
                    sdp,
                } => {
                    let Some(client) = self.clients.get_mut(&(room_id, client_id)) else {
                        continue;
                    };
                    // The browser's ICE checks will name this fragment.
                    if let Some(ufrag) = ice_ufrag(&sdp.sdp) {
                        self.addresses.learn_ufrag(ufrag, (room_id, client_id));
                    }
                    let learned = paused_video::retransmission_ssrcs(&sdp.sdp);
                    if learned
                        .iter()
                        .any(|(media, resent)| client.retransmissions.get(media) != Some(resent))
                    {
                        client.retransmissions.extend(learned);
                        // A paused camera's new retransmission stream is
                        // held back too.
                        if !rooms_to_apply.contains(&room_id) {
                            rooms_to_apply.push(room_id);
                        }
                    }
                    let sdp_type = match sdp.sdp_type {
                        RTCSdpType::Offer => {
                            client.offer_pending = Some((request_id, Instant::now()));
                            "offer"
                        }
                        RTCSdpType::Answer => "answer",
                        _ => continue,
                    };
                    let sdp = match client.audio_level_id {
                        Some(id) => audio_level::with_extension(&sdp.sdp, id),
                        None => sdp.sdp,
                    };
                    let signal = Signal::Description {
                        sdp_type: sdp_type.to_string(),
                        sdp,
                    };
                    // A full outbox: that call connection is not reading
                    // (it is going away); its page starts over on resume.
                    if client
                        .outbox
                        .try_send(FromMediaServer::Signal(signal))
                        .is_err()
                    {
                        tracing::info!("a call connection did not take a media-server signal");
                    }
                }
                SFUEvent::Err {
                    reason,
                    room_id: Some(room_id),
                    client_id: Some(client_id),
                    ..
                } => {
                    tracing::info!(%reason, "the media server could not carry out a signal");
                    self.refuse(room_id, client_id, &reason);
                }
                SFUEvent::Err { reason, .. } => {
                    tracing::info!(%reason, "the media server could not carry out a signal");
                }
                _ => {}
            }
        }
        for room_id in rooms_to_apply {
            self.apply_last_n(room_id);
        }
    }

    fn datagram(&mut self, bytes: &[u8], from: SocketAddr) {
        let kind = datagram::classify(bytes);
        self.metrics.sfu_datagram("in", kind.label(), bytes.len());
        let checked = checked_ufrag(bytes);
        let Some(stand_in) = self.addresses.stand_in_for(from, checked.as_deref()) else {
            // Not from a media connection's address (a closed one's late
            // packet, a scanner): nothing to route it to.
            tracing::debug!(%from, ?checked, "a datagram from no media connection's address");
            return;
        };
        if let Datagram::Rtcp(Some(feedback)) = kind {
            self.metrics.sfu_feedback("in", feedback.label());
        }
        let now = Instant::now();
        if let Some(owner) = self.addresses.owner_of(from) {
            if let Some(client) = self.clients.get_mut(&owner) {
                client.heard = now;
            }
            if kind == Datagram::Rtp {
                self.hear(bytes, owner, now);
            }
        }
        let packet = TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: self.advertised,
                peer_addr: stand_in,
                transport_protocol: TransportProtocol::UDP,
                ecn: None,
            },
            message: BytesMut::from(bytes),
        };
        // A stray or late datagram (a closed connection's, a scanner's)
        // is dropped; it never stops the others.
        if let Err(err) = self.sfu.handle_read(packet) {
            tracing::debug!(error = %err, %from, %stand_in, "dropped a datagram");
        }
    }

    /// Feeds the audio level a microphone's packet carries to its room's
    /// speaker detector, and notes that a camera sends.
    fn hear(&mut self, bytes: &[u8], owner: Owner, now: Instant) {
        let Some(client) = self.clients.get_mut(&owner) else {
            return;
        };
        let ssrc = paused_video::rtp_ssrc_and_sequence(bytes).map(|(ssrc, _)| ssrc);
        if ssrc.is_some_and(|ssrc| client.video_ssrcs.contains(&ssrc)) {
            if client.video_seen.replace(now).is_none() {
                self.update_showing(owner);
            }
            return;
        }
        let Some(id) = client.audio_level_id else {
            return;
        };
        if let Some(level) = audio_level::read(bytes, id) {
            let (room_id, client) = owner;
            self.speakers
                .entry(room_id)
                .or_default()
                .level(client, level, now);
        }
    }

    /// The peers a room's detector last announced.
    fn speaker_peers(&self, room_id: RoomId) -> Vec<PeerId> {
        let Some(detector) = self.speakers.get(&room_id) else {
            return Vec::new();
        };
        detector
            .speakers()
            .iter()
            .filter_map(|client| self.clients.get(&(room_id, *client)))
            .map(|client| client.peer.clone())
            .collect()
    }

    /// Tells each room whose speakers changed who speaks now.
    fn announce_speakers(&mut self, now: Instant) {
        if now.saturating_duration_since(self.speakers_polled) < SPEAKERS_POLL_EVERY {
            return;
        }
        self.speakers_polled = now;
        // On the same beat: cameras gone quiet give up their place first.
        self.notice_quiet_cameras(now);
        let changed: Vec<RoomId> = self
            .speakers
            .iter_mut()
            .filter_map(|(room_id, detector)| detector.poll(now).map(|_| *room_id))
            .collect();
        for room_id in changed {
            if let (Some(order), Some(detector)) =
                (self.last_n.get_mut(&room_id), self.speakers.get(&room_id))
            {
                order.heard(detector.speakers());
            }
            self.apply_last_n(room_id);
            let peers = self.speaker_peers(room_id);
            for ((room, _), client) in &self.clients {
                if *room == room_id {
                    // A full outbox: that connection is going away.
                    let _ = client
                        .outbox
                        .try_send(FromMediaServer::Speakers(peers.clone()));
                }
            }
        }
    }

    /// Cameras that stopped sending give up their place among the last N.
    fn notice_quiet_cameras(&mut self, now: Instant) {
        let mut quiet = Vec::new();
        for (owner, client) in &mut self.clients {
            let gone_quiet = client
                .video_seen
                .is_some_and(|at| now.saturating_duration_since(at) > CAMERA_QUIET);
            if gone_quiet {
                client.video_seen = None;
                quiet.push(*owner);
            }
        }
        for owner in quiet {
            self.update_showing(owner);
        }
    }

    /// Whether `owner`'s camera takes a place among the last N: its page
    /// says it is on, and its packets come.
    fn update_showing(&mut self, owner: (RoomId, ClientId)) {
        let Some(client) = self.clients.get(&owner) else {
            return;
        };
        let showing = client.camera_on && client.video_seen.is_some();
        if let Some(order) = self.last_n.get_mut(&owner.0) {
            order.showing(owner.1, showing);
        }
        self.apply_last_n(owner.0);
    }

    /// Tells each browser of the room whose camera it does not receive now
    /// (when that changed), and holds those cameras' packets back from it.
    fn apply_last_n(&mut self, room_id: RoomId) {
        if let Some(order) = self.last_n.get(&room_id) {
            let members: Vec<ClientId> = self
                .clients
                .keys()
                .filter(|(room, _)| *room == room_id)
                .map(|(_, client)| *client)
                .collect();
            for member in members {
                let paused = order.paused_for(&member);
                let publishers: Vec<&Client> = paused
                    .iter()
                    .filter_map(|publisher| self.clients.get(&(room_id, *publisher)))
                    .collect();
                let mut ssrcs: Vec<u32> = publishers
                    .iter()
                    .flat_map(|p| p.video_ssrcs.iter().copied())
                    .collect();
                let peers: Vec<PeerId> = publishers.iter().map(|p| p.peer.clone()).collect();
                let Some(client) = self.clients.get_mut(&(room_id, member)) else {
                    continue;
                };
                // What the engine would resend of them goes too (a browser
                // asks again for what it missed before the pause).
                let resent: Vec<u32> = ssrcs
                    .iter()
                    .filter_map(|ssrc| client.retransmissions.get(ssrc).copied())
                    .collect();
                ssrcs.extend(resent);
                client.paused_video.set(&ssrcs);
                if client.paused_peers != peers {
                    client.paused_peers = peers.clone();
                    // A full outbox: that connection is going away.
                    let _ = client.outbox.try_send(FromMediaServer::VideoPaused(peers));
                }
            }
        }
        self.any_paused = self.clients.values().any(|c| !c.paused_video.is_empty());
    }

    fn tick(&mut self) {
        let now = Instant::now();
        if let Err(err) = self.sfu.handle_timeout(now) {
            tracing::debug!(error = %err, "media server timer");
        }
        self.announce_speakers(now);
        self.drop_silent(now);
        // Draining the read side is what forwards: each room takes its
        // publishers' packets there and writes them to the subscribers
        // (nothing comes out above the engine).
        while self.sfu.poll_read().is_some() {}
        self.deliver_events();
        self.flush();
    }

    /// Drops the media connections no datagram came from for the silence
    /// limit. A browser's connection is never that quiet while it lives:
    /// its ICE consent checks alone come every few seconds. Without this a
    /// connection whose call connection vanished without a word (its
    /// instance died, with the room's media held here) would be forwarded
    /// to, and keep the room, for ever. A page that is still there hears
    /// of it and starts over.
    fn drop_silent(&mut self, now: Instant) {
        if now.saturating_duration_since(self.silence_checked) < SILENCE_CHECK_EVERY {
            return;
        }
        self.silence_checked = now;
        let silent: Vec<(RoomId, ClientId)> = self
            .clients
            .iter()
            .filter(|(_, c)| now.saturating_duration_since(c.heard) > self.silence_limit)
            .map(|(key, _)| *key)
            .collect();
        for (room_id, client_id) in silent {
            let room = self
                .rooms
                .iter()
                .find(|(_, id)| **id == room_id)
                .map(|(room, _)| room.clone());
            if let Some(client) = self.clients.get(&(room_id, client_id)) {
                tracing::info!(limit = ?self.silence_limit, "dropped a media connection that went silent");
                self.metrics.sfu_dropped_silent();
                // A full outbox: that call connection is going away.
                let _ = client.outbox.try_send(FromMediaServer::Dropped(
                    "the media connection went silent; connect again".into(),
                ));
            }
            match room {
                Some(room) => self.leave(&room, room_id, client_id, "went silent"),
                None => {
                    self.clients.remove(&(room_id, client_id));
                }
            }
        }
    }

    /// The size gauges, after a browser came or went.
    fn count_size(&self) {
        let mut per_room: HashMap<RoomId, usize> = HashMap::new();
        for (room_id, _) in self.clients.keys() {
            *per_room.entry(*room_id).or_default() += 1;
        }
        // Everyone receives everyone else in the call.
        let subscriptions = per_room.values().map(|n| n * (n - 1)).sum();
        self.metrics
            .set_sfu_size(self.rooms.len(), self.clients.len(), subscriptions);
    }

    fn flush(&mut self) {
        while let Some(transmit) = self.sfu.poll_write() {
            // To a stand-in whose connection has left: nobody to send to.
            let Some(to) = self.addresses.real_for(transmit.transport.peer_addr) else {
                continue;
            };
            let kind = datagram::classify(&transmit.message);
            if self.any_paused && kind == Datagram::Rtp && self.held_back(&transmit.message, to) {
                self.metrics.sfu_held_back();
                continue;
            }
            match self.socket.send_to(&transmit.message, to) {
                Ok(sent) => {
                    self.metrics.sfu_datagram("out", kind.label(), sent);
                    if let Datagram::Rtcp(Some(feedback)) = kind {
                        self.metrics.sfu_feedback("out", feedback.label());
                    }
                }
                Err(err) => tracing::debug!(error = %err, "could not send a datagram"),
            }
        }
    }

    /// Whether an RTP packet the engine sends to `to` is of a camera paused
    /// for that browser.
    fn held_back(&mut self, packet: &[u8], to: SocketAddr) -> bool {
        let Some((ssrc, sequence)) = paused_video::rtp_ssrc_and_sequence(packet) else {
            return false;
        };
        let Some(owner) = self.addresses.owner_of(to) else {
            return false;
        };
        self.clients
            .get_mut(&owner)
            .is_some_and(|client| !client.paused_video.passes(ssrc, sequence))
    }

    fn stop(&mut self) {
        let clients: Vec<(RoomId, ClientId)> = self.clients.keys().copied().collect();
        for (room_id, client_id) in clients {
            let request_id = self.request_id();
            let _ = self.sfu.handle_event(TaggedSFUEvent {
                now: Instant::now(),
                event: SFUEvent::Leave {
                    request_id,
                    room_id,
                    client_id,
                    reason: "server stopping".into(),
                },
            });
        }
        self.clients.clear();
        self.rooms.clear();
        self.speakers.clear();
        self.last_n.clear();
        self.any_paused = false;
        self.flush();
        self.addresses.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ssrcs_an_offer_announces_are_read_once_each() {
        let sdp = "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=ssrc-group:FID 11 12\r\na=ssrc:11 cname:x\r\na=ssrc:11 msid:s t\r\na=ssrc:12 cname:x\r\na=ssrc:bad cname:x\r\n";
        assert_eq!(announced_ssrcs(sdp), vec![11, 12]);
        assert!(announced_ssrcs("v=0\r\n").is_empty());
    }

    #[test]
    fn the_ice_ufrag_is_read_from_the_description() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:Ab+/\r\na=ice-pwd:x\r\n";
        assert_eq!(ice_ufrag(sdp), Some("Ab+/"));
        assert_eq!(ice_ufrag("v=0\r\n"), None);
    }
}
