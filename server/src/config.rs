//! Settings, from command-line flags or environment variables. Every setting
//! has a documented default so `moim` runs with none at all.

use clap::{Parser, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// What to do instead of serving (settings are the same flags and
/// variables, given before the command).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Checks the settings, reaches the database, Redis and the mail
    /// server when configured, and prints what moim would run with
    /// (secrets hidden). Exits non-zero naming the setting at fault.
    CheckConfig,
    /// Writes a consistent copy of the SQLite database to FILE, also while
    /// moim runs (SQLite's `VACUUM INTO`, not a file copy). For PostgreSQL
    /// use `pg_dump` (see the README).
    Backup {
        /// The copy to write; must not exist yet.
        #[arg(value_name = "FILE")]
        to: PathBuf,
    },
}

#[derive(Debug, Clone, Parser)]
#[command(name = "moim", version, about = "moim: self-hosted video meetings")]
pub struct Config {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address and port to listen on.
    #[arg(long, env = "MOIM_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,

    /// The URL people use to reach moim (scheme, host, port). Used for the
    /// Origin check and to decide on Secure cookies. Default: http://<listen>.
    #[arg(long, env = "MOIM_PUBLIC_URL", value_parser = parse_public_url)]
    pub public_url: Option<Url>,

    /// Directory for the SQLite database when DATABASE_URL is not set.
    #[arg(long, env = "MOIM_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// sqlite://path or postgres://user:pass@host/db. Default: SQLite file
    /// `moim.db` in the data directory.
    #[arg(long, env = "DATABASE_URL", value_parser = parse_database_url)]
    pub database_url: Option<String>,

    /// redis://host:port for fan-out across instances (multi-instance setup).
    #[arg(long, env = "REDIS_URL", value_parser = parse_redis_url)]
    pub redis_url: Option<Url>,

    /// Addresses of reverse proxies in front of moim (comma-separated). Only
    /// their `X-Forwarded-For` is believed when telling clients apart (for
    /// sign-in throttling and link-guessing limits).
    #[arg(long, env = "MOIM_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<std::net::IpAddr>,

    /// STUN server URLs for browsers (comma-separated), e.g.
    /// `stun:stun.example.org:3478`. None are needed on one machine or a LAN.
    #[arg(long, env = "MOIM_STUN_URLS", value_delimiter = ',')]
    pub stun_urls: Vec<String>,

