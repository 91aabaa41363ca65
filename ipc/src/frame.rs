//! Length-prefixed MessagePack frames, with the size cap checked before any
//! allocation.
//!
//! Both a blocking ([`FrameReader`], [`FrameWriter`]) and a tokio
//! ([`AsyncFrameReader`], [`AsyncFrameWriter`]) flavour exist: the worker is
//! a handful of threads, the host is async.
//!
//! # Caveats
//! - A reader keeps one body buffer. It grows to the largest frame read so
//!   far (never past the cap) and shrinks back after a frame larger than
//!   [`RETAINED_BUFFER_BYTES`], so an idle connection holds little.
//! - Decoding a body allocates while building the message. Byte buffers and
//!   strings never exceed the body (`rmp_serde` borrows them from the body,
//!   failing when a length overruns it, and serde copies what it borrowed), but serde
//!   may reserve up to 1 MiB for a sequence whose declared length is a lie
//!   (`size_hint::cautious`). So one read allocates at most about the body,
//!   plus 1 MiB, plus the message itself: `ipc/tests/alloc_bound.rs` measures
//!   a worst case near 3 × the 1 MiB cap.

use std::io::{self, IoSlice, Read, Write};

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::message::{ChunkRef, StreamId};

/// Size of the length prefix.
pub const HEADER_BYTES: usize = 4;

/// A reader keeps at most this much buffer between frames. A chunk frame is
/// a little over 64 KiB; anything larger is rare (a big `Invoke`), so its
/// buffer is given back instead of being held for the rest of the call.
pub const RETAINED_BUFFER_BYTES: usize = 128 << 10;

/// Deepest MessagePack nesting `decode_body` accepts. Our messages nest at
/// most four levels (variant map, struct, `Vec`, tuple); a hostile body that
/// nests deeper (an unknown map field is skipped by recursing into it) is
/// malformed. rmp-serde's own limit of 1024 levels overflows a 2 MiB thread
/// stack in a debug build, which aborts the whole host.
pub const MAX_DECODE_DEPTH: usize = 32;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    #[error("i/o error on the ipc channel: {0}")]
    Io(#[from] io::Error),
    #[error("frame of {len} bytes exceeds the cap of {max} bytes")]
    Oversized { len: u64, max: usize },
    #[error("frame of zero bytes")]
    Empty,
    #[error("channel closed inside a frame ({got} of {expected} bytes)")]
    Truncated { expected: usize, got: usize },
    #[error("malformed frame body: {0}")]
    Malformed(String),
    #[error("frame body has {0} trailing bytes after the message")]
    TrailingBytes(usize),
    #[error("frame body stalled: {got} of {expected} bytes arrived within {timeout_ms} ms")]
    Stalled {
        expected: usize,
        got: usize,
        timeout_ms: u64,
    },
}

/// Serializes `msg` into a complete frame appended to `out`.
pub fn encode_frame<T: Serialize>(
    msg: &T,
    out: &mut Vec<u8>,
    max: usize,
) -> Result<(), FrameError> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_BYTES]);
    rmp_serde::encode::write(out, msg).map_err(|e| FrameError::Malformed(e.to_string()))?;
    let len = out.len() - start - HEADER_BYTES;
    if len > max {
        out.truncate(start);
        return Err(FrameError::Oversized {
            len: len as u64,
            max,
        });
    }
    let len = u32::try_from(len).map_err(|_| FrameError::Oversized {
        len: len as u64,
        max,
    })?;
    out[start..start + HEADER_BYTES].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// Checks a frame header against the cap. This is the one place that
/// decides whether a body may be allocated.
pub fn check_header(header: [u8; HEADER_BYTES], max: usize) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes(header) as usize;
    if len == 0 {
        return Err(FrameError::Empty);
    }
    if len > max {
        return Err(FrameError::Oversized {
            len: len as u64,
            max,
        });
    }
    Ok(len)
}

