//! In-room chat: stored once, ordered, complete after reconnects.

mod common;

use app::protocol::{ChatMessage, ClientMessage, ErrorCode, ServerMessage};
use common::people::{join_call, person, Person};
use common::ws::Ws;
use common::{spawn_with, Backend, Spawn, TestApp};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// A meeting by `people[0]` with the others invited, everyone admitted.
async fn meeting_of(app: &TestApp, people: &[Person]) -> String {
    let invitees: Vec<&str> = people[1..].iter().map(|p| p.name.as_str()).collect();
    let response = app
        .call(
            &people[0].client,
            "schedule_meeting",
            &[
                ("title", "Chat test"),
                ("instant", "1"),
                ("invitees", &invitees.join(",")),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    let code: String = response.json().await.unwrap();
    for p in people {
        let response = app
            .call(
                &p.client,
                "enter_meeting",
                &[("code", &code), ("display_name", "")],
            )
            .await;
        assert_eq!(response.status(), 200);
    }
    code
}

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
    (ws, you.peer_id)
}

fn is_error(m: &ServerMessage) -> bool {
    matches!(m, ServerMessage::Error { .. })
}

fn send(key: &str, text: &str) -> ClientMessage {
    ClientMessage::ChatSend {
        key: key.into(),
        text: text.into(),
        to: None,
    }
}

/// The whole visible history, page by page.
async fn history(ws: &mut Ws) -> Vec<ChatMessage> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        ws.send(&ClientMessage::ChatSync { after }).await;
        let ServerMessage::ChatBatch { messages, more, .. } = ws
            .recv_until(|m| matches!(m, ServerMessage::ChatBatch { older: false, .. }))
            .await
        else {
            unreachable!()
        };
        after = messages.last().map(|m| m.seq).unwrap_or(after);
        all.extend(messages);
        if !more {
            return all;
        }
    }
}

/// A tiny deterministic generator: the test needs "random" drops, not
/// cryptography.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What one chatty client ends up with.
struct Outcome {
    acks: HashMap<String, i64>,
    seen: BTreeMap<i64, ChatMessage>,
    reconnects: u32,
}

/// Sends `count` messages, dropping its connection now and then (without a
/// goodbye) and resending whatever was not confirmed, as the browser does.
async fn chatter(app: Arc<TestApp>, who: Person, code: String, id: usize, count: usize) -> Outcome {
    let mut rng = Lcg(0x9e37_79b9 + id as u64 * 7919);
    let mut pending: BTreeMap<String, String> = BTreeMap::new();
    let mut acks = HashMap::new();
    let mut seen: BTreeMap<i64, ChatMessage> = BTreeMap::new();
    let mut next = 0;
    let mut peer = None;
    let mut reconnects = 0;
    'connection: loop {
        let (mut ws, me) = join(&app, &who, &code, peer.clone()).await;
        peer = Some(me);
        // Catch up from the last message seen in order.
        let contiguous = seen.keys().copied().take_while({
            let mut expect = 1;
            move |s| {
                let ok = *s == expect;
                expect += 1;
                ok
            }
        });
        let after = contiguous.last().unwrap_or(0);
        ws.send(&ClientMessage::ChatSync { after }).await;
        for (key, text) in pending.clone() {
            ws.send(&send(&key, &text)).await;
        }
        let mut quiet_rounds = 0;
        loop {
            if next < count {
                let key = format!("c{id}-{next}");
                let text = format!("message {next} from client {id}");
                pending.insert(key.clone(), text.clone());
                ws.send(&send(&key, &text)).await;
                next += 1;
            }
            let wait = if next < count { 5 } else { 200 };
            let mut got_any = false;
            while let Some(message) = ws.try_recv(Duration::from_millis(wait)).await {
                got_any = true;
                match message {
                    ServerMessage::ChatAck { key, seq, .. } => {
                        pending.remove(&key);
                        if let Some(old) = acks.insert(key.clone(), seq) {
                            assert_eq!(old, seq, "a resend of {key} got another seq");
                        }
                    }
                    ServerMessage::Chat { message } => {
                        seen.insert(message.seq, message);
                    }
                    ServerMessage::ChatBatch { messages, .. } => {
                        for m in messages {
                            seen.insert(m.seq, m);
                        }
                    }
                    ServerMessage::Error { code, message, .. } => {
                        panic!("client {id}: error {code:?}: {message}")
                    }
                    _ => {}
                }
                if next < count {
                    break;
                }
            }
            if next >= count && pending.is_empty() {
                return Outcome {
                    acks,
                    seen,
                    reconnects,
                };
            }
            // The network fails now and then, acks in flight and all.
            if rng.next() < 0.03 {
                reconnects += 1;
                ws.drop_connection();
                continue 'connection;
            }
            if !got_any && next >= count {
                quiet_rounds += 1;
                if quiet_rounds > 10 {
                    // Unconfirmed for 2 s: send again (same keys).
                    for (key, text) in pending.clone() {
                        ws.send(&send(&key, &text)).await;
                    }
                    quiet_rounds = 0;
                }
            }
        }
    }
}

