//! The load-and-fault runs: chat through two instances while one of them is
//! killed and Redis is restarted, and a long Redis outage.
//!
//! `MOIM_FAULT_REDIS_DOWN_SECONDS` sets the outage (300, five minutes, by
//! default; `scripts/test.sh` keeps the default).

mod common;

use app::protocol::{ClientMessage, ServerMessage};
use common::chatter::{
    assert_exactly_once, chat, complete_view, history, spawn_all, try_join, Chatter, Instances,
};
use common::people::{join_call, meeting_with_everyone, person};
use common::redis_server::RedisServer;
use common::ws::{expect_relayed, Event};
use common::{cluster, TestApp};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Two instances with room for a large chatty meeting from one test
/// address.
async fn chatty_cluster(redis: &RedisServer) -> (Arc<TestApp>, Arc<TestApp>) {
    let (one, two) = cluster(
        redis,
        &[
            "--chat-messages-per-minute",
            "1000000",
            "--sign-ups-per-hour",
            "1000",
            "--mesh-max-participants",
            "20",
        ],
    )
    .await;
    (Arc::new(one), Arc::new(two))
}

/// Polls until `app` has stored at least `count` chat messages.
async fn stored_at_least(app: &TestApp, count: i64) {
    while app.count("chat_messages").await < count {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_messages_from_twenty_clients_survive_a_killed_instance_and_a_redis_restart() {
    let mut redis = RedisServer::start();
    let (one, two) = chatty_cluster(&redis).await;
    let mut people = Vec::new();
    for i in 0..20 {
        people.push(person(&one, &format!("user{i:02}")).await);
    }
    let code = meeting_with_everyone(&one, &people).await;
    let per_client = 500;
    let total = per_client * people.len();
    assert_eq!(total, 10_000);
    let instances: Instances = Arc::new(vec![one.clone(), two.clone()]);
    let chatters = Chatter::everyone(&people, &code, per_client, 0.01);
    let started = Instant::now();
    let tasks = spawn_all(&instances, &chatters);

    // A fifth of the way in, instance two dies (half the clients were on
    // it); at half way Redis crashes and comes back empty.
    tokio::time::timeout(Duration::from_secs(300), stored_at_least(&one, 2_000))
        .await
        .expect("2,000 messages stored within 5 minutes");
    two.kill();
    let killed_at = one.count("chat_messages").await;
    tokio::time::timeout(Duration::from_secs(300), stored_at_least(&one, 5_000))
        .await
        .expect("5,000 messages stored within 5 minutes");
    tokio::task::block_in_place(|| {
        redis.stop();
        std::thread::sleep(Duration::from_secs(2));
        redis.restart();
    });
    let restarted_at = one.count("chat_messages").await;

    let mut outcomes = Vec::new();
    for task in tasks {
        let outcome = tokio::time::timeout(Duration::from_secs(600), task)
            .await
            .expect("every client done within 10 minutes")
            .expect("client task");
        outcomes.push(outcome);
    }
    let elapsed = started.elapsed();
    let reconnects: u32 = outcomes.iter().map(|o| o.reconnects).sum();
    println!(
        "fault run: {total} messages from {} clients in {:.1} s, {reconnects} reconnects; \
         instance two killed at {killed_at} stored, Redis restarted at {restarted_at}",
        people.len(),
        elapsed.as_secs_f64()
    );
    assert!(
        killed_at < total as i64 && restarted_at < total as i64,
        "the faults happened while clients were still sending"
    );
    assert!(
        reconnects >= 30,
        "drops, the killed instance and Redis's return made clients reconnect ({reconnects})"
    );

    assert_eq!(one.count("chat_messages").await, total as i64);
    let (mut ws, _, _) = join_call(&one, &people[0], &code, outcomes[0].peer.clone()).await;
    let stored = history(&mut ws).await;
    for (chatter, outcome) in chatters.iter().zip(outcomes.iter_mut()) {
        complete_view(&instances, chatter, outcome).await;
    }
    assert_exactly_once(&stored, &outcomes, per_client);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_down_for_minutes_keeps_same_instance_calls_and_recovers_by_itself() {
    let outage = Duration::from_secs(
        std::env::var("MOIM_FAULT_REDIS_DOWN_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(300),
    );
    let mut redis = RedisServer::start();
    let (one, two) = chatty_cluster(&redis).await;
    let ann = person(&one, "ann").await;
    let bob = person(&one, "bob").await;
    let cat = person(&one, "cat").await;
    let code = meeting_with_everyone(&one, &[ann.clone(), bob.clone(), cat.clone()]).await;
    let (mut a, ann_peer, _) = join_call(&one, &ann, &code, None).await;
    let (mut c, cat_peer, _) = join_call(&one, &cat, &code, None).await;
    let (mut b, bob_peer, _) = join_call(&two, &bob, &code, None).await;
    a.send(&chat("before", "before the outage")).await;
    b.recv_until(|m| matches!(m, ServerMessage::Chat { message } if message.key == "before"))
        .await;

    redis.stop();
    let down = Instant::now();
    let mut checks = 0;
    let mut during = 0;
    while down.elapsed() < outage {
        // Not ready (cross-instance delivery is down), but alive.
        let deadline = Instant::now() + Duration::from_secs(10);
        while one.status_of("/readyz").await != 503 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(
            one.status_of("/readyz").await,
            503,
            "not ready without Redis"
        );
        assert_eq!(
            two.status_of("/readyz").await,
            503,
            "not ready without Redis"
        );
        assert_eq!(one.status_of("/healthz").await, 200, "alive without Redis");
        // The call on one instance goes on: signals and chat between Ann and
        // Cat, confirmed and delivered.
        expect_relayed(&mut a, &ann_peer.peer_id, &mut c, &cat_peer.peer_id).await;
        let key = format!("during-{during}");
        a.send(&chat(&key, "said during the outage")).await;
        a.recv_until(|m| matches!(m, ServerMessage::ChatAck { key: k, .. } if *k == key))
            .await;
        c.recv_until(|m| matches!(m, ServerMessage::Chat { message } if message.key == key))
            .await;
        during += 1;
        // Bob's connection on the other instance stays open and answers.
        b.send(&ClientMessage::Ping).await;
        checks += 1;
        let pause = Duration::from_secs(15).min(outage.saturating_sub(down.elapsed()));
        // Keep reading meanwhile, as a browser does (the server drops
        // clients that stop reading).
        let until = Instant::now() + pause;
        while Instant::now() < until {
            for ws in [&mut a, &mut b, &mut c] {
                let _ = ws.next_event(Duration::from_millis(100)).await;
            }
        }
    }
    println!(
        "Redis down for {:.0} s: {checks} rounds of same-instance signals and chat",
        down.elapsed().as_secs_f64()
    );
    assert!(checks >= 1);

    // Back: both instances ready again on their own, and the calls resume.
    tokio::task::block_in_place(|| redis.restart());
    let back = Instant::now();
    while (one.status_of("/readyz").await != 200 || two.status_of("/readyz").await != 200)
        && back.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(one.status_of("/readyz").await, 200, "ready again");
    assert_eq!(two.status_of("/readyz").await, 200, "ready again");
    println!(
        "ready again {:.1} s after Redis returned",
        back.elapsed().as_secs_f64()
    );
    // Everyone is asked to come back (events may have been lost); the
    // clients follow under their peer ids, as the page does.
    let mut rejoined = Vec::new();
    for (ws, who, peer, app) in [
        (a, &ann, &ann_peer, &one),
        (b, &bob, &bob_peer, &two),
        (c, &cat, &cat_peer, &one),
    ] {
        let mut ws = ws;
        loop {
            match ws.next_event(Duration::from_secs(10)).await {
                Event::Message(ServerMessage::Reconnect) | Event::Closed => break,
                Event::Message(_) => continue,
                Event::Quiet => panic!("{} was not asked to reconnect", who.name),
            }
        }
        let (ws, again) = try_join(app, who, &code, Some(peer.peer_id.to_string()))
            .await
            .unwrap_or_else(|| panic!("{} rejoins", who.name));
        assert_eq!(again, peer.peer_id, "the page keeps its peer id");
        rejoined.push(ws);
    }
    let [mut a, mut b, mut c]: [_; 3] = rejoined.try_into().expect("three");
    // Across instances again, both ways.
    b.send(&chat("after", "after the outage")).await;
    a.recv_until(|m| matches!(m, ServerMessage::Chat { message } if message.key == "after"))
        .await;
    expect_relayed(&mut c, &cat_peer.peer_id, &mut b, &bob_peer.peer_id).await;
    // Bob missed the outage's chat live; one sync brings it, each once.
    let seen = history(&mut b).await;
    let keys: Vec<&str> = seen.iter().map(|m| m.key.as_str()).collect();
    let mut expected = vec!["before".to_string()];
    expected.extend((0..during).map(|i| format!("during-{i}")));
    expected.push("after".to_string());
    assert_eq!(keys, expected);
}
