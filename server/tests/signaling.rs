//! The call's signaling endpoint: who may connect, what is relayed to
//! whom, and what bad input gets.

mod common;

use app::protocol::{
    close, ClientMessage, ErrorCode, LeaveReason, MediaState, PeerInfo, ServerMessage,
};
use common::people::{enter, instant_meeting, join_call, person, Person};
use common::ws::{expect_relayed, offer, open, open_with, Ws};
use common::{spawn_with, Backend, Spawn, TestApp};
use std::time::Duration;

async fn guest(app: &TestApp) -> Person {
    let (client, jar) = app.client_with_jar();
    Person {
        client,
        jar,
        name: "guest".into(),
    }
}

async fn meeting(app: &TestApp, host: &Person, invitees: &str, extra: &[(&str, &str)]) -> String {
    instant_meeting(app, host, invitees, extra).await
}

async fn joined(app: &TestApp, who: &Person, code: &str) -> (Ws, PeerInfo, ServerMessage) {
    join_call(app, who, code, None).await
}

fn spawn(backend: Backend) -> Spawn {
    let mut spawn = Spawn::new(backend);
    spawn.extra_args = vec!["--reconnect-grace-seconds".into(), "1".into()];
    spawn
}

on_both_databases!(
    only_admitted_people_from_our_pages_connect,
    relay_stays_in_the_room_and_bad_input_is_answered,
    leaving_dropping_and_resuming,
    host_actions_reach_the_right_people,
    a_busy_room_delivers_every_update_in_order,
);

