//! The built-in media server (SFU). In a room whose media goes through the
//! server, every call connection has one WebRTC peer connection here, on
//! which the browser publishes its microphone and camera and receives
//! everyone else's; all of them share ONE UDP socket.
//!
//! Each browser's peer connection is webrtc-rs's sans-IO `rtc` core
//! ([`peer`]): ICE-lite, so a datagram finds its peer connection by the
//! STUN username its browser's checks name and then by its address
//! ([`addresses`]). What is forwarded to whom, under which SSRC and
//! numbers, is the pure forwarding core's (`domain::media::forward`). This
//! module is the I/O around them: the socket, the clock and the signaling
//! in and out ([`engine`]), behind the `domain::media::MediaServer`
//! boundary the call sessions see.
//!
//! The engine runs on its own thread: DTLS and SRTP work never waits behind
//! the signaling tasks, and they never wait on it (commands are queued).

mod addresses;
mod audio_level;
mod datagram;
mod engine;
mod feedback_to_app;
mod peer;

use engine::Command;

use app::protocol::media_server::{media_client_id, CameraWishes};
use app::protocol::Signal;
use domain::ids::{ConnectionId, PeerId};
use domain::media::{MediaServer, MediaServerOutbox};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::sync::Mutex;
use std::thread::JoinHandle;

