//! The one fault vocabulary of bulkhead: what a user may make fail, on
//! what cue, written `FAULT[:ARG][@TRIGGER]` (`kill@200ms`, `oom`,
//! `hang@bytes:64K`, `error@on:tools/call`).
//!
//! Faults are applied by the host, never by a tool or a server: this crate
//! only names them, parses them and rolls the dice. Where each applies:
//!
//! - **process** faults (`kill`, `crash`, `hang`, `oom`, `cpu`, `exit:N`)
//!   act on the call's worker and its tree;
//! - **stream** faults (`delay:DUR`, `slow:RATE`, `cut:SIZE`, `garbage`,
//!   `oversize`, `truncate`) act on the stream the host reads or delivers
//!   (`run`), or on the server's output as the worker's relay reads it
//!   (`mcp wrap`, below);
//! - **MCP** faults (`drop`, `error[:CODE]`, `timeout`, `disconnect`,
//!   `malformed`) act on JSON-RPC requests passing through `mcp wrap`.
//!
//! A fault that cannot apply where it is asked for is refused with the
//! reason ([`FaultSpec::check`]), never silently ignored.
//!
//! # Stream faults under `mcp wrap`
//!
//! A session is long-lived and made of messages, so there a stream fault
//! acts on the server's messages, in the worker's relay, as if the server
//! had done it; the relay's and the host's real handling then applies. It
//! fires on a server message: the first (no trigger), the Nth (`@msg:N`;
//! `@every:N` for `garbage` and `oversize`), the first at or after a time
//! from the server's start (`@DUR`) or a byte count of its output
//! (`@bytes:SIZE`), or the answer to a request of a method or tool
//! (`@on:NAME`). `@p:` is refused: the relay draws no seeded numbers.
//! What fired is reported as the other faults are (`injected`, a stderr
//! line), its `at_ms` counted from the server's start.
//!
//! - `garbage`: a line that is not JSON-RPC comes before that message; the
//!   relay drops it and counts it, as for a server that prints to stdout
//!   (16 such lines stop the server);
//! - `oversize`: a message over `--max-message` comes in its place (the
//!   same id when it was an answer), and the real cap fires: the request
//!   it answers gets the cap's error, the session goes on (three such
//!   messages stop the server);
//! - `truncate`: the server is killed as that message is read: its output
//!   ends in the middle of it, and the requests in flight are answered
//!   with the server's end, as for a server that died there;
//! - `delay:DUR`: that message and what follows are held back DUR (the
//!   relay reads no more meanwhile, so the server meets a slow reader);
//! - `slow:RATE`: from that message on, each goes on when its bytes would
//!   have come at RATE bytes a second; whole messages, since a client
//!   cannot use part of one;
//! - `cut:SIZE`: SIZE more bytes of messages go on; the one that would
//!   pass SIZE does not, the server is stopped as at an output cap, and
//!   the requests in flight are answered with that reason.

mod parse;
mod rng;
mod units;

pub use parse::{ParseError, VALID_FAULTS, VALID_TRIGGERS};
pub use rng::{SeededRng, seed_from_clock};

use std::fmt;
use std::time::Duration;

/// What fails.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Fault {
    /// SIGKILL the worker (the rest of its tree then dies by the call's
    /// own teardown, as for any worker killed from outside).
    Kill,
    /// The worker aborts mid-stream (SIGABRT, as a crash does), without a
    /// final report.
    Crash,
    /// SIGSTOP the worker's tree; the call then ends by its own timeout
    /// or limits.
    Hang,
    /// The worker allocates and touches memory until the call's memory
    /// cap fires by its real mechanism (cgroup or watchdog).
    Oom,
    /// The worker spins until the CPU limit (or the timeout) ends the call.
    Cpu,
    /// The worker exits with this code, without a final report.
    Exit(i32),
    /// Hold the first byte of output back this long.
    Delay(Duration),
    /// Deliver output at most this many bytes a second.
    Slow(u64),
    /// Deliver this many bytes of output, then stop the tool as the
    /// output cap does.
    Cut(u64),
    /// The worker sends a frame that does not decode (`run`), or the
    /// server's stream gets a line that is not JSON-RPC (`mcp wrap`).
    Garbage,
    /// The worker sends a frame over the frame cap.
    Oversize,
    /// The worker's stream ends in the middle of a frame.
    Truncate,
    /// The answer to the matching request is swallowed.
    Drop,
    /// The matching request is answered with a JSON-RPC error of this
    /// code instead of reaching the server.
    Error(i64),
    /// The matching request never reaches the server and is never answered.
    Timeout,
    /// The session ends at the matching request: the server's input is
    /// closed, as when a client disconnects.
    Disconnect,
    /// The answer to the matching request gets a result that breaks the
    /// MCP schema.
    Malformed,
}

