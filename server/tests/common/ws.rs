//! A signaling client for tests: a real WebSocket carrying the session
//! cookie of a test client, speaking `app::protocol`.

use super::TestApp;
use app::protocol::{ClientMessage, MediaState, ServerMessage, Signal, PROTOCOL_VERSION};
use futures_util::{SinkExt, StreamExt};
use reqwest::cookie::CookieStore;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Ws {
    socket: Socket,
}

/// How an upgrade attempt ended.
#[derive(Debug)]
pub enum Upgrade {
    Open(Box<Ws>),
    Refused(u16),
}

impl Upgrade {
    pub fn open(self) -> Ws {
        match self {
            Upgrade::Open(ws) => *ws,
            Upgrade::Refused(status) => panic!("upgrade refused with {status}"),
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            Upgrade::Open(_) => 101,
            Upgrade::Refused(status) => *status,
        }
    }
}

impl std::fmt::Debug for Ws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ws")
    }
}

/// Opens `/m/{code}/ws` with the jar's cookies and the given Origin.
pub async fn open_with(
    app: &TestApp,
    jar: &reqwest::cookie::Jar,
    code: &str,
    origin: &str,
) -> Upgrade {
    match try_connect(upgrade_request(app, jar, code, origin)).await {
        Ok(upgrade) => upgrade,
        Err(err) => panic!("WebSocket connect failed: {err}"),
    }
}

pub async fn open(app: &TestApp, jar: &reqwest::cookie::Jar, code: &str) -> Upgrade {
    open_with(app, jar, code, &app.base).await
}

/// Like `open`, but an instance that is gone is an error, not a panic
/// (fault tests connect while instances die).
pub async fn try_open(
    app: &TestApp,
    jar: &reqwest::cookie::Jar,
    code: &str,
) -> Result<Upgrade, String> {
    try_connect(upgrade_request(app, jar, code, &app.base)).await
}

fn upgrade_request(
    app: &TestApp,
    jar: &reqwest::cookie::Jar,
    code: &str,
    origin: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let url = format!("ws://{}/m/{code}/ws", app.addr);
    let mut request = url.into_client_request().expect("request");
    let page: url::Url = app.base.parse().expect("base url");
    if let Some(cookie) = jar.cookies(&page) {
        request.headers_mut().insert("cookie", cookie);
    }
    request
        .headers_mut()
        .insert("origin", origin.parse().expect("origin"));
    request
}

async fn try_connect(
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
) -> Result<Upgrade, String> {
    let connect = tokio_tungstenite::connect_async(request);
    match tokio::time::timeout(Duration::from_secs(10), connect).await {
        Err(_) => Err("no answer within 10 s".to_string()),
        Ok(Ok((socket, _))) => Ok(Upgrade::Open(Box::new(Ws { socket }))),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response))) => {
            Ok(Upgrade::Refused(response.status().as_u16()))
        }
        Ok(Err(err)) => Err(err.to_string()),
    }
}

/// What a client sees next: a message, nothing for a while, or the end of
/// its connection.
#[derive(Debug)]
pub enum Event {
    Message(ServerMessage),
    Quiet,
    Closed,
}

impl Ws {
    pub async fn send(&mut self, message: &ClientMessage) {
        let text = serde_json::to_string(message).expect("encode");
        self.send_text(&text).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket
            .send(Message::text(text.to_string()))
            .await
            .expect("send");
    }

    pub async fn join(&mut self, resume: Option<String>) -> ServerMessage {
        self.send(&join_message(resume)).await;
        let welcome = self.recv().await;
        assert!(
            matches!(welcome, ServerMessage::Welcome { .. }),
            "expected welcome, got {welcome:?}"
        );
        welcome
    }

    /// The next protocol message (pings skipped); panics after 5 s.
    pub async fn recv(&mut self) -> ServerMessage {
        match self.try_recv(Duration::from_secs(5)).await {
            Some(message) => message,
            None => panic!("no message within 5 s"),
        }
    }

