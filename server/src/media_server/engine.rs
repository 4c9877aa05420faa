//! The media server's thread: the UDP socket and the clock around the
//! browsers' peer connections (`peer`) and each room's forwarding core
//! (`domain::media::forward`), and the signaling in (commands) and out
//! (outboxes).
//!
//! A datagram finds its peer connection by address (learned from the ICE
//! check that names the connection's username fragment, see `addresses`).
//! A publisher's decrypted packet goes to its room's forwarding core, whose
//! outputs say which browser gets it on which m-line with which numbers;
//! a browser's keyframe request goes there too, and comes out as a
//! throttled request to the publisher.

use super::addresses::{checked_ufrag, AddressBook, ClientId, Owner, RoomId};
use super::audio_level;
use super::datagram::{self, Datagram};
use super::feedback_to_app::highest_loss;
use super::peer::MediaPeer;
use app::protocol::{PeerId, Signal};
use domain::ids::ConnectionId;
use domain::media::forward::keyframe::VideoCodec;
use domain::media::forward::layers::Wish;
use domain::media::forward::rewrite::StreamKind;
use domain::media::forward::room::{ForwardingRoom, IncomingRtp, Output};
use domain::media::forward::vp8;
use domain::media::last_n::LastN;
use domain::media::speakers::SpeakerDetector;
use domain::media::{FromMediaServer, MediaServerOutbox};
use rtc::peer_connection::message::RTCMessage;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::shared::{TransportContext, TransportProtocol};
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
    /// The cameras a connection's page wants whatever the last-N order,
    /// and how tall it shows each camera (0: not at all), by media client
    /// id: the simulcast layer it gets of each.
    Watch {
        room: String,
        client: u64,
        conn: ConnectionId,
        watched: Vec<u64>,
        heights: Vec<(u64, u16)>,
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
/// How often every connection's timers and output are looked at whatever
/// the engine noted: per datagram, only the connections it touched are.
/// A timer a connection set that the engine did not note runs at most this
/// late.
const FULL_PASS_EVERY: Duration = COMMAND_TICK;
/// How often media connections are looked at for silence.
const SILENCE_CHECK_EVERY: Duration = Duration::from_secs(1);

/// One media connection: which call connection owns it, where its
/// signals go, and its peer connection.
struct Client {
    /// Who it is, for the speakers announced to the room.
    peer: PeerId,
    conn: ConnectionId,
    outbox: MediaServerOutbox,
    media: MediaPeer,
    /// The browser's ICE username fragment: a new one means a new peer
    /// connection (the page started over), so a new media connection.
    ufrag: Option<String>,
    /// The SSRCs its last offer announced (`a=ssrc`): its own streams.
    ssrcs: Vec<u32>,
    /// The id its offer gave the audio level extension (the answer keeps
    /// it): the level is read off its microphone's packets.
    audio_level_id: Option<u8>,
    /// The SSRCs it publishes video under (camera or screen).
    video_ssrcs: Vec<u32>,
    /// When its last video packet came: a camera that sends takes a place
    /// among the last N.
    video_seen: Option<Instant>,
    /// Whether its page says the camera (or a shared screen) is on: one
    /// turned off still sends black frames.
    camera_on: bool,
    /// The cameras it does not receive now (last-N), as it was told.
    paused_peers: Vec<PeerId>,
    /// When its browser was last heard (any datagram; at first, when it
    /// offered): see `Engine::drop_silent`.
    heard: Instant,
}

impl Client {
    fn tell(&self, message: FromMediaServer) {
        // A full outbox: that call connection is not reading (it is going
        // away); its page starts over on resume.
        if self.outbox.try_send(message).is_err() {
            tracing::info!("a call connection did not take a media-server message");
        }
    }

    fn describe(&self, sdp_type: &str, sdp: String) {
        self.tell(FromMediaServer::Signal(Signal::Description {
            sdp_type: sdp_type.to_string(),
            sdp,
        }));
    }
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

/// A publisher's packet on its way to the browsers that receive it, with
/// the audio level it carries (under the publisher's id).
struct Forwarded {
    rtp: rtc::rtp::Packet,
    audio_level: Option<bytes::Bytes>,
}

struct Engine {
    socket: UdpSocket,
    advertised: SocketAddr,
    /// Room (meeting id) to the engine's room id, while anyone is in it.
    rooms: HashMap<String, RoomId>,
    clients: HashMap<Owner, Client>,
    /// Each room's forwarding core.
    forwarding: HashMap<RoomId, ForwardingRoom<ClientId>>,
    metrics: domain::metrics::Metrics,
    /// Which connection a datagram's address belongs to (see `addresses`).
    addresses: AddressBook,
    /// Who speaks, per room with anyone in it.
    speakers: HashMap<RoomId, SpeakerDetector<ClientId>>,
    /// When the speaker detectors were last asked.
    speakers_polled: Instant,
    /// How many cameras each browser receives besides those it asks for.
    last_n_limit: usize,
    /// Per room with anyone in it: who spoke last, and who asked for whom.
    last_n: HashMap<RoomId, LastN<ClientId>>,
    /// The earliest timer of any connection or room, as last looked at.
    deadline: Option<Instant>,
    /// When every connection was last looked at (see `FULL_PASS_EVERY`).
    full_pass_at: Instant,
    /// A command changed something: look at every connection next.
    full_pass_due: bool,
    /// The connections that may have something to send since the last
    /// flush (a datagram came from one, a packet was written to another).
    touched: Vec<Owner>,
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
        socket,
        advertised,
        rooms: HashMap::new(),
        clients: HashMap::new(),
        forwarding: HashMap::new(),
        metrics,
        addresses: AddressBook::default(),
        speakers: HashMap::new(),
        speakers_polled: Instant::now(),
        last_n_limit,
        last_n: HashMap::new(),
        deadline: None,
        full_pass_at: Instant::now(),
        full_pass_due: true,
        touched: Vec::new(),
        silence_limit,
        silence_checked: Instant::now(),
    };
    let mut buffer = vec![0u8; DATAGRAM_MAX];
    loop {
        // The peer connections are third-party code fed by strangers'
        // datagrams and SDP: should it ever panic, the media server starts
        // over empty (pages reconnect when their connection fails) instead
        // of dying.
        let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            engine.step(&commands, &mut buffer)
        }));
        match step {
            Ok(Step::Go) => {}
            Ok(Step::Stop) => return,
            Err(_) => {
                tracing::error!("the media engine failed; every media connection starts over");
                engine.metrics.sfu_restarted();
                for client in engine.clients.values() {
                    client.tell(FromMediaServer::Dropped(
                        "the media server restarted; connect again".into(),
                    ));
                }
                engine.clients.clear();
                engine.rooms.clear();
                engine.forwarding.clear();
                engine.addresses.clear();
                engine.speakers.clear();
                engine.last_n.clear();
                engine.count_size();
            }
        }
    }
}

