//! The moim server: configuration, database, HTTP, sessions and security.
//! `Application::build` wires everything; `main` only parses settings and
//! reports start-up errors.

pub mod api;
pub mod bundle;
pub mod calendar;
pub mod config;
pub mod db;
pub mod error;
pub mod form_echo;
pub mod health;
pub mod http;
pub mod mail;
pub mod media_server;
pub mod memory;
pub mod metrics;
pub mod ops;
pub mod page_render;
pub use domain::rooms;
pub mod security;
pub mod session_store;
pub mod signaling;
pub mod telemetry;
pub mod transcript;
pub mod webhooks;

use crate::config::Config;
use crate::error::StartupError;
use crate::http::{HttpMetrics, HttpSettings};
use crate::security::OriginPolicy;
use crate::session_store::DbSessionStore;
use app::state::{AppState, AuthSettings};
use domain::throttle::{FailureLimiter, Limiter, LoginThrottle};
use leptos::config::LeptosOptions;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// A built, bound, not yet serving moim instance.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    local_addr: SocketAddr,
    state: AppState,
    shutdown_grace: Duration,
    /// How long a client may take to send a request's headers.
    header_timeout: Duration,
    /// Tells live calls to move to another instance.
    drain: tokio::sync::watch::Sender<bool>,
    metrics: Arc<HttpMetrics>,
    /// `/metrics`, on its own listener.
    metrics_listener: TcpListener,
    metrics_addr: SocketAddr,
    metrics_router: axum::Router,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let database_url = db::database_url(&config)?;
        let pool = db::connect(&database_url).await?;
        tracing::info!(database = %db::redact(&database_url), "database ready");

        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|e| StartupError::Listen {
                    addr: config.listen.to_string(),
                    reason: e.to_string(),
                })?;
        let local_addr = listener.local_addr().map_err(|e| StartupError::Listen {
            addr: config.listen.to_string(),
            reason: e.to_string(),
        })?;

        let public_url = config.public_origin_at(local_addr);
        let metrics_listener = metrics::bind(config.metrics_listen).await.map_err(|e| {
            StartupError::MetricsListen {
                addr: config
                    .metrics_listen
                    .unwrap_or(config::METRICS_DEFAULT)
                    .to_string(),
                reason: e.to_string(),
            }
        })?;
        let metrics_addr =
            metrics_listener
                .local_addr()
                .map_err(|e| StartupError::MetricsListen {
                    addr: String::new(),
                    reason: e.to_string(),
                })?;
        let counted = domain::metrics::Metrics::new(config.redis_url.is_some());

        let (bus, presence, limiter): (
            Arc<dyn domain::rooms::bus::RoomBus>,
            Arc<dyn rooms::Presence>,
            Arc<Limiter>,
        ) = match &config.redis_url {
            Some(url) => {
                let redis_error = |e: redis::RedisError| StartupError::Redis {
                    url: db::redact(url.as_str()),
                    reason: e.to_string(),
                };
                let (bus, presence) = rooms::redis::connect_counted(url.as_str(), counted.clone())
                    .await
                    .map_err(redis_error)?;
                // Abuse limits count across instances too.
                let rates = domain::throttle::redis::RedisRateStore::connect(url.as_str())
                    .await
                    .map_err(redis_error)?;
                tracing::info!(redis = %db::redact(url.as_str()), "rooms and limits shared through Redis");
                (
                    bus,
                    presence,
                    Arc::new(Limiter::new(Arc::new(rates)).with_metrics(counted.clone())),
                )
            }
            None => (
                Arc::new(rooms::local::LocalBus::default()),
                Arc::new(rooms::local::LocalPresence::default()),
                Arc::new(Limiter::default().with_metrics(counted.clone())),
            ),
        };
        let rooms = rooms::Rooms {
            bus,
            presence,
            settings: rooms::RoomSettings {
                max_participants: config.mesh_max_participants,
                reconnect_grace: Duration::from_secs(config.reconnect_grace_seconds),
                write_timeout: Duration::from_secs(config.ws_write_timeout_seconds),
                media: domain::media::paths::PathPolicy {
                    server: match config.media_mode {
                        config::MediaMode::Auto => domain::media::paths::ServerMediaMode::Auto,
                        config::MediaMode::Mesh => domain::media::paths::ServerMediaMode::Mesh,
                        config::MediaMode::Sfu => domain::media::paths::ServerMediaMode::Sfu,
                    },
                    switch_at: config.sfu_switch_at as usize,
                    ..Default::default()
                },
                media_server_max_participants: config.sfu_max_participants,
                ..rooms::RoomSettings::default()
            },
            watcher: None,
        };
        let webhooks = webhooks::Webhooks::new(pool.clone());
        webhooks::spawn_worker(
            &webhooks,
            webhooks::WebhookSettings {
                allow_private: config.webhooks_allow_private,
                retry_base: Duration::from_secs(config.webhook_retry_seconds),
                timeout: Duration::from_secs(10),
                metrics: counted.clone(),
            },
            rooms.presence.clone(),
        );
        let rooms = rooms::Rooms {
            watcher: Some(Arc::new(webhooks.clone())),
            ..rooms
        };
        rooms.spawn_reaper();

        let mailer = mail::from_settings(config.smtp_url.as_ref(), config.smtp_from.as_deref())?;

        let bundle = bundle::Bundle::find(&config.site_root);
        let leptos_options = LeptosOptions::builder()
            .output_name("moim")
            .site_root(config.site_root.display().to_string())
            .site_pkg_dir(bundle.pkg_dir())
            .site_addr(local_addr)
            .build();

        // argon2 runs on the blocking pool: sign-ins get twice the cores,
        // sign-ups half as many again, apart.
        let hashing = std::thread::available_parallelism().map_or(2, |n| n.get() * 2);
        let state = AppState {
            leptos_options,
            db: pool.clone(),
            auth: AuthSettings {
                absolute_lifetime: config.session_max(),
                ..AuthSettings::default()
            },
            login_throttle: Arc::new(LoginThrottle::new(limiter.clone(), Default::default())),
            meeting_lookups: Arc::new(FailureLimiter::new(
                limiter.clone(),
                "lookup",
                app::state::meeting_lookup_policy(),
            )),
            limiter: limiter.clone(),
            actions: domain::throttle::ActionPolicy {
                sign_ups: domain::throttle::Rule::per(
                    config.sign_ups_per_hour,
                    Duration::from_secs(3600),
                ),
                guests: domain::throttle::Rule::per(
                    config.guests_per_hour,
                    Duration::from_secs(3600),
                ),
                ..Default::default()
            },
            public_url: public_url.clone(),
            trusted_proxies: Arc::new(config.trusted_proxies.clone()),
            ice: Arc::new(domain::ice::IceSettings {
                stun_urls: config.stun_urls.clone(),
                turn_urls: config.turn_urls.clone(),
                turn_secret: config.turn_secret.clone(),
                credential_ttl: Duration::from_secs(config.turn_credential_ttl_seconds),
                relay_only: config.ice_transport_policy == config::IceTransportPolicy::Relay,
            }),
            hashing_permits: Arc::new(tokio::sync::Semaphore::new(hashing)),
            sign_up_permits: Arc::new(tokio::sync::Semaphore::new((hashing / 2).max(1))),
            knock_notices: Arc::new(domain::rooms::bus::KnockNotices::new(rooms.bus.clone())),
            bus: rooms.bus.clone(),
            mailer,
            metrics: counted.clone(),
            webhooks_allow_private: config.webhooks_allow_private,
        };
        let (drain_tx, drain_rx) = tokio::sync::watch::channel(false);
        let origin = OriginPolicy {
            public_origin: public_url.clone(),
        };
        let store = DbSessionStore::new(pool.clone()).with_metrics(counted.clone());
        store.spawn_cleanup(Duration::from_secs(300));
        let media = Arc::new(domain::media::MeshRelay::new(rooms.clone()));
        let media_server = match config.media_mode {
            config::MediaMode::Mesh => None,
            config::MediaMode::Auto | config::MediaMode::Sfu => Some(Arc::new(
                media_server::LocalMediaServer::start(&media_server::MediaServerConfig {
                    metrics: counted.clone(),
                    ..config.media_server()
                })?,
            )),
        };
        // With instances sharing Redis, a room's media lives on one of
        // them (the holder of its placement lease) and the others relay.
        let media_server: Option<Arc<dyn domain::media::MediaServer>> =
            match (media_server, &config.redis_url) {
                (Some(local), Some(url)) => {
                    let redis_error = |reason: String| StartupError::Redis {
                        url: db::redact(url.as_str()),
                        reason,
                    };
                    let placement = domain::placement::redis::RedisPlacement::connect(url.as_str())
                        .await
                        .map_err(|e| redis_error(e.to_string()))?;
                    let routed = domain::media::routing::RoutedMediaServer::start(
                        domain::ids::InstanceId::random(),
                        local,
                        rooms.bus.clone(),
                        Arc::new(placement),
                        domain::media::routing::RouteSettings::default(),
                    )
                    .await
                    .map_err(|e| redis_error(e.to_string()))?;
                    Some(Arc::new(routed))
                }
                (Some(local), None) => Some(local as Arc<dyn domain::media::MediaServer>),
                (None, _) => None,
            };
        let census = Arc::new(signaling::CallCensus::default());
        // Automatic rooms' paths: with Redis one state per room for every
        // instance, so a call spread over instances moves as one.
        let path_store: Arc<dyn domain::media::paths::PathStore> = match &config.redis_url {
            Some(url) => Arc::new(
                domain::media::paths::redis::RedisPathStore::connect(url.as_str())
                    .await
                    .map_err(|e| StartupError::Redis {
                        url: db::redact(url.as_str()),
                        reason: e.to_string(),
                    })?,
            ),
            None => Arc::new(domain::media::paths::LocalPathStore::default()),
        };
        let media_paths = Arc::new(domain::media::paths::MediaPaths::new(
            rooms.settings.media.clone(),
            path_store,
        ));
        let signaling = signaling::SignalingState {
            app: state.clone(),
            rooms,
            media,
            media_paths,
            media_server,
            origin: Arc::new(origin.clone()),
            chat_limits: Arc::new(domain::chat::service::ChatLimits::new(
                limiter,
                20,
                config.chat_messages_per_minute,
            )),
            draining: drain_rx,
            sessions: store.clone(),
            session_idle: config.session_idle(),
            rights_recheck: Duration::from_secs(config.rights_recheck_seconds),
            sockets: Arc::new(signaling::SocketCounts::new(config.max_sockets_per_address)),
            census: census.clone(),
            webhooks,
        };
        let metrics = Arc::new(HttpMetrics::default());
        let metrics_router = crate::metrics::router(crate::metrics::Scrape {
            metrics: counted.clone(),
            pool,
            census,
            redis: config.redis_url.as_ref().map(|_| state.bus.clone()),
            http: metrics.clone(),
        });
        let router = http::app(
            state.clone(),
            store,
            signaling,
            HttpSettings {
                origin,
                https: config.secure_cookies(),
                session_idle: config.session_idle(),
                request_timeout: config.request_timeout(),
                metrics: metrics.clone(),
                counted,
                api_per_minute: config.api_requests_per_minute,
                bundle,
            },
        );

        Ok(Self {
            listener,
            router,
            local_addr,
            state,
            shutdown_grace: Duration::from_secs(config.shutdown_grace_seconds),
            header_timeout: config.header_timeout(),
            drain: drain_tx,
            metrics,
            metrics_listener,
            metrics_addr,
            metrics_router,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where `/metrics` is served.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Counters of the HTTP layer (panics caught so far).
    pub fn metrics(&self) -> Arc<HttpMetrics> {
        self.metrics.clone()
    }

    /// Serves until `shutdown` resolves, then lets open requests finish for
    /// at most the grace period.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        // Scraped through the drain too (worth watching); stopped with
        // the rest.
        let (metrics_stop, metrics_stop_rx) = tokio::sync::watch::channel(false);
        let metrics_server = tokio::spawn(serve(
            self.metrics_listener,
            self.metrics_router,
            self.header_timeout,
            metrics_stop_rx,
        ));
        let grace = self.shutdown_grace;
        let drain = self.drain;
        tokio::spawn(async move {
            shutdown.await;
            // Calls first: clients reconnect elsewhere and resume.
            let _ = drain.send(true);
            let _ = stop_tx.send(true);
        });
        let server = serve(
            self.listener,
            self.router,
            self.header_timeout,
            stop_rx.clone(),
        );
        let mut deadline_rx = stop_rx;
        let result = tokio::select! {
            () = server => Ok(()),
            _ = async move {
                let _ = deadline_rx.wait_for(|stop| *stop).await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(grace_seconds = grace.as_secs(), "drain deadline passed; closing remaining connections");
                Ok(())
            }
        };
        let _ = metrics_stop.send(true);
        metrics_server.abort();
        result
    }
}

