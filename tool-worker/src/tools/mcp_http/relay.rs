//! The relay's side, on the tool's own thread: client lines in (from the
//! host's input queue), server messages out (to the sink), and the book of
//! open requests. It `poll`s two wake pipes, the input's and the HTTP
//! thread's, so it never blocks on the network.

use std::collections::{HashMap, HashSet};
use std::io;
use std::time::{Duration, Instant};

use bulkhead_ipc::StreamId;
use bulkhead_ipc::validate::{MAX_OPEN_REQUESTS, MAX_REQUEST_ID_BYTES};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde_json::Value;

use super::bridge::{Command, Commands, Event, Inbox};
use crate::tools::mcp_stdio::jsonrpc::{self, Kind};
use crate::tools::mcp_stdio::{MAX_OVERSIZE, POLL_INTERVAL_MS, answer_in_stead};
use crate::tools::{OutputSink, ToolContext};
use bulkhead_ipc::lines::{BoundedLines, LineEvent};

/// Exchanges in flight before the relay stops granting input credit. Each
/// may hold a message up to the cap while it reads it, so this bounds the
/// worker's memory (16 × 4 MiB at the default cap); a client rarely has
/// more than a few requests open.
const MAX_IN_FLIGHT: usize = 16;

/// Once the client has closed its input, answers still coming get this
/// long: a client that hung up reads nothing, but one that closes stdin
/// right after its last request still wants that answer.
const DRAIN_AFTER_INPUT_END: Duration = Duration::from_secs(10);

/// An open request of the client.
struct Open {
    method: String,
    /// The exchange carrying it.
    seq: u64,
    /// When a `tools/call` times out.
    deadline: Option<Instant>,
}

pub(super) struct Relay {
    commands: Option<Commands>,
    pending: HashMap<String, Open>,
    in_flight: HashSet<u64>,
    next_seq: u64,
    from_client: BoundedLines,
    /// Input chunks consumed whose credit waits for room in flight.
    owed_credit: u32,
    input_ended: Option<Instant>,
    max_message: usize,
    max_result: usize,
    call_timeout: Duration,
    pub(super) oversize: u32,
    pub(super) non_json: u32,
    pub(super) answered_by_us: u32,
    /// Why the relay stopped before the client ended, if it did.
    pub(super) stop: Option<String>,
}

impl Relay {
    pub(super) fn new(
        commands: Commands,
        max_message: usize,
        max_result: usize,
        call_timeout: Duration,
    ) -> Self {
        Self {
            commands: Some(commands),
            pending: HashMap::new(),
            in_flight: HashSet::new(),
            next_seq: 0,
            from_client: BoundedLines::new(max_message),
            owed_credit: 0,
            input_ended: None,
            max_message,
            max_result,
            call_timeout,
            oversize: 0,
            non_json: 0,
            answered_by_us: 0,
            stop: None,
        }
    }

    /// Relays until the client is done and answered, the call is
    /// cancelled, or the relay gives up.
    pub(super) fn pump(
        &mut self,
        sink: &mut dyn OutputSink,
        ctx: &ToolContext<'_>,
        inbox: &mut Inbox,
    ) -> io::Result<()> {
        while self.stop.is_none() {
            if let Some(t) = self.input_ended
                && (self.in_flight.is_empty() || t.elapsed() >= DRAIN_AFTER_INPUT_END)
            {
                return Ok(());
            }
            let (input_ready, events_ready) = {
                let mut fds = [
                    PollFd::new(ctx.input.wake_fd(), PollFlags::POLLIN),
                    PollFd::new(inbox.wake_fd(), PollFlags::POLLIN),
                ];
                match poll(&mut fds, PollTimeout::from(POLL_INTERVAL_MS)) {
                    Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => return Err(e.into()),
                }
                let ready = |i: usize| fds[i].revents().is_some_and(|r| !r.is_empty());
                (ready(0), ready(1))
            };
            if input_ready {
                let (chunks, ended) = ctx.input.take();
                for chunk in chunks {
                    self.client_bytes(&chunk, sink)?;
                    self.owed_credit += 1;
                }
                if ended && self.input_ended.is_none() {
                    self.input_ended = Some(Instant::now());
                }
            }
            if events_ready {
                for event in inbox.take() {
                    self.event(event, sink)?;
                }
            }
            if self.owed_credit > 0 && self.in_flight.len() < MAX_IN_FLIGHT {
                sink.grant_input(std::mem::take(&mut self.owed_credit))?;
            }
            self.expire_calls(sink);
            if sink.cancelled() {
                self.stop = Some("the call was cancelled".into());
            }
        }
        Ok(())
    }