    /// TURN server URLs (comma-separated), e.g. `turn:turn.example.org:3478`.
    /// Needs `--turn-secret`.
    #[arg(
        long,
        env = "MOIM_TURN_URLS",
        value_delimiter = ',',
        requires = "turn_secret"
    )]
    pub turn_urls: Vec<String>,

    /// coturn's `static-auth-secret` (use-auth-secret), for short-lived
    /// TURN credentials.
    #[arg(long, env = "MOIM_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<String>,

    /// How long TURN credentials stay valid, in seconds.
    #[arg(long, env = "MOIM_TURN_CREDENTIAL_TTL_SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(60..=86_400))]
    pub turn_credential_ttl_seconds: u64,

    /// `relay` sends all media through TURN, so participants never see each
    /// other's network addresses; `all` (default) lets browsers connect
    /// directly when they can.
    #[arg(
        long,
        env = "MOIM_ICE_TRANSPORT_POLICY",
        value_enum,
        default_value = "all"
    )]
    pub ice_transport_policy: IceTransportPolicy,

    /// Most people in one meeting's call (browsers connect to each other
    /// directly, so every extra person costs every other person upload).
    /// A meeting's own limit applies when lower.
    #[arg(long, env = "MOIM_MESH_MAX_PARTICIPANTS", default_value_t = 6, value_parser = clap::value_parser!(u32).range(2..=50))]
    pub mesh_max_participants: u32,

    /// How calls' media travels: `mesh` browser to browser; `sfu` every
    /// call through the built-in media server (participants never learn
    /// each other's addresses); `auto` (default) as each meeting's media
    /// setting says, direct for meetings set to automatic.
    #[arg(long, env = "MOIM_MEDIA_MODE", value_enum, default_value = "auto")]
    pub media_mode: MediaMode,

    /// In a meeting whose media is automatic, the arrival that makes the
    /// call this big moves it to the media server (it goes back to direct
    /// after 30 s at two people or fewer). Calls spread over instances
    /// (REDIS_URL) stay direct.
    #[arg(long, env = "MOIM_SFU_SWITCH_AT", default_value_t = 5, value_parser = clap::value_parser!(u32).range(2..=50))]
    pub sfu_switch_at: u32,

    /// Most people in one call through the media server. A meeting's own
    /// limit applies when lower.
    #[arg(long, env = "MOIM_SFU_MAX_PARTICIPANTS", default_value_t = 100, value_parser = clap::value_parser!(u32).range(2..=500))]
    pub sfu_max_participants: u32,

    /// The media server's UDP address (one port for every call). Default:
    /// the listen host, port 7882 (another free port if that one is taken
    /// and this setting is not given). Open it to browsers.
    #[arg(long, env = "MOIM_SFU_UDP_LISTEN")]
    pub sfu_udp_listen: Option<SocketAddr>,

    /// The address browsers send media to, when it is not the one the
    /// media server binds (NAT 1:1, containers).
    #[arg(long, env = "MOIM_SFU_PUBLIC_IP")]
    pub sfu_public_ip: Option<std::net::IpAddr>,

    /// In a call through the media server, how many cameras each browser
    /// receives: those of the people who spoke most recently, besides its
    /// pinned tile and shared screens. The others' tiles show their name
    /// with the video paused, until they speak.
    #[arg(long, env = "MOIM_SFU_LAST_N", default_value_t = 25, value_parser = clap::value_parser!(u32).range(1..=500))]
    pub sfu_last_n: u32,

    /// Seconds a media connection may stay silent (no packet at all from
    /// its browser, whose connection checks alone come every few seconds)
    /// before the media server drops it: a browser that vanished without a
    /// word (its instance died, the network went) stops being sent to.
    #[arg(long, env = "MOIM_SFU_SILENCE_LIMIT_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(5..=600))]
    pub sfu_silence_limit_seconds: u64,

    /// Seconds a participant whose connection dropped stays in the room
    /// (to resume without anyone noticing) before everyone sees them leave.
    #[arg(long, env = "MOIM_RECONNECT_GRACE_SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=120))]
    pub reconnect_grace_seconds: u64,

    /// Seconds between re-checks of a live call connection's rights (the
    /// session still signed in, still admitted, role, meeting not
    /// cancelled). Changes made through moim reach live calls at once;
    /// this catches the rest (session expiry, a missed event).
    #[arg(long, env = "MOIM_RIGHTS_RECHECK_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub rights_recheck_seconds: u64,

    /// Seconds one write to a call connection may take. A client that
    /// stops reading (its buffers and ours full) is dropped after this,
    /// instead of holding a task and its buffers forever.
    #[arg(long, env = "MOIM_WS_WRITE_TIMEOUT_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=120))]
    pub ws_write_timeout_seconds: u64,

    /// Open call connections allowed from one client address (an IPv6
    /// client counts by its /64). Generous by default: a school or office
    /// behind one NAT address shares it. 0 means no limit.
    #[arg(long, env = "MOIM_MAX_SOCKETS_PER_ADDRESS", default_value_t = 200)]
    pub max_sockets_per_address: u32,

    /// New accounts one client address may create per hour (an IPv6 client
    /// counts by its /64). Raise it for a school or office that signs up
    /// many people behind one address.
    #[arg(long, env = "MOIM_SIGN_UPS_PER_HOUR", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub sign_ups_per_hour: u32,

    /// New guest identities one client address may create per hour.
    #[arg(long, env = "MOIM_GUESTS_PER_HOUR", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub guests_per_hour: u32,

    /// Chat messages one person may send per minute (after a burst of 20).
    #[arg(long, env = "MOIM_CHAT_MESSAGES_PER_MINUTE", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..))]
    pub chat_messages_per_minute: u32,

    /// Requests one API token may make per minute (`/api/v1`).
    #[arg(long, env = "MOIM_API_REQUESTS_PER_MINUTE", default_value_t = 120, value_parser = clap::value_parser!(u32).range(1..))]
    pub api_requests_per_minute: u32,

    /// Let webhooks use plain `http://` and private, loopback or link-local
    /// addresses. Off by default: a webhook could otherwise probe the
    /// network moim runs in. For closed networks and tests only.
    #[arg(long, env = "MOIM_WEBHOOKS_ALLOW_PRIVATE")]
    pub webhooks_allow_private: bool,

    /// Seconds before a failed webhook delivery is tried again (then three
    /// times longer each time, eight attempts in all).
    #[arg(long, env = "MOIM_WEBHOOK_RETRY_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub webhook_retry_seconds: u64,

    /// Mail server for address confirmation and invitations:
    /// `smtps://user:pass@host:465` (TLS), `smtp://user:pass@host:587?tls=required`
    /// (STARTTLS), `smtp://host:25` (no encryption: local relays only).
    /// Unset: no mail is sent (addresses cannot be confirmed).
    #[arg(long, env = "MOIM_SMTP_URL", hide_env_values = true, value_parser = parse_smtp_url, requires = "smtp_from")]
    pub smtp_url: Option<Url>,

    /// The sender of moim's mail, e.g. `moim <noreply@example.org>`.
    #[arg(long, env = "MOIM_SMTP_FROM")]
    pub smtp_from: Option<String>,

    /// Address for `GET /metrics` (Prometheus text format), apart from the
    /// main listener so it is never public by accident. Default:
    /// 127.0.0.1:9464 (another free port if that one is taken and this
    /// setting is not given).
    #[arg(long, env = "MOIM_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `moim=debug,info`.
    #[arg(long, env = "MOIM_LOG", default_value = "info")]
    pub log: String,

    /// Log line format.
    #[arg(long, env = "MOIM_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Directory with the built site (JS, wasm, CSS, public files), as
    /// written by cargo-leptos.
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,

    /// Sign a session out after this many minutes without activity.
    #[arg(long, env = "MOIM_SESSION_IDLE_MINUTES", default_value_t = 720, value_parser = clap::value_parser!(u64).range(1..))]
    pub session_idle_minutes: u64,

    /// Sign a session out this many hours after sign-in, however active.
    #[arg(long, env = "MOIM_SESSION_MAX_HOURS", default_value_t = 168, value_parser = clap::value_parser!(u64).range(1..))]
    pub session_max_hours: u64,

    /// On SIGTERM or Ctrl-C, wait at most this many seconds for open
    /// requests to finish.
    #[arg(long, env = "MOIM_SHUTDOWN_GRACE_SECONDS", default_value_t = 10)]
    pub shutdown_grace_seconds: u64,

    /// Seconds a client has to send a request's headers, and that an idle
    /// kept-alive connection stays open; then the connection is closed, so
    /// slow or stalled clients cannot hold connections ("slowloris").
    #[arg(long, env = "MOIM_HEADER_TIMEOUT_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout_seconds: u64,

    /// Seconds a request may take until its response starts; then it is
    /// answered 408. Not applied to the call's WebSocket, nor to a response
    /// that has started (streamed pages, downloads).
    #[arg(long, env = "MOIM_REQUEST_TIMEOUT_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub request_timeout_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MediaMode {
    Auto,
    Mesh,
    Sfu,
}

