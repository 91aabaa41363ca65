//! The host's frame reader: tokio, one `read` per frame, and chunks handed
//! out as slices of the frame they arrived in.

use std::io;

use bytes::{BufMut, Bytes};
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{
    FrameError, HEADER_BYTES, RETAINED_BUFFER_BYTES, check_header, decode_body,
    decode_body_borrowed, encode_chunk_head, peer_closed,
};
use crate::message::{Chunk, ChunkRef, WorkerMessage};

/// Async frame reader for the host.
pub struct AsyncFrameReader<R> {
    inner: R,
    max: usize,
    /// The body buffer [`read`](Self::read) reuses. Its bytes past `len`
    /// are never looked at: reads go into spare capacity, so nothing is
    /// zeroed first.
    body: Vec<u8>,
    body_timeout: Option<std::time::Duration>,
    /// The next frame's header, or the start of it: each body read asks for
    /// the next header as well, so a stream of frames costs one `read` per
    /// frame, not two. At most [`HEADER_BYTES`], its whole capacity.
    header: Vec<u8>,
}

impl<R: AsyncRead + Unpin> AsyncFrameReader<R> {
    pub fn new(inner: R, max: usize) -> Self {
        Self {
            inner,
            max,
            body: Vec::new(),
            body_timeout: None,
            header: Vec::with_capacity(HEADER_BYTES),
        }
    }

    /// Once a header has arrived, its body must follow within `timeout`.
    /// A peer writes whole frames at once, so a body that stalls means a
    /// broken or hostile peer, and waiting for it would hold the call open.
    pub fn with_body_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.body_timeout = Some(timeout);
        self
    }

    /// Reads the next message; `Ok(None)` is a clean end of stream.
    ///
    /// Cancel safety: not cancel safe. A frame half read when the future is
    /// dropped is lost, so callers keep one read in flight and finish it.
    pub async fn read<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        if self.body.capacity() > RETAINED_BUFFER_BYTES {
            self.body = Vec::new();
        }
        let mut body = std::mem::take(&mut self.body);
        body.clear();
        let read = self.read_body(&mut body).await;
        let msg = match read {
            Ok(true) => decode_body(&body).map(Some),
            Ok(false) => Ok(None),
            Err(e) => Err(e),
        };
        self.body = body;
        msg
    }

    /// [`read`](Self::read) of a [`WorkerMessage`], except that a chunk's
    /// data is a slice of the frame's own buffer, not a copy of it.
    ///
    /// Each frame is read into a buffer of its own, and a chunk frame whose
    /// head is exactly what [`FrameWriter::write_chunk`] writes keeps that
    /// buffer as its data. Output is the bulk of what crosses the channel,
    /// and the copy this saves was the host's largest per-byte cost after
    /// the socket's own. Any other frame, and a chunk encoded any other way
    /// (valid or not), is decoded as `read` decodes it, so both accept and
    /// refuse the same frames with the same errors.
    ///
    /// [`FrameWriter::write_chunk`]: super::FrameWriter::write_chunk
    ///
    /// Cancel safety: as `read`.
    pub async fn read_worker_message(&mut self) -> Result<Option<WorkerMessage>, FrameError> {
        let mut body = Vec::new();
        if !self.read_body(&mut body).await? {
            return Ok(None);
        }
        if let Some(chunk) = chunk_in_place(&body) {
            let (stream, seq, at) = chunk;
            let data = Bytes::from(body).slice(at..);
            return Ok(Some(WorkerMessage::Chunk(Chunk { stream, seq, data })));
        }
        decode_body(&body).map(Some)
    }

    /// Reads one frame's body into `body` (empty on entry; it ends holding
    /// exactly the body). `Ok(false)` is a clean end of stream.
    async fn read_body(&mut self, body: &mut Vec<u8>) -> Result<bool, FrameError> {
        read_into_spare(
            &mut self.inner,
            &mut self.header,
            HEADER_BYTES,
            HEADER_BYTES,
        )
        .await?;
        let header: [u8; HEADER_BYTES] = match self.header[..].try_into() {
            Ok(header) => header,
            Err(_) if self.header.is_empty() => return Ok(false),
            Err(_) => {
                return Err(FrameError::Truncated {
                    expected: HEADER_BYTES,
                    got: self.header.len(),
                });
            }
        };
        self.header.clear();
        let len = check_header(header, self.max)?;
        // Room for the body and the next frame's header (see
        // `next_header`); the cap was checked on `len` above.
        let want = len + HEADER_BYTES;
        body.reserve_exact(want);
        let read = read_into_spare(&mut self.inner, body, len, want);
        match self.body_timeout {
            None => read.await?,
            Some(timeout) => {
                if tokio::time::timeout(timeout, read).await.is_err() {
                    return Err(FrameError::Stalled {
                        expected: len,
                        got: body.len().min(len),
                        timeout_ms: timeout.as_millis() as u64,
                    });
                }
            }
        }
        let got = body.len();
        if got < len {
            return Err(FrameError::Truncated { expected: len, got });
        }
        self.header.extend_from_slice(&body[len..]);
        body.truncate(len);
        Ok(true)
    }
}

