//! One browser's peer connection to the media server, on webrtc-rs's
//! sans-IO `rtc` core: what it publishes (read off its offers), the m-lines
//! it receives on (one sendonly transceiver per slot of the forwarding
//! core, kept and reused), and the offer/answer exchange, with the server
//! offering only from the stable state (the browser is the polite side).
//!
//! Datagrams, time and signals go in; datagrams, decrypted packets and
//! descriptions for the browser come out. The engine owns the socket.

use super::feedback_to_app::FeedbackToApplication;
use bytes::BytesMut;
use domain::media::forward::rewrite::StreamKind;
use domain::media::forward::room::SlotView;
use rtc::ice::candidate::CandidateConfig;
use rtc::ice::rand::{generate_pwd, generate_ufrag};
use rtc::interceptor::{
    NackGeneratorBuilder, NackResponderBuilder, Registry, SenderReportBuilder, Slot,
};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_simulcast_extension_headers, configure_twcc_receiver_only,
};
use rtc::peer_connection::configuration::media_engine::{
    MediaEngine, MIME_TYPE_OPUS, MIME_TYPE_VP8,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::{RTCSdpType, RTCSessionDescription};
use rtc::peer_connection::state::{RTCPeerConnectionState, RTCSignalingState};
use rtc::peer_connection::transport::{CandidateHostConfig, RTCDtlsRole, RTCIceCandidate};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind, TYPE_RTCP_FB_NACK,
};
use rtc::rtp_transceiver::{
    RTCRtpReceiverId, RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverId,
    RTCRtpTransceiverInit,
};
use rtc::shared::error::{Error, Result};
use rtc::shared::TaggedBytesMut;
use sansio::Protocol;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// An offer of the server's not answered in this long is rolled back and
/// made again (a browser answers within milliseconds; one that does not is
/// going away, or its page starts over).
const OFFER_ANSWER_LIMIT: Duration = Duration::from_secs(5);

/// The chain slot of the interceptor that hands keyframe requests and
/// reception reports to the engine: past every slot of the default chain,
/// so those interceptors have seen the packet first.
const FEEDBACK_TO_APP_SLOT: usize = 14_000;

/// Packets kept per outgoing video stream to answer NACKs (see
/// `interceptors`).
const NACK_BUFFER: u16 = 256;

/// The most simulcast layers taken of one camera (a quarter, half and
/// full size).
const MAX_LAYERS: u8 = domain::media::forward::layers::HIGHEST_LAYER + 1;

/// A track a browser's offer publishes: its m-line, and either its primary
/// SSRC or, sent in simulcast, its layers' stream ids (RIDs), lowest
/// first (the page declares its layers from the smallest up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PublishedTrack {
    pub mid: String,
    pub kind: StreamKind,
    pub ssrc: Option<u32>,
    pub rids: Vec<String>,
}

/// A simulcast layer whose first packet came: its m-line, its place among
/// the m-line's layers (0 the lowest) and its SSRC (a browser names the
/// layers' SSRCs only in the packets, by their RID header extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StartedLayer {
    pub mid: String,
    pub layer: u8,
    pub ssrc: u32,
}

