//! One room of the media server, as forwarding sees it: who publishes
//! which track under which SSRC, which m-line of each receiving browser
//! carries it, and what each incoming packet or RTCP request turns into.
//!
//! Input: people joining and leaving, their connections becoming able to
//! carry media (or no longer), tracks published (again, after a
//! reconnect, under a new SSRC), the cameras each browser is not to
//! receive (last-N), packets and keyframe requests, each with the time.
//! Output ([`Output`]): packets to send with their new headers, keyframe
//! requests for publishers, and browsers that need a new offer. The engine around it owns the peer connections, the
//! socket and the clock.

use super::keyframe::{starts_keyframe, VideoCodec};
use super::keyframe_requests::KeyframeRequests;
use super::layers::{self, Congestion, Layer, Wish};
use super::rewrite::{Forwarding, IncomingPacket, OutgoingHeader, OutgoingStream, StreamKind};
use super::slots::Slots;
use super::vp8::{self, Vp8Numbers};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// RTP clock rates: Opus runs at 48 kHz, every video codec at 90 kHz.
const AUDIO_CLOCK_RATE: u32 = 48_000;
const VIDEO_CLOCK_RATE: u32 = 90_000;

/// A simulcast layer with no packet for this long has stopped (the
/// browser drops its top layers when its own uplink or CPU is short):
/// receivers move to one that sends.
const LAYER_QUIET: Duration = Duration::from_millis(1_500);

/// A published track: whose, and which of their m-lines (a reconnected
/// browser publishes its camera again under a new SSRC, and the receivers
/// see the same track go on).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackKey<P> {
    pub owner: P,
    pub mid: String,
}

/// A packet from a publisher: its header fields and its payload (for
/// keyframe detection).
#[derive(Debug, Clone, Copy)]
pub struct IncomingRtp<'a> {
    pub ssrc: u32,
    pub sequence: u16,
    pub timestamp: u32,
    pub payload: &'a [u8],
}

/// What the engine is to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output<P> {
    /// Send the packet just given to `to`, on its m-line `slot`, with
    /// `header`.
    Send {
        to: P,
        slot: usize,
        header: OutgoingHeader,
    },
    /// Ask `publisher` for a keyframe of its stream `ssrc` (PLI).
    RequestKeyframe { publisher: P, ssrc: u32 },
    /// `subscriber`'s m-lines changed: it needs a new offer (see
    /// [`ForwardingRoom::slots_of`]).
    Renegotiate { subscriber: P },
}

/// One m-line of a receiving browser, as its offer describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotView<P> {
    pub kind: StreamKind,
    /// The SSRC the browser receives on it, for good.
    pub ssrc: u32,
    /// The track it carries now (`None`: inactive).
    pub track: Option<TrackKey<P>>,
}

#[derive(Debug)]
struct Published<P> {
    key: TrackKey<P>,
    kind: StreamKind,
    codec: VideoCodec,
    /// Its simulcast layer (0, the lowest, for a track sent in one).
    layer: u8,
    /// The picture height of its last keyframe.
    height: Option<u16>,
    /// When its last packet came.
    seen: Option<Instant>,
    /// No packet for `LAYER_QUIET`: receivers get another layer.
    quiet: bool,
    keyframe_requests: KeyframeRequests,
}

#[derive(Debug)]
struct Stream {
    rewrite: OutgoingStream,
    /// The browser has answered an offer that describes this m-line with
    /// the track it carries now ([`ForwardingRoom::set_negotiated`]).
    negotiated: bool,
}

impl Stream {
    /// Whether a keyframe of its source is what it waits for, on an
    /// m-line its browser knows: one asked for now would be taken.
    fn awaits_keyframe(&self) -> bool {
        self.negotiated && self.rewrite.waiting_for_keyframe()
    }
}

#[derive(Debug)]
struct Subscriber<P> {
    slots: Slots<TrackKey<P>>,
    /// One per slot, in the same order.
    streams: Vec<Stream>,
    /// Publishers whose video this browser is not to receive now.
    paused: HashSet<P>,
    /// How tall it shows each publisher's camera (none: the tallest).
    wishes: HashMap<P, Wish>,
    /// How far its loss holds its layers down.
    congestion: Congestion,
    /// Its connection carries media ([`ForwardingRoom::set_receiving`]).
    receiving: bool,
}

/// One room. `P` names a participant (a media connection).
#[derive(Debug)]
pub struct ForwardingRoom<P> {
    /// Published tracks (each simulcast layer its own) by their incoming
    /// SSRC.
    tracks: HashMap<u32, Published<P>>,
    /// The incoming SSRC of each published track, by layer.
    sources: HashMap<TrackKey<P>, BTreeMap<u8, u32>>,
    subscribers: HashMap<P, Subscriber<P>>,
    /// Outgoing SSRCs, first sequence numbers and timestamps (RFC 3550
    /// wants them random).
    rng: StdRng,
    /// Video packets not sent to someone because that camera is paused for
    /// them (last-N), since [`Self::take_withheld`] was last asked.
    withheld: u64,
    /// Receivers' streams moved from one layer of a camera to another,
    /// since [`Self::take_layer_switches`] was last asked.
    layer_switches: u64,
}

