//! The host's view of a well-behaved worker, as a state machine.
//!
//! Every decoded [`WorkerMessage`] passes through
//! [`WorkerStreamValidator::accept`] before the host acts on it. The first
//! message that does not fit is a [`Violation`], and the host kills the
//! worker. Keeping the rules here, away from processes, lets them be tested
//! exhaustively.

use crate::{MAX_CHUNK_BYTES, PROTOCOL_VERSION, WorkerMessage};

/// A way in which a worker broke the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Violation {
    #[error("expected Hello as the first frame, got {0}")]
    NoHello(&'static str),
    #[error("worker speaks protocol {got}, host speaks {expected}")]
    VersionMismatch { got: u32, expected: u32 },
    #[error("second Hello")]
    RepeatedHello,
    #[error("chunk of {len} bytes exceeds the chunk cap of {max} bytes")]
    OversizedChunk { len: usize, max: usize },
    #[error("empty chunk")]
    EmptyChunk,
    #[error("chunk out of order: expected seq {expected}, got {got}")]
    OutOfOrder { expected: u64, got: u64 },
    #[error("chunk sent without credit")]
    NoCredit,
    #[error("{0} after the call ended")]
    AfterEnd(&'static str),
    #[error("request id of {len} bytes exceeds the cap of {max} bytes")]
    OversizedRequestId { len: usize, max: usize },
    #[error("more than {max} open requests")]
    TooManyOpenRequests { max: usize },
    #[error("request {0} reported answered but was never opened")]
    UnknownRequest(String),
    #[error("{0}")]
    Frame(String),
}

/// Tracks one worker's stream. See the module docs.
#[derive(Debug)]
pub struct WorkerStreamValidator {
    greeted: bool,
    ended: bool,
    next_seq: u64,
    credit: u64,
    /// JSON-RPC requests the worker reported open, to answer if it dies.
    open_requests: std::collections::HashSet<String>,
}

/// Longest request id accepted in a `Request` message. JSON-RPC ids are
/// numbers or short strings; a kilobyte leaves room for UUIDs and more.
pub const MAX_REQUEST_ID_BYTES: usize = 1024;

/// Most requests open at once. MCP clients keep a handful in flight; the
/// bound keeps a lying worker from growing the host's set without end
/// (4096 × 1 KiB = 4 MiB at worst).
pub const MAX_OPEN_REQUESTS: usize = 4096;

impl Default for WorkerStreamValidator {
    fn default() -> Self {
        Self::new()
    }
}

impl WorkerStreamValidator {
    pub fn new() -> Self {
        Self {
            greeted: false,
            ended: false,
            next_seq: 0,
            credit: 0,
            open_requests: std::collections::HashSet::new(),
        }
    }

    /// Records that the host granted `chunks` more credit.
    pub fn grant(&mut self, chunks: u32) {
        self.credit += u64::from(chunks);
    }

    /// Credit the worker still holds.
    pub fn credit(&self) -> u64 {
        self.credit
    }

    /// True once `Done` or `Error` was accepted.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Requests reported open and not yet answered, as JSON id text.
    pub fn open_requests(&self) -> impl Iterator<Item = &str> {
        self.open_requests.iter().map(String::as_str)
    }

    fn track_request(&mut self, id: &str, open: bool) -> Result<(), Violation> {
        if id.len() > MAX_REQUEST_ID_BYTES {
            return Err(Violation::OversizedRequestId {
                len: id.len(),
                max: MAX_REQUEST_ID_BYTES,
            });
        }
        if open {
            if self.open_requests.len() >= MAX_OPEN_REQUESTS {
                return Err(Violation::TooManyOpenRequests {
                    max: MAX_OPEN_REQUESTS,
                });
            }
            self.open_requests.insert(id.to_owned());
        } else if !self.open_requests.remove(id) {
            return Err(Violation::UnknownRequest(id.to_owned()));
        }
        Ok(())
    }

    /// Checks the next message against the protocol.
    pub fn accept(&mut self, msg: &WorkerMessage) -> Result<(), Violation> {
        let name = kind_name(msg);
        if self.ended {
            return Err(Violation::AfterEnd(name));
        }
        if !self.greeted {
            return match msg {
                WorkerMessage::Hello { protocol, .. } if *protocol == PROTOCOL_VERSION => {
                    self.greeted = true;
                    Ok(())
                }
                WorkerMessage::Hello { protocol, .. } => Err(Violation::VersionMismatch {
                    got: *protocol,
                    expected: PROTOCOL_VERSION,
                }),
                _ => Err(Violation::NoHello(name)),
            };
        }
        match msg {
            WorkerMessage::Hello { .. } => Err(Violation::RepeatedHello),
            WorkerMessage::Chunk(chunk) => {
                if chunk.data.is_empty() {
                    return Err(Violation::EmptyChunk);
                }
                if chunk.data.len() > MAX_CHUNK_BYTES {
                    return Err(Violation::OversizedChunk {
                        len: chunk.data.len(),
                        max: MAX_CHUNK_BYTES,
                    });
                }
                if chunk.seq != self.next_seq {
                    return Err(Violation::OutOfOrder {
                        expected: self.next_seq,
                        got: chunk.seq,
                    });
                }
                if self.credit == 0 {
                    return Err(Violation::NoCredit);
                }
                self.credit -= 1;
                self.next_seq += 1;
                Ok(())
            }
            WorkerMessage::Done(_) | WorkerMessage::Error(_) => {
                self.ended = true;
                Ok(())
            }
            WorkerMessage::Confined(_)
            | WorkerMessage::Progress(_)
            | WorkerMessage::Usage(_)
            | WorkerMessage::InputCredit { .. } => Ok(()),
            WorkerMessage::Request { id, open } => self.track_request(id, *open),
        }
    }
}

/// A short name of a message's kind, for error text.
pub fn kind_name(msg: &WorkerMessage) -> &'static str {
    match msg {
        WorkerMessage::Hello { .. } => "Hello",
        WorkerMessage::Confined(_) => "Confined",
        WorkerMessage::InputCredit { .. } => "InputCredit",
        WorkerMessage::Request { .. } => "Request",
        WorkerMessage::Chunk(_) => "Chunk",
        WorkerMessage::Progress(_) => "Progress",
        WorkerMessage::Usage(_) => "Usage",
        WorkerMessage::Done(_) => "Done",
        WorkerMessage::Error(_) => "Error",
    }
}