/// The tracks a browser's description sends (`sendrecv` or `sendonly`
/// m-lines with an SSRC or simulcast layers), in m-line order. The primary
/// SSRC is the first of a `FID` group (the second is its retransmission
/// stream), else the first `a=ssrc`; the layers are the `a=simulcast:send`
/// RIDs, in that order.
pub(super) fn published_tracks(sdp: &str) -> Vec<PublishedTrack> {
    let mut tracks = Vec::new();
    for section in sdp.split("\nm=").skip(1) {
        let mut lines = section.lines();
        let media = lines.next().unwrap_or_default();
        let kind = if media.starts_with("audio ") {
            StreamKind::Audio
        } else if media.starts_with("video ") {
            StreamKind::Video
        } else {
            continue;
        };
        // A rejected m-line has port 0.
        if media.split_whitespace().nth(1) == Some("0") {
            continue;
        }
        let (mut mid, mut sends, mut grouped, mut first) = (None, true, None, None);
        let mut rids: Vec<String> = Vec::new();
        for line in lines.map(str::trim_end) {
            if let Some(value) = line.strip_prefix("a=simulcast:send ") {
                // `q;h;f`, or `q;~h` with a paused one; alternatives
                // (`a,b`) are not offered by browsers: the first is taken.
                rids = value
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .split(';')
                    .filter_map(|rid| rid.split(',').next())
                    .map(|rid| rid.trim_start_matches('~').to_string())
                    .filter(|rid| !rid.is_empty())
                    .take(usize::from(MAX_LAYERS))
                    .collect();
            } else if let Some(value) = line.strip_prefix("a=mid:") {
                mid = Some(value.to_string());
            } else if matches!(line, "a=recvonly" | "a=inactive") {
                sends = false;
            } else if let Some(group) = line.strip_prefix("a=ssrc-group:FID ") {
                grouped = group.split_whitespace().next().and_then(|s| s.parse().ok());
            } else if let Some(rest) = line.strip_prefix("a=ssrc:") {
                if first.is_none() {
                    first = rest.split_whitespace().next().and_then(|s| s.parse().ok());
                }
            }
        }
        let ssrc = grouped.or(first);
        let simulcast = kind == StreamKind::Video && !rids.is_empty();
        if let (Some(mid), true) = (mid, sends) {
            if simulcast {
                tracks.push(PublishedTrack {
                    mid,
                    kind,
                    ssrc: None,
                    rids,
                });
            } else if ssrc.is_some() {
                tracks.push(PublishedTrack {
                    mid,
                    kind,
                    ssrc,
                    rids: Vec::new(),
                });
            }
        }
    }
    tracks
}

/// The stream id a forwarded track is shown under: the page reads the
/// publisher from it (`protocol::media_server::publisher_of_stream`).
fn stream_id(publisher: u64) -> String {
    format!("peer-{publisher}-stream")
}

/// One m-line this browser receives on.
struct SlotSender {
    sender: RTCRtpSenderId,
    transceiver: RTCRtpTransceiverId,
    kind: StreamKind,
    ssrc: u32,
    /// Whose track it carries as the browser was last told (`None`:
    /// inactive).
    publisher: Option<u64>,
    /// The payload type this browser's leg gives the codec (known once
    /// negotiated).
    payload_type: Option<u8>,
    /// The id this browser's leg gives the audio level extension, if it
    /// took it.
    audio_level_id: Option<u8>,
    /// Counts the changes of what it carries (publisher, SSRC): which
    /// state the browser was last told of in an answered offer.
    version: u64,
    /// The version the offer out describes.
    offered: Option<u64>,
    /// The version the browser answered last.
    answered: u64,
}

pub(super) struct MediaPeer {
    pc: RTCPeerConnection,
    /// The server's one UDP address, this connection's only candidate.
    local_addr: SocketAddr,
    /// The server's ICE username fragment, which the browser's checks name.
    ufrag: String,
    signaling: RTCSignalingState,
    connected: bool,
    /// The connection carries media to the browser (see
    /// [`Self::follow_receiving`]), and whether that changed since the
    /// engine last asked.
    receiving: bool,
    receiving_changed: bool,
    /// The browser's first offer was answered: the server may offer.
    negotiated: bool,
    candidate_added: bool,
    /// Slots changed since the last offer.
    renegotiate: bool,
    /// When the server's offer left, while it waits for the answer.
    offer_out: Option<Instant>,
    slots: Vec<SlotSender>,
    /// What the browser publishes, per its last offer.
    published: Vec<PublishedTrack>,
    /// Simulcast layers that started sending since the engine last took
    /// them.
    started_layers: Vec<StartedLayer>,
}

