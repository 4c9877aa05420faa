//! Janus (1.x, Debian's `janus` package), the SFU people would otherwise
//! deploy, as the third system of `sfu-load`: its VideoRoom plugin, driven
//! over its plain HTTP API (sessions, handles, long-polled events) by the
//! same headless WebRTC clients as moim's media server.
//!
//! Each run starts its own Janus on free ports with a configuration written
//! to a temporary directory: only the VideoRoom plugin and the HTTP
//! transport loaded, no session timeout during a step, logs in the
//! directory. Janus (libnice) gathers no candidates on loopback, so its ICE
//! is held to the machine's own outbound address and the clients bind to
//! that address too: packets still never leave the machine (the kernel
//! delivers them locally, as it does loopback's).

use crate::server::Error;
use serde_json::{json, Value};
use std::net::{IpAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where Debian (and a source install) put Janus's plugins.
const LIBRARY_DIRS: [&str; 4] = [
    "/usr/lib/x86_64-linux-gnu/janus",
    "/usr/lib/aarch64-linux-gnu/janus",
    "/usr/lib/janus",
    "/usr/local/lib/janus",
];

/// Plugins and transports Janus would otherwise load (and a few of them
/// would want configuration or ports of their own).
const OTHER_PLUGINS: &str = "libjanus_audiobridge.so,libjanus_duktape.so,libjanus_echotest.so,\
libjanus_lua.so,libjanus_nosip.so,libjanus_recordplay.so,libjanus_sip.so,libjanus_streaming.so,\
libjanus_textroom.so,libjanus_videocall.so,libjanus_voicemail.so";
const OTHER_TRANSPORTS: &str = "libjanus_mqtt.so,libjanus_nanomsg.so,libjanus_pfunix.so,\
libjanus_rabbitmq.so,libjanus_websockets.so";
const EVENT_HANDLERS: &str = "libjanus_gelfevh.so,libjanus_mqttevh.so,libjanus_nanomsgevh.so,\
libjanus_rabbitmqevh.so,libjanus_sampleevh.so,libjanus_wsevh.so";

/// A running Janus, killed (and its directory removed) when dropped.
pub(crate) struct Janus {
    child: Child,
    dir: PathBuf,
    api: Arc<Api>,
    ip: IpAddr,
}

impl Drop for Janus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether a `janus` binary is on the PATH (`--help`: 1.x has no
/// `--version`, and its `-V` exits with 1).
pub(crate) fn installed() -> bool {
    Command::new("janus")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn library_dir() -> Result<&'static str, Error> {
    LIBRARY_DIRS
        .into_iter()
        .find(|dir| {
            Path::new(dir)
                .join("plugins/libjanus_videoroom.so")
                .exists()
        })
        .ok_or_else(|| "Janus's VideoRoom plugin was not found (Debian package janus)".into())
}

/// The address this machine would send from to the outside (no packet is
/// sent: connecting a UDP socket only picks the route).
fn outbound_ip() -> Result<IpAddr, Error> {
    let socket = UdpSocket::bind("0.0.0.0:0")?;
    socket
        .connect("198.51.100.1:9")
        .map_err(|err| format!("no route for Janus's ICE (it skips loopback): {err}"))?;
    let ip = socket.local_addr()?.ip();
    if ip.is_loopback() || ip.is_unspecified() {
        return Err("this machine has no address but loopback, which Janus's ICE skips".into());
    }
    Ok(ip)
}

fn free_tcp_port() -> Result<u16, Error> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Janus {
    pub(crate) async fn start() -> Result<Self, Error> {
        let lib = library_dir()?;
        let ip = outbound_ip()?;
        static RUNS: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "moim-bench-janus-{}-{}",
            std::process::id(),
            RUNS.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir)?;
        let port = free_tcp_port()?;
        std::fs::write(
            dir.join("janus.jcfg"),
            format!(
                r#"general: {{
	configs_folder = "{dir}"
	plugins_folder = "{lib}/plugins"
	transports_folder = "{lib}/transports"
	events_folder = "{lib}/events"
	loggers_folder = "{lib}/loggers"
	debug_level = 3
	session_timeout = 0
}}
plugins: {{
	disable = "{OTHER_PLUGINS}"
}}
transports: {{
	disable = "{OTHER_TRANSPORTS}"
}}
events: {{
	broadcast = false
	disable = "{EVENT_HANDLERS}"
}}
loggers: {{
	disable = "libjanus_jsonlog.so"
}}
nat: {{
	ice_enforce_list = "{ip}"
}}
"#,
                dir = dir.display()
            ),
        )?;
        std::fs::write(
            dir.join("janus.transport.http.jcfg"),
            format!(
                r#"general: {{
	json = "compact"
	base_path = "/janus"
	http = true
	ip = "127.0.0.1"
	port = {port}
	https = false
}}
admin: {{
	admin_http = false
}}
"#
            ),
        )?;
        std::fs::write(dir.join("janus.plugin.videoroom.jcfg"), "general: {\n}\n")?;
        let log = std::fs::File::create(dir.join("janus.log"))?;
        let child = Command::new("janus")
            .arg("--configs-folder")
            .arg(&dir)
            .arg("--config")
            .arg(dir.join("janus.jcfg"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let janus = Janus {
            child,
            dir,
            api: Arc::new(Api {
                base: format!("http://127.0.0.1:{port}/janus"),
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(40))
                    .build()?,
                transactions: AtomicU64::new(0),
            }),
            ip,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let info = janus
                .api
                .http
                .get(format!("{}/info", janus.api.base))
                .send();
            if let Ok(Ok(response)) = tokio::time::timeout(Duration::from_secs(1), info).await {
                if response.status().is_success() {
                    return Ok(janus);
                }
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(janus.dir.join("janus.log")).unwrap_or_default();
                return Err(format!("Janus did not answer within 15 s; its log:\n{log}").into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last lines of Janus's log, for an error message.
    pub(crate) fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("janus.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Where Janus's ICE listens, and so where its clients must.
    pub(crate) fn ip(&self) -> IpAddr {
        self.ip
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn rss_kib(&self) -> Result<u64, Error> {
        crate::server::rss_kib_of(self.pid())
    }

    /// A new session with a handle on the VideoRoom plugin.
    pub(crate) async fn videoroom(&self) -> Result<Handle, Error> {
        let created = self
            .api
            .post(&self.api.base, json!({ "janus": "create" }))
            .await?;
        let session = id_of(&created)?;
        let attached = self
            .api
            .post(
                &format!("{}/{session}", self.api.base),
                json!({ "janus": "attach", "plugin": "janus.plugin.videoroom" }),
            )
            .await?;
        let handle = id_of(&attached)?;
        Ok(Handle {
            api: self.api.clone(),
            session,
            handle,
        })
    }
}

fn id_of(reply: &Value) -> Result<u64, Error> {
    reply["data"]["id"]
        .as_u64()
        .ok_or_else(|| format!("Janus gave no id: {reply}").into())
}

struct Api {
    base: String,
    http: reqwest::Client,
    transactions: AtomicU64,
}

impl Api {
    fn transaction(&self) -> String {
        format!("t{}", self.transactions.fetch_add(1, Ordering::SeqCst))
    }

    /// Posts one request with a fresh transaction; an `error` reply is an
    /// error.
    async fn post(&self, url: &str, mut body: Value) -> Result<Value, Error> {
        body["transaction"] = Value::String(self.transaction());
        let reply: Value = self
            .http
            .post(url)
            .json(&body)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        if reply["janus"] == "error" {
            return Err(format!("Janus refused {body}: {reply}").into());
        }
        Ok(reply)
    }
}

/// One session with one VideoRoom handle: a publisher, a subscriber or the
/// room's creator.
pub(crate) struct Handle {
    api: Arc<Api>,
    session: u64,
    handle: u64,
}

/// What an asynchronous request came back with: the plugin's data and,
/// for a negotiation, Janus's session description.
pub(crate) struct Reply {
    pub(crate) data: Value,
    pub(crate) jsep: Option<Value>,
}

impl Handle {
    fn url(&self) -> String {
        format!("{}/{}/{}", self.api.base, self.session, self.handle)
    }

    /// A synchronous plugin request (such as creating a room): its data.
    pub(crate) async fn request(&self, body: Value) -> Result<Value, Error> {
        let reply = self
            .api
            .post(&self.url(), json!({ "janus": "message", "body": body }))
            .await?;
        let data = reply["plugindata"]["data"].clone();
        if data.get("error").is_some() {
            return Err(format!("the VideoRoom plugin refused: {data}").into());
        }
        Ok(data)
    }

    /// An asynchronous plugin request (joining, configuring, starting):
    /// acknowledged at once, answered by an event on the session's long
    /// poll carrying the same transaction.
    pub(crate) async fn message(&self, body: Value, jsep: Option<Value>) -> Result<Reply, Error> {
        let transaction = self.api.transaction();
        let mut request = json!({ "janus": "message", "body": body, "transaction": transaction });
        if let Some(jsep) = jsep {
            request["jsep"] = jsep;
        }
        let ack: Value = self
            .api
            .http
            .post(self.url())
            .json(&request)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        if ack["janus"] != "ack" {
            return Err(format!("Janus did not take {request}: {ack}").into());
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let events: Value = self
                .api
                .http
                .get(format!("{}/{}?maxev=5", self.api.base, self.session))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let events = match events {
                Value::Array(events) => events,
                single => vec![single],
            };
            for event in events {
                if event["janus"] == "event" && event["transaction"] == transaction.as_str() {
                    let data = event["plugindata"]["data"].clone();
                    if data.get("error").is_some() {
                        return Err(format!("the VideoRoom plugin refused: {data}").into());
                    }
                    return Ok(Reply {
                        data,
                        jsep: event.get("jsep").cloned(),
                    });
                }
            }
        }
        Err(format!("no answer from Janus to {body} within 20 s").into())
    }

    /// Tells Janus this side's candidates are all in its description.
    pub(crate) async fn end_of_candidates(&self) -> Result<(), Error> {
        self.api
            .post(
                &self.url(),
                json!({ "janus": "trickle", "candidate": { "completed": true } }),
            )
            .await?;
        Ok(())
    }

    /// Ends the session (and with it the handle and its peer connection).
    pub(crate) async fn destroy(self) {
        let _ = self
            .api
            .post(
                &format!("{}/{}", self.api.base, self.session),
                json!({ "janus": "destroy" }),
            )
            .await;
    }
}
