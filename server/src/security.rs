//! Cross-site request protection and security headers.
//!
//! Every state-changing request (any method but GET/HEAD/OPTIONS/TRACE) must
//! come from moim's own pages: `Sec-Fetch-Site: same-origin`, or an `Origin`
//! equal to the public URL's origin or to the request's own Host. Requests
//! that show neither are refused too: browsers always send one of them on a
//! POST, so a missing pair means a non-browser client or a stripped request.
//! The same check guards WebSocket upgrades (a GET) where they are handled.

use crate::error::HttpError;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct OriginPolicy {
    /// `scheme://host[:port]` of the public URL.
    pub public_origin: String,
}

/// Whether a request's headers show it comes from our own origin.
pub fn is_same_origin(headers: &HeaderMap, policy: &OriginPolicy) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        match site {
            "same-origin" => return true,
            "cross-site" | "same-site" => return false,
            // "none" (typed or bookmarked): decide by Origin below.
            _ => {}
        }
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    if origin == policy.public_origin {
        return true;
    }
    // Behind a proxy that keeps Host, or on an address other than the
    // configured public one (localhost vs 127.0.0.1): the Origin's authority
    // must equal the Host the browser sent this very request to.
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match (origin.split_once("://"), host) {
        (Some((scheme, authority)), Some(host)) => {
            matches!(scheme, "http" | "https") && authority.eq_ignore_ascii_case(host)
        }
        _ => false,
    }
}

pub async fn require_same_origin(
    State(policy): State<Arc<OriginPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    if request.method().is_safe() || is_same_origin(request.headers(), &policy) {
        return next.run(request).await;
    }
    tracing::warn!(
        method = %request.method(),
        path = %request.uri().path(),
        origin = ?request.headers().get(header::ORIGIN),
        "refused a cross-site request"
    );
    HttpError::CrossSite.into_response()
}

/// Headers every response carries.
pub fn security_headers() -> Vec<(header::HeaderName, HeaderValue)> {
    vec![
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("strict-origin-when-cross-origin"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "frame-ancestors 'none'; object-src 'none'; base-uri 'self'; form-action 'self'",
            ),
        ),
        (
            header::HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static(
                "camera=(self), microphone=(self), display-capture=(self), geolocation=()",
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> OriginPolicy {
        OriginPolicy {
            public_origin: "https://meet.example.org".to_string(),
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn same_origin_signals_are_accepted() {
        assert!(is_same_origin(
            &headers(&[("sec-fetch-site", "same-origin")]),
            &policy()
        ));
        assert!(is_same_origin(
            &headers(&[("origin", "https://meet.example.org")]),
            &policy()
        ));
        assert!(is_same_origin(
            &headers(&[
                ("origin", "http://localhost:3000"),
                ("host", "localhost:3000")
            ]),
            &policy()
        ));
    }

    #[test]
    fn foreign_or_missing_origins_are_refused() {
        assert!(!is_same_origin(&headers(&[]), &policy()));
        assert!(!is_same_origin(
            &headers(&[("sec-fetch-site", "cross-site")]),
            &policy()
        ));
        assert!(!is_same_origin(
            &headers(&[
                ("sec-fetch-site", "same-site"),
                ("origin", "https://meet.example.org")
            ]),
            &policy()
        ));
        assert!(!is_same_origin(
            &headers(&[
                ("origin", "https://evil.example"),
                ("host", "meet.example.org")
            ]),
            &policy()
        ));
        assert!(!is_same_origin(
            &headers(&[("origin", "null"), ("host", "null")]),
            &policy()
        ));
    }
}
