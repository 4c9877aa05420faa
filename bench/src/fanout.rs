//! Signaling fan-out, moim against a plain Socket.IO 4.8 server.
//!
//! K people in one room (10, 25, 50), each toggling its microphone R times
//! a second; every other person receives each toggle (moim: `media` in,
//! `peer_updated` out, stored in presence on the way; Socket.IO:
//! `socket.to(room).emit`, nothing stored). The same load generator drives
//! both: moim through its protocol, Socket.IO through its own wire format
//! (Engine.IO 4 over a WebSocket), both with tungstenite.
//!
//! Printed per system and room size: toggles sent and deliveries per
//! second, deliveries per CPU-second of the server process alone (from
//! /proc), delivery latency p50/p99 (time from a sender's toggle to its
//! arrival at each receiver), and loss. R is fixed (below what either
//! saturates on two cores at these sizes), so the latency is that of an
//! unsaturated server, not of a saturating-load search.
//!
//! Then moim as two instances sharing PostgreSQL and Redis
//! (`MOIM_BENCH_POSTGRES_URL`, an admin URL, and `MOIM_BENCH_REDIS_URL`,
//! default the local servers), the room's people split between them: every
//! toggle crosses Redis to the other half. Its CPU is both instances'.

use crate::server::{cpu_of, Error, Server, Socket};
use crate::stats::{millis, percentile};
use futures_util::{SinkExt, StreamExt};
use protocol::{ClientMessage, MediaState, ServerMessage};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const SIZES: [usize; 3] = [10, 25, 50];
const RATE_PER_SECOND: u64 = 20;
const RUN: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, PartialEq, Eq)]
enum System {
    Moim,
    /// Two instances, half the room on each, fanned out through Redis.
    MoimRedis,
    SocketIo,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Moim => "moim",
            System::MoimRedis => "moim x2 Redis",
            System::SocketIo => "Socket.IO 4.8",
        }
    }

    fn toggle(self, mic: bool) -> Result<String, Error> {
        let media = MediaState {
            mic,
            cam: false,
            screen: false,
            hand: false,
        };
        Ok(match self {
            System::Moim | System::MoimRedis => {
                serde_json::to_string(&ClientMessage::Media { media })?
            }
            System::SocketIo => format!("42{}", serde_json::to_string(&("media", media))?),
        })
    }

    /// Whose toggle a frame carries, if it is one.
    fn delivery(self, text: &str) -> Option<String> {
        match self {
            System::Moim | System::MoimRedis => match serde_json::from_str::<ServerMessage>(text) {
                Ok(ServerMessage::PeerUpdated { peer }) => Some(peer.peer_id.into_string()),
                _ => None,
            },
            System::SocketIo => {
                let payload = text.strip_prefix("42")?;
                let (event, body): (String, serde_json::Value) =
                    serde_json::from_str(payload).ok()?;
                (event == "peer_updated")
                    .then(|| body["peer"]["peer_id"].as_str().map(str::to_string))
                    .flatten()
            }
        }
    }
}

struct Figure {
    system: System,
    size: usize,
    sent: u64,
    delivered: u64,
    cpu: Duration,
    latencies: Vec<Duration>,
}

type LastSent = Arc<Mutex<HashMap<String, Instant>>>;

