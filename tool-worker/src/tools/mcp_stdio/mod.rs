//! `mcp_stdio`: runs a stdio MCP server as the worker's child and relays
//! JSON-RPC between it and the host (`bulkhead mcp wrap`).
//!
//! Client messages are passed on as the bytes they came as. Server
//! messages are split into lines under a hard cap *before* any parsing;
//! a line over the cap is dropped and the request it answers gets an error
//! instead; a `tools/call` result over `max_result_bytes` is cut to a valid,
//! smaller result that says what was cut; a line that is not JSON-RPC is
//! dropped. A server that keeps breaking the cap is stopped. When the
//! server ends, every request still open is answered with why.
//!
//! One thread does it all with `poll`: after `CLONE_NEWPID` the worker may
//! start no thread (see `sandbox`).
//!
//! # Caveats
//! - No restart: when the server dies the relay ends, and so does the
//!   `wrap` session (the client sees its server exit, as without bulkhead).
//! - An oversized answer is matched to its request by the request being the
//!   only one open, or by an `"id":` in its first 4 KiB; otherwise only the
//!   strike is counted and the request stays open until the server ends.

mod jsonrpc;
mod lines;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Command, Stdio};

use bulkhead_ipc::{MAX_CHUNK_BYTES, StreamId, ToolExit};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use schemars::JsonSchema;
use serde::Deserialize;

use self::jsonrpc::Kind;
use self::lines::{BoundedLines, LineEvent};
use super::{OutputSink, Tool, ToolContext, ToolEnd, ToolFailure};
use crate::tree;

/// The default hard cap on one server message. Large enough for
/// any real tool result with an image or two; small enough that parsing
/// one cannot hurt the worker.
const DEFAULT_MAX_MESSAGE_BYTES: u64 = 4 << 20;

/// A `tools/call` result above this is cut: bulkhead's default output cap,
/// what an agent's context can usefully take.
const DEFAULT_MAX_RESULT_BYTES: u64 = 1 << 20;

/// Client input chunks the host may have in flight: 16 × 64 KiB = 1 MiB,
/// the same window as output.
const INPUT_WINDOW: u32 = 16;

/// Oversized answers before the server is stopped: one may be a fluke of a
/// huge file, three in one session is a server that will not stop.
const MAX_OVERSIZE: u32 = 3;

/// Lines that are not JSON-RPC before the server is stopped. Some servers
/// print a banner to stdout by mistake; a stream of garbage is not that.
const MAX_GARBAGE_LINES: u32 = 16;

/// The server's stderr kept for the summary.
const STDERR_TAIL_BYTES: usize = 4096;

/// How often the loop wakes with nothing to do, to notice a cancel.
const POLL_INTERVAL_MS: u16 = 100;

pub struct McpStdio;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct McpStdioArgs {
    /// The server's program and arguments.
    command: Vec<String>,
    /// Variables added to the server's environment.
    #[serde(default)]
    env: BTreeMap<String, String>,
    /// Hard cap on one message from the server, in bytes.
    #[serde(default = "default_max_message")]
    max_message_bytes: u64,
    /// A `tools/call` result above this many bytes is cut.
    #[serde(default = "default_max_result")]
    max_result_bytes: u64,
}

fn default_max_message() -> u64 {
    DEFAULT_MAX_MESSAGE_BYTES
}

fn default_max_result() -> u64 {
    DEFAULT_MAX_RESULT_BYTES
}

impl Tool for McpStdio {
    type Args = McpStdioArgs;
    const NAME: &'static str = "mcp_stdio";
    const DESCRIPTION: &'static str = "Runs a stdio MCP server and relays JSON-RPC with a hard per-message cap (used by `bulkhead mcp wrap`).";
    const SPAWNS_PROCESSES: bool = true;

