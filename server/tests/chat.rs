//! In-room chat: stored once, ordered, complete after reconnects.

mod common;

use app::protocol::{ClientMessage, ErrorCode, ServerMessage};
use common::chatter::{
    assert_exactly_once, chat as send, complete_view, history, spawn_all, Chatter, Instances,
};
use common::people::{join_call, meeting_with_everyone, person, Person};
use common::ws::Ws;
use common::{spawn_with, Backend, Spawn, TestApp};
use std::sync::Arc;
use std::time::Duration;

fn spawn(backend: Backend) -> Spawn {
    let mut spawn = Spawn::new(backend);
    spawn.extra_args = vec![
        "--reconnect-grace-seconds".into(),
        "1".into(),
        "--chat-messages-per-minute".into(),
        "1000000".into(),
    ];
    spawn
}

async fn join(app: &TestApp, who: &Person, code: &str, resume: Option<String>) -> (Ws, String) {
    let (ws, you, _) = join_call(app, who, code, resume).await;
    (ws, you.peer_id.into_string())
}

fn is_error(m: &ServerMessage) -> bool {
    matches!(m, ServerMessage::Error { .. })
}

on_both_databases!(many_messages_with_drops_are_stored_once_in_one_order);

async fn many_messages_with_drops_are_stored_once_in_one_order(backend: Backend) {
    let app = Arc::new(spawn_with(spawn(backend)).await);
    let mut people = Vec::new();
    for name in ["ann", "bob", "cat", "dan"] {
        people.push(person(&app, name).await);
    }
    let code = meeting_with_everyone(&app, &people).await;
    let per_client = 260;
    let instances: Instances = Arc::new(vec![app.clone()]);
    let chatters = Chatter::everyone(&people, &code, per_client, 0.03);
    let tasks = spawn_all(&instances, &chatters);
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("client task"));
    }
    let total = per_client * people.len();
    assert!(total >= 1000);
    let reconnects: u32 = outcomes.iter().map(|o| o.reconnects).sum();
    assert!(
        reconnects >= 4,
        "the test must really drop connections ({reconnects})"
    );
    assert_eq!(app.count("chat_messages").await, total as i64);
    let (mut ws, _) = join(&app, &people[0], &code, None).await;
    let stored = history(&mut ws).await;
    // "Load older": the page before a sequence number, oldest first.
    ws.send(&ClientMessage::ChatHistory { before: 501 }).await;
    match ws
        .recv_until(|m| matches!(m, ServerMessage::ChatBatch { older: true, .. }))
        .await
    {
        ServerMessage::ChatBatch { messages, more, .. } => {
            let seqs: Vec<i64> = messages.iter().map(|m| m.seq).collect();
            assert_eq!(seqs, (301..=500).collect::<Vec<_>>());
            assert!(more, "older messages remain");
        }
        _ => unreachable!(),
    }
    for (chatter, outcome) in chatters.iter().zip(outcomes.iter_mut()) {
        complete_view(&instances, chatter, outcome).await;
    }
    assert_exactly_once(&stored, &outcomes, per_client);
}

on_both_databases!(bad_chat_input_is_refused_and_private_stays_private);