pub async fn run(moim: &str) -> Result<(), Error> {
    let mut figures = Vec::new();
    // The shared database two instances need; without it (no psql, no
    // server) the Redis rows are left out and the reason printed.
    let admin = std::env::var("MOIM_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
    let redis = std::env::var("MOIM_BENCH_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string());
    let database = crate::chat::Database::create(&admin);
    for size in SIZES {
        eprintln!("fanout: moim, {size} in a room…");
        figures.push(measure_moim(moim, size).await?);
        eprintln!("fanout: Socket.IO, {size} in a room…");
        figures.push(measure_socketio(size).await?);
        match &database {
            Ok(database) => {
                eprintln!("fanout: two moim instances through Redis ({redis}), {size} in a room…");
                match measure_moim_redis(moim, size, &database.url, &redis).await {
                    Ok(figure) => figures.push(figure),
                    Err(err) => eprintln!("fanout: moim x2 Redis left out: {err}"),
                }
            }
            Err(err) => eprintln!("fanout: moim x2 Redis left out (no database at {admin}): {err}"),
        }
    }
    println!();
    println!(
        "Signaling fan-out: one room, everyone toggling {RATE_PER_SECOND}/s, {} s (server CPU only)",
        RUN.as_secs()
    );
    println!(
        "{:<14} {:>5} {:>9} {:>13} {:>9} {:>14} {:>9} {:>9} {:>7}",
        "system", "room", "sent/s", "delivered/s", "CPU s", "deliv./CPU-s", "p50", "p99", "loss"
    );
    let mut per_cpu = HashMap::new();
    for f in &mut figures {
        f.latencies.sort();
        let seconds = RUN.as_secs_f64();
        let expected = f.sent * (f.size as u64 - 1);
        let loss = 1.0 - f.delivered as f64 / expected.max(1) as f64;
        let efficiency = f.delivered as f64 / f.cpu.as_secs_f64().max(0.01);
        per_cpu.insert((f.system.name(), f.size), efficiency);
        println!(
            "{:<14} {:>5} {:>9.0} {:>13.0} {:>9.2} {:>14.0} {:>6.1} ms {:>6.1} ms {:>6.2}%",
            f.system.name(),
            f.size,
            f.sent as f64 / seconds,
            f.delivered as f64 / seconds,
            f.cpu.as_secs_f64(),
            efficiency,
            millis(percentile(&f.latencies, 0.50)),
            millis(percentile(&f.latencies, 0.99)),
            loss.max(0.0) * 100.0,
        );
    }
    for size in SIZES {
        if let (Some(m), Some(s)) = (
            per_cpu.get(&("moim", size)),
            per_cpu.get(&("Socket.IO 4.8", size)),
        ) {
            println!(
                "room of {size}: moim delivers {:.2}x Socket.IO's deliveries per CPU-second (goal 5x)",
                m / s
            );
        }
        if let (Some(m), Some(r)) = (
            per_cpu.get(&("moim", size)),
            per_cpu.get(&("moim x2 Redis", size)),
        ) {
            println!(
                "room of {size}: two instances through Redis deliver {:.0}% of one instance's deliveries per CPU-second (goal >= 50%)",
                r / m * 100.0
            );
        }
    }
    Ok(())
}

async fn measure_moim(moim: &str, size: usize) -> Result<Figure, Error> {
    let server = Server::start(moim).await?;
    let host = server.browser()?;
    host.sign_up("benchhost").await?;
    let code = host.open_meeting("Fan-out").await?;
    let mut people = Vec::new();
    for i in 0..size {
        let guest = server.browser()?;
        guest.guest(&format!("Guest {i}")).await?;
        guest.enter(&code).await?;
        people.push(guest.join_call_as(&code).await?);
    }
    drive(System::Moim, people, &[server.pid()]).await
}

async fn measure_moim_redis(
    moim: &str,
    size: usize,
    database_url: &str,
    redis_url: &str,
) -> Result<Figure, Error> {
    let env = [("DATABASE_URL", database_url), ("REDIS_URL", redis_url)];
    let first = Server::start_with(moim, &env).await?;
    let second = Server::start_with(moim, &env).await?;
    let host = first.browser()?;
    // One database for every room size: a new host each time.
    host.sign_up(&format!("benchhost{size}")).await?;
    let code = host.open_meeting("Fan-out across instances").await?;
    let mut people = Vec::new();
    for i in 0..size {
        let server = if i % 2 == 0 { &first } else { &second };
        let guest = server.browser()?;
        guest.guest(&format!("Guest {i}")).await?;
        guest.enter(&code).await?;
        people.push(guest.join_call_as(&code).await?);
    }
    drive(System::MoimRedis, people, &[first.pid(), second.pid()]).await
}

async fn measure_socketio(size: usize) -> Result<Figure, Error> {
    let node = SocketIo::start().await?;
    let mut people = Vec::new();
    for _ in 0..size {
        people.push(node.connect().await?);
    }
    drive(System::SocketIo, people, &[node.child.id()]).await
}

/// Runs the load on connected people and measures the server processes
/// `pids` (their CPU summed).
async fn drive(
    system: System,
    people: Vec<(Socket, String)>,
    pids: &[u32],
) -> Result<Figure, Error> {
    let cpu_of_all = || -> Result<Duration, Error> { pids.iter().map(|pid| cpu_of(*pid)).sum() };
    let size = people.len();
    let last_sent: LastSent = Arc::default();
    // Let the joins' own messages pass before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu_before = cpu_of_all()?;
    let start = Instant::now() + Duration::from_millis(100);
    let tasks: Vec<_> = people
        .into_iter()
        .enumerate()
        .map(|(i, (socket, peer))| {
            // Senders start spread over one interval, not all at once.
            let offset =
                Duration::from_micros(1_000_000 / RATE_PER_SECOND * i as u64 / size as u64);
            tokio::spawn(person(
                system,
                socket,
                peer,
                start + offset,
                last_sent.clone(),
            ))
        })
        .collect();
    let mut figure = Figure {
        system,
        size,
        sent: 0,
        delivered: 0,
        cpu: Duration::ZERO,
        latencies: Vec::new(),
    };
    for task in tasks {
        let (sent, delivered, latencies) = task.await??;
        figure.sent += sent;
        figure.delivered += delivered;
        figure.latencies.extend(latencies);
    }
    figure.cpu = cpu_of_all()?.saturating_sub(cpu_before);
    Ok(figure)
}

async fn person(
    system: System,
    mut socket: Socket,
    me: String,
    first: Instant,
    last_sent: LastSent,
) -> Result<(u64, u64, Vec<Duration>), Error> {
    let interval = Duration::from_micros(1_000_000 / RATE_PER_SECOND);
    let stop = first + RUN;
    let drain_until = stop + Duration::from_secs(1);
    let mut next = first;
    let (mut sent, mut delivered, mut latencies) = (0u64, 0u64, Vec::new());
    loop {
        let now = Instant::now();
        if now >= drain_until {
            break;
        }
        if now >= next && now < stop {
            last_sent
                .lock()
                .map_err(|_| "poisoned")?
                .insert(me.clone(), Instant::now());
            socket
                .send(Message::text(system.toggle(sent % 2 == 0)?))
                .await?;
            sent += 1;
            next += interval;
            continue;
        }
        let wake = if now < stop { next } else { drain_until };
        let Ok(frame) = tokio::time::timeout_at(wake.into(), socket.next()).await else {
            continue;
        };
        let Some(frame) = frame else {
            return Err(format!("{} closed a socket", system.name()).into());
        };
        let Message::Text(text) = frame? else {
            continue;
        };
        if system == System::SocketIo && text.as_str() == "2" {
            socket.send(Message::text("3")).await?;
            continue;
        }
        if let Some(from) = system.delivery(&text) {
            delivered += 1;
            if let Some(at) = last_sent.lock().map_err(|_| "poisoned")?.get(&from) {
                latencies.push(at.elapsed());
            }
        }
    }
    Ok((sent, delivered, latencies))
}

/// The Socket.IO server (`bench/socketio/server.js`, Node).
struct SocketIo {
    child: Child,
    port: u16,
}

impl Drop for SocketIo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SocketIo {
    async fn start() -> Result<Self, Error> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/socketio/server.js");
        let mut child = Command::new("node")
            .arg(script)
            .arg(port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start node {script}: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let node = Self { child, port };
        // The first line says it listens (read off the async threads).
        let first_line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
                .map(|_| line)
        });
        match tokio::time::timeout(Duration::from_secs(10), first_line).await {
            Ok(Ok(Ok(line))) if line.starts_with("ready") => Ok(node),
            _ => Err("the Socket.IO server did not start (run npm ci in bench/socketio)".into()),
        }
    }

    /// A Socket.IO client over a bare WebSocket: Engine.IO's open packet,
    /// then a connect to the default namespace; returns the socket id.
    async fn connect(&self) -> Result<(Socket, String), Error> {
        let url = format!(
            "ws://127.0.0.1:{}/socket.io/?EIO=4&transport=websocket&room=bench",
            self.port
        );
        let (mut socket, _) = tokio_tungstenite::connect_async(url).await?;
        socket.send(Message::text("40")).await?;
        while let Some(frame) = socket.next().await {
            if let Message::Text(text) = frame? {
                if let Some(body) = text.strip_prefix("40") {
                    let connected: serde_json::Value = serde_json::from_str(body)?;
                    let sid = connected["sid"].as_str().ok_or("no sid")?.to_string();
                    return Ok((socket, sid));
                }
            }
        }
        Err("Socket.IO closed before connecting".into())
    }
}
