//! The contracts of presence and the room bus, as suites each side runs:
//! in-process here (unit tests below), Redis in the server's tests
//! (`server/tests/contracts.rs`, which starts a Redis).

use super::bus::{RoomBus, RoomEvent, SharedEvent};
use super::{Announce, JoinOutcome, PeerChange, Presence, PresenceEntry};
use protocol::{MediaState, PeerInfo, PeerRole, ServerMessage};
use std::sync::Arc;
use std::time::Duration;

// ---- presence ----

fn entry(peer: &str, participant: &str, expires: i64) -> PresenceEntry {
    PresenceEntry {
        peer: PeerInfo {
            peer_id: peer.into(),
            participant_id: participant.into(),
            display_name: participant.into(),
            role: PeerRole::Member,
            media: MediaState::default(),
            joined_at_ms: 0,
            hand_raised_at_ms: None,
        },
        conn_id: format!("conn-{peer}").into(),
        expires_at_ms: expires,
    }
}

pub async fn presence_contract(presence: &dyn Presence) {
    // The limit counts other participants; the same participant again (a
    // reloaded page) replaces its old presence, even in a full room.
    assert!(matches!(
        presence.join("r", entry("p1", "alice", 10), 2).await.unwrap(),
        JoinOutcome::Joined { displaced } if displaced.is_empty()
    ));
    presence.join("r", entry("p2", "bob", 10), 2).await.unwrap();
    assert!(matches!(
        presence
            .join("r", entry("p3", "carol", 10), 2)
            .await
            .unwrap(),
        JoinOutcome::Full
    ));
    match presence
        .join("r", entry("p4", "alice", 10), 2)
        .await
        .unwrap()
    {
        JoinOutcome::Joined { displaced } => assert_eq!(displaced[0].peer_id, "p1"),
        JoinOutcome::Full => panic!("alice was refused"),
    }
    let mut ids: Vec<_> = presence
        .list("r")
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.peer_id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["p2", "p4"]);
    // Changes are stored and seen by all.
    let hand = MediaState {
        hand: true,
        ..MediaState::default()
    };
    let changed = presence
        .update("r", "p2", PeerChange::Media(hand))
        .await
        .unwrap()
        .expect("bob is there");
    assert!(changed.media.hand);
    assert_eq!(presence.get("r", "p2").await.unwrap(), Some(changed));
    // The first time the hand went up is kept while it stays up, and
    // forgotten when it goes down.
    let raised = |at| PeerChange::HandUpSince(at);
    let first = presence
        .update("r", "p2", raised(100))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.hand_raised_at_ms, Some(100));
    presence
        .update("r", "p2", PeerChange::Media(hand))
        .await
        .unwrap();
    let again = presence
        .update("r", "p2", raised(200))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.hand_raised_at_ms, Some(100));
    let lowered = presence
        .update("r", "p2", PeerChange::Media(MediaState::default()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lowered.hand_raised_at_ms, None);
    let hand_down = presence
        .update("r", "p2", raised(300))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        hand_down.hand_raised_at_ms, None,
        "no time without a raised hand"
    );
    presence
        .update("r", "p2", PeerChange::Media(hand))
        .await
        .unwrap();
    assert_eq!(
        presence
            .update("r", "gone", PeerChange::Role(PeerRole::CoHost))
            .await
            .unwrap(),
        None
    );
    // Removal answers Some only to the call that removed.
    assert!(presence.remove("r", "p2").await.unwrap().is_some());
    assert!(presence.remove("r", "p2").await.unwrap().is_none());
    // Clearing a room (the meeting ended) removes everyone in it.
    let cleared = presence.clear("r").await.unwrap();
    assert_eq!(cleared.len(), 1);
    assert!(presence.list("r").await.unwrap().is_empty());

    // Only the holding connection refreshes; resume moves the presence to
    // a new connection of the same participant, never to someone else.
    presence
        .join("s", entry("q1", "alice", 10), 6)
        .await
        .unwrap();
    assert!(presence
        .refresh("s", &"q1".into(), &"conn-q1".into(), 20)
        .await
        .unwrap());
    assert!(presence
        .resume("s", &"q1".into(), &"mallory".into(), &"conn-x".into(), 30)
        .await
        .unwrap()
        .is_none());
    assert!(presence
        .resume("s", &"q1".into(), &"alice".into(), &"conn-new".into(), 30)
        .await
        .unwrap()
        .is_some());
    assert!(!presence
        .refresh("s", &"q1".into(), &"conn-q1".into(), 40)
        .await
        .unwrap());
    assert_eq!(presence.expired(35).await.unwrap().len(), 1);
    // Refreshed in between: not removed as expired.
    presence
        .refresh("s", &"q1".into(), &"conn-new".into(), 50)
        .await
        .unwrap();
    assert!(presence
        .remove_expired("s", "q1", 35)
        .await
        .unwrap()
        .is_none());
    assert!(presence
        .remove_expired("s", "q1", 50)
        .await
        .unwrap()
        .is_some());
    assert!(presence.list("s").await.unwrap().is_empty());
    assert!(presence.expired(i64::MAX).await.unwrap().is_empty());
}

// ---- room bus ----

fn said(text: &str) -> RoomEvent {
    RoomEvent::Broadcast {
        skip: None,
        message: ServerMessage::MuteRequested {
            by_name: text.to_string(),
        },
    }
}

