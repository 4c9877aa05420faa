//! `sfu-soak`: people join a call through the media server one after
//! another, get the host's audio forwarded to them, and leave again, 200
//! times (`MOIM_BENCH_SFU_CYCLES`), while the host stays and keeps
//! publishing. The host staying matters: with nobody left the room's
//! state goes as a whole, which would hide a leak. Printed: the server's
//! resident memory after a warm-up and as the cycles go on (the change
//! against the warm-up figure is the leak, if any), and how long each
//! newcomer took from sending its offer to its first forwarded packet.
//!
//! The newcomers are headless WebRTC clients (webrtc-rs's async `webrtc`
//! crate over the same `rtc` core the server drives): real ICE, DTLS and
//! SRTP over loopback, not SDP alone.

use crate::server::{Error, Server, Socket};
use crate::stats::{millis, percentile};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use protocol::media_server::too_many_stale_m_lines;
use protocol::{ClientMessage, ServerMessage, Signal};
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{
    MediaEngine, MIME_TYPE_OPUS, MIME_TYPE_VP8,
};
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler};
use webrtc::rtp_transceiver::RtpSender;

/// Where the clients of moim's media server listen (so does the server).
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Cycles before the first memory figure: pools, caches and the engine's
/// tables reach their working size.
const WARM_UP: usize = 20;

pub async fn run(moim: &str) -> Result<(), Error> {
    let cycles: usize = std::env::var("MOIM_BENCH_SFU_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
        .max(WARM_UP + 1);
    let server = Server::start_media_server(moim).await?;

    let host = server.browser()?;
    host.sign_up("soakhost").await?;
    let code = host.open_meeting("Soak").await?;
    host.enter(&code).await?;
    let (socket, _) = host.join_call_as(&code).await?;
    let stayer = Headless::connect(socket, 0x5eed_0001).await?;
    let publishing = stayer.publish_audio();

    println!("\n## sfu-soak: {cycles} people join through the media server and leave, one at a time, while the host stays\n");
    println!("| after cycle | server RSS (MiB) | change since warm-up |");
    println!("|---|---|---|");
    let mut warm_rss = 0u64;
    let mut first_packet = Vec::with_capacity(cycles);
    let mut missed = 0usize;
    for cycle in 1..=cycles {
        let guest = server.browser()?;
        guest.guest(&format!("Guest {cycle}")).await?;
        guest.enter(&code).await?;
        let (socket, _) = guest.join_call_as(&code).await?;
        let started = Instant::now();
        let newcomer = Headless::connect(socket, 0x0a0d_0000 + cycle as u32).await?;
        if tokio::time::timeout(Duration::from_secs(20), newcomer.received.notified())
            .await
            .is_err()
        {
            eprintln!(
                "sfu-soak: cycle {cycle}: no audio from the host within 20 s (host restarts so far: {})",
                stayer.restarts.load(Ordering::SeqCst)
            );
            missed += 1;
        } else {
            first_packet.push(started.elapsed());
        }
        newcomer.leave().await;
        if cycle == WARM_UP || (cycle > WARM_UP && cycle % 45 == 0) || cycle == cycles {
            // Let the server finish with the one who left.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let rss = server.rss_kib()?;
            if cycle == WARM_UP {
                warm_rss = rss;
            }
            let change = (rss as f64 - warm_rss as f64) / warm_rss as f64 * 100.0;
            println!("| {cycle} | {:.1} | {change:+.1}% |", rss as f64 / 1024.0);
        }
    }
    publishing.store(false, Ordering::SeqCst);
    let restarts = stayer.restarts.load(Ordering::SeqCst);
    stayer.leave().await;
    first_packet.sort();
    println!(
        "\nOffer to first forwarded packet, per newcomer: p50 {:.0} ms, p90 {:.0} ms, max {:.0} ms ({} joins).",
        millis(percentile(&first_packet, 0.5)),
        millis(percentile(&first_packet, 0.9)),
        millis(*first_packet.last().unwrap_or(&Duration::ZERO)),
        first_packet.len()
    );
    println!(
        "The host started its media-server connection over {restarts} time(s) (the offers filled with m-lines of people who left)."
    );
    println!("Newcomers who got no audio from the host within 20 s: {missed} of {cycles}.");
    Ok(())
}

/// A headless page in a call through the media server: publishes a
/// microphone, answers the server's offers, says when the first forwarded
/// packet arrives, and starts its connection over when the server's offers
/// fill with people who left, as the page does (see
/// `protocol::media_server::too_many_stale_m_lines`).
pub(crate) struct Headless {
    link: Arc<Mutex<Link>>,
    sink: Arc<tokio::sync::Mutex<SplitSink<Socket, Message>>>,
    received: Arc<Notify>,
    restarts: Arc<AtomicUsize>,
    signaling: tokio::task::JoinHandle<()>,
    /// Set when the client leaves: signaling errors after it are expected.
    leaving: Arc<AtomicBool>,
}

/// One peer connection to the media server and its microphone.
#[derive(Clone)]
pub(crate) struct Link {
    pub(crate) pc: Arc<dyn PeerConnection>,
    microphone: Arc<TrackLocalStaticRTP>,
    sender: Arc<dyn RtpSender>,
    ssrc: u32,
}

/// Called with the payload of every RTP packet a client receives.
pub(crate) type OnPacket = Arc<dyn Fn(&[u8]) + Send + Sync>;

struct Handler {
    received: Arc<Notify>,
    on_packet: Option<OnPacket>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let received = self.received.clone();
        let on_packet = self.on_packet.clone();
        tokio::spawn(async move {
            let mut first = true;
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(packet) = event {
                    if first {
                        received.notify_one();
                        first = false;
                    }
                    if let Some(on_packet) = &on_packet {
                        on_packet(&packet.payload);
                    }
                }
            }
        });
    }
}

