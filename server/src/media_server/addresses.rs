//! Which media connection a datagram belongs to, as its peer connection is
//! told it.
//!
//! An address is paired with the media connection whose ICE check (naming
//! that connection's username fragment) first came from it. An address
//! used again later by another connection (a TURN relay's port, a NAT's,
//! the ephemeral port an operating system hands out again) is paired anew;
//! each pairing is shown to its peer connection under an address of its
//! own: the real one the first time that address is seen, a stand-in when
//! it turns up again for another connection or after its connection left.
//! What a peer connection sends to a stand-in goes to the real address
//! behind it while that pairing lasts, and nowhere once it is gone, so a
//! connection that lost its address never sends to the newcomer behind it.
//!
//! The real address first, because the engine answers ICE checks with the
//! address it saw (XOR-MAPPED-ADDRESS): shown a stand-in, the browser takes
//! it for an address of its own it did not know (a peer-reflexive
//! candidate). That still connects, so it is only the reused address's
//! price. Stand-ins are IPv4 addresses in 240.0.0.0/4 (reserved, never
//! routed) for IPv4 peers, and in fd6d:6f69:6d00::/48 for IPv6 ones, with
//! the real port: ICE pairs candidates of one address family.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A room of the media server (while anyone is in it).
pub(super) type RoomId = uuid::Uuid;
/// A browser in a room: `protocol::media_server::media_client_id`.
pub(super) type ClientId = u64;
/// A media connection: the room and the client in it.
pub(super) type Owner = (RoomId, ClientId);

struct Entry {
    stand_in: SocketAddr,
    owner: Owner,
}

#[derive(Default)]
pub(super) struct AddressBook {
    by_real: HashMap<SocketAddr, Entry>,
    by_stand_in: HashMap<SocketAddr, SocketAddr>,
    /// The ICE username fragment the engine gave each connection: a
    /// check's USERNAME starts with it, so it names the connection.
    owners: HashMap<String, Owner>,
    next: u32,
}

impl AddressBook {
    /// `owner`'s ICE username fragment on the server's side (from the
    /// session description the engine sent it).
    pub(super) fn learn_ufrag(&mut self, ufrag: &str, owner: Owner) {
        self.owners.insert(ufrag.to_string(), owner);
    }

    /// The address to show the engine for a datagram from `real`.
    /// `checked_ufrag` is the server-side username fragment of an ICE
    /// connectivity check (the datagram is a STUN message naming one).
    /// `None`: drop the datagram. Only a known connection's check opens an
    /// address, so strangers' datagrams cost no memory.
    pub(super) fn stand_in_for(
        &mut self,
        real: SocketAddr,
        checked_ufrag: Option<&str>,
    ) -> Option<SocketAddr> {
        let claimed = checked_ufrag.and_then(|ufrag| self.owners.get(ufrag).copied());
        if let Some(entry) = self.by_real.get(&real) {
            if claimed.is_none_or(|owner| owner == entry.owner) {
                return Some(entry.stand_in);
            }
        }
        // A first check from this address, or one for another connection
        // than before: a new pairing, a new stand-in.
        let owner = claimed?;
        let stand_in = self.allocate(real);
        if let Some(old) = self.by_real.insert(real, Entry { stand_in, owner }) {
            self.by_stand_in.remove(&old.stand_in);
        }
        self.by_stand_in.insert(stand_in, real);
        Some(stand_in)
    }

    /// The media connection datagrams from `real` belong to.
    pub(super) fn owner_of(&self, real: SocketAddr) -> Option<Owner> {
        self.by_real.get(&real).map(|entry| entry.owner)
    }

    /// Where a datagram the engine addressed to `stand_in` goes.
    pub(super) fn real_for(&self, stand_in: SocketAddr) -> Option<SocketAddr> {
        self.by_stand_in.get(&stand_in).copied()
    }

    /// `owner` left: its addresses and username fragments are forgotten,
    /// so an address of its turning up again gets a fresh stand-in.
    pub(super) fn forget(&mut self, owner: Owner) {
        let by_stand_in = &mut self.by_stand_in;
        self.by_real.retain(|_, entry| {
            let keep = entry.owner != owner;
            if !keep {
                by_stand_in.remove(&entry.stand_in);
            }
            keep
        });
        self.owners.retain(|_, o| *o != owner);
    }

    pub(super) fn clear(&mut self) {
        *self = Self::default();
    }

