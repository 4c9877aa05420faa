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
}
