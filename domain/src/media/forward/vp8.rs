//! The VP8 payload descriptor fields a receiver orders frames by (RFC 7741
//! §4.2), and the frame size a keyframe carries (RFC 6386 §9.1).
//!
//! A browser's VP8 depacketizer uses the picture id (and TL0PICIDX with
//! temporal layers) to tell which frames are new and which refer to which:
//! a picture id that jumps back is an old frame to it, dropped. Each
//! simulcast layer of a camera numbers its pictures on its own, so when a
//! receiver changes layer the new layer's numbers are shifted to follow
//! the old one's, like its sequence numbers and timestamps (see
//! [`super::rewrite`]).

/// The numbering fields of one packet's descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Vp8Numbers {
    /// The picture id and whether it is the 15-bit form (else 7-bit).
    pub picture_id: Option<(u16, bool)>,
    pub tl0_index: Option<u8>,
}

/// Where the picture id and TL0PICIDX sit in the descriptor.
struct Layout {
    picture_at: Option<(usize, bool)>,
    tl0_at: Option<usize>,
    /// Where the VP8 payload (the frame) starts.
    frame_at: usize,
}

fn layout(payload: &[u8]) -> Option<Layout> {
    let first = *payload.first()?;
    let mut layout = Layout {
        picture_at: None,
        tl0_at: None,
        frame_at: 1,
    };
    if first & 0x80 == 0 {
        return Some(layout);
    }
    let flags = *payload.get(1)?;
    let mut at = 2;
    if flags & 0x80 != 0 {
        let long = payload.get(at)? & 0x80 != 0;
        if long && payload.len() < at + 2 {
            return None;
        }
        layout.picture_at = Some((at, long));
        at += if long { 2 } else { 1 };
    }
    if flags & 0x40 != 0 {
        payload.get(at)?;
        layout.tl0_at = Some(at);
        at += 1;
    }
    if flags & 0x30 != 0 {
        payload.get(at)?;
        at += 1;
    }
    layout.frame_at = at;
    Some(layout)
}

/// The numbering fields of `payload`'s descriptor (none if malformed).
pub fn read_numbers(payload: &[u8]) -> Vp8Numbers {
    let Some(layout) = layout(payload) else {
        return Vp8Numbers::default();
    };
    let picture_id = layout.picture_at.map(|(at, long)| {
        if long {
            (
                u16::from_be_bytes([payload[at] & 0x7f, payload[at + 1]]),
                true,
            )
        } else {
            (u16::from(payload[at] & 0x7f), false)
        }
    });
    Vp8Numbers {
        picture_id,
        tl0_index: layout.tl0_at.map(|at| payload[at]),
    }
}

/// Writes `numbers` into `payload`'s descriptor, where it has those
/// fields (a field it lacks is left out; the picture id keeps the
/// payload's own length).
pub fn write_numbers(payload: &mut [u8], numbers: Vp8Numbers) {
    let Some(layout) = layout(payload) else {
        return;
    };
    if let (Some((at, long)), Some((value, _))) = (layout.picture_at, numbers.picture_id) {
        if long {
            let [high, low] = (value & 0x7fff).to_be_bytes();
            payload[at] = 0x80 | high;
            payload[at + 1] = low;
        } else {
            payload[at] = (value & 0x7f) as u8;
        }
    }
    if let (Some(at), Some(tl0)) = (layout.tl0_at, numbers.tl0_index) {
        payload[at] = tl0;
    }
}

/// The frame bytes after the descriptor, if `payload` starts partition 0
/// of a frame (where the frame header is); `None` for any other packet,
/// or one too short for its descriptor.
pub(super) fn frame_start(payload: &[u8]) -> Option<&[u8]> {
    let first = *payload.first()?;
    // S set and partition index 0.
    if first & 0x10 == 0 || first & 0x07 != 0 {
        return None;
    }
    payload.get(layout(payload)?.frame_at..)
}

/// Whether `frame` (from [`frame_start`]) begins a key frame: the frame
/// tag's lowest bit is 0 (RFC 6386 §9.1).
pub(super) fn is_key_frame(frame: &[u8]) -> bool {
    frame.first().is_some_and(|tag| tag & 0x01 == 0)
}

/// The height of the picture a keyframe's first packet starts (the frame
/// header's 14-bit height, RFC 6386 §9.1), or `None` for any other packet.
pub fn keyframe_height(payload: &[u8]) -> Option<u16> {
    let frame = frame_start(payload)?;
    // A key frame, then the start code.
    if !is_key_frame(frame) || frame.len() < 10 || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    Some(u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A keyframe's first packet: extended descriptor with a 15-bit picture
    /// id and a TL0PICIDX, then a 640x360 key frame header.
    fn keyframe(picture_id: u16, tl0: u8) -> Vec<u8> {
        let [high, low] = picture_id.to_be_bytes();
        let mut payload = vec![0x90, 0xe0, 0x80 | high, low, tl0, 0x20];
        payload.extend([0x50, 0x2a, 0x01, 0x9d, 0x01, 0x2a]);
        payload.extend(640u16.to_le_bytes());
        payload.extend(360u16.to_le_bytes());
        payload.extend([0u8; 8]);
        payload
    }

    #[test]
    fn the_numbers_of_a_descriptor_are_read_and_rewritten_in_place() {
        let mut payload = keyframe(0x1234, 9);
        assert_eq!(
            read_numbers(&payload),
            Vp8Numbers {
                picture_id: Some((0x1234, true)),
                tl0_index: Some(9)
            }
        );
        write_numbers(
            &mut payload,
            Vp8Numbers {
                picture_id: Some((0x7ffe, true)),
                tl0_index: Some(200),
            },
        );
        assert_eq!(
            read_numbers(&payload),
            Vp8Numbers {
                picture_id: Some((0x7ffe, true)),
                tl0_index: Some(200)
            }
        );
        assert_eq!(keyframe_height(&payload), Some(360), "the frame untouched");

        let mut short = vec![0x80, 0x80, 0x05, 0xaa];
        assert_eq!(read_numbers(&short).picture_id, Some((5, false)));
        write_numbers(
            &mut short,
            Vp8Numbers {
                picture_id: Some((130, false)),
                tl0_index: Some(1),
            },
        );
        assert_eq!(short, vec![0x80, 0x80, 2, 0xaa], "7 bits, no TL0 field");
    }

    #[test]
    fn only_a_keyframes_first_packet_tells_its_height() {
        assert_eq!(keyframe_height(&keyframe(1, 0)), Some(360));
        let mut delta = keyframe(1, 0);
        delta[6] |= 0x01;
        assert_eq!(keyframe_height(&delta), None);
        let mut later_packet = keyframe(1, 0);
        later_packet[0] &= !0x10;
        assert_eq!(keyframe_height(&later_packet), None);
        assert_eq!(keyframe_height(&[0x90]), None);
        assert_eq!(read_numbers(&[0x80]), Vp8Numbers::default(), "malformed");
    }
}