    /// The next protocol message, or None if none comes within `wait` (or
    /// the connection closes).
    pub async fn try_recv(&mut self, wait: Duration) -> Option<ServerMessage> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .ok()??;
            match frame {
                Ok(Message::Text(text)) => {
                    return Some(serde_json::from_str(&text).expect("server JSON"))
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// The next protocol message, telling a quiet connection from a closed one.
    pub async fn next_event(&mut self, wait: Duration) -> Event {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => return Event::Quiet,
                Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => {
                    return Event::Closed
                }
                Ok(Some(Ok(Message::Text(text)))) => {
                    return Event::Message(serde_json::from_str(&text).expect("server JSON"))
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// Waits (up to 10 s) for a message matching `pred`, skipping others.
    pub async fn recv_until(&mut self, pred: impl Fn(&ServerMessage) -> bool) -> ServerMessage {
        self.recv_within(Duration::from_secs(10), pred).await
    }

    /// Waits up to `wait` for a message matching `pred`, skipping others.
    pub async fn recv_within(
        &mut self,
        wait: Duration,
        pred: impl Fn(&ServerMessage) -> bool,
    ) -> ServerMessage {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.try_recv(left).await {
                Some(message) if pred(&message) => return message,
                Some(_) => continue,
                None => panic!("expected message did not come"),
            }
        }
    }

    /// Sends if the connection still takes it (flood tests).
    pub async fn try_send(&mut self, message: &ClientMessage) -> bool {
        let text = serde_json::to_string(message).expect("encode");
        self.socket.send(Message::text(text)).await.is_ok()
    }

    /// Every message until the server closes, and the close code.
    pub async fn drain_until_close(&mut self) -> (Vec<ServerMessage>, u16) {
        let mut messages = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => panic!("connection not closed within 10 s"),
                Ok(None) | Ok(Some(Err(_))) => return (messages, 1006),
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return (messages, frame.map(|f| u16::from(f.code)).unwrap_or(1005))
                }
                Ok(Some(Ok(Message::Text(text)))) => {
                    messages.push(serde_json::from_str(&text).expect("server JSON"))
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// Reads until the server closes; returns the close code.
    pub async fn closed_with(&mut self) -> u16 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => panic!("connection not closed within 10 s"),
                Ok(None) => return 1006,
                Ok(Some(Err(_))) => return 1006,
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return frame.map(|f| u16::from(f.code)).unwrap_or(1005)
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// Closes politely (a browser tab closing).
    pub async fn close(mut self) {
        let _ = self
            .socket
            .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: CloseCode::Away,
                reason: "".into(),
            }))
            .await;
    }

    /// Vanishes without a close frame (network gone).
    pub fn drop_connection(self) {
        drop(self.socket);
    }
}

/// What a browser sends first: join with camera and microphone on,
/// optionally resuming a peer id.
pub fn join_message(resume: Option<String>) -> ClientMessage {
    ClientMessage::Join {
        version: PROTOCOL_VERSION,
        resume: resume.map(Into::into),
        media: MediaState {
            mic: true,
            cam: true,
            screen: false,
            hand: false,
        },
    }
}

/// A minimal offer, for relay tests (the server never reads SDP).
pub fn offer() -> Signal {
    Signal::Description {
        sdp_type: "offer".into(),
        sdp: "v=0\r\n".into(),
    }
}

/// Sends an offer from `from` (peer `from_peer`) to peer `to_peer` and
/// checks that `to` receives it, marked as coming from `from_peer`.
pub async fn expect_relayed(from: &mut Ws, from_peer: &str, to: &mut Ws, to_peer: &str) {
    from.send(&ClientMessage::Signal {
        to: to_peer.into(),
        signal: offer(),
    })
    .await;
    assert_eq!(
        to.recv_until(|m| matches!(m, ServerMessage::Signal { .. }))
            .await,
        ServerMessage::Signal {
            from: from_peer.into(),
            signal: offer()
        }
    );
}
