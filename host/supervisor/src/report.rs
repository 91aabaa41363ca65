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
    /// Output, as it comes: in stream mode every chunk, otherwise the
    /// part the host keeps in its head (never more than the cap in total).
    Output {
        /// Which of the tool's streams it came from.
        stream: StreamId,
        /// The bytes, as the tool wrote them.
        data: Bytes,
    },
    /// The last event of every call.
    Finished(Box<CallReport>),
}

/// Latest figures of a running call. Published through a `watch` channel:
/// a slow reader sees the newest figures, never a backlog.
#[derive(Debug, Clone, Default)]
pub struct LiveStatus {
    /// Where the call is in its life.
    pub state: CallState,
    /// Resident memory of the tree at the latest sample.
    pub rss_bytes: u64,
    /// Largest resident memory seen so far.
    pub peak_rss_bytes: u64,
    /// CPU time of the tree so far.
    pub cpu_ms: u64,
    /// Output bytes the tool has produced so far.
    pub bytes_seen: u64,
    /// Time since the call got its worker slot, as of the latest sample.
    pub elapsed: Duration,
    /// The tool's latest progress message, if it sends any.
    pub progress: Option<String>,
    /// Connections the call's egress proxy let through so far (a call with
    /// an allow list only).
    pub egress_allowed: u64,
    /// Connections it refused so far.
    pub egress_refused: u64,
    /// Its refusal and failure messages so far, each once, at most
    /// [`bulkhead_egress::MAX_MESSAGES`].
    pub egress_messages: Vec<String>,
}

/// Where a call is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CallState {
    /// Waiting for a worker slot.
    #[default]
    Queued,
    /// Its worker is being started, or runs.
    Running,
    /// Its report has been made.
    Ended,
}

/// Which mechanisms guarded the call. Weaker isolation is never silent: this
/// travels with every report.
#[derive(Debug, Clone, Serialize)]
pub struct Enforcement {
    /// How the memory cap is enforced.
    pub memory: MemoryMechanism,
    /// How the call's processes are killed (`cgroup.kill`, `process-tree
    /// walk`…).
    pub kill: &'static str,
    /// How often the call is sampled.
    pub sample_interval_ms: u64,
    /// What the worker applied to itself: (mechanism, what was set or why not).
    pub worker: Vec<(String, String)>,
    /// The sandbox policy's name.
    pub policy: String,
    /// The policy in one line ([`crate::Policy::explain`]).
    pub policy_explained: String,
    /// The sandbox, mechanism by mechanism, as the worker built it. Empty
    /// for `trusted`, or when the worker never got that far.
    pub sandbox: Vec<MechanismState>,
}

impl Enforcement {
    /// What `enforcer` guards every call with, plus what the worker
    /// reported applying to itself.
    pub(crate) fn new(
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
    /// The call's id ([`crate::CallHandle::id`]).
    pub call_id: u64,
    /// The tool called; empty in the report of a supervisor that died.
    pub tool: String,
    /// How the call ended.
    pub outcome: Outcome,
    /// What the call's processes used.
    pub usage: Usage,
    /// The output the host kept; empty in stream mode, where it went out
    /// as events.
    pub output: CapturedOutput,
    /// How the tool itself ended, when the worker got to say.
    pub exit: Option<ToolExit>,
    /// Tool-specific counters, e.g. matches and files searched.
    pub summary: Option<serde_json::Value>,
    /// What guarded the call.
    pub enforcement: Enforcement,
    /// The worker's own stderr (its diagnostics, not the tool's), last bytes.
    pub worker_stderr: String,
    /// Newlines the tool produced, kept or not (the worker counts what it
    /// did not send).
    pub lines_seen: u64,
    /// Bytes passed to the caller as events and not kept (stream mode).
    pub streamed_bytes: u64,
    /// What the call's egress proxy let through and refused; `None` for a
    /// call with no allow list.
    pub egress: Option<bulkhead_egress::EgressReport>,
    /// The injected fault that fired, on what and when
    /// ([`crate::CallRequest::inject`]); `None` for a call without one, or
    /// whose faults did not fire. Its outcome is the real fault's.
    pub injected: Option<bulkhead_faults::Injected>,
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
            egress: None,
            injected: None,
        }
    }
}

