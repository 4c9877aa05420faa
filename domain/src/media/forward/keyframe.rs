//! Whether an RTP packet's payload starts a keyframe: where a browser can
//! begin decoding a stream it has not seen before. Only the payload's
//! first bytes are read (the codec's payload descriptor and the first NAL
//! unit or frame header); any payload too short or malformed is "no".

/// The video codecs a browser may negotiate with the media server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    Vp8,
    Vp9,
    H264,
    /// Anything else (AV1, H.265): no keyframe is ever recognised, so the
    /// media server must not negotiate it.
    Other,
}

impl VideoCodec {
    /// The codec of a MIME type as a session description names it
    /// (`video/VP8`, case-insensitively).
    pub fn from_mime(mime: &str) -> Self {
        let name = mime.rsplit('/').next().unwrap_or(mime);
        if name.eq_ignore_ascii_case("vp8") {
            Self::Vp8
        } else if name.eq_ignore_ascii_case("vp9") {
            Self::Vp9
        } else if name.eq_ignore_ascii_case("h264") {
            Self::H264
        } else {
            Self::Other
        }
    }
}

/// Whether `payload` (an RTP packet's payload, padding removed) is the
/// first packet of a keyframe.
pub fn starts_keyframe(codec: VideoCodec, payload: &[u8]) -> bool {
    match codec {
        VideoCodec::Vp8 => vp8_starts_keyframe(payload),
        VideoCodec::Vp9 => vp9_starts_keyframe(payload),
        VideoCodec::H264 => h264_starts_keyframe(payload),
        VideoCodec::Other => false,
    }
}

/// VP8 (RFC 7741 §4.2-4.3): the payload descriptor, then, at the start of
/// partition 0, the frame header whose lowest bit is 0 for a key frame.
fn vp8_starts_keyframe(payload: &[u8]) -> bool {
    super::vp8::frame_start(payload).is_some_and(super::vp8::is_key_frame)
}

/// VP9 (RFC 9628 §4.2): the descriptor's P bit is clear on a frame that
/// refers to no other (a key frame), and B marks its first packet. With
/// spatial layers, the keyframe starts at the lowest layer's first packet.
fn vp9_starts_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    let inter_predicted = first & 0x40 != 0;
    let begins_frame = first & 0x08 != 0;
    if inter_predicted || !begins_frame {
        return false;
    }
    let has_layer_indices = first & 0x20 != 0;
    if !has_layer_indices {
        return true;
    }
    // The spatial layer id is in the layer-index byte after the picture id.
    let mut at = 1;
    if first & 0x80 != 0 {
        let Some(&picture) = payload.get(at) else {
            return false;
        };
        at += if picture & 0x80 != 0 { 2 } else { 1 };
    }
    payload
        .get(at)
        .is_some_and(|layers| (layers >> 1) & 0x07 == 0)
}

/// NAL unit types (RFC 6184 §5.2, H.264 table 7-1).
const NAL_IDR_SLICE: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_STAP_A: u8 = 24;
const NAL_FU_A: u8 = 28;