/// Where the media server listens and what it tells browsers.
#[derive(Debug, Clone)]
pub struct MediaServerConfig {
    /// The UDP address to bind.
    pub listen: SocketAddr,
    /// The address browsers send media to, when it is not the bound one
    /// (NAT 1:1, containers).
    pub public_ip: Option<IpAddr>,
    /// Whether `listen` was chosen by the operator: if not and its port is
    /// taken, another port is used instead of failing.
    pub listen_chosen: bool,
    /// Where the engine counts datagrams, calls and restarts.
    pub metrics: domain::metrics::Metrics,
    /// How many cameras each browser receives besides those it asks for
    /// (see `domain::media::last_n`).
    pub last_n: usize,
    /// A media connection no datagram came from for this long is dropped.
    pub silence_limit: std::time::Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum MediaServerError {
    #[error("cannot bind the media server's UDP socket on {addr}: {source} (set --sfu-udp-listen / MOIM_SFU_UDP_LISTEN)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the media server: {0}")]
    Start(std::io::Error),
}

/// The media server of this instance.
pub struct LocalMediaServer {
    commands: Mutex<mpsc::Sender<Command>>,
    advertised: SocketAddr,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl LocalMediaServer {
    /// Binds the UDP socket and starts the engine's thread.
    pub fn start(config: &MediaServerConfig) -> Result<Self, MediaServerError> {
        let socket = match UdpSocket::bind(config.listen) {
            Ok(socket) => socket,
            Err(err) if !config.listen_chosen => {
                // The default port is taken (another instance on this
                // host): any free port serves, it is advertised anyway.
                let fallback = SocketAddr::new(config.listen.ip(), 0);
                tracing::warn!(error = %err, port = config.listen.port(), "the media server's default UDP port is taken; using another");
                UdpSocket::bind(fallback).map_err(|source| MediaServerError::Bind {
                    addr: fallback,
                    source,
                })?
            }
            Err(source) => {
                return Err(MediaServerError::Bind {
                    addr: config.listen,
                    source,
                })
            }
        };
        let bound = socket.local_addr().map_err(MediaServerError::Start)?;
        let advertised = SocketAddr::new(advertised_ip(bound.ip(), config.public_ip), bound.port());
        let (commands, inbox) = mpsc::channel();
        let metrics = config.metrics.clone();
        let last_n = config.last_n;
        let silence_limit = config.silence_limit;
        let thread = std::thread::Builder::new()
            .name("moim-sfu".into())
            .spawn(move || engine::run(socket, advertised, inbox, metrics, last_n, silence_limit))
            .map_err(MediaServerError::Start)?;
        tracing::info!(%bound, %advertised, "media server listening (UDP)");
        Ok(Self {
            commands: Mutex::new(commands),
            advertised,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The address browsers send media to.
    pub fn advertised(&self) -> SocketAddr {
        self.advertised
    }

    fn send(&self, command: Command) {
        let sent = match self.commands.lock() {
            Ok(commands) => commands.send(command).is_ok(),
            Err(_) => false,
        };
        if !sent {
            tracing::warn!("the media server is not running; a media request was dropped");
        }
    }

    /// Stops the engine (every media connection closes) and waits for it.
    pub fn stop(&self) {
        self.send(Command::Stop);
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            if thread.join().is_err() {
                tracing::error!("the media server's thread panicked");
            }
        }
    }
}

impl Drop for LocalMediaServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl MediaServer for LocalMediaServer {
    fn signal(
        &self,
        room: &str,
        peer: &PeerId,
        conn: &ConnectionId,
        outbox: &MediaServerOutbox,
        signal: Signal,
    ) {
        self.send(Command::Signal {
            room: room.to_string(),
            client: media_client_id(peer),
            peer: peer.clone(),
            conn: conn.clone(),
            outbox: outbox.clone(),
            signal,
        });
    }

    fn watch(&self, room: &str, peer: &PeerId, conn: &ConnectionId, wishes: &CameraWishes) {
        self.send(Command::Watch {
            room: room.to_string(),
            client: media_client_id(peer),
            conn: conn.clone(),
            watched: wishes.peers.iter().map(media_client_id).collect(),
            heights: wishes
                .heights
                .iter()
                .map(|tile| (media_client_id(&tile.peer), tile.height))
                .collect(),
        });
    }

    fn camera(&self, room: &str, peer: &PeerId, conn: &ConnectionId, on: bool) {
        self.send(Command::Camera {
            room: room.to_string(),
            client: media_client_id(peer),
            conn: conn.clone(),
            on,
        });
    }

    fn disconnect(&self, room: &str, peer: &PeerId, conn: &ConnectionId) {
        self.send(Command::Disconnect {
            room: room.to_string(),
            client: media_client_id(peer),
            conn: conn.clone(),
        });
    }
}

/// The address to put in answers: the configured public one; else the
/// bound one; else (bound to every interface) the one this host would use
/// to reach the outside, found without sending anything (a UDP `connect`
/// only picks a route), or loopback on a host with no route at all.
fn advertised_ip(bound: IpAddr, public_ip: Option<IpAddr>) -> IpAddr {
    if let Some(ip) = public_ip {
        return ip;
    }
    if !bound.is_unspecified() {
        return bound;
    }
    let probe = UdpSocket::bind((bound, 0))
        .and_then(|socket| socket.connect(("192.0.2.1", 9)).map(|_| socket))
        .and_then(|socket| socket.local_addr());
    match probe {
        Ok(addr) if !addr.ip().is_unspecified() => addr.ip(),
        _ => IpAddr::from([127, 0, 0, 1]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_address_wins_then_the_bound_one() {
        let public: IpAddr = "203.0.113.7".parse().unwrap();
        let bound: IpAddr = "10.0.0.5".parse().unwrap();
        assert_eq!(advertised_ip(bound, Some(public)), public);
        assert_eq!(advertised_ip(bound, None), bound);
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        assert!(!advertised_ip(any, None).is_unspecified());
    }

    #[test]
    fn a_taken_default_port_falls_back_but_a_chosen_one_fails() {
        let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let fallback = LocalMediaServer::start(&MediaServerConfig {
            listen: addr,
            public_ip: None,
            listen_chosen: false,
            metrics: Default::default(),
            last_n: 25,
            silence_limit: std::time::Duration::from_secs(30),
        })
        .unwrap();
        assert_ne!(fallback.advertised().port(), addr.port());
        let refused = LocalMediaServer::start(&MediaServerConfig {
            listen: addr,
            public_ip: None,
            listen_chosen: true,
            metrics: Default::default(),
            last_n: 25,
            silence_limit: std::time::Duration::from_secs(30),
        });
        assert!(matches!(refused, Err(MediaServerError::Bind { .. })));
    }
}
