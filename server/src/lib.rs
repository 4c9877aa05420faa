//! The moim server: configuration, database, HTTP, sessions and security.
//! `Application::build` wires everything; `main` only parses settings and
//! reports start-up errors.

pub mod calendar;
pub mod chat;
pub mod config;
pub mod db;
pub mod error;
pub mod health;
pub mod http;
pub mod mail;
pub mod rooms;
pub mod security;
pub mod session_store;
pub mod signaling;
pub mod telemetry;
pub mod transcript;

use crate::config::Config;
use crate::error::StartupError;
use crate::http::HttpSettings;
use crate::security::OriginPolicy;
use crate::session_store::DbSessionStore;
use app::state::{AppState, AuthSettings};
use app::throttle::{FailureLimiter, LoginThrottle};
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
    /// Tells live calls to move to another instance.
    drain: tokio::sync::watch::Sender<bool>,
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

        let (bus, presence): (Arc<dyn app::fanout::RoomBus>, Arc<dyn rooms::Presence>) =
            match &config.redis_url {
                Some(url) => {
                    let (bus, presence) =
                        rooms::redis::connect(url.as_str()).await.map_err(|e| {
                            StartupError::Redis {
                                url: db::redact(url.as_str()),
                                reason: e.to_string(),
                            }
                        })?;
                    tracing::info!(redis = %db::redact(url.as_str()), "rooms shared through Redis");
                    (bus, presence)
                }
                None => (
                    Arc::new(rooms::local::LocalBus::default()),
                    Arc::new(rooms::local::LocalPresence::default()),
                ),
            };
        let rooms = rooms::Rooms {
            bus,
            presence,
            settings: rooms::RoomSettings {
                max_participants: config.mesh_max_participants,
                reconnect_grace: Duration::from_secs(config.reconnect_grace_seconds),
                ..rooms::RoomSettings::default()
            },
        };
        rooms.spawn_reaper();

        let mailer = mail::from_settings(config.smtp_url.as_ref(), config.smtp_from.as_deref())?;

        let leptos_options = LeptosOptions::builder()
            .output_name("moim")
            .site_root(config.site_root.display().to_string())
            .site_pkg_dir("pkg")
            .site_addr(local_addr)
            .build();

        let state = AppState {
            leptos_options,
            db: pool.clone(),
            auth: AuthSettings {
                absolute_lifetime: config.session_max(),
                ..AuthSettings::default()
            },
            login_throttle: Arc::new(LoginThrottle::default()),
            meeting_lookups: Arc::new(FailureLimiter::new(app::state::meeting_lookup_policy())),
            public_url: public_url.clone(),
            trusted_proxies: Arc::new(config.trusted_proxies.clone()),
            ice: Arc::new(app::ice::ssr::IceSettings {
                stun_urls: config.stun_urls.clone(),
                turn_urls: config.turn_urls.clone(),
                turn_secret: config.turn_secret.clone(),
                credential_ttl: Duration::from_secs(config.turn_credential_ttl_seconds),
                relay_only: config.ice_transport_policy == config::IceTransportPolicy::Relay,
            }),
            hashing_permits: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get() * 2),
            )),
            bus: rooms.bus.clone(),
            mailer,
        };
        let (drain_tx, drain_rx) = tokio::sync::watch::channel(false);
        let origin = OriginPolicy {
            public_origin: public_url.clone(),
        };
        let signaling = signaling::SignalingState {
            app: state.clone(),
            rooms,
            origin: Arc::new(origin.clone()),
            chat_limits: Arc::new(chat::ChatLimits::new(20, config.chat_messages_per_minute)),
            draining: drain_rx,
        };

        let store = DbSessionStore::new(pool);
        store.spawn_cleanup(Duration::from_secs(300));
        let router = http::app(
            state.clone(),
            store,
            signaling,
            HttpSettings {
                origin,
                secure_cookies: config.secure_cookies(),
                session_idle: config.session_idle(),
            },
        );

        Ok(Self {
            listener,
            router,
            local_addr,
            state,
            shutdown_grace: Duration::from_secs(config.shutdown_grace_seconds),
            drain: drain_tx,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then lets open requests finish for
    /// at most the grace period.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let grace = self.shutdown_grace;
        let drain = self.drain;
        tokio::spawn(async move {
            shutdown.await;
            // Calls first: clients reconnect elsewhere and resume.
            let _ = drain.send(true);
            let _ = stop_tx.send(true);
        });
        let mut graceful_rx = stop_rx.clone();
        let server = axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = graceful_rx.wait_for(|stop| *stop).await;
            tracing::info!("shutting down: no new connections, draining open requests");
        });
        let mut deadline_rx = stop_rx;
        tokio::select! {
            result = server => result,
            _ = async move {
                let _ = deadline_rx.wait_for(|stop| *stop).await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(grace_seconds = grace.as_secs(), "drain deadline passed; closing remaining connections");
                Ok(())
            }
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("received Ctrl-C"),
        _ = terminate => tracing::info!("received SIGTERM"),
    }
}
