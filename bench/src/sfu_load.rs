//! `sfu-load`: what forwarding video costs. Two publishers each send a
//! video stream (1,100-byte RTP payloads, 100 packets a second, about
//! 0.9 Mbit/s) to S subscribers, S stepping up (`MOIM_BENCH_SFU_SUBSCRIBERS`,
//! default 4,8,16,32) until loss appears, through:
//!
//! 1. a raw UDP forwarder: one thread, no ICE, DTLS or SRTP, the same
//!    packet sizes and rates: what this machine can do at all;
//! 2. moim's media server (a release `moim`, every call through it), with
//!    headless WebRTC clients (webrtc-rs's `webrtc` crate): real ICE, DTLS
//!    and SRTP over loopback.
//!
//! Printed per system and step: packets forwarded per second, per second
//! of the forwarding process's CPU (from /proc, the server's process only),
//! added latency (send to receive, both ends in this process) p50/p99,
//! loss, and for moim the server's memory per subscriber (RSS growth over
//! the subscribers, each receiving both videos and everyone's silent
//! microphone: an upper bound for one forwarded leg). The clients run on the same machine and take CPU from
//! the server, more so for moim's (they decrypt every packet): the figures
//! are what one machine does with both sides on it.
//!
//! 3. Janus (Debian's `janus`, 1.x), the SFU people would otherwise
//!    deploy: its VideoRoom plugin over its HTTP API (see `janus.rs`), the
//!    same headless clients publishing and subscribing. Its subscribers
//!    only receive (a VideoRoom subscriber cannot send), where moim's each
//!    also publish a silent microphone: moim's memory per subscriber holds
//!    that connection's receiving side too.
//!
//! Skipped with a line saying so when `janus` is not installed
//! (`scripts/bench.sh sfu-load` installs it).

use crate::janus::Janus;
use crate::server::{cpu_of, Error, Server};
use crate::sfu_soak::{peer_connection, publish_on, Headless, Link, OnPacket, Publish};
use crate::stats::{millis, percentile};
use rtc::peer_connection::sdp::RTCSessionDescription;
use serde_json::json;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use webrtc::peer_connection::PeerConnection;

const PUBLISHERS: usize = 2;
const PACKETS_PER_SECOND: u64 = 100;
const PAYLOAD_BYTES: usize = 1_100;
/// Traffic flows this long before the measurement starts.
const SETTLE: Duration = Duration::from_secs(3);
/// How long each step is measured.
const MEASURE: Duration = Duration::from_secs(6);
/// Loss above this ends the stepping up.
const LOSS_LIMIT: f64 = 0.01;

/// One packet in this many starts a VP8 keyframe (one a second), the rest
/// are inter frames: as an encoder sends, and what an SFU that starts a
/// stream for a receiver only at a keyframe (moim's) needs to see.
const KEYFRAME_EVERY: u64 = PACKETS_PER_SECOND;
/// Where the benchmark's fields start: after a VP8 payload descriptor
/// (start of partition 0) and the first byte of the frame header (its
/// lowest bit clear on a keyframe).
const FIELDS: usize = 2;

/// The payload: VP8's descriptor and frame header byte, the publisher's
/// number, the packet's index, and when it was sent (nanoseconds since
/// this process's epoch), then padding.
fn payload(publisher: u8, index: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; PAYLOAD_BYTES];
    bytes[0] = 0x10;
    bytes[1] = if index.is_multiple_of(KEYFRAME_EVERY) {
        0x00
    } else {
        0x01
    };
    bytes[FIELDS] = publisher;
    bytes[FIELDS + 1..FIELDS + 9].copy_from_slice(&index.to_be_bytes());
    bytes[FIELDS + 9..FIELDS + 17].copy_from_slice(&now_nanos().to_be_bytes());
    bytes
}

