//! Chatty clients for the exactly-once chat tests: each sends its messages,
//! drops its connection now and then (acks in flight and all), reconnects
//! to an instance that is still up, catches up and resends what was not
//! confirmed, as the browser does. Then the checks that the stored history
//! is every message once, in one order, and that every client sees it.

use super::people::Person;
use super::ws::{join_message, try_open, Event, Upgrade, Ws};
use super::TestApp;
use app::protocol::{ChatMessage, ClientMessage, ServerMessage};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A tiny deterministic generator: the tests need "random" drops, not
/// cryptography.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub fn chat(key: &str, text: &str) -> ClientMessage {
    ClientMessage::ChatSend {
        key: key.into(),
        text: text.into(),
        to: None,
    }
}

/// One client's part in a run.
#[derive(Clone)]
pub struct Chatter {
    pub id: usize,
    pub who: Person,
    pub code: String,
    /// Messages it sends (keys `c{id}-{n}`).
    pub count: usize,
    /// Chance, after each round, of losing the connection without a goodbye.
    pub drop_rate: f64,
}

impl Chatter {
    /// One chatter per person, numbered in order, each sending `count`.
    pub fn everyone(people: &[Person], code: &str, count: usize, drop_rate: f64) -> Vec<Self> {
        people
            .iter()
            .cloned()
            .enumerate()
            .map(|(id, who)| Chatter {
                id,
                who,
                code: code.to_string(),
                count,
                drop_rate,
            })
            .collect()
    }
}

/// Starts every chatter at once.
pub fn spawn_all(
    instances: &Instances,
    chatters: &[Chatter],
) -> Vec<tokio::task::JoinHandle<Outcome>> {
    chatters
        .iter()
        .cloned()
        .map(|c| tokio::spawn(chatter(instances.clone(), c)))
        .collect()
}

/// What one client ends up with.
pub struct Outcome {
    pub id: usize,
    pub acks: HashMap<String, i64>,
    pub seen: BTreeMap<i64, ChatMessage>,
    pub reconnects: u32,
    pub peer: Option<String>,
}

impl Outcome {
    /// The last sequence number up to which this client has every message.
    fn contiguous(&self) -> i64 {
        self.seen
            .keys()
            .enumerate()
            .take_while(|(i, s)| **s == *i as i64 + 1)
            .count() as i64
    }
}

/// The instances a client may reach; a killed one is skipped, as a load
/// balancer's health check would.
pub type Instances = Arc<Vec<Arc<TestApp>>>;

