//! The whole HTTP surface, built in one place.

use crate::security::{self, CspNonce, CspSettings, OriginPolicy};
use crate::signaling::{self, SignalingState};
use crate::{calendar, health, transcript};
use app::state::AppState;
use app::{shell, App};
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use leptos::prelude::{provide_context, use_context};
use leptos_axum::{generate_route_list, LeptosRoutes};
use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower_http::catch_panic::{CatchPanicLayer, ResponseForPanic};
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, Session, SessionManagerLayer};

use crate::session_store::DbSessionStore;

/// Largest request body accepted (forms and server-function calls are small).
const MAX_BODY_BYTES: usize = 64 * 1024;

pub struct HttpSettings {
    pub origin: OriginPolicy,
    /// The public URL is https: Secure `__Host-` cookie, HSTS.
    pub https: bool,
    pub session_idle: Duration,
    /// Longest wait for a response to start (see `Config::request_timeout`).
    pub request_timeout: Duration,
    pub metrics: Arc<HttpMetrics>,
    /// Where every request is counted (served on the metrics listener).
    pub counted: domain::metrics::Metrics,
    /// Requests one API token may make per minute.
    pub api_per_minute: u32,
    /// The browser bundle and its version.
    pub bundle: crate::bundle::Bundle,
}

/// Counts of what went wrong while serving, kept for `/metrics`.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    /// Requests whose handler panicked (each answered 500).
    pub panics: AtomicU64,
}

/// Turns a panic in a handler into a logged, counted 500 with a generic
/// body: the panic message stays in the log, never in the response.
#[derive(Clone)]
pub struct PanicTo500 {
    metrics: Arc<HttpMetrics>,
}

impl ResponseForPanic for PanicTo500 {
    type ResponseBody = Body;

    fn response_for_panic(&mut self, err: Box<dyn Any + Send + 'static>) -> Response<Body> {
        self.metrics.panics.fetch_add(1, Ordering::Relaxed);
        let message = err
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| err.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_string());
        tracing::error!(panic = %message, "a request handler panicked; answered 500");
        (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
    }
}

/// The layer that catches handler panics (see [`PanicTo500`]).
pub fn catch_panics(metrics: Arc<HttpMetrics>) -> CatchPanicLayer<PanicTo500> {
    CatchPanicLayer::custom(PanicTo500 { metrics })
}

/// The app's page routes, listed once per process.
///
/// Listing them renders the app with every resource's loading switched off
/// through a flag that is global to the process (leptos_server's
/// `SuppressResourceLoad`). Listed again while another instance in the same
/// process renders a page (the integration tests run many), that page's
/// resources would wait forever and the request would time out. The list
/// depends only on the compiled app, so once is also all that is needed.
fn page_routes() -> Vec<leptos_axum::AxumRouteListing> {
    static ROUTES: std::sync::OnceLock<Vec<leptos_axum::AxumRouteListing>> =
        std::sync::OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(App)).clone()
}