/// Starts each publisher's video (`PACKETS_PER_SECOND` packets of
/// `payload`, publisher numbered by its place), counting every packet
/// written in `sent`; the flags stop them.
fn publish_video(
    links: impl Iterator<Item = Arc<std::sync::Mutex<Link>>>,
    sent: &Arc<AtomicU64>,
) -> Vec<Arc<AtomicBool>> {
    links
        .enumerate()
        .map(|(number, link)| {
            let sent = sent.clone();
            let index = AtomicU64::new(0);
            publish_on(
                link,
                Duration::from_micros(1_000_000 / PACKETS_PER_SECOND),
                90_000 / PACKETS_PER_SECOND as u32,
                move |_| {
                    sent.fetch_add(1, Ordering::SeqCst);
                    payload(number as u8, index.fetch_add(1, Ordering::SeqCst))
                },
            )
        })
        .collect()
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_nanos() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

/// What the subscribers received while the measurement ran.
#[derive(Default)]
struct Tally {
    measuring: AtomicBool,
    received: AtomicU64,
    latencies: Mutex<Vec<Duration>>,
}

impl Tally {
    fn record(&self, payload: &[u8]) {
        if !self.measuring.load(Ordering::Relaxed) || payload.len() < FIELDS + 17 {
            return;
        }
        let mut sent = [0u8; 8];
        sent.copy_from_slice(&payload[FIELDS + 9..FIELDS + 17]);
        let latency = Duration::from_nanos(now_nanos().saturating_sub(u64::from_be_bytes(sent)));
        self.received.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut latencies) = self.latencies.lock() {
            latencies.push(latency);
        }
    }
}

/// One step's figures.
struct Figures {
    forwarded_per_second: f64,
    per_cpu_second: f64,
    p50: Duration,
    p99: Duration,
    loss: f64,
    /// Server memory per subscriber: its connection and every track
    /// forwarded to it (both publishers' video, everyone's silent
    /// microphone), so an upper bound for one leg.
    kib_per_subscriber: Option<f64>,
}

pub async fn run(moim: &str) -> Result<(), Error> {
    let steps: Vec<usize> = std::env::var("MOIM_BENCH_SFU_SUBSCRIBERS")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![4, 8, 16, 32]);
    println!(
        "\n## sfu-load: {PUBLISHERS} publishers × S subscribers, {PACKETS_PER_SECOND} packets/s of {PAYLOAD_BYTES} bytes each\n"
    );
    println!("| system | S | forwarded packets/s | per CPU-second | added latency p50 / p99 (ms) | loss | server memory per subscriber |");
    println!("|---|---|---|---|---|---|---|");
    let mut raw_ceiling = Vec::new();
    for &subscribers in &steps {
        let figures = raw(subscribers).await?;
        print_row("raw UDP", subscribers, &figures);
        raw_ceiling.push((subscribers, figures.per_cpu_second));
        if figures.loss > LOSS_LIMIT {
            break;
        }
    }
    let mut moim_figures = Vec::new();
    for &subscribers in &steps {
        let figures = through_moim(moim, subscribers).await?;
        print_row("moim", subscribers, &figures);
        moim_figures.push((subscribers, figures.per_cpu_second));
        if figures.loss > LOSS_LIMIT {
            break;
        }
    }
    let mut janus_figures = Vec::new();
    if crate::janus::installed() {
        for &subscribers in &steps {
            let figures = through_janus(subscribers).await?;
            print_row("Janus", subscribers, &figures);
            janus_figures.push((subscribers, figures.per_cpu_second));
            if figures.loss > LOSS_LIMIT {
                break;
            }
        }
    } else {
        println!("| Janus | – | not installed (Debian package `janus`): skipped | | | | |");
    }
    println!();
    let at = |figures: &[(usize, f64)], subscribers: usize| {
        figures
            .iter()
            .find(|(s, _)| *s == subscribers)
            .map(|(_, per_cpu)| *per_cpu)
    };
    for &(subscribers, moim) in &moim_figures {
        let mut line = format!("S = {subscribers}: moim forwards");
        if let Some(raw) = at(&raw_ceiling, subscribers) {
            line += &format!(" {:.0}% of the raw forwarder's", moim / raw * 100.0);
        }
        if let Some(janus) = at(&janus_figures, subscribers) {
            line += &format!(" and {:.2}x Janus's", moim / janus);
        }
        println!("{line} packets per CPU-second.");
    }
    Ok(())
}

