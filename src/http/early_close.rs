//! HTTP/1.1 after an early rejection. A request refused before its body was
//! read (401, 413 announced by Content-Length, 415, 429, a timeout…) leaves
//! the body's bytes in the connection; the next request on it would be
//! parsed from the middle of that body. So a response to a request whose
//! body was not read to its end carries `Connection: close`, and hyper
//! closes the connection after writing it: a pooled client opens a fresh
//! one instead of seeing its follow-up request broken.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, Version, header};
use axum::middleware::Next;
use axum::response::Response;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

/// Middleware: `Connection: close` on the answer to an HTTP/1 request whose
/// body the handler did not read to the end.
pub async fn close_if_body_unread(req: Request, next: Next) -> Response {
    // HTTP/2 streams end on their own; `Connection` is not allowed there.
    if req.version() > Version::HTTP_11 || req.body().is_end_stream() {
        return next.run(req).await;
    }
    let read_to_end = Arc::new(AtomicBool::new(false));
    let req = req.map(|inner| {
        Body::new(Tracked {
            inner,
            read_to_end: read_to_end.clone(),
        })
    });
    let mut response = next.run(req).await;
    if !read_to_end.load(Relaxed) && response.status() != StatusCode::SWITCHING_PROTOCOLS {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A request body that records whether it was read to its end.
struct Tracked {
    inner: Body,
    read_to_end: Arc<AtomicBool>,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => this.inner.is_end_stream(),
            _ => false,
        };
        if ended {
            this.read_to_end.store(true, Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
