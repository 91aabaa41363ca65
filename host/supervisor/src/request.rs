//! [`CallRequest`]: what one tool call asks for.

use std::path::PathBuf;

use bulkhead_faults::FaultSpec;

use crate::limits::CallLimits;
use crate::policy::CallPolicy;

/// One tool call to make: the tool, its arguments, and how it is confined.
///
/// Build it with [`CallRequest::new`] and the builder methods; whatever is
/// not set keeps the default of [`CallRequest::new`].
///
/// ```
/// use std::time::Duration;
///
/// use bulkhead_host::{CallLimits, CallRequest};
///
/// let req = CallRequest::new("shell", r#"{"command":"make test"}"#)
///     .limits(CallLimits {
///         timeout: Duration::from_secs(60),
///         ..CallLimits::default()
///     })
///     .cwd("/tmp");
/// assert_eq!(req.policy.name, "trusted");
/// ```
///
/// The fields stay public, so a struct literal works too; the builder is
/// the form that keeps compiling when a field is added.
#[derive(Debug, Clone)]
pub struct CallRequest {
    /// The tool's name, as the worker's catalogue lists it
    /// ([`crate::ToolHost::list_tools`]).
    pub tool: String,
    /// Arguments as JSON text; the tool validates them.
    pub args_json: String,
    /// What the call may use; see [`CallLimits`].
    pub limits: CallLimits,
    /// The worker's working directory; `None` is the host's.
    pub cwd: Option<PathBuf>,
    /// The sandbox; the default is `trusted` (limits only).
    pub policy: CallPolicy,
    /// Stream mode, for callers that print or forward output as it comes
    /// (`bulkhead run` in text mode, an MCP session): the host keeps none
    /// of the output and passes every chunk on as an event, granting the
    /// worker credit only as the caller takes them, so host memory is
    /// bounded by the credit window whatever the cap. The worker still
    /// stops at `max_output_bytes`; `tail_bytes` needs the host's copy and
    /// does not apply.
    pub stream_output: bool,
    /// Faults to inject into this call (see [`CallRequest::inject`]);
    /// empty for every ordinary call, which then does no fault work at all.
    pub inject: Vec<FaultSpec>,
    /// The seed of the `@p:` draws; `None` draws one from the clock.
    pub inject_seed: Option<u64>,
}

impl CallRequest {
    /// A call of `tool` with `args_json` (a JSON object, as text) under the
    /// default [`CallLimits`], in the host's working directory, under the
    /// `trusted` policy (limits only, no sandbox), with the output kept in
    /// the report rather than streamed.
    pub fn new(tool: impl Into<String>, args_json: impl Into<String>) -> Self {
        Self {
            tool: tool.into(),
            args_json: args_json.into(),
            limits: CallLimits::default(),
            cwd: None,
            policy: CallPolicy::default(),
            stream_output: false,
            inject: Vec::new(),
            inject_seed: None,
        }
    }

    /// Sets the limits (see [`CallRequest::limits`](#structfield.limits)).
    #[must_use]
    pub fn limits(mut self, limits: CallLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Runs the worker, and so the tool, in `dir` instead of the host's
    /// working directory. A `dir` that is not a directory fails the call
    /// before a worker is spawned.
    #[must_use]
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Runs the call under `policy`, a sandbox resolved for this call (see
    /// [`crate::policy::resolve`]).
    #[must_use]
    pub fn policy(mut self, policy: CallPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Turns stream mode on or off (see
    /// [`CallRequest::stream_output`](#structfield.stream_output)).
    #[must_use]
    pub fn stream_output(mut self, on: bool) -> Self {
        self.stream_output = on;
        self
    }

    /// Makes the call fail on cue, the real way: the host applies `fault`
    /// when its trigger fires, and the call ends in exactly the outcome the
    /// real failure gives (an injected `oom` makes the worker really cross
    /// its memory cap, and the call is reported `killed: memory` by the cap's
    /// own mechanism). The report's [`CallReport::injected`] says which
    /// fault fired, on what and when, so a test can tell the two apart.
    /// Repeatable; an MCP fault (`drop`, `error`, …) cannot apply to a tool
    /// call and fails it with the reason.
    ///
    /// ```
    /// use bulkhead_host::{CallRequest, HostConfig, KillReason, Outcome, ToolHost};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # // This workspace's build of the worker, as in the crate's example.
    /// # let worker_path = std::env::var_os("BULKHEAD_WORKER")
    /// #     .map(std::path::PathBuf::from)
    /// #     .unwrap_or_else(|| {
    /// #         std::env::var_os("CARGO_TARGET_DIR")
    /// #             .map(std::path::PathBuf::from)
    /// #             .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../../target").into())
    /// #             .join("debug/bulkhead-worker")
    /// #     });
    /// let host = ToolHost::new(HostConfig {
    ///     worker: Some(worker_path),
    ///     ..HostConfig::default()
    /// })?;
    /// let req = CallRequest::new("shell", r#"{"command":"sleep 30"}"#)
    ///     .inject("kill@200ms".parse()?);
    /// let report = host.call(req).wait().await;
    /// // SIGKILL, from outside, 200 ms in: as if someone killed the worker.
    /// assert_eq!(report.outcome, Outcome::Killed { reason: KillReason::Signal(9) });
    /// let injected = report.injected.expect("the fault fired");
    /// assert_eq!((injected.fault.as_str(), injected.trigger.as_str()), ("kill", "200ms"));
    /// assert!(injected.at_ms >= 200);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// [`CallReport::injected`]: crate::CallReport::injected
    #[must_use]
    pub fn inject(mut self, fault: FaultSpec) -> Self {
        self.inject.push(fault);
        self
    }

    /// The seed of the `@p:` draws, so a run can be reproduced.
    #[must_use]
    pub fn inject_seed(mut self, seed: u64) -> Self {
        self.inject_seed = Some(seed);
        self
    }
}
