//! The relay's state and its `poll` loop: see the module doc of
//! `mcp_stdio` for what it does to each message.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use bulkhead_ipc::{MAX_CHUNK_BYTES, StreamId};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::inject::{Step, StreamFaults};
use super::jsonrpc::{self, Kind};
use super::{MAX_GARBAGE_LINES, MAX_OVERSIZE, POLL_INTERVAL_MS, STDERR_TAIL_BYTES};
use crate::tools::{OutputSink, ToolContext};
use bulkhead_ipc::lines::{BoundedLines, LineEvent};

pub(super) struct Relay {
    pub(super) pid: Pid,
    /// Open client requests: id (JSON text) → method.
    pub(super) pending: HashMap<String, String>,
    pub(super) from_server: BoundedLines,
    pub(super) from_client: BoundedLines,
    /// Bytes not yet written to the server: client chunks (which return
    /// their input credit once written) and our own cancel notifications
    /// (which do not). Holds at most the input window plus those.
    pub(super) to_server: VecDeque<Queued>,
    pub(super) stdin: Option<File>,
    /// An unanswered liveness ping: which cancelled request prompted it,
    /// and when the server must have answered.
    pub(super) liveness: Option<(String, Instant)>,
    /// When each open `tools/call` times out.
    pub(super) deadlines: HashMap<String, Instant>,
    pub(super) call_timeout: Duration,
    pub(super) input_ended: bool,
    pub(super) max_message: usize,
    pub(super) max_result: usize,
    pub(super) oversize: u32,
    pub(super) garbage: u32,
    pub(super) answered_by_us: u32,
    pub(super) stderr_tail: Vec<u8>,
    /// Why the relay stopped the server, if it did.
    pub(super) stop: Option<String>,
    /// `--inject`'s stream faults; `None` without, and no fault work is done.
    pub(super) faults: Option<Box<StreamFaults>>,
    /// The relay killed the server for `truncate`: its end is the
    /// server's own (answered as such), not a kill from outside.
    pub(super) killed_by_fault: bool,
}

/// Bytes for the server's stdin.
pub(super) struct Queued {
    bytes: Vec<u8>,
    written: usize,
    /// A client chunk, whose input credit is returned once written.
    from_client: bool,
}

/// How long a server may take, after a timed-out call was cancelled, to
/// answer a ping. One that is still stuck in the call cannot; a healthy
/// one answers in milliseconds.
const CANCEL_GRACE: Duration = Duration::from_secs(5);

/// The id of bulkhead's own liveness ping, as JSON text: a string no
/// client uses, so its answer is never mistaken for a client's.
const LIVENESS_PING_ID: &str = "\"bulkhead-liveness\"";

/// A line that has grown past this many times the message cap without
/// ending is a server that will not stop writing it: 4 GiB at the default
/// cap, twice the largest answer the relay must survive (2 GiB, which
/// fails only its request).
const ENDLESS_LINE_FACTOR: u64 = 1024;

impl Relay {
    pub(super) fn new(
        pid: Pid,
        stdin: File,
        max_message: usize,
        max_result: usize,
        call_timeout: Duration,
        faults: Option<Box<StreamFaults>>,
    ) -> Self {
        Relay {
            pid,
            pending: HashMap::new(),
            from_server: BoundedLines::new(max_message),
            from_client: BoundedLines::new(max_message),
            to_server: VecDeque::new(),
            stdin: Some(stdin),
            deadlines: HashMap::new(),
            liveness: None,
            call_timeout,
            input_ended: false,
            max_message,
            max_result,
            oversize: 0,
            garbage: 0,
            answered_by_us: 0,
            stderr_tail: Vec::new(),
            stop: None,
            faults,
            killed_by_fault: false,
        }
    }