on_both_databases!(many_messages_with_drops_are_stored_once_in_one_order);

async fn many_messages_with_drops_are_stored_once_in_one_order(backend: Backend) {
    let app = Arc::new(spawn_with(spawn(backend)).await);
    let mut people = Vec::new();
    for name in ["ann", "bob", "cat", "dan"] {
        people.push(person(&app, name).await);
    }
    let code = meeting_of(&app, &people).await;
    let per_client = 260;
    let mut tasks = Vec::new();
    for (id, who) in people.iter().cloned().enumerate() {
        tasks.push(tokio::spawn(chatter(
            app.clone(),
            who,
            code.clone(),
            id,
            per_client,
        )));
    }
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

    // Stored exactly once each: 1..=total without gaps, every key once.
    assert_eq!(app.count("chat_messages").await, total as i64);
    let (_ws, _) = join(&app, &people[0], &code, None).await;
    let mut ws = _ws;
    let stored = history(&mut ws).await;
    let seqs: Vec<i64> = stored.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=total as i64).collect::<Vec<_>>());
    let keys: std::collections::HashSet<_> =
        stored.iter().map(|m| (&m.sender_id, &m.key)).collect();
    assert_eq!(keys.len(), total);
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
    // Per sender, messages keep the order they were sent in.
    for id in 0..people.len() {
        let mine: Vec<usize> = stored
            .iter()
            .filter(|m| m.key.starts_with(&format!("c{id}-")))
            .map(|m| m.key[format!("c{id}-").len()..].parse().unwrap())
            .collect();
        assert_eq!(mine.len(), per_client);
    }

    for (id, outcome) in outcomes.iter_mut().enumerate() {
        // Every confirmation names the stored copy.
        assert_eq!(outcome.acks.len(), per_client);
        for m in stored
            .iter()
            .filter(|m| m.key.starts_with(&format!("c{id}-")))
        {
            assert_eq!(outcome.acks.get(&m.key), Some(&m.seq), "ack of {}", m.key);
        }
        // What the client saw live plus its catch-ups, completed by one last
        // sync from its last in-order message, is the stored history.
        let contiguous = outcome
            .seen
            .keys()
            .enumerate()
            .take_while(|(i, s)| **s == *i as i64 + 1)
            .count() as i64;
        ws.send(&ClientMessage::ChatSync { after: contiguous })
            .await;
        loop {
            let ServerMessage::ChatBatch { messages, more, .. } = ws
                .recv_until(|m| matches!(m, ServerMessage::ChatBatch { .. }))
                .await
            else {
                unreachable!()
            };
            let last = messages.last().map(|m| m.seq);
            for m in messages {
                outcome.seen.insert(m.seq, m);
            }
            if !more {
                break;
            }
            ws.send(&ClientMessage::ChatSync {
                after: last.unwrap_or(0),
            })
            .await;
        }
        let view: Vec<&ChatMessage> = outcome.seen.values().collect();
        assert_eq!(view.len(), total, "client {id} history is complete");
        assert!(
            view.iter().zip(stored.iter()).all(|(a, b)| *a == b),
            "client {id} history differs"
        );
    }
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
    let code = meeting_of(&app, &people).await;
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
        to: Some(bob_peer.clone()),
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