/// Serves HTTP/1.1 on `listener` until `stop` turns true, then lets every
/// open connection finish its request (WebSockets, already handed over to
/// their own tasks, are told to move by the drain signal instead).
///
/// Not `axum::serve`: it cannot limit how long a client takes to send its
/// headers, so a client trickling bytes (or none) held a connection and a
/// task forever. hyper's `header_read_timeout` closes such connections; it
/// also bounds how long an idle kept-alive connection stays open. HTTP/2
/// without TLS (h2c) is left out: browsers only speak HTTP/2 over TLS,
/// which a proxy in front of moim ends, and the HTTP/1-or-2 sniffing of
/// hyper-util's `auto` builder waits for the first bytes with no deadline.
async fn serve(
    listener: TcpListener,
    router: axum::Router,
    header_timeout: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use axum::extract::ConnectInfo;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceExt;

    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    // Every connection task holds a receiver; when all are gone, every
    // connection has finished.
    let (open_tx, open_rx) = tokio::sync::watch::channel(());
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Out of file descriptors and the like: wait a little
                    // rather than spin; a connection reset before it was
                    // accepted is nothing.
                    if !matches!(
                        err.kind(),
                        std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset
                    ) {
                        tracing::error!(error = %err, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        // Signaling frames are small and each one matters now: without
        // TCP_NODELAY, Nagle's algorithm held them back behind unacknowledged
        // data (about 18 ms p50 per toggle in `scripts/bench.sh fanout`).
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
        let service = router.clone().map_request(
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(remote));
                request
            },
        );
        let connection = builder
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
            .with_upgrades();
        let mut stop = stop.clone();
        let open = open_rx.clone();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let mut stopping = false;
            loop {
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(err) = result {
                            tracing::debug!(error = %err, "connection ended with an error");
                        }
                        break;
                    }
                    () = stopped(&mut stop), if !stopping => {
                        stopping = true;
                        // Finish the request in flight, then close.
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(open);
        });
    }
    drop(listener);
    drop(open_rx);
    tracing::info!("shutting down: no new connections, draining open requests");
    open_tx.closed().await;
}

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    // The guard `wait_for` returns must not live across an await.
    let _ = stop.wait_for(|stop| *stop).await.map(|_| ());
}

/// Listens for Ctrl-C and SIGTERM from now on, and resolves on either.
/// The handlers are installed when this is called, not when the future is
/// first polled: a SIGTERM that comes right after start-up (an orchestrator
/// that stops a fresh instance) is a clean shutdown, not the default kill.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (interrupt, terminate) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let (mut interrupt, mut terminate) = match (interrupt, terminate) {
                (Ok(interrupt), Ok(terminate)) => (interrupt, terminate),
                (Err(err), _) | (_, Err(err)) => {
                    tracing::error!(error = %err, "cannot listen for Ctrl-C and SIGTERM");
                    return std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                _ = interrupt.recv() => tracing::info!("received Ctrl-C"),
                _ = terminate.recv() => tracing::info!("received SIGTERM"),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("received Ctrl-C");
        }
    }
}