/// Decodes one message from a complete frame body. Trailing bytes are an
/// error: a frame holds exactly one message.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    // The slice flavour borrows a `bin` from the body (a declared length
    // larger than the body fails without being allocated), and the `Vec`
    // of a chunk is its one copy. The reader flavour copied each `bin`
    // through `take(len).read_to_end`, growing a fresh buffer by doubling
    // for every frame: three copies of every output byte in the host.
    let mut de = rmp_serde::Deserializer::from_read_ref(body);
    de.set_max_depth(MAX_DECODE_DEPTH);
    let msg = serde::Deserialize::deserialize(&mut de)
        .map_err(|e| FrameError::Malformed(e.to_string()))?;
    // This flavour does not say where it stopped; an end of input right
    // after the message says it stopped at the end.
    match serde::de::IgnoredAny::deserialize(&mut de) {
        Err(rmp_serde::decode::Error::InvalidMarkerRead(e))
            if e.kind() == io::ErrorKind::UnexpectedEof =>
        {
            Ok(msg)
        }
        _ => Err(FrameError::TrailingBytes(trailing_bytes::<T>(body))),
    }
}

/// How many bytes follow the message at the start of `body`: the reader
/// flavour counts them. Only a broken frame gets here.
fn trailing_bytes<T: DeserializeOwned>(body: &[u8]) -> usize {
    let mut de = rmp_serde::Deserializer::new(io::Cursor::new(body));
    de.set_max_depth(MAX_DECODE_DEPTH);
    match T::deserialize(&mut de) {
        Ok(_) => body.len() - usize::try_from(de.position()).unwrap_or(body.len()),
        Err(_) => 0,
    }
}

/// Makes `buf` exactly `len` bytes long for the next body, which the caller
/// then reads in whole (or fails the frame). Only growth is zeroed: the
/// bytes a shorter or equal frame reuses are overwritten by the read before
/// anything decodes them, and zeroing 64 KiB again for every chunk was a
/// pass over each output byte as costly as the copy itself.
fn prepare_body(buf: &mut Vec<u8>, len: usize) {
    if buf.capacity() > RETAINED_BUFFER_BYTES && len <= RETAINED_BUFFER_BYTES {
        *buf = Vec::new();
    }
    if buf.len() < len {
        buf.resize(len, 0);
    } else {
        buf.truncate(len);
    }
}

/// Blocking frame reader.
pub struct FrameReader<R> {
    inner: R,
    max: usize,
    body: Vec<u8>,
}

impl<R: Read> FrameReader<R> {
    pub fn new(inner: R, max: usize) -> Self {
        Self {
            inner,
            max,
            body: Vec::new(),
        }
    }

    /// The stream read from. It is read exactly a frame at a time, never
    /// ahead, so a caller may poll it for readiness between frames.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// Reads the next message. `Ok(None)` is a clean end of stream on a
    /// frame boundary.
    pub fn read<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        let mut header = [0; HEADER_BYTES];
        let got = read_full(&mut self.inner, &mut header)?;
        if got == 0 {
            return Ok(None);
        }
        if got < HEADER_BYTES {
            return Err(FrameError::Truncated {
                expected: HEADER_BYTES,
                got,
            });
        }
        let len = check_header(header, self.max)?;
        prepare_body(&mut self.body, len);
        let got = read_full(&mut self.inner, &mut self.body)?;
        if got < len {
            return Err(FrameError::Truncated { expected: len, got });
        }
        decode_body(&self.body).map(Some)
    }
}

