//! Several moim instances sharing PostgreSQL and Redis: one room across
//! instances, and what happens when Redis or an instance goes away.

mod common;

use app::protocol::{ClientMessage, LeaveReason, ServerMessage};
use common::people::{enter, instant_meeting, join_call, person};
use common::redis_server::RedisServer;
use common::ws::expect_relayed;
use common::{cluster, spawn_with, Backend, Spawn};
use std::time::{Duration, Instant};

fn chat(key: &str, text: &str) -> ClientMessage {
    ClientMessage::ChatSend {
        key: key.into(),
        text: text.into(),
        to: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_room_across_two_instances() {
    let redis = RedisServer::start();
    let (one, two) = cluster(&redis, &[]).await;
    assert_eq!(one.status_of("/readyz").await, 200);
    let ann = person(&one, "ann").await;
    let bob = person(&one, "bob").await;
    let code = instant_meeting(&one, &ann, "bob", &[]).await;
    enter(&one, &ann, &code, "").await;
    enter(&one, &bob, &code, "").await;

    let (mut a, ann_peer, _) = join_call(&one, &ann, &code, None).await;
    let (mut b, bob_peer, welcome) = join_call(&two, &bob, &code, None).await;
    // Presence is shared: Bob, on the other instance, sees Ann.
    let ServerMessage::Welcome { peers, .. } = welcome else {
        unreachable!()
    };
    let ids: Vec<&str> = peers.iter().map(|p| p.peer_id.as_str()).collect();
    assert_eq!(ids, [ann_peer.peer_id.as_str()]);
    a.recv_until(
        |m| matches!(m, ServerMessage::PeerJoined { peer } if peer.peer_id == bob_peer.peer_id),
    )
    .await;

    // Relay both ways.
    expect_relayed(&mut a, &ann_peer.peer_id, &mut b, &bob_peer.peer_id).await;
    expect_relayed(&mut b, &bob_peer.peer_id, &mut a, &ann_peer.peer_id).await;
    // Media state and chat.
    let mut media = ann_peer.media;
    media.mic = false;
    a.send(&ClientMessage::Media { media }).await;
    match b
        .recv_until(|m| matches!(m, ServerMessage::PeerUpdated { .. }))
        .await
    {
        ServerMessage::PeerUpdated { peer } => assert!(!peer.media.mic),
        _ => unreachable!(),
    }
    b.send(&chat("b-1", "hello from instance two")).await;
    match a
        .recv_until(|m| matches!(m, ServerMessage::Chat { .. }))
        .await
    {
        ServerMessage::Chat { message } => assert_eq!(message.text, "hello from instance two"),
        _ => unreachable!(),
    }

    // A knock on instance two reaches the host's call on instance one.
    let visitor = two.client();
    let response = two
        .call(
            &visitor,
            "enter_meeting",
            &[("code", &code), ("display_name", "Visitor")],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap(),
        "Waiting"
    );
    a.recv_until(|m| matches!(m, ServerMessage::KnocksChanged))
        .await;

    // A third person sees the same list from either instance.
    let cat = person(&one, "cat").await;
    let response = one
        .call(
            &ann.client,
            "set_cohosts",
            &[("code", &code), ("cohosts", "cat")],
        )
        .await;
    assert_eq!(response.status(), 200);
    enter(&one, &cat, &code, "").await;
    let (_c, _, welcome) = join_call(&two, &cat, &code, None).await;
    let ServerMessage::Welcome { peers, .. } = welcome else {
        unreachable!()
    };
    let mut ids: Vec<_> = peers.into_iter().map(|p| p.peer_id).collect();
    ids.sort();
    let mut expected = vec![ann_peer.peer_id.clone(), bob_peer.peer_id.clone()];
    expected.sort();
    assert_eq!(ids, expected);

    // A host on instance one removes Bob on instance two.
    a.send(&ClientMessage::Remove {
        peer: bob_peer.peer_id.clone(),
    })
    .await;
    assert_eq!(
        b.recv_until(|m| matches!(m, ServerMessage::Removed)).await,
        ServerMessage::Removed
    );
    assert_eq!(b.closed_with().await, app::protocol::close::REMOVED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_outage_keeps_local_calls_and_recovers_without_losing_chat() {
    let mut redis = RedisServer::start();
    let (one, two) = cluster(&redis, &[]).await;
    let ann = person(&one, "ann").await;
    let bob = person(&one, "bob").await;
    let cat = person(&one, "cat").await;
    let code = instant_meeting(&one, &ann, "bob, cat", &[]).await;
    for p in [&ann, &bob, &cat] {
        enter(&one, p, &code, "").await;
    }
    let (mut a, ann_peer, _) = join_call(&one, &ann, &code, None).await;
    let (mut c, cat_peer, _) = join_call(&one, &cat, &code, None).await;
    let (mut b, bob_peer, _) = join_call(&two, &bob, &code, None).await;
    a.recv_until(
        |m| matches!(m, ServerMessage::PeerJoined { peer } if peer.peer_id == bob_peer.peer_id),
    )
    .await;
    b.send(&chat("before", "before the outage")).await;
    a.recv_until(|m| matches!(m, ServerMessage::Chat { .. }))
        .await;

    redis.stop();
    let outage = Instant::now();
    // Not ready (cross-instance delivery is down), but alive.
    let deadline = Instant::now() + Duration::from_secs(5);
    while one.status_of("/readyz").await != 503 && Instant::now() < deadline {
        a.send(&ClientMessage::Ping).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(one.status_of("/readyz").await, 503);
    assert_eq!(one.status_of("/healthz").await, 200);

    // Same-instance participants keep talking.
    expect_relayed(&mut a, &ann_peer.peer_id, &mut c, &cat_peer.peer_id).await;
    // Bob's chat during the outage is stored (the database is the truth).
    b.send(&chat("during", "said during the outage")).await;
    b.recv_until(|m| matches!(m, ServerMessage::ChatAck { key, .. } if key == "during"))
        .await;

    // Redis back after 10 s.
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(outage.elapsed())).await;
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    while (one.status_of("/readyz").await != 200 || two.status_of("/readyz").await != 200)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(one.status_of("/readyz").await, 200);
    assert_eq!(two.status_of("/readyz").await, 200);
    // Connections are asked to come back (the restarted Redis is empty and
    // events may have been lost). The client follows, as the browser does:
    // it joins again under its peer id and fetches the chat it missed.
    let mut seen_during = 0;
    loop {
        match a.try_recv(Duration::from_secs(5)).await {
            Some(ServerMessage::Chat { message }) if message.key == "during" => seen_during += 1,
            Some(ServerMessage::Reconnect) | None => break,
            Some(_) => continue,
        }
    }
    let (mut a, again, _) = join_call(&one, &ann, &code, Some(ann_peer.peer_id.to_string())).await;
    assert_eq!(
        again.peer_id, ann_peer.peer_id,
        "the page keeps its peer id"
    );
    a.send(&ClientMessage::ChatSync { after: 1 }).await;
    match a
        .recv_until(|m| matches!(m, ServerMessage::ChatBatch { .. }))
        .await
    {
        ServerMessage::ChatBatch { messages, .. } => {
            let during = messages.iter().filter(|m| m.key == "during").count();
            assert_eq!(during + seen_during, 1, "the outage message exactly once");
            assert_eq!(messages.last().map(|m| m.seq), Some(2));
        }
        _ => unreachable!(),
    }
    // Cross-instance delivery is back (Bob reconnects too).
    let (mut b, _, _) = join_call(&two, &bob, &code, Some(bob_peer.peer_id.to_string())).await;
    b.send(&chat("after", "after the outage")).await;
    a.recv_until(|m| matches!(m, ServerMessage::Chat { message } if message.key == "after"))
        .await;
    assert_eq!(one.count("chat_messages").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_instance_loses_its_participants_and_a_terminated_one_hands_them_over() {
    let redis = RedisServer::start();
    let (one, two) = cluster(&redis, &[]).await;
    let ann = person(&one, "ann").await;
    let bob = person(&one, "bob").await;
    let cat = person(&one, "cat").await;
    let code = instant_meeting(&one, &ann, "bob, cat", &[]).await;
    for p in [&ann, &bob, &cat] {
        enter(&one, p, &code, "").await;
    }
    let (mut a, _, _) = join_call(&one, &ann, &code, None).await;
    let (b, bob_peer, _) = join_call(&two, &bob, &code, None).await;
    let (c, cat_peer, _) = join_call(&two, &cat, &code, None).await;
    a.recv_until(
        |m| matches!(m, ServerMessage::PeerJoined { peer } if peer.peer_id == cat_peer.peer_id),
    )
    .await;

    // Instance two dies.
    two.kill();
    let killed = Instant::now();
    drop(b);
    drop(c);
    // Bob's client reconnects to instance one at once and resumes: Ann
    // sees no change for him.
    let (_b, again, welcome) =
        join_call(&one, &bob, &code, Some(bob_peer.peer_id.to_string())).await;
    let ServerMessage::Welcome { resumed, .. } = welcome else {
        unreachable!()
    };
    assert!(resumed);
    assert_eq!(again.peer_id, bob_peer.peer_id);
    assert!(killed.elapsed() < Duration::from_secs(5));
    // Cat never comes back: gone from Ann's list within the heartbeat window.
    match a
        .recv_within(Duration::from_secs(20), |m| {
            matches!(m, ServerMessage::PeerLeft { .. })
        })
        .await
    {
        ServerMessage::PeerLeft { peer_id, reason } => {
            assert_eq!(peer_id, cat_peer.peer_id, "only Cat leaves, not Bob");
            assert_eq!(reason, LeaveReason::Lost);
        }
        _ => unreachable!(),
    }
    assert!(
        killed.elapsed() < Duration::from_secs(17),
        "within the 15 s presence window"
    );

    // A third instance, terminated (SIGTERM): its calls are told to go
    // elsewhere, and it takes no new joins.
    let mut third = Spawn::new(Backend::Postgres);
    third.extra_args = vec!["--redis-url".into(), redis.url()];
    third.database_url = Some(one.database_url.clone());
    let mut three = spawn_with(third).await;
    let (mut c, cat_again, _) = join_call(&three, &cat, &code, None).await;
    three.terminate();
    assert_eq!(
        c.recv_until(|m| matches!(m, ServerMessage::Reconnect))
            .await,
        ServerMessage::Reconnect
    );
    assert_eq!(c.closed_with().await, 1012);
    let (_c, resumed_cat, _) =
        join_call(&one, &cat, &code, Some(cat_again.peer_id.to_string())).await;
    assert_eq!(resumed_cat.peer_id, cat_again.peer_id);
}