/// The JSON-RPC error code of `error` without a code: "internal error".
pub const DEFAULT_ERROR_CODE: i64 = -32603;

/// The three families of faults, by what they act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    Process,
    Stream,
    Mcp,
}

impl Fault {
    /// The fault's name, without its argument.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Crash => "crash",
            Fault::Hang => "hang",
            Fault::Oom => "oom",
            Fault::Cpu => "cpu",
            Fault::Exit(_) => "exit",
            Fault::Delay(_) => "delay",
            Fault::Slow(_) => "slow",
            Fault::Cut(_) => "cut",
            Fault::Garbage => "garbage",
            Fault::Oversize => "oversize",
            Fault::Truncate => "truncate",
            Fault::Drop => "drop",
            Fault::Error(_) => "error",
            Fault::Timeout => "timeout",
            Fault::Disconnect => "disconnect",
            Fault::Malformed => "malformed",
        }
    }

    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::Kill | Fault::Crash | Fault::Hang | Fault::Oom | Fault::Cpu | Fault::Exit(_) => {
                FaultKind::Process
            }
            Fault::Delay(_)
            | Fault::Slow(_)
            | Fault::Cut(_)
            | Fault::Garbage
            | Fault::Oversize
            | Fault::Truncate => FaultKind::Stream,
            Fault::Drop
            | Fault::Error(_)
            | Fault::Timeout
            | Fault::Disconnect
            | Fault::Malformed => FaultKind::Mcp,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Exit(n) => write!(f, "exit:{n}"),
            Fault::Delay(d) => write!(f, "delay:{}ms", d.as_millis()),
            Fault::Slow(rate) => write!(f, "slow:{rate}"),
            Fault::Cut(n) => write!(f, "cut:{n}"),
            Fault::Error(code) => write!(f, "error:{code}"),
            other => f.write_str(other.name()),
        }
    }
}

/// When a fault fires.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Trigger {
    /// No trigger given: at once (a process fault as soon as the tool
    /// runs; an MCP fault on every request).
    Start,
    /// This long after the call started (`@200ms`).
    After(Duration),
    /// Once the output reaches this many bytes (`@bytes:64K`).
    Bytes(u64),
    /// On the Nth message, counted from 1 (`@msg:3`): the worker's
    /// output chunks under `run`; under `mcp wrap`, the client's requests
    /// for an MCP fault, the server's messages for a stream fault.
    Msg(u64),
    /// On a tool (`run`) or a JSON-RPC method or tool name (`mcp wrap`:
    /// the request for an MCP fault, its answer for a stream fault).
    On(String),
    /// On every Nth message (`@every:N`): each one under `mcp wrap`; the
    /// first under a tool call, where a fault fires at most once.
    Every(u64),
    /// With this probability, drawn from the seeded generator (`@p:0.05`):
    /// once per call under `run`, once per request under `mcp wrap`.
    Probability(f64),
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trigger::Start => f.write_str("start"),
            Trigger::After(d) => write!(f, "{}ms", d.as_millis()),
            Trigger::Bytes(n) => write!(f, "bytes:{n}"),
            Trigger::Msg(n) => write!(f, "msg:{n}"),
            Trigger::On(name) => write!(f, "on:{name}"),
            Trigger::Every(n) => write!(f, "every:{n}"),
            Trigger::Probability(p) => write!(f, "p:{p}"),
        }
    }
}

/// One `--inject`: a fault and its trigger.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSpec {
    pub fault: Fault,
    pub trigger: Trigger,
}

impl FaultSpec {
    /// `fault`, fired at once.
    pub fn new(fault: Fault) -> Self {
        Self {
            fault,
            trigger: Trigger::Start,
        }
    }

    /// The same fault on `trigger`.
    #[must_use]
    pub fn on(mut self, trigger: Trigger) -> Self {
        self.trigger = trigger;
        self
    }

