//! The response bodies `serve_http` sends: one whole JSON (or text) body,
//! or an SSE stream fed through a bounded channel of events charged to
//! the stream's byte budget (`budget`), so a client that does not read
//! makes the sender wait instead of the host buffering for it. The
//! budget an event holds goes with it into hyper's write queue and is
//! given back when hyper has written it out.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::Frame;
use serde_json::Value;
use tokio::sync::mpsc;

use super::budget::Charged;

/// A response body: whole, or streamed.
pub(crate) enum Body {
    Full(Option<Bytes>),
    /// Events already decided on (a resumed stream's replay) and then
    /// whatever comes through the channel; the body ends when every
    /// sender is dropped.
    Stream {
        prefix: VecDeque<Bytes>,
        rx: mpsc::Receiver<Charged>,
    },
}

impl Body {
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        Body::Full(Some(bytes.into()))
    }
}

impl hyper::body::Body for Body {
    type Data = Charged;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Charged>, Infallible>>> {
        match self.get_mut() {
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(Charged::free(b))))),
            Body::Stream { prefix, rx } => {
                if let Some(b) = prefix.pop_front() {
                    return Poll::Ready(Some(Ok(Frame::data(Charged::free(b)))));
                }
                rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
            }
        }
    }

    /// A whole body's exact size, so it goes with `Content-Length`
    /// rather than chunked.
    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            Body::Full(b) => {
                hyper::body::SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64))
            }
            Body::Stream { .. } => hyper::body::SizeHint::default(),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Full(None))
    }
}

/// One SSE event carrying `msg`, with an `id:` line when it may be
/// resumed from.
pub(crate) fn sse_event(id: Option<u64>, msg: &Value) -> Bytes {
    // serde_json never writes a raw newline inside a value, so the
    // message is one `data:` line.
    match id {
        Some(id) => Bytes::from(format!("id: {id}\ndata: {msg}\n\n")),
        None => Bytes::from(format!("data: {msg}\n\n")),
    }
}