    /// Splits the client's bytes into messages (under the same cap as the
    /// server's) and sends each on its own POST.
    pub(super) fn client_bytes(
        &mut self,
        data: &[u8],
        sink: &mut dyn OutputSink,
    ) -> io::Result<()> {
        let mut lines = Vec::new();
        self.from_client.feed(data, &mut lines);
        for line in lines {
            match line {
                LineEvent::Line(line) => self.post(line, sink)?,
                // A POST needs the whole message; the client learns why
                // it was not sent, if its request can be told.
                LineEvent::Oversize { prefix } => {
                    if let Some(id) = jsonrpc::id_in_prefix(&prefix) {
                        let message = format!(
                            "bulkhead: the request passed the {}-byte message limit and was not sent",
                            self.max_message
                        );
                        sink.write(StreamId::Stdout, &jsonrpc::error_response(&id, &message))?;
                    }
                }
            }
        }
        Ok(())
    }

    fn post(&mut self, line: Vec<u8>, sink: &mut dyn OutputSink) -> io::Result<()> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let value = serde_json::from_slice::<Value>(&line).ok();
        let id = match value.as_ref().map(jsonrpc::classify) {
            Some(Kind::Request { id, method })
                if self.pending.len() < MAX_OPEN_REQUESTS && id.len() <= MAX_REQUEST_ID_BYTES =>
            {
                sink.request(&id, true)?;
                let deadline = (method == "tools/call").then(|| Instant::now() + self.call_timeout);
                self.pending.insert(
                    id.clone(),
                    Open {
                        method,
                        seq,
                        deadline,
                    },
                );
                Some(id)
            }
            // A cancelled request gets no answer (the MCP spec): stop
            // waiting for one, and drop its stream.
            Some(Kind::Notification { method }) if method == "notifications/cancelled" => {
                if let Some(id) = value.as_ref().and_then(jsonrpc::cancelled_id)
                    && let Some(open) = self.pending.remove(&id)
                {
                    sink.request(&id, false)?;
                    self.abort(open.seq);
                }
                None
            }
            _ => None,
        };
        self.send(Command::Post {
            seq,
            body: line,
            id: id.clone(),
        });
        self.in_flight.insert(seq);
        if self.stop.is_some()
            && let Some(id) = id
        {
            self.answer(sink, &id, "bulkhead: the HTTP side of the relay has ended");
        }
        Ok(())
    }

    fn send(&mut self, command: Command) {
        let gone = self
            .commands
            .as_ref()
            .is_none_or(|c| c.send(command).is_err());
        if gone && self.stop.is_none() {
            self.stop = Some("the HTTP side of the relay ended".into());
        }
    }

    fn abort(&mut self, seq: u64) {
        self.in_flight.remove(&seq);
        self.send(Command::Abort { seq });
    }

    fn event(&mut self, event: Event, sink: &mut dyn OutputSink) -> io::Result<()> {
        match event {
            Event::Message(line) => self.server_message(line, sink)?,
            Event::Failed {
                id,
                message,
                oversize,
            } => {
                self.oversize += u32::from(oversize);
                self.answer(sink, &id, &message);
            }
            Event::Log(text) => {
                sink.write(StreamId::Stderr, text.as_bytes())?;
            }
            Event::Done { seq } => {
                self.in_flight.remove(&seq);
            }
        }
        Ok(())
    }

    fn server_message(&mut self, mut line: Vec<u8>, sink: &mut dyn OutputSink) -> io::Result<()> {
        let parsed = serde_json::from_slice::<Value>(&line).ok();
        let kind = parsed.as_ref().map_or(Kind::Invalid, jsonrpc::classify);
        let mut out = None;
        match kind {
            Kind::Invalid => {
                self.non_json += 1;
                let note = format!(
                    "[bulkhead: dropped a {}-byte message that is not JSON-RPC]\n",
                    line.len()
                );
                sink.write(StreamId::Stderr, note.as_bytes())?;
                return Ok(());
            }
            Kind::Response { id } => {
                let open = self.pending.remove(&id);
                if let (Some(open), Some(mut value)) = (&open, parsed) {
                    if open.method == "initialize"
                        && let Some(v) = value
                            .pointer("/result/protocolVersion")
                            .and_then(Value::as_str)
                    {
                        self.send(Command::ProtocolVersion(v.to_owned()));
                    }
                    if open.method == "tools/call" {
                        out = jsonrpc::cut_tool_result(&mut value, &line, self.max_result);
                    }
                }
                let line = out.unwrap_or_else(|| {
                    line.push(b'\n');
                    line
                });
                sink.write(StreamId::Stdout, &line)?;
                if open.is_some() {
                    sink.request(&id, false)?;
                }
            }
            Kind::Request { .. } | Kind::Notification { .. } => {
                line.push(b'\n');
                sink.write(StreamId::Stdout, &line)?;
            }
        }
        if self.oversize >= MAX_OVERSIZE && self.stop.is_none() {
            self.stop = Some(format!(
                "the MCP server sent {} answers over the {}-byte limit; the session was ended",
                self.oversize, self.max_message
            ));
        }
        Ok(())
    }

    /// Answers open request `id` with an error in the server's stead.
    pub(super) fn answer(&mut self, sink: &mut dyn OutputSink, id: &str, message: &str) {
        if self.pending.remove(id).is_none() {
            return;
        }
        self.answered_by_us += 1;
        answer_in_stead(sink, id, message);
    }

    /// A `tools/call` past its timeout: the client gets an error now, its
    /// stream is dropped, and the server gets a `notifications/cancelled`.
    fn expire_calls(&mut self, sink: &mut dyn OutputSink) {
        let now = Instant::now();
        let expired: Vec<(String, u64)> = self
            .pending
            .iter()
            .filter(|(_, o)| o.deadline.is_some_and(|t| t <= now))
            .map(|(id, o)| (id.clone(), o.seq))
            .collect();
        for (id, seq) in expired {
            let secs = self.call_timeout.as_secs_f64();
            self.answer(
                sink,
                &id,
                &format!("bulkhead: tools/call timed out after {secs:.0} s; the server was told to cancel it"),
            );
            self.abort(seq);
            let seq = self.next_seq;
            self.next_seq += 1;
            self.in_flight.insert(seq);
            self.send(Command::Post {
                seq,
                body: jsonrpc::cancel_notification(&id, "timed out"),
                id: None,
            });
        }
    }

    /// Ends the HTTP side (it then DELETEs the session) and answers every
    /// request still open with `why`.
    pub(super) fn finish(&mut self, sink: &mut dyn OutputSink, why: &str) {
        self.commands = None;
        let open: Vec<String> = self.pending.keys().cloned().collect();
        for id in open {
            self.answer(
                sink,
                &id,
                &format!("bulkhead: {why} before the server answered"),
            );
        }
    }

    /// Requests the client sent that were never POSTed (input left when
    /// the relay stopped): noted as open, so `finish` answers them.
    pub(super) fn take_unsent(&mut self, data: &[u8], sink: &mut dyn OutputSink) {
        let mut lines = Vec::new();
        self.from_client.feed(data, &mut lines);
        for line in lines {
            if let LineEvent::Line(line) = line
                && let Ok(value) = serde_json::from_slice::<Value>(&line)
                && let Kind::Request { id, method } = jsonrpc::classify(&value)
                && self.pending.len() < MAX_OPEN_REQUESTS
                && id.len() <= MAX_REQUEST_ID_BYTES
                && sink.request(&id, true).is_ok()
            {
                self.pending.insert(
                    id,
                    Open {
                        method,
                        seq: u64::MAX,
                        deadline: None,
                    },
                );
            }
        }
    }
}