/// Joins the call on the first live instance (starting from `attempt`) that
/// lets it in; panics if none does within a minute.
async fn connect(
    instances: &Instances,
    chatter: &Chatter,
    resume: Option<String>,
    attempt: &mut usize,
) -> (Ws, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let app = &instances[(chatter.id + *attempt) % instances.len()];
        *attempt += 1;
        if !app.is_killed() {
            if let Some(joined) = try_join(app, &chatter.who, &chatter.code, resume.clone()).await {
                return joined;
            }
        }
        assert!(
            Instant::now() < deadline,
            "client {} could not rejoin for a minute",
            chatter.id
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Opens a call connection and joins, or None if the instance is gone or
/// does not let the client in right now.
pub async fn try_join(
    app: &TestApp,
    who: &Person,
    code: &str,
    resume: Option<String>,
) -> Option<(Ws, String)> {
    let Ok(Upgrade::Open(ws)) = try_open(app, &who.jar, code).await else {
        return None;
    };
    let mut ws = *ws;
    if !ws.try_send(&join_message(resume)).await {
        return None;
    }
    loop {
        match ws.next_event(Duration::from_secs(5)).await {
            Event::Message(ServerMessage::Welcome { you, .. }) => {
                return Some((ws, you.peer_id.into_string()))
            }
            Event::Message(_) => continue,
            Event::Quiet | Event::Closed => return None,
        }
    }
}

/// The pace of a chatter's new messages: the server takes 200 frames at
/// once and then 50 a second per connection (docs/protocol.md), and a client
/// over that is told to slow down, which is another test's subject
/// (signaling.rs). Sending as fast as acks come back drained that bucket
/// whenever a connection happened to live for ~200 messages without a drop.
const SEND_INTERVAL: Duration = Duration::from_millis(25);

/// Sends `chatter.count` messages, surviving drops, killed instances and
/// requests to reconnect; returns once every one of them is confirmed.
pub async fn chatter(instances: Instances, chatter: Chatter) -> Outcome {
    let id = chatter.id;
    let mut rng = Lcg(0x9e37_79b9 + id as u64 * 7919);
    // Unconfirmed messages by their number: resent in the order first sent,
    // so each sender's messages are stored in that order.
    let mut pending: BTreeMap<usize, (String, String)> = BTreeMap::new();
    let mut outcome = Outcome {
        id,
        acks: HashMap::new(),
        seen: BTreeMap::new(),
        reconnects: 0,
        peer: None,
    };
    let mut next = 0;
    let mut attempt = 0;
    'connection: loop {
        if outcome.peer.is_some() {
            outcome.reconnects += 1;
        }
        let (mut ws, me) = connect(&instances, &chatter, outcome.peer.clone(), &mut attempt).await;
        outcome.peer = Some(me);
        // Catch up from the last message seen in order, then resend.
        let after = outcome.contiguous();
        if !ws.try_send(&ClientMessage::ChatSync { after }).await {
            continue 'connection;
        }
        for (key, text) in pending.values() {
            if !ws.try_send(&chat(key, text)).await {
                continue 'connection;
            }
        }
        let mut quiet_rounds = 0;
        let mut next_send_at = Instant::now();
        loop {
            // The drops below are rolled once per message sent (and per
            // round once all are sent), however many rounds the pacing adds.
            let mut sent_now = false;
            if next < chatter.count && Instant::now() >= next_send_at {
                sent_now = true;
                let key = format!("c{id}-{next}");
                let text = format!("message {next} from client {id}");
                pending.insert(next, (key.clone(), text.clone()));
                next += 1;
                next_send_at = Instant::now() + SEND_INTERVAL;
                if !ws.try_send(&chat(&key, &text)).await {
                    continue 'connection;
                }
            }
            let wait = if next < chatter.count {
                next_send_at
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1))
            } else {
                Duration::from_millis(200)
            };
            let mut got_any = false;
            loop {
                let message = match ws.next_event(wait).await {
                    Event::Quiet => break,
                    Event::Closed => continue 'connection,
                    Event::Message(message) => message,
                };
                got_any = true;
                match message {
                    ServerMessage::ChatAck { key, seq, .. } => {
                        pending.retain(|_, (k, _)| *k != key);
                        if let Some(old) = outcome.acks.insert(key.clone(), seq) {
                            assert_eq!(old, seq, "a resend of {key} got another seq");
                        }
                    }
                    ServerMessage::Chat { message } => {
                        outcome.seen.insert(message.seq, message);
                    }
                    ServerMessage::ChatBatch { messages, .. } => {
                        for m in messages {
                            outcome.seen.insert(m.seq, m);
                        }
                    }
                    // The server asks everyone back (its Redis came back
                    // empty, or it is shutting down).
                    ServerMessage::Reconnect => continue 'connection,
                    ServerMessage::Error { code, message, .. } => {
                        panic!("client {id}: error {code:?}: {message}")
                    }
                    _ => {}
                }
                if next < chatter.count {
                    break;
                }
            }
            if next >= chatter.count && pending.is_empty() {
                return outcome;
            }
            // The network fails now and then, acks in flight and all.
            if (sent_now || next >= chatter.count) && rng.next() < chatter.drop_rate {
                ws.drop_connection();
                continue 'connection;
            }
            if !got_any && next >= chatter.count {
                quiet_rounds += 1;
                if quiet_rounds > 10 {
                    // Unconfirmed for 2 s: send again (same keys).
                    for (key, text) in pending.values() {
                        if !ws.try_send(&chat(key, text)).await {
                            continue 'connection;
                        }
                    }
                    quiet_rounds = 0;
                }
            }
        }
    }
}

/// The whole visible history, page by page.
pub async fn history(ws: &mut Ws) -> Vec<ChatMessage> {
    sync_from(ws, 0).await
}

/// Every visible message after `after`, page by page.
async fn sync_from(ws: &mut Ws, mut after: i64) -> Vec<ChatMessage> {
    let mut all = Vec::new();
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

/// Completes a client's view as the page does after a reconnect: one sync
/// from its last in-order message, page by page.
pub async fn complete_view(instances: &Instances, chatter: &Chatter, outcome: &mut Outcome) {
    let mut attempt = 0;
    let (mut ws, _) = connect(instances, chatter, outcome.peer.clone(), &mut attempt).await;
    for m in sync_from(&mut ws, outcome.contiguous()).await {
        outcome.seen.insert(m.seq, m);
    }
}

/// The stored history is every client's messages exactly once, numbered
/// 1..=total without gaps, each sender's in the order sent; every
/// confirmation names the stored copy; every client's view equals it.
pub fn assert_exactly_once(stored: &[ChatMessage], outcomes: &[Outcome], per_client: usize) {
    let total = per_client * outcomes.len();
    let seqs: Vec<i64> = stored.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=total as i64).collect::<Vec<_>>());
    let keys: std::collections::HashSet<_> =
        stored.iter().map(|m| (&m.sender_id, &m.key)).collect();
    assert_eq!(keys.len(), total, "every message once");
    for outcome in outcomes {
        let prefix = format!("c{}-", outcome.id);
        let mine: Vec<usize> = stored
            .iter()
            .filter(|m| m.key.starts_with(&prefix))
            .map(|m| m.key[prefix.len()..].parse().expect("numbered key"))
            .collect();
        assert_eq!(
            mine,
            (0..per_client).collect::<Vec<_>>(),
            "client {} messages, in the order sent",
            outcome.id
        );
        assert_eq!(outcome.acks.len(), per_client);
        for m in stored.iter().filter(|m| m.key.starts_with(&prefix)) {
            assert_eq!(outcome.acks.get(&m.key), Some(&m.seq), "ack of {}", m.key);
        }
        let view: Vec<&ChatMessage> = outcome.seen.values().collect();
        assert_eq!(
            view.len(),
            total,
            "client {} history is complete",
            outcome.id
        );
        assert!(
            view.iter().zip(stored.iter()).all(|(a, b)| *a == b),
            "client {} history differs",
            outcome.id
        );
    }
}
