//! Chat: messages stored and delivered per second, and how long the sender
//! waits for its acknowledgement, on SQLite and on PostgreSQL.
//!
//! 20 rooms of 5 guests; every guest sends, closed loop, at most 40 messages
//! a second (below the signaling socket's own rate limit, 50/s, so that
//! what is measured is storing and delivering, not refusals): the next
//! message goes when the last one is acknowledged and 25 ms have passed.
//! Everyone in a room receives every message of the room (the sender too).

use crate::server::{Error, Server, Socket};
use crate::stats::{millis, percentile};
use futures_util::{SinkExt, StreamExt};
use protocol::{ClientMessage, ServerMessage};
use std::process::Command;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const ROOMS: usize = 20;
const PER_ROOM: usize = 5;
const PACE: Duration = Duration::from_millis(25);
const RUN: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Tally {
    acked: u64,
    delivered: u64,
    refused: u64,
    latencies: Vec<Duration>,
}

struct Figure {
    backend: &'static str,
    tally: Tally,
    elapsed: Duration,
}

pub async fn run(moim: &str) -> Result<(), Error> {
    let mut figures = Vec::new();
    eprintln!("chat: SQLite…");
    figures.push(measure(moim, "SQLite", None).await?);
    let admin = std::env::var("MOIM_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
    eprintln!("chat: PostgreSQL ({admin})…");
    let database = Database::create(&admin)?;
    figures.push(measure(moim, "PostgreSQL", Some(&database.url)).await?);
    println!();
    println!(
        "Chat: {ROOMS} rooms of {PER_ROOM}, each person sending at most {}/s, {} s",
        1000 / PACE.as_millis(),
        RUN.as_secs()
    );
    println!(
        "{:<12} {:>12} {:>15} {:>10} {:>10} {:>8} {:>8}",
        "database", "stored/s", "delivered/s", "ack p50", "ack p99", "loss", "refused"
    );
    for f in &mut figures {
        let seconds = f.elapsed.as_secs_f64();
        f.tally.latencies.sort();
        let expected = f.tally.acked * PER_ROOM as u64;
        let loss = 1.0 - f.tally.delivered as f64 / expected.max(1) as f64;
        println!(
            "{:<12} {:>12.0} {:>15.0} {:>7.1} ms {:>7.1} ms {:>7.2}% {:>8}",
            f.backend,
            f.tally.acked as f64 / seconds,
            f.tally.delivered as f64 / seconds,
            millis(percentile(&f.tally.latencies, 0.50)),
            millis(percentile(&f.tally.latencies, 0.99)),
            loss.max(0.0) * 100.0,
            f.tally.refused,
        );
    }
    Ok(())
}

async fn measure(
    moim: &str,
    backend: &'static str,
    database_url: Option<&str>,
) -> Result<Figure, Error> {
    let mut env = vec![("MOIM_CHAT_MESSAGES_PER_MINUTE", "100000000")];
    if let Some(url) = database_url {
        env.push(("DATABASE_URL", url));
    }
    let server = Server::start_with(moim, &env).await?;
    let host = server.browser()?;
    host.sign_up("benchhost").await?;
    let mut sockets = Vec::new();
    for room in 0..ROOMS {
        let code = host.open_meeting(&format!("Chat room {room}")).await?;
        for person in 0..PER_ROOM {
            let guest = server.browser()?;
            guest.guest(&format!("Guest {room}-{person}")).await?;
            guest.enter(&code).await?;
            sockets.push(guest.join_call(&code).await?);
        }
    }
    let started = Instant::now();
    let deadline = started + RUN;
    let tasks: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(i, socket)| tokio::spawn(chatter(i, socket, deadline)))
        .collect();
    let mut tally = Tally::default();
    for task in tasks {
        let one = task.await??;
        tally.acked += one.acked;
        tally.delivered += one.delivered;
        tally.refused += one.refused;
        tally.latencies.extend(one.latencies);
    }
    Ok(Figure {
        backend,
        tally,
        elapsed: RUN,
    })
}

/// One person: sends until the deadline, counts what arrives, and keeps
/// reading a moment after to collect the last deliveries.
async fn chatter(me: usize, mut socket: Socket, deadline: Instant) -> Result<Tally, Error> {
    let mut tally = Tally::default();
    let mut sent = 0u64;
    let mut pending: Option<(String, Instant)> = None;
    let mut next_at = Instant::now();
    let drain_until = deadline + Duration::from_secs(2);
    loop {
        let now = Instant::now();
        if pending.is_none() && now < deadline && now >= next_at {
            let key = format!("b{me}-{sent}");
            let message = ClientMessage::ChatSend {
                key: key.clone(),
                text: format!("message {sent} from {me}"),
                to: None,
            };
            socket
                .send(Message::text(serde_json::to_string(&message)?))
                .await?;
            sent += 1;
            pending = Some((key, now));
            next_at = now + PACE;
        }
        let wake = if pending.is_none() && now < deadline {
            next_at.min(deadline)
        } else {
            drain_until
        };
        if now >= drain_until {
            break;
        }
        let frame = tokio::time::timeout_at(wake.into(), socket.next()).await;
        let Ok(frame) = frame else {
            continue;
        };
        let Some(frame) = frame else {
            return Err("the server closed a chat socket".into());
        };
        let Message::Text(text) = frame? else {
            continue;
        };
        match serde_json::from_str::<ServerMessage>(&text) {
            Ok(ServerMessage::ChatAck { key, .. }) => {
                if let Some((waiting, since)) = &pending {
                    if *waiting == key {
                        tally.latencies.push(since.elapsed());
                        tally.acked += 1;
                        pending = None;
                    }
                }
            }
            Ok(ServerMessage::Chat { .. }) => tally.delivered += 1,
            Ok(ServerMessage::Error { .. }) => {
                tally.refused += 1;
                pending = None;
            }
            _ => {}
        }
    }
    Ok(tally)
}

/// A fresh PostgreSQL database for one run, dropped afterwards (also for
/// the fan-out across instances).
pub(crate) struct Database {
    admin: String,
    name: String,
    pub(crate) url: String,
}

impl Database {
    pub(crate) fn create(admin: &str) -> Result<Self, Error> {
        static CREATED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let nth = CREATED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("moim_bench_{}_{nth}", std::process::id());
        psql(admin, &format!("DROP DATABASE IF EXISTS {name}"))?;
        psql(admin, &format!("CREATE DATABASE {name}"))?;
        let base = admin
            .rsplit_once('/')
            .map(|(base, _)| base)
            .ok_or("MOIM_BENCH_POSTGRES_URL has no database part")?;
        Ok(Self {
            admin: admin.to_string(),
            url: format!("{base}/{name}"),
            name,
        })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = psql(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

fn psql(url: &str, sql: &str) -> Result<(), Error> {
    let status = Command::new("psql")
        .args([url, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env("PGOPTIONS", "--client-min-messages=warning")
        .status()
        .map_err(|e| format!("psql: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("psql failed: {sql}").into())
    }
}
