//! One room of the media server, as forwarding sees it: who publishes
//! which track under which SSRC, which m-line of each receiving browser
//! carries it, and what each incoming packet or RTCP request turns into.
//!
//! Input: people joining and leaving, tracks published (again, after a
//! reconnect, under a new SSRC), the cameras each browser is not to
//! receive (last-N), packets and keyframe requests, each with the time.
//! Output ([`Output`]): packets to send with their new headers, keyframe
//! requests for publishers, and browsers that need a new offer. The engine around it owns the peer connections, the
//! socket and the clock.

use super::keyframe::{starts_keyframe, VideoCodec};
use super::keyframe_requests::KeyframeRequests;
use super::rewrite::{Forwarding, IncomingPacket, OutgoingHeader, OutgoingStream, StreamKind};
use super::slots::Slots;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::time::Instant;

/// RTP clock rates: Opus runs at 48 kHz, every video codec at 90 kHz.
const AUDIO_CLOCK_RATE: u32 = 48_000;
const VIDEO_CLOCK_RATE: u32 = 90_000;

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
    keyframe_requests: KeyframeRequests,
}

#[derive(Debug)]
struct Stream {
    rewrite: OutgoingStream,
}

#[derive(Debug)]
struct Subscriber<P> {
    slots: Slots<TrackKey<P>>,
    /// One per slot, in the same order.
    streams: Vec<Stream>,
    /// Publishers whose video this browser is not to receive now.
    paused: HashSet<P>,
}

/// One room. `P` names a participant (a media connection).
#[derive(Debug)]
pub struct ForwardingRoom<P> {
    /// Published tracks by their incoming SSRC.
    tracks: HashMap<u32, Published<P>>,
    /// The incoming SSRC of each published track.
    sources: HashMap<TrackKey<P>, u32>,
    subscribers: HashMap<P, Subscriber<P>>,
    /// Outgoing SSRCs, first sequence numbers and timestamps (RFC 3550
    /// wants them random).
    rng: StdRng,
    /// Video packets not sent to someone because that camera is paused for
    /// them (last-N), since [`Self::take_withheld`] was last asked.
    withheld: u64,
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
        }
    }

    /// `participant` came: it receives every track published by others.
    pub fn join(&mut self, participant: P, now: Instant) -> Vec<Output<P>> {
        self.subscribers
            .entry(participant.clone())
            .or_insert_with(|| Subscriber {
                slots: Slots::default(),
                streams: Vec::new(),
                paused: HashSet::new(),
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
        let key = TrackKey {
            owner: participant,
            mid: mid.to_string(),
        };
        if self.tracks.get(&ssrc).is_some_and(|track| track.key != key) {
            // Someone else's SSRC (or another m-line's): the older claim
            // stands, and the claimant's own streams stay as they were.
            return Vec::new();
        }
        if let Some(old) = self.sources.insert(key.clone(), ssrc) {
            if old != ssrc {
                self.tracks.remove(&old);
            }
        }
        self.tracks.entry(ssrc).or_insert(Published {
            key,
            kind,
            codec,
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
        if let Some(ssrc) = self.sources.remove(&key) {
            self.tracks.remove(&ssrc);
        }
        self.reconcile_all(now)
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
        let keyframe =
            track.kind == StreamKind::Video && starts_keyframe(track.codec, packet.payload);
        if keyframe {
            track.keyframe_requests.keyframe_arrived();
        }
        let incoming = IncomingPacket {
            ssrc: packet.ssrc,
            sequence: packet.sequence,
            timestamp: packet.timestamp,
            starts_keyframe: keyframe,
        };
        let mut outputs = Vec::new();
        for (to, subscriber) in &mut self.subscribers {
            let Some(slot) = subscriber.slots.index_of(&track.key) else {
                continue;
            };
            if track.kind == StreamKind::Video && subscriber.paused.contains(&track.key.owner) {
                self.withheld += 1;
                continue;
            }
            let Some(stream) = subscriber.streams.get_mut(slot) else {
                continue;
            };
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

    /// Keyframe requests held back that fall due at `now`.
    pub fn poll(&mut self, now: Instant) -> Vec<Output<P>> {
        self.tracks
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
            .collect()
    }

    /// When [`Self::poll`] is next due.
    pub fn next_due(&self) -> Option<Instant> {
        self.tracks
            .values()
            .filter_map(|track| track.keyframe_requests.next_due())
            .min()
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
            });
        }
        let mut keyframes_wanted = Vec::new();
        for (slot, stream) in subscriber.slots.slots().iter().zip(&mut subscriber.streams) {
            let source = slot.track.as_ref().and_then(|key| {
                let paused =
                    slot.kind == StreamKind::Video && subscriber.paused.contains(&key.owner);
                (!paused).then(|| self.sources.get(key).copied()).flatten()
            });
            if stream.rewrite.wanted() != source && stream.rewrite.select(source) {
                keyframes_wanted.extend(source);
            }
        }
        if !changes.is_empty() {
            outputs.push(Output::Renegotiate {
                subscriber: participant.clone(),
            });
        }
        for source in keyframes_wanted {
            self.ask_keyframe(source, now, outputs);
        }
    }
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

    /// 1 publishes a microphone and a camera; 2 receives them.
    fn two_people_one_publishing(now: Instant) -> Room {
        let mut room = room();
        room.join(1, now);
        room.join(2, now);
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
        room.join(PUBLISHER, now);
        for subscriber in 2..22 {
            room.join(subscriber, now);
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
        let mut room = room();
        room.join(PUBLISHER, now);
        publish_both(&mut room, PUBLISHER, MIC, CAMERA, now);
        let outputs = room.join(2, now);
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
            .map(|who| keyframe_requests(&room.join(who, now)))
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
    fn nothing_before_the_keyframe_reaches_a_newcomer() {
        let now = Instant::now();
        let mut room = room();
        room.join(PUBLISHER, now);
        publish_both(&mut room, PUBLISHER, MIC, CAMERA, now);
        room.join(2, now);
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
            room.join(who, now);
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

        room.join(4, now);
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
            room.join(who, now);
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

    #[test]
    fn a_reconnected_publisher_is_received_anew_and_the_others_notice_only_a_keyframe() {
        let now = Instant::now();
        let mut room = two_people_one_publishing(now);
        let before = sends(&video(&mut room, 1, CAMERA, 10, KEY, now))[0].1;
        let slots_of_2 = room.slots_of(&2);

        // 1's page starts over: its own m-lines start afresh (a new
        // connection), 2's do not change.
        let outputs = room.reconnect(1, now);
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
