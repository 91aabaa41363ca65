//! bulkhead's supervisor: runs tool calls in capped worker processes and
//! turns whatever happens into exactly one [`Outcome`] per call.
//!
//! A program links this crate to run tools the way `bulkhead` does (the
//! CLI, the TUI, the MCP gateway and the agent loop all do), or to test
//! what bulkhead does with a tool: make a [`ToolHost`], start calls with
//! [`ToolHost::call`], and read each one's events and report through its
//! [`CallHandle`].
//!
//! # Example
//!
//! A call that completes, and one whose worker is killed from outside.
//! The host needs the `bulkhead-worker` binary: next to the running
//! executable, named by `BULKHEAD_WORKER`, or given as [`HostConfig::worker`]
//! (see [`spawn::find_worker`]).
//!
//! ```
//! use bulkhead_host::{CallEvent, CallRequest, HostConfig, KillReason, Outcome, ToolHost};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # // This workspace's build of the worker, unless BULKHEAD_WORKER names
//! # // one: `cargo build -p bulkhead-worker` comes before `cargo test --doc`,
//! # // and a missing worker fails `ToolHost::new`, so the test.
//! # let worker_path = std::env::var_os("BULKHEAD_WORKER")
//! #     .map(std::path::PathBuf::from)
//! #     .unwrap_or_else(|| {
//! #         std::env::var_os("CARGO_TARGET_DIR")
//! #             .map(std::path::PathBuf::from)
//! #             .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../../target").into())
//! #             .join("debug/bulkhead-worker")
//! #     });
//! // `worker_path`: where your build put `bulkhead-worker`.
//! let host = ToolHost::new(HostConfig {
//!     worker: Some(worker_path),
//!     ..HostConfig::default()
//! })?;
//!
//! let report = host
//!     .call(CallRequest::new("shell", r#"{"command":"echo hi"}"#))
//!     .wait()
//!     .await;
//! assert_eq!(report.outcome, Outcome::Completed);
//! assert_eq!(report.output_text(), "hi\n");
//!
//! // The worker's pid is known once it runs in its cage, at the latest
//! // when `Started` arrives.
//! let mut call = host.call(CallRequest::new("shell", r#"{"command":"sleep 60"}"#));
//! while let Some(event) = call.next_event().await {
//!     if let CallEvent::Started(_) = event {
//!         break;
//!     }
//! }
//! let pid = call.worker_pid().expect("the worker runs");
//! nix::sys::signal::kill(
//!     nix::unistd::Pid::from_raw(pid as i32),
//!     nix::sys::signal::Signal::SIGKILL,
//! )?;
//! let report = call.wait().await;
//! assert_eq!(
//!     report.outcome,
//!     Outcome::Killed { reason: KillReason::Signal(9) }
//! );
//! # Ok(())
//! # }
//! ```
//!
//! [`CallHandle::cancel`] is the way to kill a call on purpose; its report
//! says `killed: cancelled`.
//!
//! # Model
//!
//! [`ToolHost::call`] queues a call behind a concurrency limit
//! ([`HostConfig::max_workers`]). Its supervisor task creates a cage
//! ([`enforce`]: cgroups, or an RSS watchdog), spawns `bulkhead-worker`
//! from one long-lived thread ([`spawn`]) into the cage, and talks to it
//! over an unnamed socket pair ([`bulkhead_ipc`]). Output comes back in
//! chunks the host grants credit for, into a [`CapturedOutput`] that never
//! holds more than the cap plus one chunk, or, in stream mode
//! ([`CallRequest::stream_output`]), out to the caller as
//! [`CallEvent::Output`] as fast as it reads them. The call ends on the
//! worker's report, a limit, a protocol violation or a cancel; then the
//! whole cage is killed, the worker reaped, and the [`CallReport`] sent.
//! Dropping a [`CallHandle`] cancels its call.
//!
//! Sandbox policies ([`policy`]) are resolved in the host, into a
//! description the worker applies to itself; sizes and durations for
//! people are parsed and printed by [`units`].
//!
//! **API boundary:** this crate holds no tool code, and it never runs a
//! tool in its own process. It learns the tool catalogue by asking the
//! worker binary ([`ToolHost::list_tools`]).
//!
//! # Caveats
//! - Peak RSS is sampled (every [`enforce::Enforcer::sample_interval`]) and
//!   combined with the worker's `ru_maxrss`; a spike shorter than one
//!   sample in a process the worker did not reap can be missed. The cap
//!   itself does not depend on sampling where a cgroup is used.
//! - Unless the call streams, [`CallEvent::Output`] carries only the head
//!   of the output; the tail (when asked for) is in the final report.

// `pub` in this crate means part of its API, and all of that API is
// documented: anything only the crate uses is `pub(crate)`.
#![warn(unreachable_pub, missing_docs)]

mod call;
pub mod enforce;
mod handle;
mod host;
pub mod limits;
pub mod outcome;
mod output;
pub mod policy;
mod private_tmp;
pub mod report;
mod request;
pub mod spawn;
pub mod units;
mod worker_io;

/// The fault vocabulary of [`CallRequest::inject`].
pub use bulkhead_faults::{Fault, FaultSpec, Injected, Trigger};
pub use handle::{CallHandle, InjectNowError, InputClosed, InputSender, MAX_PENDING_FAULTS};
pub use host::{HostConfig, HostError, ToolHost};
pub use limits::{CallLimits, LimitsError};
pub use outcome::{KillReason, Outcome, Usage};
pub use output::{CapturedOutput, Segment};
pub use policy::{CallPolicy, Policy};
pub use report::{CallEvent, CallReport, CallState, Enforcement, LiveStatus};
pub use request::CallRequest;

/// This host's version. The worker refuses a host of another version, and
/// the host refuses such a worker.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