    pub(super) fn pump(
        &mut self,
        sink: &mut dyn OutputSink,
        ctx: &ToolContext<'_>,
        stdout: OwnedFd,
        stderr: OwnedFd,
    ) -> io::Result<()> {
        let mut stdout = Some(File::from(stdout));
        let mut stderr = Some(File::from(stderr));
        let mut buf = vec![0u8; MAX_CHUNK_BYTES];
        while (stdout.is_some() || self.faults.as_ref().is_some_and(|f| f.holding()))
            && self.stop.is_none()
        {
            let want_write = !self.to_server.is_empty() && self.stdin.is_some();
            // Messages held back by a fault: nothing more is read until they
            // have gone on, and the loop wakes when the next one is due.
            let holding = self.faults.as_ref().is_some_and(|f| f.holding());
            let timeout = self
                .faults
                .as_ref()
                .and_then(|f| f.next_due(Instant::now()))
                .map_or(POLL_INTERVAL_MS, |d| {
                    u16::try_from(d.as_millis())
                        .map_or(POLL_INTERVAL_MS, |ms| ms.min(POLL_INTERVAL_MS))
                });
            let (wake, out_ready, err_ready, in_ready) = {
                let mut fds = vec![PollFd::new(ctx.input.wake_fd(), PollFlags::POLLIN)];
                let mut slots = [None; 3];
                let out = stdout.as_ref().filter(|_| !holding);
                for (k, f) in [out, stderr.as_ref()].into_iter().enumerate() {
                    if let Some(f) = f {
                        slots[k] = Some(fds.len());
                        fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
                    }
                }
                if want_write && let Some(f) = &self.stdin {
                    slots[2] = Some(fds.len());
                    fds.push(PollFd::new(f.as_fd(), PollFlags::POLLOUT));
                }
                match poll(&mut fds, PollTimeout::from(timeout)) {
                    Ok(_) => {}
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(e.into()),
                }
                let ready = |i: usize| fds[i].revents().is_some_and(|r| !r.is_empty());
                (
                    ready(0),
                    slots[0].is_some_and(ready),
                    slots[1].is_some_and(ready),
                    slots[2].is_some_and(ready),
                )
            };
            if wake {
                let (chunks, ended) = ctx.input.take();
                for chunk in chunks {
                    self.take_client_bytes(&chunk, sink)?;
                    self.to_server.push_back(Queued {
                        bytes: chunk,
                        written: 0,
                        from_client: true,
                    });
                }
                self.input_ended |= ended;
            }
            if in_ready {
                self.write_to_server(sink)?;
            }
            if self.input_ended && self.to_server.is_empty() {
                // EOF for the server, as its client closed.
                self.stdin = None;
            }
            if out_ready && let Some(f) = stdout.as_mut() {
                match read_some(f, &mut buf)? {
                    0 => stdout = None,
                    n => {
                        if !self.take_server_bytes(&buf[..n], sink)? {
                            return Ok(());
                        }
                    }
                }
            }
            if self.faults.is_some() {
                if !self.release(sink)? {
                    return Ok(());
                }
                if self.killed_by_fault {
                    // The server is dead mid-message: its output ends here.
                    stdout = None;
                }
            }
            if err_ready && let Some(f) = stderr.as_mut() {
                match read_some(f, &mut buf)? {
                    0 => stderr = None,
                    n => {
                        self.keep_stderr(&buf[..n]);
                        if !sink.write(StreamId::Stderr, &buf[..n])? {
                            return Ok(());
                        }
                    }
                }
            }
            self.expire_calls(sink);
            if self.from_server.discarded() > ENDLESS_LINE_FACTOR * self.max_message as u64 {
                self.stop = Some(format!(
                    "the MCP server wrote a line of over {} bytes that does not end, and was stopped",
                    self.from_server.discarded()
                ));
            }
            if sink.cancelled() {
                self.stop = Some("the call was cancelled".into());
            }
        }
        Ok(())
    }