    /// How many addresses are paired now.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.by_real.len()
    }

    /// The address a new pairing of `real` is shown under: `real` itself
    /// unless a live pairing is shown under it (the connection that had
    /// the address before, whose sends must not reach the newcomer).
    /// Nothing is remembered past a pairing, so the book stays as large as
    /// the connections.
    fn allocate(&mut self, real: SocketAddr) -> SocketAddr {
        if !self.by_stand_in.contains_key(&real) {
            return real;
        }
        loop {
            self.next = self.next.wrapping_add(1);
            let ip = match real.ip() {
                IpAddr::V4(_) => {
                    IpAddr::V4(Ipv4Addr::from(0xF000_0000 | (self.next & 0x0FFF_FFFF)))
                }
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::new(
                    0xfd6d,
                    0x6f69,
                    0x6d00,
                    0,
                    0,
                    0,
                    (self.next >> 16) as u16,
                    self.next as u16,
                )),
            };
            let stand_in = SocketAddr::new(ip, real.port());
            // After 2^28 pairings the counter comes round: skip one in use.
            if !self.by_stand_in.contains_key(&stand_in) {
                return stand_in;
            }
        }
    }
}

/// The server-side username fragment an ICE connectivity check names (its
/// USERNAME is "server ufrag:browser ufrag"), if `datagram` is one.
pub(super) fn checked_ufrag(datagram: &[u8]) -> Option<String> {
    use rtc::stun::attributes::ATTR_USERNAME;
    use rtc::stun::message::{is_stun_message, Message};
    use rtc::stun::textattrs::Username;
    if !is_stun_message(datagram) {
        return None;
    }
    let mut message = Message::new();
    message.unmarshal_binary(datagram).ok()?;
    let username = Username::get_from_as(&message, ATTR_USERNAME).ok()?;
    let (server_ufrag, _) = username.text.split_once(':')?;
    Some(server_ufrag.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room() -> RoomId {
        uuid::Uuid::from_u128(7)
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_gets_a_stand_in_only_through_a_known_connections_check() {
        let mut book = AddressBook::default();
        let browser = addr("198.51.100.4:50000");
        // A stranger's datagram, or a check naming nobody we know: dropped.
        assert_eq!(book.stand_in_for(browser, None), None);
        assert_eq!(book.stand_in_for(browser, Some("nobody")), None);
        book.learn_ufrag("ann", (room(), 1));
        let stand_in = book.stand_in_for(browser, Some("ann")).unwrap();
        // The first time, the engine sees the real address (its answers
        // to ICE checks carry it back to the browser).
        assert_eq!(stand_in, browser);
        // Media after the check (DTLS, SRTP) goes the same way, and back.
        assert_eq!(book.stand_in_for(browser, None), Some(stand_in));
        assert_eq!(book.real_for(stand_in), Some(browser));
        assert_eq!(book.len(), 1);
    }

    #[test]
    fn an_address_used_again_by_someone_else_is_a_new_pairing() {
        let mut book = AddressBook::default();
        let relay_port = addr("203.0.113.9:49152");
        book.learn_ufrag("ann", (room(), 1));
        book.learn_ufrag("bob", (room(), 2));
        let ann = book.stand_in_for(relay_port, Some("ann")).unwrap();
        // The same address now checks for Bob (the relay gave Ann's port
        // to Bob): Bob gets a stand-in of his own, Ann's goes nowhere.
        let bob = book.stand_in_for(relay_port, Some("bob")).unwrap();
        assert_eq!(ann, relay_port);
        assert_ne!(ann, bob);
        assert!(bob.is_ipv4());
        assert_eq!(bob.port(), relay_port.port());
        assert_eq!(book.real_for(bob), Some(relay_port));
        assert_eq!(book.real_for(ann), None);
    }

    #[test]
    fn a_connection_that_left_leaves_nothing_behind() {
        let mut book = AddressBook::default();
        let port = addr("[2001:db8::5]:40000");
        book.learn_ufrag("ann", (room(), 1));
        let first = book.stand_in_for(port, Some("ann")).unwrap();
        book.forget((room(), 1));
        assert_eq!(book.len(), 0);
        assert_eq!(book.real_for(first), None);
        // Ann's late checks are no longer hers to make.
        assert_eq!(book.stand_in_for(port, Some("ann")), None);
        // A newcomer on the same port starts afresh: its own peer
        // connection sees the real address, as Ann's did.
        book.learn_ufrag("cid", (room(), 3));
        let again = book.stand_in_for(port, Some("cid")).unwrap();
        assert_eq!(again, port);
        assert_eq!(book.real_for(again), Some(port));
        assert_eq!(book.len(), 1, "nothing of Ann's is kept");
    }

    #[test]
    fn the_ufrag_of_a_connectivity_check_is_read() {
        use rtc::stun::attributes::ATTR_USERNAME;
        use rtc::stun::message::{Message, BINDING_REQUEST};
        use rtc::stun::textattrs::TextAttribute;
        let mut check = Message::new();
        check
            .build(&[
                Box::new(BINDING_REQUEST),
                Box::new(TextAttribute::new(ATTR_USERNAME, "srvufrag:browser".into())),
            ])
            .unwrap();
        assert_eq!(checked_ufrag(&check.raw).as_deref(), Some("srvufrag"));
        assert_eq!(checked_ufrag(&[0x80, 0x60, 0, 1]), None);
    }
}
