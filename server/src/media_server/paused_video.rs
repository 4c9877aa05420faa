//! The cameras one browser does not receive now (last-N, see
//! `domain::media::last_n`), and which of their packets still go to it.
//!
//! The engine forwards every packet to every subscriber; what a browser is
//! not to receive is dropped after the engine, on the way to the socket.
//! The engine has encrypted it by then (SRTP), but an RTP header stays in
//! the clear, so its SSRC and sequence number can be read, and the engine
//! keeps the publisher's SSRC and sequence numbers (sfu 0.5 forwards them
//! untouched). A browser then sees a gap in the sequence numbers, which it
//! takes for loss: past 1000 packets it asks for a keyframe at once (a
//! shorter gap is asked for again, NACK, from the engine's buffer), so
//! a camera that comes back shows within a round trip or two.
//!
//! One gap must never be too long. SRTP counts the times a sequence number
//! wrapped around (the rollover counter, RFC 3711 §3.3.1) and a browser
//! guesses it from how far a packet's number is from the last it saw:
//! after a jump of more than 2^15 it guesses wrong, fails to decrypt, and
//! never shows that camera again. So while a camera stays paused, one
//! packet in every [`KEEP_IN_STEP_EVERY`] still goes through: a lone piece
//! of a frame the browser cannot show (it asks for a keyframe, which the
//! publisher's other viewers get too), every few minutes at camera rates.

use std::collections::HashMap;

/// The longest run of sequence numbers a browser may miss: well below
/// 2^15, so a late or reordered packet cannot push it over.
pub(super) const KEEP_IN_STEP_EVERY: u16 = 30_000;

/// One browser's paused streams.
#[derive(Debug, Default)]
pub(super) struct PausedVideo {
    /// Each paused SSRC (cameras and their retransmission streams), with
    /// the sequence number the browser's count stands at: the first
    /// packet held back, then the last one let through.
    ssrcs: HashMap<u32, Option<u16>>,
}

impl PausedVideo {
    /// These SSRCs are paused now; any other comes through again. One
    /// that stays paused keeps its count.
    pub(super) fn set(&mut self, ssrcs: &[u32]) {
        self.ssrcs.retain(|ssrc, _| ssrcs.contains(ssrc));
        for ssrc in ssrcs {
            self.ssrcs.entry(*ssrc).or_insert(None);
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.ssrcs.is_empty()
    }

    /// Whether an RTP packet of `ssrc` numbered `sequence` goes to the
    /// browser.
    pub(super) fn passes(&mut self, ssrc: u32, sequence: u16) -> bool {
        let Some(count) = self.ssrcs.get_mut(&ssrc) else {
            return true;
        };
        match count {
            None => {
                *count = Some(sequence);
                false
            }
            Some(at) => {
                let ahead = sequence.wrapping_sub(*at);
                // Ahead by more than half the space: an old packet (a
                // retransmission, reordering), never a step.
                if (KEEP_IN_STEP_EVERY..0x8000).contains(&ahead) {
                    *at = sequence;
                    true
                } else {
                    false
                }
            }
        }
    }
}

/// The SSRC and sequence number of an RTP packet (SRTP leaves the header
/// in the clear).
pub(super) fn rtp_ssrc_and_sequence(packet: &[u8]) -> Option<(u32, u16)> {
    let sequence = u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?]);
    let ssrc = packet.get(8..12)?;
    Some((
        u32::from_be_bytes([ssrc[0], ssrc[1], ssrc[2], ssrc[3]]),
        sequence,
    ))
}

/// The SSRCs a session description announces for video (`a=ssrc` under an
/// `m=video` line: the camera and its retransmission stream).
pub(super) fn video_ssrcs(sdp: &str) -> Vec<u32> {
    let mut in_video = false;
    let mut ssrcs = Vec::new();
    for line in sdp.lines() {
        if let Some(media) = line.strip_prefix("m=") {
            in_video = media.starts_with("video ");
        } else if in_video {
            let ssrc = line
                .strip_prefix("a=ssrc:")
                .and_then(|rest| rest.split_whitespace().next()?.parse().ok());
            if let Some(ssrc) = ssrc {
                if !ssrcs.contains(&ssrc) {
                    ssrcs.push(ssrc);
                }
            }
        }
    }
    ssrcs
}

