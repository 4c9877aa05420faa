//! What [`RoutedMediaServer`] does across two instances, as one suite run
//! on both sides: in one process (a `LocalBus` and a `LocalPlacement`
//! shared) here, and through Redis in the server's tests. Each instance
//! has a stand-in media server that notes what it is asked and answers
//! every offer in its own name.

use super::{RouteSettings, RoutedMediaServer};
use crate::ids::{ConnectionId, InstanceId, PeerId};
use crate::media::{FromMediaServer, MediaServer, MediaServerOutbox};
use crate::placement::RoomPlacement;
use crate::rooms::bus::RoomBus;
use protocol::media_server::CameraWishes;
use protocol::Signal;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Two instances' links to the shared services: (bus, placement) each.
pub type Instances = [(Arc<dyn RoomBus>, Arc<dyn RoomPlacement>); 2];

/// A media server that notes what it is asked, in order.
struct StandIn {
    name: String,
    heard: Mutex<Vec<String>>,
    /// Where its words for each peer go.
    outboxes: Mutex<std::collections::HashMap<PeerId, MediaServerOutbox>>,
}

impl StandIn {
    fn new(name: &str) -> Arc<Self> {
        Arc::new(Self {
            name: name.to_string(),
            heard: Mutex::new(Vec::new()),
            outboxes: Mutex::new(Default::default()),
        })
    }

    /// Drops `peer`'s media connection, as the real one does with a
    /// connection gone silent.
    fn drop_connection(&self, peer: &PeerId) {
        let outbox = self.outboxes.lock().unwrap().remove(peer);
        let outbox = outbox.expect("the stand-in knows the connection it drops");
        let _ = outbox.try_send(FromMediaServer::Dropped("went silent".into()));
    }

    fn note(&self, what: String) {
        self.heard.lock().unwrap().push(what);
    }

    fn heard(&self) -> Vec<String> {
        self.heard.lock().unwrap().clone()
    }
}

impl MediaServer for StandIn {
    fn signal(
        &self,
        room: &str,
        peer: &PeerId,
        _conn: &ConnectionId,
        outbox: &MediaServerOutbox,
        _signal: Signal,
    ) {
        self.note(format!("signal {room} {peer}"));
        self.outboxes
            .lock()
            .unwrap()
            .insert(peer.clone(), outbox.clone());
        let _ = outbox.try_send(answer(&self.name));
    }

    fn watch(&self, room: &str, peer: &PeerId, _conn: &ConnectionId, wishes: &CameraWishes) {
        let watched: Vec<&str> = wishes.peers.iter().map(|p| p.as_str()).collect();
        let heights: Vec<String> = wishes
            .heights
            .iter()
            .map(|h| format!("{}:{}", h.peer, h.height))
            .collect();
        self.note(format!(
            "watch {room} {peer} {} {}",
            watched.join(","),
            heights.join(",")
        ));
    }

    fn camera(&self, room: &str, peer: &PeerId, _conn: &ConnectionId, on: bool) {
        self.note(format!("camera {room} {peer} {on}"));
    }

    fn disconnect(&self, room: &str, peer: &PeerId, _conn: &ConnectionId) {
        self.note(format!("disconnect {room} {peer}"));
    }
}

fn answer(from: &str) -> FromMediaServer {
    FromMediaServer::Signal(Signal::Description {
        sdp_type: "answer".into(),
        sdp: format!("answer from {from}"),
    })
}

fn offer() -> Signal {
    Signal::Description {
        sdp_type: "offer".into(),
        sdp: "v=0\r\n".into(),
    }
}

/// A call connection's outbox and what arrives in it.
fn page() -> (MediaServerOutbox, mpsc::Receiver<FromMediaServer>) {
    mpsc::channel(crate::media::OUTBOX_DEPTH)
}

async fn next(inbox: &mut mpsc::Receiver<FromMediaServer>, what: &str) -> FromMediaServer {
    match tokio::time::timeout(Duration::from_secs(5), inbox.recv()).await {
        Ok(Some(said)) => said,
        Ok(None) => panic!("{what}: the outbox closed"),
        Err(_) => panic!("{what}: nothing came within 5 s"),
    }
}

async fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits (up to 5 s) for nobody to hold `room`; fails with `what` and the
/// holder otherwise.
async fn let_go(placement: &Arc<dyn RoomPlacement>, room: &str, what: &str) {
    let room_id = crate::ids::RoomId::from(room);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let holder = placement
            .holder(&room_id, crate::clock::now_ms())
            .await
            .expect("placement answers");
        if holder.is_none() {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {holder:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn unique(label: &str) -> String {
    format!("{label}-{}", uuid::Uuid::new_v4().simple())
}

async fn start(
    name: &str,
    stand_in: &Arc<StandIn>,
    (bus, placement): (Arc<dyn RoomBus>, Arc<dyn RoomPlacement>),
    settings: RouteSettings,
) -> RoutedMediaServer {
    RoutedMediaServer::start(
        InstanceId::new(unique(name)),
        stand_in.clone(),
        bus,
        placement,
        settings,
    )
    .await
    .expect("the router starts")
}

/// A lease short enough for a test to see it run out.
const SHORT_LEASE: RouteSettings = RouteSettings {
    lease_ttl: Duration::from_millis(400),
    check_every: Duration::from_millis(50),
};

/// Routers "a" and "b" on the two instances, each around its stand-in.
async fn routers(
    [one, two]: Instances,
    settings: RouteSettings,
) -> (
    RoutedMediaServer,
    RoutedMediaServer,
    Arc<StandIn>,
    Arc<StandIn>,
) {
    let (media_a, media_b) = (StandIn::new("a"), StandIn::new("b"));
    let a = start("a", &media_a, one, settings).await;
    let b = start("b", &media_b, two, settings).await;
    (a, b, media_a, media_b)
}

/// The first offer places a room on its instance; the other instance's
/// connections reach that media server for everything they ask, and hear
/// back from it; a room first asked for on the second instance lives there.
pub async fn relay_contract(instances: Instances) {
    let [one, two] = instances;
    let placement = one.1.clone();
    let (a, b, media_a, media_b) = routers([one, two], RouteSettings::default()).await;
    let room = unique("room");
    let (ann, bob) = (PeerId::from("ann"), PeerId::from("bob"));
    let (ann_conn, bob_conn) = (ConnectionId::random(), ConnectionId::random());

    let (ann_outbox, mut ann_page) = page();
    a.signal(&room, &ann, &ann_conn, &ann_outbox, offer());
    assert_eq!(next(&mut ann_page, "ann's answer").await, answer("a"));

    // Bob is on the other instance: his offer goes to a's media server,
    // and its answer comes back to his page.
    let (bob_outbox, mut bob_page) = page();
    b.signal(&room, &bob, &bob_conn, &bob_outbox, offer());
    assert_eq!(next(&mut bob_page, "bob's answer").await, answer("a"));
    let wishes = CameraWishes {
        peers: vec![ann.clone()],
        heights: vec![protocol::media_server::TileHeight {
            peer: ann.clone(),
            height: 180,
        }],
    };
    b.watch(&room, &bob, &bob_conn, &wishes);
    b.camera(&room, &bob, &bob_conn, false);
    let before_leaving = [
        format!("signal {room} ann"),
        format!("signal {room} bob"),
        format!("watch {room} bob ann ann:180"),
        format!("camera {room} bob false"),
    ];
    eventually("bob's watch and camera reach a", || {
        media_a.heard() == before_leaving
    })
    .await;

    // A room first asked for on b lives on b.
    let other = unique("other-room");
    let (cy_outbox, mut cy_page) = page();
    b.signal(
        &other,
        &PeerId::from("cy"),
        &ConnectionId::random(),
        &cy_outbox,
        offer(),
    );
    assert_eq!(next(&mut cy_page, "cy's answer").await, answer("b"));
    assert_eq!(media_b.heard(), vec![format!("signal {other} cy")]);

    // Dee, on b too, leaves: a's media server hears it.
    let (dee, dee_conn) = (PeerId::from("dee"), ConnectionId::random());
    let (dee_outbox, mut dee_page) = page();
    b.signal(&room, &dee, &dee_conn, &dee_outbox, offer());
    assert_eq!(next(&mut dee_page, "dee's answer").await, answer("a"));
    b.disconnect(&room, &dee, &dee_conn);
    eventually("dee's leaving reaches a", || {
        media_a.heard().last() == Some(&format!("disconnect {room} dee"))
    })
    .await;

    // Bob's page resumes on a, as if b had died: his old call connection
    // never says goodbye, and his new offer replaces its media connection.
    let bob_again = ConnectionId::random();
    let (bob_outbox, mut bob_page) = page();
    a.signal(&room, &bob, &bob_again, &bob_outbox, offer());
    assert_eq!(next(&mut bob_page, "bob's answer on a").await, answer("a"));
    // Then everyone leaves: a lets go of the room (it would not while it
    // counted bob's old media connection).
    a.disconnect(&room, &bob, &bob_again);
    a.disconnect(&room, &ann, &ann_conn);
    let_go(&placement, &room, "a still holds the room everyone left").await;
    // b's media server never heard of the room.
    assert!(!media_b.heard().iter().any(|h| h.contains(&room)));
}

/// The holder of a room stops (as a crash would: nothing released): the
/// other instance's pages hear that the media server moved once its lease
/// ran out, and their next offer places the room on a live instance.
pub async fn takeover_contract(instances: Instances) {
    let [one, two] = instances;
    let (a, b, _, media_b) = routers([one, two], SHORT_LEASE).await;
    let room = unique("room");
    let (ann, bob) = (PeerId::from("ann"), PeerId::from("bob"));
    let bob_conn = ConnectionId::random();

    let (ann_outbox, mut ann_page) = page();
    a.signal(&room, &ann, &ConnectionId::random(), &ann_outbox, offer());
    assert_eq!(next(&mut ann_page, "ann's answer").await, answer("a"));
    let (bob_outbox, mut bob_page) = page();
    b.signal(&room, &bob, &bob_conn, &bob_outbox, offer());
    assert_eq!(next(&mut bob_page, "bob's answer").await, answer("a"));

    // While a renews, nothing moves (several lease lengths).
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert!(
        bob_page.try_recv().is_err(),
        "nothing while a holds the room"
    );

    drop(a);
    assert_eq!(
        next(&mut bob_page, "bob told the media server moved").await,
        FromMediaServer::Moved
    );
    // His page starts over: b holds the room now.
    b.signal(&room, &bob, &bob_conn, &bob_outbox, offer());
    assert_eq!(next(&mut bob_page, "bob's new answer").await, answer("b"));
    assert_eq!(media_b.heard(), vec![format!("signal {room} bob")]);
}

/// Another instance dies with a call connection in a room this instance
/// holds: that connection never says goodbye. Once the media server drops
/// its silent media connection, it stops counting: when the last person
/// here leaves, the room is let go.
pub async fn dropped_member_contract(instances: Instances) {
    let [one, two] = instances;
    let placement = one.1.clone();
    let (a, b, media_a, _) = routers([one, two], SHORT_LEASE).await;
    let room = unique("room");
    let (ann, bob) = (PeerId::from("ann"), PeerId::from("bob"));
    let ann_conn = ConnectionId::random();

    let (ann_outbox, mut ann_page) = page();
    a.signal(&room, &ann, &ann_conn, &ann_outbox, offer());
    assert_eq!(next(&mut ann_page, "ann's answer").await, answer("a"));
    let (bob_outbox, mut bob_page) = page();
    b.signal(&room, &bob, &ConnectionId::random(), &bob_outbox, offer());
    assert_eq!(next(&mut bob_page, "bob's answer").await, answer("a"));

    // b dies with bob's call connection; a's media server later drops his
    // silent media connection (and says so, to nobody).
    drop(b);
    media_a.drop_connection(&bob);
    // Ann leaves: nobody is left, a lets go of the room.
    a.disconnect(&room, &ann, &ann_conn);
    let_go(
        &placement,
        &room,
        "a still holds a room whose last connection was dropped",
    )
    .await;
    // Nobody told a's media server bob left: it said so itself.
    assert!(!media_a.heard().contains(&format!("disconnect {room} bob")));
}
