//! One outgoing stream: the SSRC, sequence numbers and timestamps one
//! receiving browser sees on one m-line, whichever publisher's stream is
//! behind it now.
//!
//! The browser's numbers must run on as if one sender had sent them all:
//! - a sequence number that jumps is loss to it (it asks for the missing
//!   packets, and past a gap of 2^15 its SRTP rollover guess goes wrong and
//!   the stream never decrypts again);
//! - a timestamp that jumps backwards or far ahead stalls its jitter
//!   buffer and its audio/video sync.
//!
//! So when the source changes, the new source's packets are shifted to
//! follow the last packet sent: the next sequence number, and a timestamp
//! as far on as the time that passed (in the stream's clock rate). A video
//! stream changes source only at a keyframe of the new source (the browser
//! cannot decode anything before it); until then the old source, if it
//! still sends, goes on being forwarded (make before break).

use super::vp8::Vp8Numbers;
use std::time::Instant;

/// Whether a stream is audio (any packet can start it) or video (only a
/// keyframe can).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Audio,
    Video,
}

/// The header fields of a packet from a publisher that the rewriting needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncomingPacket {
    pub ssrc: u32,
    pub sequence: u16,
    pub timestamp: u32,
    /// Whether the packet is the first of a keyframe (see
    /// [`super::keyframe`]); audio packets may say anything.
    pub starts_keyframe: bool,
    /// Its VP8 picture id and TL0PICIDX, if it has them.
    pub vp8: Vp8Numbers,
}

/// The header fields the packet goes out with to this browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutgoingHeader {
    pub ssrc: u32,
    pub sequence: u16,
    pub timestamp: u32,
    /// The VP8 numbers to write into the payload's descriptor: the
    /// packet's own unless the stream changed source (or layer) before.
    pub vp8: Vp8Numbers,
    /// Whether `vp8` differs from the packet's own numbers (the payload
    /// must be rewritten for this browser).
    pub renumbered: bool,
}

/// 16-bit sequence numbers unrolled to 64 bits, so that order survives the
/// wrap from 65535 to 0: each number is placed nearest to the highest seen
/// (RFC 3550 A.1 in spirit).
#[derive(Debug, Clone, Default)]
pub struct SequenceUnroller {
    highest: Option<u64>,
}

impl SequenceUnroller {
    /// The unrolled number of `sequence`. The first number seen starts one
    /// cycle up, so a packet slightly older than it still has a place.
    pub fn unroll(&mut self, sequence: u16) -> u64 {
        let unrolled = match self.highest {
            None => (1 << 16) + u64::from(sequence),
            Some(highest) => {
                // The signed distance from the highest: -32768..=32767.
                let ahead = sequence.wrapping_sub(highest as u16) as i16;
                highest.saturating_add_signed(i64::from(ahead))
            }
        };
        if self.highest.is_none_or(|highest| unrolled > highest) {
            self.highest = Some(unrolled);
        }
        unrolled
    }
}

/// How the current source's numbers become the browser's.
#[derive(Debug, Clone)]
struct Mapping {
    source: u32,
    unroller: SequenceUnroller,
    /// The unrolled number of the source's first packet forwarded: anything
    /// older belongs to the time before the switch, whose numbers the
    /// browser already knows from the previous source.
    first: u64,
    sequence_shift: u16,
    timestamp_shift: u32,
    /// Added to VP8 picture ids (modulo their length) and TL0PICIDX.
    picture_shift: u16,
    tl0_shift: u8,
}

/// The newest packet sent on the stream.
#[derive(Debug, Clone, Copy)]
struct LastSent {
    sequence: u16,
    timestamp: u32,
    vp8: Vp8Numbers,
    at: Instant,
}

/// One m-line of one receiving browser.
#[derive(Debug, Clone)]
pub struct OutgoingStream {
    ssrc: u32,
    kind: StreamKind,
    clock_rate: u32,
    /// The numbers of the stream's first packet, before anything was sent.
    first_sequence: u16,
    first_timestamp: u32,
    /// The source the stream should carry (`None`: paused or free).
    wanted: Option<u32>,
    /// The source it carries now.
    current: Option<Mapping>,
    last: Option<LastSent>,
}

