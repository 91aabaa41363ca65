//! How a call ends. Every call ends in exactly one [`Outcome`].

use std::fmt;

use serde::Serialize;

/// Why the host (or the kernel on its behalf) killed a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KillReason {
    /// The tree went over its memory cap.
    Memory,
    /// The tree went over its CPU time (or a process over RLIMIT_CPU).
    Cpu,
    /// The call ran past its wall-clock limit.
    Timeout,
    /// The worker kept sending past the output cap when told to stop.
    Output,
    /// The worker died of this signal without the host asking.
    Signal(i32),
    /// The caller cancelled the call ([`crate::CallHandle::cancel`], or
    /// dropping the handle).
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
    /// The tool ran to its end within every limit. Its own exit status,
    /// non-zero or not, is in [`crate::CallReport::exit`].
    Completed,
    /// Output passed `limit`; `bytes_seen` were produced in all.
    Truncated {
        /// The output cap, `max_output_bytes`.
        limit: u64,
        /// Output bytes the tool produced, kept or not.
        bytes_seen: u64,
    },
    /// The call was killed, every process of it.
    Killed {
        /// Why.
        reason: KillReason,
    },
    /// The call could not run, or its worker broke down: invalid limits,
    /// no worker, a protocol violation, a tool that refused its arguments.
    Failed {
        /// What went wrong, for people.
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
    /// Peak resident memory of the tree, as sampled, or as the worker
    /// reported it for itself and the processes it reaped.
    pub peak_rss_bytes: u64,
    /// CPU time of the tree, user and system.
    pub cpu_ms: u64,
    /// Wall-clock time from when the call got its worker slot (or was
    /// made, if it never got one) to its end.
    pub wall_ms: u64,
    /// Output bytes the tool produced, kept or not.
    pub bytes_produced: u64,
}
