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
}

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
            WorkerMessage::Confined(_) | WorkerMessage::Progress(_) | WorkerMessage::Usage(_) => {
                Ok(())
            }
        }
    }
}

/// A short name of a message's kind, for error text.
pub fn kind_name(msg: &WorkerMessage) -> &'static str {
    match msg {
        WorkerMessage::Hello { .. } => "Hello",
        WorkerMessage::Confined(_) => "Confined",
        WorkerMessage::Chunk(_) => "Chunk",
        WorkerMessage::Progress(_) => "Progress",
        WorkerMessage::Usage(_) => "Usage",
        WorkerMessage::Done(_) => "Done",
        WorkerMessage::Error(_) => "Error",
    }
}