pub fn app(
    state: AppState,
    store: DbSessionStore,
    signaling: SignalingState,
    settings: HttpSettings,
) -> Router {
    let routes = page_routes();
    // One state for every call connection, shared: each connection's task
    // holds it for the connection's whole life (see `signaling::connection::run`).
    let signaling = std::sync::Arc::new(signaling);
    let context_state = state.clone();
    let chunk_preloads = settings.bundle.chunk_preloads();
    let provide_state = move || {
        provide_context(context_state.clone());
        provide_context(chunk_preloads.clone());
        // The script nonce this response's Content-Security-Policy allows
        // (set by `security::content_security_policy`): Leptos puts it on
        // its hydration and streaming scripts.
        let nonce = use_context::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<CspNonce>().cloned());
        if let Some(CspNonce(nonce)) = nonce {
            provide_context(leptos::nonce::Nonce::from_value(nonce));
        }
    };

    let idle = time::Duration::try_from(settings.session_idle).unwrap_or(time::Duration::hours(12));
    // SameSite=Lax, not Strict: a meeting link opened from an email or a chat
    // app is a cross-site top-level navigation, and Strict would withhold the
    // cookie there, showing a signed-in person as a stranger. Lax still keeps
    // the cookie off cross-site POSTs, iframes and subresource requests; the
    // Origin check covers the rest.
    let sessions = SessionManagerLayer::new(store)
        .with_name(security::session_cookie_name(settings.https))
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(settings.https)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(idle));

    let touch_interval_ms = state.auth.touch_interval.as_millis() as i64;
    // The API authenticates by token alone: added below the session layer
    // (no cookie is read or set for it) and the Origin check (a cross-site
    // request cannot carry a token it does not know).
    let api = crate::api::router(crate::api::ApiState {
        app: state.clone(),
        presence: signaling.rooms.presence.clone(),
        per_token: domain::throttle::Rule::per(settings.api_per_minute, Duration::from_secs(60)),
    })
    .layer(TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        settings.request_timeout,
    ));
    let csp = Arc::new(CspSettings::for_public_origin(
        &settings.origin.public_origin,
    ));
    let mut router = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/m/{code}/invite.ics", get(calendar::invite_ics))
        .route("/m/{code}/chat.txt", get(transcript::text))
        .route("/m/{code}/chat.md", get(transcript::markdown))
        // The bundle, served here rather than by Leptos's file fallback,
        // which drops `If-Modified-Since` (every revalidation would send
        // the whole wasm again), under an address that follows its content.
        .merge(settings.bundle.routes())
        .leptos_routes_with_context(&state, routes, provide_state.clone(), {
            let options = state.leptos_options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(provide_state, shell))
        // A page (or the "not found" page) the browser leaves mid-stream
        // is still rendered to its end, so no part of the render outlives
        // its reactive owner.
        .layer(middleware::from_fn(crate::page_render::finish_page_renders))
        // Until the response starts: a stalled database or a slow body
        // cannot hold a request forever. Added before the WebSocket route,
        // which it must not cover.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            settings.request_timeout,
        ))
        .route(
            "/m/{code}/door/events",
            get(signaling::door_events).with_state(signaling.clone()),
        )
        .route(
            "/m/{code}/ws",
            get(signaling::upgrade).with_state(signaling),
        )
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            touch_active_session(request, next, touch_interval_ms)
        }))
        .layer(middleware::from_fn(
            |session: tower_sessions::Session, request: Request, next: Next| {
                crate::form_echo::keep_refused_forms(session, request, next, MAX_BODY_BYTES)
            },
        ))
        .layer(sessions)
        .layer(middleware::from_fn_with_state(
            Arc::new(settings.origin),
            security::require_same_origin,
        ))
        .nest("/api/v1", api)
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        // Inside the header layers, so a 500 from a panic carries them too.
        .layer(catch_panics(settings.metrics));
    for (name, value) in security::security_headers(settings.https) {
        router = router.layer(SetResponseHeaderLayer::if_not_present(name, value));
    }
    // Pages and answers are the viewer's own and change from one moment to
    // the next: never kept by a shared cache, always asked for again (the
    // bundle sets its own, a year long).
    router = router.layer(SetResponseHeaderLayer::if_not_present(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("private, no-cache"),
    ));
    // gzip: the wasm bundle shrinks to about a third on the wire.
    router
        .layer(middleware::from_fn_with_state(
            csp,
            security::content_security_policy,
        ))
        .layer(CompressionLayer::new())
        .layer(TraceLayer::new_for_http())
        .layer(middleware::from_fn_with_state(settings.counted, track_http))
        .with_state(state)
}

/// Page loads and server-function calls count as activity and push the
/// session's idle deadline forward; static files do not.
async fn touch_active_session(request: Request, next: Next, interval_ms: i64) -> Response {
    let is_activity = request.uri().path().starts_with("/api/")
        || request
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"));
    if is_activity {
        if let Some(session) = request.extensions().get::<Session>().cloned() {
            if let Err(err) = app::auth::ssr::touch_session(&session, interval_ms).await {
                tracing::warn!(error = %err, "could not refresh the session");
            }
        }
    }
    next.run(request).await
}

/// The label of a request's route: its pattern (`/m/{code}`), never the
/// path people typed, so the number of series stays bounded.
fn route_label(request: &Request) -> String {
    if let Some(matched) = request.extensions().get::<MatchedPath>() {
        return matched.as_str().to_string();
    }
    let path = request.uri().path();
    if path.starts_with("/pkg/") {
        "/pkg/*".to_string()
    } else {
        // Public files and anything unknown (404s): one series.
        "(other)".to_string()
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Counts one request by route, method and status, and times it until
/// its response starts.
pub async fn track_http(
    State(metrics): State<domain::metrics::Metrics>,
    request: Request,
    next: Next,
) -> Response {
    let route = route_label(&request);
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.http_request(
        &route,
        method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_panicking_handler_becomes_a_counted_generic_500() {
        let metrics = Arc::new(HttpMetrics::default());
        let router: Router = Router::new()
            .route(
                "/boom",
                get(|| async {
                    if true {
                        panic!("secret detail");
                    }
                    "unreachable"
                }),
            )
            .route("/fine", get(|| async { "fine" }))
            .layer(catch_panics(metrics.clone()));
        let response = router
            .clone()
            .oneshot(Request::get("/boom").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], b"internal error\n");
        assert_eq!(metrics.panics.load(Ordering::Relaxed), 1);
        // The service goes on serving.
        let response = router
            .oneshot(Request::get("/fine").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(metrics.panics.load(Ordering::Relaxed), 1);
    }
}