/// What a headless page publishes.
#[derive(Clone, Copy)]
pub(crate) enum Publish {
    Microphone,
    Camera,
}

fn codec(publish: Publish) -> RTCRtpCodec {
    match publish {
        Publish::Microphone => RTCRtpCodec {
            mime_type: MIME_TYPE_OPUS.to_string(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
            rtcp_feedback: vec![],
        },
        Publish::Camera => RTCRtpCodec {
            mime_type: MIME_TYPE_VP8.to_string(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: vec![],
        },
    }
}

fn text(message: &ClientMessage) -> Result<Message, Error> {
    Ok(Message::text(serde_json::to_string(message)?))
}

fn description(sdp_type: &str, sdp: String) -> ClientMessage {
    ClientMessage::MediaServerSignal {
        signal: Signal::Description {
            sdp_type: sdp_type.to_string(),
            sdp,
        },
    }
}

/// A peer connection on `ip` with the default codecs and interceptors, as
/// a browser's would have, calling `on_packet` for every packet it
/// receives.
pub(crate) async fn peer_connection(
    ip: IpAddr,
    received: &Arc<Notify>,
    on_packet: &Option<OnPacket>,
) -> Result<Arc<dyn PeerConnection>, Error> {
    let mut media_engine = MediaEngine::default();
    media_engine.register_default_codecs()?;
    let registry = register_default_interceptors(Registry::new(), &mut media_engine)?;
    Ok(Arc::new(
        PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .with_handler(Arc::new(Handler {
                received: received.clone(),
                on_packet: on_packet.clone(),
            }) as Arc<dyn PeerConnectionEventHandler>)
            .with_udp_addrs(vec![SocketAddr::new(ip, 0).to_string()])
            .build()
            .await?,
    ))
}

impl Link {
    /// A new peer connection publishing a microphone or camera, and its
    /// offer.
    pub(crate) async fn open(
        ip: IpAddr,
        ssrc: u32,
        publish: Publish,
        received: &Arc<Notify>,
        on_packet: &Option<OnPacket>,
    ) -> Result<(Self, String), Error> {
        let pc = peer_connection(ip, received, on_packet).await?;
        let microphone = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            format!("mic-{ssrc}"),
            format!("mic-track-{ssrc}"),
            "microphone".to_string(),
            match publish {
                Publish::Microphone => RtpCodecKind::Audio,
                Publish::Camera => RtpCodecKind::Video,
            },
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: codec(publish),
                ..Default::default()
            }],
        )));
        let sender = pc
            .add_track(microphone.clone() as Arc<dyn TrackLocal>)
            .await?;
        let offer = pc.create_offer(None).await?;
        pc.set_local_description(offer.clone()).await?;
        Ok((
            Self {
                pc,
                microphone,
                sender,
                ssrc,
            },
            offer.sdp,
        ))
    }
}

/// The connection in use now (the lock is never held across an await).
fn current_link(link: &Mutex<Link>) -> Option<Link> {
    link.lock().ok().map(|l| l.clone())
}

fn replace_link(link: &Mutex<Link>, fresh: Link) {
    if let Ok(mut current) = link.lock() {
        *current = fresh;
    }
}

/// Writes a packet every `every` (timestamps stepping by `ticks`) with the
/// payload `payload(sequence number)` makes to the link's current
/// connection, until the flag it returns is cleared.
pub(crate) fn publish_on(
    link: Arc<Mutex<Link>>,
    every: Duration,
    ticks: u32,
    payload: impl Fn(u16) -> Vec<u8> + Send + 'static,
) -> Arc<AtomicBool> {
    let on = Arc::new(AtomicBool::new(true));
    let flag = on.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut sequence: u16 = 0;
        while flag.load(Ordering::SeqCst) {
            tick.tick().await;
            let Some(current) = current_link(&link) else {
                return;
            };
            // Until negotiated there is no payload type (and nothing
            // would be sent): the next tick tries again.
            let payload_type = match current.sender.get_parameters().await {
                Ok(parameters) => match parameters.rtp_parameters.codecs.first() {
                    Some(codec) => codec.payload_type,
                    None => continue,
                },
                Err(_) => continue,
            };
            let packet = rtc::rtp::Packet {
                header: rtc::rtp::header::Header {
                    version: 2,
                    payload_type,
                    sequence_number: sequence,
                    timestamp: u32::from(sequence).wrapping_mul(ticks),
                    ssrc: current.ssrc,
                    ..Default::default()
                },
                payload: payload(sequence).into(),
            };
            let _ = current.microphone.write_rtp(packet).await;
            sequence = sequence.wrapping_add(1);
        }
    });
    on
}

