//! The messages that travel in frames.
//!
//! Structs serialize as MessagePack arrays (positional), enums as a map with
//! one key: the variant name. Unknown variants fail to decode, which the
//! host treats as a protocol violation.

use serde::{Deserialize, Serialize};

/// What the host sends to a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum HostMessage {
    /// First frame of every connection.
    Hello { protocol: u32, host_version: String },
    /// The one call this worker serves.
    Invoke(Box<Invoke>),
    /// Permission to send `chunks` more `Chunk` messages.
    Credit { chunks: u32 },
    /// Stop the tool now; the worker still answers with `Done` or `Error`.
    Cancel,
    /// Bytes for the tool's input (an MCP server's stdin), at most
    /// `MAX_CHUNK_BYTES`, sent only against `InputCredit`.
    Input {
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// The tool's input has ended (the MCP client closed its end).
    CloseInput,
    /// A fault the user asked the host to inject (`--inject`), which the
    /// worker carries out at once, so that the host's real checks and
    /// limits meet a real failure. Only the host sends it; a tool cannot.
    Fault(WorkerFault),
}

/// A fault the worker carries out on the host's word (see
/// [`HostMessage::Fault`] and [`Invoke::start_faults`]). Faults the host
/// applies to what it delivers (delay, slow, cut) are not here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkerFault {
    /// SIGKILL itself: at the start, before the tool runs, the worker is
    /// its whole tree, so this is the kill from outside. Later the host
    /// signals the tree itself.
    Kill,
    /// SIGSTOP itself, at the start, for the same reason.
    Stop,
    /// Abort (SIGABRT) with no report, as a crashing process does.
    Crash,
    /// Allocate and touch memory until the call's memory cap fires.
    Oom,
    /// Spin until the CPU limit (or the timeout) ends the call.
    Cpu,
    /// Kill the tool's processes and exit with this code, with no report.
    Exit(i32),
    /// Send a frame whose body does not decode.
    Garbage,
    /// Send a frame header over the frame cap.
    Oversize,
    /// Send part of a frame, then exit: the stream ends mid-message.
    Truncate,
}

/// A stream fault that the MCP relay (`mcp_stdio`) applies to its
/// server's output as if the server had done it (`mcp wrap --inject`), so
/// that the relay's real handling and the host's meet it. The host puts it
/// in the relay's arguments; a server cannot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayFault {
    pub kind: RelayFaultKind,
    pub trigger: RelayTrigger,
    /// The fault and its trigger as the user wrote them (`delay:200ms`,
    /// `msg:2`), for the session's `injected`.
    pub spec_fault: String,
    pub spec_trigger: String,
}

/// What a [`RelayFault`] does to the server's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RelayFaultKind {
    /// A line that is not JSON-RPC, before the message that fires it.
    Garbage,
    /// A message over the relay's message cap in place of the one that
    /// fires it.
    Oversize,
    /// Half of the message that fires it, then the server's end.
    Truncate,
    /// The server's output held back this many milliseconds.
    DelayMs(u64),
    /// The server's output passed on at most this many bytes a second.
    Slow(u64),
    /// This many more bytes of the server's output, then its end.
    Cut(u64),
}

/// When a [`RelayFault`] fires, counted in the server's messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RelayTrigger {
    /// The server's first message.
    Start,
    /// The first message this many milliseconds after the server started.
    AfterMs(u64),
    /// The message with which the server's output reaches this many bytes.
    Bytes(u64),
    /// The Nth message of the server's, from 1.
    Msg(u64),
    /// Every Nth message of the server's.
    Every(u64),
    /// The answer to a request of this method, or a `tools/call` of this
    /// tool.
    On(String),
}

/// What a worker sends to the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WorkerMessage {
    /// First frame of every connection.
    Hello {
        protocol: u32,
        worker_version: String,
        pid: u32,
    },
    /// What the worker applied to itself before running the tool.
    Confined(Confinement),
    /// A piece of the tool's output.
    Chunk(Chunk),
    /// Free-form progress from the tool ("searched 1200 files").
    Progress(Progress),
    /// The worker's own view of resource use so far.
    Usage(WorkerUsage),
    /// Permission for the host to send `chunks` more `Input` messages,
    /// granted as the tool consumes them.
    InputCredit { chunks: u32 },
    /// A JSON-RPC request from the client was passed to the tool
    /// (`open: true`) or answered (`open: false`). If the call ends
    /// abnormally, the host answers the open ones itself.
    Request { id: String, open: bool },
    /// The tool ended. Last message of a successful exchange.
    Done(Done),
    /// The tool could not run or failed inside the worker. Last message.
    Error(ToolError),
}