impl CallReport {
    /// The one-line summary `bulkhead run` prints on stderr: the outcome,
    /// the exit, peak memory, CPU and wall time, the memory cap's mechanism
    /// and the policy.
    pub fn status_line(&self) -> String {
        let r = self;
        let what = match &r.outcome {
            Outcome::Completed => "completed".to_owned(),
            Outcome::Truncated { limit, bytes_seen } => format!(
                "truncated: kept {} of {} produced ({} lines seen)",
                crate::units::format_size(*limit),
                crate::units::format_size(*bytes_seen),
                r.lines_seen
            ),
            Outcome::Killed { reason } => format!("killed: {reason}"),
            Outcome::Failed { error } => format!("failed: {error}"),
        };
        let exit = match r.exit {
            Some(bulkhead_ipc::ToolExit::Code(c)) => format!(" · exit {c}"),
            Some(bulkhead_ipc::ToolExit::Signal(s)) => format!(" · signal {s}"),
            _ => String::new(),
        };
        let egress = match &r.egress {
            Some(e) => format!(" · egress {} allowed, {} refused", e.allowed, e.refused),
            None => String::new(),
        };
        let injected = match &r.injected {
            Some(i) => format!(" · {i}"),
            None => String::new(),
        };
        format!(
            "bulkhead: {what}{exit} · peak {} · cpu {} ms · wall {} ms · memory cap by {} · policy {}{egress}{injected}",
            crate::units::format_size(r.usage.peak_rss_bytes),
            r.usage.cpu_ms,
            r.usage.wall_ms,
            r.enforcement.memory,
            r.enforcement.policy
        )
    }

    /// The injected fault as JSON (`{"fault", "trigger", "at_ms"}`), for
    /// `--json` and `mcp wrap`'s end line; `None` when none fired.
    pub fn injected_json(&self) -> Option<serde_json::Value> {
        let i = self.injected.as_ref()?;
        Some(serde_json::json!({"fault": i.fault, "trigger": i.trigger, "at_ms": i.at_ms}))
    }

    /// The egress proxy's record as JSON (`--json`, `mcp wrap`'s end line):
    /// counters and each distinct message with its count; `None` for a
    /// call with no allow list.
    pub fn egress_json(&self) -> Option<serde_json::Value> {
        let e = self.egress.as_ref()?;
        Some(serde_json::json!({
            "allowed": e.allowed,
            "refused": e.refused,
            "failed": e.failed,
            "bytes_up": e.bytes_up,
            "bytes_down": e.bytes_down,
            "messages": e.messages.iter()
                .map(|m| serde_json::json!({"text": m.text, "count": m.count}))
                .collect::<Vec<_>>(),
            "messages_left_off": e.messages_left_off,
        }))
    }

    /// One line for each distinct egress refusal or failure of the call,
    /// for stderr after [`CallReport::status_line`]: `bulkhead: egress to
    /// evil.example:443 refused: not in the allow list`, with a count when
    /// it happened more than once. Empty for a call with no allow list.
    pub fn egress_lines(&self) -> Vec<String> {
        let Some(e) = &self.egress else {
            return Vec::new();
        };
        let mut lines: Vec<String> = e
            .messages
            .iter()
            .map(|m| match m.count {
                1 => format!("bulkhead: {}", m.text),
                n => format!("bulkhead: {} ({n} times)", m.text),
            })
            .collect();
        if e.messages_left_off > 0 {
            lines.push(format!(
                "bulkhead: and {} more egress messages, not kept",
                e.messages_left_off
            ));
        }
        lines
    }
}