enum Step {
    Go,
    Stop,
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
                Ok(command) => {
                    self.command(command);
                    self.full_pass_due = true;
                }
                Err(TryRecvError::Empty) => break,
            }
        }
        if self.full_pass_due {
            self.tick();
        }
        self.flush_touched();
        let now = Instant::now();
        let full_pass = self.full_pass_at + FULL_PASS_EVERY;
        let wait = self
            .deadline
            .map_or(full_pass, |at| at.min(full_pass))
            .saturating_duration_since(now)
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

    /// The earliest timer of every connection and room.
    fn next_timeout(&mut self) -> Option<Instant> {
        let peers = self
            .clients
            .values_mut()
            .filter_map(|client| client.media.poll_timeout());
        let rooms = self.forwarding.values().filter_map(|room| room.next_due());
        peers.chain(rooms).min()
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
                heights,
            } => {
                let Some(room_id) = self.owned_by(&room, client, &conn) else {
                    return;
                };
                if let Some(order) = self.last_n.get_mut(&room_id) {
                    order.watch(client, watched);
                    self.apply_last_n(room_id);
                }
                let wishes = heights
                    .into_iter()
                    .map(|(publisher, height)| {
                        let wish = if height == 0 {
                            Wish::Off
                        } else {
                            Wish::UpTo(height)
                        };
                        (publisher, wish)
                    })
                    .collect();
                let now = Instant::now();
                if let Some(room) = self.forwarding.get_mut(&room_id) {
                    let outputs = room.set_wishes(&client, wishes, now);
                    self.carry_out(room_id, outputs, None, now);
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
        match sdp_type.as_str() {
            "offer" => self.offer(room, client, peer, conn, outbox, sdp),
            "answer" => {
                let Some(&room_id) = self.rooms.get(&room) else {
                    return;
                };
                let key = (room_id, client);
                let Some(own) = self.clients.get_mut(&key) else {
                    return;
                };
                if own.conn != conn {
                    return;
                }
                let now = Instant::now();
                match own.media.answer(sdp, now) {
                    Ok(true) => self.follow_negotiated(key, now),
                    Ok(false) => {
                        tracing::info!("a browser answered an offer the media server gave up on");
                    }
                    Err(err) => {
                        tracing::info!(error = %err, "the media server could not apply a browser's answer");
                        own.tell(FromMediaServer::Refused(format!(
                            "the media server could not apply the answer: {err}"
                        )));
                    }
                }
                self.follow_receiving(key, now);
                self.offer_if_due(key);
            }
            // Rollbacks and provisional answers: the browser is the polite
            // side and never needs them with the server.
            _ => {}
        }
    }

    fn offer(
        &mut self,
        room: String,
        client: ClientId,
        peer: PeerId,
        conn: ConnectionId,
        outbox: MediaServerOutbox,
        sdp: String,
    ) {
        let now = Instant::now();
        let room_id = *self
            .rooms
            .entry(room.clone())
            .or_insert_with(uuid::Uuid::new_v4);
        let key = (room_id, client);
        // The media server routes a publisher's packets by their SSRC: an
        // offer announcing one another connection of the room already
        // sends under would take that person's stream over (or stop it).
        // Nobody may.
        let announced = announced_ssrcs(&sdp);
        let taken = self.clients.iter().any(|((r, c), other)| {
            *r == room_id && *c != client && other.ssrcs.iter().any(|s| announced.contains(s))
        });
        if taken {
            tracing::info!("an offer announced an SSRC someone else in the room sends under");
            let _ = outbox.try_send(FromMediaServer::Refused(
                "the offer announces a stream (SSRC) that someone else in the room sends".into(),
            ));
            self.forget_room_if_empty(&room, room_id);
            return;
        }
        let ufrag = ice_ufrag(&sdp).map(str::to_string);
        let same = self
            .clients
            .get(&key)
            .map(|c| c.conn == conn && c.ufrag == ufrag);
        // What the connection published before this offer.
        let mut before = Vec::new();
        let mut replaced = false;
        if same == Some(false) {
            // A resumed page, or one that started its connection over: the
            // old media connection closes. What it published stays with
            // the others until the new offer publishes it again, under new
            // SSRCs on the same slots: they see the next keyframe, not a
            // renegotiation.
            if let Some(mut old) = self.clients.remove(&key) {
                old.media.close();
                before = old.media.published().to_vec();
                replaced = true;
            }
            self.addresses.forget(key);
        }
        if same != Some(true) {
            let media = match MediaPeer::new(self.advertised, now) {
                Ok(media) => media,
                Err(err) => {
                    tracing::warn!(error = %err, "could not open a media connection");
                    let _ = outbox.try_send(FromMediaServer::Refused(
                        "the media server could not open a connection".into(),
                    ));
                    self.leave(&room, room_id, client, "no new media connection");
                    return;
                }
            };
            self.addresses.learn_ufrag(media.ufrag(), key);
            // Who speaks already, so the page need not wait for the next
            // change.
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
                    media,
                    ufrag,
                    ssrcs: Vec::new(),
                    audio_level_id: None,
                    video_ssrcs: Vec::new(),
                    video_seen: None,
                    camera_on: true,
                    paused_peers: Vec::new(),
                    heard: now,
                },
            );
            let limit = self.last_n_limit;
            self.last_n
                .entry(room_id)
                .or_insert_with(|| LastN::new(limit))
                .joined(client);
            self.count_size();
            let room = self.forwarding.entry(room_id).or_default();
            let outputs = if replaced {
                room.reconnect(client, now)
            } else {
                room.join(client, now)
            };
            self.carry_out(room_id, outputs, None, now);
        }
        let audio_level_id = audio_level::extension_id(&sdp);
        let Some(own) = self.clients.get_mut(&key) else {
            return;
        };
        if same == Some(true) {
            before = own.media.published().to_vec();
        }
        let answer = match own.media.offer(sdp, now) {
            Ok(answer) => answer,
            Err(err) => {
                tracing::info!(error = %err, "the media server could not answer a browser's offer");
                own.tell(FromMediaServer::Refused(format!(
                    "the media server could not answer the offer: {err}"
                )));
                return;
            }
        };
        let Some(answer) = answer else {
            // An offer of the server's is out: the browser takes it first
            // (it is the polite side), then offers again.
            tracing::debug!("a browser's offer crossed the media server's");
            return;
        };
        own.describe("answer", answer);
        own.ssrcs = announced;
        own.audio_level_id = audio_level_id;
        let published = own.media.published().to_vec();
        // Simulcast layers add theirs as they start (see `datagram`).
        own.video_ssrcs = published
            .iter()
            .filter(|t| t.kind == StreamKind::Video)
            .filter_map(|t| t.ssrc)
            .collect();
        // What it stopped publishing goes first, then what is new (a
        // reconnected camera under a new SSRC replaces the old stream).
        let mut outputs = Vec::new();
        if let Some(room) = self.forwarding.get_mut(&room_id) {
            for gone in before
                .iter()
                .filter(|old| !published.iter().any(|new| new.mid == old.mid))
            {
                outputs.extend(room.unpublish(&client, &gone.mid, now));
            }
            for track in published.iter().filter(|new| !before.contains(new)) {
                let codec = match track.kind {
                    StreamKind::Video => VideoCodec::Vp8,
                    StreamKind::Audio => VideoCodec::Other,
                };
                // A camera in simulcast is published layer by layer, as
                // each layer's first packet names its SSRC.
                if let Some(ssrc) = track.ssrc {
                    outputs.extend(room.publish(client, &track.mid, track.kind, codec, ssrc, now));
                }
            }
        }
        self.carry_out(room_id, outputs, None, now);
        self.follow_receiving(key, now);
        // Its cameras may have new SSRCs, and a newcomer has cameras to be
        // paused.
        self.apply_last_n(room_id);
        self.offer_if_due(key);
    }

    /// Tells `owner`'s room when its connection starts (or stops) carrying
    /// media to its browser: a newcomer's keyframes are asked for then,
    /// not when it joined (see `ForwardingRoom::set_receiving`).
    fn follow_receiving(&mut self, owner: Owner, now: Instant) {
        let Some(receiving) = self
            .clients
            .get_mut(&owner)
            .and_then(|client| client.media.take_receiving_change())
        else {
            return;
        };
        let (room_id, client) = owner;
        let Some(room) = self.forwarding.get_mut(&room_id) else {
            return;
        };
        tracing::debug!(receiving, "a media connection's receiving changed");
        let outputs = room.set_receiving(&client, receiving, now);
        self.carry_out(room_id, outputs, None, now);
    }

    /// Tells `owner`'s room which of its m-lines its browser knows as they
    /// are now (see `ForwardingRoom::set_negotiated`): their keyframes are
    /// asked for then. Only keyframe requests come of it, so the
    /// `carry_out` here renegotiates nothing.
    fn follow_negotiated(&mut self, owner: Owner, now: Instant) {
        let Some(slots) = self
            .clients
            .get(&owner)
            .map(|client| client.media.negotiated_slots())
        else {
            return;
        };
        let (room_id, client) = owner;
        let Some(room) = self.forwarding.get_mut(&room_id) else {
            return;
        };
        let mut outputs = Vec::new();
        for slot in slots {
            outputs.extend(room.set_negotiated(&client, slot, now));
        }
        self.carry_out(room_id, outputs, None, now);
    }

    /// Does what a room's forwarding core decided. `packet`: the packet
    /// its sends are of.
    fn carry_out(
        &mut self,
        room_id: RoomId,
        outputs: Vec<Output<ClientId>>,
        packet: Option<&Forwarded>,
        now: Instant,
    ) {
        let mut renegotiate = Vec::new();
        for output in outputs {
            match output {
                Output::Send { to, slot, header } => {
                    let (Some(packet), Some(client)) =
                        (packet, self.clients.get_mut(&(room_id, to)))
                    else {
                        continue;
                    };
                    // A receiver whose VP8 numbers differ (after a layer
                    // switch) gets a copy rewritten.
                    let rewritten = header.renumbered.then(|| {
                        let mut payload = bytes::BytesMut::from(&packet.rtp.payload[..]);
                        vp8::write_numbers(&mut payload, header.vp8);
                        payload.freeze()
                    });
                    let sent = client.media.send(
                        slot,
                        header,
                        &packet.rtp,
                        rewritten,
                        packet.audio_level.as_ref(),
                        now,
                    );
                    if let Err(err) = sent {
                        tracing::debug!(error = %err, "could not forward a packet");
                    }
                    self.touched.push((room_id, to));
                }
                Output::RequestKeyframe { publisher, ssrc } => {
                    if let Some(client) = self.clients.get_mut(&(room_id, publisher)) {
                        if let Err(err) = client.media.request_keyframe(ssrc, now) {
                            tracing::debug!(error = %err, "could not ask for a keyframe");
                        }
                        self.touched.push((room_id, publisher));
                    }
                }
                Output::Renegotiate { subscriber } => renegotiate.push(subscriber),
            }
        }
        for subscriber in renegotiate {
            let key = (room_id, subscriber);
            let slots = match self.forwarding.get(&room_id) {
                Some(room) => room.slots_of(&subscriber),
                None => continue,
            };
            if let Some(client) = self.clients.get_mut(&key) {
                if let Err(err) = client.media.sync_slots(&slots) {
                    tracing::warn!(error = %err, "could not update a browser's m-lines");
                }
            }
            // A track that took an m-line over from another of the same
            // person's changes nothing the browser sees: no offer is made
            // for it, and it may go at once.
            self.follow_negotiated(key, now);
            self.offer_if_due(key);
        }
    }

    /// Sends `key`'s browser the server's offer, if one is due and may go.
    fn offer_if_due(&mut self, key: Owner) {
        let Some(client) = self.clients.get_mut(&key) else {
            return;
        };
        match client.media.next_offer(Instant::now()) {
            Ok(Some(offer)) => client.describe("offer", offer),
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(error = %err, "the media server could not make an offer");
            }
        }
    }

    /// Forgets a room nobody is in any more (its forwarding core, speakers
    /// and last-N order with it).
    fn forget_room_if_empty(&mut self, room: &str, room_id: RoomId) {
        if !self.clients.keys().any(|(r, _)| *r == room_id) {
            self.rooms.remove(room);
            self.forwarding.remove(&room_id);
            self.speakers.remove(&room_id);
            self.last_n.remove(&room_id);
        }
    }

    fn leave(&mut self, room: &str, room_id: RoomId, client: ClientId, reason: &str) {
        if let Some(mut gone) = self.clients.remove(&(room_id, client)) {
            tracing::debug!(reason, "a media connection closed");
            gone.media.close();
        }
        self.addresses.forget((room_id, client));
        if let Some(detector) = self.speakers.get_mut(&room_id) {
            detector.forget(&client);
        }
        if let Some(order) = self.last_n.get_mut(&room_id) {
            order.left(&client);
        }
        let now = Instant::now();
        let outputs = self
            .forwarding
            .get_mut(&room_id)
            .map(|room| room.leave(&client, now))
            .unwrap_or_default();
        self.carry_out(room_id, outputs, None, now);
        self.forget_room_if_empty(room, room_id);
        // Whoever was paused behind them comes in.
        self.apply_last_n(room_id);
        self.count_size();
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
        let Some(owner) = self.addresses.owner_of(from) else {
            return;
        };
        if let Datagram::Rtcp(Some(feedback)) = kind {
            self.metrics.sfu_feedback("in", feedback.label());
        }
        let now = Instant::now();
        if kind == Datagram::Rtp {
            self.hear(bytes, owner, now);
        }
        let Some(client) = self.clients.get_mut(&owner) else {
            return;
        };
        client.heard = now;
        let transport = TransportContext {
            local_addr: self.advertised,
            peer_addr: stand_in,
            transport_protocol: TransportProtocol::UDP,
            ecn: None,
        };
        // A stray or broken datagram is dropped; it never stops the others.
        if let Err(err) = client.media.handle_datagram(bytes, transport, now) {
            tracing::debug!(error = %err, %from, "dropped a datagram");
        }
        // Its answer (an ICE response, a DTLS flight, a report) goes out
        // with this step's flush, and a timer it set counts.
        if let Some(at) = client.media.poll_timeout() {
            self.deadline = Some(self.deadline.map_or(at, |known| known.min(at)));
        }
        self.touched.push(owner);
        let mut messages = Vec::new();
        while let Some(message) = client.media.poll_message() {
            messages.push(message);
        }
        // A layer starts again, under the same SSRC, after each
        // renegotiation (see `peer::interceptors`): noted once.
        let started = client.media.take_started_layers();
        for layer in &started {
            if !client.video_ssrcs.contains(&layer.ssrc) {
                client.video_ssrcs.push(layer.ssrc);
            }
        }
        let (room_id, from_client) = owner;
        if let (false, Some(room)) = (started.is_empty(), self.forwarding.get_mut(&room_id)) {
            let mut outputs = Vec::new();
            for layer in started {
                tracing::debug!(mid = %layer.mid, layer = layer.layer, "a simulcast layer started");
                outputs.extend(room.publish_layer(
                    from_client,
                    &layer.mid,
                    StreamKind::Video,
                    VideoCodec::Vp8,
                    layer.layer,
                    layer.ssrc,
                    now,
                ));
            }
            self.carry_out(room_id, outputs, None, now);
            self.apply_last_n(room_id);
        }
        for message in messages {
            match message {
                RTCMessage::RtpPacket(_, packet) => {
                    let Some(room) = self.forwarding.get_mut(&room_id) else {
                        continue;
                    };
                    let incoming = IncomingRtp {
                        ssrc: packet.header.ssrc,
                        sequence: packet.header.sequence_number,
                        timestamp: packet.header.timestamp,
                        payload: &packet.payload,
                    };
                    let outputs = room.rtp(&from_client, incoming, now);
                    self.metrics.sfu_held_back(room.take_withheld());
                    let audio_level = self
                        .clients
                        .get(&owner)
                        .and_then(|c| c.audio_level_id)
                        .and_then(|id| packet.header.get_extension(id));
                    let forwarded = Forwarded {
                        rtp: packet,
                        audio_level,
                    };
                    self.carry_out(room_id, outputs, Some(&forwarded), now);
                }
                RTCMessage::RtcpPacket(_, packets) => {
                    if let (Some(loss), Some(room)) =
                        (highest_loss(&packets), self.forwarding.get_mut(&room_id))
                    {
                        let outputs = room.receiver_report(&from_client, loss, now);
                        self.carry_out(room_id, outputs, None, now);
                    }
                    let wanted: Vec<u32> = packets
                        .iter()
                        .flat_map(|packet| {
                            let any = packet.as_any();
                            if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
                                vec![pli.media_ssrc]
                            } else if let Some(fir) = any.downcast_ref::<FullIntraRequest>() {
                                fir.fir.iter().map(|entry| entry.ssrc).collect()
                            } else {
                                Vec::new()
                            }
                        })
                        .collect();
                    for ssrc in wanted {
                        let Some(room) = self.forwarding.get_mut(&room_id) else {
                            continue;
                        };
                        let outputs = room.keyframe_wanted(&from_client, ssrc, now);
                        self.carry_out(room_id, outputs, None, now);
                    }
                }
                _ => {}
            }
        }
        self.follow_receiving(owner, now);
    }

    /// Feeds the audio level a microphone's packet carries to its room's
    /// speaker detector, and notes that a camera sends. (SRTP leaves the
    /// RTP header and its extensions in the clear, RFC 3711 §3.1.)
    fn hear(&mut self, bytes: &[u8], owner: Owner, now: Instant) {
        let Some(client) = self.clients.get_mut(&owner) else {
            return;
        };
        let ssrc = datagram::rtp_ssrc(bytes);
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
    /// (when that changed), and has the forwarding core stop and resume
    /// those cameras for it (a resumed one starts at a keyframe, with no
    /// gap in its numbers).
    fn apply_last_n(&mut self, room_id: RoomId) {
        let Some(order) = self.last_n.get(&room_id) else {
            return;
        };
        let members: Vec<ClientId> = self
            .clients
            .keys()
            .filter(|(room, _)| *room == room_id)
            .map(|(_, client)| *client)
            .collect();
        let now = Instant::now();
        let mut outputs = Vec::new();
        for member in members {
            let paused = order.paused_for(&member);
            let peers: Vec<PeerId> = paused
                .iter()
                .filter_map(|publisher| self.clients.get(&(room_id, *publisher)))
                .map(|p| p.peer.clone())
                .collect();
            if let Some(room) = self.forwarding.get_mut(&room_id) {
                outputs.extend(room.pause_video_of(&member, &paused, now));
            }
            let Some(client) = self.clients.get_mut(&(room_id, member)) else {
                continue;
            };
            if client.paused_peers != peers {
                client.paused_peers = peers.clone();
                client.tell(FromMediaServer::VideoPaused(peers));
            }
        }
        self.carry_out(room_id, outputs, None, now);
    }

    /// Runs what is due. A full pass (every connection's timers and
    /// output) when a timer is due, a command came, or `FULL_PASS_EVERY`
    /// went by; otherwise only the connections touched since the last
    /// flush send what they have.
    fn tick(&mut self) {
        let now = Instant::now();
        let full = self.full_pass_due
            || self.deadline.is_some_and(|at| at <= now)
            || now >= self.full_pass_at + FULL_PASS_EVERY;
        if !full {
            self.flush_touched();
            return;
        }
        self.full_pass_due = false;
        self.full_pass_at = now;
        let mut due = Vec::new();
        for (owner, client) in &mut self.clients {
            if client.media.poll_timeout().is_some_and(|at| at <= now) {
                if let Err(err) = client.media.handle_timeout(now) {
                    tracing::debug!(error = %err, "media connection timer");
                }
                due.push(*owner);
            }
        }
        // An offer given up on is made again.
        for owner in due {
            self.follow_receiving(owner, now);
            self.offer_if_due(owner);
        }
        let rooms: Vec<RoomId> = self
            .forwarding
            .iter()
            .filter(|(_, room)| room.next_due().is_some_and(|at| at <= now))
            .map(|(id, _)| *id)
            .collect();
        for room_id in rooms {
            let outputs = self
                .forwarding
                .get_mut(&room_id)
                .map(|room| room.poll(now))
                .unwrap_or_default();
            self.carry_out(room_id, outputs, None, now);
        }
        let switches: u64 = self
            .forwarding
            .values_mut()
            .map(|room| room.take_layer_switches())
            .sum();
        self.metrics.sfu_layer_switches(switches);
        self.announce_speakers(now);
        self.drop_silent(now);
        self.flush();
        self.deadline = self.next_timeout();
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

    /// Sends what every peer connection has to send.
    fn flush(&mut self) {
        self.touched.clear();
        let owners: Vec<Owner> = self.clients.keys().copied().collect();
        for owner in owners {
            self.flush_one(owner);
        }
    }

    /// Sends what the connections touched since the last flush have.
    fn flush_touched(&mut self) {
        let mut touched = std::mem::take(&mut self.touched);
        for owner in touched.drain(..) {
            self.flush_one(owner);
        }
        // The allocation is kept for the next datagram.
        self.touched = touched;
    }

    fn flush_one(&mut self, owner: Owner) {
        if let Some(client) = self.clients.get_mut(&owner) {
            while let Some(transmit) = client.media.poll_transmit() {
                // To a stand-in whose pairing is gone: nobody to send to.
                let Some(to) = self.addresses.real_for(transmit.transport.peer_addr) else {
                    continue;
                };
                let kind = datagram::classify(&transmit.message);
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
    }

    fn stop(&mut self) {
        for client in self.clients.values_mut() {
            client.media.close();
        }
        self.flush();
        self.clients.clear();
        self.rooms.clear();
        self.forwarding.clear();
        self.speakers.clear();
        self.last_n.clear();
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
