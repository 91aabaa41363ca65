//! Input from the host for tools that read it (an MCP server's stdin): a
//! queue the reader thread fills and the tool drains, plus a pipe that
//! wakes the tool's `poll` loop.
//!
//! **Invariant:** the reader thread never blocks on the tool. It only
//! pushes; the host sends `Input` only against `InputCredit`, which the
//! tool grants as it consumes, so the queue holds at most the credit
//! window. A reader that blocked on a tool not reading its input would
//! stop taking `Credit` too, and deadlock a tool blocked on output.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Mutex, MutexGuard};

#[derive(Debug, Default)]
struct State {
    chunks: VecDeque<Vec<u8>>,
    closed: bool,
}

#[derive(Debug)]
pub struct InputQueue {
    state: Mutex<State>,
    wake_rx: OwnedFd,
    wake_tx: OwnedFd,
}

impl InputQueue {
    pub fn new() -> io::Result<Self> {
        let (wake_rx, wake_tx) = bulkhead_ipc::transport::cloexec_pipe()?;
        // Neither end may block: a full wake pipe already says "look", and
        // an empty one is drained without waiting.
        for fd in [&wake_rx, &wake_tx] {
            set_nonblocking(fd)?;
        }
        Ok(Self {
            state: Mutex::default(),
            wake_rx,
            wake_tx,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a plain queue; keep using it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// From the reader thread.
    pub fn push(&self, data: Vec<u8>) {
        self.lock().chunks.push_back(data);
        self.wake();
    }

    /// From the reader thread: the host's input ended.
    pub fn close(&self) {
        self.lock().closed = true;
        self.wake();
    }

    fn wake(&self) {
        // A full wake pipe already says "look"; EAGAIN is fine.
        let _ = nix::unistd::write(&self.wake_tx, &[1]);
    }

    /// Readable when there is input (or its end) to look at.
    pub fn wake_fd(&self) -> BorrowedFd<'_> {
        self.wake_rx.as_fd()
    }

    /// Empties the wake pipe, then takes everything queued. The second item
    /// is true once the input has ended and nothing is left.
    pub fn take(&self) -> (Vec<Vec<u8>>, bool) {
        let mut buf = [0u8; 64];
        while matches!(nix::unistd::read(&self.wake_rx, &mut buf), Ok(n) if n > 0) {}
        let mut state = self.lock();
        let chunks: Vec<Vec<u8>> = state.chunks.drain(..).collect();
        let ended = state.closed;
        (chunks, ended)
    }
}

/// Sets `O_NONBLOCK` on a pipe end: for the wake pipe here, and for an MCP
/// server's stdin, which the relay writes only as far as it takes.
pub(crate) fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    use nix::fcntl::{F_GETFL, F_SETFL, OFlag, fcntl};
    let flags = OFlag::from_bits_truncate(fcntl(fd, F_GETFL)?);
    fcntl(fd, F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}
