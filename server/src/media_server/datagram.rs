//! What a datagram through the media server carries, read from its first
//! bytes, for the operator's counters: media (RTP), control (RTCP) and, of
//! control, the feedback that says how the media fares (NACK: packets
//! lost; PLI and FIR: a picture is broken, send a keyframe).
//!
//! The peer connections' interceptors act on it without counting it, so it
//! is read off the wire: RFC 7983 tells STUN, DTLS and
//! RTP/RTCP apart by the first byte, RFC 5761 tells RTCP from RTP by the
//! second, and SRTCP leaves the first RTCP header in the clear (RFC 3711
//! §3.4). Only that first header can be read, so feedback that is not first
//! in a compound packet goes uncounted; browsers and the engine send
//! feedback alone (reduced-size RTCP, RFC 5506), so that is rare.

/// The kinds of datagram, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datagram {
    /// ICE connectivity checks.
    Stun,
    /// The DTLS handshake (and its alerts).
    Dtls,
    /// Media.
    Rtp,
    /// Control: reports, and feedback when the first packet is feedback.
    Rtcp(Option<Feedback>),
    /// Anything else (a scanner's probe, say).
    Other,
}

/// RTCP feedback on how the media fares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feedback {
    /// Generic NACK (RFC 4585): these packets were lost, send them again.
    Nack,
    /// Picture loss indication (RFC 4585): a keyframe, please.
    Pli,
    /// Full intra request (RFC 5104): a keyframe, now.
    Fir,
}

impl Datagram {
    /// The label the counters use.
    pub fn label(self) -> &'static str {
        match self {
            Datagram::Stun => "stun",
            Datagram::Dtls => "dtls",
            Datagram::Rtp => "rtp",
            Datagram::Rtcp(_) => "rtcp",
            Datagram::Other => "other",
        }
    }
}

impl Feedback {
    pub fn label(self) -> &'static str {
        match self {
            Feedback::Nack => "nack",
            Feedback::Pli => "pli",
            Feedback::Fir => "fir",
        }
    }
}

/// The SSRC of an RTP packet (SRTP leaves the header in the clear).
pub(super) fn rtp_ssrc(packet: &[u8]) -> Option<u32> {
    let ssrc = packet.get(8..12)?;
    Some(u32::from_be_bytes([ssrc[0], ssrc[1], ssrc[2], ssrc[3]]))
}

/// RTCP packet types (RFC 3550, RFC 4585).
const TRANSPORT_FEEDBACK: u8 = 205;
const PAYLOAD_FEEDBACK: u8 = 206;

pub fn classify(bytes: &[u8]) -> Datagram {
    let Some(&first) = bytes.first() else {
        return Datagram::Other;
    };
    match first {
        0..=3 => Datagram::Stun,
        20..=63 => Datagram::Dtls,
        128..=191 => {
            let Some(&second) = bytes.get(1) else {
                return Datagram::Other;
            };
            // RTP payload types 64-95 with the marker bit would read as
            // 192-223; RFC 5761 keeps them for RTCP's packet types.
            if !(192..=223).contains(&second) {
                return Datagram::Rtp;
            }
            // The format: RTCP's five low bits of the first byte.
            let format = first & 0x1f;
            let feedback = match (second, format) {
                (TRANSPORT_FEEDBACK, 1) => Some(Feedback::Nack),
                (PAYLOAD_FEEDBACK, 1) => Some(Feedback::Pli),
                (PAYLOAD_FEEDBACK, 4) => Some(Feedback::Fir),
                _ => None,
            };
            Datagram::Rtcp(feedback)
        }
        _ => Datagram::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_is_told_by_its_first_bytes() {
        // A STUN binding request, a DTLS ClientHello record.
        assert_eq!(classify(&[0x00, 0x01, 0x00, 0x00]), Datagram::Stun);
        assert_eq!(classify(&[22, 0xfe, 0xfd]), Datagram::Dtls);
        // RTP: version 2, VP8 on payload type 96, with and without the
        // marker bit.
        assert_eq!(classify(&[0x80, 96, 0, 1]), Datagram::Rtp);
        assert_eq!(classify(&[0x80, 0x80 | 96, 0, 1]), Datagram::Rtp);
        // RTCP: a receiver report (201), a NACK (205/1), a PLI (206/1), a
        // FIR (206/4), a REMB (206/15, application layer feedback).
        assert_eq!(classify(&[0x81, 201, 0, 7]), Datagram::Rtcp(None));
        assert_eq!(
            classify(&[0x81, 205, 0, 3]),
            Datagram::Rtcp(Some(Feedback::Nack))
        );
        assert_eq!(
            classify(&[0x81, 206, 0, 2]),
            Datagram::Rtcp(Some(Feedback::Pli))
        );
        assert_eq!(
            classify(&[0x84, 206, 0, 4]),
            Datagram::Rtcp(Some(Feedback::Fir))
        );
        assert_eq!(classify(&[0x8f, 206, 0, 5]), Datagram::Rtcp(None));
        // Transport-wide congestion control feedback (205/15) is not a NACK.
        assert_eq!(classify(&[0x8f, 205, 0, 5]), Datagram::Rtcp(None));
    }

    #[test]
    fn nothing_or_noise_is_other() {
        assert_eq!(classify(&[]), Datagram::Other);
        assert_eq!(classify(&[0x80]), Datagram::Other);
        assert_eq!(classify(b"GET / HTTP/1.1"), Datagram::Other);
        assert_eq!(classify(&[200, 1, 2]), Datagram::Other);
    }
}
