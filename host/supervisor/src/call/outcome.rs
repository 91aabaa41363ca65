//! How a call's outcome is decided once the worker is gone, and the report
//! that carries it.

use bulkhead_ipc::ToolExit;

use super::{Leftovers, SIGXCPU, Supervisor};
use crate::outcome::{KillReason, Outcome, Usage};
use crate::report::{CallReport, Enforcement};

impl Supervisor<'_> {
    /// The outcome when the host did not decide it.
    pub(super) fn outcome_from_worker(
        &self,
        status: Option<std::process::ExitStatus>,
        memory_hit: bool,
    ) -> Outcome {
        use std::os::unix::process::ExitStatusExt;
        let killed_by = |sig: i32| {
            if sig == SIGXCPU {
                KillReason::Cpu
            } else {
                KillReason::Signal(sig)
            }
        };
        if let Some(error) = &self.worker_error {
            return Outcome::Failed {
                error: error.clone(),
            };
        }
        // The kernel's OOM killer fired inside the cage: whatever the tool
        // then reported (a shell says "Killed", exit 137), the call was
        // killed for memory.
        if memory_hit {
            return Outcome::Killed {
                reason: KillReason::Memory,
            };
        }
        if let Some(exit) = self.exit {
            return match exit {
                ToolExit::Signal(SIGXCPU) => Outcome::Killed {
                    reason: KillReason::Cpu,
                },
                _ if self.bytes_seen() > self.limits.max_output_bytes => Outcome::Truncated {
                    limit: self.limits.max_output_bytes,
                    bytes_seen: self.bytes_seen(),
                },
                _ => Outcome::Completed,
            };
        }
        match status {
            Some(s) if s.signal().is_some() => Outcome::Killed {
                reason: killed_by(s.signal().unwrap_or(0)),
            },
            Some(s) => Outcome::Failed {
                error: format!("worker exited ({s}) before reporting an outcome"),
            },
            None => Outcome::Failed {
                error: "worker vanished before reporting an outcome".into(),
            },
        }
    }

    pub(super) fn enforcement(&self) -> Enforcement {
        Enforcement::new(&self.inner.enforcer, &self.policy, self.confinement.clone())
    }

    /// Ends a call that never had a worker running (or had one that was
    /// reaped on the spot): nothing to kill, no cage to keep.
    pub(super) fn finish_early_with(mut self, outcome: Outcome) -> (CallReport, Leftovers) {
        let tmp = self.tmp.take();
        (
            self.report(outcome, String::new()),
            Leftovers { cage: None, tmp },
        )
    }

    pub(super) fn finish(self, outcome: Outcome, worker_stderr: String) -> CallReport {
        let outcome = match outcome {
            // A worker that failed without saying why: show its stderr.
            Outcome::Failed { error }
                if !worker_stderr.trim().is_empty() && self.worker_error.is_none() =>
            {
                Outcome::Failed {
                    error: format!("{error}; worker stderr: {}", worker_stderr.trim()),
                }
            }
            o => o,
        };
        self.report(outcome, worker_stderr)
    }

    pub(super) fn report(self, outcome: Outcome, worker_stderr: String) -> CallReport {
        let usage = Usage {
            peak_rss_bytes: self.peak_rss,
            cpu_ms: self.cpu_ms,
            wall_ms: self.started.elapsed().as_millis() as u64,
            bytes_produced: self.bytes_seen(),
        };
        let enforcement = self.enforcement();
        let lines_seen = self.output.lines_seen().max(self.worker_lines_seen);
        CallReport {
            call_id: self.call_id,
            tool: self.tool,
            outcome,
            usage,
            output: self.output,
            exit: self.exit,
            summary: self.summary,
            enforcement,
            worker_stderr,
            lines_seen,
            streamed_bytes: self.streamed_bytes,
            egress: self.egress_report,
            injected: self.inject.and_then(|i| i.fired),
        }
    }
}
