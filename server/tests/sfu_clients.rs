//! The media server with real WebRTC clients: headless peer connections
//! (webrtc-rs's async `webrtc` crate) that sign in, join a call through
//! moim's signaling like a page does, and publish or receive RTP through
//! the server's one UDP socket over loopback. What Chromium does in
//! end2end/tests/sfu.spec.ts, here at a size a browser test cannot reach
//! on a small machine: one publisher and twenty subscribers; and the
//! speakers the server announces from the audio level a microphone's
//! packets carry (negotiated as a browser does).

mod common;

use app::protocol::media_server::media_client_id;
use app::protocol::{ClientMessage, MediaPath, PeerId, ServerMessage, Signal};
use common::people::{join_call, meeting_with_everyone, person, Person};
use common::redis_server::RedisServer;
use common::ws::{Event, Ws};
use common::{cluster, spawn_with, Backend, Spawn, TestApp};
use rtc::interceptor::{Attribute, Interceptor, Packet, Registry, Slot, StreamInfo, TaggedPacket};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{
    MediaEngine, MIME_TYPE_OPUS, MIME_TYPE_VP8,
};
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCPeerConnectionState,
};
use webrtc::rtp_transceiver::RtpSender;

/// The publisher's first RTP sequence number: close to the top, so the
/// stream wraps around to 0 while the subscribers watch it.
const FIRST_SEQUENCE: u16 = 65_200;
/// One packet every this often (a 100 packets/s video stream).
const PACKET_EVERY: Duration = Duration::from_millis(10);
/// The twenty-subscriber test's pace (50 packets/s): twenty receiving
/// WebRTC stacks run inside the test's own process on a two-core machine,
/// and a loaded run otherwise starves them (they fall behind, ask for
/// retransmissions, and some never finish their DTLS handshake). The
/// server's forwarding is what the test checks, not its speed.
const TWENTY_PACKET_EVERY: Duration = Duration::from_millis(20);

/// What a headless client saw.
#[derive(Default)]
struct Seen {
    connected: bool,
    /// The peer connection's last state (for the message of a failure).
    state: Option<RTCPeerConnectionState>,
    /// What the server refused of this client's signals (`media_refused`),
    /// for the message of a failure.
    refused: Vec<String>,
    /// The publisher's packets as received: (sequence number, the index
    /// the publisher wrote into the payload), in arrival order.
    video: Vec<(u16, u32)>,
    /// The SSRC the video arrived with.
    video_ssrc: Option<u32>,
    /// The payload types the video arrived with.
    video_payload_types: std::collections::BTreeSet<u8>,
    /// Every offer the media server sent this client.
    offers: Vec<String>,
    /// How many remote video tracks opened.
    video_tracks: usize,
    /// Every list of speakers the media server announced.
    speakers: Vec<Vec<PeerId>>,
    /// Video packets received, by the SSRC of the camera that sent them
    /// (written into the payload by `film`).
    video_packets: std::collections::HashMap<u32, u32>,
    /// Every list of paused cameras the media server sent (last-N).
    paused: Vec<Vec<PeerId>>,
    /// The audio levels (RFC 6464, 0 loudest) the forwarded audio carried,
    /// in arrival order: whatever one-byte extension a forwarded audio
    /// packet has (the media server forwards that one only).
    audio_levels: Vec<u8>,
    /// How often the media server said the room's media moved.
    moved: usize,
}

#[derive(Clone)]
struct Handler {
    seen: Arc<Mutex<Seen>>,
    /// The remote video track, once it opens (to send a keyframe request).
    video_track: Arc<Mutex<Option<Arc<dyn TrackRemote>>>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let mut seen = self.seen.lock().unwrap();
        seen.state = Some(state);
        if state == RTCPeerConnectionState::Connected {
            seen.connected = true;
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        if track.kind().await != RtpCodecKind::Video {
            let seen = self.seen.clone();
            tokio::spawn(async move {
                while let Some(event) = track.poll().await {
                    if let TrackRemoteEvent::OnRtpPacket(packet) = event {
                        let level = packet
                            .header
                            .get_extension_ids()
                            .into_iter()
                            .find_map(|id| packet.header.get_extension(id))
                            .and_then(|payload| payload.first().copied());
                        if let Some(level) = level {
                            seen.lock().unwrap().audio_levels.push(level & 0x7f);
                        }
                    }
                }
            });
            return;
        }
        *self.video_track.lock().unwrap() = Some(track.clone());
        self.seen.lock().unwrap().video_tracks += 1;
        let seen = self.seen.clone();
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(packet) = event {
                    let index = packet
                        .payload
                        .get(PAYLOAD_HEADER.len()..PAYLOAD_HEADER.len() + 4)
                        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                    let mut seen = seen.lock().unwrap();
                    seen.video_ssrc = Some(packet.header.ssrc);
                    seen.video_payload_types.insert(packet.header.payload_type);
                    // Whose camera: `film` writes its SSRC after the index
                    // (the media server gives each browser SSRCs of its own).
                    let origin = packet
                        .payload
                        .get(PAYLOAD_HEADER.len() + 4..PAYLOAD_HEADER.len() + 8)
                        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                    *seen.video_packets.entry(origin).or_default() += 1;
                    if let Some(index) = index {
                        seen.video.push((packet.header.sequence_number, index));
                    }
                }
            }
        });
    }
}

/// One test of this file at a time. Each drives up to twenty-one WebRTC
/// stacks and a media server on two worker threads; run side by side on a
/// two-core machine they starve each other, and a client that answers the
/// media server's offer more than 5 s late has it rolled back by the
/// server (and made again), so the test would fail on the machine's load
/// rather than on the server.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A VP8 payload descriptor (start of a partition) and the start of a key
/// frame (its start code), then the packet's index.
const PAYLOAD_HEADER: [u8; 7] = [0x10, 0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a];
/// The same for a frame that is not a keyframe (the inter-frame bit set):
/// a receiver cannot start decoding there, and the media server starts a
/// stream for a browser only at a keyframe.
const DELTA_PAYLOAD_HEADER: [u8; 7] = [0x10, 0x01, 0x00, 0x00, 0x9d, 0x01, 0x2a];
/// One packet in this many of `film_numbered` starts a keyframe, as an
/// encoder sends one now and then (and when asked).
const KEYFRAME_EVERY: u32 = 25;

