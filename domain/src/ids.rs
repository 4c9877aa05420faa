//! Ids as their own types, so a room id cannot be passed where an instance
//! id is expected. Peer and participant ids are part of the wire protocol
//! and come from there; all share one definition (`protocol::string_id!`).

pub use protocol::{ParticipantId, PeerId};

protocol::string_id!(
    /// A meeting's call: the meeting's database id.
    RoomId
);

protocol::string_id!(
    /// One running moim process. Random per start: a restarted process is a
    /// new instance (what it held before is gone with it).
    InstanceId
);

protocol::string_id!(
    /// One WebSocket connection of a peer. A resumed page keeps its peer id
    /// but gets a new connection id, which is how an older connection of
    /// the same page learns it was replaced.
    ConnectionId
);

impl InstanceId {
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string())
    }
}

impl ConnectionId {
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_started_apart_have_different_ids() {
        assert_ne!(InstanceId::random(), InstanceId::random());
        assert_ne!(ConnectionId::random(), ConnectionId::random());
    }

    #[test]
    fn an_id_shows_and_serialises_as_its_text() {
        let room = RoomId::from("m-1");
        assert_eq!(room.to_string(), "m-1");
        assert_eq!(
            serde_json::to_string(&room).ok().as_deref(),
            Some("\"m-1\"")
        );
    }
}
