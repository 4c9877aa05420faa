//! The whole HTTP surface, built in one place.

use crate::security::{self, OriginPolicy};
use crate::signaling::{self, SignalingState};
use crate::{calendar, health, transcript};
use app::state::AppState;
use app::{shell, App};
use axum::extract::Request;
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};
use std::sync::Arc;
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, Session, SessionManagerLayer};

use crate::session_store::DbSessionStore;

/// Largest request body accepted (forms and server-function calls are small).
const MAX_BODY_BYTES: usize = 64 * 1024;

pub struct HttpSettings {
    pub origin: OriginPolicy,
    pub secure_cookies: bool,
    pub session_idle: std::time::Duration,
}

pub fn app(
    state: AppState,
    store: DbSessionStore,
    signaling: SignalingState,
    settings: HttpSettings,
) -> Router {
    let routes = generate_route_list(App);
    let context_state = state.clone();
    let provide_state = move || provide_context(context_state.clone());

    let idle = time::Duration::try_from(settings.session_idle).unwrap_or(time::Duration::hours(12));
    // SameSite=Lax, not Strict: a meeting link opened from an email or a chat
    // app is a cross-site top-level navigation, and Strict would withhold the
    // cookie there, showing a signed-in person as a stranger. Lax still keeps
    // the cookie off cross-site POSTs, iframes and subresource requests; the
    // Origin check covers the rest.
    let sessions = SessionManagerLayer::new(store)
        .with_name("moim.sid")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(settings.secure_cookies)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(idle));

    let touch_interval_ms = state.auth.touch_interval.as_millis() as i64;
    let mut router = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/m/{code}/invite.ics", get(calendar::invite_ics))
        .route("/m/{code}/chat.txt", get(transcript::text))
        .route("/m/{code}/chat.md", get(transcript::markdown))
        .route(
            "/m/{code}/ws",
            get(signaling::upgrade).with_state(signaling),
        )
        .leptos_routes_with_context(&state, routes, provide_state.clone(), {
            let options = state.leptos_options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(provide_state, shell))
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            touch_active_session(request, next, touch_interval_ms)
        }))
        .layer(sessions)
        .layer(middleware::from_fn_with_state(
            Arc::new(settings.origin),
            security::require_same_origin,
        ))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES));
    for (name, value) in security::security_headers() {
        router = router.layer(SetResponseHeaderLayer::if_not_present(name, value));
    }
    // gzip: the wasm bundle shrinks to about a third on the wire.
    router
        .layer(CompressionLayer::new())
        .layer(TraceLayer::new_for_http())
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