/// Hands the keyframe requests a publisher receives to the application
/// (its local track's events); inbound RTCP otherwise ends inside the
/// interceptor chain, and rtc 0.21's sender statistics do not count PLIs.
/// Last in the chain, so the interceptors that act on RTCP saw it all.
#[derive(Default)]
struct KeyframeRequestsToApplication {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl rtc::sansio::Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequestsToApplication {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut packet: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(rtcp) = &packet.message.packet {
            if !rtcp
                .iter()
                .any(|p| p.as_any().is::<PictureLossIndication>())
            {
                return Ok(());
            }
            packet.message.add(Attribute::DeliverToApplication);
        }
        self.read.push_back(packet);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, packet: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(packet);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

impl Interceptor for KeyframeRequestsToApplication {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// One person's headless page: the call socket and a peer connection to
/// the media server.
struct Client {
    /// Its peer connection to the media server (a new one when the room's
    /// media moved).
    pc: Arc<Mutex<Arc<dyn PeerConnection>>>,
    seen: Arc<Mutex<Seen>>,
    video_track: Arc<Mutex<Option<Arc<dyn TrackRemote>>>>,
    outgoing: mpsc::UnboundedSender<ClientMessage>,
    signaling: tokio::task::JoinHandle<()>,
    peer_id: PeerId,
}

fn codec(mime_type: &str) -> RTCRtpCodec {
    let audio = mime_type == MIME_TYPE_OPUS;
    RTCRtpCodec {
        mime_type: mime_type.to_string(),
        clock_rate: if audio { 48_000 } else { 90_000 },
        channels: if audio { 2 } else { 0 },
        sdp_fmtp_line: if audio {
            "minptime=10;useinbandfec=1".into()
        } else {
            String::new()
        },
        rtcp_feedback: vec![],
    }
}

fn local_track(
    kind: RtpCodecKind,
    mime_type: &str,
    ssrc: u32,
    name: &str,
) -> Arc<TrackLocalStaticRTP> {
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        format!("{name}-stream"),
        format!("{name}-{ssrc}"),
        name.to_string(),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: codec(mime_type),
            ..Default::default()
        }],
    )))
}

impl Client {
    /// Joins the call, publishes `tracks` and offers them to the media
    /// server; the server's answers and later offers are taken care of by
    /// a task of its own, as a page's signaling does.
    async fn join(
        app: &TestApp,
        who: &Person,
        code: &str,
        tracks: Vec<Arc<TrackLocalStaticRTP>>,
    ) -> (Self, Vec<Arc<dyn RtpSender>>) {
        Self::join_offering(app, who, code, tracks, None).await
    }

    /// `join`, offering VP8 under `vp8_payload_type` (see `Media`).
    async fn join_offering(
        app: &TestApp,
        who: &Person,
        code: &str,
        tracks: Vec<Arc<TrackLocalStaticRTP>>,
        vp8_payload_type: Option<u8>,
    ) -> (Self, Vec<Arc<dyn RtpSender>>) {
        let (ws, you, welcome) = join_call(app, who, code, None).await;
        let ServerMessage::Welcome { media_path, .. } = welcome else {
            unreachable!()
        };
        assert_eq!(
            media_path,
            MediaPath::Server,
            "the meeting's media goes through the server"
        );

        let seen = Arc::new(Mutex::new(Seen::default()));
        let video_track = Arc::new(Mutex::new(None));
        let media = Media {
            seen: seen.clone(),
            video_track: video_track.clone(),
            tracks,
            vp8_payload_type,
        };
        let (pc, senders, offer) = media.connect().await;
        let pc = Arc::new(Mutex::new(pc));
        let (outgoing, outgoing_rx) = mpsc::unbounded_channel();
        outgoing.send(offer).unwrap();
        let signaling = tokio::spawn(signaling(
            ws,
            pc.clone(),
            media,
            outgoing.clone(),
            outgoing_rx,
        ));
        (
            Self {
                pc,
                seen,
                video_track,
                outgoing,
                signaling,
                peer_id: you.peer_id.clone(),
            },
            senders,
        )
    }

    fn seen<T>(&self, read: impl FnOnce(&Seen) -> T) -> T {
        read(&self.seen.lock().unwrap())
    }

    async fn leave(self) {
        let _ = self.outgoing.send(ClientMessage::Leave);
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.signaling.abort();
        let pc = self.pc.lock().unwrap().clone();
        let _ = pc.close().await;
    }
}

/// What a page publishes and where what it receives is noted: enough to
/// open its peer connection to the media server again.
struct Media {
    seen: Arc<Mutex<Seen>>,
    video_track: Arc<Mutex<Option<Arc<dyn TrackRemote>>>>,
    tracks: Vec<Arc<TrackLocalStaticRTP>>,
    /// Offer VP8 (and Opus) only, VP8 under this payload type, as Firefox
    /// does (120); `None`: the engine's defaults (VP8 96, as Chrome).
    vp8_payload_type: Option<u8>,
}

impl Media {
    /// A new peer connection publishing the tracks, and its offer.
    async fn connect(
        &self,
    ) -> (
        Arc<dyn PeerConnection>,
        Vec<Arc<dyn RtpSender>>,
        ClientMessage,
    ) {
        let mut media_engine = MediaEngine::default();
        match self.vp8_payload_type {
            None => media_engine.register_default_codecs().expect("codecs"),
            Some(payload_type) => {
                for (mime, payload_type, kind) in [
                    (MIME_TYPE_OPUS, 109, RtpCodecKind::Audio),
                    (MIME_TYPE_VP8, payload_type, RtpCodecKind::Video),
                ] {
                    media_engine
                        .register_codec(
                            RTCRtpCodecParameters {
                                rtp_codec: codec(mime),
                                payload_type,
                            },
                            kind,
                        )
                        .expect("codec");
                }
            }
        }
        // As browsers do: the microphone's packets carry their audio level.
        media_engine
            .register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: rtc::sdp::extmap::AUDIO_LEVEL_URI.to_string(),
                },
                RtpCodecKind::Audio,
                None,
            )
            .expect("audio level extension");
        let registry = register_default_interceptors(Registry::new(), &mut media_engine)
            .expect("interceptors")
            .with(Slot::from(14_000), KeyframeRequestsToApplication::default());
        let handler = Arc::new(Handler {
            seen: self.seen.clone(),
            video_track: self.video_track.clone(),
        });
        let pc: Arc<dyn PeerConnection> = Arc::new(
            PeerConnectionBuilder::new()
                .with_configuration(RTCConfigurationBuilder::new().build())
                .with_media_engine(media_engine)
                .with_interceptor_registry(registry)
                .with_handler(handler as Arc<dyn PeerConnectionEventHandler>)
                .with_udp_addrs(vec!["127.0.0.1:0".to_string()])
                .build()
                .await
                .expect("peer connection"),
        );
        let mut senders = Vec::new();
        for track in &self.tracks {
            senders.push(
                pc.add_track(track.clone() as Arc<dyn TrackLocal>)
                    .await
                    .expect("add track"),
            );
        }
        let offer = pc.create_offer(None).await.expect("offer");
        pc.set_local_description(offer.clone())
            .await
            .expect("local offer");
        let message = ClientMessage::MediaServerSignal {
            signal: Signal::Description {
                sdp_type: "offer".into(),
                sdp: offer.sdp,
            },
        };
        (pc, senders, message)
    }
}