async fn bad_chat_input_is_refused_and_private_stays_private(backend: Backend) {
    let mut spawn = Spawn::new(backend);
    spawn.extra_args = vec!["--reconnect-grace-seconds".into(), "1".into()];
    let app = spawn_with(spawn).await;
    let people = [
        person(&app, "ann").await,
        person(&app, "bob").await,
        person(&app, "cat").await,
    ];
    let code = meeting_with_everyone(&app, &people).await;
    let (mut a, _) = join(&app, &people[0], &code, None).await;
    let (mut b, bob_peer) = join(&app, &people[1], &code, None).await;
    let (mut c, _) = join(&app, &people[2], &code, None).await;

    let refused = |m: &ServerMessage, want: ErrorCode, key: &str| matches!(m, ServerMessage::Error { code, about: Some(k), .. } if *code == want && k == key);
    a.send(&send("k-empty", "   \n ")).await;
    assert!(refused(
        &a.recv_until(is_error).await,
        ErrorCode::ChatEmpty,
        "k-empty"
    ));
    a.send(&send("k-long", &"x".repeat(2001))).await;
    assert!(refused(
        &a.recv_until(is_error).await,
        ErrorCode::ChatTooLong,
        "k-long"
    ));
    a.send(&send("bad key!", "hi")).await;
    assert!(matches!(
        a.recv_until(is_error).await,
        ServerMessage::Error {
            code: ErrorCode::ChatBadKey,
            ..
        }
    ));
    a.send(&ClientMessage::ChatSend {
        key: "k-nobody".into(),
        text: "psst".into(),
        to: Some("not-a-peer".into()),
    })
    .await;
    assert!(refused(
        &a.recv_until(is_error).await,
        ErrorCode::UnknownPeer,
        "k-nobody"
    ));
    assert_eq!(app.count("chat_messages").await, 0);

    // Forged sender fields are ignored: the server says who sent it.
    a.send_text(r#"{"type":"chat_send","key":"k-1","text":"<img src=x onerror=alert(1)>","to":null,"sender_name":"bob","sender_id":"someone"}"#).await;
    let ServerMessage::ChatAck { seq, .. } = a
        .recv_until(|m| matches!(m, ServerMessage::ChatAck { .. }))
        .await
    else {
        unreachable!()
    };
    let ServerMessage::Chat { message } = b
        .recv_until(|m| matches!(m, ServerMessage::Chat { .. }))
        .await
    else {
        unreachable!()
    };
    assert_eq!(message.seq, seq);
    assert_eq!(message.sender_name, "ann");
    assert_eq!(message.text, "<img src=x onerror=alert(1)>");
    // The same key again: the same seq, nothing new stored or announced.
    a.send(&send("k-1", "different text")).await;
    assert_eq!(
        a.recv_until(|m| matches!(m, ServerMessage::ChatAck { .. }))
            .await,
        ServerMessage::ChatAck {
            key: "k-1".into(),
            seq,
            sent_at_ms: message.sent_at_ms
        }
    );
    assert!(
        b.try_recv(Duration::from_millis(300))
            .await
            .is_none_or(|m| !matches!(m, ServerMessage::Chat { .. })),
        "a resend is not announced again"
    );
    assert_eq!(app.count("chat_messages").await, 1);

    // Private: Bob and Ann see it, Cat never does, not even in history.
    a.send(&ClientMessage::ChatSend {
        key: "k-private".into(),
        text: "for bob only".into(),
        to: Some(bob_peer.clone().into()),
    })
    .await;
    let ServerMessage::Chat { message } = b
        .recv_until(|m| matches!(m, ServerMessage::Chat { .. }))
        .await
    else {
        unreachable!()
    };
    assert_eq!(message.text, "for bob only");
    assert_eq!(message.to_name.as_deref(), Some("bob"));
    let _ = c
        .recv_until(|m| matches!(m, ServerMessage::Chat { message } if message.seq == seq))
        .await;
    assert!(
        c.try_recv(Duration::from_millis(300))
            .await
            .is_none_or(|m| !matches!(m, ServerMessage::Chat { .. })),
        "the private message did not reach Cat"
    );
    let cat_history = history(&mut c).await;
    assert_eq!(cat_history.len(), 1);
    assert_eq!(history(&mut b).await.len(), 2);

    // Flooding: the default limit lets 20 through at once.
    let mut limited = 0;
    for i in 0..30 {
        a.send(&send(&format!("burst-{i}"), "spam")).await;
    }
    for _ in 0..30 {
        match a
            .recv_until(|m| {
                matches!(
                    m,
                    ServerMessage::ChatAck { .. } | ServerMessage::Error { .. }
                )
            })
            .await
        {
            ServerMessage::Error {
                code: ErrorCode::RateLimited,
                ..
            } => limited += 1,
            ServerMessage::ChatAck { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        (9..=11).contains(&limited),
        "about 10 of 30 refused, got {limited}"
    );

    // The transcript: not during the meeting, then for participants only.
    let transcript = |who: &Person| {
        let client = who.client.clone();
        let url = app.url(&format!("/m/{code}/chat.txt"));
        async move { client.get(url).send().await.unwrap() }
    };
    assert_eq!(transcript(&people[2]).await.status(), 409);
    a.send(&ClientMessage::EndMeeting).await;
    a.recv_until(|m| matches!(m, ServerMessage::MeetingEnded))
        .await;
    let response = transcript(&people[2]).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.contains("ann: <img src=x onerror=alert(1)>"), "{text}");
    assert!(!text.contains("for bob only"), "{text}");
    let bob_md = app
        .client()
        .get(app.url(&format!("/m/{code}/chat.md")))
        .send()
        .await
        .unwrap();
    assert_eq!(bob_md.status(), 401, "strangers get nothing");
    let eve = person(&app, "eve").await;
    assert_eq!(
        transcript(&eve).await.status(),
        403,
        "nor do non-participants"
    );
    let md = people[1]
        .client
        .get(app.url(&format!("/m/{code}/chat.md")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(md.contains("for bob only"));
    assert!(
        md.contains("\\<img src\\=x onerror\\=alert\\(1\\)\\>"),
        "{md}"
    );
}