    fn run(
        &self,
        args: McpStdioArgs,
        sink: &mut dyn OutputSink,
        ctx: &ToolContext<'_>,
    ) -> Result<ToolEnd, ToolFailure> {
        let Some((program, rest)) = args.command.split_first() else {
            return Err(ToolFailure::bad_args(
                "command: the server's program is missing",
            ));
        };
        let mut cmd = Command::new(program);
        cmd.args(rest)
            .envs(&args.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        tree::die_with_worker(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| {
            ToolFailure::io(format!("cannot start the MCP server \"{program}\""), e)
        })?;
        let pid = Pid::from_raw(child.id() as i32);
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(ToolFailure::io(
                "mcp_stdio",
                io::Error::other("pipes missing"),
            ));
        };
        drop(child);
        let stdin: OwnedFd = stdin.into();
        set_nonblocking(&stdin).map_err(|e| ToolFailure::io("server stdin", e))?;
        let cap = usize::try_from(args.max_message_bytes).unwrap_or(usize::MAX);
        let mut relay = Relay {
            pid,
            pending: HashMap::new(),
            from_server: BoundedLines::new(cap),
            from_client: BoundedLines::new(cap),
            to_server: VecDeque::new(),
            stdin: Some(File::from(stdin)),
            input_ended: false,
            max_message: cap,
            max_result: usize::try_from(args.max_result_bytes).unwrap_or(usize::MAX),
            oversize: 0,
            garbage: 0,
            answered_by_us: 0,
            stderr_tail: Vec::new(),
            stop: None,
        };
        sink.grant_input(INPUT_WINDOW)
            .map_err(|e| ToolFailure::io("granting input", e))?;
        let result = relay.pump(sink, ctx, stdout.into(), stderr.into());
        tree::signal_descendants();
        let status = relay.wait_server();
        tree::kill_descendants();
        let why = relay.stop.clone().unwrap_or_else(|| match status {
            Some(WaitStatus::Exited(_, code)) => format!("the MCP server exited (code {code})"),
            Some(WaitStatus::Signaled(_, sig, _)) => {
                format!("the MCP server crashed (signal {})", sig as i32)
            }
            _ => "the MCP server ended".to_owned(),
        });
        // Requests that came but never reached the server are open too.
        let (unsent, _) = ctx.input.take();
        for chunk in unsent {
            let _ = relay.take_client_bytes(&chunk, sink);
        }
        // Whatever is still open will never be answered by the server.
        let open: Vec<String> = relay.pending.keys().cloned().collect();
        for id in open {
            relay.answer(sink, &id, &format!("bulkhead: {why} before answering"));
        }
        result.map_err(|e| ToolFailure::io("relaying the MCP server", e))?;
        let exit = match status {
            Some(WaitStatus::Exited(_, code)) => ToolExit::Code(code),
            Some(WaitStatus::Signaled(_, sig, _)) => ToolExit::Signal(sig as i32),
            _ => ToolExit::Stopped,
        };
        Ok(ToolEnd {
            exit,
            summary: Some(serde_json::json!({
                "ended": why,
                "answered_by_bulkhead": relay.answered_by_us,
                "oversize_messages": relay.oversize,
                "non_json_lines": relay.garbage,
                "stderr_tail": String::from_utf8_lossy(&relay.stderr_tail),
            })),
        })
    }
}

struct Relay {
    pid: Pid,
    /// Open client requests: id (JSON text) → method.
    pending: HashMap<String, String>,
    from_server: BoundedLines,
    from_client: BoundedLines,
    /// Client chunks not yet written to the server, with how much of the
    /// first one was. Holds at most the input window.
    to_server: VecDeque<(Vec<u8>, usize)>,
    stdin: Option<File>,
    input_ended: bool,
    max_message: usize,
    max_result: usize,
    oversize: u32,
    garbage: u32,
    answered_by_us: u32,
    stderr_tail: Vec<u8>,
    /// Why the relay stopped the server, if it did.
    stop: Option<String>,
}

