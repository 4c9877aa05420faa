//! A page's render runs to its end even when the browser goes first.
//!
//! Leptos streams a page while the request's reactive owner renders it,
//! and disposes of the owner when the stream ends, or, when the stream is
//! dropped before its end (the browser navigated away, a client gave up),
//! at the drop. Part of the render may then still be running on another
//! worker thread: a view resolved in a `Suspend` that reads a signal the
//! drop just disposed of (every translated text does) panics that worker's
//! task ("Tried to access a reactive value that has already been
//! disposed"). Release builds did so about 7 times in 1,000 page loads
//! cut off after their first bytes; the fix upstream
//! (leptos-rs/leptos#3595) is not released. So a page's body dropped
//! before its end is handed to a task that reads it to the end, bounded
//! by [`FINISH_LIMIT`], and only then drops it: the owner goes the way it
//! goes after a complete response, once nothing renders any more.

use axum::body::Body;
use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use http_body::{Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// How long a render left by its browser may go on. A page whose data
/// takes longer is dropped then, as before.
pub const FINISH_LIMIT: Duration = Duration::from_secs(30);

/// Middleware: HTML responses (the pages Leptos renders) get a body that
/// finishes its render if dropped early; anything else passes as it is.
pub async fn finish_page_renders(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let is_page = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/html"));
    if !is_page {
        return response;
    }
    response.map(|body| Body::new(FinishOnDrop::new(body)))
}

/// A response body that, dropped before its end, is read to the end by a
/// task of its own.
pub struct FinishOnDrop {
    /// `None` once it ended (nothing left to finish).
    body: Option<Body>,
}

impl FinishOnDrop {
    pub fn new(body: Body) -> Self {
        Self { body: Some(body) }
    }
}

impl http_body::Body for FinishOnDrop {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let Some(body) = self.body.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            self.body = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body
            .as_ref()
            .is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), http_body::Body::size_hint)
    }
}

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        let Some(body) = self.body.take() else {
            return;
        };
        if http_body::Body::is_end_stream(&body) {
            return;
        }
        // Bodies are dropped on the runtime (by the connection's task);
        // without one there is nothing to finish on.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let mut rest = body.into_data_stream();
            let read_to_end = async { while let Some(Ok(_)) = rest.next().await {} };
            let _ = tokio::time::timeout(FINISH_LIMIT, read_to_end).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// A page of three chunks that notes when its last one was read
    /// (where Leptos disposes of the render's owner).
    fn page(ended: Arc<AtomicBool>) -> Body {
        let chunks = futures_util::stream::iter(["<html>", "<body>", "</html>"])
            .then(|chunk| async move {
                tokio::task::yield_now().await;
                Ok::<_, std::io::Error>(Bytes::from(chunk))
            })
            .chain(futures_util::stream::once(async move {
                ended.store(true, Ordering::SeqCst);
                Ok(Bytes::new())
            }));
        Body::from_stream(chunks)
    }

    #[tokio::test]
    async fn a_page_dropped_after_its_first_chunk_is_read_to_its_end() {
        let ended = Arc::new(AtomicBool::new(false));
        let mut body = Body::new(FinishOnDrop::new(page(ended.clone()))).into_data_stream();
        assert_eq!(
            body.next().await.and_then(Result::ok),
            Some(Bytes::from("<html>"))
        );
        drop(body);
        for _ in 0..100 {
            if ended.load(Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the rest of the page was never rendered");
    }

    #[tokio::test]
    async fn without_it_the_render_stops_at_the_drop() {
        // What the wrapper is for: a plain body dropped early is never
        // read further (the render's owner is disposed of mid-render).
        let ended = Arc::new(AtomicBool::new(false));
        let mut body = page(ended.clone()).into_data_stream();
        assert!(body.next().await.is_some());
        drop(body);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!ended.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_page_read_to_its_end_leaves_nothing_behind() {
        let ended = Arc::new(AtomicBool::new(false));
        let body = Body::new(FinishOnDrop::new(page(ended.clone())));
        let bytes = axum::body::to_bytes(body, usize::MAX).await;
        assert_eq!(bytes.ok(), Some(Bytes::from("<html><body></html>")));
        assert!(ended.load(Ordering::SeqCst));
    }
}