fn print_row(system: &str, subscribers: usize, f: &Figures) {
    println!(
        "| {system} | {subscribers} | {:.0} | {:.0} | {:.2} / {:.2} | {:.2}% | {} |",
        f.forwarded_per_second,
        f.per_cpu_second,
        millis(f.p50),
        millis(f.p99),
        f.loss * 100.0,
        f.kib_per_subscriber
            .map(|k| format!("{k:.0} KiB"))
            .unwrap_or_else(|| "–".into())
    );
}

/// Measures one step: the publishers are sending and the subscribers
/// receiving; `sent` counts what the publishers wrote. The memory figure is
/// the caller's to fill in.
async fn measure(
    pid: u32,
    tally: &Tally,
    sent: &AtomicU64,
    subscribers: usize,
) -> Result<Figures, Error> {
    tokio::time::sleep(SETTLE).await;
    let cpu_before = cpu_of(pid)?;
    let sent_before = sent.load(Ordering::SeqCst);
    tally.measuring.store(true, Ordering::SeqCst);
    let started = Instant::now();
    tokio::time::sleep(MEASURE).await;
    let sent_during = sent.load(Ordering::SeqCst) - sent_before;
    // Packets in flight at the end still count.
    tokio::time::sleep(Duration::from_millis(300)).await;
    tally.measuring.store(false, Ordering::SeqCst);
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = (cpu_of(pid)? - cpu_before).as_secs_f64();
    let received = tally.received.load(Ordering::SeqCst) as f64;
    let expected = (sent_during as usize * subscribers) as f64;
    let loss = if expected > 0.0 {
        ((expected - received) / expected).max(0.0)
    } else {
        1.0
    };
    let mut latencies = tally
        .latencies
        .lock()
        .map(|l| l.clone())
        .unwrap_or_default();
    latencies.sort();
    Ok(Figures {
        forwarded_per_second: received / elapsed,
        per_cpu_second: if cpu > 0.0 { received / cpu } else { 0.0 },
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        loss,
        kib_per_subscriber: None,
    })
}

// ---------------------------------------------------------------- raw UDP

/// The raw forwarder, run as `moim-bench raw-forwarder` (its own process,
/// so its CPU is its own): prints its port, then sends every datagram from
/// a publisher to every address that said `SUB`.
pub fn raw_forwarder() -> Result<(), Error> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    println!("{}", socket.local_addr()?.port());
    let mut subscribers: Vec<SocketAddr> = Vec::new();
    let mut buffer = [0u8; 2048];
    loop {
        let (size, from) = socket.recv_from(&mut buffer)?;
        if &buffer[..size] == b"SUB" {
            if !subscribers.contains(&from) {
                subscribers.push(from);
            }
            continue;
        }
        for to in &subscribers {
            let _ = socket.send_to(&buffer[..size], to);
        }
    }
}

/// Kills the forwarder when the step ends.
struct Forwarder(std::process::Child);

