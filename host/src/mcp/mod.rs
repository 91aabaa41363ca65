//! MCP servers under bulkhead: their configuration ([`config`]), and a
//! long-lived, restartable session with each ([`session`]), driven through
//! a worker that runs the server sandboxed and relays its messages under a
//! cap (`mcp_stdio` in the worker).
//!
//! **Architecture invariant:** the host never parses more than one capped
//! line of what a server sends: the worker's relay splits and caps lines
//! before they leave it, and the host's reader ([`bulkhead_ipc::lines`])
//! holds at most one cap of a line.

/// Separates a server's name from its tool's where several servers' tools
/// are offered as one list (`server__tool`): the `mcp serve` gateway's
/// catalogue and an agent's tools.
pub const NAMESPACE_SEPARATOR: &str = "__";

pub mod config;
mod install;
pub mod session;

pub use config::{McpServerSpec, RestartBudget, Transport, load_servers_file, servers_file, specs};
pub use install::install_dirs;
pub use session::{ServerSession, ServerState, ServerStatus};