async fn only_admitted_people_from_our_pages_connect(backend: Backend) {
    let app = spawn_with(spawn(backend)).await;
    let host = person(&app, "host").await;
    let code = meeting(&app, &host, "", &[]).await;
    enter(&app, &host, &code, "").await;

    // Nobody: 401. A guest still waiting at the door: 403.
    let stranger = guest(&app).await;
    assert_eq!(open(&app, &stranger.jar, &code).await.status(), 401);
    let waiting = guest(&app).await;
    assert_eq!(enter(&app, &waiting, &code, "Wanda").await, "Waiting");
    assert_eq!(open(&app, &waiting.jar, &code).await.status(), 403);
    // A wrong code looks like any other miss.
    assert_eq!(
        open(&app, &host.jar, "abcdefghijkmnpqrstuvwxyz23")
            .await
            .status(),
        404
    );
    // The host, but from another site's page: refused before anything else.
    assert_eq!(
        open_with(&app, &host.jar, &code, "https://evil.example")
            .await
            .status(),
        403
    );
    // The host from our own page: in.
    let (_ws, you, _) = joined(&app, &host, &code).await;
    assert_eq!(you.display_name, "host");
    assert!(you.role.is_moderator());

    // Once admitted, the guest connects too, and the host hears of them
    // (the waiting list change is pushed to hosts first).
    let response = app
        .call(
            &host.client,
            "decide_knock",
            &[
                ("code", &code),
                ("participant_id", "*"),
                ("decision", "admit"),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    let (_guest_ws, guest_peer, _) = joined(&app, &waiting, &code).await;
    assert_eq!(guest_peer.display_name, "Wanda");
}

async fn relay_stays_in_the_room_and_bad_input_is_answered(backend: Backend) {
    let app = spawn_with(spawn(backend)).await;
    let ann = person(&app, "ann").await;
    let bob = person(&app, "bob").await;
    let cat = person(&app, "cat").await;
    let room_one = meeting(&app, &ann, "bob", &[]).await;
    let room_two = meeting(&app, &cat, "", &[]).await;
    enter(&app, &ann, &room_one, "").await;
    enter(&app, &bob, &room_one, "").await;
    enter(&app, &cat, &room_two, "").await;

    let (mut a, ann_peer, _) = joined(&app, &ann, &room_one).await;
    let (mut b, bob_peer, welcome) = joined(&app, &bob, &room_one).await;
    let (mut c, cat_peer, _) = joined(&app, &cat, &room_two).await;
    let ServerMessage::Welcome { peers, .. } = welcome else {
        unreachable!()
    };
    assert_eq!(
        peers.iter().map(|p| &p.peer_id).collect::<Vec<_>>(),
        [&ann_peer.peer_id]
    );
    let joined_msg = a.recv().await;
    assert!(
        matches!(&joined_msg, ServerMessage::PeerJoined { peer } if peer.peer_id == bob_peer.peer_id),
        "{joined_msg:?}"
    );

    // An offer from Ann reaches Bob, marked as from Ann.
    expect_relayed(&mut a, &ann_peer.peer_id, &mut b, &bob_peer.peer_id).await;
    let offer = offer();
    // Ann cannot reach Cat, who is in another meeting.
    a.send(&ClientMessage::Signal {
        to: cat_peer.peer_id.clone(),
        signal: offer.clone(),
    })
    .await;
    assert!(matches!(
        a.recv().await,
        ServerMessage::Error {
            code: ErrorCode::UnknownPeer,
            ..
        }
    ));
    assert_eq!(c.try_recv(Duration::from_millis(500)).await, None);

    // Bad input gets an error and the connection stays usable.
    a.send_text("{this is not json").await;
    assert!(matches!(
        a.recv().await,
        ServerMessage::Error {
            code: ErrorCode::BadMessage,
            ..
        }
    ));
    a.send_text(r#"{"type":"teleport","to":"mars"}"#).await;
    assert!(matches!(
        a.recv().await,
        ServerMessage::Error {
            code: ErrorCode::UnknownType,
            ..
        }
    ));
    a.send_text(r#"{"type":"signal","to":42}"#).await;
    assert!(matches!(
        a.recv().await,
        ServerMessage::Error {
            code: ErrorCode::BadMessage,
            ..
        }
    ));
    a.send(&ClientMessage::Ping).await;
    assert_eq!(a.recv().await, ServerMessage::Pong);

    // Media state reaches the other side.
    let muted = MediaState {
        mic: false,
        cam: true,
        screen: false,
        hand: true,
    };
    a.send(&ClientMessage::Media { media: muted }).await;
    match b.recv().await {
        ServerMessage::PeerUpdated { peer } => {
            assert_eq!(peer.peer_id, ann_peer.peer_id);
            assert_eq!(peer.media, muted);
        }
        other => panic!("expected peer_updated, got {other:?}"),
    }

    // An oversized frame closes that connection with 1009 ...
    let mut flood = open(&app, &cat.jar, &room_two).await.open();
    flood.send_text(&"x".repeat(70 * 1024)).await;
    assert_eq!(flood.closed_with().await, 1009);
    // ... before join too, and a flood ends with 1008; others carry on.
    let (mut flooder, _, _) = joined(&app, &cat, &room_two).await;
    let _ = c.try_recv(Duration::from_millis(300)).await;
    for _ in 0..600 {
        if !flooder.try_send(&ClientMessage::Ping).await {
            break;
        }
    }
    let (messages, code) = flooder.drain_until_close().await;
    assert_eq!(code, 1008, "a flood is closed as a policy violation");
    let saw_rate_limit = messages.iter().any(|m| {
        matches!(
            m,
            ServerMessage::Error {
                code: ErrorCode::RateLimited,
                ..
            }
        )
    });
    assert!(saw_rate_limit, "a flood is told to slow down first");
    b.send(&ClientMessage::Ping).await;
    assert_eq!(b.recv().await, ServerMessage::Pong);

    // Nothing before join but join.
    let mut early = open(&app, &bob.jar, &room_one).await.open();
    early.send(&ClientMessage::Ping).await;
    assert!(matches!(
        early.recv().await,
        ServerMessage::Error {
            code: ErrorCode::NotJoined,
            ..
        }
    ));
}

async fn leaving_dropping_and_resuming(backend: Backend) {
    let app = spawn_with(spawn(backend)).await;
    let ann = person(&app, "ann").await;
    let bob = person(&app, "bob").await;
    let code = meeting(&app, &ann, "bob", &[]).await;
    enter(&app, &ann, &code, "").await;
    enter(&app, &bob, &code, "").await;
    let (mut a, _, _) = joined(&app, &ann, &code).await;

    // Bob's connection drops and comes back with his peer id in time: the
    // same presence, and Ann sees nothing at all.
    let (b, bob_peer, _) = joined(&app, &bob, &code).await;
    a.recv_until(|m| matches!(m, ServerMessage::PeerJoined { .. }))
        .await;
    b.drop_connection();
    let mut b = open(&app, &bob.jar, &code).await.open();
    match b.join(Some(bob_peer.peer_id.to_string())).await {
        ServerMessage::Welcome { you, resumed, .. } => {
            assert!(resumed);
            assert_eq!(you.peer_id, bob_peer.peer_id);
        }
        _ => unreachable!(),
    }
    assert_eq!(a.try_recv(Duration::from_millis(1500)).await, None);

    // A dropped connection that does not come back is gone after the grace
    // period (1 s here).
    b.drop_connection();
    match a.recv().await {
        ServerMessage::PeerLeft { peer_id, reason } => {
            assert_eq!(peer_id, bob_peer.peer_id);
            assert_eq!(reason, LeaveReason::Lost);
        }
        other => panic!("expected peer_left, got {other:?}"),
    }
    // Too late to resume: a fresh presence (the page rebuilds its
    // connections), under the same peer id since nobody holds it, and
    // announced to Ann as someone joining.
    let mut b = open(&app, &bob.jar, &code).await.open();
    let ServerMessage::Welcome { you, resumed, .. } =
        b.join(Some(bob_peer.peer_id.to_string())).await
    else {
        unreachable!()
    };
    assert!(!resumed);
    assert_eq!(you.peer_id, bob_peer.peer_id);
    a.recv_until(
        |m| matches!(m, ServerMessage::PeerJoined { peer } if peer.peer_id == you.peer_id),
    )
    .await;

    // The same person joining from a second window replaces the first:
    // no duplicate, and the old window is told why.
    let (_b2, second, _) = joined(&app, &bob, &code).await;
    assert_eq!(b.closed_with().await, close::REPLACED);
    match a.recv().await {
        ServerMessage::PeerLeft { peer_id, reason } => {
            assert_eq!(peer_id, you.peer_id);
            assert_eq!(reason, LeaveReason::Replaced);
        }
        other => panic!("expected peer_left, got {other:?}"),
    }
    a.recv_until(
        |m| matches!(m, ServerMessage::PeerJoined { peer } if peer.peer_id == second.peer_id),
    )
    .await;

    // Leaving on purpose is seen at once.
    let mut b2 = _b2;
    b2.send(&ClientMessage::Leave).await;
    match a.recv().await {
        ServerMessage::PeerLeft { reason, .. } => assert_eq!(reason, LeaveReason::Left),
        other => panic!("expected peer_left, got {other:?}"),
    }
}

async fn host_actions_reach_the_right_people(backend: Backend) {
    let app = spawn_with(spawn(backend)).await;
    let ann = person(&app, "ann").await;
    let bob = person(&app, "bob").await;
    let cat = person(&app, "cat").await;
    let code = meeting(&app, &ann, "bob, cat", &[]).await;
    for (who, name) in [(&ann, "ann"), (&bob, "bob"), (&cat, "cat")] {
        enter(&app, who, &code, name).await;
    }
    let (mut a, ann_peer, _) = joined(&app, &ann, &code).await;
    let (mut b, bob_peer, _) = joined(&app, &bob, &code).await;
    let (mut c, cat_peer, _) = joined(&app, &cat, &code).await;
    a.recv_until(
        |m| matches!(m, ServerMessage::PeerJoined { peer } if peer.peer_id == cat_peer.peer_id),
    )
    .await;
    b.recv_until(|m| matches!(m, ServerMessage::PeerJoined { .. }))
        .await;

    // Not a host: refused.
    b.send(&ClientMessage::Remove {
        peer: cat_peer.peer_id.clone(),
    })
    .await;
    assert!(matches!(
        b.recv().await,
        ServerMessage::Error {
            code: ErrorCode::Forbidden,
            ..
        }
    ));
    b.send(&ClientMessage::EndMeeting).await;
    assert!(matches!(
        b.recv().await,
        ServerMessage::Error {
            code: ErrorCode::Forbidden,
            ..
        }
    ));
    // Nobody removes the host.
    a.send(&ClientMessage::Remove {
        peer: ann_peer.peer_id.clone(),
    })
    .await;
    assert!(matches!(
        a.recv().await,
        ServerMessage::Error {
            code: ErrorCode::Forbidden,
            ..
        }
    ));

    // Ask to mute: only Bob hears it.
    a.send(&ClientMessage::AskToMute {
        peer: bob_peer.peer_id.clone(),
    })
    .await;
    assert_eq!(
        b.recv().await,
        ServerMessage::MuteRequested {
            by_name: "ann".into()
        }
    );
    assert_eq!(c.try_recv(Duration::from_millis(300)).await, None);

    // Remove Cat: told, closed, gone from the others, and kept out.
    a.send(&ClientMessage::Remove {
        peer: cat_peer.peer_id.clone(),
    })
    .await;
    assert_eq!(c.recv().await, ServerMessage::Removed);
    assert_eq!(c.closed_with().await, close::REMOVED);
    match b
        .recv_until(|m| matches!(m, ServerMessage::PeerLeft { .. }))
        .await
    {
        ServerMessage::PeerLeft { peer_id, reason } => {
            assert_eq!(peer_id, cat_peer.peer_id);
            assert_eq!(reason, LeaveReason::Removed);
        }
        _ => unreachable!(),
    }
    assert_eq!(open(&app, &cat.jar, &code).await.status(), 403);

    // End for everyone: both closed; only a host can open it again.
    a.send(&ClientMessage::EndMeeting).await;
    assert_eq!(
        b.recv_until(|m| matches!(m, ServerMessage::MeetingEnded))
            .await,
        ServerMessage::MeetingEnded
    );
    assert_eq!(b.closed_with().await, close::ENDED);
    assert_eq!(a.closed_with().await, close::ENDED);
    let response = app
        .call(
            &bob.client,
            "enter_meeting",
            &[("code", &code), ("display_name", "")],
        )
        .await;
    assert_eq!(response.status(), 410);
    assert_eq!(open(&app, &bob.jar, &code).await.status(), 410);
    enter(&app, &ann, &code, "").await;
    assert_eq!(enter(&app, &bob, &code, "").await, "Admitted");
}

on_both_databases!(
    the_room_has_a_size_limit,
    turn_credentials_come_with_the_welcome
);

async fn the_room_has_a_size_limit(backend: Backend) {
    let mut spawn = spawn(backend);
    spawn
        .extra_args
        .extend(["--mesh-max-participants".into(), "2".into()]);
    // Browser to browser only: the mesh's limit is the room's.
    spawn
        .extra_args
        .extend(["--media-mode".into(), "mesh".into()]);
    let app = spawn_with(spawn).await;
    let ann = person(&app, "ann").await;
    let bob = person(&app, "bob").await;
    let cat = person(&app, "cat").await;
    let code = meeting(&app, &ann, "bob, cat", &[]).await;
    for who in [&ann, &bob, &cat] {
        enter(&app, who, &code, "").await;
    }
    let (_a, _, welcome) = joined(&app, &ann, &code).await;
    assert!(matches!(
        welcome,
        ServerMessage::Welcome {
            max_participants: 2,
            ..
        }
    ));
    let (b, _, _) = joined(&app, &bob, &code).await;
    let mut c = open(&app, &cat.jar, &code).await.open();
    c.send(&ClientMessage::Join {
        version: app::protocol::PROTOCOL_VERSION,
        resume: None,
        media: MediaState::default(),
    })
    .await;
    assert!(matches!(
        c.recv().await,
        ServerMessage::Error {
            code: ErrorCode::RoomFull,
            ..
        }
    ));
    assert_eq!(c.closed_with().await, close::FULL);
    // When someone leaves, there is room again.
    b.close().await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_c, _, _) = joined(&app, &cat, &code).await;
}

async fn turn_credentials_come_with_the_welcome(backend: Backend) {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let mut spawn = spawn(backend);
    spawn.extra_args.extend([
        "--turn-urls".into(),
        "turn:127.0.0.1:3478".into(),
        "--turn-secret".into(),
        "shared-secret".into(),
        "--turn-credential-ttl-seconds".into(),
        "600".into(),
    ]);
    let app = spawn_with(spawn).await;
    let ann = person(&app, "ann").await;
    let code = meeting(&app, &ann, "", &[]).await;
    enter(&app, &ann, &code, "").await;
    let (_a, you, welcome) = joined(&app, &ann, &code).await;
    let ServerMessage::Welcome { ice, .. } = welcome else {
        unreachable!()
    };
    let turn = ice
        .ice_servers
        .iter()
        .find(|s| s.urls.iter().any(|u| u.starts_with("turn:")))
        .expect("a TURN server");
    let username = turn.username.clone().expect("username");
    let (expiry, who) = username.split_once(':').expect("expiry:participant");
    assert_eq!(who, you.participant_id);
    let expiry: i64 = expiry.parse().unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!(
        (now + 590..=now + 610).contains(&expiry),
        "expires in ~600 s"
    );
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(b"shared-secret").unwrap();
    mac.update(username.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(turn.credential.as_deref(), Some(expected.as_str()));
}

/// The state a test toggle number `i` sets: eight states in a cycle, so
/// each toggle differs from the one before and a lost, repeated or
/// swapped update shows in the sequence received.
fn toggle_state(i: usize) -> MediaState {
    MediaState {
        mic: i & 1 != 0,
        cam: i & 2 != 0,
        screen: false,
        hand: i & 4 != 0,
    }
}

/// Sends `count` toggles about 3 ms apart: with two senders, some 600
/// events a second for the room, a pace at which the others' connections
/// let events collect between writes.
async fn send_toggles(socket: &mut Ws, count: usize) {
    for i in 1..=count {
        socket
            .send(&ClientMessage::Media {
                media: toggle_state(i),
            })
            .await;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
}

/// Two people toggle fast while a third watches: the watcher's connection
/// lets events collect while the room is busy (`signaling::pace`) and must
/// still deliver every update, in each sender's order.
async fn a_busy_room_delivers_every_update_in_order(backend: Backend) {
    let app = spawn_with(spawn(backend)).await;
    let ann = person(&app, "ann").await;
    let bob = person(&app, "bob").await;
    let cat = person(&app, "cat").await;
    let code = meeting(&app, &ann, "bob, cat", &[]).await;
    for who in [&ann, &bob, &cat] {
        enter(&app, who, &code, "").await;
    }
    let (mut watcher, _, _) = joined(&app, &ann, &code).await;
    let (mut b, bob_peer, _) = joined(&app, &bob, &code).await;
    let (mut c, cat_peer, _) = joined(&app, &cat, &code).await;
    watcher
        .recv_until(
            |m| matches!(m, ServerMessage::PeerJoined { peer } if peer.peer_id == cat_peer.peer_id),
        )
        .await;

    // Within the frame rate limit's burst.
    const TOGGLES: usize = 100;
    tokio::join!(send_toggles(&mut b, TOGGLES), send_toggles(&mut c, TOGGLES));

    let mut seen = std::collections::HashMap::<String, Vec<MediaState>>::new();
    while seen.values().map(Vec::len).sum::<usize>() < 2 * TOGGLES {
        match watcher.try_recv(Duration::from_secs(5)).await {
            Some(ServerMessage::PeerUpdated { peer }) => seen
                .entry(peer.peer_id.to_string())
                .or_default()
                .push(peer.media),
            Some(_) => {}
            None => break,
        }
    }
    let expected: Vec<MediaState> = (1..=TOGGLES).map(toggle_state).collect();
    for peer in [&bob_peer, &cat_peer] {
        assert_eq!(
            seen.get(peer.peer_id.as_str()),
            Some(&expected),
            "every update from {}, in order",
            peer.peer_id
        );
    }
}