impl Drop for Forwarder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn raw(subscribers: usize) -> Result<Figures, Error> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg("raw-forwarder")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut port = String::new();
    if let Some(stdout) = child.stdout.take() {
        use std::io::BufRead;
        std::io::BufReader::new(stdout).read_line(&mut port)?;
    }
    let forwarder = Forwarder(child);
    let to: SocketAddr = format!("127.0.0.1:{}", port.trim()).parse()?;
    let tally = Arc::new(Tally::default());
    let mut tasks = Vec::new();
    for _ in 0..subscribers {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
        socket.send_to(b"SUB", to).await?;
        let tally = tally.clone();
        tasks.push(tokio::spawn(async move {
            let mut buffer = [0u8; 2048];
            while let Ok(size) = socket.recv(&mut buffer).await {
                // RTP-sized: a 12-byte header before the payload.
                if size > 12 {
                    tally.record(&buffer[12..size]);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = Arc::new(AtomicU64::new(0));
    let on = Arc::new(AtomicBool::new(true));
    for publisher in 0..PUBLISHERS {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
        let (sent, on) = (sent.clone(), on.clone());
        tasks.push(tokio::spawn(async move {
            let mut tick =
                tokio::time::interval(Duration::from_micros(1_000_000 / PACKETS_PER_SECOND));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut index = 0u64;
            while on.load(Ordering::SeqCst) {
                tick.tick().await;
                let mut datagram = vec![0x80, 96];
                datagram.extend_from_slice(&(index as u16).to_be_bytes());
                datagram.extend_from_slice(&[0u8; 8]);
                datagram.extend_from_slice(&payload(publisher as u8, index));
                if socket.send_to(&datagram, to).await.is_ok() {
                    sent.fetch_add(1, Ordering::SeqCst);
                }
                index += 1;
            }
        }));
    }
    let figures = measure(forwarder.0.id(), &tally, &sent, subscribers).await?;
    on.store(false, Ordering::SeqCst);
    for task in tasks {
        task.abort();
    }
    drop(forwarder);
    Ok(figures)
}

// ------------------------------------------------------------------- moim

async fn through_moim(moim: &str, subscribers: usize) -> Result<Figures, Error> {
    let server = Server::start_media_server(moim).await?;
    let host = server.browser()?;
    host.sign_up("loadhost").await?;
    let code = host.open_meeting("Load").await?;
    host.enter(&code).await?;

    // The publishers (the host and guests): cameras, sending once
    // everyone is in.
    let mut browsers = vec![host];
    for publisher in 1..PUBLISHERS {
        let guest = server.browser()?;
        guest.guest(&format!("Publisher {publisher}")).await?;
        guest.enter(&code).await?;
        browsers.push(guest);
    }
    let mut publishers = Vec::new();
    for (publisher, browser) in browsers.iter().enumerate() {
        let (socket, _) = browser.join_call_as(&code).await?;
        let client = Headless::connect_with(
            socket,
            0x5eed_0000 + publisher as u32,
            Publish::Camera,
            None,
        )
        .await?;
        publishers.push(client);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = server.rss_kib()?;

    let tally = Arc::new(Tally::default());
    let mut audience = Vec::new();
    for subscriber in 0..subscribers {
        let guest = server.browser()?;
        guest.guest(&format!("Viewer {subscriber}")).await?;
        guest.enter(&code).await?;
        let (socket, _) = guest.join_call_as(&code).await?;
        let tally = tally.clone();
        let on_packet: OnPacket = Arc::new(move |payload: &[u8]| tally.record(payload));
        // Subscribers publish a silent microphone, as a page with its
        // microphone muted does.
        let client = Headless::connect_with(
            socket,
            0x0a0d_0000 + subscriber as u32,
            Publish::Microphone,
            Some(on_packet),
        )
        .await?;
        audience.push(client);
    }
    let sent = Arc::new(AtomicU64::new(0));
    let flags = publish_video(publishers.iter().map(Headless::link), &sent);
    let mut figures = measure(server.pid(), &tally, &sent, subscribers).await?;
    let rss_after = server.rss_kib()?;
    figures.kib_per_subscriber =
        Some(rss_after.saturating_sub(rss_before) as f64 / subscribers as f64);
    for flag in flags {
        flag.store(false, Ordering::SeqCst);
    }
    for client in audience.into_iter().chain(publishers) {
        client.leave().await;
    }
    Ok(figures)
}

// ------------------------------------------------------------------ Janus

/// The room every Janus step creates (each step has a Janus of its own).
const JANUS_ROOM: u64 = 4242;

/// The connection's current local description once its candidates are
/// gathered (Janus's ICE is full, not lite: it wants them, where moim's
/// media server learns the client's address from its checks).
async fn description_with_candidates(pc: &Arc<dyn PeerConnection>) -> Result<String, Error> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let sdp = pc
            .local_description()
            .await
            .map(|d| d.sdp)
            .ok_or("no local description")?;
        if sdp.contains("a=candidate") || Instant::now() > deadline {
            return Ok(sdp);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn jsep_sdp(jsep: Option<serde_json::Value>, what: &str) -> Result<String, Error> {
    jsep.and_then(|jsep| jsep["sdp"].as_str().map(str::to_string))
        .ok_or_else(|| format!("Janus sent no session description with its {what}").into())
}

async fn through_janus(subscribers: usize) -> Result<Figures, Error> {
    let janus = Janus::start().await?;
    janus_step(&janus, subscribers)
        .await
        .map_err(|err| format!("{err}\nJanus's log ends:\n{}", janus.log_tail()).into())
}

async fn janus_step(janus: &Janus, subscribers: usize) -> Result<Figures, Error> {
    let admin = janus.videoroom().await?;
    admin
        .request(json!({
            "request": "create",
            "room": JANUS_ROOM,
            "publishers": PUBLISHERS,
            "videocodec": "vp8",
            "audiocodec": "opus",
            "bitrate": 0,
            "notify_joining": false,
        }))
        .await?;
    let received = Arc::new(tokio::sync::Notify::new());

    let mut publishers = Vec::new();
    let mut feeds = Vec::new();
    for publisher in 0..PUBLISHERS {
        let handle = janus.videoroom().await?;
        let (link, _) = Link::open(
            janus.ip(),
            0x5eed_0000 + publisher as u32,
            Publish::Camera,
            &received,
            &None,
        )
        .await?;
        let offer = description_with_candidates(&link.pc).await?;
        let joined = handle
            .message(
                json!({
                    "request": "joinandconfigure",
                    "ptype": "publisher",
                    "room": JANUS_ROOM,
                    "display": format!("Publisher {publisher}"),
                }),
                Some(json!({ "type": "offer", "sdp": offer })),
            )
            .await?;
        let answer = jsep_sdp(joined.jsep, "answer")?;
        link.pc
            .set_remote_description(RTCSessionDescription::answer(answer)?)
            .await?;
        handle.end_of_candidates().await?;
        feeds.push(
            joined.data["id"]
                .as_u64()
                .ok_or("Janus gave the publisher no feed id")?,
        );
        publishers.push((handle, Arc::new(std::sync::Mutex::new(link))));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = janus.rss_kib()?;

    let tally = Arc::new(Tally::default());
    let mut audience = Vec::new();
    let streams: Vec<serde_json::Value> =
        feeds.iter().map(|feed| json!({ "feed": feed })).collect();
    for _ in 0..subscribers {
        let handle = janus.videoroom().await?;
        let tally = tally.clone();
        let on_packet: OnPacket = Arc::new(move |payload: &[u8]| tally.record(payload));
        let pc = peer_connection(janus.ip(), &received, &Some(on_packet)).await?;
        // A publisher is a feed only once its connection is up (ICE and
        // DTLS done): until then Janus answers "no such feed".
        let connecting_until = Instant::now() + Duration::from_secs(10);
        let attached = loop {
            let join = json!({
                "request": "join",
                "ptype": "subscriber",
                "room": JANUS_ROOM,
                "streams": streams,
            });
            match handle.message(join, None).await {
                Ok(attached) => break attached,
                Err(err)
                    if err.to_string().contains("No such feed")
                        && Instant::now() < connecting_until =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(err) => return Err(err),
            }
        };
        let offer = jsep_sdp(attached.jsep, "subscription")?;
        pc.set_remote_description(RTCSessionDescription::offer(offer)?)
            .await?;
        let answer = pc.create_answer(None).await?;
        pc.set_local_description(answer).await?;
        let answer = description_with_candidates(&pc).await?;
        handle
            .message(
                json!({ "request": "start" }),
                Some(json!({ "type": "answer", "sdp": answer })),
            )
            .await?;
        handle.end_of_candidates().await?;
        audience.push((handle, pc));
    }

    let sent = Arc::new(AtomicU64::new(0));
    let flags = publish_video(publishers.iter().map(|(_, link)| link.clone()), &sent);
    let mut figures = measure(janus.pid(), &tally, &sent, subscribers).await?;
    let rss_after = janus.rss_kib()?;
    figures.kib_per_subscriber =
        Some(rss_after.saturating_sub(rss_before) as f64 / subscribers as f64);
    for flag in flags {
        flag.store(false, Ordering::SeqCst);
    }
    for (handle, pc) in audience {
        let _ = pc.close().await;
        handle.destroy().await;
    }
    for (handle, link) in publishers {
        let pc = link.lock().ok().map(|link| link.pc.clone());
        if let Some(pc) = pc {
            let _ = pc.close().await;
        }
        handle.destroy().await;
    }
    admin.destroy().await;
    Ok(figures)
}
