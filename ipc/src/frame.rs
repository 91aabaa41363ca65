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
//!   [`AsyncFrameReader::read_worker_message`] keeps none: each frame gets a
//!   buffer of its own, which a chunk then holds as its data.
//! - Decoding a body allocates while building the message. Byte buffers and
//!   strings never exceed the body (`rmp_serde` borrows them from the body,
//!   failing when a length overruns it, and serde copies what it borrowed), but serde
//!   may reserve up to 1 MiB for a sequence whose declared length is a lie
//!   (`size_hint::cautious`). So one read allocates at most about the body,
//!   plus 1 MiB, plus the message itself: `ipc/tests/alloc_bound.rs` measures
//!   a worst case near 3 × the 1 MiB cap.

use std::io::{self, IoSlice, Read, Write};

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::message::{ChunkRef, StreamId};

mod async_reader;

pub use async_reader::AsyncFrameReader;

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

/// [`decode_body`] for a message that borrows from `body`; `None` for
/// anything `decode_body` would refuse. The host's reader uses it only to
/// see whether a frame takes its fast path.
fn decode_body_borrowed<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Option<T> {
    let mut de = rmp_serde::Deserializer::from_read_ref(body);
    de.set_max_depth(MAX_DECODE_DEPTH);
    let msg = T::deserialize(&mut de).ok()?;
    match serde::de::IgnoredAny::deserialize(&mut de) {
        Err(rmp_serde::decode::Error::InvalidMarkerRead(e))
            if e.kind() == io::ErrorKind::UnexpectedEof =>
        {
            Some(msg)
        }
        _ => None,
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
        encode_chunk_head(stream, seq, data.len(), &mut self.scratch)?;
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

/// Appends a chunk frame up to its data: a length prefix (zero; the caller
/// fills it in) and the body of `ChunkRef::Chunk { stream, seq, data }` up
/// to and including `data`'s `bin` header, for `data_len` bytes of data.
/// The writer sends this and then the data; the host's reader compares a
/// chunk frame's head with it, so it accepts exactly what this writes.
pub(crate) fn encode_chunk_head(
    stream: StreamId,
    seq: u64,
    data_len: usize,
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    let start = out.len();
    let empty = ChunkRef::Chunk {
        stream,
        seq,
        data: &[],
    };
    encode_frame(&empty, out, usize::MAX)?;
    // `data` is the message's last field, so the frame is this head with
    // the empty `bin` (marker, length 0) swapped for `data`'s.
    if !out[start..].ends_with(&EMPTY_BIN) {
        return Err(FrameError::Malformed(
            "a chunk does not end with its data".into(),
        ));
    }
    out.truncate(out.len() - EMPTY_BIN.len());
    push_bin_len(out, data_len)
}

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
                data: data.clone().into(),
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