fn media_engine() -> Result<MediaEngine> {
    // Opus and VP8 only: a media server forwards, it does not transcode, so
    // every leg of a room must carry the same codec, and these two are the
    // ones every browser sends and receives (and VP8's keyframes are what
    // the forwarding core recognises).
    let mut engine = MediaEngine::default();
    engine.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: opus(),
            payload_type: 111,
        },
        RtpCodecKind::Audio,
    )?;
    engine.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: vp8(),
            payload_type: 96,
        },
        RtpCodecKind::Video,
    )?;
    // Browsers stamp their microphone's level on each packet only when the
    // answer accepts it: the media server reads who speaks from it.
    engine.register_header_extension(
        RTCRtpHeaderExtensionCapability {
            uri: rtc::sdp::extmap::AUDIO_LEVEL_URI.to_string(),
        },
        RtpCodecKind::Audio,
        None,
    )?;
    Ok(engine)
}

/// The interceptor chain of each browser's connection: `rtc`'s default
/// one, but with a smaller NACK send buffer and no receiver reports (see
/// below), plus the interceptor that hands keyframe requests and the
/// browser's reception reports to the engine.
///
/// The chain answers a browser's NACKs from what it sent on each outgoing
/// SSRC, asks publishers again for what was lost on the way in, sends
/// sender reports and reads the browsers' reports. Its default send buffer holds 1024 packets per
/// video stream, allocated when the stream starts (about 120 KB of slots);
/// a media server keeps one stream per publisher per receiver, so in a
/// 50-person meeting that is 2,450 of them. 256 packets are still one to
/// three seconds of video, longer than any retransmission is worth.
fn interceptors(engine: &mut MediaEngine) -> Result<Registry> {
    for parameter in ["", "pli"] {
        engine.register_feedback(
            RTCPFeedback {
                typ: TYPE_RTCP_FB_NACK.to_string(),
                parameter: parameter.to_string(),
            },
            RtpCodecKind::Video,
        );
    }
    let registry = Registry::new()
        .with(
            Slot::NackResponder,
            NackResponderBuilder::new().with_size(NACK_BUFFER).build(),
        )
        .with(Slot::NackGenerator, NackGeneratorBuilder::new().build());
    configure_simulcast_extension_headers(engine)?;
    let registry = configure_twcc_receiver_only(registry, engine)?;
    // Sender reports only, no receiver reports. A browser sends a
    // simulcast layer's RID header extension (the only place its SSRC is
    // named) until a receiver report acknowledges that SSRC; and `rtc`
    // forgets the SSRCs it learned that way whenever the connection is
    // negotiated again (`start_rtp` sets every RID-described track afresh),
    // which the media server does each time someone joins or leaves. With
    // reports, every camera in simulcast stopped reaching the room at the
    // next renegotiation; without them the RIDs keep coming and each layer
    // is bound again at its next packet. Browsers estimate their uplink
    // from the transport-wide congestion feedback the connection sends.
    Ok(registry
        .with(Slot::SenderReport, SenderReportBuilder::new().build())
        .with(
            Slot::Custom(FEEDBACK_TO_APP_SLOT),
            FeedbackToApplication::default(),
        ))
}

fn opus() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_string(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_string(),
        rtcp_feedback: vec![],
    }
}

fn vp8() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_VP8.to_string(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![],
    }
}

fn codec_of(kind: StreamKind) -> RTCRtpCodec {
    match kind {
        StreamKind::Audio => opus(),
        StreamKind::Video => vp8(),
    }
}

fn rtp_kind(kind: StreamKind) -> RtpCodecKind {
    match kind {
        StreamKind::Audio => RtpCodecKind::Audio,
        StreamKind::Video => RtpCodecKind::Video,
    }
}

