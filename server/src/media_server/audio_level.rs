//! The audio level each browser stamps on its microphone's packets
//! (RFC 6464), which tells the media server who is speaking.
//!
//! The media server's answers accept the extension under the id the
//! browser offered it with ([`extension_id`]); the level is read off each
//! datagram before its peer connection decrypts it ([`read`]): SRTP
//! encrypts the payload but leaves the RTP header and its extensions in
//! the clear (RFC 3711 §3.1).

// The header extension's name in SDP.
use rtc::sdp::extmap::AUDIO_LEVEL_URI as URI;

/// The `a=extmap` of one line: its id and URI.
fn extmap(line: &str) -> Option<(u8, &str)> {
    let rest = line.trim_end().strip_prefix("a=extmap:")?;
    let (id, rest) = rest.split_once(' ')?;
    // `<id>/<direction>`
    let id = id.split('/').next()?.parse().ok()?;
    let uri = rest.split_whitespace().next()?;
    Some((id, uri))
}

/// The id a browser's description gives the audio level extension in its
/// audio sections.
pub(super) fn extension_id(sdp: &str) -> Option<u8> {
    let mut in_audio = false;
    for line in sdp.lines() {
        if let Some(media) = line.strip_prefix("m=") {
            in_audio = media.starts_with("audio ");
            continue;
        }
        if !in_audio {
            continue;
        }
        if let Some((id, URI)) = extmap(line) {
            if id > 0 {
                return Some(id);
            }
        }
    }
    None
}

/// The audio level (0 loudest, 127 silence) an RTP datagram carries in
/// its header extension `id`, if any. Read in place: this runs on every
/// media packet, and the crate's header parser copies each extension.
pub(super) fn read(datagram: &[u8], id: u8) -> Option<u8> {
    let first = *datagram.first()?;
    // RTP version 2 with the extension bit.
    if first >> 6 != 2 || first & 0x10 == 0 {
        return None;
    }
    let start = 12 + 4 * usize::from(first & 0x0f);
    let header = datagram.get(start..start + 4)?;
    let profile = u16::from_be_bytes([header[0], header[1]]);
    let words = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let body = datagram.get(start + 4..start + 4 + 4 * words)?;
    let mut at = 0;
    if profile == 0xBEDE {
        // One-byte headers (RFC 8285 §4.2): id and length-1 in one byte.
        while let Some(&byte) = body.get(at) {
            if byte == 0 {
                at += 1;
                continue;
            }
            let (element, len) = (byte >> 4, usize::from(byte & 0x0f) + 1);
            if element == 15 {
                return None;
            }
            if element == id {
                return body.get(at + 1).map(|level| level & 0x7f);
            }
            at += 1 + len;
        }
    } else if profile & 0xfff0 == 0x1000 {
        // Two-byte headers (RFC 8285 §4.3): an id byte, a length byte.
        while let Some(&element) = body.get(at) {
            if element == 0 {
                at += 1;
                continue;
            }
            let len = usize::from(*body.get(at + 1)?);
            if element == id {
                return (len > 0)
                    .then(|| body.get(at + 2).map(|level| level & 0x7f))
                    .flatten();
            }
            at += 2 + len;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME_OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\na=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=sendonly\r\na=rtpmap:111 opus/48000/2\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=extmap:14 urn:ietf:params:rtp-hdrext:toffset\r\na=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=sendonly\r\na=rtpmap:96 VP8/90000\r\n";

    const ENGINE_ANSWER: &str = "v=0\r\no=- 5 6 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=recvonly\r\na=rtpmap:111 opus/48000/2\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=recvonly\r\na=rtpmap:96 VP8/90000\r\n\
m=audio 0 UDP/TLS/RTP/SAVPF 0\r\na=mid:2\r\na=inactive\r\n";

    #[test]
    fn the_browsers_id_is_read_from_its_audio_sections() {
        assert_eq!(extension_id(CHROME_OFFER), Some(1));
        assert_eq!(extension_id(ENGINE_ANSWER), None);
        // The same URI in a video section does not count.
        let video_only = "m=video 9 X 96\r\na=extmap:2/sendonly urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\nm=audio 9 X 111\r\na=extmap:7/sendrecv urn:ietf:params:rtp-hdrext:ssrc-audio-level vad=on\r\n";
        assert_eq!(extension_id(video_only), Some(7));
    }

    fn rtp(profile: u16, extensions: &[u8]) -> Vec<u8> {
        let mut packet = vec![0x90 | 1, 111, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4];
        let mut body = extensions.to_vec();
        while !body.len().is_multiple_of(4) {
            body.push(0);
        }
        packet.extend_from_slice(&profile.to_be_bytes());
        packet.extend_from_slice(&((body.len() / 4) as u16).to_be_bytes());
        packet.extend_from_slice(&body);
        packet.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        packet
    }

    #[test]
    fn the_level_is_read_from_one_byte_and_two_byte_extensions() {
        // sdes:mid "0" (id 4, one byte), padding, then the level with the
        // voice bit set: 0x80 | 33.
        let one_byte = rtp(0xBEDE, &[0x40, b'0', 0, 0x10, 0x80 | 33]);
        assert_eq!(read(&one_byte, 1), Some(33));
        assert_eq!(read(&one_byte, 2), None);
        let two_byte = rtp(0x1000, &[4, 1, b'0', 0, 1, 1, 90]);
        assert_eq!(read(&two_byte, 1), Some(90));
    }

    #[test]
    fn broken_or_plain_packets_give_no_level() {
        let one_byte = rtp(0xBEDE, &[0x10, 20]);
        // Without the extension bit.
        let mut plain = one_byte.clone();
        plain[0] &= !0x10;
        assert_eq!(read(&plain, 1), None);
        // Cut anywhere: never a panic, never a level read past the end.
        for cut in 0..one_byte.len() - 4 {
            assert_eq!(read(&one_byte[..cut], 1), None, "cut at {cut}");
        }
        // A length that claims more than the datagram holds.
        let mut long = one_byte.clone();
        long[18] = 0xff;
        assert_eq!(read(&long, 1), None);
        // Another profile (not RFC 8285).
        assert_eq!(read(&rtp(0x1234, &[0x10, 20]), 1), None);
        assert_eq!(read(&[], 1), None);
    }
}
