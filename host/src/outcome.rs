//! How a call ends. Every call ends in exactly one [`Outcome`].

use std::fmt;

use serde::Serialize;

/// Why the host (or the kernel on its behalf) killed a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KillReason {
    Memory,
    Cpu,
    Timeout,
    /// The worker kept sending past the output cap when told to stop.
    Output,
    /// The worker died of this signal without the host asking.
    Signal(i32),
    Cancelled,
}

impl fmt::Display for KillReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KillReason::Memory => f.write_str("memory"),
            KillReason::Cpu => f.write_str("cpu"),
            KillReason::Timeout => f.write_str("timeout"),
            KillReason::Output => f.write_str("output"),
            KillReason::Signal(n) => write!(f, "signal({n})"),
            KillReason::Cancelled => f.write_str("cancelled"),
        }
    }
}

/// The one outcome of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    /// Output passed `limit`; `bytes_seen` were produced in all.
    Truncated {
        limit: u64,
        bytes_seen: u64,
    },
    Killed {
        reason: KillReason,
    },
    Failed {
        error: String,
    },
}

impl Outcome {
    /// `completed`, `truncated`, `killed` or `failed`.
    pub fn status(&self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Truncated { .. } => "truncated",
            Outcome::Killed { .. } => "killed",
            Outcome::Failed { .. } => "failed",
        }
    }

    /// The reason text, if the status has one.
    pub fn reason(&self) -> Option<String> {
        match self {
            Outcome::Completed => None,
            Outcome::Truncated { limit, bytes_seen } => Some(format!(
                "output limit {limit} bytes reached; {bytes_seen} bytes were produced"
            )),
            Outcome::Killed { reason } => Some(reason.to_string()),
            Outcome::Failed { error } => Some(error.clone()),
        }
    }
}

/// Resource use of one call's whole tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub peak_rss_bytes: u64,
    pub cpu_ms: u64,
    pub wall_ms: u64,
    /// Output bytes the tool produced, kept or not.
    pub bytes_produced: u64,
}