/// If `body` is a chunk frame exactly as the worker's writer encodes it,
/// its stream, sequence number and where its data starts.
fn chunk_in_place(body: &[u8]) -> Option<(crate::StreamId, u64, usize)> {
    // Borrowing decode: `data` is a slice of `body`, found, not copied.
    let ChunkRef::Chunk { stream, seq, data } = decode_body_borrowed::<ChunkRef<'_>>(body)?;
    let at = (data.as_ptr() as usize).checked_sub(body.as_ptr() as usize)?;
    if at + data.len() != body.len() {
        return None;
    }
    // Decoding is lenient where the writer is not (a variant given by its
    // index, a struct as a map): only the writer's own bytes take this
    // path, so it cannot read a frame to anything `read` would not.
    let mut head = Vec::with_capacity(HEADER_BYTES + at);
    encode_chunk_head(stream, seq, data.len(), &mut head).ok()?;
    (head[HEADER_BYTES..] == body[..at]).then_some((stream, seq, at))
}

/// Appends to `buf` until it holds at least `min` bytes (or EOF), taking
/// whatever more the stream has ready up to `max` bytes in all. It reads
/// into `buf`'s spare capacity, so the memory is not zeroed first: for a
/// 64 KiB chunk that was a pass over every output byte as costly as a copy.
/// Bytes read stay in `buf` when the future is dropped (a timeout), so the
/// caller can say how far it got.
async fn read_into_spare(
    r: &mut (impl AsyncRead + Unpin),
    buf: &mut Vec<u8>,
    min: usize,
    max: usize,
) -> io::Result<()> {
    while buf.len() < min {
        let left = max - buf.len();
        let mut room = (&mut *buf).limit(left);
        match r.read_buf(&mut room).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if peer_closed(&e) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{FrameWriter, encode_frame};
    use crate::message::StreamId;

    fn reader(bytes: Vec<u8>) -> AsyncFrameReader<io::Cursor<Vec<u8>>> {
        AsyncFrameReader::new(io::Cursor::new(bytes), 1 << 20)
    }

    #[tokio::test]
    async fn a_written_chunk_is_read_in_place() {
        let data: Vec<u8> = (0..70_000).map(|i| i as u8).collect();
        let mut out = FrameWriter::new(Vec::new(), 1 << 20);
        out.write_chunk(StreamId::Stderr, 1 << 40, &data).unwrap();
        out.write_chunk(StreamId::Stdout, 7, b"").unwrap();
        let bytes = out.inner;
        let mut r = reader(bytes.clone());
        let Some(WorkerMessage::Chunk(c)) = r.read_worker_message().await.unwrap() else {
            panic!("not a chunk");
        };
        assert_eq!(
            (c.stream, c.seq, &c.data[..]),
            (StreamId::Stderr, 1 << 40, &data[..])
        );
        let Some(WorkerMessage::Chunk(c)) = r.read_worker_message().await.unwrap() else {
            panic!("not a chunk");
        };
        assert_eq!((c.stream, c.seq, c.data.len()), (StreamId::Stdout, 7, 0));
        assert!(r.read_worker_message().await.unwrap().is_none());
        // `read` reads the same frames to the same messages.
        let mut plain = reader(bytes);
        let first = plain.read::<WorkerMessage>().await.unwrap();
        assert!(matches!(first, Some(WorkerMessage::Chunk(c)) if c.data[..] == data[..]));
    }

    #[tokio::test]
    async fn a_chunk_encoded_another_way_is_read_like_read_reads_it() {
        // The same chunk with its fields as a map: valid, but not the
        // writer's bytes, so the in-place path declines it, and both
        // readers give the same answer.
        let odd = rmp_serde::to_vec_named(&ChunkRef::Chunk {
            stream: StreamId::Stdout,
            seq: 0,
            data: b"x",
        })
        .unwrap();
        let mut frame = (odd.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(&odd);
        assert!(chunk_in_place(&odd).is_none());
        let fast = reader(frame.clone()).read_worker_message().await;
        let plain = reader(frame).read::<WorkerMessage>().await;
        assert_eq!(format!("{fast:?}"), format!("{plain:?}"));
    }

    #[tokio::test]
    async fn other_messages_and_errors_match_read() {
        let mut frames = Vec::new();
        let msg = WorkerMessage::Progress(crate::message::Progress {
            message: "half".into(),
            done: 1,
            total: Some(2),
        });
        encode_frame(&msg, &mut frames, 1 << 20).unwrap();
        frames.extend_from_slice(&[5, 0, 0, 0, 0xc1, 0, 0, 0, 0]);
        let mut fast = reader(frames.clone());
        let mut plain = reader(frames);
        for _ in 0..2 {
            let a = fast.read_worker_message().await;
            let b = plain.read::<WorkerMessage>().await;
            assert_eq!(format!("{a:?}"), format!("{b:?}"));
        }
    }
}