/// The page's side of media-server signaling: sends what is queued, takes
/// the server's answer, answers the server's offers.
async fn signaling(
    mut ws: Ws,
    current: Arc<Mutex<Arc<dyn PeerConnection>>>,
    media: Media,
    outgoing: mpsc::UnboundedSender<ClientMessage>,
    mut outgoing_rx: mpsc::UnboundedReceiver<ClientMessage>,
) {
    let seen = media.seen.clone();
    loop {
        while let Ok(message) = outgoing_rx.try_recv() {
            if !ws.try_send(&message).await {
                return;
            }
        }
        let message = match ws.next_event(Duration::from_millis(20)).await {
            Event::Closed => return,
            Event::Quiet => continue,
            Event::Message(message) => message,
        };
        if let ServerMessage::Speakers { peers } = &message {
            seen.lock().unwrap().speakers.push(peers.clone());
        }
        if let ServerMessage::VideoPaused { peers } = &message {
            seen.lock().unwrap().paused.push(peers.clone());
        }
        if let ServerMessage::Error { code, message, .. } = &message {
            seen.lock()
                .unwrap()
                .refused
                .push(format!("{code:?}: {message}"));
        }
        if matches!(message, ServerMessage::MediaServerMoved) {
            // As a page does: a new peer connection, offered afresh.
            seen.lock().unwrap().moved += 1;
            let old = current.lock().unwrap().clone();
            let _ = old.close().await;
            let (pc, _, offer) = media.connect().await;
            *current.lock().unwrap() = pc;
            let _ = outgoing.send(offer);
            continue;
        }
        let pc = current.lock().unwrap().clone();
        let ServerMessage::MediaServerSignal {
            signal: Signal::Description { sdp_type, sdp },
        } = message
        else {
            continue;
        };
        match sdp_type.as_str() {
            "answer" => {
                let answer = RTCSessionDescription::answer(sdp).expect("server answer parses");
                pc.set_remote_description(answer)
                    .await
                    .expect("server answer taken");
            }
            "offer" => {
                seen.lock().unwrap().offers.push(sdp.clone());
                let offer = RTCSessionDescription::offer(sdp).expect("server offer parses");
                pc.set_remote_description(offer)
                    .await
                    .expect("server offer taken");
                let answer = pc.create_answer(None).await.expect("answer");
                pc.set_local_description(answer.clone())
                    .await
                    .expect("local answer");
                let _ = outgoing.send(ClientMessage::MediaServerSignal {
                    signal: Signal::Description {
                        sdp_type: "answer".into(),
                        sdp: answer.sdp,
                    },
                });
            }
            other => panic!("unexpected description type {other}"),
        }
    }
}

/// moim with every call through the media server on a free loopback port,
/// and `extra` settings.
async fn spawn_media_server(extra: &[&str]) -> TestApp {
    let mut spawn = Spawn::new(Backend::Sqlite);
    spawn.extra_args = ["--media-mode", "sfu", "--sfu-udp-listen", "127.0.0.1:0"]
        .iter()
        .chain(extra)
        .map(|arg| arg.to_string())
        .collect();
    spawn_with(spawn).await
}

