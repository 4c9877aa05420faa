//! Rights re-checked on the live call connection, not only at its upgrade:
//! sign-out, password change, demotion, removal, cancellation; and the
//! connection's own limits (stuck readers, socket caps, floods before
//! `join`, hosts in a full room). Each test is named after the attack or
//! the hole it closes.

mod common;

use app::protocol::{close, ClientMessage, ErrorCode, LeaveReason, PeerRole, ServerMessage};
use common::people::{enter, instant_meeting, join_call, person, Person};
use common::ws::{open, Ws};
use common::{spawn_with, Backend, Spawn, TestApp};
use futures_util::{SinkExt, StreamExt};
use reqwest::cookie::CookieStore;
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// Rights re-checked every second, so tests that rely on the periodic
/// check (rather than an event) are quick.
fn quick(backend: Backend) -> Spawn {
    let mut spawn = Spawn::new(backend);
    spawn.extra_args.extend([
        "--rights-recheck-seconds".into(),
        "1".into(),
        "--reconnect-grace-seconds".into(),
        "1".into(),
    ]);
    spawn
}

/// The session cookie as an attacker would copy it.
fn steal_cookie(app: &TestApp, who: &Person) -> String {
    let page: url::Url = app.base.parse().expect("base url");
    who.jar
        .cookies(&page)
        .expect("a session cookie")
        .to_str()
        .expect("ascii cookie")
        .to_string()
}

/// A client carrying a copied cookie header.
fn client_with_cookie(app: &TestApp, cookie: &str) -> Person {
    let page: url::Url = app.base.parse().expect("base url");
    let jar = Arc::new(reqwest::cookie::Jar::default());
    for pair in cookie.split("; ") {
        jar.add_cookie_str(pair, &page);
    }
    Person {
        client: app.client_on(jar.clone()),
        jar,
        name: "thief".into(),
    }
}

async fn viewer_json(app: &TestApp, who: &Person) -> serde_json::Value {
    let response = app.call(&who.client, "current_viewer", &[]).await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("viewer json")
}

async fn set_cohosts(app: &TestApp, host: &Person, code: &str, cohosts: &str) {
    let response = app
        .call(
            &host.client,
            "set_cohosts",
            &[("code", code), ("cohosts", cohosts)],
        )
        .await;
    assert_eq!(response.status(), 200);
}

/// A `join` as raw text, for sockets driven frame by frame.
fn join_frame() -> String {
    serde_json::to_string(&ClientMessage::Join {
        version: app::protocol::PROTOCOL_VERSION,
        resume: None,
        media: Default::default(),
    })
    .expect("encode")
}

async fn in_call(app: &TestApp, who: &Person, code: &str) -> (Ws, String) {
    enter(app, who, code, "").await;
    let (ws, you, _) = join_call(app, who, code, None).await;
    (ws, you.peer_id.into_string())
}

on_both_databases!(
    signing_out_ends_the_open_call_and_a_stolen_cookie_dies_with_it,
    a_password_change_elsewhere_ends_the_open_call,
    a_demoted_cohost_loses_host_powers_on_the_open_socket,
    a_socket_opened_before_removal_cannot_join_after_it,
    a_cancelled_meetings_live_call_closes,
);

async fn signing_out_ends_the_open_call_and_a_stolen_cookie_dies_with_it(backend: Backend) {
    let app = spawn_with(quick(backend)).await;
    let ann = person(&app, "ann").await;
    let bob = person(&app, "bob").await;
    let code = instant_meeting(&app, &ann, "bob", &[]).await;
    let (mut ann_ws, _) = in_call(&app, &ann, &code).await;
    let (mut bob_ws, bob_peer) = in_call(&app, &bob, &code).await;
    let stolen = steal_cookie(&app, &bob);

    let response = app.call(&bob.client, "sign_out", &[]).await;
    assert_eq!(response.status(), 200);

    assert_eq!(bob_ws.closed_with().await, close::SIGNED_OUT);
    let left = ann_ws
        .recv_until(|m| matches!(m, ServerMessage::PeerLeft { .. }))
        .await;
    assert_eq!(
        left,
        ServerMessage::PeerLeft {
            peer_id: bob_peer.into(),
            reason: LeaveReason::Left
        }
    );
    // Past several heartbeats and re-checks of every connection still
    // open: nothing brings the deleted session back.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let thief = client_with_cookie(&app, &stolen);
    assert!(
        viewer_json(&app, &thief).await.is_null(),
        "the copied cookie must be signed out"
    );
    assert_eq!(open(&app, &thief.jar, &code).await.status(), 401);
    let sessions: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sessions WHERE data LIKE $1")
        .bind("%bob%")
        .fetch_one(&app.state.db)
        .await
        .expect("count sessions");
    assert_eq!(sessions.0, 0, "no session of bob's is stored any more");
}

