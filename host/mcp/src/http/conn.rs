//! One client connection's socket, with a deadline on writes: a client
//! that takes none of what the gateway sends for [`SLOW_CLIENT_TIMEOUT`]
//! has its connection closed. Without it, a stream whose client never
//! reads would end only on the gateway's side (its producer gives up) and
//! the connection would stay, holding its buffers, for as long as the
//! client keeps it open.
//!
//! [`SLOW_CLIENT_TIMEOUT`]: super::hub::SLOW_CLIENT_TIMEOUT

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// An IO whose writes fail with `TimedOut` once one has waited `limit`
/// for the peer to take bytes. Reads are untouched: a GET stream with
/// nothing to send waits for as long as it likes.
pub(crate) struct WriteDeadline<T> {
    inner: T,
    limit: Duration,
    /// Set while a write waits; cleared by any progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> WriteDeadline<T> {
    pub(crate) fn new(inner: T, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            stalled: None,
        }
    }

    /// After the inner IO said `Pending`: `Ready(Err)` once the wait has
    /// lasted `limit`, else `Pending` (the timer is registered with `cx`).
    fn waited<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the client took nothing of its answer for {} s",
                    limit.as_secs()
                ),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteDeadline<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Pending => this.waited(cx),
            done => {
                this.stalled = None;
                done
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => this.waited(cx),
            done => {
                this.stalled = None;
                done
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => this.waited(cx),
            done => {
                this.stalled = None;
                done
            }
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A peer that reads nothing: the write fails after the limit. One
    /// that reads: the writes go through, however long the whole takes.
    #[tokio::test(start_paused = true)]
    async fn a_write_nobody_takes_fails_after_the_limit() {
        let limit = Duration::from_secs(30);
        let (near, _far) = tokio::io::duplex(1024);
        let mut io = WriteDeadline::new(near, limit);
        let started = tokio::time::Instant::now();
        let block = vec![0u8; 4096];
        let err = io
            .write_all(&block)
            .await
            .expect_err("the peer reads nothing");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= limit);

        let (near, mut far) = tokio::io::duplex(1024);
        let mut io = WriteDeadline::new(near, limit);
        let reader = tokio::spawn(async move {
            let mut got = 0;
            let mut buf = [0u8; 512];
            while got < 64 * 1024 {
                // Slower than nothing at all, faster than the limit.
                tokio::time::sleep(Duration::from_secs(1)).await;
                got += far.read(&mut buf).await.expect("read");
            }
            got
        });
        io.write_all(&vec![0u8; 64 * 1024]).await.expect("taken");
        assert_eq!(reader.await.expect("joined"), 64 * 1024);
    }
}