impl Headless {
    /// Offers a microphone to the media server over the joined `socket`;
    /// the answer and the server's later offers are handled by a task.
    async fn connect(socket: Socket, ssrc: u32) -> Result<Self, Error> {
        Self::connect_with(socket, ssrc, Publish::Microphone, None).await
    }

    /// The same, publishing `publish`, with `on_packet` called for every
    /// packet received.
    pub(crate) async fn connect_with(
        socket: Socket,
        ssrc: u32,
        publish: Publish,
        on_packet: Option<OnPacket>,
    ) -> Result<Self, Error> {
        let received = Arc::new(Notify::new());
        let (first, offer) = Link::open(LOOPBACK, ssrc, publish, &received, &on_packet).await?;
        let link = Arc::new(Mutex::new(first));
        let (sink, mut stream) = socket.split();
        let sink = Arc::new(tokio::sync::Mutex::new(sink));
        sink.lock()
            .await
            .send(text(&description("offer", offer))?)
            .await?;
        let restarts = Arc::new(AtomicUsize::new(0));
        let leaving = Arc::new(AtomicBool::new(false));
        let signaling = {
            let (link, sink, received, restarts, on_packet, leaving) = (
                link.clone(),
                sink.clone(),
                received.clone(),
                restarts.clone(),
                on_packet.clone(),
                leaving.clone(),
            );
            tokio::spawn(async move {
                while let Some(Ok(frame)) = stream.next().await {
                    let Message::Text(frame) = frame else {
                        continue;
                    };
                    let Ok(ServerMessage::MediaServerSignal {
                        signal: Signal::Description { sdp_type, sdp },
                    }) = serde_json::from_str(&frame)
                    else {
                        continue;
                    };
                    let Some(current) = current_link(&link) else {
                        return;
                    };
                    let handled = async {
                        if sdp_type == "answer" {
                            let answer = RTCSessionDescription::answer(sdp)?;
                            current.pc.set_remote_description(answer).await?;
                        } else if too_many_stale_m_lines(&sdp) {
                            let _ = current.pc.close().await;
                            // A new connection sends under a new SSRC, as a
                            // browser's does.
                            let generation = restarts.load(Ordering::SeqCst) as u32 + 1;
                            let (fresh, offer) = Link::open(
                                LOOPBACK,
                                ssrc ^ (generation << 20),
                                publish,
                                &received,
                                &on_packet,
                            )
                            .await?;
                            replace_link(&link, fresh);
                            restarts.fetch_add(1, Ordering::SeqCst);
                            sink.lock()
                                .await
                                .send(text(&description("offer", offer))?)
                                .await?;
                        } else {
                            let offer = RTCSessionDescription::offer(sdp)?;
                            current.pc.set_remote_description(offer).await?;
                            let answer = current.pc.create_answer(None).await?;
                            current.pc.set_local_description(answer.clone()).await?;
                            sink.lock()
                                .await
                                .send(text(&description("answer", answer.sdp))?)
                                .await?;
                        }
                        Ok::<(), Error>(())
                    };
                    if let Err(err) = handled.await {
                        // An offer that crossed the client's leaving has
                        // nobody to answer to; anything else is worth a line.
                        if !leaving.load(Ordering::SeqCst) {
                            eprintln!("moim-bench: a headless client's media-server signaling failed: {err}");
                        }
                        return;
                    }
                }
            })
        };
        Ok(Self {
            link,
            sink,
            received,
            restarts,
            signaling,
            leaving,
        })
    }

    /// Writes a 20 ms Opus-sized packet 50 times a second to the current
    /// connection until the flag it returns is cleared.
    fn publish_audio(&self) -> Arc<AtomicBool> {
        self.publish(Duration::from_millis(20), 960, |_| vec![0xf8; 80])
    }

    /// Writes a packet every `every` (timestamps stepping by `ticks`) with
    /// the payload `payload(sequence number)` makes, until the flag it
    /// returns is cleared.
    fn publish(
        &self,
        every: Duration,
        ticks: u32,
        payload: impl Fn(u16) -> Vec<u8> + Send + 'static,
    ) -> Arc<AtomicBool> {
        publish_on(self.link.clone(), every, ticks, payload)
    }

    /// The connection the client publishes on (replaced when it starts
    /// over).
    pub(crate) fn link(&self) -> Arc<Mutex<Link>> {
        self.link.clone()
    }

    /// Leaves the call the way a page does, then closes the connection.
    pub(crate) async fn leave(self) {
        self.leaving.store(true, Ordering::SeqCst);
        if let Ok(leave) = text(&ClientMessage::Leave) {
            let mut sink = self.sink.lock().await;
            let _ = sink.send(leave).await;
            let _ = sink.close().await;
        }
        self.signaling.abort();
        if let Some(current) = current_link(&self.link) {
            let _ = current.pc.close().await;
        }
    }
}
