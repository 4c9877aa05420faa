//! Keeps what a refused plain form post had sent, for the page that shows
//! the refusal (see `app::form_echo`).
//!
//! A server function called by a plain `<form>` (the page was not yet
//! interactive, or JavaScript is off) answers with a redirect back to the
//! form whose address carries the error only. This layer reads the posted
//! fields on the way in, and when the answer is such a refusal keeps them
//! (passwords and secrets dropped) in the session; the next page that
//! shows a refusal takes them out again and hands them to the page in the
//! request's extensions. Nothing goes into the address, so nothing typed
//! ends up in history or access logs.

use app::form_echo::{FormEcho, SESSION_KEY};
use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_sessions::Session;

/// Runs inside the session layer (it needs the session) and inside the
/// body limit (the body is read whole, as the server function would).
pub async fn keep_refused_forms(
    session: Session,
    request: Request,
    next: Next,
    body_limit: usize,
) -> Response {
    if is_plain_form_post(&request) {
        let (parts, body) = request.into_parts();
        let Ok(bytes) = to_bytes(body, body_limit).await else {
            return StatusCode::PAYLOAD_TOO_LARGE.into_response();
        };
        let echo = FormEcho::from_pairs(url::form_urlencoded::parse(&bytes).into_owned());
        let response = next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
        if is_refusal_redirect(&response) && !echo.is_empty() {
            if let Err(err) = session.insert(SESSION_KEY, echo).await {
                // The refusal still shows; only the typed values are lost.
                tracing::warn!(error = %err, "could not keep a refused form's values");
            }
        }
        return response;
    }
    let mut request = request;
    if shows_a_refusal(&request) {
        match session.remove::<FormEcho>(SESSION_KEY).await {
            Ok(Some(echo)) => {
                request.extensions_mut().insert(echo);
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, "could not read a refused form's values"),
        }
    }
    next.run(request).await
}

/// A server function posted by a plain `<form>` (the framework's own
/// test), with the form's usual encoding: the fields can be read.
fn is_plain_form_post(request: &Request) -> bool {
    app::error::is_plain_form_post_to(request.method(), request.uri(), request.headers())
        && request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.contains("application/x-www-form-urlencoded"))
}

/// The framework's answer to a refused plain post: back to the form, with
/// the error in the address.
fn is_refusal_redirect(response: &Response) -> bool {
    response.status().is_redirection()
        && response
            .headers()
            .get(header::LOCATION)
            .and_then(|location| location.to_str().ok())
            .is_some_and(|location| location.contains("__err="))
}

/// A page opened by that redirect.
fn shows_a_refusal(request: &Request) -> bool {
    request.method() == Method::GET
        && request
            .uri()
            .query()
            .is_some_and(|query| query.split('&').any(|pair| pair.starts_with("__err=")))
}