/// H.264 (RFC 6184): an IDR slice, or the sequence parameter set that
/// precedes one, alone, aggregated (STAP-A), or as the first fragment of a
/// fragmented unit (FU-A).
fn h264_starts_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    match first & 0x1F {
        NAL_IDR_SLICE | NAL_SPS => true,
        NAL_STAP_A => {
            let mut at = 1;
            while let (Some(&high), Some(&low)) = (payload.get(at), payload.get(at + 1)) {
                let size = usize::from(u16::from_be_bytes([high, low]));
                let Some(&header) = payload.get(at + 2) else {
                    return false;
                };
                if size == 0 {
                    return false;
                }
                if matches!(header & 0x1F, NAL_IDR_SLICE | NAL_SPS) {
                    return true;
                }
                at += 2 + size;
            }
            false
        }
        NAL_FU_A => payload
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && fu & 0x1F == NAL_IDR_SLICE),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_are_read_from_their_mime_types() {
        assert_eq!(VideoCodec::from_mime("video/VP8"), VideoCodec::Vp8);
        assert_eq!(VideoCodec::from_mime("video/vp9"), VideoCodec::Vp9);
        assert_eq!(VideoCodec::from_mime("video/H264"), VideoCodec::H264);
        assert_eq!(VideoCodec::from_mime("video/AV1"), VideoCodec::Other);
    }

    #[test]
    fn vp8_key_and_delta_frames_with_and_without_extensions() {
        // S=1, PID=0, no extension; frame header bit 0 clear = key frame.
        assert!(starts_keyframe(VideoCodec::Vp8, &[0x10, 0x00, 0x9d, 0x01]));
        assert!(!starts_keyframe(VideoCodec::Vp8, &[0x10, 0x01, 0x9d, 0x01]));
        // X=1; I (15-bit picture id), L and T present: 1 + 1 + 2 + 1 + 1.
        let key = [0x90, 0xE0, 0x80 | 0x12, 0x34, 0x05, 0x40, 0x50, 0x9d];
        assert!(starts_keyframe(VideoCodec::Vp8, &key));
        let mut delta = key;
        delta[6] = 0x51;
        assert!(!starts_keyframe(VideoCodec::Vp8, &delta));
        // X=1 with only a 7-bit picture id.
        assert!(starts_keyframe(VideoCodec::Vp8, &[0x90, 0x80, 0x12, 0x00]));
        // Not the start of partition 0: a later packet of the frame.
        assert!(!starts_keyframe(VideoCodec::Vp8, &[0x00, 0x00]));
        assert!(!starts_keyframe(VideoCodec::Vp8, &[0x11, 0x00]));
    }

    #[test]
    fn vp9_key_frames_start_at_their_first_packet_of_the_lowest_layer() {
        // I=1 (7-bit id), P=0, L=0, B=1.
        assert!(starts_keyframe(VideoCodec::Vp9, &[0x88, 0x05, 0x00]));
        // P=1: refers to an earlier frame.
        assert!(!starts_keyframe(VideoCodec::Vp9, &[0xC8, 0x05, 0x00]));
        // B=0: not the frame's first packet.
        assert!(!starts_keyframe(VideoCodec::Vp9, &[0x80, 0x05, 0x00]));
        // L=1: spatial layer 0 starts it, layer 1 does not.
        assert!(starts_keyframe(VideoCodec::Vp9, &[0xA8, 0x05, 0x00, 0x00]));
        assert!(!starts_keyframe(VideoCodec::Vp9, &[0xA8, 0x05, 0x02, 0x00]));
    }

    #[test]
    fn h264_idr_slices_and_parameter_sets_in_every_packing() {
        // Single NAL units: IDR (type 5), SPS (7), a non-IDR slice (1).
        assert!(starts_keyframe(VideoCodec::H264, &[0x65, 0x88]));
        assert!(starts_keyframe(VideoCodec::H264, &[0x67, 0x42]));
        assert!(!starts_keyframe(VideoCodec::H264, &[0x41, 0x9a]));
        // STAP-A with SPS, PPS and IDR, and one with a PPS and slice only.
        let stap = [
            0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce, 0x00, 0x02, 0x65, 0x88,
        ];
        assert!(starts_keyframe(VideoCodec::H264, &stap));
        let plain = [0x78, 0x00, 0x02, 0x68, 0xce, 0x00, 0x02, 0x41, 0x9a];
        assert!(!starts_keyframe(VideoCodec::H264, &plain));
        // FU-A: the first fragment of an IDR slice, a middle one, and the
        // first of a non-IDR slice.
        assert!(starts_keyframe(VideoCodec::H264, &[0x7c, 0x85, 0x88]));
        assert!(!starts_keyframe(VideoCodec::H264, &[0x7c, 0x05, 0x88]));
        assert!(!starts_keyframe(VideoCodec::H264, &[0x7c, 0x81, 0x9a]));
    }

    #[test]
    fn short_or_malformed_payloads_are_never_keyframes_and_never_panic() {
        for codec in [
            VideoCodec::Vp8,
            VideoCodec::Vp9,
            VideoCodec::H264,
            VideoCodec::Other,
        ] {
            assert!(!starts_keyframe(codec, &[]));
            for len in 0..6 {
                let truncated = &[0x90u8, 0xff, 0xff, 0xff, 0xff, 0xff][..len];
                let _ = starts_keyframe(codec, truncated);
            }
        }
        // A STAP-A whose sizes point past the end, or are zero.
        assert!(!starts_keyframe(
            VideoCodec::H264,
            &[0x78, 0xff, 0xff, 0x41]
        ));
        assert!(!starts_keyframe(
            VideoCodec::H264,
            &[0x78, 0x00, 0x00, 0x65]
        ));
        assert!(!starts_keyframe(VideoCodec::H264, &[0x78, 0x00]));
        assert!(!starts_keyframe(VideoCodec::Other, &[0x65]));
    }
}
