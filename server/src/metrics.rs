//! `GET /metrics` on its own listener (`--metrics-listen`, loopback by
//! default). The numbers themselves live in `domain::metrics`; the main
//! listener counts its requests in `http::track_http`.

use crate::http::HttpMetrics;
use crate::signaling::CallCensus;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use domain::metrics::Metrics;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::TcpListener;

/// What a scrape reads besides the counters: the gauges that are looked
/// up when asked rather than kept up to date.
#[derive(Clone)]
pub struct Scrape {
    pub metrics: Metrics,
    pub pool: sqlx::AnyPool,
    pub census: Arc<CallCensus>,
    /// The room fan-out, when it goes through Redis.
    pub redis: Option<Arc<dyn domain::rooms::bus::RoomBus>>,
    pub http: Arc<HttpMetrics>,
}

/// The metrics listener's whole surface: `/metrics`, nothing else.
pub fn router(scrape: Scrape) -> Router {
    Router::new()
        .route("/metrics", get(serve_metrics))
        .with_state(scrape)
}

async fn serve_metrics(State(scrape): State<Scrape>) -> Response {
    let metrics = &scrape.metrics;
    let size = scrape.pool.size() as i64;
    let idle = scrape.pool.num_idle() as i64;
    metrics.set_db_pool((size - idle).max(0), idle);
    let (direct, server) = scrape.census.count();
    metrics.set_calls("direct", direct.calls as i64, direct.participants as i64);
    metrics.set_calls("server", server.calls as i64, server.participants as i64);
    if let Some(bus) = &scrape.redis {
        metrics.set_redis_up(bus.is_healthy());
    }
    metrics.set_http_panics(scrape.http.panics.load(Ordering::Relaxed));
    if let Ok(pending) = domain::webhooks::pending(&scrape.pool).await {
        metrics.set_webhooks_pending(pending);
    }
    (
        [(header::CONTENT_TYPE, domain::metrics::CONTENT_TYPE)],
        metrics.encode(),
    )
        .into_response()
}

/// Binds the metrics listener: the address given, or the default one
/// (loopback), or, when the default is taken (another instance on this
/// host) and none was given, a free port beside it.
pub async fn bind(chosen: Option<SocketAddr>) -> std::io::Result<TcpListener> {
    match chosen {
        Some(addr) => TcpListener::bind(addr).await,
        None => match TcpListener::bind(crate::config::METRICS_DEFAULT).await {
            Ok(listener) => Ok(listener),
            Err(err) => {
                let fallback = SocketAddr::new(crate::config::METRICS_DEFAULT.ip(), 0);
                let listener = TcpListener::bind(fallback).await?;
                tracing::warn!(
                    error = %err,
                    default = %crate::config::METRICS_DEFAULT,
                    using = ?listener.local_addr().ok(),
                    "the metrics port is taken; using another (set --metrics-listen)"
                );
                Ok(listener)
            }
        },
    }
}