/// The track a slot sends: the publisher's stream id (or an idle one),
/// the slot's own SSRC.
fn slot_track(kind: StreamKind, ssrc: u32, publisher: Option<u64>) -> MediaStreamTrack {
    let stream = publisher.map_or_else(|| "moim-idle".to_string(), stream_id);
    let track = format!("{stream}-{ssrc}");
    MediaStreamTrack::new(
        stream,
        track.clone(),
        track,
        rtp_kind(kind),
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            active: true,
            codec: codec_of(kind),
            ..Default::default()
        }],
    )
}

impl MediaPeer {
    pub(super) fn new(local_addr: SocketAddr, now: Instant) -> Result<Self> {
        let ufrag = generate_ufrag();
        // ICE-lite (the server only answers checks) and the DTLS server
        // (the browser, which offers, starts the handshake).
        let settings = SettingEngineBuilder::new()
            .with_ice_credentials(ufrag.clone(), generate_pwd())
            .with_lite(true)
            .with_answering_dtls_role(RTCDtlsRole::Server)
            .build();
        let mut engine = media_engine()?;
        let registry = interceptors(&mut engine)?;
        let pc = RTCPeerConnectionBuilder::new()
            .with_setting_engine(settings)
            .with_media_engine(engine)
            .with_interceptor_registry(registry)
            .build(now)?;
        Ok(Self {
            pc,
            local_addr,
            ufrag,
            signaling: RTCSignalingState::Stable,
            connected: false,
            receiving: false,
            receiving_changed: false,
            negotiated: false,
            candidate_added: false,
            renegotiate: false,
            offer_out: None,
            slots: Vec::new(),
            published: Vec::new(),
            started_layers: Vec::new(),
        })
    }

    pub(super) fn ufrag(&self) -> &str {
        &self.ufrag
    }

    pub(super) fn published(&self) -> &[PublishedTrack] {
        &self.published
    }

    /// The simulcast layers that started sending since last asked.
    pub(super) fn take_started_layers(&mut self) -> Vec<StartedLayer> {
        std::mem::take(&mut self.started_layers)
    }

    /// The browser's offer: applied and answered. While an offer of the
    /// server's is out, the browser (polite) rolls its own back on
    /// receiving it, and offers again after: this one is ignored
    /// (`Ok(None)`).
    pub(super) fn offer(&mut self, sdp: String, now: Instant) -> Result<Option<String>> {
        if self.offer_out.is_some() || self.signaling != RTCSignalingState::Stable {
            return Ok(None);
        }
        let offer = RTCSessionDescription::offer(sdp.clone())?;
        self.pc.set_remote_description(now, offer)?;
        self.follow_directions(&sdp);
        if !self.candidate_added {
            let candidate = CandidateHostConfig {
                base_config: CandidateConfig {
                    network: "udp".to_string(),
                    address: self.local_addr.ip().to_string(),
                    port: self.local_addr.port(),
                    component: 1,
                    ..Default::default()
                },
                ..Default::default()
            }
            .new_candidate_host()?;
            self.pc
                .add_local_candidate(RTCIceCandidate::from(&candidate).to_json()?)?;
            self.candidate_added = true;
        }
        let answer = self.pc.create_answer(None)?;
        let answer = self.apply_local(answer, now)?;
        self.published = published_tracks(&sdp);
        self.negotiated = true;
        self.pump(now);
        self.learn_payload_types();
        Ok(Some(answer.sdp))
    }

    /// The browser's answer to the server's offer. `Ok(false)`: none was
    /// out (a late answer to one rolled back), and nothing changed.
    pub(super) fn answer(&mut self, sdp: String, now: Instant) -> Result<bool> {
        if self.offer_out.is_none() {
            return Ok(false);
        }
        let answer = RTCSessionDescription::answer(sdp)?;
        self.offer_out = None;
        self.pc.set_remote_description(now, answer)?;
        for slot in &mut self.slots {
            if let Some(offered) = slot.offered.take() {
                slot.answered = offered;
            }
        }
        self.pump(now);
        self.learn_payload_types();
        Ok(true)
    }

