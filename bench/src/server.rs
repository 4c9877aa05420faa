//! A `moim` process for one benchmark, and the browser-like steps to get
//! people into a call.

use futures_util::{SinkExt, StreamExt};
use protocol::{ClientMessage, MediaState, ServerMessage, PROTOCOL_VERSION};
use reqwest::cookie::CookieStore;
use reqwest::header::{HeaderMap, HeaderValue, ORIGIN};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Server {
    child: Child,
    pub base: String,
    data_dir: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

fn free_port() -> Result<u16, Error> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

impl Server {
    /// Starts `moim` with limits lifted for load (sockets per address,
    /// guests per hour, room size) and waits until it is ready.
    pub async fn start(moim: &str) -> Result<Self, Error> {
        Self::start_with(moim, &[]).await
    }

    /// The same, with extra environment (`DATABASE_URL`, flags as `MOIM_*`).
    pub async fn start_with(moim: &str, env: &[(&str, &str)]) -> Result<Self, Error> {
        // Signaling only: no room moves to the media server.
        Self::start_media(moim, env, "mesh").await
    }

    /// Every call through the media server, on a free UDP port.
    pub async fn start_media_server(moim: &str) -> Result<Self, Error> {
        Self::start_media(moim, &[("MOIM_SFU_UDP_LISTEN", "127.0.0.1:0")], "sfu").await
    }

    async fn start_media(
        moim: &str,
        env: &[(&str, &str)],
        media_mode: &str,
    ) -> Result<Self, Error> {
        let port = free_port()?;
        let base = format!("http://127.0.0.1:{port}");
        let data_dir =
            std::env::temp_dir().join(format!("moim-bench-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&data_dir)?;
        let child = Command::new(moim)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--public-url", &base])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--mesh-max-participants", "50"])
            .args(["--media-mode", media_mode])
            .args(["--max-sockets-per-address", "100000"])
            .args(["--guests-per-hour", "1000000"])
            .args([
                "--log",
                &std::env::var("MOIM_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
            ])
            .env("LEPTOS_SITE_ROOT", &data_dir)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            // Its log only when asked for (MOIM_BENCH_LOG, a log filter).
            .stdout(if std::env::var_os("MOIM_BENCH_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {moim}: {e} (build it with scripts/bench.sh)"))?;
        let server = Self {
            child,
            base,
            data_dir,
        };
        let probe = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(response) = probe.get(format!("{}/readyz", server.base)).send().await {
                if response.status().is_success() {
                    return Ok(server);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err("moim did not become ready in 10 s".into())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's resident memory now, in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> Result<u64, Error> {
        rss_kib_of(self.pid())
    }

    /// A browser: a client with its own cookie jar, sending our Origin.
    pub fn browser(&self) -> Result<Browser, Error> {
        self.browser_keeping_connections(true)
    }

    /// A browser that closes each HTTP connection after its request, so
    /// that none stays open on the server beside its call socket (a real
    /// browser's close when the server's idle timeout ends them, 10 s
    /// later; `connections` measures the sockets alone).
    pub fn browser_closing_connections(&self) -> Result<Browser, Error> {
        self.browser_keeping_connections(false)
    }

    fn browser_keeping_connections(&self, keep_alive: bool) -> Result<Browser, Error> {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let mut headers = HeaderMap::new();
        headers.insert(ORIGIN, HeaderValue::from_str(&self.base)?);
        let mut client = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none());
        if !keep_alive {
            client = client.pool_max_idle_per_host(0);
        }
        let client = client.build()?;
        Ok(Browser {
            client,
            jar,
            base: self.base.clone(),
        })
    }
}

pub struct Browser {
    client: reqwest::Client,
    jar: Arc<reqwest::cookie::Jar>,
    base: String,
}

impl Browser {
    /// Calls a server function with form fields; the answer's JSON.
    pub async fn call(
        &self,
        function: &str,
        fields: &[(&str, &str)],
    ) -> Result<serde_json::Value, Error> {
        let response = self
            .client
            .post(format!("{}/api/{function}", self.base))
            .form(fields)
            .send()
            .await?;
        let status = response.status();
        let body = response.text().await?;
        if !status.is_success() {
            return Err(format!("{function}: {status} {body}").into());
        }
        Ok(serde_json::from_str(&body).unwrap_or(serde_json::Value::Null))
    }

    pub async fn sign_up(&self, name: &str) -> Result<(), Error> {
        self.call(
            "sign_up",
            &[
                ("username", name),
                ("display_name", name),
                ("email", ""),
                ("password", "correct horse battery"),
            ],
        )
        .await
        .map(drop)
    }

    /// An instant meeting anyone with the link enters at once (no waiting
    /// room, guests allowed), for up to 50 people; its code.
    pub async fn open_meeting(&self, title: &str) -> Result<String, Error> {
        let code = self
            .call(
                "schedule_meeting",
                &[
                    ("title", title),
                    ("instant", "1"),
                    ("allow_guests", "on"),
                    ("max_participants", "50"),
                ],
            )
            .await?;
        code.as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("schedule_meeting answered {code}").into())
    }

    pub async fn guest(&self, name: &str) -> Result<(), Error> {
        self.call(
            "continue_as_guest",
            &[("display_name", name), ("next", "/")],
        )
        .await
        .map(drop)
    }

    pub async fn enter(&self, code: &str) -> Result<(), Error> {
        let admission = self
            .call("enter_meeting", &[("code", code), ("display_name", "")])
            .await?;
        if admission != "Admitted" {
            return Err(format!("enter_meeting answered {admission}").into());
        }
        Ok(())
    }

    /// Opens the call's socket and joins; returns it after the welcome.
    pub async fn join_call(&self, code: &str) -> Result<Socket, Error> {
        Ok(self.join_call_as(code).await?.0)
    }

    /// The same, with the peer id the welcome gave.
    pub async fn join_call_as(&self, code: &str) -> Result<(Socket, String), Error> {
        let ws_url = format!("{}/m/{code}/ws", self.base.replacen("http", "ws", 1));
        let mut request = ws_url.as_str().into_client_request()?;
        let http_url: reqwest::Url = format!("{}/m/{code}", self.base).parse()?;
        if let Some(cookies) = self.jar.cookies(&http_url) {
            request.headers_mut().insert("cookie", cookies);
        }
        request
            .headers_mut()
            .insert("origin", HeaderValue::from_str(&self.base)?);
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
        let join = ClientMessage::Join {
            version: PROTOCOL_VERSION,
            resume: None,
            media: MediaState::default(),
        };
        socket
            .send(Message::text(serde_json::to_string(&join)?))
            .await?;
        while let Some(frame) = socket.next().await {
            if let Message::Text(text) = frame? {
                if let Ok(ServerMessage::Welcome { you, .. }) = serde_json::from_str(&text) {
                    return Ok((socket, you.peer_id.into_string()));
                }
            }
        }
        Err("the socket closed before the welcome".into())
    }
}

/// A process's resident memory now, in KiB (`VmRSS`).
pub fn rss_kib_of(pid: u32) -> Result<u64, Error> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .ok_or_else(|| "no VmRSS in /proc status".into())
}

/// CPU time (user + system) a process has used, from `/proc/PID/stat`.
pub fn cpu_of(pid: u32) -> Result<Duration, Error> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which is in parentheses and may hold
    // spaces): utime and stime are the 12th and 13th.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or("odd /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11).ok_or("no utime")?.parse::<u64>()?
        + fields.get(12).ok_or("no stime")?.parse::<u64>()?;
    // Linux reports in USER_HZ, 100 on every architecture it runs on here.
    Ok(Duration::from_millis(ticks * 10))
}
