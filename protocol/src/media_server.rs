//! What both sides need to agree on about the built-in media server (SFU):
//! the media path of a room and how a forwarded track names its sender.

use crate::PeerId;
use serde::{Deserialize, Serialize};

/// How a room's audio and video travel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaPath {
    /// Browser to browser (a mesh of peer connections).
    #[default]
    Direct,
    /// Every browser has one connection to the server, which forwards.
    Server,
}

/// The most peers a page may name in `media_server_watch` (a pinned tile
/// and shared screens): each costs its downlink a camera.
pub const MAX_WATCHED: usize = 4;

/// The most tile heights a page may give in one `media_server_watch`
/// (more than a room holds).
pub const MAX_TILE_HEIGHTS: usize = 256;

/// How tall a page shows one person's camera, in device pixels: the
/// media server sends the lowest simulcast layer at least that tall. 0:
/// not at all (the tile is off screen, the page hidden).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TileHeight {
    pub peer: PeerId,
    pub height: u16,
}

/// What a page asks of the media server about the cameras it receives.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraWishes {
    /// Whose camera it wants whatever the last-N order (at most
    /// [`MAX_WATCHED`]).
    pub peers: Vec<PeerId>,
    /// How tall it shows each (a peer left out: the tallest layer).
    pub heights: Vec<TileHeight>,
}

/// The number the media server knows a peer by. Derived from the peer id
/// on both sides (64-bit FNV-1a), so the browser can tell whose a forwarded
/// track is without another message.
pub fn media_client_id(peer: &PeerId) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    peer.as_str().bytes().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

/// The media client id a forwarded stream belongs to: the server names
/// every forwarded stream `peer-<client id>-<the sender's stream id>`.
pub fn publisher_of_stream(stream_id: &str) -> Option<u64> {
    let rest = stream_id.strip_prefix("peer-")?;
    let digits = rest.split('-').next()?;
    digits.parse().ok()
}

/// The media server reuses the m-line of someone who left for the next
/// person to publish, so a meeting's offers stay as large as the largest
/// the room has been. A room that shrank a lot (50 people, then 5) still
/// carries the inactive m-lines of its peak in every offer; with this
/// many, and more than a quarter of all of them, the page starts its
/// media-server connection over, with m-lines for the people still there
/// only (the others see its video pause for a keyframe). 40: about 20
/// departures with camera and microphone more than the room has now.
pub const STALE_M_LINES_MAX: usize = 40;

/// Whether a media-server offer carries so many m-lines of people who left
/// that the connection is better started over (see `STALE_M_LINES_MAX`).
pub fn too_many_stale_m_lines(sdp: &str) -> bool {
    let m_lines = sdp.lines().filter(|l| l.starts_with("m=")).count();
    let stale = sdp.lines().filter(|l| l.trim_end() == "a=inactive").count();
    stale > STALE_M_LINES_MAX && stale * 4 > m_lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_stable_and_tell_peers_apart() {
        let a = PeerId::from("3f2a9c0d8e7b4a61b2c3d4e5f6a7b8c9");
        let b = PeerId::from("3f2a9c0d8e7b4a61b2c3d4e5f6a7b8ca");
        assert_eq!(media_client_id(&a), media_client_id(&a.clone()));
        assert_ne!(media_client_id(&a), media_client_id(&b));
        // The FNV-1a value of the empty string is its offset basis.
        assert_eq!(media_client_id(&PeerId::from("")), 0xcbf2_9ce4_8422_2325);
    }

    #[test]
    fn forwarded_streams_name_their_publisher() {
        let id = media_client_id(&PeerId::from("p1"));
        let stream = format!("peer-{id}-6b1c2d3e-aaaa-bbbb-cccc-0123456789ab");
        assert_eq!(publisher_of_stream(&stream), Some(id));
        assert_eq!(publisher_of_stream("peer-x-1"), None);
        assert_eq!(publisher_of_stream("{0e6b1c2d}"), None);
    }

    #[test]
    fn the_media_path_is_snake_case_on_the_wire() {
        assert_eq!(
            serde_json::to_string(&MediaPath::Server).unwrap(),
            r#""server""#
        );
        assert_eq!(
            serde_json::to_string(&MediaPath::Direct).unwrap(),
            r#""direct""#
        );
    }

    #[test]
    fn a_media_server_offer_full_of_people_who_left_means_starting_over() {
        let offer = |live: usize, stale: usize| {
            let mut sdp = String::from("v=0\r\n");
            for _ in 0..live {
                sdp.push_str("m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendonly\r\n");
            }
            for _ in 0..stale {
                sdp.push_str("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=inactive\r\n");
            }
            sdp
        };
        assert!(!too_many_stale_m_lines(&offer(10, 0)));
        assert!(!too_many_stale_m_lines(&offer(10, STALE_M_LINES_MAX)));
        assert!(too_many_stale_m_lines(&offer(10, STALE_M_LINES_MAX + 1)));
        // A big meeting with a few departures is not started over.
        assert!(!too_many_stale_m_lines(&offer(190, STALE_M_LINES_MAX + 1)));
    }
}
