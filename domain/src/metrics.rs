//! What an instance is doing, as numbers for Prometheus (`GET /metrics` on
//! the metrics listener).
//!
//! `prometheus-client` (the Prometheus project's own Rust client), not the
//! `metrics` facade: its registry is a value, not a process-wide recorder,
//! so every instance (and every test app of the integration tests, many in
//! one process) counts on its own; label sets are types, so a label can
//! only take the values the code names. No label carries a meeting code, a
//! user or an address: cardinality stays bounded whatever people do.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The route pattern (`/m/{code}`), never the path itself.
    pub route: String,
    pub method: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MessageLabels {
    pub direction: &'static str,
    /// The message's `type` on the wire (a closed set).
    pub r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PathLabels {
    /// `direct` or `server`.
    pub media_path: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    /// Which limit refused: the prefix of its key (`chat`, `lookup`, …) or
    /// `signaling` for a call connection's frame budget.
    pub limit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloseLabels {
    /// The WebSocket close code moim sent.
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: &'static str,
}

/// A media server datagram's direction and kind (`stun`, `dtls`, `rtp`,
/// `rtcp`, `other`), or a feedback message's direction and kind (`nack`,
/// `pli`, `fir`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionKindLabels {
    pub direction: &'static str,
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabels {
    pub version: &'static str,
}

/// How a sign-in attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignInOutcome {
    Success,
    /// Wrong name or password.
    Failure,
    /// Refused before checking: too many failures.
    Throttled,
}

impl SignInOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Throttled => "throttled",
        }
    }
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The families, registered once; cloning `Metrics` shares them.
struct Families {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    http_panics: Counter,
    websockets_open: Gauge,
    calls: Family<PathLabels, Gauge>,
    call_participants: Family<PathLabels, Gauge>,
    signaling_messages: Family<MessageLabels, Counter>,
    rate_limited: Family<LimitLabels, Counter>,
    websocket_closes: Family<CloseLabels, Counter>,
    chat_stored: Counter,
    sign_ins: Family<OutcomeLabels, Counter>,
    redis_up: Gauge,
    redis_publish_failures: Counter,
    redis_resubscriptions: Counter,
    db_pool: Family<StateLabels, Gauge>,
    db_query: Family<OperationLabels, Histogram, fn() -> Histogram>,
    sfu_packets: Family<DirectionKindLabels, Counter>,
    sfu_bytes: Family<DirectionKindLabels, Counter>,
    sfu_feedback: Family<DirectionKindLabels, Counter>,
    sfu_held_back: Counter,
    sfu_layer_switches: Counter,
    sfu_rooms: Gauge,
    sfu_clients: Gauge,
    sfu_subscriptions: Gauge,
    sfu_restarts: Counter,
    sfu_silent_dropped: Counter,
    media_path_switches: Family<PathLabels, Counter>,
    webhook_attempts: Family<OutcomeLabels, Counter>,
    webhooks_pending: Gauge,
}

/// One instance's metrics. Cheap to clone; every clone counts into the
/// same families.
#[derive(Clone)]
pub struct Metrics {
    families: Arc<Families>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(false)
    }
}

