//! MCP servers under bulkhead: a long-lived, restartable session with each
//! ([`session`]), driven through a worker that runs the server sandboxed
//! and relays its messages under a cap (`mcp_stdio` in the worker); and
//! the gateway ([`Gateway`]) that serves the built-in tools and every
//! server's as one MCP server, over stdio ([`serve_stdio`]) or Streamable
//! HTTP ([`serve_http`]). Their configuration is `bulkhead_config`'s.
//!
//! **Architecture invariant:** the host never parses more than one capped
//! line of what a server sends: the worker's relay splits and caps lines
//! before they leave it, and the host's reader ([`bulkhead_ipc::lines`])
//! holds at most one cap of a line.

/// Separates a server's name from its tool's where several servers' tools
/// are offered as one list (`server__tool`): the `mcp serve` gateway's
/// catalogue and an agent's tools.
pub const NAMESPACE_SEPARATOR: &str = "__";

mod byte_budget;
pub mod chaos;
mod client;
pub mod control;
mod gateway;
mod held;
mod http;
mod in_flight;
pub mod inject;
mod note_queue;
pub mod prepare;
mod remote;
pub mod restart;
mod route;
mod serve_faults;
pub mod session;

pub use gateway::{Gateway, MAX_CLIENT_MESSAGE, READY_TIMEOUT, serve_stdio, start_sessions};
pub use http::{HttpOptions, serve_http};
pub use prepare::{FetchOptions, PackageInfo, PrepareError, Prepared, prepare};
pub use remote::call_remote;
pub use serve_faults::ServeFaults;
pub use session::{
    McpError, RequestFuture, RequestHandler, SERVER_REQUEST_TIMEOUT, ServerSession, ServerState,
    ServerStatus,
};

/// Why the gateway or a client of a server could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The user's configuration or arguments are wrong (a usage error).
    #[error("{0}")]
    Config(String),
    /// A policy named in the configuration cannot be resolved.
    #[error(transparent)]
    Policy(#[from] bulkhead_host::policy::PolicyError),
    /// The server did not answer, or answered with an error.
    #[error("{0}")]
    Server(String),
    #[error(transparent)]
    Host(#[from] bulkhead_host::HostError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