/// The media server's UDP port unless `--sfu-udp-listen` says otherwise.
pub const SFU_DEFAULT_PORT: u16 = 7882;

/// Where `/metrics` is served unless `--metrics-listen` says otherwise.
pub const METRICS_DEFAULT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9464);

impl Config {
    /// The media server's socket settings.
    pub fn media_server(&self) -> crate::media_server::MediaServerConfig {
        crate::media_server::MediaServerConfig {
            listen: self
                .sfu_udp_listen
                .unwrap_or_else(|| SocketAddr::new(self.listen.ip(), SFU_DEFAULT_PORT)),
            public_ip: self.sfu_public_ip,
            listen_chosen: self.sfu_udp_listen.is_some(),
            metrics: Default::default(),
            last_n: self.sfu_last_n as usize,
            silence_limit: std::time::Duration::from_secs(self.sfu_silence_limit_seconds),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IceTransportPolicy {
    All,
    Relay,
}

fn parse_public_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(url),
        _ => Err("must be an http:// or https:// URL with a host".to_string()),
    }
}

fn parse_database_url(raw: &str) -> Result<String, String> {
    let scheme = raw.split(':').next().unwrap_or_default();
    match scheme {
        "sqlite" | "postgres" | "postgresql" => Ok(raw.to_string()),
        _ => Err("must start with sqlite:// or postgres://".to_string()),
    }
}

fn parse_redis_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
    match url.scheme() {
        "redis" | "rediss" => Ok(url),
        _ => Err("must start with redis:// or rediss://".to_string()),
    }
}