async fn next(receiver: &mut tokio::sync::broadcast::Receiver<Arc<SharedEvent>>) -> RoomEvent {
    let event = tokio::time::timeout(Duration::from_secs(5), receiver.recv())
        .await
        .expect("an event within 5 s")
        .expect("not lagged");
    event.event().clone()
}

/// `here` and `there` are two instances' buses (the same one in-process).
pub async fn bus_contract(here: &dyn RoomBus, there: &dyn RoomBus) {
    let mut in_b = here.subscribe("b").await.unwrap();
    let mut also_in_a = there.subscribe("a").await.unwrap();
    // Subscribed here, then published there at once: not missed.
    let mut in_a = here.subscribe("a").await.unwrap();
    // Published anywhere, right after subscribing: every subscriber of the
    // room gets it, in the order published; other rooms get nothing.
    for i in 0..20 {
        there.publish("a", said(&format!("a{i}"))).await.unwrap();
    }
    here.publish("b", said("b0")).await.unwrap();
    for receiver in [&mut in_a, &mut also_in_a] {
        for i in 0..20 {
            assert_eq!(next(receiver).await, said(&format!("a{i}")));
        }
    }
    assert_eq!(next(&mut in_b).await, said("b0"));
    assert!(in_a.try_recv().is_err(), "nothing else arrived in a");
    assert!(here.is_healthy() && there.is_healthy());
}

// ---- a change and its announcement ----

/// One instance's rooms: its bus and the presence made with it.
pub type Side<'a> = (&'a dyn RoomBus, &'a dyn Presence);

/// `here` and `there` are two instances (the same one in-process). A change
/// is stored and told in one step, to the audience asked for; a change
/// made over one another instance made meanwhile keeps both; a presence
/// that is gone is neither changed nor told.
pub async fn announce_contract(here: Side<'_>, there: Side<'_>) {
    let (here_bus, here_presence) = here;
    let (there_bus, there_presence) = there;
    let mut heard_here = here_bus.subscribe("u").await.unwrap();
    let mut heard_there = there_bus.subscribe("u").await.unwrap();
    here_presence
        .join("u", entry("p1", "alice", i64::MAX), 10)
        .await
        .unwrap();
    let hand = MediaState {
        hand: true,
        ..MediaState::default()
    };

    let changed = here_presence
        .update_and_announce(
            here_bus,
            "u",
            "p1",
            &[PeerChange::Media(hand), PeerChange::HandUpSince(100)],
            Announce::Others,
        )
        .await
        .unwrap()
        .expect("present");
    assert!(changed.media.hand);
    assert_eq!(changed.hand_raised_at_ms, Some(100));
    let told = RoomEvent::Broadcast {
        skip: Some("p1".into()),
        message: ServerMessage::PeerUpdated {
            peer: changed.clone(),
        },
    };
    assert_eq!(next(&mut heard_here).await, told);
    assert_eq!(next(&mut heard_there).await, told);
    assert_eq!(
        there_presence.get("u", "p1").await.unwrap(),
        Some(changed.clone())
    );

    // Another instance makes Alice a co-host; this one then lowers her
    // hand: both changes stay, and everyone hears the result.
    there_presence
        .update("u", "p1", PeerChange::Role(PeerRole::CoHost))
        .await
        .unwrap()
        .expect("present");
    let lowered = here_presence
        .update_and_announce(
            here_bus,
            "u",
            "p1",
            &[PeerChange::Media(MediaState::default())],
            Announce::Everyone,
        )
        .await
        .unwrap()
        .expect("present");
    assert_eq!(lowered.role, PeerRole::CoHost);
    assert!(!lowered.media.hand);
    assert_eq!(lowered.hand_raised_at_ms, None);
    let told = RoomEvent::Broadcast {
        skip: None,
        message: ServerMessage::PeerUpdated {
            peer: lowered.clone(),
        },
    };
    assert_eq!(next(&mut heard_there).await, told);
    assert_eq!(next(&mut heard_here).await, told);
    assert_eq!(here_presence.get("u", "p1").await.unwrap(), Some(lowered));

    // Gone (removed by the other instance, or never there): nothing
    // changes and nobody is told; the next event is the marker after.
    there_presence.remove("u", "p1").await.unwrap();
    for peer in ["p1", "nobody"] {
        let gone = here_presence
            .update_and_announce(
                here_bus,
                "u",
                peer,
                &[PeerChange::Media(hand)],
                Announce::Others,
            )
            .await
            .unwrap();
        assert_eq!(gone, None, "{peer}");
    }
    assert!(here_presence.get("u", "p1").await.unwrap().is_none());
    there_bus.publish("u", said("marker")).await.unwrap();
    assert_eq!(next(&mut heard_here).await, said("marker"));
    assert_eq!(next(&mut heard_there).await, said("marker"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rooms::local::{LocalBus, LocalPresence};

    #[tokio::test]
    async fn presence_in_process() {
        presence_contract(&LocalPresence::default()).await;
    }

    #[tokio::test]
    async fn announce_in_process() {
        let bus = LocalBus::default();
        let presence = LocalPresence::default();
        announce_contract((&bus, &presence), (&bus, &presence)).await;
    }

    #[tokio::test]
    async fn bus_in_process() {
        let bus = LocalBus::default();
        bus_contract(&bus, &bus).await;
    }
}
