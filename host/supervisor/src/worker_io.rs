//! The tasks that talk to one worker: a reader, a writer, and a stderr tail.
//!
//! Reading a frame is not cancel safe, so it never sits inside the
//! supervisor's `select!`: a task reads frames and forwards them through a
//! small channel. Writes go through a task too, so a worker that stops
//! reading can never block the supervisor (and with it the timeout).

use bulkhead_ipc::frame::{AsyncFrameReader, AsyncFrameWriter};
use bulkhead_ipc::{DEFAULT_MAX_FRAME_BYTES, FrameError, HostMessage, WorkerMessage};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, watch};

/// Frames read ahead of the supervisor. Small: credit already bounds chunks
/// in flight, and each slot may hold up to one frame cap.
const READ_AHEAD_FRAMES: usize = 4;

/// How long a frame's body may take to arrive once its header has. A
/// worker writes each frame with one `write_all` of at most 1 MiB into a
/// socket the host is draining, so this is generous by orders of magnitude;
/// past it the worker is broken, and the call must not wait for its timeout.
const FRAME_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// How much of the worker's own stderr is kept: enough for a panic message
/// and a backtrace line or two, in a failure report.
pub(crate) const STDERR_TAIL_BYTES: usize = 8 << 10;

pub(crate) type FrameResult = Result<Option<WorkerMessage>, FrameError>;

/// Forwards frames until EOF or the first error (both are forwarded).
pub(crate) fn spawn_reader(
    recv: bulkhead_ipc::transport::HostReadHalf,
) -> mpsc::Receiver<FrameResult> {
    let (tx, rx) = mpsc::channel(READ_AHEAD_FRAMES);
    tokio::spawn(async move {
        let mut reader = AsyncFrameReader::new(recv, DEFAULT_MAX_FRAME_BYTES)
            .with_body_timeout(FRAME_BODY_TIMEOUT);
        loop {
            let frame = reader.read_worker_message().await;
            let last = !matches!(frame, Ok(Some(_)));
            if tx.send(frame).await.is_err() || last {
                break;
            }
        }
    });
    rx
}

/// Sends the opening messages, then at once a `Credit` for the window
/// granted so far (the worker reads it as the opening's last frame, see
/// `bulkhead_ipc`), then a `Credit` each time the granted total rises, and
/// whatever else the supervisor queues (input). Credit is cumulative in a
/// `watch`, so grants made while a write is blocked coalesce into one
/// message instead of queueing.
pub(crate) fn spawn_writer(
    send: bulkhead_ipc::transport::HostWriteHalf,
    opening: Vec<HostMessage>,
    mut granted: watch::Receiver<u64>,
    mut extra: mpsc::UnboundedReceiver<HostMessage>,
) {
    tokio::spawn(async move {
        let mut writer = AsyncFrameWriter::new(send, DEFAULT_MAX_FRAME_BYTES);
        for msg in &opening {
            if writer.write(msg).await.is_err() {
                return;
            }
        }
        let mut sent = 0u64;
        loop {
            let total = *granted.borrow_and_update();
            if total > sent {
                let chunks = u32::try_from(total - sent).unwrap_or(u32::MAX);
                if writer.write(&HostMessage::Credit { chunks }).await.is_err() {
                    return;
                }
                sent += u64::from(chunks);
            }
            tokio::select! {
                changed = granted.changed() => if changed.is_err() {
                    return;
                },
                // Input, in order; bounded by the worker's input credit.
                Some(msg) = extra.recv() => if writer.write(&msg).await.is_err() {
                    return;
                },
            }
        }
    });
}

/// Reads the worker's stderr to EOF, keeping the last [`STDERR_TAIL_BYTES`].
pub(crate) fn spawn_stderr_tail(
    stderr: Option<tokio::process::ChildStderr>,
) -> tokio::task::JoinHandle<String> {
    tokio::spawn(async move {
        let Some(mut stderr) = stderr else {
            return String::new();
        };
        let mut tail: Vec<u8> = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf).await {
            if n == 0 {
                break;
            }
            tail.extend_from_slice(&buf[..n]);
            if tail.len() > STDERR_TAIL_BYTES {
                tail.drain(..tail.len() - STDERR_TAIL_BYTES);
            }
        }
        String::from_utf8_lossy(&tail).into_owned()
    })
}