impl Metrics {
    /// The families of one instance; the Redis ones only `with_redis`, so
    /// a single instance does not report a Redis that is "down".
    pub fn new(with_redis: bool) -> Self {
        let mut registry = Registry::with_prefix("moim");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route pattern, method and status",
            http_requests.clone(),
        );
        let http_duration =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register(
            "http_request_duration_seconds",
            "Time until the response started, by route pattern and method",
            http_duration.clone(),
        );
        let http_panics = Counter::default();
        registry.register(
            "http_panics",
            "Request handlers that panicked (each answered 500)",
            http_panics.clone(),
        );
        let websockets_open = Gauge::default();
        registry.register(
            "websockets_open",
            "Call connections (WebSockets) open on this instance",
            websockets_open.clone(),
        );
        let calls = Family::<PathLabels, Gauge>::default();
        registry.register(
            "calls",
            "Calls with someone connected to this instance, by media path",
            calls.clone(),
        );
        let call_participants = Family::<PathLabels, Gauge>::default();
        registry.register(
            "call_participants",
            "People in a call through this instance, by media path",
            call_participants.clone(),
        );
        let signaling_messages = Family::<MessageLabels, Counter>::default();
        registry.register(
            "signaling_messages",
            "Call signaling messages, by direction (in: from browsers) and type",
            signaling_messages.clone(),
        );
        let rate_limited = Family::<LimitLabels, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests or messages refused by a rate limit, by limit",
            rate_limited.clone(),
        );
        let websocket_closes = Family::<CloseLabels, Counter>::default();
        registry.register(
            "websocket_closes",
            "Call connections moim closed, by close code",
            websocket_closes.clone(),
        );
        let chat_stored = Counter::default();
        registry.register(
            "chat_messages_stored",
            "Chat messages stored (each once, however often it was sent)",
            chat_stored.clone(),
        );
        let sign_ins = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "sign_ins",
            "Sign-in attempts, by outcome (success, failure, throttled)",
            sign_ins.clone(),
        );
        let redis_up = Gauge::default();
        let redis_publish_failures = Counter::default();
        let redis_resubscriptions = Counter::default();
        if with_redis {
            registry.register(
                "redis_up",
                "1 while the room fan-out through Redis works, 0 while it does not",
                redis_up.clone(),
            );
            registry.register(
                "redis_publish_failures",
                "Room events that could not be published to Redis",
                redis_publish_failures.clone(),
            );
            registry.register(
                "redis_resubscriptions",
                "Times the Redis subscription was made again after a loss",
                redis_resubscriptions.clone(),
            );
        }
        let db_pool = Family::<StateLabels, Gauge>::default();
        registry.register(
            "db_pool_connections",
            "Database connections of the pool, by state (in_use, idle)",
            db_pool.clone(),
        );
        let db_query =
            Family::<OperationLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register(
            "db_query_duration_seconds",
            "Time of the database work of one operation",
            db_query.clone(),
        );
        let sfu_packets = Family::<DirectionKindLabels, Counter>::default();
        registry.register(
            "sfu_packets",
            "UDP datagrams through the media server, by direction and kind (rtp: media; rtcp, stun, dtls, other)",
            sfu_packets.clone(),
        );
        let sfu_bytes = Family::<DirectionKindLabels, Counter>::default();
        registry.register(
            "sfu_bytes",
            "UDP bytes through the media server, by direction and kind",
            sfu_bytes.clone(),
        );
        let sfu_feedback = Family::<DirectionKindLabels, Counter>::default();
        registry.register(
            "sfu_feedback",
            "RTCP feedback through the media server: in from browsers, out to publishers; nack (packets lost), pli and fir (keyframe requests)",
            sfu_feedback.clone(),
        );
        let sfu_held_back = Counter::default();
        registry.register(
            "sfu_paused_video_packets",
            "Video packets the media server did not send to a browser because that camera is paused for it (past the last N speakers)",
            sfu_held_back.clone(),
        );
        let sfu_layer_switches = Counter::default();
        registry.register(
            "sfu_layer_switches",
            "Times a browser's stream of a camera moved to another simulcast layer (its tile changed size, its link lost packets or cleared, a layer stopped)",
            sfu_layer_switches.clone(),
        );
        let sfu_rooms = Gauge::default();
        registry.register(
            "sfu_rooms",
            "Calls with media on this instance's media server",
            sfu_rooms.clone(),
        );
        let sfu_clients = Gauge::default();
        registry.register(
            "sfu_clients",
            "Browsers connected to this instance's media server",
            sfu_clients.clone(),
        );
        let sfu_subscriptions = Gauge::default();
        registry.register(
            "sfu_subscriptions",
            "Media forwarding pairs on this instance's media server: each browser receives every other one in its call",
            sfu_subscriptions.clone(),
        );
        let webhook_attempts = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "webhook_attempts",
            "Webhook delivery attempts, by outcome (delivered, failed, gave_up)",
            webhook_attempts.clone(),
        );
        let webhooks_pending = Gauge::default();
        registry.register(
            "webhooks_pending",
            "Webhook deliveries waiting to be sent or retried (all instances)",
            webhooks_pending.clone(),
        );
        let sfu_restarts = Counter::default();
        registry.register(
            "sfu_engine_restarts",
            "Times the media server's engine restarted after a fault",
            sfu_restarts.clone(),
        );
        let sfu_silent_dropped = Counter::default();
        registry.register(
            "sfu_silent_connections_dropped",
            "Media connections the media server dropped because no packet came from their browser for --sfu-silence-limit-seconds",
            sfu_silent_dropped.clone(),
        );
        let media_path_switches = Family::<PathLabels, Counter>::default();
        registry.register(
            "media_path_switches",
            "Automatic calls moved, by the path they moved to (counted once per move, by the instance that made it, whichever instances the call is spread over)",
            media_path_switches.clone(),
        );
        let build = Family::<VersionLabels, Gauge>::default();
        build
            .get_or_create(&VersionLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("build_info", "The running version of moim", build);
        Self {
            families: Arc::new(Families {
                registry,
                http_requests,
                http_duration,
                http_panics,
                websockets_open,
                calls,
                call_participants,
                signaling_messages,
                rate_limited,
                websocket_closes,
                chat_stored,
                sign_ins,
                redis_up,
                redis_publish_failures,
                redis_resubscriptions,
                db_pool,
                db_query,
                sfu_packets,
                sfu_bytes,
                sfu_feedback,
                sfu_held_back,
                sfu_layer_switches,
                sfu_rooms,
                sfu_clients,
                sfu_subscriptions,
                sfu_restarts,
                sfu_silent_dropped,
                media_path_switches,
                webhook_attempts,
                webhooks_pending,
            }),
        }
    }

    /// Everything, in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.families.registry);
        out
    }

    pub fn http_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let f = &self.families;
        f.http_requests
            .get_or_create(&HttpLabels {
                route: route.to_string(),
                method: method.to_string(),
                status: status.to_string(),
            })
            .inc();
        f.http_duration
            .get_or_create(&RouteLabels {
                route: route.to_string(),
                method: method.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Sets the count of handler panics (counted by the HTTP layer).
    pub fn set_http_panics(&self, total: u64) {
        let counter = &self.families.http_panics;
        let seen = counter.get();
        if total > seen {
            counter.inc_by(total - seen);
        }
    }

    /// A call connection opened; the guard counts it closed when dropped.
    pub fn websocket_opened(&self) -> OpenSocket {
        self.families.websockets_open.inc();
        OpenSocket {
            metrics: self.clone(),
        }
    }

    pub fn set_calls(&self, media_path: &'static str, calls: i64, participants: i64) {
        self.families
            .calls
            .get_or_create(&PathLabels { media_path })
            .set(calls);
        self.families
            .call_participants
            .get_or_create(&PathLabels { media_path })
            .set(participants);
    }

    pub fn signaling_in(&self, r#type: &'static str) {
        self.families
            .signaling_messages
            .get_or_create(&MessageLabels {
                direction: "in",
                r#type,
            })
            .inc();
    }

    /// `count` messages of one type were sent (a connection adds up a
    /// batch's before it counts them: one lookup per type and batch, not
    /// per message, on the fan-out path).
    pub fn signaling_out(&self, r#type: &'static str, count: u64) {
        self.families
            .signaling_messages
            .get_or_create(&MessageLabels {
                direction: "out",
                r#type,
            })
            .inc_by(count);
    }

    /// A limit refused something. `limit` names the limit, never a client.
    pub fn rate_limited(&self, limit: &str) {
        self.families
            .rate_limited
            .get_or_create(&LimitLabels {
                limit: limit.to_string(),
            })
            .inc();
    }

    pub fn websocket_closed(&self, code: u16) {
        self.families
            .websocket_closes
            .get_or_create(&CloseLabels {
                code: code.to_string(),
            })
            .inc();
    }

    pub fn chat_stored(&self) {
        self.families.chat_stored.inc();
    }

    pub fn sign_in(&self, outcome: SignInOutcome) {
        self.families
            .sign_ins
            .get_or_create(&OutcomeLabels {
                outcome: outcome.label(),
            })
            .inc();
    }

    pub fn set_redis_up(&self, up: bool) {
        self.families.redis_up.set(i64::from(up));
    }

    pub fn redis_publish_failed(&self) {
        self.families.redis_publish_failures.inc();
    }

    pub fn redis_resubscribed(&self) {
        self.families.redis_resubscriptions.inc();
    }

    pub fn set_db_pool(&self, in_use: i64, idle: i64) {
        let f = &self.families;
        f.db_pool
            .get_or_create(&StateLabels { state: "in_use" })
            .set(in_use);
        f.db_pool
            .get_or_create(&StateLabels { state: "idle" })
            .set(idle);
    }

    pub fn db_query(&self, operation: &'static str, elapsed: Duration) {
        self.families
            .db_query
            .get_or_create(&OperationLabels { operation })
            .observe(elapsed.as_secs_f64());
    }

    /// Times `work` as one database operation.
    pub async fn timed_query<T>(
        &self,
        operation: &'static str,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        let started = std::time::Instant::now();
        let result = work.await;
        self.db_query(operation, started.elapsed());
        result
    }

    /// A datagram of `kind` in (from a browser) or out (to one).
    pub fn sfu_datagram(&self, direction: &'static str, kind: &'static str, bytes: usize) {
        let f = &self.families;
        let labels = DirectionKindLabels { direction, kind };
        f.sfu_packets.get_or_create(&labels).inc();
        f.sfu_bytes.get_or_create(&labels).inc_by(bytes as u64);
    }

    /// A NACK, PLI or FIR in (from a browser) or out (to a publisher).
    pub fn sfu_feedback(&self, direction: &'static str, kind: &'static str) {
        self.families
            .sfu_feedback
            .get_or_create(&DirectionKindLabels { direction, kind })
            .inc();
    }

    /// Video packets held back from browsers for which their camera is
    /// paused (last-N).
    pub fn sfu_held_back(&self, packets: u64) {
        if packets > 0 {
            self.families.sfu_held_back.inc_by(packets);
        }
    }

    /// Receivers' streams moved between simulcast layers.
    pub fn sfu_layer_switches(&self, switches: u64) {
        if switches > 0 {
            self.families.sfu_layer_switches.inc_by(switches);
        }
    }

    pub fn set_sfu_size(&self, rooms: usize, clients: usize, subscriptions: usize) {
        self.families.sfu_rooms.set(rooms as i64);
        self.families.sfu_clients.set(clients as i64);
        self.families.sfu_subscriptions.set(subscriptions as i64);
    }

    /// One webhook attempt: `delivered`, `failed` (to be retried) or
    /// `gave_up`.
    pub fn webhook_attempt(&self, outcome: &'static str) {
        self.families
            .webhook_attempts
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    pub fn set_webhooks_pending(&self, pending: i64) {
        self.families.webhooks_pending.set(pending);
    }

    pub fn sfu_restarted(&self) {
        self.families.sfu_restarts.inc();
    }

    pub fn sfu_dropped_silent(&self) {
        self.families.sfu_silent_dropped.inc();
    }

    /// An automatic call moved to `to`.
    pub fn media_path_switched(&self, to: protocol::MediaPath) {
        let media_path = match to {
            protocol::MediaPath::Direct => "direct",
            protocol::MediaPath::Server => "server",
        };
        self.families
            .media_path_switches
            .get_or_create(&PathLabels { media_path })
            .inc();
    }
}

/// One open call connection, counted until dropped.
pub struct OpenSocket {
    metrics: Metrics,
}

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.metrics.families.websockets_open.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample line that starts with `series ` (name and
    /// labels exactly as encoded).
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
    }

    #[test]
    fn counters_and_gauges_come_out_in_the_prometheus_text_format() {
        let metrics = Metrics::new(false);
        metrics.http_request("/m/{code}", "GET", 200, Duration::from_millis(3));
        metrics.http_request("/m/{code}", "GET", 200, Duration::from_millis(5));
        metrics.sign_in(SignInOutcome::Throttled);
        let socket = metrics.websocket_opened();
        let text = metrics.encode();
        assert!(
            text.contains("# TYPE moim_http_requests_total counter"),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                r#"moim_http_requests_total{route="/m/{code}",method="GET",status="200"}"#
            ),
            Some(2.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"moim_http_request_duration_seconds_count{route="/m/{code}",method="GET"}"#
            ),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, r#"moim_sign_ins_total{outcome="throttled"}"#),
            Some(1.0)
        );
        assert_eq!(sample(&text, "moim_websockets_open"), Some(1.0));
        drop(socket);
        assert_eq!(sample(&metrics.encode(), "moim_websockets_open"), Some(0.0));
    }

    #[test]
    fn clones_share_their_counts_and_instances_do_not() {
        let one = Metrics::new(false);
        let other = Metrics::new(false);
        one.clone().chat_stored();
        assert_eq!(
            sample(&one.encode(), "moim_chat_messages_stored_total"),
            Some(1.0)
        );
        assert_eq!(
            sample(&other.encode(), "moim_chat_messages_stored_total"),
            Some(0.0)
        );
    }

    #[test]
    fn panics_counted_elsewhere_are_carried_over_without_going_back() {
        let metrics = Metrics::new(false);
        metrics.set_http_panics(2);
        metrics.set_http_panics(1);
        assert_eq!(
            sample(&metrics.encode(), "moim_http_panics_total"),
            Some(2.0)
        );
    }
}
