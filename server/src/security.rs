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
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
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

/// Headers every response carries. `Strict-Transport-Security` only when
/// moim is reached over https: sent over plain http it would be ignored, and
/// on a host that also serves http it would lock people out.
pub fn security_headers(https: bool) -> Vec<(header::HeaderName, HeaderValue)> {
    let mut headers = vec![
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
            header::HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static(
                "camera=(self), microphone=(self), display-capture=(self), geolocation=()",
            ),
        ),
    ];
    if https {
        // One year; not `includeSubDomains`: other hosts under the same
        // domain are not ours to decide for.
        headers.push((
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ));
    }
    headers
}

/// The session cookie's name. Over https it carries the `__Host-` prefix:
/// browsers then accept it only with `Secure`, `Path=/` and no `Domain`, so
/// a neighbouring subdomain or a plain-http page cannot plant or shadow it.
/// Over plain http (development, a LAN) the prefix would make browsers
/// refuse the cookie, so the name is plain.
pub fn session_cookie_name(https: bool) -> &'static str {
    if https {
        "__Host-moim.sid"
    } else {
        "moim.sid"
    }
}

/// The script nonce of one response, put into the request's extensions by
/// [`content_security_policy`] for the page renderer (which gives it to
/// Leptos, whose hydration and streaming scripts carry it).
#[derive(Debug, Clone)]
pub struct CspNonce(pub String);

/// What the Content-Security-Policy needs to know about this instance.
#[derive(Debug, Clone)]
pub struct CspSettings {
    /// `ws://host[:port]` or `wss://…` of the public URL: the signaling
    /// WebSocket. `'self'` covers same-origin WebSockets in current
    /// browsers, but older Safari needs the origin spelled out.
    pub websocket_origin: String,
}

impl CspSettings {
    pub fn for_public_origin(public_origin: &str) -> Self {
        let websocket_origin = match public_origin.strip_prefix("https://") {
            Some(rest) => format!("wss://{rest}"),
            None => format!(
                "ws://{}",
                public_origin
                    .strip_prefix("http://")
                    .unwrap_or(public_origin)
            ),
        };
        Self { websocket_origin }
    }

    /// The policy for a response whose inline scripts carry `nonce`.
    ///
    /// - scripts: our own files, inline scripts with this response's nonce
    ///   (Leptos' hydration and streaming scripts), and compiling the wasm
    ///   bundle (`'wasm-unsafe-eval'`); no other inline script or `eval`;
    /// - styles: our own style sheets; inline `style` *attributes* only (the
    ///   server-rendered width of the microphone level meter), never
    ///   `<style>` elements;
    /// - connections: our own origin and its WebSocket;
    /// - media: camera, microphone and screen streams (`mediastream:`,
    ///   `blob:`); images from our origin or generated in the page.
    pub fn policy(&self, nonce: &str) -> String {
        format!(
            "default-src 'self'; \
             script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
             style-src 'self'; style-src-attr 'unsafe-inline'; \
             img-src 'self' data: blob:; \
             media-src 'self' blob: mediastream:; \
             connect-src 'self' {ws}; \
             font-src 'self'; \
             worker-src 'self'; \
             manifest-src 'self'; \
             frame-src 'none'; \
             frame-ancestors 'none'; \
             object-src 'none'; \
             base-uri 'self'; \
             form-action 'self'",
            ws = self.websocket_origin,
        )
    }
}

/// Gives every request a fresh script nonce and its response the
/// Content-Security-Policy allowing that nonce (unless a handler set one).
pub async fn content_security_policy(
    State(settings): State<Arc<CspSettings>>,
    mut request: Request,
    next: Next,
) -> Response {
    // 122 random bits from the OS generator, as 32 hex digits (a valid
    // base64 value, as CSP asks).
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    request.extensions_mut().insert(CspNonce(nonce.clone()));
    let mut response = next.run(request).await;
    if !response
        .headers()
        .contains_key(header::CONTENT_SECURITY_POLICY)
    {
        match HeaderValue::from_str(&settings.policy(&nonce)) {
            Ok(value) => {
                response
                    .headers_mut()
                    .insert(header::CONTENT_SECURITY_POLICY, value);
            }
            Err(err) => {
                // Only a public URL with odd characters could do this; a
                // page without its policy must not go out.
                tracing::error!(error = %err, "cannot build the Content-Security-Policy");
                return (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response();
            }
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_allows_only_own_scripts_and_the_nonce() {
        let csp = CspSettings::for_public_origin("https://meet.example.org").policy("abc123");
        let directive = |name: &str| {
            csp.split(';')
                .map(str::trim)
                .find(|d| d.split_whitespace().next() == Some(name))
                .unwrap_or_else(|| panic!("{name} missing in {csp}"))
                .to_string()
        };
        assert_eq!(directive("default-src"), "default-src 'self'");
        assert_eq!(
            directive("script-src"),
            "script-src 'self' 'nonce-abc123' 'wasm-unsafe-eval'"
        );
        assert_eq!(
            directive("connect-src"),
            "connect-src 'self' wss://meet.example.org"
        );
        assert_eq!(directive("style-src"), "style-src 'self'");
        assert!(!csp.contains("unsafe-eval'") || csp.contains("'wasm-unsafe-eval'"));
        assert!(
            !csp.contains("'unsafe-inline'; script")
                && !directive("script-src").contains("unsafe-inline")
        );
        assert_eq!(directive("frame-ancestors"), "frame-ancestors 'none'");
        assert_eq!(directive("object-src"), "object-src 'none'");
        assert_eq!(
            CspSettings::for_public_origin("http://127.0.0.1:3000").websocket_origin,
            "ws://127.0.0.1:3000"
        );
    }

    #[test]
    fn hsts_and_cookie_prefix_only_over_https() {
        let has_hsts = |https| {
            security_headers(https)
                .iter()
                .any(|(name, _)| name == header::STRICT_TRANSPORT_SECURITY)
        };
        assert!(has_hsts(true));
        assert!(!has_hsts(false));
        assert_eq!(session_cookie_name(true), "__Host-moim.sid");
        assert_eq!(session_cookie_name(false), "moim.sid");
    }

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
