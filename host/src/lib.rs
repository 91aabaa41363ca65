//! bulkhead's supervisor: runs tool calls in capped worker processes and
//! turns whatever happens into exactly one [`Outcome`] per call.
//!
//! # Model
//!
//! [`ToolHost::call`] queues a call behind a concurrency limit. Its
//! supervisor task creates a cage ([`enforce`]: a cgroup, or an RSS
//! watchdog), spawns `bulkhead-worker` from one long-lived thread
//! ([`spawn`]), puts it in the cage, and talks to it over an unnamed
//! socket pair ([`bulkhead_ipc`]). Output comes back in chunks the host
//! grants credit for, into a [`CapturedOutput`] that never holds more than
//! the cap plus one chunk. The call ends on the worker's report, a limit,
//! a protocol violation or a cancel; then the whole cage is killed and the
//! worker reaped ([`call`]).
//!
//! **API boundary:** this crate holds no tool code, and it never runs a
//! tool in its own process. It learns the tool catalogue by asking the
//! worker binary.
//!
//! # Caveats
//! - Peak RSS is sampled (every `Enforcer::sample_interval`) and combined
//!   with the worker's `ru_maxrss`; a spike shorter than one sample in a
//!   process the worker did not reap can be missed. The cap itself does not
//!   depend on sampling where a cgroup is used.
//! - `CallEvent::Output` carries only the head of the output; the tail (when
//!   asked for) is in the final report.

pub mod agent;
mod call;
pub mod enforce;
mod handle;
mod host;
pub mod limits;
pub mod mcp;
pub mod model;
pub mod outcome;
pub mod output;
pub mod policy;
mod private_tmp;
pub mod report;
pub mod spawn;
pub mod store;
pub mod units;
mod worker_io;

pub use handle::{CallHandle, InputClosed, InputSender};
pub use host::{CallRequest, HostConfig, HostError, ToolHost};
pub use limits::CallLimits;
pub use outcome::{KillReason, Outcome, Usage};
pub use output::CapturedOutput;
pub use policy::{CallPolicy, Policy, PolicySet};
pub use report::{CallEvent, CallReport, CallState, Enforcement, LiveStatus};

/// This host's version. The worker refuses a host of another version, and
/// the host refuses such a worker.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