/// The retransmission streams a session description pairs with their
/// media streams (`a=ssrc-group:FID <media> <retransmission>`, RFC 4588):
/// the engine resends what a browser asks for again under an SSRC of its
/// own, named only there.
pub(super) fn retransmission_ssrcs(sdp: &str) -> Vec<(u32, u32)> {
    sdp.lines()
        .filter_map(|line| line.trim_end().strip_prefix("a=ssrc-group:FID "))
        .filter_map(|pair| {
            let mut ssrcs = pair.split_whitespace().map(str::parse::<u32>);
            match (ssrcs.next(), ssrcs.next()) {
                (Some(Ok(media)), Some(Ok(retransmission))) => Some((media, retransmission)),
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paused_ssrcs_are_held_back() {
        let mut paused = PausedVideo::default();
        assert!(paused.is_empty());
        paused.set(&[7]);
        assert!(!paused.passes(7, 100));
        assert!(!paused.passes(7, 101));
        assert!(paused.passes(8, 100));
        paused.set(&[]);
        assert!(paused.is_empty());
        assert!(paused.passes(7, 102));
    }

    #[test]
    fn one_packet_in_thirty_thousand_keeps_the_browser_in_step() {
        let mut paused = PausedVideo::default();
        paused.set(&[7]);
        // From 60,000 on, across the wrap at 65,535.
        let first = 60_000u16;
        let mut through = Vec::new();
        for n in 0..70_000u32 {
            let sequence = first.wrapping_add(n as u16);
            if paused.passes(7, sequence) {
                through.push(n);
            }
        }
        assert_eq!(
            through,
            vec![
                u32::from(KEEP_IN_STEP_EVERY),
                2 * u32::from(KEEP_IN_STEP_EVERY)
            ]
        );
        // A late packet from before the last step stays back.
        let last = first.wrapping_add(2 * KEEP_IN_STEP_EVERY);
        assert!(!paused.passes(7, last.wrapping_sub(5)));
    }

    #[test]
    fn a_stream_that_stays_paused_keeps_its_count() {
        let mut paused = PausedVideo::default();
        paused.set(&[7]);
        assert!(!paused.passes(7, 1));
        paused.set(&[7, 9]);
        assert!(!paused.passes(7, KEEP_IN_STEP_EVERY));
        assert!(paused.passes(7, KEEP_IN_STEP_EVERY + 1));
    }

    #[test]
    fn the_rtp_header_is_read_in_the_clear() {
        let mut packet = vec![0x80, 96, 0x12, 0x34, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef];
        packet.extend_from_slice(&[0; 20]);
        assert_eq!(rtp_ssrc_and_sequence(&packet), Some((0xdead_beef, 0x1234)));
        assert_eq!(rtp_ssrc_and_sequence(&packet[..11]), None);
    }

    #[test]
    fn retransmission_streams_are_paired_with_their_media() {
        let sdp = "m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=ssrc-group:FID 2 3\r\na=ssrc-group:FID 4\r\na=ssrc-group:SIM 5 6\r\na=ssrc-group:FID 7 8\r\n";
        assert_eq!(retransmission_ssrcs(sdp), vec![(2, 3), (7, 8)]);
    }

    #[test]
    fn video_ssrcs_are_those_under_a_video_line() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ssrc:1 cname:x\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=ssrc-group:FID 2 3\r\na=ssrc:2 cname:x\r\na=ssrc:2 msid:s t\r\na=ssrc:3 cname:x\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=ssrc:4 cname:x\r\n";
        assert_eq!(video_ssrcs(sdp), vec![2, 3]);
        assert!(video_ssrcs("v=0\r\n").is_empty());
    }
}