    /// The m-lines carrying someone's track that the browser knows as they
    /// are now: described so in the last offer it answered, and with a
    /// payload type. Forwarding on one waits for this
    /// (`ForwardingRoom::set_negotiated`).
    pub(super) fn negotiated_slots(&self) -> Vec<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| {
                slot.publisher.is_some()
                    && slot.payload_type.is_some()
                    && slot.answered == slot.version
            })
            .map(|(index, _)| index)
            .collect()
    }

    /// A browser's offer describes the server's sendonly m-lines from its
    /// side: `recvonly` where it takes them, `inactive` where it does not.
    fn follow_directions(&mut self, sdp: &str) {
        for section in sdp.split("\nm=").skip(1) {
            let mut mid = None;
            let mut direction = None;
            for line in section.lines().map(str::trim_end) {
                if let Some(value) = line.strip_prefix("a=mid:") {
                    mid = Some(value);
                } else if line == "a=recvonly" {
                    direction = Some(RTCRtpTransceiverDirection::Sendonly);
                } else if line == "a=inactive" {
                    direction = Some(RTCRtpTransceiverDirection::Inactive);
                }
            }
            let (Some(mid), Some(direction)) = (mid, direction) else {
                continue;
            };
            // Only a slot that carries someone's track sends again: an idle
            // one stays inactive whatever the page would take.
            let carrying: Vec<RTCRtpTransceiverId> = self
                .slots
                .iter()
                .filter(|slot| slot.publisher.is_some())
                .map(|slot| slot.transceiver)
                .collect();
            for id in carrying {
                if let Some(mut transceiver) = self.pc.rtp_transceiver(id) {
                    if transceiver.mid().as_deref() == Some(mid) {
                        transceiver.set_direction(direction);
                    }
                }
            }
        }
    }

    /// Brings the server's m-lines in line with `slots` (the forwarding
    /// core's view of this browser): a transceiver per slot, created once
    /// and reused; a slot given to someone else sends under their stream
    /// id from the next offer on. Returns whether anything changed.
    pub(super) fn sync_slots(&mut self, slots: &[SlotView<u64>]) -> Result<bool> {
        let mut changed = false;
        for (index, view) in slots.iter().enumerate() {
            let publisher = view.track.as_ref().map(|track| track.owner);
            if let Some(slot) = self.slots.get(index) {
                if slot.publisher == publisher && slot.ssrc == view.ssrc {
                    continue;
                }
                let (sender, transceiver, kind) = (slot.sender, slot.transceiver, slot.kind);
                // An inactive transceiver has no sender to change (`rtc`
                // hands one out only with a send direction): the track is
                // replaced while it sends.
                if let Some(mut t) = self.pc.rtp_transceiver(transceiver) {
                    t.set_direction(RTCRtpTransceiverDirection::Sendonly);
                }
                self.pc
                    .rtp_sender(sender)
                    .ok_or(Error::ErrRTPSenderNotExisted)?
                    .replace_track(slot_track(kind, view.ssrc, publisher))?;
                if publisher.is_none() {
                    if let Some(mut t) = self.pc.rtp_transceiver(transceiver) {
                        t.set_direction(RTCRtpTransceiverDirection::Inactive);
                    }
                }
                if let Some(slot) = self.slots.get_mut(index) {
                    slot.publisher = publisher;
                    slot.ssrc = view.ssrc;
                    slot.version += 1;
                }
            } else {
                let transceiver = self.pc.add_transceiver_from_track(
                    slot_track(view.kind, view.ssrc, publisher),
                    Some(RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Sendonly,
                        streams: Vec::new(),
                        send_encodings: Vec::new(),
                    }),
                )?;
                if publisher.is_none() {
                    if let Some(mut t) = self.pc.rtp_transceiver(transceiver) {
                        t.set_direction(RTCRtpTransceiverDirection::Inactive);
                    }
                }
                self.slots.push(SlotSender {
                    sender: RTCRtpSenderId::from(transceiver),
                    transceiver,
                    kind: view.kind,
                    ssrc: view.ssrc,
                    publisher,
                    payload_type: None,
                    audio_level_id: None,
                    version: 1,
                    offered: None,
                    answered: 0,
                });
            }
            changed = true;
        }
        if changed {
            self.renegotiate = true;
        }
        Ok(changed)
    }

    /// Sets `description` (an offer or answer of the server's) as the local
    /// one and gives it back as applied (with the candidate in it).
    fn apply_local(
        &mut self,
        description: RTCSessionDescription,
        now: Instant,
    ) -> Result<RTCSessionDescription> {
        self.pc.set_local_description(now, description)?;
        self.pc
            .local_description()
            .ok_or(Error::ErrPeerConnLocalDescriptionNil)
    }

    /// The server's next offer, if one is due and may go: the browser's
    /// first offer answered, none out, the signaling state stable.
    pub(super) fn next_offer(&mut self, now: Instant) -> Result<Option<String>> {
        if !self.negotiated
            || !self.renegotiate
            || self.offer_out.is_some()
            || self.signaling != RTCSignalingState::Stable
        {
            return Ok(None);
        }
        self.renegotiate = false;
        let offer = self.pc.create_offer(None)?;
        let offer = self.apply_local(offer, now)?;
        self.offer_out = Some(now);
        for slot in &mut self.slots {
            slot.offered = Some(slot.version);
        }
        self.pump(now);
        Ok(Some(offer.sdp))
    }

    /// Whether the connection carries media to the browser, if that
    /// changed since last asked (`None`: no change).
    pub(super) fn take_receiving_change(&mut self) -> Option<bool> {
        std::mem::take(&mut self.receiving_changed).then_some(self.receiving)
    }

    /// The connection starts carrying media to the browser once DTLS is
    /// up and every m-line carrying someone's track has its payload type
    /// negotiated (the browser was told of it): what is forwarded before
    /// is lost, a newcomer's first keyframe with it. Once it carries, only
    /// the connection going down stops it: an m-line added later is told
    /// of in the next offer while the others go on.
    fn follow_receiving(&mut self) {
        let receiving = self.connected
            && (self.receiving
                || self
                    .slots
                    .iter()
                    .filter(|slot| slot.publisher.is_some())
                    .all(|slot| slot.payload_type.is_some()));
        if receiving != self.receiving {
            self.receiving = receiving;
            self.receiving_changed = true;
        }
    }

    /// The payload type and audio level id each slot has on this leg, once
    /// negotiated (looked up once, not per packet).
    fn learn_payload_types(&mut self) {
        for slot in &mut self.slots {
            let wanted = codec_of(slot.kind).mime_type;
            let Some(mut sender) = self.pc.rtp_sender(slot.sender) else {
                continue;
            };
            let parameters = &sender.get_parameters().rtp_parameters;
            slot.payload_type = parameters
                .codecs
                .iter()
                .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(&wanted))
                .map(|c| c.payload_type);
            slot.audio_level_id = parameters
                .header_extensions
                .iter()
                .find(|e| e.uri == rtc::sdp::extmap::AUDIO_LEVEL_URI)
                .and_then(|e| u8::try_from(e.id).ok());
        }
        self.follow_receiving();
    }

    /// Sends `packet` on the m-line `slot`, with `header`'s numbers and the
    /// browser's payload type, and `payload` instead of the packet's own
    /// if given (its VP8 numbers rewritten). Of the header extensions only
    /// the audio level goes on, under this leg's id: the others describe
    /// the hop from the publisher (transport-wide sequence numbers, send
    /// times, the publisher's m-line and layer) and mean nothing on this
    /// one.
    pub(super) fn send(
        &mut self,
        slot: usize,
        header: domain::media::forward::rewrite::OutgoingHeader,
        packet: &rtp::Packet,
        payload: Option<bytes::Bytes>,
        audio_level: Option<&bytes::Bytes>,
        now: Instant,
    ) -> Result<bool> {
        let Some(slot) = self.slots.get(slot) else {
            return Ok(false);
        };
        let (Some(payload_type), true) = (slot.payload_type, self.connected) else {
            return Ok(false);
        };
        if slot.ssrc != header.ssrc {
            // The browser has not been offered this SSRC yet.
            return Ok(false);
        }
        let mut packet = rtp::Packet {
            header: rtp::header::Header {
                version: 2,
                padding: false,
                extension: false,
                marker: packet.header.marker,
                payload_type,
                sequence_number: header.sequence,
                timestamp: header.timestamp,
                ssrc: header.ssrc,
                ..Default::default()
            },
            payload: payload.unwrap_or_else(|| packet.payload.clone()),
        };
        if let (Some(level), Some(id)) = (audio_level, slot.audio_level_id) {
            packet.header.set_extension(id, level.clone())?;
        }
        let sender = slot.sender;
        self.pc
            .rtp_sender(sender)
            .ok_or(Error::ErrRTPSenderNotExisted)?
            .write_rtp(now, packet)?;
        Ok(true)
    }

    /// Asks this browser for a keyframe of its stream `ssrc` (PLI).
    pub(super) fn request_keyframe(&mut self, ssrc: u32, now: Instant) -> Result<()> {
        let receivers: Vec<RTCRtpReceiverId> = self.pc.get_receivers().collect();
        let named = receivers.iter().copied().find(|id| {
            self.pc
                .rtp_receiver(*id)
                .is_some_and(|r| r.track().ssrcs().any(|s| s == ssrc))
        });
        // A simulcast layer's SSRC is learned from its packets and may not
        // be among its track's: the request goes out on a video receiver
        // all the same (the SSRC inside it is what the browser reads).
        let receiver = named.or_else(|| {
            receivers.into_iter().find(|id| {
                self.pc
                    .rtp_receiver(*id)
                    .is_some_and(|r| r.track().kind() == RtpCodecKind::Video)
            })
        });
        if let Some(receiver) = receiver {
            if let Some(mut receiver) = self.pc.rtp_receiver(receiver) {
                receiver.write_rtcp(
                    now,
                    vec![Box::new(PictureLossIndication {
                        sender_ssrc: 0,
                        media_ssrc: ssrc,
                    })],
                )?;
            }
        }
        Ok(())
    }

    pub(super) fn handle_datagram(
        &mut self,
        datagram: &[u8],
        transport: rtc::shared::TransportContext,
        now: Instant,
    ) -> Result<()> {
        self.pc.handle_read(TaggedBytesMut {
            now,
            transport,
            message: BytesMut::from(datagram),
        })?;
        self.pump(now);
        Ok(())
    }

    /// The next decrypted packet from the browser (RTP it publishes, RTCP
    /// it sends about what it receives).
    pub(super) fn poll_message(&mut self) -> Option<RTCMessage> {
        self.pc
            .poll_read()
            .map(|TaggedRTCMessage { message, .. }| message)
    }

    pub(super) fn poll_transmit(&mut self) -> Option<TaggedBytesMut> {
        self.pc.poll_write()
    }

    pub(super) fn handle_timeout(&mut self, now: Instant) -> Result<()> {
        let result = self.pc.handle_timeout(now);
        if self
            .offer_out
            .is_some_and(|sent| now.saturating_duration_since(sent) >= OFFER_ANSWER_LIMIT)
        {
            // No answer: roll back, and offer again from stable.
            if let Some(mut offer) = self.pc.local_description() {
                offer.sdp_type = RTCSdpType::Rollback;
                let _ = self.pc.set_local_description(now, offer);
            }
            self.offer_out = None;
            self.renegotiate = true;
            for slot in &mut self.slots {
                slot.offered = None;
            }
        }
        self.pump(now);
        result
    }

    pub(super) fn poll_timeout(&mut self) -> Option<Instant> {
        let offer_due = self.offer_out.map(|sent| sent + OFFER_ANSWER_LIMIT);
        match (self.pc.poll_timeout(), offer_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub(super) fn close(&mut self) {
        let _ = self.pc.close();
    }

    /// Takes the connection's events: the signaling and connection states.
    /// (Negotiation is the engine's to decide: it follows the slots.)
    fn pump(&mut self, _now: Instant) {
        while let Some(event) = self.pc.poll_event() {
            match event {
                RTCPeerConnectionEvent::OnSignalingStateChangeEvent(state) => {
                    self.signaling = state;
                }
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                    self.connected = state == RTCPeerConnectionState::Connected;
                    self.follow_receiving();
                }
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    let Some(rid) = init.rid else {
                        continue;
                    };
                    let transceiver = RTCRtpTransceiverId::from(init.receiver_id);
                    let Some(mid) = self
                        .pc
                        .rtp_transceiver(transceiver)
                        .and_then(|t| t.mid().as_deref().map(str::to_string))
                    else {
                        continue;
                    };
                    let layer = self
                        .published
                        .iter()
                        .find(|track| track.mid == mid)
                        .and_then(|track| track.rids.iter().position(|known| *known == rid))
                        .and_then(|at| u8::try_from(at).ok());
                    if let Some(layer) = layer {
                        self.started_layers.push(StartedLayer {
                            mid,
                            layer,
                            ssrc: init.ssrc,
                        });
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME_OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
a=group:BUNDLE 0 1 2\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendrecv\r\na=ssrc:1111 cname:x\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=mid:1\r\na=sendrecv\r\na=ssrc-group:FID 2222 3333\r\na=ssrc:3333 cname:x\r\na=ssrc:2222 cname:x\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=recvonly\r\n\
m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:3\r\na=sendonly\r\na=ssrc:4444 cname:x\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:4\r\n";

    #[test]
    fn an_offer_publishes_its_sending_m_lines_under_their_primary_ssrc() {
        assert_eq!(
            published_tracks(CHROME_OFFER),
            vec![
                PublishedTrack {
                    mid: "0".into(),
                    kind: StreamKind::Audio,
                    ssrc: Some(1111),
                    rids: Vec::new(),
                },
                // The FID group's first SSRC, not the retransmission one
                // listed first.
                PublishedTrack {
                    mid: "1".into(),
                    kind: StreamKind::Video,
                    ssrc: Some(2222),
                    rids: Vec::new(),
                },
            ]
        );
        assert!(published_tracks("v=0\r\n").is_empty());
    }

    #[test]
    fn a_camera_sent_in_simulcast_publishes_its_layers_lowest_first() {
        let offer = "v=0\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=sendonly\r\n\
a=rid:q send\r\na=rid:h send\r\na=rid:f send\r\na=simulcast:send q;~h;f\r\n";
        assert_eq!(
            published_tracks(offer),
            vec![PublishedTrack {
                mid: "1".into(),
                kind: StreamKind::Video,
                ssrc: None,
                rids: vec!["q".into(), "h".into(), "f".into()],
            }]
        );
    }

    #[test]
    fn a_forwarded_track_names_its_publisher_for_the_page() {
        let track = slot_track(StreamKind::Video, 77, Some(12));
        assert_eq!(
            app::protocol::media_server::publisher_of_stream(track.stream_id()),
            Some(12)
        );
        assert_eq!(track.ssrcs().collect::<Vec<_>>(), vec![77]);
        let idle = slot_track(StreamKind::Audio, 78, None);
        assert_eq!(
            app::protocol::media_server::publisher_of_stream(idle.stream_id()),
            None
        );
    }
}
