//! bulkhead's wire protocol between the host and a worker.
//!
//! # Model
//!
//! A *frame* is a 4-byte little-endian length followed by that many bytes of
//! MessagePack ([`rmp_serde`]). The host speaks [`HostMessage`]s, the worker
//! [`WorkerMessage`]s. One worker serves exactly one call:
//!
//! ```text
//! host                                   worker
//!  │── Hello{protocol, version} ───────────▶│
//!  │◀────────── Hello{protocol, version, pid}│
//!  │── Invoke{tool, args, limits} ─────────▶│
//!  │── Credit{chunks} ─────────────────────▶│   (at once, then as chunks are consumed)
//!  │◀──── Chunk{stream, seq, data} ×N ───────│   (at most one per credit)
//!  │◀──── Progress / Usage ──────────────────│   (any time)
//!  │── Cancel ─────────────────────────────▶│   (optional)
//!  │◀──── Done{exit, bytes_seen, …} | Error ─│
//!  │                                   (EOF) │
//! ```
//!
//! The opening is exactly `Hello`, `Invoke`, `Credit`, written by the host
//! without waiting for the worker: the worker reads all three before it
//! starts the tool, so its first chunk needs no other thread.
//!
//! **Architecture invariant:** a frame's length is checked against the
//! reader's cap *before* its body is allocated ([`frame`]), and a decoded
//! worker stream is checked against the state machine in [`validate`]. Any
//! failure of either is a [`Violation`]; the host kills a worker that commits
//! one and reports the call as failed with the violation's text.
//!
//! **API boundary:** this crate knows nothing of processes, tools or limits
//! enforcement. It is bytes and types, so it can be fuzzed and property-tested
//! on its own.

pub mod frame;
pub mod lines;
pub mod message;
pub mod sandbox;
pub mod sse;
pub mod transport;
pub mod utf8;
pub mod validate;

pub use frame::{AsyncFrameReader, AsyncFrameWriter, FrameError, FrameReader, FrameWriter};
pub use message::*;
pub use sandbox::{EgressRelay, FsRules, MechanismState, NetworkMode, OnMissing, SandboxSpec};
pub use validate::{Violation, WorkerStreamValidator};

/// Version of the frame protocol. Both sides send it in `Hello`; a mismatch
/// ends the call before any tool runs.
pub const PROTOCOL_VERSION: u32 = 1;

/// Default cap on one frame's body. A chunk is at most [`MAX_CHUNK_BYTES`] of
/// payload, so 1 MiB leaves room for the largest legitimate message (an
/// `Invoke` with big arguments) while keeping what a hostile peer can make us
/// allocate per frame small.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 1 << 20;

/// Largest payload one `Chunk` may carry. 64 KiB matches the Linux pipe
/// buffer, so a worker forwards what one `read` of a tool's pipe returns, and
/// the host's per-call buffer bound ("the cap plus one chunk") stays small.
pub const MAX_CHUNK_BYTES: usize = 64 << 10;