/// One call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invoke {
    pub call_id: u64,
    pub tool: String,
    /// Arguments as a JSON document, validated by the tool against its schema.
    pub args_json: String,
    pub limits: WorkerLimits,
    /// `None`: the `trusted` policy, limits only.
    pub sandbox: Option<crate::SandboxSpec>,
    /// Faults to carry out once confined, before the tool runs: those due
    /// at the call's start. Sent as a message after `Confined` instead,
    /// they would race a tool that ends within a millisecond.
    #[serde(default)]
    pub start_faults: Vec<WorkerFault>,
}

/// The limits a worker applies to itself and to its tool.
///
/// Memory is enforced by the host (cgroup or watchdog); the worker only sets
/// the `RLIMIT_DATA` backstop that the host computes for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerLimits {
    /// RLIMIT_CPU, seconds of CPU for the worker and each process it starts.
    pub cpu_seconds: Option<u64>,
    /// RLIMIT_DATA. `None` leaves it as inherited.
    pub data_bytes: Option<u64>,
    /// RLIMIT_AS. Off by default: node, the JVM and Go die under it.
    pub address_space_bytes: Option<u64>,
    /// RLIMIT_NOFILE.
    pub open_files: u64,
    /// RLIMIT_FSIZE, the largest file the tool may write.
    pub file_size_bytes: Option<u64>,
    /// Processes the call may run at once. The worker turns it into
    /// RLIMIT_NPROC where that means something (not for root).
    pub processes: Option<u64>,
    /// Output the host will keep. The worker counts against it.
    pub max_output_bytes: u64,
    /// Stop the tool once `max_output_bytes` is crossed (default). When
    /// false the worker drains the tool to its end, so the host can keep a
    /// tail.
    pub stop_at_output_cap: bool,
}

/// Which of a tool's outputs a chunk belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StreamId {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    pub stream: StreamId,
    /// 0, 1, 2, … across all streams of the call, with no gaps.
    pub seq: u64,
    /// `Bytes`, so the host's reader can hand out the chunk as a slice of
    /// the frame it arrived in instead of a copy
    /// ([`AsyncFrameReader::read_worker_message`](crate::AsyncFrameReader::read_worker_message)).
    /// On the wire it is a MessagePack `bin`, as `serde_bytes` writes it.
    pub data: bytes::Bytes,
}

/// A `WorkerMessage::Chunk` that borrows its bytes, for the worker's hot
/// path: it encodes to exactly the same frame as the owned message (a test
/// checks), without copying each 64 KiB piece into a fresh `Vec`.
///
/// The host decodes it too, borrowing `data` from the frame's body, to find
/// where a chunk's bytes lie in the frame without copying them.
#[derive(Debug, Serialize, Deserialize)]
pub enum ChunkRef<'a> {
    Chunk {
        stream: StreamId,
        seq: u64,
        #[serde(with = "serde_bytes", borrow)]
        data: &'a [u8],
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub message: String,
    pub done: u64,
    pub total: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WorkerUsage {
    /// CPU time of the worker and its reaped children, in milliseconds.
    pub cpu_ms: u64,
    /// Output bytes the tool produced so far, kept or not.
    pub bytes_seen: u64,
    /// Largest resident set of the worker or any process it reaped, in
    /// bytes (`ru_maxrss`). Catches a peak between two host samples.
    pub max_rss_bytes: u64,
}

/// What the worker applied to itself, reported so that weaker isolation is
/// never silent.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Confinement {
    /// One entry per mechanism, e.g. ("RLIMIT_NPROC", "not enforced: root ignores it").
    pub applied: Vec<(String, String)>,
    /// The sandbox, one entry per mechanism; empty when none was asked for.
    pub sandbox: Vec<crate::MechanismState>,
}

/// How the tool ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToolExit {
    /// An in-worker tool finished normally.
    Finished,
    /// A child process exited with this code.
    Code(i32),
    /// A child process was killed by this signal.
    Signal(i32),
    /// The worker stopped the tool (output cap or cancel).
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    pub exit: ToolExit,
    /// Bytes of output the tool produced, including what was not sent.
    pub bytes_seen: u64,
    /// Newlines in those bytes.
    pub lines_seen: u64,
    /// True when the worker stopped the tool because the output cap was hit.
    pub stopped_at_output_cap: bool,
    /// Tool-specific facts as a JSON object, e.g. `{"matches": 2008, "files": 412}`.
    pub summary_json: Option<String>,
    pub usage: WorkerUsage,
}

/// Why a tool failed inside the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToolErrorKind {
    UnknownTool,
    BadArguments,
    Io,
    Internal,
    /// The policy requires a mechanism this kernel does not offer.
    SandboxRefused,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolError {
    pub kind: ToolErrorKind,
    pub message: String,
}
