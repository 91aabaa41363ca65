//! The agent loop: a prompt goes to a model, its tool calls go to workers,
//! their results go to the session store, and the model gets a bounded
//! view of each on the next request.

mod call;
pub mod dispatch;
pub mod faults;
pub mod history;
pub mod mcp_tools;
pub mod store_call;
pub mod tools;
pub mod turn;
pub mod view;

pub use bulkhead_config::agents::{AgentSettings, AgentSpec, ModelSpec};
pub use faults::ArmedFaults;
pub use tokio_util::sync::CancellationToken;
pub use turn::{Agent, AgentError, Approval, Observer, RunEnd};