    /// Whether this fault can apply to `target`; `Err` says why not.
    pub fn check(&self, target: Target) -> Result<(), NotApplicable> {
        let refuse = |reason: String| {
            Err(NotApplicable {
                spec: self.to_string(),
                reason,
            })
        };
        match (target, self.fault.kind()) {
            (Target::ToolCall, FaultKind::Mcp) => refuse(format!(
                "{} is an MCP fault: it acts on JSON-RPC requests, and a tool call has none \
                 (use it with `bulkhead mcp wrap`)",
                self.fault.name()
            )),
            (Target::McpSession, FaultKind::Stream)
                if matches!(self.trigger, Trigger::Probability(_)) =>
            {
                refuse(format!(
                    "{} acts on the server's messages in its worker's relay, which draws no \
                     seeded numbers: use @msg:N, @every:N, @on:NAME, @DUR or @bytes:SIZE, not @{}",
                    self.fault.name(),
                    self.trigger
                ))
            }
            (Target::McpSession, FaultKind::Stream)
                if matches!(self.trigger, Trigger::Every(_))
                    && !matches!(self.fault, Fault::Garbage | Fault::Oversize) =>
            {
                refuse(format!(
                    "{} changes the rest of the session once it fires, so it cannot repeat: \
                     use @msg:N (only garbage and oversize take @every:)",
                    self.fault.name()
                ))
            }
            (Target::McpSession, FaultKind::Mcp)
                if matches!(self.trigger, Trigger::After(_) | Trigger::Bytes(_)) =>
            {
                refuse(format!(
                    "{} acts on requests: its trigger must be a request's method (@on:), its \
                     number (@msg:, @every:) or a probability (@p:), not @{}",
                    self.fault.name(),
                    self.trigger
                ))
            }
            (Target::McpServe, kind) => serve_refusal(self, kind).map_or(Ok(()), refuse),
            _ => Ok(()),
        }
    }
}

/// Why a fault cannot apply to a server behind `mcp serve`, if it cannot.
/// MCP faults act on the requests the gateway sends the server; process
/// faults on the server's worker: with a time or output trigger (none,
/// `@DUR`, `@bytes:`, `@msg:N` for its Nth output chunk) through the
/// worker, as under `run`, on the server's first run; with a request
/// trigger (`@on:`, `@every:`, `@p:`) from outside at the matching
/// request, which only a signal can do (`kill`, `crash`).
fn serve_refusal(spec: &FaultSpec, kind: FaultKind) -> Option<String> {
    let name = spec.fault.name();
    let request_trigger = matches!(
        spec.trigger,
        Trigger::On(_) | Trigger::Every(_) | Trigger::Probability(_)
    );
    match kind {
        FaultKind::Stream => Some(format!(
            "{name} is a stream fault of a tool call's output, which `mcp serve` does not \
             apply; for a server's answers use the MCP faults (drop, error, timeout, \
             disconnect, malformed), or a process fault for its worker"
        )),
        FaultKind::Mcp if matches!(spec.trigger, Trigger::After(_) | Trigger::Bytes(_)) => {
            Some(format!(
                "{name} acts on requests: its trigger must be a request's method or tool \
                 (@on:), its number (@msg:, @every:) or a probability (@p:), not @{}",
                spec.trigger
            ))
        }
        FaultKind::Process if matches!(spec.fault, Fault::Hang) => Some(
            "hang stops a server that no timeout ends (a server lives as long as the \
             gateway), so its requests would wait for ever; use timeout for an \
             unanswered request, or kill"
                .into(),
        ),
        FaultKind::Process
            if request_trigger && !matches!(spec.fault, Fault::Kill | Fault::Crash) =>
        {
            Some(format!(
                "{name} needs the server's worker to act on cue, which it does on a time or \
                 output trigger (none, @DUR, @bytes:SIZE, @msg:N), not at a request \
                 (@{}); at a request bulkhead can only signal the worker: kill or crash",
                spec.trigger
            ))
        }
        _ => None,
    }
}

impl fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.trigger {
            Trigger::Start => write!(f, "{}", self.fault),
            ref t => write!(f, "{}@{t}", self.fault),
        }
    }
}

/// Where a fault is to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// One tool call (`bulkhead run`, `CallRequest::inject`).
    ToolCall,
    /// The JSON-RPC session of `bulkhead mcp wrap`.
    McpSession,
    /// One server behind the `bulkhead mcp serve` gateway.
    McpServe,
}

/// A fault asked for where it cannot apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--inject {spec}: cannot apply here: {reason}")]
pub struct NotApplicable {
    pub spec: String,
    pub reason: String,
}

/// Which fault fired, on what, when: carried by the call's report, so a
/// test can tell an injected failure from a real one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injected {
    /// The fault as written back (`exit:3`, `delay:200ms`).
    pub fault: String,
    /// Its trigger (`start`, `bytes:65536`, `on:tools/call`).
    pub trigger: String,
    /// Milliseconds from the call's start to when it fired.
    pub at_ms: u64,
}

impl Injected {
    pub fn new(spec: &FaultSpec, at: Duration) -> Self {
        Self {
            fault: spec.fault.to_string(),
            trigger: spec.trigger.to_string(),
            at_ms: u64::try_from(at.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

impl fmt::Display for Injected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "injected {} @{} at {} ms",
            self.fault, self.trigger, self.at_ms
        )
    }
}

#[cfg(test)]
mod tests;