fn parse_smtp_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
    let tls = url
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    match (url.scheme(), tls.as_deref()) {
        (_, _) if url.host_str().is_none_or(str::is_empty) => Err("must name a host".to_string()),
        ("smtps", None) | ("smtp", None | Some("required" | "opportunistic")) => Ok(url),
        _ => Err(
            "must be smtps://host[:port] or smtp://host[:port][?tls=required|opportunistic]"
                .to_string(),
        ),
    }
}

impl Config {
    /// A configuration with every default, for tests and embedding.
    pub fn defaults() -> Self {
        Self::parse_from(["moim"])
    }

    /// The web origin (`scheme://host[:port]`) browsers send in `Origin`:
    /// the public URL's, or else `http://` and the address moim is bound to
    /// (which differs from `--listen` when that asks for port 0).
    pub fn public_origin_at(&self, bound: SocketAddr) -> String {
        match &self.public_url {
            Some(url) => url.origin().ascii_serialization(),
            None => format!("http://{bound}"),
        }
    }

    pub fn secure_cookies(&self) -> bool {
        self.public_url
            .as_ref()
            .is_some_and(|url| url.scheme() == "https")
    }

    pub fn session_idle(&self) -> Duration {
        Duration::from_secs(self.session_idle_minutes * 60)
    }

    pub fn session_max(&self) -> Duration {
        Duration::from_secs(self.session_max_hours * 3600)
    }

    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout_seconds)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_run_on_loopback_with_sqlite() {
        let config = Config::defaults();
        assert_eq!(config.listen.to_string(), "127.0.0.1:3000");
        assert_eq!(
            config.public_origin_at(config.listen),
            "http://127.0.0.1:3000"
        );
        assert!(config.database_url.is_none());
        assert!(!config.secure_cookies());
        assert_eq!(config.header_timeout(), Duration::from_secs(10));
        assert_eq!(config.request_timeout(), Duration::from_secs(30));
    }

    #[test]
    fn bad_settings_are_refused_with_the_setting_named() {
        let err = Config::try_parse_from(["moim", "--listen", "nonsense"]).unwrap_err();
        assert!(err.to_string().contains("--listen"), "{err}");
        let err = Config::try_parse_from(["moim", "--database-url", "mysql://x"]).unwrap_err();
        assert!(err.to_string().contains("--database-url"), "{err}");
        let err = Config::try_parse_from(["moim", "--public-url", "ftp://x"]).unwrap_err();
        assert!(err.to_string().contains("--public-url"), "{err}");
        let err =
            Config::try_parse_from(["moim", "--turn-urls", "turn:t.example:3478"]).unwrap_err();
        assert!(err.to_string().contains("--turn-secret"), "{err}");
    }

    #[test]
    fn smtp_settings_are_checked_and_go_together() {
        let config = Config::defaults();
        assert!(config.smtp_url.is_none(), "no mail by default");
        let err =
            Config::try_parse_from(["moim", "--smtp-url", "smtp://h.example:25"]).unwrap_err();
        assert!(err.to_string().contains("--smtp-from"), "{err}");
        let err = Config::try_parse_from([
            "moim",
            "--smtp-url",
            "http://user:hunter2@h.example",
            "--smtp-from",
            "a@b.example",
        ])
        .unwrap_err();
        assert!(err.to_string().contains("--smtp-url"), "{err}");
        let config = Config::try_parse_from([
            "moim",
            "--smtp-url",
            "smtp://u:p@h.example:587?tls=required",
            "--smtp-from",
            "moim <noreply@h.example>",
        ])
        .unwrap();
        assert_eq!(config.smtp_url.unwrap().port(), Some(587));
    }

    #[test]
    fn https_public_url_means_secure_cookies() {
        let config =
            Config::try_parse_from(["moim", "--public-url", "https://meet.example.org"]).unwrap();
        assert!(config.secure_cookies());
        assert_eq!(
            config.public_origin_at(config.listen),
            "https://meet.example.org"
        );
    }
}