impl<P> ForwardingRoom<P>
where
    P: Clone + Eq + Hash + Ord,
{
    pub fn new() -> Self {
        Self::with_rng(StdRng::from_entropy())
    }

    /// A room whose random numbers come from `rng` (tests seed it).
    pub fn with_rng(rng: StdRng) -> Self {
        Self {
            tracks: HashMap::new(),
            sources: HashMap::new(),
            subscribers: HashMap::new(),
            rng,
            withheld: 0,
            layer_switches: 0,
        }
    }

    /// `participant` came: it receives every track published by others,
    /// once its connection can carry them ([`Self::set_receiving`]).
    pub fn join(&mut self, participant: P, now: Instant) -> Vec<Output<P>> {
        self.subscribers
            .entry(participant.clone())
            .or_insert_with(|| Subscriber {
                slots: Slots::default(),
                streams: Vec::new(),
                paused: HashSet::new(),
                wishes: HashMap::new(),
                congestion: Congestion::default(),
                receiving: false,
            });
        let mut outputs = Vec::new();
        self.reconcile(&participant, now, &mut outputs);
        outputs
    }

    /// `participant` connected again on a new peer connection (its page
    /// started over): it receives every track anew, on the m-lines of the
    /// new connection, while what it publishes stays where it is for the
    /// others until its new offer publishes it again under new SSRCs
    /// ([`Self::publish`]): they keep their m-lines and numbers, and see
    /// nothing but the next keyframe.
    pub fn reconnect(&mut self, participant: P, now: Instant) -> Vec<Output<P>> {
        self.subscribers.remove(&participant);
        self.join(participant, now)
    }

    /// `participant`'s connection can carry media to it from now on
    /// (`true`: ICE and DTLS are done and its browser knows its m-lines),
    /// or no longer (`false`). Nothing is forwarded to a connection that
    /// cannot carry it, and no keyframe is asked for it: a keyframe sent
    /// into a connection still being set up is lost, and its receiver
    /// would wait for the next (a second or more). So a newcomer's
    /// keyframes are asked for when its connection is up and its browser
    /// has answered the offer of its m-lines ([`Self::set_negotiated`]),
    /// whichever comes last, and every video stream of a connection that
    /// went down starts again at a keyframe when it is back (with no gap
    /// in its numbers, as after a pause).
    pub fn set_receiving(
        &mut self,
        participant: &P,
        receiving: bool,
        now: Instant,
    ) -> Vec<Output<P>> {
        let mut outputs = Vec::new();
        let Some(subscriber) = self.subscribers.get_mut(participant) else {
            return outputs;
        };
        if subscriber.receiving == receiving {
            return outputs;
        }
        subscriber.receiving = receiving;
        let waiting: Vec<u32> = if receiving {
            subscriber
                .streams
                .iter()
                .filter(|stream| stream.awaits_keyframe())
                .filter_map(|stream| stream.rewrite.wanted())
                .collect()
        } else {
            for stream in &mut subscriber.streams {
                stream.rewrite.restart_at_keyframe();
            }
            Vec::new()
        };
        for source in waiting {
            self.ask_keyframe(source, now, &mut outputs);
        }
        outputs
    }

    /// `participant`'s browser answered an offer describing its m-line
    /// `slot` as it is now: what is sent on it from now on is taken, so
    /// its keyframe is asked for now. Before, a new m-line (someone began
    /// publishing after this browser was receiving) or one handed over
    /// from someone who left is unknown to the browser or inactive in it,
    /// and a keyframe sent there is lost: the stream would wait for the
    /// browser's own request, which the request just made holds back for
    /// an interval. A change to the m-line after the offer went out waits
    /// for the next answer (the caller says which answer described what).
    pub fn set_negotiated(&mut self, participant: &P, slot: usize, now: Instant) -> Vec<Output<P>> {
        let mut outputs = Vec::new();
        let Some(subscriber) = self.subscribers.get_mut(participant) else {
            return outputs;
        };
        let receiving = subscriber.receiving;
        let Some(stream) = subscriber.streams.get_mut(slot) else {
            return outputs;
        };
        if stream.negotiated {
            return outputs;
        }
        stream.negotiated = true;
        let waiting = stream
            .rewrite
            .wanted()
            .filter(|_| receiving && stream.awaits_keyframe());
        if let Some(source) = waiting {
            self.ask_keyframe(source, now, &mut outputs);
        }
        outputs
    }

    /// `participant` left: its tracks leave everyone's m-lines.
    pub fn leave(&mut self, participant: &P, now: Instant) -> Vec<Output<P>> {
        self.subscribers.remove(participant);
        self.tracks
            .retain(|_, track| track.key.owner != *participant);
        self.sources.retain(|key, _| key.owner != *participant);
        self.reconcile_all(now)
    }

    /// `participant` publishes its m-line `mid` under `ssrc`. Publishing
    /// the same m-line under a new SSRC (a reconnected browser) replaces
    /// the old stream: receivers keep their m-line and switch over at the
    /// new stream's first keyframe.
    pub fn publish(
        &mut self,
        participant: P,
        mid: &str,
        kind: StreamKind,
        codec: VideoCodec,
        ssrc: u32,
        now: Instant,
    ) -> Vec<Output<P>> {
        self.publish_layer(participant, mid, kind, codec, 0, ssrc, now)
    }

    /// `participant` publishes simulcast layer `layer` (0 the lowest) of
    /// its m-line `mid` under `ssrc`. Each receiver gets one layer of the
    /// m-line (see [`layers`]); a layer published again under a new SSRC
    /// replaces the old stream, as in [`Self::publish`].
    #[allow(clippy::too_many_arguments)]
    pub fn publish_layer(
        &mut self,
        participant: P,
        mid: &str,
        kind: StreamKind,
        codec: VideoCodec,
        layer: u8,
        ssrc: u32,
        now: Instant,
    ) -> Vec<Output<P>> {
        let key = TrackKey {
            owner: participant,
            mid: mid.to_string(),
        };
        if self
            .tracks
            .get(&ssrc)
            .is_some_and(|track| track.key != key || track.layer != layer)
        {
            // Someone else's SSRC (or another m-line's): the older claim
            // stands, and the claimant's own streams stay as they were.
            return Vec::new();
        }
        if let Some(old) = self
            .sources
            .entry(key.clone())
            .or_default()
            .insert(layer, ssrc)
        {
            if old != ssrc {
                self.tracks.remove(&old);
            }
        }
        self.tracks.entry(ssrc).or_insert(Published {
            key,
            kind,
            codec,
            layer,
            height: None,
            seen: None,
            quiet: false,
            keyframe_requests: KeyframeRequests::default(),
        });
        self.reconcile_all(now)
    }

    /// `participant` stopped publishing its m-line `mid`.
    pub fn unpublish(&mut self, participant: &P, mid: &str, now: Instant) -> Vec<Output<P>> {
        let key = TrackKey {
            owner: participant.clone(),
            mid: mid.to_string(),
        };
        if let Some(layers) = self.sources.remove(&key) {
            for ssrc in layers.values() {
                self.tracks.remove(ssrc);
            }
        }
        self.reconcile_all(now)
    }

    /// How tall `subscriber` shows each publisher's camera now (a
    /// publisher left out: the tallest layer).
    pub fn set_wishes(
        &mut self,
        subscriber: &P,
        wishes: HashMap<P, Wish>,
        now: Instant,
    ) -> Vec<Output<P>> {
        let mut outputs = Vec::new();
        if let Some(entry) = self.subscribers.get_mut(subscriber) {
            if entry.wishes != wishes {
                entry.wishes = wishes;
                self.reconcile(subscriber, now, &mut outputs);
            }
        }
        outputs
    }

    /// A receiver report of `subscriber`'s: the highest fraction lost (out
    /// of 256) among the streams it reports on. Its layers step down while
    /// it loses packets and back up once that has cleared.
    pub fn receiver_report(
        &mut self,
        subscriber: &P,
        fraction_lost: u8,
        now: Instant,
    ) -> Vec<Output<P>> {
        let mut outputs = Vec::new();
        let Some(entry) = self.subscribers.get_mut(subscriber) else {
            return outputs;
        };
        let receiving_top = entry
            .streams
            .iter()
            .filter_map(|stream| stream.rewrite.wanted())
            .filter_map(|ssrc| self.tracks.get(&ssrc))
            .filter(|track| track.kind == StreamKind::Video)
            .map(|track| track.layer)
            .max()
            .unwrap_or(0);
        if entry.congestion.report(fraction_lost, receiving_top, now) {
            self.reconcile(subscriber, now, &mut outputs);
        }
        outputs
    }

    /// The highest layer index `subscriber`'s loss lets it get now
    /// (`None`: any).
    #[cfg(test)]
    pub fn layer_cap(&self, subscriber: &P) -> Option<u8> {
        self.subscribers
            .get(subscriber)
            .and_then(|entry| entry.congestion.cap())
    }

    /// How many times a receiver's stream moved from one layer of a
    /// camera to another, since this was last asked.
    pub fn take_layer_switches(&mut self) -> u64 {
        std::mem::take(&mut self.layer_switches)
    }

    /// `subscriber` is not to receive the video of `publishers` now
    /// (last-N); everyone else's it receives again.
    pub fn pause_video_of(
        &mut self,
        subscriber: &P,
        publishers: &[P],
        now: Instant,
    ) -> Vec<Output<P>> {
        let mut outputs = Vec::new();
        if let Some(entry) = self.subscribers.get_mut(subscriber) {
            entry.paused = publishers.iter().cloned().collect();
            self.reconcile(subscriber, now, &mut outputs);
        }
        outputs
    }

    /// A packet from `from`. Only a participant's own streams are
    /// forwarded: an SSRC published by someone else is dropped.
    pub fn rtp(&mut self, from: &P, packet: IncomingRtp<'_>, now: Instant) -> Vec<Output<P>> {
        let Some(track) = self.tracks.get_mut(&packet.ssrc) else {
            return Vec::new();
        };
        if track.key.owner != *from {
            return Vec::new();
        }
        let video = track.kind == StreamKind::Video;
        let keyframe = video && starts_keyframe(track.codec, packet.payload);
        let mut outputs = Vec::new();
        if video {
            track.seen = Some(now);
            // A layer that sends again, or a new picture size: the
            // receivers' choices are made again, before this packet goes
            // (it may be the keyframe a switch waits for).
            let mut choose_again = std::mem::replace(&mut track.quiet, false);
            if keyframe {
                track.keyframe_requests.keyframe_arrived();
                if track.codec == VideoCodec::Vp8 {
                    let height = vp8::keyframe_height(packet.payload);
                    if height.is_some() && height != track.height {
                        track.height = height;
                        choose_again = true;
                    }
                }
            }
            if choose_again {
                outputs = self.reconcile_all(now);
            }
        }
        let Some(track) = self.tracks.get(&packet.ssrc) else {
            return outputs;
        };
        let incoming = IncomingPacket {
            ssrc: packet.ssrc,
            sequence: packet.sequence,
            timestamp: packet.timestamp,
            starts_keyframe: keyframe,
            vp8: if track.codec == VideoCodec::Vp8 {
                vp8::read_numbers(packet.payload)
            } else {
                Vp8Numbers::default()
            },
        };
        for (to, subscriber) in &mut self.subscribers {
            if !subscriber.receiving {
                continue;
            }
            let Some(slot) = subscriber.slots.index_of(&track.key) else {
                continue;
            };
            if video && subscriber.paused.contains(&track.key.owner) {
                // Counted once per picture sent, whatever its layers.
                if track.layer == 0 {
                    self.withheld += 1;
                }
                continue;
            }
            let Some(stream) = subscriber.streams.get_mut(slot) else {
                continue;
            };
            if !stream.negotiated {
                // Lost in a browser that does not know the m-line yet.
                continue;
            }
            if let Forwarding::Send(header) = stream.rewrite.forward(&incoming, now) {
                outputs.push(Output::Send {
                    to: to.clone(),
                    slot,
                    header,
                });
            }
        }
        outputs
    }

    /// How many video packets were not sent because their camera was
    /// paused for the receiver, since this was last asked.
    pub fn take_withheld(&mut self) -> u64 {
        std::mem::take(&mut self.withheld)
    }

    /// `subscriber` asks for a keyframe on its stream `ssrc` (PLI, FIR):
    /// relayed to the publisher behind it, at most once per interval.
    pub fn keyframe_wanted(&mut self, subscriber: &P, ssrc: u32, now: Instant) -> Vec<Output<P>> {
        let source = self
            .stream_of(subscriber, ssrc)
            .and_then(|(_, stream)| stream.rewrite.wanted());
        let mut outputs = Vec::new();
        if let Some(source) = source {
            self.ask_keyframe(source, now, &mut outputs);
        }
        outputs
    }

    /// Keyframe requests held back that fall due at `now`, and layers
    /// that stopped sending (their receivers move to one that sends).
    pub fn poll(&mut self, now: Instant) -> Vec<Output<P>> {
        let mut went_quiet = false;
        for track in self.tracks.values_mut() {
            let quiet = track
                .seen
                .is_some_and(|seen| now.saturating_duration_since(seen) >= LAYER_QUIET);
            if quiet && !track.quiet {
                track.quiet = true;
                went_quiet |= layered(&self.sources, &track.key);
            }
        }
        let mut outputs: Vec<Output<P>> = self
            .tracks
            .iter_mut()
            .filter_map(|(ssrc, track)| {
                track
                    .keyframe_requests
                    .poll(now)
                    .then(|| Output::RequestKeyframe {
                        publisher: track.key.owner.clone(),
                        ssrc: *ssrc,
                    })
            })
            .collect();
        // A request that went unanswered is asked again while a receiver
        // still waits and the layer sends (a quiet one is asked when it
        // sends again).
        let unanswered: Vec<u32> = self
            .tracks
            .iter()
            .filter(|(_, track)| !track.quiet)
            .filter(|(_, track)| {
                track
                    .keyframe_requests
                    .retry_due()
                    .is_some_and(|due| due <= now)
            })
            .map(|(ssrc, _)| *ssrc)
            .collect();
        for ssrc in unanswered {
            let awaited = self.awaited(ssrc);
            let Some(track) = self.tracks.get_mut(&ssrc) else {
                continue;
            };
            if !awaited {
                track.keyframe_requests.give_up();
            } else if track.keyframe_requests.retry(now) {
                outputs.push(Output::RequestKeyframe {
                    publisher: track.key.owner.clone(),
                    ssrc,
                });
            }
        }
        if went_quiet {
            outputs.extend(self.reconcile_all(now));
        }
        outputs
    }

    /// Whether some receiver's stream waits for a keyframe of `source`.
    fn awaited(&self, source: u32) -> bool {
        self.subscribers
            .values()
            .filter(|subscriber| subscriber.receiving)
            .flat_map(|subscriber| &subscriber.streams)
            .any(|stream| stream.awaits_keyframe() && stream.rewrite.wanted() == Some(source))
    }

    /// When [`Self::poll`] is next due.
    pub fn next_due(&self) -> Option<Instant> {
        let requests = self
            .tracks
            .values()
            .filter_map(|track| track.keyframe_requests.next_due());
        // Whether someone still waits is looked at when it is due.
        let retries = self
            .tracks
            .values()
            .filter(|track| !track.quiet)
            .filter_map(|track| track.keyframe_requests.retry_due());
        let quiet = self
            .tracks
            .values()
            .filter(|track| !track.quiet && layered(&self.sources, &track.key))
            .filter_map(|track| track.seen.map(|seen| seen + LAYER_QUIET));
        requests.chain(retries).chain(quiet).min()
    }

    /// `subscriber`'s m-lines, in order, for its next offer.
    pub fn slots_of(&self, subscriber: &P) -> Vec<SlotView<P>> {
        let Some(entry) = self.subscribers.get(subscriber) else {
            return Vec::new();
        };
        entry
            .slots
            .slots()
            .iter()
            .zip(&entry.streams)
            .map(|(slot, stream)| SlotView {
                kind: slot.kind,
                ssrc: stream.rewrite.ssrc(),
                track: slot.track.clone(),
            })
            .collect()
    }

    fn stream_of(&self, subscriber: &P, ssrc: u32) -> Option<(usize, &Stream)> {
        self.subscribers
            .get(subscriber)?
            .streams
            .iter()
            .enumerate()
            .find(|(_, stream)| stream.rewrite.ssrc() == ssrc)
    }

    fn ask_keyframe(&mut self, source: u32, now: Instant, outputs: &mut Vec<Output<P>>) {
        if let Some(track) = self.tracks.get_mut(&source) {
            if track.kind == StreamKind::Video && track.keyframe_requests.ask(now) {
                outputs.push(Output::RequestKeyframe {
                    publisher: track.key.owner.clone(),
                    ssrc: source,
                });
            }
        }
    }

    fn reconcile_all(&mut self, now: Instant) -> Vec<Output<P>> {
        let mut everyone: Vec<P> = self.subscribers.keys().cloned().collect();
        everyone.sort();
        let mut outputs = Vec::new();
        for participant in everyone {
            self.reconcile(&participant, now, &mut outputs);
        }
        outputs
    }

    /// Brings `participant`'s m-lines and streams in line with the room:
    /// every track of someone else in an m-line, each stream on its
    /// track's current source unless paused. Changes nothing when nothing
    /// changed.
    fn reconcile(&mut self, participant: &P, now: Instant, outputs: &mut Vec<Output<P>>) {
        let mut wanted: Vec<(TrackKey<P>, StreamKind)> = self
            .tracks
            .values()
            .filter(|track| track.key.owner != *participant)
            .map(|track| (track.key.clone(), track.kind))
            .collect();
        wanted.sort_by(|a, b| a.0.cmp(&b.0));
        // A camera in several layers takes one m-line.
        wanted.dedup_by(|a, b| a.0 == b.0);
        let Some(subscriber) = self.subscribers.get_mut(participant) else {
            return;
        };
        let changes = subscriber.slots.reconcile(&wanted);
        for slot in &subscriber.slots.slots()[subscriber.streams.len()..] {
            let clock_rate = match slot.kind {
                StreamKind::Audio => AUDIO_CLOCK_RATE,
                StreamKind::Video => VIDEO_CLOCK_RATE,
            };
            subscriber.streams.push(Stream {
                rewrite: OutgoingStream::new(
                    self.rng.gen(),
                    slot.kind,
                    clock_rate,
                    self.rng.gen(),
                    self.rng.gen(),
                ),
                negotiated: false,
            });
        }
        for (index, _) in &changes.assigned {
            if let Some(stream) = subscriber.streams.get_mut(*index) {
                stream.negotiated = false;
            }
        }
        let mut keyframes_wanted = Vec::new();
        let cap = subscriber.congestion.cap();
        for (slot, stream) in subscriber.slots.slots().iter().zip(&mut subscriber.streams) {
            let source = slot.track.as_ref().and_then(|key| {
                let by_layer = self.sources.get(key)?;
                if slot.kind == StreamKind::Audio {
                    return by_layer.values().next().copied();
                }
                if subscriber.paused.contains(&key.owner) {
                    return None;
                }
                let wish = subscriber.wishes.get(&key.owner).copied();
                let known: Vec<(Layer, bool)> = by_layer
                    .iter()
                    .filter_map(|(index, ssrc)| {
                        let track = self.tracks.get(ssrc)?;
                        let layer = Layer {
                            index: *index,
                            height: track.height,
                        };
                        Some((layer, track.quiet))
                    })
                    .collect();
                let sending: Vec<Layer> = known
                    .iter()
                    .filter(|(_, quiet)| !quiet)
                    .map(|(layer, _)| *layer)
                    .collect();
                // None sends (the camera is off): the choice stands for
                // when it is back.
                let candidates = if sending.is_empty() {
                    known.iter().map(|(layer, _)| *layer).collect()
                } else {
                    sending
                };
                let chosen = layers::choose(&candidates, wish, cap)?;
                by_layer.get(&chosen.index).copied()
            });
            let before = stream.rewrite.wanted();
            if before == source {
                continue;
            }
            let same_camera = |ssrc: Option<u32>| {
                ssrc.and_then(|ssrc| self.tracks.get(&ssrc))
                    .map(|track| &track.key)
            };
            // A switch is from a layer that was being sent.
            let carried = stream.rewrite.carried();
            if carried.is_some() && source.is_some() && same_camera(carried) == same_camera(source)
            {
                self.layer_switches += 1;
            }
            // An m-line the browser does not know yet as it is has its
            // keyframe asked for when it does (`set_negotiated`).
            if stream.rewrite.select(source) && stream.negotiated {
                keyframes_wanted.extend(source);
            }
        }
        if !changes.is_empty() {
            outputs.push(Output::Renegotiate {
                subscriber: participant.clone(),
            });
        }
        if !subscriber.receiving {
            // Asked for when its connection is up.
            keyframes_wanted.clear();
        }
        for source in keyframes_wanted {
            self.ask_keyframe(source, now, outputs);
        }
    }
}