/// A counter's value, 0 before it first moved (the series is not there).
fn counted(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks one subscriber's packets: from the first one it got, every
/// packet the publisher wrote up to `last_index` arrived once, in order,
/// with sequence numbers that step by one (across the wrap at 65535).
fn assert_in_order_without_loss(name: &str, video: &[(u16, u32)], last_index: u32) {
    let Some(&(_, first_index)) = video.first() else {
        panic!("{name} received no video");
    };
    let expected = (last_index - first_index + 1) as usize;
    assert_eq!(
        video.len(),
        expected,
        "{name}: {} packets from index {first_index} to {last_index}, expected {expected}",
        video.len()
    );
    for pair in video.windows(2) {
        let ((seq_a, index_a), (seq_b, index_b)) = (pair[0], pair[1]);
        assert_eq!(
            index_b,
            index_a + 1,
            "{name}: packet {index_a} was followed by {index_b}"
        );
        assert_eq!(
            seq_b,
            seq_a.wrapping_add(1),
            "{name}: sequence {seq_a} was followed by {seq_b}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_publisher_reaches_twenty_subscribers_in_order_without_loss() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    const SUBSCRIBERS: usize = 20;
    let app = spawn_media_server(&["--sign-ups-per-hour", "100"]).await;
    let mut people = vec![person(&app, "publisher").await];
    for i in 0..=SUBSCRIBERS {
        people.push(person(&app, &format!("viewer{i}")).await);
    }
    let code = meeting_with_everyone(&app, &people).await;

    // The publisher: a camera (VP8) it writes RTP to, as a packetizer would.
    let video_ssrc = 0x5eed_0001;
    let camera = local_track(RtpCodecKind::Video, MIME_TYPE_VP8, video_ssrc, "camera");
    // It offers VP8 under 120, as Firefox does; the subscribers under 96.
    let (publisher, senders) =
        Client::join_offering(&app, &people[0], &code, vec![camera.clone()], Some(120)).await;
    let sender = senders[0].clone();
    wait_for(
        "the publisher's connection",
        Duration::from_secs(30),
        || publisher.seen(|s| s.connected),
    )
    .await;
    let payload_type = sender
        .get_parameters()
        .await
        .expect("parameters")
        .rtp_parameters
        .codecs[0]
        .payload_type;
    assert_eq!(payload_type, 120, "the publisher's leg has VP8 under 120");

    let written = Arc::new(AtomicU32::new(0));
    let writer = film_numbered(
        camera.clone(),
        (video_ssrc, payload_type, FIRST_SEQUENCE),
        TWENTY_PACKET_EVERY,
        written.clone(),
    );
    let written_now = || written.load(Ordering::SeqCst);

    // Twenty people join; each publishes a microphone (silent) like a page
    // does, so everyone also gets everyone's audio offered.
    let mut subscribers = Vec::new();
    for (i, who) in people[1..=SUBSCRIBERS].iter().enumerate() {
        let microphone = local_track(
            RtpCodecKind::Audio,
            MIME_TYPE_OPUS,
            0x0a0d_0000 + i as u32,
            "mic",
        );
        let (client, _) = Client::join(&app, who, &code, vec![microphone]).await;
        subscribers.push(client);
    }
    let all_receive = || subscribers.iter().all(|c| c.seen(|s| s.video.len() >= 10));
    let deadline = Instant::now() + Duration::from_secs(90);
    while !all_receive() {
        if Instant::now() > deadline {
            let state: Vec<String> = subscribers
                .iter()
                .map(|c| {
                    c.seen(|s| {
                        let distinct: std::collections::HashSet<u32> =
                            s.video.iter().map(|&(_, index)| index).collect();
                        format!(
                            "{}:{}({} distinct, {} tracks)/{} (last state {:?}, errors {:?}, paused {:?})",
                            s.connected,
                            s.video.len(),
                            distinct.len(),
                            s.video_tracks,
                            s.offers.len(),
                            s.state,
                            s.refused,
                            s.paused.last()
                        )
                    })
                })
                .collect();
            panic!(
                "timed out waiting for every subscriber's first packets; publisher wrote up to {}; per subscriber connected:packets(distinct, video tracks)/offers {state:?}",
                written_now()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // With everyone receiving, 300 more packets (6 s), past the wrap of
    // the sequence number at 65535 (336 packets in).
    let checkpoint = written_now().max(400) + 300;
    wait_for("the publisher's packets", Duration::from_secs(60), || {
        written_now() >= checkpoint
    })
    .await;
    wait_for(
        "the packets up to the checkpoint",
        Duration::from_secs(10),
        || {
            subscribers
                .iter()
                .all(|c| c.seen(|s| s.video.last().is_some_and(|&(_, i)| i >= checkpoint)))
        },
    )
    .await;
    let (mut ssrcs, mut firsts) = (
        std::collections::HashSet::new(),
        std::collections::HashSet::new(),
    );
    for (i, client) in subscribers.iter().enumerate() {
        client.seen(|s| {
            let upto: Vec<(u16, u32)> = s
                .video
                .iter()
                .copied()
                .filter(|&(_, index)| index <= checkpoint)
                .collect();
            assert_in_order_without_loss(&format!("subscriber {i}"), &upto, checkpoint);
            // Each browser gets the stream under an SSRC and numbers of its
            // own (the publisher's wrapped around meanwhile): it never
            // learns another browser's SSRC, and a change of publisher
            // behind its m-line would not show as a jump.
            assert_eq!(
                s.video_payload_types,
                std::collections::BTreeSet::from([96]),
                "subscriber {i} gets VP8 under its own payload type (the publisher's is {payload_type})"
            );
            let ssrc = s.video_ssrc.expect("video arrived");
            assert_ne!(ssrc, video_ssrc, "subscriber {i} got the publisher's SSRC");
            ssrcs.insert(ssrc);
            firsts.insert(upto[0].0);
        });
    }

    assert!(
        ssrcs.len() == SUBSCRIBERS && firsts.len() > SUBSCRIBERS / 2,
        "{} SSRCs and {} first sequence numbers among {SUBSCRIBERS} subscribers",
        ssrcs.len(),
        firsts.len()
    );

    // A latecomer asks for a keyframe (as a browser does when a video
    // starts); the media server relays it to the publisher.
    let keyframe_requests = Arc::new(AtomicU32::new(0));
    {
        let (camera, keyframe_requests) = (camera.clone(), keyframe_requests.clone());
        tokio::spawn(async move {
            while let Some(event) = camera.poll().await {
                if let TrackLocalEvent::OnRtcpPacket(packets) = event {
                    let plis = packets
                        .iter()
                        .filter(|p| {
                            p.as_any()
                                .downcast_ref::<PictureLossIndication>()
                                .is_some_and(|pli| pli.media_ssrc == video_ssrc)
                        })
                        .count();
                    keyframe_requests.fetch_add(plis as u32, Ordering::SeqCst);
                }
            }
        });
    }
    let microphone = local_track(RtpCodecKind::Audio, MIME_TYPE_OPUS, 0x0a0d_1000, "mic");
    let (late, _) = Client::join(&app, &people[SUBSCRIBERS + 1], &code, vec![microphone]).await;
    wait_for("the latecomer's video", Duration::from_secs(30), || {
        late.video_track.lock().unwrap().is_some() && late.seen(|s| !s.video.is_empty())
    })
    .await;
    // Past the half second in which the publisher is asked once at most
    // (the latecomer's arrival asked already).
    tokio::time::sleep(Duration::from_millis(600)).await;
    let before = keyframe_requests.load(Ordering::SeqCst);
    let track = late.video_track.lock().unwrap().clone().unwrap();
    let media_ssrc = late.seen(|s| s.video_ssrc).unwrap();
    track
        .write_rtcp(vec![Box::new(PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc,
        })])
        .await
        .expect("send PLI");
    wait_for(
        "the keyframe request at the publisher",
        Duration::from_secs(10),
        || keyframe_requests.load(Ordering::SeqCst) > before,
    )
    .await;

    // The operator sees it all on /metrics: the media forwarded to every
    // subscriber, who receives whom, the keyframe request in from the
    // latecomer and out to the publisher, and a report of lost packets.
    // The camera stops, so that nothing but what is sent again leaves the
    // media server as RTP (the microphones are silent); then the latecomer
    // reports its last three packets lost.
    writer.abort();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rtp_out = r#"moim_sfu_packets_total{direction="out",kind="rtp"}"#;
    let quiet = counted(&app.scrape_metrics().await, rtp_out);
    let lost = late
        .seen(|s| s.video.last().map(|&(sequence, _)| sequence))
        .expect("video arrived");
    track
        .write_rtcp(vec![Box::new(TransportLayerNack {
            sender_ssrc: 0,
            media_ssrc,
            nacks: vec![NackPair {
                packet_id: lost.wrapping_sub(2),
                // The two packets after `packet_id`.
                lost_packets: 0b11,
            }],
        })])
        .await
        .expect("send NACK");
    // The media server sends the three again from what it sent the
    // latecomer (its browser's SRTP then drops them as replays: they had
    // arrived; only the server's count can show them).
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut resent = 0.0;
    while resent < 3.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        resent = counted(&app.scrape_metrics().await, rtp_out) - quiet;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    resent = counted(&app.scrape_metrics().await, rtp_out) - quiet;
    assert_eq!(resent, 3.0, "RTP packets out after the NACK of three");
    // Counted before the scrape, which then has at least these.
    let seen: usize = subscribers
        .iter()
        .chain([&late])
        .map(|c| c.seen(|s| s.video.len()))
        .sum();
    let nacks_in = r#"moim_sfu_feedback_total{direction="in",kind="nack"}"#;
    let mut text = app.scrape_metrics().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while counted(&text, nacks_in) < 1.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        text = app.scrape_metrics().await;
    }
    assert!(counted(&text, nacks_in) >= 1.0, "{text}");
    for direction in ["in", "out"] {
        let series = format!(r#"moim_sfu_feedback_total{{direction="{direction}",kind="pli"}}"#);
        assert!(counted(&text, &series) >= 1.0, "{series} in:\n{text}");
    }
    // Every video packet a subscriber saw went out as RTP (audio, and
    // what was lost on the way, only add to it).
    let forwarded = counted(
        &text,
        r#"moim_sfu_packets_total{direction="out",kind="rtp"}"#,
    );
    assert!(
        forwarded >= seen as f64 && seen > SUBSCRIBERS * 300,
        "{forwarded} RTP packets out, {seen} seen by the subscribers"
    );
    let received = counted(
        &text,
        r#"moim_sfu_packets_total{direction="in",kind="rtp"}"#,
    );
    assert!(
        received >= f64::from(checkpoint),
        "{received} RTP packets in"
    );
    // The publisher, twenty subscribers and the latecomer: each receives
    // the twenty-one others.
    assert_eq!(common::metric(&text, "moim_sfu_clients"), 22.0);
    assert_eq!(common::metric(&text, "moim_sfu_subscriptions"), 22.0 * 21.0);

    // The publisher leaves: everyone's offer no longer carries its camera.
    let publisher_stream = format!("peer-{}-", media_client_id(&publisher.peer_id));
    let offers_camera = |offer: &str| {
        offer
            .split("\r\nm=")
            .filter(|m| m.contains(&publisher_stream))
            .any(|m| m.contains("a=sendonly") || m.contains("a=sendrecv"))
    };
    assert!(
        subscribers[0].seen(|s| s.offers.iter().any(|o| offers_camera(o))),
        "the offers name the publisher's stream {publisher_stream}"
    );
    publisher.leave().await;
    for client in subscribers.iter().chain([&late]) {
        wait_for(
            "an offer without the publisher's camera",
            Duration::from_secs(20),
            || client.seen(|s| s.offers.last().is_some_and(|o| !offers_camera(o))),
        )
        .await;
    }

    for client in subscribers {
        client.leave().await;
    }
    late.leave().await;
}

/// Writes Opus-sized packets every 20 ms at `level` (RFC 6464) through
/// `microphone`, for `for_how_long`, numbering them on from `sequence`.
async fn speak(
    microphone: &TrackLocalStaticRTP,
    payload_type: u8,
    sequence: &mut u16,
    level: u8,
    for_how_long: Duration,
) {
    let until = Instant::now() + for_how_long;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    while Instant::now() < until {
        tick.tick().await;
        *sequence = sequence.wrapping_add(1);
        let packet = rtp::Packet {
            header: rtp::header::Header {
                version: 2,
                payload_type,
                sequence_number: *sequence,
                timestamp: u32::from(*sequence).wrapping_mul(960),
                ssrc: TALKER_SSRC,
                ..Default::default()
            },
            payload: vec![0u8; 80].into(),
        };
        let extension = rtp::extension::HeaderExtension::AudioLevel(
            rtp::extension::audio_level_extension::AudioLevelExtension {
                level,
                voice: level < 127,
            },
        );
        let _ = microphone
            .write_rtp_with_extensions(packet, &[extension])
            .await;
    }
}

/// The talking microphone's SSRC.
const TALKER_SSRC: u32 = 0x0a0d_5eed;

/// Writes a VP8-sized packet every 20 ms through `camera` until aborted.
fn film(
    camera: Arc<TrackLocalStaticRTP>,
    payload_type: u8,
    ssrc: u32,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let mut index: u32 = 0;
        loop {
            tick.tick().await;
            index += 1;
            let mut payload = PAYLOAD_HEADER.to_vec();
            payload.extend_from_slice(&index.to_be_bytes());
            payload.extend_from_slice(&ssrc.to_be_bytes());
            payload.extend_from_slice(&[0u8; 600]);
            let packet = rtp::Packet {
                header: rtp::header::Header {
                    version: 2,
                    marker: true,
                    payload_type,
                    sequence_number: index as u16,
                    timestamp: index.wrapping_mul(1800),
                    ssrc,
                    ..Default::default()
                },
                payload: payload.into(),
            };
            let _ = camera.write_rtp(packet).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_microphone_that_speaks_is_announced_and_silence_ends_it() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let app = spawn_media_server(&[]).await;
    let people = vec![person(&app, "talker").await, person(&app, "listener").await];
    let code = meeting_with_everyone(&app, &people).await;
    let microphone = local_track(RtpCodecKind::Audio, MIME_TYPE_OPUS, TALKER_SSRC, "mic");
    let (talker, senders) = Client::join(&app, &people[0], &code, vec![microphone.clone()]).await;
    // The listener's microphone stays silent (it writes nothing).
    let quiet = local_track(RtpCodecKind::Audio, MIME_TYPE_OPUS, 0x0a0d_0001, "mic");
    let (listener, _) = Client::join(&app, &people[1], &code, vec![quiet]).await;
    for (who, client) in [("talker", &talker), ("listener", &listener)] {
        wait_for(who, Duration::from_secs(30), || {
            client.seen(|s| s.connected)
        })
        .await;
    }
    let parameters = senders[0].get_parameters().await.expect("parameters");
    let payload_type = parameters.rtp_parameters.codecs[0].payload_type;
    // The server's answer accepted the extension the client offered.
    assert!(
        parameters
            .rtp_parameters
            .header_extensions
            .iter()
            .any(|e| e.uri == rtc::sdp::extmap::AUDIO_LEVEL_URI),
        "the audio level extension is negotiated: {:?}",
        parameters.rtp_parameters.header_extensions
    );

    let mut sequence: u16 = 0;
    // Background noise is not speech: nobody is announced.
    speak(
        &microphone,
        payload_type,
        &mut sequence,
        75,
        Duration::from_secs(1),
    )
    .await;
    assert!(
        listener.seen(|s| s.speakers.is_empty()),
        "noise is not speech"
    );

    // Speech (-20 dBov) makes the talker a speaker, for both of them.
    speak(
        &microphone,
        payload_type,
        &mut sequence,
        20,
        Duration::from_millis(1500),
    )
    .await;
    let talker_id = talker.peer_id.clone();
    for client in [&talker, &listener] {
        wait_for("the talker announced", Duration::from_secs(5), || {
            client.seen(|s| s.speakers.last() == Some(&vec![talker_id.clone()]))
        })
        .await;
    }
    // The level reaches the listener too, under the id its own connection
    // gave the extension.
    assert!(
        listener.seen(|s| s.audio_levels.contains(&20)),
        "the forwarded audio carries the talker's level: {:?}",
        listener.seen(|s| s
            .audio_levels
            .iter()
            .rev()
            .take(5)
            .copied()
            .collect::<Vec<_>>())
    );
    // A short pause keeps it; a long silence ends it.
    speak(
        &microphone,
        payload_type,
        &mut sequence,
        127,
        Duration::from_millis(600),
    )
    .await;
    assert_eq!(
        listener.seen(|s| s.speakers.last().cloned()),
        Some(vec![talker_id.clone()]),
        "a pause is not the end"
    );
    speak(
        &microphone,
        payload_type,
        &mut sequence,
        127,
        Duration::from_secs(2),
    )
    .await;
    wait_for("the silence announced", Duration::from_secs(5), || {
        listener.seen(|s| s.speakers.last() == Some(&vec![]))
    })
    .await;
    assert_eq!(
        listener.seen(|s| s.speakers.clone()),
        vec![vec![talker_id.clone()], vec![]],
        "one announcement each way, no flicker"
    );
    talker.leave().await;
    listener.leave().await;
}

/// The payload type a sender's codec was given.
async fn payload_type_of(sender: &Arc<dyn RtpSender>) -> u8 {
    let parameters = sender.get_parameters().await.expect("parameters");
    parameters.rtp_parameters.codecs[0].payload_type
}

/// How many of `ssrc`'s video packets `client` received so far.
fn packets_of(client: &Client, ssrc: u32) -> u32 {
    client.seen(|s| s.video_packets.get(&ssrc).copied().unwrap_or(0))
}

/// Waits until `client` receives `ssrc`'s video again, and checks it keeps
/// coming.
async fn assert_flowing(client: &Client, ssrc: u32, what: &str) {
    let before = packets_of(client, ssrc);
    wait_for(what, Duration::from_secs(5), || {
        packets_of(client, ssrc) > before + 10
    })
    .await;
}

/// Checks that `client` receives nothing of `ssrc`'s video for a second
/// (after a moment for packets already on their way).
async fn assert_held_back(client: &Client, ssrc: u32, what: &str) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = packets_of(client, ssrc);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(packets_of(client, ssrc), before, "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_n_pauses_the_longest_silent_camera_and_a_speaker_a_pin_or_a_camera_off_brings_it_back(
) {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    const FIRST_CAMERA: u32 = 0x0ca0_0001;
    const SECOND_CAMERA: u32 = 0x0ca0_0002;
    // Each browser receives one camera (besides those it pins).
    let app = spawn_media_server(&["--sfu-last-n", "1"]).await;
    let people = vec![
        person(&app, "first").await,
        person(&app, "second").await,
        person(&app, "viewer").await,
    ];
    let code = meeting_with_everyone(&app, &people).await;
    let first_camera = local_track(RtpCodecKind::Video, MIME_TYPE_VP8, FIRST_CAMERA, "cam");
    let (first, first_senders) =
        Client::join(&app, &people[0], &code, vec![first_camera.clone()]).await;
    let second_camera = local_track(RtpCodecKind::Video, MIME_TYPE_VP8, SECOND_CAMERA, "cam");
    let microphone = local_track(RtpCodecKind::Audio, MIME_TYPE_OPUS, TALKER_SSRC, "mic");
    let (second, second_senders) = Client::join(
        &app,
        &people[1],
        &code,
        vec![second_camera.clone(), microphone.clone()],
    )
    .await;
    // The viewer has a microphone only (no camera to take a place).
    let quiet = local_track(RtpCodecKind::Audio, MIME_TYPE_OPUS, 0x0a0d_0002, "mic");
    let (viewer, _) = Client::join(&app, &people[2], &code, vec![quiet]).await;
    for (who, client) in [("first", &first), ("second", &second), ("viewer", &viewer)] {
        wait_for(who, Duration::from_secs(30), || {
            client.seen(|s| s.connected)
        })
        .await;
    }
    let first_pt = payload_type_of(&first_senders[0]).await;
    let second_pt = payload_type_of(&second_senders[0]).await;
    let mic_pt = payload_type_of(&second_senders[1]).await;
    let filming = [
        film(first_camera, first_pt, FIRST_CAMERA),
        film(second_camera, second_pt, SECOND_CAMERA),
    ];

    // Nobody spoke yet: the viewer sees the first to come and not the
    // second, and is told so.
    let second_id = second.peer_id.clone();
    wait_for("the second camera paused", Duration::from_secs(5), || {
        viewer.seen(|s| s.paused.last() == Some(&vec![second_id.clone()]))
    })
    .await;
    assert_flowing(&viewer, FIRST_CAMERA, "the first camera").await;
    assert_held_back(&viewer, SECOND_CAMERA, "the paused camera sends nothing").await;
    // The two with cameras see each other: one camera each, within N.
    assert_flowing(&first, SECOND_CAMERA, "the first sees the second").await;
    assert_flowing(&second, FIRST_CAMERA, "the second sees the first").await;
    assert!(
        first.seen(|s| s.paused.is_empty()),
        "nothing paused for the first"
    );

    // The second speaks: its camera comes in, the first's goes out.
    let mut sequence: u16 = 0;
    speak(
        &microphone,
        mic_pt,
        &mut sequence,
        20,
        Duration::from_millis(1200),
    )
    .await;
    let first_id = first.peer_id.clone();
    wait_for("the first camera paused", Duration::from_secs(5), || {
        viewer.seen(|s| s.paused.last() == Some(&vec![first_id.clone()]))
    })
    .await;
    assert_flowing(&viewer, SECOND_CAMERA, "the speaker's camera comes back").await;
    assert_held_back(&viewer, FIRST_CAMERA, "the silent camera is held back").await;

    // The viewer pins the first: both come.
    let _ = viewer.outgoing.send(ClientMessage::MediaServerWatch {
        peers: vec![first_id.clone()],
        heights: vec![],
    });
    wait_for("nothing paused", Duration::from_secs(5), || {
        viewer.seen(|s| s.paused.last() == Some(&vec![]))
    })
    .await;
    assert_flowing(&viewer, FIRST_CAMERA, "the pinned camera comes back").await;
    assert_flowing(&viewer, SECOND_CAMERA, "the speaker's camera stays").await;

    // Unpinned: the first pauses again.
    let _ = viewer.outgoing.send(ClientMessage::MediaServerWatch {
        peers: vec![],
        heights: vec![],
    });
    wait_for("the first paused again", Duration::from_secs(5), || {
        viewer.seen(|s| s.paused.last() == Some(&vec![first_id.clone()]))
    })
    .await;
    assert_held_back(&viewer, FIRST_CAMERA, "the unpinned camera is held back").await;

    // The second turns the camera off (a browser still sends black frames:
    // its packets keep coming here): it gives up its place.
    let _ = second.outgoing.send(ClientMessage::Media {
        media: app::protocol::MediaState {
            mic: true,
            cam: false,
            screen: false,
            hand: false,
        },
    });
    wait_for("nothing paused again", Duration::from_secs(5), || {
        viewer.seen(|s| s.paused.last() == Some(&vec![]))
    })
    .await;
    assert_flowing(&viewer, FIRST_CAMERA, "the first takes the free place").await;

    let metrics = app.scrape_metrics().await;
    assert!(
        counted(&metrics, "moim_sfu_paused_video_packets_total") > 0.0,
        "held-back packets are counted"
    );
    for task in filming {
        task.abort();
    }
    first.leave().await;
    second.leave().await;
    viewer.leave().await;
}

/// Writes numbered VP8-like packets to `camera` every `every` until
/// aborted: (SSRC, payload type, first sequence number); `written` is the
/// index of the last packet that went out. While the server renegotiates
/// the publisher's connection (every newcomer's microphone) the track can
/// be unbound for a moment: that packet goes again on the next tick, as a
/// packetizer's would, so none is skipped.
fn film_numbered(
    camera: Arc<TrackLocalStaticRTP>,
    (ssrc, payload_type, first_sequence): (u32, u8, u16),
    every: Duration,
    written: Arc<AtomicU32>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        let mut index: u32 = 0;
        loop {
            tick.tick().await;
            let mut payload = if index.is_multiple_of(KEYFRAME_EVERY) {
                PAYLOAD_HEADER.to_vec()
            } else {
                DELTA_PAYLOAD_HEADER.to_vec()
            };
            payload.extend_from_slice(&index.to_be_bytes());
            payload.extend_from_slice(&[0u8; 400]);
            let packet = rtp::Packet {
                header: rtp::header::Header {
                    version: 2,
                    marker: true,
                    payload_type,
                    sequence_number: first_sequence.wrapping_add(index as u16),
                    timestamp: index.wrapping_mul(3000),
                    ssrc,
                    ..Default::default()
                },
                payload: payload.into(),
            };
            if camera.write_rtp(packet).await.is_ok() {
                written.store(index, Ordering::SeqCst);
                index += 1;
            }
        }
    })
}

/// A call through the media server with people on two instances (sharing
/// PostgreSQL and Redis): its media lives on the instance where the first
/// person joined, and those on the other instance send and receive there.
/// When that instance dies, their pages hear the media moved, connect
/// again, and media flows through the instance left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_two_instances_a_calls_media_lives_on_one_and_moves_when_it_dies() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let redis = RedisServer::start();
    let (one, two) = cluster(
        &redis,
        &["--media-mode", "sfu", "--sfu-udp-listen", "127.0.0.1:0"],
    )
    .await;
    let people = vec![
        person(&one, "host").await,
        person(&one, "publisher").await,
        person(&one, "viewer").await,
    ];
    let code = meeting_with_everyone(&one, &people).await;

    // The host joins on instance one: the call's media lives there.
    let host_mic = local_track(RtpCodecKind::Audio, MIME_TYPE_OPUS, 0x0b0b_0001, "mic");
    let (host, _) = Client::join(&one, &people[0], &code, vec![host_mic]).await;
    wait_for("the host's connection", Duration::from_secs(30), || {
        host.seen(|s| s.connected)
    })
    .await;

    // The others join on instance two.
    let video_ssrc = 0x0b0b_0002;
    let camera = local_track(RtpCodecKind::Video, MIME_TYPE_VP8, video_ssrc, "camera");
    let (publisher, senders) = Client::join(&two, &people[1], &code, vec![camera.clone()]).await;
    let viewer_mic = local_track(RtpCodecKind::Audio, MIME_TYPE_OPUS, 0x0b0b_0003, "mic");
    let (viewer, _) = Client::join(&two, &people[2], &code, vec![viewer_mic]).await;
    for (who, client) in [("publisher", &publisher), ("viewer", &viewer)] {
        wait_for(
            &format!("the {who}'s connection"),
            Duration::from_secs(30),
            || client.seen(|s| s.connected),
        )
        .await;
    }
    let payload_type = payload_type_of(&senders[0]).await;
    let writer = film_numbered(
        camera,
        (video_ssrc, payload_type, 0),
        PACKET_EVERY,
        Arc::new(AtomicU32::new(0)),
    );
    wait_for(
        "the viewer on instance two receives the camera",
        Duration::from_secs(30),
        || viewer.seen(|s| s.video.len() >= 20),
    )
    .await;
    for client in [&host, &publisher, &viewer] {
        assert_eq!(client.seen(|s| s.moved), 0);
    }
    // Instance one's media server carries all three; two's none.
    let on_one = one.scrape_metrics().await;
    let on_two = two.scrape_metrics().await;
    assert_eq!(counted(&on_one, "moim_sfu_clients"), 3.0, "{on_one}");
    assert_eq!(counted(&on_two, "moim_sfu_clients"), 0.0, "{on_two}");

    // Instance one dies (as a process would: nothing said, nothing released).
    one.kill();
    let killed = Instant::now();
    wait_for(
        "both pages on instance two hear the media moved",
        Duration::from_secs(20),
        || publisher.seen(|s| s.moved == 1) && viewer.seen(|s| s.moved == 1),
    )
    .await;
    let told = killed.elapsed();
    let before = viewer.seen(|s| s.video.len());
    wait_for(
        "the camera again, through instance two",
        Duration::from_secs(20),
        || viewer.seen(|s| s.video.len() >= before + 20),
    )
    .await;
    let back = killed.elapsed();
    eprintln!("instance one killed: pages told after {told:?}, video back after {back:?}");
    let on_two = two.scrape_metrics().await;
    assert_eq!(counted(&on_two, "moim_sfu_clients"), 2.0, "{on_two}");
    assert!(
        back < Duration::from_secs(8),
        "video came back {back:?} after the instance died"
    );
    writer.abort();
}

/// Two instances sharing PostgreSQL and Redis, every call through the
/// media server (and `extra` settings): a host on instance one, whose
/// offer places the call's media there, and a guest on instance two, both
/// connected (microphones under SSRCs `ssrc_base` + 1 and + 2).
async fn host_on_one_guest_on_two(
    extra: &[&str],
    ssrc_base: u32,
) -> (RedisServer, TestApp, TestApp, Client, Client) {
    let redis = RedisServer::start();
    let mut args = vec!["--media-mode", "sfu", "--sfu-udp-listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let (one, two) = cluster(&redis, &args).await;
    let people = vec![person(&one, "host").await, person(&one, "guest").await];
    let code = meeting_with_everyone(&one, &people).await;
    let host_mic = local_track(RtpCodecKind::Audio, MIME_TYPE_OPUS, ssrc_base + 1, "mic");
    let (host, _) = Client::join(&one, &people[0], &code, vec![host_mic]).await;
    let guest_mic = local_track(RtpCodecKind::Audio, MIME_TYPE_OPUS, ssrc_base + 2, "mic");
    let (guest, _) = Client::join(&two, &people[1], &code, vec![guest_mic]).await;
    for (who, client) in [("host", &host), ("guest", &guest)] {
        wait_for(
            &format!("the {who}'s connection"),
            Duration::from_secs(30),
            || client.seen(|s| s.connected),
        )
        .await;
    }
    let on_one = one.scrape_metrics().await;
    assert_eq!(counted(&on_one, "moim_sfu_clients"), 2.0, "{on_one}");
    (redis, one, two, host, guest)
}

/// A browser whose signaling instance died and which vanished too (a
/// laptop closed): nobody will ever say goodbye for its media connection
/// on the instance that holds the room. That media server drops it once
/// it has been silent for the limit, and stops counting it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_two_instances_a_vanished_browser_of_a_dead_instance_is_dropped_by_the_holder() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let (_redis, one, two, host, guest) =
        host_on_one_guest_on_two(&["--sfu-silence-limit-seconds", "5"], 0x0c0c_0000).await;

    // Instance two dies, and the guest's browser with it.
    two.kill();
    guest.signaling.abort();
    let guest_pc = guest.pc.lock().unwrap().clone();
    let _ = guest_pc.close().await;
    let vanished = Instant::now();

    // Quiet for a while yet: within the limit the connection stays (a
    // browser on a bad network is not dropped at once).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let on_one = one.scrape_metrics().await;
    assert_eq!(counted(&on_one, "moim_sfu_clients"), 2.0, "{on_one}");
    assert_eq!(
        counted(&on_one, "moim_sfu_silent_connections_dropped_total"),
        0.0,
        "{on_one}"
    );
    let mut dropped = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let on_one = one.scrape_metrics().await;
        if counted(&on_one, "moim_sfu_clients") == 1.0 {
            dropped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        dropped,
        "the vanished guest's media connection is still on instance one"
    );
    let on_one = one.scrape_metrics().await;
    assert_eq!(
        counted(&on_one, "moim_sfu_silent_connections_dropped_total"),
        1.0,
        "{on_one}"
    );
    eprintln!(
        "the vanished guest was dropped {:?} after it went quiet",
        vanished.elapsed()
    );
    // The host, still there and heard, keeps its connection.
    assert!(
        host.seen(|s| s.refused.is_empty()),
        "{:?}",
        host.seen(|s| s.refused.clone())
    );
    host.leave().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let on_one = one.scrape_metrics().await;
        if counted(&on_one, "moim_sfu_clients") == 0.0 {
            break;
        }
        assert!(Instant::now() < deadline, "the host left, yet: {on_one}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A host on the instance that holds the room's media removes someone
/// whose call connection is on the other instance: that person's media
/// connection ends on the holder too (nobody keeps receiving the call).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_two_instances_a_removed_participants_media_connection_ends_on_the_holder() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let (_redis, one, two, host, guest) = host_on_one_guest_on_two(&[], 0x0d0d_0000).await;
    let on_two = two.scrape_metrics().await;
    assert_eq!(counted(&on_two, "moim_sfu_clients"), 0.0, "{on_two}");

    let _ = host.outgoing.send(ClientMessage::Remove {
        peer: guest.peer_id.clone(),
    });
    let removed = Instant::now();
    let deadline = removed + Duration::from_secs(10);
    loop {
        let on_one = one.scrape_metrics().await;
        if counted(&on_one, "moim_sfu_clients") == 1.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the removed guest's media connection is still on instance one: {on_one}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "the removed guest's media connection ended on the holder {:?} after the removal",
        removed.elapsed()
    );
    host.leave().await;
}

/// The m-lines of an offer: (mid, stream id of its `a=msid`, whether it
/// sends).
fn m_lines(offer: &str) -> Vec<(String, Option<String>, bool)> {
    offer
        .split("\r\nm=")
        .skip(1)
        .filter_map(|section| {
            let mid = section
                .lines()
                .find_map(|l| l.strip_prefix("a=mid:"))?
                .to_string();
            let stream = section
                .lines()
                .find_map(|l| l.strip_prefix("a=msid:"))
                .and_then(|msid| msid.split_whitespace().next())
                .map(str::to_string);
            let sends = section.contains("a=sendonly") || section.contains("a=sendrecv");
            Some((mid, stream, sends))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_m_line_of_someone_who_left_is_reused_for_the_next_to_come() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let app = spawn_media_server(&[]).await;
    let people = vec![
        person(&app, "host").await,
        person(&app, "gone").await,
        person(&app, "next").await,
    ];
    let code = meeting_with_everyone(&app, &people).await;
    let microphone = |ssrc| local_track(RtpCodecKind::Audio, MIME_TYPE_OPUS, ssrc, "mic");
    let (host, _) = Client::join(&app, &people[0], &code, vec![microphone(0x0a0d_7001)]).await;
    let (gone, _) = Client::join(&app, &people[1], &code, vec![microphone(0x0a0d_7002)]).await;
    let stream_of = |client: &Client| format!("peer-{}-stream", media_client_id(&client.peer_id));
    let gone_stream = stream_of(&gone);
    let carries = |offer: &str, stream: &str| {
        m_lines(offer)
            .into_iter()
            .find(|(_, s, sends)| *sends && s.as_deref() == Some(stream))
            .map(|(mid, _, _)| mid)
    };
    wait_for(
        "the host offered the microphone of the one to leave",
        Duration::from_secs(20),
        || host.seen(|s| s.offers.iter().any(|o| carries(o, &gone_stream).is_some())),
    )
    .await;
    let (gone_mid, size) = host.seen(|s| {
        let last = s.offers.last().unwrap();
        (carries(last, &gone_stream).unwrap(), m_lines(last).len())
    });
    gone.leave().await;
    wait_for("an offer without it", Duration::from_secs(20), || {
        host.seen(|s| {
            s.offers
                .last()
                .is_some_and(|o| carries(o, &gone_stream).is_none())
        })
    })
    .await;

    let (next, _) = Client::join(&app, &people[2], &code, vec![microphone(0x0a0d_7003)]).await;
    let next_stream = stream_of(&next);
    wait_for(
        "the host offered the newcomer's microphone",
        Duration::from_secs(20),
        || {
            host.seen(|s| {
                s.offers
                    .last()
                    .is_some_and(|o| carries(o, &next_stream).is_some())
            })
        },
    )
    .await;
    host.seen(|s| {
        let last = s.offers.last().unwrap();
        assert_eq!(
            carries(last, &next_stream),
            Some(gone_mid.clone()),
            "the newcomer took the m-line of the one who left:\n{last}"
        );
        assert_eq!(m_lines(last).len(), size, "the offer did not grow:\n{last}");
    });
    host.leave().await;
    next.leave().await;
}
