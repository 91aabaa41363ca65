//! The byte paths the `ipc` benchmark times; each moves `TOTAL` bytes in
//! 64 KiB pieces from a writer thread to this thread and checks they all
//! arrived.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use bulkhead_ipc::frame::{HEADER_BYTES, decode_body, encode_frame};
use bulkhead_ipc::transport::{HostChannel, WorkerChannel, cloexec_pipe};
use bulkhead_ipc::{
    AsyncFrameReader, ChunkRef, DEFAULT_MAX_FRAME_BYTES, FrameWriter, StreamId, WorkerMessage,
};

use super::{CHUNK, TOTAL};

/// The host's `FRAME_BODY_TIMEOUT` (private to `bulkhead-host`); set so the
/// reader does the same work per frame as the host's.
const BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes pushed through encode + decode for the codec figure: 1 GiB, a
/// fraction of a second, enough to swamp timer and warm-up noise.
pub const CODEC_BYTES: u64 = 1 << 30;

fn chunks() -> u64 {
    TOTAL / CHUNK as u64
}

/// A payload that is not all zeros (nothing here compresses, but a test
/// pattern makes a mix-up visible in a debugger).
fn payload() -> Vec<u8> {
    (0..CHUNK).map(|i| (i % 251) as u8).collect()
}

/// Sets a pipe's buffer size (either end names the pipe).
fn set_pipe_size(fd: &impl AsRawFd, bytes: i32) {
    // SAFETY: F_SETPIPE_SZ on a valid pipe fd only resizes its buffer.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, bytes) };
    let err = std::io::Error::last_os_error();
    assert!(rc >= bytes, "F_SETPIPE_SZ {bytes} failed: {err}");
}

/// `Chunk` frames: `FrameWriter` on the worker's end of a real
/// `bulkhead_ipc::transport` channel, `AsyncFrameReader` on the host's.
pub fn frames(rt: &tokio::runtime::Runtime) -> Duration {
    let _guard = rt.enter();
    let host = HostChannel::new().expect("cannot create the ipc channel");
    let worker = WorkerChannel::from_fds(host.worker_stdin, host.worker_stdout);
    // Only the worker → host direction is measured.
    drop((host.to_worker, worker.from_host));
    let to_host = worker.to_host;
    let started = Instant::now();
    let writer = std::thread::spawn(move || {
        let mut frames = FrameWriter::new(to_host, DEFAULT_MAX_FRAME_BYTES);
        let payload = payload();
        for seq in 0..chunks() {
            // Borrowed, as the worker's sink sends it (`ChunkRef`).
            let msg = ChunkRef::Chunk {
                stream: StreamId::Stdout,
                seq,
                data: &payload,
            };
            frames.write(&msg).expect("cannot write a frame");
        }
    });
    let received = rt.block_on(async {
        let mut reader = AsyncFrameReader::new(host.from_worker, DEFAULT_MAX_FRAME_BYTES)
            .with_body_timeout(BODY_TIMEOUT);
        let (mut bytes, mut next) = (0u64, 0u64);
        while let Some(msg) = reader
            .read_worker_message()
            .await
            .expect("cannot read a frame")
        {
            let WorkerMessage::Chunk(chunk) = msg else {
                panic!("unexpected message {msg:?}")
            };
            assert_eq!(chunk.seq, next, "chunks out of order");
            next += 1;
            bytes += chunk.data.len() as u64;
        }
        bytes
    });
    writer.join().expect("the frame writer panicked");
    let took = started.elapsed();
    assert_eq!(received, TOTAL, "frames lost bytes");
    took
}

/// The baseline: `socketpair(AF_UNIX, SOCK_STREAM)`, plain write/read.
pub fn socketpair() -> Duration {
    let (mut tx, mut rx) = UnixStream::pair().expect("cannot create a socketpair");
    timed_copy(move |buf| tx.write_all(buf), move |buf| rx.read(buf))
}

/// A bare `cloexec_pipe`, plain write/read.
pub fn pipe(pipe_bytes: Option<i32>) -> Duration {
    let (r, w) = cloexec_pipe().expect("cannot create a pipe");
    if let Some(bytes) = pipe_bytes {
        set_pipe_size(&w, bytes);
    }
    let (mut rx, mut tx) = (std::fs::File::from(r), std::fs::File::from(w));
    timed_copy(move |buf| tx.write_all(buf), move |buf| rx.read(buf))
}

/// Moves `TOTAL` bytes: a thread writes 64 KiB buffers with `write`, this
/// thread reads with `read` until end of stream.
fn timed_copy(
    mut write: impl FnMut(&[u8]) -> std::io::Result<()> + Send + 'static,
    mut read: impl FnMut(&mut [u8]) -> std::io::Result<usize>,
) -> Duration {
    let started = Instant::now();
    let writer = std::thread::spawn(move || {
        let payload = payload();
        for _ in 0..chunks() {
            write(&payload).expect("cannot write");
        }
        // Dropping `write` closes the writing end: the reader sees EOF.
    });
    let mut buf = vec![0u8; CHUNK];
    let mut received = 0u64;
    loop {
        match read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("cannot read: {e}"),
        }
    }
    writer.join().expect("the writer panicked");
    let took = started.elapsed();
    assert_eq!(received, TOTAL, "bytes lost");
    took
}

/// Encodes and decodes `CODEC_BYTES` of chunk frames in memory, one thread:
/// what the two ends spend on framing alone (the writer's copy into a fresh
/// `Vec` and into the frame, the reader's copy out of it).
pub fn codec() -> Duration {
    let payload = payload();
    let mut frame = Vec::with_capacity(CHUNK + 64);
    let started = Instant::now();
    for seq in 0..CODEC_BYTES / CHUNK as u64 {
        frame.clear();
        let msg = ChunkRef::Chunk {
            stream: StreamId::Stdout,
            seq,
            data: &payload,
        };
        encode_frame(&msg, &mut frame, DEFAULT_MAX_FRAME_BYTES).expect("cannot encode a frame");
        let back: WorkerMessage =
            decode_body(&frame[HEADER_BYTES..]).expect("cannot decode a frame");
        assert!(matches!(back, WorkerMessage::Chunk(c) if c.seq == seq && c.data.len() == CHUNK));
    }
    started.elapsed()
}
