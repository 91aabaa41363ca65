//! What a caller sees of a call: live events while it runs, then one report.

use std::time::Duration;

use bulkhead_ipc::{Confinement, MechanismState, StreamId, ToolExit};
use bytes::Bytes;
use serde::Serialize;

use crate::enforce::MemoryMechanism;
use crate::outcome::{Outcome, Usage};
use crate::output::CapturedOutput;
use crate::policy::CallPolicy;

/// Something that happened during a call, in order.
#[derive(Debug)]
pub enum CallEvent {
    /// The worker is confined and its sandbox built; what guards the call
    /// from here on. At most once, before any output.
    Started(Box<Enforcement>),
    /// Output the host kept (never more than the cap in total).
    Output { stream: StreamId, data: Bytes },
    /// The last event of every call.
    Finished(Box<CallReport>),
}

/// Latest figures of a running call. Published through a `watch` channel:
/// a slow reader sees the newest figures, never a backlog.
#[derive(Debug, Clone, Default)]
pub struct LiveStatus {
    pub state: CallState,
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
    pub cpu_ms: u64,
    pub bytes_seen: u64,
    pub elapsed: Duration,
    pub progress: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CallState {
    /// Waiting for a worker slot.
    #[default]
    Queued,
    Running,
    Ended,
}

/// Which mechanisms guarded the call. Weaker isolation is never silent: this
/// travels with every report.
#[derive(Debug, Clone, Serialize)]
pub struct Enforcement {
    pub memory: MemoryMechanism,
    pub kill: &'static str,
    pub sample_interval_ms: u64,
    /// What the worker applied to itself: (mechanism, what was set or why not).
    pub worker: Vec<(String, String)>,
    /// The sandbox policy's name, and the policy in one line.
    pub policy: String,
    pub policy_explained: String,
    /// The sandbox, mechanism by mechanism, as the worker built it. Empty
    /// for `trusted`, or when the worker never got that far.
    pub sandbox: Vec<MechanismState>,
}

impl Enforcement {
    /// What `enforcer` guards every call with, plus what the worker
    /// reported applying to itself.
    pub fn new(
        enforcer: &crate::enforce::Enforcer,
        policy: &CallPolicy,
        worker: Confinement,
    ) -> Self {
        let mut sandbox = worker.sandbox;
        // Memory is not a sandbox mechanism, but a cap that is not in force
        // must be named the same way: it joins `not_enforced`.
        if let Some(why) = enforcer.memory_unenforced() {
            sandbox.push(MechanismState {
                mechanism: "memory".into(),
                requested: true,
                enforced: false,
                detail: why,
            });
        }
        Enforcement {
            memory: enforcer.mechanism(),
            kill: enforcer.kill_mechanism(),
            sample_interval_ms: enforcer.sample_interval().as_millis() as u64,
            worker: worker.applied,
            policy: policy.name.clone(),
            policy_explained: policy.explained.clone(),
            sandbox,
        }
    }

    /// Mechanisms the policy asked for that were not in force: what the
    /// user must be told was weaker than asked.
    pub fn not_enforced(&self) -> impl Iterator<Item = &MechanismState> {
        self.sandbox.iter().filter(|m| m.requested && !m.enforced)
    }
}

/// The end of a call: its one outcome, its usage and its bounded output.
#[derive(Debug)]
pub struct CallReport {
    pub call_id: u64,
    pub tool: String,
    pub outcome: Outcome,
    pub usage: Usage,
    pub output: CapturedOutput,
    /// How the tool itself ended, when the worker got to say.
    pub exit: Option<ToolExit>,
    /// Tool-specific counters, e.g. matches and files searched.
    pub summary: Option<serde_json::Value>,
    pub enforcement: Enforcement,
    /// The worker's own stderr (its diagnostics, not the tool's), last bytes.
    pub worker_stderr: String,
    /// Newlines the tool produced, kept or not (the worker counts what it
    /// did not send).
    pub lines_seen: u64,
    /// Bytes passed to the caller as events and not kept (stream mode).
    pub streamed_bytes: u64,
}

impl CallReport {
    /// Bytes produced but not kept: cut by the worker at the cap, or by the
    /// host between head and tail.
    pub fn cut_bytes(&self) -> u64 {
        self.usage.bytes_produced.saturating_sub(self.delivered())
    }

    /// Bytes the caller got: kept in the report, or streamed as events.
    pub fn delivered(&self) -> u64 {
        self.output.kept() + self.streamed_bytes
    }

    /// The marker placed where output was cut, saying what and why.
    pub fn cut_marker(&self) -> String {
        let why = if self.exit == Some(ToolExit::Stopped) && self.output.tail().next().is_none() {
            "the tool was stopped at the output limit, so it may have had more"
        } else {
            "the limit keeps the rest"
        };
        format!(
            "\n[… bulkhead cut {} bytes: kept {} of the {} bytes / {} lines produced; {why} …]\n",
            self.cut_bytes(),
            self.delivered(),
            self.usage.bytes_produced,
            self.lines_seen,
        )
    }

    /// Output as one string (lossy UTF-8), with the cut marker where bytes
    /// were cut.
    pub fn output_text(&self) -> String {
        let marker = (self.cut_bytes() > 0).then(|| self.cut_marker());
        self.output.display(marker.as_deref()).to_string()
    }
}

impl CallReport {
    /// The report of a call whose supervisor task died (a bug). The caller
    /// still gets exactly one outcome, and the cage's `Drop` has killed the
    /// processes.
    pub(crate) fn lost(call_id: u64, enforcement: Enforcement) -> Self {
        CallReport {
            call_id,
            tool: String::new(),
            outcome: Outcome::Failed {
                error: "internal error: the call's supervisor stopped without a report".into(),
            },
            usage: Usage::default(),
            output: CapturedOutput::default(),
            exit: None,
            summary: None,
            enforcement,
            worker_stderr: String::new(),
            lines_seen: 0,
            streamed_bytes: 0,
        }
    }
}