/// Whether `key` is published in several simulcast layers (only such a
/// camera has another layer to move to).
fn layered<P: Eq + Hash>(
    sources: &HashMap<TrackKey<P>, BTreeMap<u8, u32>>,
    key: &TrackKey<P>,
) -> bool {
    sources.get(key).is_some_and(|layers| layers.len() > 1)
}

impl<P> Default for ForwardingRoom<P>
where
    P: Clone + Eq + Hash + Ord,
{
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::time::Duration;

    type Room = ForwardingRoom<u32>;

    const PUBLISHER: u32 = 1;
    const MIC: u32 = 0x1000;
    const CAMERA: u32 = 0x2000;
    /// A VP8 payload that starts a keyframe, and one that does not.
    const KEY: &[u8] = &[0x10, 0x00, 0x9d];
    const DELTA: &[u8] = &[0x10, 0x01, 0x9d];

    fn room() -> Room {
        Room::with_rng(StdRng::seed_from_u64(7))
    }

    /// `who` joins, its browser answers the offer of its m-lines, and its
    /// connection is up, at once.
    fn joined(room: &mut Room, who: u32, now: Instant) -> Vec<Output<u32>> {
        let mut outputs = room.join(who, now);
        outputs.extend(answered(room, who, now));
        outputs.extend(room.set_receiving(&who, true, now));
        outputs
    }

    /// `who` starts over on a new connection, which is up at once.
    fn reconnected(room: &mut Room, who: u32, now: Instant) -> Vec<Output<u32>> {
        let mut outputs = room.reconnect(who, now);
        outputs.extend(answered(room, who, now));
        outputs.extend(room.set_receiving(&who, true, now));
        outputs
    }

    /// `who`'s browser answered an offer describing its m-lines as they
    /// are now.
    fn answered(room: &mut Room, who: u32, now: Instant) -> Vec<Output<u32>> {
        let mut outputs = Vec::new();
        for slot in 0..room.slots_of(&who).len() {
            outputs.extend(room.set_negotiated(&who, slot, now));
        }
        outputs
    }

    /// Every browser answered the offer its m-lines' changes asked for.
    fn all_answered(room: &mut Room, now: Instant) -> Vec<Output<u32>> {
        let mut everyone: Vec<u32> = room.subscribers.keys().copied().collect();
        everyone.sort();
        let mut outputs = Vec::new();
        for who in everyone {
            outputs.extend(answered(room, who, now));
        }
        outputs
    }

    /// The publisher in a room of its own, with a microphone and a
    /// camera; nobody receives them yet.
    fn publishing(now: Instant) -> Room {
        let mut room = room();
        joined(&mut room, PUBLISHER, now);
        publish_both(&mut room, PUBLISHER, MIC, CAMERA, now);
        room
    }

    /// 1 publishes a microphone and a camera; 2 receives them.
    fn two_people_one_publishing(now: Instant) -> Room {
        let mut room = room();
        joined(&mut room, 1, now);
        joined(&mut room, 2, now);
        publish_both(&mut room, 1, MIC, CAMERA, now);
        room
    }

    fn publish_both(
        room: &mut Room,
        who: u32,
        mic: u32,
        camera: u32,
        now: Instant,
    ) -> Vec<Output<u32>> {
        let mut outputs = publish_unanswered(room, who, mic, camera, now);
        outputs.extend(all_answered(room, now));
        outputs
    }

    /// `who` publishes; nobody has answered the offers that asks for yet.
    fn publish_unanswered(
        room: &mut Room,
        who: u32,
        mic: u32,
        camera: u32,
        now: Instant,
    ) -> Vec<Output<u32>> {
        let mut outputs = room.publish(who, "0", StreamKind::Audio, VideoCodec::Other, mic, now);
        outputs.extend(room.publish(who, "1", StreamKind::Video, VideoCodec::Vp8, camera, now));
        outputs
    }

    fn video(
        room: &mut Room,
        from: u32,
        ssrc: u32,
        sequence: u16,
        payload: &[u8],
        now: Instant,
    ) -> Vec<Output<u32>> {
        let packet = IncomingRtp {
            ssrc,
            sequence,
            timestamp: u32::from(sequence) * 3_000,
            payload,
        };
        room.rtp(&from, packet, now)
    }

    fn sends(outputs: &[Output<u32>]) -> Vec<(u32, OutgoingHeader)> {
        outputs
            .iter()
            .filter_map(|output| match output {
                Output::Send { to, header, .. } => Some((*to, *header)),
                _ => None,
            })
            .collect()
    }

    fn keyframe_requests(outputs: &[Output<u32>]) -> usize {
        outputs
            .iter()
            .filter(|output| matches!(output, Output::RequestKeyframe { .. }))
            .count()
    }

    #[test]
    fn one_publisher_reaches_twenty_subscribers_each_under_its_own_ssrc_in_order() {
        let now = Instant::now();
        let mut room = room();
        joined(&mut room, PUBLISHER, now);
        for subscriber in 2..22 {
            joined(&mut room, subscriber, now);
        }
        publish_both(&mut room, PUBLISHER, MIC, CAMERA, now);
        let mut seen: HashMap<u32, Vec<OutgoingHeader>> = HashMap::new();
        for sequence in 65_000u16..=65_535 {
            let payload = if sequence == 65_000 { KEY } else { DELTA };
            for (to, header) in sends(&video(&mut room, PUBLISHER, CAMERA, sequence, payload, now))
            {
                seen.entry(to).or_default().push(header);
            }
        }
        for sequence in 0u16..100 {
            for (to, header) in sends(&video(&mut room, PUBLISHER, CAMERA, sequence, DELTA, now)) {
                seen.entry(to).or_default().push(header);
            }
        }
        assert_eq!(seen.len(), 20, "everyone but the publisher");
        assert!(!seen.contains_key(&PUBLISHER));
        let ssrcs: HashSet<u32> = seen.values().map(|headers| headers[0].ssrc).collect();
        assert_eq!(ssrcs.len(), 20, "an SSRC of its own for each");
        assert!(!ssrcs.contains(&CAMERA));
        for headers in seen.values() {
            assert_eq!(headers.len(), 636, "loss 0");
            for pair in headers.windows(2) {
                assert_eq!(pair[1].sequence, pair[0].sequence.wrapping_add(1));
                assert_eq!(pair[1].ssrc, pair[0].ssrc);
            }
        }
    }

    #[test]
    fn newcomers_keyframe_requests_reach_the_publisher_once_per_interval() {
        let now = Instant::now();
        let mut room = publishing(now);
        let outputs = joined(&mut room, 2, now);
        assert_eq!(
            outputs
                .iter()
                .filter(|output| matches!(
                    output,
                    Output::RequestKeyframe {
                        publisher: PUBLISHER,
                        ssrc: CAMERA
                    }
                ))
                .count(),
            1
        );
        assert!(outputs.contains(&Output::Renegotiate { subscriber: 2 }));
        // Four more at once: held back, then relayed once.
        let more: usize = (3..7)
            .map(|who| keyframe_requests(&joined(&mut room, who, now)))
            .sum();
        assert_eq!(more, 0);
        assert_eq!(room.next_due(), Some(now + Duration::from_millis(500)));
        let due = room.poll(now + Duration::from_millis(500));
        assert_eq!(
            due,
            vec![Output::RequestKeyframe {
                publisher: PUBLISHER,
                ssrc: CAMERA
            }]
        );
        // A keyframe answers them; nothing is due any more.
        video(&mut room, PUBLISHER, CAMERA, 1, KEY, now);
        assert_eq!(room.next_due(), None);
    }

    #[test]
    fn a_lost_keyframe_request_is_asked_again_while_a_receiver_waits() {
        use super::super::keyframe_requests::RETRY_AFTER;
        let now = Instant::now();
        let mut room = publishing(now);
        video(&mut room, PUBLISHER, CAMERA, 1, DELTA, now);
        assert_eq!(keyframe_requests(&joined(&mut room, 2, now)), 1);
        // The camera goes on sending deltas: the request was lost.
        let mut at = now;
        let mut asked = Vec::new();
        for sequence in 2..100u16 {
            at += Duration::from_millis(33);
            video(&mut room, PUBLISHER, CAMERA, sequence, DELTA, at);
            if room.next_due().is_some_and(|due| due <= at) {
                asked.extend(
                    room.poll(at)
                        .into_iter()
                        .filter(|output| matches!(output, Output::RequestKeyframe { .. }))
                        .map(|_| at),
                );
            }
        }
        // 98 frames of 33 ms: about three seconds, so asked thrice more,
        // a second apart.
        assert_eq!(asked.len(), 3, "asked again at {asked:?}");
        for pair in [now].iter().chain(&asked).collect::<Vec<_>>().windows(2) {
            let gap = pair[1].saturating_duration_since(*pair[0]);
            assert!(gap >= RETRY_AFTER && gap < RETRY_AFTER + Duration::from_millis(40));
        }
        // The keyframe answers; the receiver leaving would too.
        assert_eq!(
            sends(&video(&mut room, PUBLISHER, CAMERA, 100, KEY, at)).len(),
            1
        );
        assert_eq!(room.next_due(), None);
        assert!(room.poll(at + RETRY_AFTER * 2).is_empty());
    }

    #[test]
    fn a_newcomers_keyframe_is_asked_for_once_its_connection_is_up() {
        let now = Instant::now();
        let mut room = publishing(now);
        let outputs = room.join(2, now);
        assert!(outputs.contains(&Output::Renegotiate { subscriber: 2 }));
        assert_eq!(keyframe_requests(&outputs), 0, "its connection is not up");
        assert!(
            answered(&mut room, 2, now).is_empty(),
            "answered, still not up"
        );
        assert!(
            sends(&video(&mut room, PUBLISHER, CAMERA, 1, KEY, now)).is_empty(),
            "a keyframe it could not receive"
        );
        assert_eq!(room.next_due(), None, "nobody waits yet");
        let up = now + Duration::from_millis(200);
        assert_eq!(
            room.set_receiving(&2, true, up),
            vec![Output::RequestKeyframe {
                publisher: PUBLISHER,
                ssrc: CAMERA
            }]
        );
        assert!(room.set_receiving(&2, true, up).is_empty(), "no change");
        assert!(sends(&video(&mut room, PUBLISHER, CAMERA, 2, DELTA, up)).is_empty());
        assert_eq!(
            sends(&video(&mut room, PUBLISHER, CAMERA, 3, KEY, up)).len(),
            1
        );
    }

    #[test]
    fn a_stream_added_to_a_receiving_browser_waits_for_its_answer() {
        let now = Instant::now();
        let mut room = room();
        joined(&mut room, 1, now);
        joined(&mut room, 2, now);
        let outputs = publish_unanswered(&mut room, 1, MIC, CAMERA, now);
        assert!(outputs.contains(&Output::Renegotiate { subscriber: 2 }));
        assert_eq!(
            keyframe_requests(&outputs),
            0,
            "2's browser has no such m-line yet: the keyframe would be lost"
        );
        assert!(sends(&video(&mut room, 1, CAMERA, 1, KEY, now)).is_empty());
        let later = now + Duration::from_secs(2);
        assert_eq!(keyframe_requests(&room.poll(later)), 0, "nobody waits yet");
        let camera = room
            .slots_of(&2)
            .iter()
            .position(|slot| slot.kind == StreamKind::Video)
            .expect("a video m-line for 1's camera");
        assert_eq!(
            room.set_negotiated(&2, camera, later),
            vec![Output::RequestKeyframe {
                publisher: 1,
                ssrc: CAMERA
            }]
        );
        assert!(
            room.set_negotiated(&2, camera, later).is_empty(),
            "no change"
        );
        assert!(sends(&video(&mut room, 1, CAMERA, 2, DELTA, later)).is_empty());
        assert_eq!(sends(&video(&mut room, 1, CAMERA, 3, KEY, later)).len(), 1);
    }

    #[test]
    fn an_m_line_handed_to_a_new_publisher_waits_for_its_answer() {
        let now = Instant::now();
        let mut room = room();
        for who in [1, 2, 3] {
            joined(&mut room, who, now);
        }
        publish_both(&mut room, 2, 0x21, 0x22, now);
        assert_eq!(sends(&video(&mut room, 2, 0x22, 1, KEY, now)).len(), 2);
        room.leave(&2, now);
        all_answered(&mut room, now);
        let outputs = publish_unanswered(&mut room, 3, 0x31, 0x32, now);
        let camera = room
            .slots_of(&1)
            .iter()
            .position(|slot| slot.kind == StreamKind::Video)
            .expect("1's video m-line");
        assert_eq!(room.slots_of(&1).len(), 2, "2's m-lines, handed over");
        assert_eq!(
            keyframe_requests(&outputs),
            0,
            "inactive in 1's browser yet"
        );
        assert!(
            sends(&video(&mut room, 3, 0x32, 1, KEY, now)).is_empty(),
            "a keyframe its browser would drop"
        );
        assert_eq!(keyframe_requests(&room.set_negotiated(&1, camera, now)), 1);
        let to_one = sends(&video(&mut room, 3, 0x32, 2, KEY, now));
        assert_eq!(to_one.len(), 1);
        assert_eq!(to_one[0].0, 1);
    }

    #[test]
    fn a_connection_that_went_down_starts_again_at_a_keyframe_with_no_gap() {
        let now = Instant::now();
        let mut room = two_people_one_publishing(now);
        let first = sends(&video(&mut room, 1, CAMERA, 10, KEY, now))[0].1;
        assert_eq!(sends(&video(&mut room, 1, CAMERA, 11, DELTA, now)).len(), 1);
        assert!(room.set_receiving(&2, false, now).is_empty());
        assert!(sends(&video(&mut room, 1, CAMERA, 12, DELTA, now)).is_empty());
        assert!(sends(&video(&mut room, 1, CAMERA, 13, KEY, now)).is_empty());
        let back = now + Duration::from_secs(1);
        assert_eq!(keyframe_requests(&room.set_receiving(&2, true, back)), 1);
        assert!(
            sends(&video(&mut room, 1, CAMERA, 14, DELTA, back)).is_empty(),
            "a delta after the gap would be decoded against the wrong picture"
        );
        let again = sends(&video(&mut room, 1, CAMERA, 15, KEY, back))[0].1;
        assert_eq!(again.ssrc, first.ssrc);
        assert_eq!(again.sequence, first.sequence.wrapping_add(2), "no gap");
    }

    #[test]
    fn nobody_waiting_means_no_request_is_asked_again() {
        let now = Instant::now();
        let mut room = publishing(now);
        assert_eq!(keyframe_requests(&joined(&mut room, 2, now)), 1);
        room.leave(&2, now);
        assert!(room.poll(now + Duration::from_secs(5)).is_empty());
        assert_eq!(room.next_due(), None, "given up");
    }

    #[test]
    fn nothing_before_the_keyframe_reaches_a_newcomer() {
        let now = Instant::now();
        let mut room = publishing(now);
        joined(&mut room, 2, now);
        assert!(sends(&video(&mut room, PUBLISHER, CAMERA, 10, DELTA, now)).is_empty());
        assert_eq!(
            sends(&video(&mut room, PUBLISHER, CAMERA, 11, KEY, now)).len(),
            1
        );
    }

    #[test]
    fn a_publisher_leaving_frees_its_m_lines_for_the_next_one() {
        let now = Instant::now();
        let mut room = room();
        for who in [1, 2, 3] {
            joined(&mut room, who, now);
        }
        publish_both(&mut room, 2, 0x21, 0x22, now);
        let before = room.slots_of(&1);
        assert_eq!(before.len(), 2);
        let outputs = room.leave(&2, now);
        assert!(outputs.contains(&Output::Renegotiate { subscriber: 1 }));
        assert!(outputs.contains(&Output::Renegotiate { subscriber: 3 }));
        assert!(room.slots_of(&1).iter().all(|slot| slot.track.is_none()));
        assert!(
            sends(&video(&mut room, 2, 0x22, 5, KEY, now)).is_empty(),
            "gone"
        );

        joined(&mut room, 4, now);
        publish_both(&mut room, 4, 0x41, 0x42, now);
        let after = room.slots_of(&1);
        assert_eq!(after.len(), 2, "no new m-line");
        assert_eq!(
            after[1].ssrc, before[1].ssrc,
            "the same SSRC for the browser"
        );
        assert_eq!(after[1].track.as_ref().map(|key| key.owner), Some(4));
    }

    #[test]
    fn nobody_forwards_a_stream_published_by_someone_else() {
        let now = Instant::now();
        let mut room = room();
        for who in [1, 2, 3] {
            joined(&mut room, who, now);
        }
        publish_both(&mut room, 1, MIC, CAMERA, now);
        assert!(video(&mut room, 2, CAMERA, 1, KEY, now).is_empty());
        // Claiming someone's SSRC as one's own changes nothing either, not
        // even the claimant's own camera.
        publish_both(&mut room, 2, 0x41, 0x42, now);
        assert!(room
            .publish(2, "1", StreamKind::Video, VideoCodec::Vp8, CAMERA, now)
            .is_empty());
        assert!(video(&mut room, 2, CAMERA, 2, KEY, now).is_empty());
        assert_eq!(sends(&video(&mut room, 2, 0x42, 1, KEY, now)).len(), 2);
        assert_eq!(sends(&video(&mut room, 1, CAMERA, 3, KEY, now)).len(), 2);
    }

    #[test]
    fn a_reconnected_publisher_goes_on_in_the_same_m_line_with_no_gap() {
        let now = Instant::now();
        let mut room = two_people_one_publishing(now);
        let last = sends(&video(&mut room, 1, CAMERA, 100, KEY, now))[0].1;
        // The page reconnects: the same m-line, a new SSRC.
        let outputs = room.publish(1, "1", StreamKind::Video, VideoCodec::Vp8, 0x3000, now);
        assert!(!outputs
            .iter()
            .any(|output| matches!(output, Output::Renegotiate { .. })));
        assert_eq!(keyframe_requests(&outputs), 1);
        assert!(
            sends(&video(&mut room, 1, CAMERA, 101, DELTA, now)).is_empty(),
            "the old stream is gone"
        );
        let first = sends(&video(&mut room, 1, 0x3000, 7, KEY, now))[0].1;
        assert_eq!(first.ssrc, last.ssrc);
        assert_eq!(first.sequence, last.sequence.wrapping_add(1));
    }

    #[test]
    fn a_receivers_keyframe_request_reaches_the_publisher_once_per_interval() {
        let now = Instant::now();
        let mut room = two_people_one_publishing(now);
        let later = now + Duration::from_secs(1);
        let camera_ssrc = room.slots_of(&2)[1].ssrc;
        assert_eq!(
            room.keyframe_wanted(&2, camera_ssrc, later),
            vec![Output::RequestKeyframe {
                publisher: 1,
                ssrc: CAMERA
            }]
        );
        assert!(room.keyframe_wanted(&2, camera_ssrc, later).is_empty());
        assert!(
            room.keyframe_wanted(&2, 0xdead, later).is_empty(),
            "no such stream"
        );
    }

    #[test]
    fn a_paused_camera_sends_nothing_but_its_microphone_and_comes_back_without_a_gap() {
        let now = Instant::now();
        let mut room = two_people_one_publishing(now);
        let before = sends(&video(&mut room, 1, CAMERA, 0, KEY, now))[0].1;

        assert!(room.pause_video_of(&2, &[1], now).is_empty());
        assert!(room.pause_video_of(&2, &[1], now).is_empty(), "idempotent");
        assert_eq!(room.take_withheld(), 0);
        assert!(sends(&video(&mut room, 1, CAMERA, 1, KEY, now)).is_empty());
        assert_eq!(room.take_withheld(), 1, "counted for the operator");
        assert_eq!(room.take_withheld(), 0);
        let audio = IncomingRtp {
            ssrc: MIC,
            sequence: 9,
            timestamp: 0,
            payload: &[1],
        };
        assert_eq!(sends(&room.rtp(&1, audio, now)).len(), 1, "still heard");

        let later = now + Duration::from_secs(1);
        let outputs = room.pause_video_of(&2, &[], later);
        assert_eq!(keyframe_requests(&outputs), 1);
        assert!(sends(&video(&mut room, 1, CAMERA, 500, DELTA, later)).is_empty());
        let back = sends(&video(&mut room, 1, CAMERA, 501, KEY, later))[0].1;
        assert_eq!(back.sequence, before.sequence.wrapping_add(1));
    }

    /// Simulcast: 1 publishes its camera in three layers; 2 receives.
    const LAYERS: [u32; 3] = [0x10, 0x11, 0x12];
    const HEIGHTS: [u16; 3] = [180, 360, 720];

    /// A VP8 packet of layer `layer` with its own picture id: a keyframe's
    /// first packet (with the layer's height) or a delta.
    fn layer_payload(layer: usize, picture_id: u16, key: bool) -> Vec<u8> {
        let [high, low] = picture_id.to_be_bytes();
        let mut payload = vec![0x90, 0x80, 0x80 | high, low];
        if key {
            payload.extend([0x50, 0x2a, 0x01, 0x9d, 0x01, 0x2a]);
            payload.extend((HEIGHTS[layer] * 16 / 9).to_le_bytes());
            payload.extend(HEIGHTS[layer].to_le_bytes());
        } else {
            payload.extend([0x51, 0x2a, 0x01, 0, 0, 0]);
        }
        payload
    }

    fn simulcast_room(now: Instant) -> Room {
        let mut room = room();
        joined(&mut room, 1, now);
        joined(&mut room, 2, now);
        room.publish(1, "0", StreamKind::Audio, VideoCodec::Other, MIC, now);
        for (layer, ssrc) in LAYERS.iter().enumerate() {
            room.publish_layer(
                1,
                "1",
                StreamKind::Video,
                VideoCodec::Vp8,
                layer as u8,
                *ssrc,
                now,
            );
        }
        all_answered(&mut room, now);
        room
    }

    /// One frame of every layer (a keyframe each if `key`), as a camera in
    /// simulcast sends them; what 2 gets of it.
    fn frame_of_all_layers(
        room: &mut Room,
        frame: u16,
        key: bool,
        now: Instant,
    ) -> Vec<Output<u32>> {
        let mut outputs = Vec::new();
        for (layer, ssrc) in LAYERS.iter().enumerate() {
            // Each layer numbers its packets and pictures on its own.
            let sequence = frame.wrapping_add(1_000 * layer as u16);
            let payload = layer_payload(layer, frame.wrapping_add(7_000 * layer as u16), key);
            let packet = IncomingRtp {
                ssrc: *ssrc,
                sequence,
                timestamp: u32::from(frame) * 3_000 + 50_000 * layer as u32,
                payload: &payload,
            };
            outputs.extend(room.rtp(&1, packet, now));
        }
        outputs
    }

    fn keyframe_requests_for(outputs: &[Output<u32>], ssrc: u32) -> usize {
        outputs
            .iter()
            .filter(|o| matches!(o, Output::RequestKeyframe { ssrc: s, .. } if *s == ssrc))
            .count()
    }

    #[test]
    fn each_receiver_gets_the_lowest_layer_as_tall_as_its_tile() {
        let now = Instant::now();
        let mut room = simulcast_room(now);
        assert_eq!(
            room.slots_of(&2).len(),
            2,
            "one m-line for the microphone, one for all the camera's layers"
        );
        let camera = room.slots_of(&2)[1].ssrc;
        // With no wish, the top layer.
        let first = frame_of_all_layers(&mut room, 1, true, now);
        assert_eq!(sends(&first).len(), 1, "one layer");
        assert_eq!(room.take_layer_switches(), 0);
        let wishes = |height| HashMap::from([(1u32, Wish::UpTo(height))]);
        let now = now + Duration::from_secs(1);
        let outputs = room.set_wishes(&2, wishes(200), now);
        assert_eq!(
            keyframe_requests_for(&outputs, LAYERS[1]),
            1,
            "a PLI for the switch"
        );
        assert_eq!(room.take_layer_switches(), 1);
        // Until the 360 layer's keyframe, the 720 one goes on.
        let delta = frame_of_all_layers(&mut room, 2, false, now);
        assert_eq!(sends(&delta).len(), 1);
        let key = frame_of_all_layers(&mut room, 3, true, now);
        let sent = sends(&key);
        assert_eq!(sent.len(), 1, "one layer only, never two");
        assert_eq!(sent[0].1.ssrc, camera);
        // Off: nothing of that camera.
        room.set_wishes(&2, HashMap::from([(1u32, Wish::Off)]), now);
        assert!(sends(&frame_of_all_layers(&mut room, 4, true, now)).is_empty());
        // Back to a small tile: the 180 layer.
        room.set_wishes(&2, wishes(90), now);
        let small = sends(&frame_of_all_layers(&mut room, 5, true, now));
        assert_eq!(small.len(), 1);
        assert_eq!(small[0].1.ssrc, camera);
    }

    #[test]
    fn a_layer_switch_keeps_the_receivers_numbers_running_on_and_asks_a_keyframe_each_time() {
        let start = Instant::now();
        let mut room = simulcast_room(start);
        let mut seen: Vec<OutgoingHeader> = Vec::new();
        let mut requests = 0;
        let mut frame = 0u16;
        // Down and up again, several times, a frame every 33 ms.
        for height in [720, 180, 360, 720, 180, 720] {
            let now = start + Duration::from_millis(33 * u64::from(frame));
            let outputs = room.set_wishes(&2, HashMap::from([(1u32, Wish::UpTo(height))]), now);
            requests += keyframe_requests(&outputs);
            for _ in 0..30 {
                frame += 1;
                let now = start + Duration::from_millis(33 * u64::from(frame));
                // A keyframe every 10 frames on each layer.
                let outputs = frame_of_all_layers(&mut room, frame, frame.is_multiple_of(10), now);
                requests += keyframe_requests(&outputs);
                seen.extend(
                    sends(&outputs)
                        .into_iter()
                        .map(|(_, h)| h)
                        .filter(|h| h.vp8.picture_id.is_some()),
                );
            }
        }
        assert_eq!(room.take_layer_switches(), 5);
        assert!(
            requests >= 5,
            "a keyframe asked for on every switch: {requests}"
        );
        let camera = room.slots_of(&2)[1].ssrc;
        assert!(seen.len() > 150);
        for pair in seen.windows(2) {
            assert_eq!(pair[1].ssrc, camera);
            assert_eq!(
                pair[1].sequence,
                pair[0].sequence.wrapping_add(1),
                "no gap, no repeat"
            );
            let advance = pair[1].timestamp.wrapping_sub(pair[0].timestamp);
            assert!(
                advance > 0 && advance < 90_000,
                "timestamps move on: {advance}"
            );
            let (Some((a, _)), Some((b, _))) = (pair[0].vp8.picture_id, pair[1].vp8.picture_id)
            else {
                panic!("picture ids kept");
            };
            assert_eq!(b, (a + 1) & 0x7fff, "one picture after the other");
        }
    }

    #[test]
    fn a_receiver_that_loses_packets_steps_down_and_comes_back_up_when_it_clears() {
        let start = Instant::now();
        let mut room = simulcast_room(start);
        frame_of_all_layers(&mut room, 1, true, start);
        let top = |room: &mut Room, frame: u16, now: Instant| {
            let outputs = frame_of_all_layers(room, frame, true, now);
            let sent = sends(&outputs);
            assert_eq!(sent.len(), 1);
            sent[0].1
        };
        top(&mut room, 2, start);
        let first_loss = start + Duration::from_secs(1);
        assert!(room.receiver_report(&2, 0, first_loss).is_empty());
        let outputs = room.receiver_report(&2, 60, first_loss);
        assert_eq!(keyframe_requests_for(&outputs, LAYERS[1]), 1);
        assert_eq!(room.layer_cap(&2), Some(1));
        let later = start + Duration::from_secs(3);
        room.receiver_report(&2, 60, later);
        assert_eq!(room.layer_cap(&2), Some(0), "down to the lowest");
        // 2 gets the lowest layer now; another receiver, with no loss,
        // still gets the top one.
        joined(&mut room, 3, later);
        assert_eq!(room.layer_cap(&3), None);
        let one = |room: &mut Room, layer: usize| {
            let payload = layer_payload(layer, 9, true);
            let packet = IncomingRtp {
                ssrc: LAYERS[layer],
                sequence: 9,
                timestamp: 27_000,
                payload: &payload,
            };
            let receivers: Vec<u32> = sends(&room.rtp(&1, packet, later))
                .into_iter()
                .map(|(to, _)| to)
                .collect();
            receivers
        };
        assert_eq!(one(&mut room, 0), vec![2]);
        assert!(one(&mut room, 1).is_empty());
        assert_eq!(one(&mut room, 2), vec![3]);
        // Clear for long enough: back up one step at a time.
        let mut now = later;
        for _ in 0..4 {
            now += Duration::from_secs(3);
            room.receiver_report(&2, 0, now);
        }
        assert_eq!(room.layer_cap(&2), Some(1));
        for _ in 0..4 {
            now += Duration::from_secs(3);
            room.receiver_report(&2, 0, now);
        }
        assert_eq!(room.layer_cap(&2), None);
    }

    #[test]
    fn a_layer_that_stops_sending_is_left_for_one_that_sends() {
        let start = Instant::now();
        let mut room = simulcast_room(start);
        frame_of_all_layers(&mut room, 1, true, start);
        // The browser drops its top layer (short of uplink): only the two
        // lower ones send from now on.
        let mut now = start;
        let mut got = 0;
        for frame in 2..80u16 {
            now = start + Duration::from_millis(33 * u64::from(frame));
            if room.next_due().is_some_and(|due| due <= now) {
                let outputs = room.poll(now);
                assert!(keyframe_requests_for(&outputs, LAYERS[1]) <= 1);
            }
            for (layer, ssrc) in LAYERS.iter().enumerate().take(2) {
                let payload = layer_payload(layer, frame, frame.is_multiple_of(10));
                let packet = IncomingRtp {
                    ssrc: *ssrc,
                    sequence: frame,
                    timestamp: u32::from(frame) * 3_000,
                    payload: &payload,
                };
                got += sends(&room.rtp(&1, packet, now)).len();
            }
        }
        assert!(now - start > LAYER_QUIET);
        assert!(got > 20, "the 360 layer took over: {got}");
        assert_eq!(room.take_layer_switches(), 1);
    }

    #[test]
    fn a_reconnected_publisher_is_received_anew_and_the_others_notice_only_a_keyframe() {
        let now = Instant::now();
        let mut room = two_people_one_publishing(now);
        let before = sends(&video(&mut room, 1, CAMERA, 10, KEY, now))[0].1;
        let slots_of_2 = room.slots_of(&2);

        // 1's page starts over: its own m-lines start afresh (a new
        // connection), 2's do not change.
        let outputs = reconnected(&mut room, 1, now);
        assert!(outputs
            .iter()
            .all(|o| !matches!(o, Output::Renegotiate { subscriber } if *subscriber == 2)));
        assert_eq!(room.slots_of(&2), slots_of_2);
        // Its new offer publishes the same m-lines under new SSRCs.
        let outputs = publish_both(&mut room, 1, MIC + 1, CAMERA + 1, now);
        assert!(outputs
            .iter()
            .all(|o| !matches!(o, Output::Renegotiate { subscriber } if *subscriber == 2)));
        assert_eq!(room.slots_of(&2)[1].ssrc, slots_of_2[1].ssrc);
        // 2 gets the new camera from its first keyframe, numbered on.
        assert!(sends(&video(&mut room, 1, CAMERA + 1, 500, DELTA, now)).is_empty());
        let after = sends(&video(&mut room, 1, CAMERA + 1, 501, KEY, now))[0].1;
        assert_eq!(after.ssrc, before.ssrc);
        assert_eq!(after.sequence, before.sequence.wrapping_add(1));
    }
}