    /// Notes the client's requests, so their answers can be checked and,
    /// if the server never answers, answered by us.
    pub(super) fn take_client_bytes(
        &mut self,
        data: &[u8],
        sink: &mut dyn OutputSink,
    ) -> io::Result<()> {
        let mut events = Vec::new();
        self.from_client.feed(data, &mut events);
        for event in events {
            let LineEvent::Line(line) = event else {
                // An oversized client message goes through untracked: the
                // client is the user's, and the cap protects from servers.
                continue;
            };
            let Ok(value) = serde_json::from_slice::<serde_json::Value>(&line) else {
                continue;
            };
            match jsonrpc::classify(&value) {
                Kind::Request { id, method }
                    if self.pending.len() < bulkhead_ipc::validate::MAX_OPEN_REQUESTS
                        && id.len() <= bulkhead_ipc::validate::MAX_REQUEST_ID_BYTES =>
                {
                    sink.request(&id, true)?;
                    if let Some(f) = self.faults.as_mut() {
                        f.on_request(&id, &method, &value);
                    }
                    if method == "tools/call" {
                        self.deadlines
                            .insert(id.clone(), Instant::now() + self.call_timeout);
                    }
                    self.pending.insert(id, method);
                }
                // A cancelled request gets no answer (the MCP spec): stop
                // waiting for one.
                Kind::Notification { method } if method == "notifications/cancelled" => {
                    if let Some(id) = jsonrpc::cancelled_id(&value)
                        && self.pending.remove(&id).is_some()
                    {
                        self.deadlines.remove(&id);
                        sink.request(&id, false)?;
                        self.check_liveness(&id);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn write_to_server(&mut self, sink: &mut dyn OutputSink) -> io::Result<()> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Ok(());
        };
        while let Some(q) = self.to_server.front_mut() {
            match stdin.write(&q.bytes[q.written..]) {
                Ok(n) => q.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    // The server closed its stdin (or died): what is queued
                    // will never be read. Return the credit so the host is
                    // not left waiting.
                    let lost = self.to_server.iter().filter(|q| q.from_client).count() as u32;
                    self.to_server.clear();
                    self.stdin = None;
                    return sink.grant_input(lost);
                }
            }
            if q.written == q.bytes.len() {
                let from_client = q.from_client;
                self.to_server.pop_front();
                if from_client {
                    sink.grant_input(1)?;
                }
            }
        }
        Ok(())
    }

    /// Returns false when the sink says stop.
    fn take_server_bytes(&mut self, data: &[u8], sink: &mut dyn OutputSink) -> io::Result<bool> {
        let mut events = Vec::new();
        self.from_server.feed(data, &mut events);
        for event in events {
            // A server being stopped gets no more of its lines through.
            if self.stop.is_some() {
                break;
            }
            if let Some(f) = self.faults.as_mut() {
                f.schedule(event, Instant::now());
                continue;
            }
            let go_on = match event {
                LineEvent::Line(line) => self.server_line(line, sink)?,
                LineEvent::Oversize { prefix } => self.oversize_line(&prefix, sink)?,
            };
            if !go_on {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The server's messages held by a fault that are due go through the
    /// relay's own handling; a `cut` stops the server, a `truncate` kills
    /// it. Returns false when the sink says stop.
    fn release(&mut self, sink: &mut dyn OutputSink) -> io::Result<bool> {
        let mut go_on = true;
        while go_on && self.stop.is_none() && !self.killed_by_fault {
            let Some(step) = self
                .faults
                .as_mut()
                .and_then(|f| f.take_due(Instant::now()))
            else {
                break;
            };
            go_on = match step {
                Step::Event(LineEvent::Line(line)) => self.server_line(line, sink)?,
                Step::Event(LineEvent::Oversize { prefix }) => self.oversize_line(&prefix, sink)?,
                Step::Cut { why } => {
                    self.stop = Some(why);
                    true
                }
                Step::Truncate => {
                    let _ = nix::sys::signal::kill(self.pid, nix::sys::signal::Signal::SIGKILL);
                    self.killed_by_fault = true;
                    true
                }
            };
        }
        let notes = self
            .faults
            .as_mut()
            .map(|f| f.take_notes())
            .unwrap_or_default();
        for note in notes {
            sink.write(StreamId::Stderr, note.as_bytes())?;
        }
        Ok(go_on)
    }

    fn server_line(&mut self, mut line: Vec<u8>, sink: &mut dyn OutputSink) -> io::Result<bool> {
        let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&line) else {
            return Ok(self.garbage_line(line.len()));
        };
        match jsonrpc::classify(&value) {
            Kind::Invalid => Ok(self.garbage_line(line.len())),
            // The answer to our liveness ping: the server is listening.
            Kind::Response { id } if id == LIVENESS_PING_ID => {
                self.liveness = None;
                Ok(true)
            }
            Kind::Response { id } => {
                let method = self.pending.remove(&id);
                self.deadlines.remove(&id);
                let cut = match method.as_deref() {
                    Some("tools/call") => {
                        jsonrpc::cut_tool_result(&mut value, &line, self.max_result)
                    }
                    _ => None,
                };
                let line = cut.unwrap_or_else(|| {
                    line.push(b'\n');
                    line
                });
                let go_on = sink.write(StreamId::Stdout, &line)?;
                if method.is_some() {
                    sink.request(&id, false)?;
                }
                Ok(go_on)
            }
            Kind::Request { .. } | Kind::Notification { .. } => {
                line.push(b'\n');
                sink.write(StreamId::Stdout, &line)
            }
        }
    }

    fn garbage_line(&mut self, len: usize) -> bool {
        self.garbage += 1;
        self.keep_stderr(
            format!("[bulkhead: dropped a {len}-byte line that is not JSON-RPC]\n").as_bytes(),
        );
        if self.garbage >= MAX_GARBAGE_LINES {
            self.stop = Some(format!(
                "the MCP server wrote {} lines that are not JSON-RPC to stdout, and was stopped",
                self.garbage
            ));
        }
        true
    }

    fn oversize_line(&mut self, prefix: &[u8], sink: &mut dyn OutputSink) -> io::Result<bool> {
        self.oversize += 1;
        let id = if self.pending.len() == 1 {
            self.pending.keys().next().cloned()
        } else {
            jsonrpc::id_in_prefix(prefix).filter(|id| self.pending.contains_key(id))
        };
        if let Some(id) = id {
            let message = format!(
                "bulkhead: the server's answer passed the {}-byte message limit and was dropped \
                 ({} of {MAX_OVERSIZE} such answers before the server is stopped)",
                self.max_message, self.oversize
            );
            self.answer(sink, &id, &message);
        }
        if self.oversize >= MAX_OVERSIZE {
            self.stop = Some(format!(
                "the MCP server sent {} messages over the {}-byte limit, and was stopped",
                self.oversize, self.max_message
            ));
        }
        Ok(!sink.cancelled())
    }

    /// Answers open request `id` with an error in the server's stead.
    pub(super) fn answer(&mut self, sink: &mut dyn OutputSink, id: &str, message: &str) {
        self.deadlines.remove(id);
        if self.pending.remove(id).is_none() {
            return;
        }
        self.answered_by_us += 1;
        super::answer_in_stead(sink, id, message);
    }

    /// A `tools/call` past its timeout: the client gets an error now, and
    /// the server a `notifications/cancelled` to stop working on it.
    fn expire_calls(&mut self, sink: &mut dyn OutputSink) {
        let now = Instant::now();
        let expired: Vec<String> = self
            .deadlines
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            let secs = self.call_timeout.as_secs_f64();
            self.answer(
                sink,
                &id,
                &format!("bulkhead: tools/call timed out after {secs:.0} s; the server was told to cancel it"),
            );
            if self.stdin.is_some() {
                self.to_server.push_back(Queued {
                    bytes: jsonrpc::cancel_notification(&id, "timed out"),
                    written: 0,
                    from_client: false,
                });
                self.check_liveness(&id);
            }
        }
        if let Some((id, deadline)) = &self.liveness
            && *deadline <= now
        {
            self.stop = Some(format!(
                "the MCP server ignored the cancellation of request {id} and did not answer a \
                 ping within {} s, and was stopped",
                CANCEL_GRACE.as_secs()
            ));
        }
    }

    /// After request `id` was cancelled, checks that the server listened:
    /// a ping it must answer within [`CANCEL_GRACE`]. A server still stuck
    /// in the call cannot, and is stopped.
    fn check_liveness(&mut self, id: &str) {
        if self.liveness.is_some() || self.stdin.is_none() {
            return;
        }
        self.to_server.push_back(Queued {
            bytes: jsonrpc::ping(LIVENESS_PING_ID),
            written: 0,
            from_client: false,
        });
        self.liveness = Some((id.to_owned(), Instant::now() + CANCEL_GRACE));
    }

    fn keep_stderr(&mut self, data: &[u8]) {
        self.stderr_tail.extend_from_slice(data);
        if self.stderr_tail.len() > STDERR_TAIL_BYTES {
            self.stderr_tail
                .drain(..self.stderr_tail.len() - STDERR_TAIL_BYTES);
        }
    }

    pub(super) fn wait_server(&mut self) -> Option<WaitStatus> {
        if self.stop.is_some() {
            let _ = nix::sys::signal::kill(self.pid, nix::sys::signal::Signal::SIGKILL);
        }
        self.stdin = None;
        match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {
                let _ = nix::sys::signal::kill(self.pid, nix::sys::signal::Signal::SIGKILL);
                loop {
                    match waitpid(self.pid, None) {
                        Err(nix::errno::Errno::EINTR) => continue,
                        other => return other.ok(),
                    }
                }
            }
            other => other.ok(),
        }
    }
}

fn read_some(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match f.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}