/// What to do with one packet for one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarding {
    /// Send it with these header fields.
    Send(OutgoingHeader),
    /// Not for this browser (another source, older than a switch, paused,
    /// or a video packet before the new source's keyframe).
    Drop,
}

impl OutgoingStream {
    /// A stream sent under `ssrc`; its numbers start at `first_sequence`
    /// and `first_timestamp` (random in use, as RFC 3550 asks).
    pub fn new(
        ssrc: u32,
        kind: StreamKind,
        clock_rate: u32,
        first_sequence: u16,
        first_timestamp: u32,
    ) -> Self {
        Self {
            ssrc,
            kind,
            clock_rate,
            first_sequence,
            first_timestamp,
            wanted: None,
            current: None,
            last: None,
        }
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The source whose packets the stream carries, or is to carry.
    pub fn wanted(&self) -> Option<u32> {
        self.wanted
    }

    /// Carry `source` from now on (`None`: send nothing, as for a paused
    /// camera or a freed m-line). Answers whether the browser now waits
    /// for a keyframe of `source`, which the caller should ask its
    /// publisher for.
    ///
    /// A new video source takes over at its first keyframe; the old one
    /// goes on until then. Stopping is at once. Asking again for the same
    /// source changes nothing; asking for the source the stream carried
    /// before a pause resumes it at its next keyframe, with no gap.
    pub fn select(&mut self, source: Option<u32>) -> bool {
        if source == self.wanted {
            return self.waiting_for_keyframe();
        }
        self.wanted = source;
        if source.is_none() {
            self.current = None;
        }
        self.waiting_for_keyframe()
    }

    /// The browser stopped receiving (its connection went down): a video
    /// stream goes on at the wanted source's next keyframe, since the
    /// pictures in between are lost and the next delta would be decoded
    /// against the wrong picture. Its numbers go on with no gap, as after
    /// a switch. Audio goes on as it is.
    pub fn restart_at_keyframe(&mut self) {
        if self.kind == StreamKind::Video {
            self.current = None;
        }
    }

    /// The source whose packets the stream sends now (`None`: nothing
    /// yet, or stopped).
    pub fn carried(&self) -> Option<u32> {
        self.current.as_ref().map(|mapping| mapping.source)
    }

    /// Whether the stream waits for a keyframe of the wanted source.
    pub fn waiting_for_keyframe(&self) -> bool {
        self.kind == StreamKind::Video
            && self.wanted.is_some()
            && self.current.as_ref().map(|mapping| mapping.source) != self.wanted
    }

    /// What to do with `packet`, which arrived at `now`.
    pub fn forward(&mut self, packet: &IncomingPacket, now: Instant) -> Forwarding {
        let Some(wanted) = self.wanted else {
            return Forwarding::Drop;
        };
        let carried = self.current.as_ref().map(|mapping| mapping.source);
        if packet.ssrc == wanted && carried != Some(wanted) {
            if self.kind == StreamKind::Video && !packet.starts_keyframe {
                // The old source (if any) goes on until this one can be
                // decoded from.
                return Forwarding::Drop;
            }
            self.current = Some(self.mapping_from(packet, now));
        } else if Some(packet.ssrc) != carried {
            return Forwarding::Drop;
        }
        let Some(mapping) = self.current.as_mut() else {
            return Forwarding::Drop;
        };
        let unrolled = mapping.unroller.unroll(packet.sequence);
        if unrolled < mapping.first {
            return Forwarding::Drop;
        }
        let header = OutgoingHeader {
            ssrc: self.ssrc,
            sequence: packet.sequence.wrapping_add(mapping.sequence_shift),
            timestamp: packet.timestamp.wrapping_add(mapping.timestamp_shift),
            vp8: Vp8Numbers {
                picture_id: packet.vp8.picture_id.map(|(id, long)| {
                    let mask = if long { 0x7fff } else { 0x7f };
                    (id.wrapping_add(mapping.picture_shift) & mask, long)
                }),
                tl0_index: packet
                    .vp8
                    .tl0_index
                    .map(|index| index.wrapping_add(mapping.tl0_shift)),
            },
            renumbered: (packet.vp8.picture_id.is_some() && mapping.picture_shift != 0)
                || (packet.vp8.tl0_index.is_some() && mapping.tl0_shift != 0),
        };
        let newest = self
            .last
            .is_none_or(|last| is_newer(header.sequence, last.sequence));
        if newest {
            self.last = Some(LastSent {
                sequence: header.sequence,
                timestamp: header.timestamp,
                vp8: header.vp8,
                at: now,
            });
        }
        Forwarding::Send(header)
    }

    /// The shifts that make `packet` follow the last packet sent.
    fn mapping_from(&self, packet: &IncomingPacket, now: Instant) -> Mapping {
        let (sequence, timestamp) = match self.last {
            None => (self.first_sequence, self.first_timestamp),
            Some(last) => {
                let elapsed = now.saturating_duration_since(last.at);
                let ticks = elapsed.as_millis() * u128::from(self.clock_rate) / 1000;
                // At least one tick: equal timestamps would make two
                // frames one.
                let ticks = u32::try_from(ticks).unwrap_or(u32::MAX).max(1);
                (
                    last.sequence.wrapping_add(1),
                    last.timestamp.wrapping_add(ticks),
                )
            }
        };
        // The new source's pictures follow the last one sent (its first is
        // a keyframe, which starts a new TL0 picture).
        let last_vp8 = self.last.map(|last| last.vp8).unwrap_or_default();
        let picture_shift = match (last_vp8.picture_id, packet.vp8.picture_id) {
            (Some((last, _)), Some((first, _))) => last.wrapping_add(1).wrapping_sub(first),
            _ => 0,
        };
        let tl0_shift = match (last_vp8.tl0_index, packet.vp8.tl0_index) {
            (Some(last), Some(first)) => last.wrapping_add(1).wrapping_sub(first),
            _ => 0,
        };
        let mut unroller = SequenceUnroller::default();
        let first = unroller.unroll(packet.sequence);
        Mapping {
            source: packet.ssrc,
            unroller,
            first,
            sequence_shift: sequence.wrapping_sub(packet.sequence),
            timestamp_shift: timestamp.wrapping_sub(packet.timestamp),
            picture_shift,
            tl0_shift,
        }
    }
}

/// Whether sequence number `a` comes after `b` (within half the space).
fn is_newer(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const A: u32 = 0xA0A0;
    const B: u32 = 0xB0B0;
    const OUT: u32 = 0x1234;

    fn packet(ssrc: u32, sequence: u16, timestamp: u32, keyframe: bool) -> IncomingPacket {
        IncomingPacket {
            ssrc,
            sequence,
            timestamp,
            starts_keyframe: keyframe,
            vp8: Vp8Numbers::default(),
        }
    }

    fn sent(forwarding: Forwarding) -> OutgoingHeader {
        match forwarding {
            Forwarding::Send(header) => header,
            Forwarding::Drop => panic!("the packet was dropped"),
        }
    }

    #[test]
    fn unrolling_keeps_order_across_the_wrap() {
        let mut unroller = SequenceUnroller::default();
        let numbers: Vec<u64> = [65533u16, 65535, 65534, 0, 2, 1, 65535, 3]
            .into_iter()
            .map(|sequence| unroller.unroll(sequence))
            .collect();
        let base = (1u64 << 16) + 65533;
        assert_eq!(
            numbers,
            vec![
                base,
                base + 2,
                base + 1,
                base + 3,
                base + 5,
                base + 4,
                base + 2,
                base + 6
            ]
        );
    }

    #[test]
    fn one_source_keeps_its_spacing_under_the_streams_own_ssrc_across_both_wraps() {
        let start = Instant::now();
        // The browser's numbers start near the top too, so they wrap at a
        // different packet than the publisher's.
        let mut stream = OutgoingStream::new(OUT, StreamKind::Video, 90_000, 65_530, 4_294_960_000);
        assert!(stream.select(Some(A)));
        let incoming = [65_532u16, 65_533, 65_534, 65_535, 0, 1, 2, 3, 4, 5, 6, 7];
        let out: Vec<OutgoingHeader> = incoming
            .iter()
            .enumerate()
            .map(|(i, &sequence)| {
                let timestamp = 1_000u32.wrapping_add(3_000 * (i as u32 / 2));
                sent(stream.forward(&packet(A, sequence, timestamp, i == 0), start))
            })
            .collect();
        for (i, header) in out.iter().enumerate() {
            assert_eq!(header.ssrc, OUT);
            assert_eq!(header.sequence, 65_530u16.wrapping_add(i as u16));
            assert_eq!(
                header.timestamp,
                4_294_960_000u32.wrapping_add(3_000 * (i as u32 / 2))
            );
        }
        assert!(!stream.waiting_for_keyframe());
    }

    #[test]
    fn a_new_publisher_follows_on_from_the_last_packet_after_its_keyframe() {
        let start = Instant::now();
        let mut stream = OutgoingStream::new(OUT, StreamKind::Video, 90_000, 100, 5_000);
        stream.select(Some(A));
        for i in 0..3u16 {
            sent(stream.forward(&packet(A, 40_000 + i, 77_000, i == 0), start));
        }
        // A leaves; B takes the m-line 500 ms later, numbering near its wrap.
        assert!(stream.select(Some(B)));
        let later = start + Duration::from_millis(500);
        assert_eq!(
            stream.forward(&packet(B, 65_534, 9, false), later),
            Forwarding::Drop,
            "nothing before B's keyframe"
        );
        let first = sent(stream.forward(&packet(B, 65_535, 10, true), later));
        assert_eq!(first.ssrc, OUT);
        assert_eq!(first.sequence, 103, "right after A's last (102)");
        assert_eq!(first.timestamp, 5_000 + 45_000, "500 ms on at 90 kHz");
        let next = sent(stream.forward(&packet(B, 0, 3_010, false), later));
        assert_eq!(
            (next.sequence, next.timestamp),
            (104, 5_000 + 45_000 + 3_000)
        );
        assert_eq!(
            stream.forward(&packet(A, 40_003, 80_000, false), later),
            Forwarding::Drop,
            "the old publisher's late packets are not mixed in"
        );
        assert_eq!(
            stream.forward(&packet(B, 65_533, 0, false), later),
            Forwarding::Drop,
            "B's packets from before the switch have no numbers here"
        );
        assert!(!stream.waiting_for_keyframe());
    }

    #[test]
    fn the_old_source_flows_until_the_new_one_can_be_decoded() {
        let start = Instant::now();
        let mut stream = OutgoingStream::new(OUT, StreamKind::Video, 90_000, 0, 0);
        stream.select(Some(A));
        sent(stream.forward(&packet(A, 10, 0, true), start));
        assert!(stream.select(Some(B)), "B's keyframe is needed");
        assert_eq!(
            sent(stream.forward(&packet(A, 11, 3_000, false), start)).sequence,
            1
        );
        assert_eq!(
            stream.forward(&packet(B, 500, 0, false), start),
            Forwarding::Drop
        );
        assert_eq!(
            sent(stream.forward(&packet(A, 12, 6_000, false), start)).sequence,
            2
        );
        assert_eq!(
            sent(stream.forward(&packet(B, 501, 0, true), start)).sequence,
            3
        );
        assert_eq!(
            stream.forward(&packet(A, 13, 9_000, false), start),
            Forwarding::Drop
        );
    }

    #[test]
    fn a_reordered_or_resent_packet_keeps_its_place_and_moves_nothing() {
        let start = Instant::now();
        let mut stream = OutgoingStream::new(OUT, StreamKind::Video, 90_000, 1_000, 0);
        stream.select(Some(A));
        sent(stream.forward(&packet(A, 65_535, 0, true), start));
        sent(stream.forward(&packet(A, 1, 0, false), start));
        let late = sent(stream.forward(&packet(A, 0, 0, false), start));
        assert_eq!(late.sequence, 1_001);
        // A switch now follows the newest (1_002), not the late one.
        stream.select(Some(B));
        let first = sent(stream.forward(&packet(B, 7, 0, true), start));
        assert_eq!(first.sequence, 1_003);
    }

    #[test]
    fn a_paused_camera_comes_back_with_no_gap_at_its_next_keyframe() {
        let start = Instant::now();
        let mut stream = OutgoingStream::new(OUT, StreamKind::Video, 90_000, 0, 0);
        stream.select(Some(A));
        sent(stream.forward(&packet(A, 1, 0, true), start));
        assert!(!stream.select(None));
        for sequence in 2..2_000u16 {
            assert_eq!(
                stream.forward(&packet(A, sequence, 0, sequence % 100 == 0), start),
                Forwarding::Drop
            );
        }
        assert!(stream.select(Some(A)), "resuming waits for a keyframe");
        let at = start + Duration::from_secs(10);
        assert_eq!(
            stream.forward(&packet(A, 2_001, 0, false), at),
            Forwarding::Drop
        );
        let back = sent(stream.forward(&packet(A, 2_100, 0, true), at));
        assert_eq!(back.sequence, 1, "one after the last sent before the pause");
        assert_eq!(back.timestamp, 900_000, "ten seconds on");
    }

    #[test]
    fn a_layer_switch_numbers_the_new_layers_pictures_on_from_the_old_ones() {
        let start = Instant::now();
        let mut stream = OutgoingStream::new(OUT, StreamKind::Video, 90_000, 0, 0);
        let with = |mut packet: IncomingPacket, picture: u16, tl0: u8| {
            packet.vp8 = Vp8Numbers {
                picture_id: Some((picture, true)),
                tl0_index: Some(tl0),
            };
            packet
        };
        stream.select(Some(A));
        let first = sent(stream.forward(&with(packet(A, 1, 0, true), 20_000, 7), start));
        assert_eq!(
            first.vp8.picture_id,
            Some((20_000, true)),
            "the first source keeps its own"
        );
        assert!(!first.renumbered);
        sent(stream.forward(&with(packet(A, 2, 3_000, false), 20_001, 7), start));
        // The low layer (B) numbers its pictures far behind, near the wrap.
        stream.select(Some(B));
        let at = start + Duration::from_millis(33);
        let switched = sent(stream.forward(&with(packet(B, 900, 50, true), 32_767, 250), at));
        assert_eq!(switched.vp8.picture_id, Some((20_002, true)));
        assert!(switched.renumbered);
        assert_eq!(switched.vp8.tl0_index, Some(8));
        let next = sent(stream.forward(&with(packet(B, 901, 3_050, false), 0, 250), at));
        assert_eq!(
            next.vp8.picture_id,
            Some((20_003, true)),
            "across the 15-bit wrap"
        );
        assert_eq!(next.sequence, switched.sequence + 1);
        assert!(next.timestamp > switched.timestamp);
    }

    #[test]
    fn audio_changes_source_at_once() {
        let start = Instant::now();
        let mut stream = OutgoingStream::new(OUT, StreamKind::Audio, 48_000, 0, 0);
        assert!(!stream.select(Some(A)));
        sent(stream.forward(&packet(A, 9, 960, false), start));
        assert!(!stream.select(Some(B)));
        let at = start + Duration::from_millis(20);
        let first = sent(stream.forward(&packet(B, 30_000, 5, false), at));
        assert_eq!((first.sequence, first.timestamp), (1, 960));
    }

    #[test]
    fn a_stream_with_no_source_sends_nothing() {
        let start = Instant::now();
        let mut stream = OutgoingStream::new(OUT, StreamKind::Audio, 48_000, 0, 0);
        assert_eq!(
            stream.forward(&packet(A, 1, 1, true), start),
            Forwarding::Drop
        );
        stream.select(Some(A));
        assert_eq!(stream.wanted(), Some(A));
        assert_eq!(
            stream.forward(&packet(B, 1, 1, true), start),
            Forwarding::Drop,
            "a source not selected"
        );
    }
}