/// A reset stream is a closed one. Linux reports the close of an
/// `AF_UNIX` stream socket as `ECONNRESET` instead of end of stream when
/// the closing end left bytes unread (a worker that dies before reading
/// its last credit, a host that dies mid-stream); everything the peer sent
/// before closing has been read by then, so it ends the stream like EOF:
/// cleanly on a frame boundary, as a truncated frame inside one.
fn peer_closed(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::ConnectionReset
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if peer_closed(&e) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Blocking frame writer. One `write` is one `write_all` of a whole frame,
/// so frames from several threads never interleave when the writer sits
/// behind a mutex.
pub struct FrameWriter<W> {
    inner: W,
    max: usize,
    scratch: Vec<u8>,
}

impl<W: Write> FrameWriter<W> {
    pub fn new(inner: W, max: usize) -> Self {
        Self {
            inner,
            max,
            scratch: Vec::new(),
        }
    }

    pub fn write<T: Serialize>(&mut self, msg: &T) -> Result<(), FrameError> {
        self.scratch.clear();
        encode_frame(msg, &mut self.scratch, self.max)?;
        self.inner.write_all(&self.scratch)?;
        if self.scratch.capacity() > RETAINED_BUFFER_BYTES {
            self.scratch = Vec::new();
        }
        Ok(())
    }

    /// Writes `ChunkRef::Chunk { stream, seq, data }`: the same frame as
    /// [`write`](Self::write) (a test checks), but `data` is not copied into
    /// the scratch buffer. Only the frame's head is encoded, and head and
    /// data go out in one vectored write. On an output-heavy call that copy
    /// was every output byte once more.
    pub fn write_chunk(
        &mut self,
        stream: StreamId,
        seq: u64,
        data: &[u8],
    ) -> Result<(), FrameError> {
        self.scratch.clear();
        let empty = ChunkRef::Chunk {
            stream,
            seq,
            data: &[],
        };
        encode_frame(&empty, &mut self.scratch, self.max)?;
        // `data` is the message's last field, so the frame is this head with
        // the empty `bin` (marker, length 0) swapped for `data`'s.
        if !self.scratch.ends_with(&EMPTY_BIN) {
            return Err(FrameError::Malformed(
                "a chunk does not end with its data".into(),
            ));
        }
        self.scratch.truncate(self.scratch.len() - EMPTY_BIN.len());
        push_bin_len(&mut self.scratch, data.len())?;
        let body = self.scratch.len() - HEADER_BYTES + data.len();
        if body > self.max {
            return Err(FrameError::Oversized {
                len: body as u64,
                max: self.max,
            });
        }
        // `body` is at most `max`, which fits the 32-bit prefix (checked by
        // `push_bin_len` for the data alone; the head adds a few bytes).
        let len = u32::try_from(body).map_err(|_| FrameError::Oversized {
            len: body as u64,
            max: self.max,
        })?;
        self.scratch[..HEADER_BYTES].copy_from_slice(&len.to_le_bytes());
        write_all_vectored(&mut self.inner, &self.scratch, data)?;
        Ok(())
    }
}

/// MessagePack's `bin 8` of length zero: how an empty `serde_bytes` slice
/// encodes.
const EMPTY_BIN: [u8; 2] = [0xc4, 0x00];

/// Appends the MessagePack `bin` header for `len` bytes, in the smallest
/// form, as `rmp` writes it.
fn push_bin_len(out: &mut Vec<u8>, len: usize) -> Result<(), FrameError> {
    if let Ok(n) = u8::try_from(len) {
        out.extend_from_slice(&[0xc4, n]);
    } else if let Ok(n) = u16::try_from(len) {
        out.push(0xc5);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        let n = u32::try_from(len).map_err(|_| FrameError::Oversized {
            len: len as u64,
            max: u32::MAX as usize,
        })?;
        out.push(0xc6);
        out.extend_from_slice(&n.to_be_bytes());
    }
    Ok(())
}

/// `write_all` of `head` then `tail`, with as few `writev` calls as the
/// channel allows.
fn write_all_vectored(w: &mut impl Write, head: &[u8], tail: &[u8]) -> io::Result<()> {
    let mut bufs = [IoSlice::new(head), IoSlice::new(tail)];
    let mut bufs = &mut bufs[..];
    while !bufs.is_empty() {
        match w.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Async frame reader for the host.
pub struct AsyncFrameReader<R> {
    inner: R,
    max: usize,
    body: Vec<u8>,
    body_timeout: Option<std::time::Duration>,
    /// The start of the next frame's header, read together with the body
    /// before it: each body read asks for the next header as well, so a
    /// stream of frames costs one `read` per frame, not two.
    next_header: [u8; HEADER_BYTES],
    next_header_len: usize,
}

impl<R: AsyncRead + Unpin> AsyncFrameReader<R> {
    pub fn new(inner: R, max: usize) -> Self {
        Self {
            inner,
            max,
            body: Vec::new(),
            body_timeout: None,
            next_header: [0; HEADER_BYTES],
            next_header_len: 0,
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
        let mut header = self.next_header;
        let mut got = std::mem::take(&mut self.next_header_len);
        read_at_least(&mut self.inner, &mut header, HEADER_BYTES, &mut got).await?;
        if got == 0 {
            return Ok(None);
        }
        if got < HEADER_BYTES {
            return Err(FrameError::Truncated {
                expected: HEADER_BYTES,
                got,
            });
        }
        let len = check_header(header, self.max)?;
        // Room for the body and the next frame's header (see
        // `next_header`); the cap was checked on `len` above.
        prepare_body(&mut self.body, len + HEADER_BYTES);
        let mut filled = 0;
        let read = read_at_least(&mut self.inner, &mut self.body, len, &mut filled);
        let got = match self.body_timeout {
            None => read.await?,
            Some(timeout) => match tokio::time::timeout(timeout, read).await {
                Ok(r) => r?,
                Err(_) => {
                    return Err(FrameError::Stalled {
                        expected: len,
                        got: filled.min(len),
                        timeout_ms: timeout.as_millis() as u64,
                    });
                }
            },
        };
        if got < len {
            return Err(FrameError::Truncated { expected: len, got });
        }
        let extra = got - len;
        self.next_header[..extra].copy_from_slice(&self.body[len..got]);
        self.next_header_len = extra;
        decode_body(&self.body[..len]).map(Some)
    }
}

/// Reads into `buf` until at least `min` bytes are in it (or EOF), taking
/// whatever more the stream has ready up to `buf`'s end. Keeps the count in
/// `filled`, so a caller that gives up (timeout) can say how far it got.
async fn read_at_least(
    r: &mut (impl AsyncRead + Unpin),
    buf: &mut [u8],
    min: usize,
    filled: &mut usize,
) -> io::Result<usize> {
    while *filled < min {
        match r.read(&mut buf[*filled..]).await {
            Ok(0) => break,
            Ok(n) => *filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if peer_closed(&e) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(*filled)
}

/// Async frame writer for the host.
pub struct AsyncFrameWriter<W> {
    inner: W,
    max: usize,
    scratch: Vec<u8>,
}

impl<W: AsyncWrite + Unpin> AsyncFrameWriter<W> {
    pub fn new(inner: W, max: usize) -> Self {
        Self {
            inner,
            max,
            scratch: Vec::new(),
        }
    }

    pub async fn write<T: Serialize>(&mut self, msg: &T) -> Result<(), FrameError> {
        self.scratch.clear();
        encode_frame(msg, &mut self.scratch, self.max)?;
        self.inner.write_all(&self.scratch).await?;
        self.inner.flush().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Chunk, WorkerMessage};

    /// A writer that takes at most `step` bytes per call, to exercise the
    /// partial-write path of `write_all_vectored`.
    struct Trickle {
        out: Vec<u8>,
        step: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.step);
            self.out.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn write_chunk_writes_the_frame_write_would() {
        // Every width of the `bin` length, and its edges.
        for len in [0, 1, 255, 256, 65_535, 65_536, 70_000] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let owned = WorkerMessage::Chunk(Chunk {
                stream: StreamId::Stderr,
                seq: 1 << 40,
                data: data.clone(),
            });
            let mut expected = Vec::new();
            encode_frame(&owned, &mut expected, usize::MAX).unwrap();
            for step in [usize::MAX, 7] {
                let mut writer = FrameWriter::new(Trickle { out: vec![], step }, 1 << 20);
                writer
                    .write_chunk(StreamId::Stderr, 1 << 40, &data)
                    .unwrap();
                assert_eq!(writer.inner.out, expected, "len {len}, step {step}");
            }
        }
    }

    #[test]
    fn write_chunk_checks_the_cap_before_writing() {
        let mut writer = FrameWriter::new(Vec::new(), 1000);
        let err = writer
            .write_chunk(StreamId::Stdout, 0, &[0; 1000])
            .unwrap_err();
        assert!(matches!(err, FrameError::Oversized { .. }), "{err:?}");
        assert!(writer.inner.is_empty(), "nothing reaches the channel");
    }
}