async fn a_password_change_elsewhere_ends_the_open_call(backend: Backend) {
    let app = spawn_with(quick(backend)).await;
    let ann = person(&app, "ann").await;
    let bob = person(&app, "bob").await;
    let code = instant_meeting(&app, &ann, "bob", &[]).await;
    let (_ann_ws, _) = in_call(&app, &ann, &code).await;
    let (mut bob_ws, _) = in_call(&app, &bob, &code).await;

    // Bob, fearing his cookie was copied, changes his password on another
    // device: every other session ends, the open call too.
    let (other, _) = app.client_with_jar();
    let response = app
        .call(
            &other,
            "sign_in",
            &[("username", "bob"), ("password", "correct horse battery")],
        )
        .await;
    assert_eq!(response.status(), 200);
    let response = app
        .call(
            &other,
            "change_password",
            &[
                ("current_password", "correct horse battery"),
                ("new_password", "a brand new passphrase"),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(bob_ws.closed_with().await, close::SIGNED_OUT);
}

async fn a_demoted_cohost_loses_host_powers_on_the_open_socket(backend: Backend) {
    let app = spawn_with(quick(backend)).await;
    let ann = person(&app, "ann").await;
    let bob = person(&app, "bob").await;
    let cat = person(&app, "cat").await;
    let code = instant_meeting(&app, &ann, "bob,cat", &[]).await;
    set_cohosts(&app, &ann, &code, "bob").await;
    let (_ann_ws, _) = in_call(&app, &ann, &code).await;
    let (mut bob_ws, bob_peer) = in_call(&app, &bob, &code).await;
    let (mut cat_ws, cat_peer) = in_call(&app, &cat, &code).await;

    set_cohosts(&app, &ann, &code, "").await;

    // Bob's own page learns it (host controls go away), and so does Cat's.
    let update = bob_ws
        .recv_until(
            |m| matches!(m, ServerMessage::PeerUpdated { peer } if peer.peer_id == bob_peer),
        )
        .await;
    let ServerMessage::PeerUpdated { peer } = update else {
        unreachable!()
    };
    assert_eq!(peer.role, PeerRole::Member);
    cat_ws
        .recv_until(|m| matches!(m, ServerMessage::PeerUpdated { peer } if peer.peer_id == bob_peer && peer.role == PeerRole::Member))
        .await;

    // The open socket no longer ends meetings or removes people.
    bob_ws.send(&ClientMessage::EndMeeting).await;
    let refused = bob_ws
        .recv_until(|m| matches!(m, ServerMessage::Error { .. }))
        .await;
    assert!(matches!(
        refused,
        ServerMessage::Error {
            code: ErrorCode::Forbidden,
            ..
        }
    ));
    bob_ws
        .send(&ClientMessage::Remove {
            peer: cat_peer.clone().into(),
        })
        .await;
    let refused = bob_ws
        .recv_until(|m| matches!(m, ServerMessage::Error { .. }))
        .await;
    assert!(matches!(
        refused,
        ServerMessage::Error {
            code: ErrorCode::Forbidden,
            ..
        }
    ));
    // Cat is still in a meeting that goes on.
    cat_ws.send(&ClientMessage::Ping).await;
    cat_ws
        .recv_until(|m| matches!(m, ServerMessage::Pong))
        .await;
    let ended: (Option<i64>,) = sqlx::query_as("SELECT ended_at FROM meetings WHERE code = $1")
        .bind(&code)
        .fetch_one(&app.state.db)
        .await
        .expect("meeting row");
    assert_eq!(ended.0, None, "the meeting was not ended");
}

async fn a_socket_opened_before_removal_cannot_join_after_it(backend: Backend) {
    let app = spawn_with(quick(backend)).await;
    let ann = person(&app, "ann").await;
    let bob = person(&app, "bob").await;
    let code = instant_meeting(&app, &ann, "bob", &[]).await;
    let (_ann_ws, _) = in_call(&app, &ann, &code).await;
    enter(&app, &bob, &code, "").await;
    // Bob opens a socket while admitted, and keeps it unjoined.
    let mut early = open(&app, &bob.jar, &code).await.open();
    let bob_id: (String,) = sqlx::query_as("SELECT id FROM users WHERE username = 'bob'")
        .fetch_one(&app.state.db)
        .await
        .expect("bob's id");
    let response = app
        .call(
            &ann.client,
            "remove_participant",
            &[("code", &code), ("participant_id", &bob_id.0)],
        )
        .await;
    assert_eq!(response.status(), 200);
    // The unjoined socket is closed by the removal; had it raced ahead and
    // sent `join`, the re-check at `join` would refuse it.
    let _ = early
        .try_send(&ClientMessage::Join {
            version: app::protocol::PROTOCOL_VERSION,
            resume: None,
            media: Default::default(),
        })
        .await;
    let (messages, code_seen) = early.drain_until_close().await;
    assert!(
        !messages
            .iter()
            .any(|m| matches!(m, ServerMessage::Welcome { .. })),
        "a removed person must not get back in: {messages:?}"
    );
    assert!(
        [close::REMOVED, close::NOT_ADMITTED].contains(&code_seen),
        "closed with {code_seen}"
    );
    assert_eq!(open(&app, &bob.jar, &code).await.status(), 403);
}

async fn a_cancelled_meetings_live_call_closes(backend: Backend) {
    let app = spawn_with(quick(backend)).await;
    let ann = person(&app, "ann").await;
    let bob = person(&app, "bob").await;
    let code = instant_meeting(&app, &ann, "bob", &[]).await;
    let (mut ann_ws, _) = in_call(&app, &ann, &code).await;
    let (mut bob_ws, _) = in_call(&app, &bob, &code).await;
    let response = app
        .call(&ann.client, "cancel_meeting", &[("code", &code)])
        .await;
    assert_eq!(response.status(), 200);
    for ws in [&mut ann_ws, &mut bob_ws] {
        let code_seen = ws.closed_with().await;
        assert!(
            [close::CANCELLED, close::ENDED].contains(&code_seen),
            "closed with {code_seen}"
        );
    }
}

on_both_databases!(
    hosts_are_never_locked_out_of_their_own_full_room,
    floods_before_join_and_binary_and_ping_floods_are_limited,
    one_person_cannot_hold_sockets_without_bound,
);

async fn hosts_are_never_locked_out_of_their_own_full_room(backend: Backend) {
    let mut spawn = Spawn::new(backend);
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
    let dan = person(&app, "dan").await;
    let code = instant_meeting(&app, &ann, "bob,cat,dan", &[]).await;
    let (_bob_ws, _) = in_call(&app, &bob, &code).await;
    let (_cat_ws, _) = in_call(&app, &cat, &code).await;
    // Full for everyone else…
    enter(&app, &dan, &code, "").await;
    let mut dan_ws = open(&app, &dan.jar, &code).await.open();
    dan_ws
        .send(&ClientMessage::Join {
            version: app::protocol::PROTOCOL_VERSION,
            resume: None,
            media: Default::default(),
        })
        .await;
    let (_, dan_close) = dan_ws.drain_until_close().await;
    assert_eq!(dan_close, close::FULL);
    // …but the host gets into her own meeting.
    let (_ann_ws, _) = in_call(&app, &ann, &code).await;
}

async fn floods_before_join_and_binary_and_ping_floods_are_limited(backend: Backend) {
    let app = spawn_with(Spawn::new(backend)).await;
    let ann = person(&app, "ann").await;
    let code = instant_meeting(&app, &ann, "", &[]).await;
    enter(&app, &ann, &code, "").await;

    // Before `join`: binary frames used to be answered one by one, for ever.
    let mut ws = raw_socket(&app, &ann, &code).await;
    let mut closed_with = None;
    for _ in 0..2_000 {
        if ws.send(Message::binary(vec![0u8; 16])).await.is_err() {
            break;
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut rate_limited = false;
    while let Ok(Some(frame)) = tokio::time::timeout_at(deadline, ws.next()).await {
        match frame {
            Ok(Message::Text(text)) => rate_limited |= text.contains("rate_limited"),
            Ok(Message::Close(frame)) => {
                closed_with = frame.map(|f| u16::from(f.code));
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert!(rate_limited, "the flood was told to slow down");
    assert_eq!(closed_with, Some(close::POLICY));

    // After `join`: WebSocket pings count too.
    let mut ws = raw_socket(&app, &ann, &code).await;
    let join = join_frame();
    ws.send(Message::text(join)).await.expect("join");
    for _ in 0..2_000 {
        if ws.send(Message::Ping(vec![1u8; 8].into())).await.is_err() {
            break;
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut closed_with = None;
    while let Ok(Some(frame)) = tokio::time::timeout_at(deadline, ws.next()).await {
        match frame {
            Ok(Message::Close(frame)) => {
                closed_with = frame.map(|f| u16::from(f.code));
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert_eq!(closed_with, Some(close::POLICY), "a ping flood is a flood");
}

async fn one_person_cannot_hold_sockets_without_bound(backend: Backend) {
    let mut spawn = Spawn::new(backend);
    spawn
        .extra_args
        .extend(["--max-sockets-per-address".into(), "12".into()]);
    let app = spawn_with(spawn).await;
    let ann = person(&app, "ann").await;
    let code = instant_meeting(&app, &ann, "", &[]).await;
    enter(&app, &ann, &code, "").await;
    let mut sockets = Vec::new();
    loop {
        match open(&app, &ann.jar, &code).await {
            common::ws::Upgrade::Open(ws) => sockets.push(ws),
            common::ws::Upgrade::Refused(status) => {
                assert_eq!(status, 429);
                break;
            }
        }
        assert!(sockets.len() <= 8, "no cap per participant");
    }
    assert_eq!(sockets.len(), 8, "eight windows per person");
    // A closed one frees its place.
    if let Some(ws) = sockets.pop() {
        ws.close().await;
    }
    let reopened = wait_for_open(&app, &ann, &code).await;
    sockets.push(Box::new(reopened));

    // The address cap (12 here) holds across people.
    let bob = person(&app, "bob").await;
    let cat = person(&app, "cat").await;
    let code_b = instant_meeting(&app, &bob, "", &[]).await;
    enter(&app, &bob, &code_b, "").await;
    let code_c = instant_meeting(&app, &cat, "", &[]).await;
    enter(&app, &cat, &code_c, "").await;
    for _ in 0..4 {
        sockets.push(Box::new(open(&app, &bob.jar, &code_b).await.open()));
    }
    assert_eq!(open(&app, &cat.jar, &code_c).await.status(), 429);
}

/// Opening again right after a close may race the server's bookkeeping.
async fn wait_for_open(app: &TestApp, who: &Person, code: &str) -> Ws {
    for _ in 0..50 {
        if let common::ws::Upgrade::Open(ws) = open(app, &who.jar, code).await {
            return *ws;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the freed place was not given back");
}

type RawSocket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A WebSocket on a TCP socket with a tiny receive buffer, so that a
/// client that stops reading fills up quickly.
async fn raw_socket(app: &TestApp, who: &Person, code: &str) -> RawSocket {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("buffer size");
    let stream = socket.connect(app.addr).await.expect("connect");
    let mut request = format!("ws://{}/m/{code}/ws", app.addr)
        .into_client_request()
        .expect("request");
    let page: url::Url = app.base.parse().expect("base url");
    let cookie = who.jar.cookies(&page).expect("cookie");
    request.headers_mut().insert("cookie", cookie);
    request
        .headers_mut()
        .insert("origin", app.base.parse().expect("origin"));
    let (ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .expect("upgrade");
    ws
}

on_both_databases!(a_client_that_stops_reading_is_dropped_while_others_carry_on);

async fn a_client_that_stops_reading_is_dropped_while_others_carry_on(backend: Backend) {
    let mut spawn = quick(backend);
    spawn
        .extra_args
        .extend(["--ws-write-timeout-seconds".into(), "2".into()]);
    let app = spawn_with(spawn).await;
    let ann = person(&app, "ann").await;
    let bob = person(&app, "bob").await;
    let code = instant_meeting(&app, &ann, "bob", &[]).await;
    let (mut ann_ws, _) = in_call(&app, &ann, &code).await;
    enter(&app, &bob, &code, "").await;
    let mut stuck = raw_socket(&app, &bob, &code).await;
    let join = join_frame();
    stuck.send(Message::text(join)).await.expect("join");
    let joined = ann_ws
        .recv_until(|m| matches!(m, ServerMessage::PeerJoined { .. }))
        .await;
    let ServerMessage::PeerJoined { peer } = joined else {
        unreachable!()
    };
    // From now on Bob's client reads nothing. Ann sends him large signals
    // (within her rate limit) until his buffers and the server's are full.
    let big = app::protocol::Signal::Description {
        sdp_type: "offer".into(),
        sdp: "a".repeat(60_000),
    };
    for _ in 0..190 {
        ann_ws
            .send(&ClientMessage::Signal {
                to: peer.peer_id.clone(),
                signal: big.clone(),
            })
            .await;
    }
    // Ann is not slowed down by Bob: her own requests are answered.
    ann_ws.send(&ClientMessage::Ping).await;
    ann_ws
        .recv_within(Duration::from_secs(2), |m| matches!(m, ServerMessage::Pong))
        .await;
    // Bob's connection is given up after the write timeout (2 s) and his
    // presence after the grace (1 s): well before the 15 s it would take
    // for a stuck connection's presence to expire by itself.
    let left = ann_ws
        .recv_within(Duration::from_secs(12), |m| {
            matches!(m, ServerMessage::PeerLeft { .. })
        })
        .await;
    assert_eq!(
        left,
        ServerMessage::PeerLeft {
            peer_id: peer.peer_id.clone(),
            reason: LeaveReason::Lost
        }
    );
    drop(stuck);
}