impl Relay {
    fn pump(
        &mut self,
        sink: &mut dyn OutputSink,
        ctx: &ToolContext<'_>,
        stdout: OwnedFd,
        stderr: OwnedFd,
    ) -> io::Result<()> {
        let mut stdout = Some(File::from(stdout));
        let mut stderr = Some(File::from(stderr));
        let mut buf = vec![0u8; MAX_CHUNK_BYTES];
        while stdout.is_some() && self.stop.is_none() {
            let want_write = !self.to_server.is_empty() && self.stdin.is_some();
            let (wake, out_ready, err_ready, in_ready) = {
                let mut fds = vec![PollFd::new(ctx.input.wake_fd(), PollFlags::POLLIN)];
                let mut slots = [None; 3];
                for (k, f) in [stdout.as_ref(), stderr.as_ref()].into_iter().enumerate() {
                    if let Some(f) = f {
                        slots[k] = Some(fds.len());
                        fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
                    }
                }
                if want_write && let Some(f) = &self.stdin {
                    slots[2] = Some(fds.len());
                    fds.push(PollFd::new(f.as_fd(), PollFlags::POLLOUT));
                }
                match poll(&mut fds, PollTimeout::from(POLL_INTERVAL_MS)) {
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
                    self.to_server.push_back((chunk, 0));
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
            if sink.cancelled() {
                self.stop = Some("the call was cancelled".into());
            }
        }
        Ok(())
    }

    /// Notes the client's requests, so their answers can be checked and,
    /// if the server never answers, answered by us.
    fn take_client_bytes(&mut self, data: &[u8], sink: &mut dyn OutputSink) -> io::Result<()> {
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
            if let Kind::Request { id, method } = jsonrpc::classify(&value)
                && self.pending.len() < bulkhead_ipc::validate::MAX_OPEN_REQUESTS
                && id.len() <= bulkhead_ipc::validate::MAX_REQUEST_ID_BYTES
            {
                sink.request(&id, true)?;
                self.pending.insert(id, method);
            }
        }
        Ok(())
    }

    fn write_to_server(&mut self, sink: &mut dyn OutputSink) -> io::Result<()> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Ok(());
        };
        while let Some((chunk, done)) = self.to_server.front_mut() {
            match stdin.write(&chunk[*done..]) {
                Ok(n) => *done += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    // The server closed its stdin (or died): what is queued
                    // will never be read. Return the credit so the host is
                    // not left waiting.
                    let lost = self.to_server.len() as u32;
                    self.to_server.clear();
                    self.stdin = None;
                    return sink.grant_input(lost);
                }
            }
            if *done == chunk.len() {
                self.to_server.pop_front();
                sink.grant_input(1)?;
            }
        }
        Ok(())
    }

    /// Returns false when the sink says stop.
    fn take_server_bytes(&mut self, data: &[u8], sink: &mut dyn OutputSink) -> io::Result<bool> {
        let mut events = Vec::new();
        self.from_server.feed(data, &mut events);
        for event in events {
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

    fn server_line(&mut self, mut line: Vec<u8>, sink: &mut dyn OutputSink) -> io::Result<bool> {
        let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&line) else {
            return Ok(self.garbage_line(line.len()));
        };
        match jsonrpc::classify(&value) {
            Kind::Invalid => Ok(self.garbage_line(line.len())),
            Kind::Response { id } => {
                let method = self.pending.remove(&id);
                let cut = match method.as_deref() {
                    Some("tools/call") => {
                        jsonrpc::cut_tool_result(&mut value, line.len(), self.max_result)
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
    fn answer(&mut self, sink: &mut dyn OutputSink, id: &str, message: &str) {
        if self.pending.remove(id).is_none() {
            return;
        }
        self.answered_by_us += 1;
        // The host may be gone; then it answers (or the client sees EOF).
        let _ = sink.write(StreamId::Stdout, &jsonrpc::error_response(id, message));
        let _ = sink.request(id, false);
    }

    fn keep_stderr(&mut self, data: &[u8]) {
        self.stderr_tail.extend_from_slice(data);
        if self.stderr_tail.len() > STDERR_TAIL_BYTES {
            self.stderr_tail
                .drain(..self.stderr_tail.len() - STDERR_TAIL_BYTES);
        }
    }

    fn wait_server(&mut self) -> Option<WaitStatus> {
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

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    use nix::fcntl::{F_GETFL, F_SETFL, OFlag, fcntl};
    let flags = OFlag::from_bits_truncate(fcntl(fd, F_GETFL)?);
    fcntl(fd, F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}
