//! MCP through the real binary against real peers: the official
//! conformance suite, misbehaving servers behind `mcp wrap`, remote servers
//! over Streamable HTTP, the `mcp serve` gateway, `mcp wrap`'s fidelity to
//! the reference server, its diagnoses when a server stays silent, and
//! `mcp check`.
//!
//! One test binary for the area, one module per former binary. The tests
//! that look for leftover server processes find them by a marker unique to
//! each test, and every server listens on a port of its own.
//!
//! The modules are in `mcp/`: a crate root's modules are looked for beside
//! it, not in a folder of its name, so each `mod` names its file.

#[path = "mcp/check.rs"]
mod check;
#[path = "mcp/conformance.rs"]
mod conformance;
#[path = "mcp/conformance_ref.rs"]
mod conformance_ref;
#[path = "mcp/hostile.rs"]
mod hostile;
#[path = "mcp/inject.rs"]
mod inject;
#[path = "mcp/inject_stream.rs"]
mod inject_stream;
#[path = "mcp/launchers.rs"]
mod launchers;
#[path = "mcp/launchers_cache.rs"]
mod launchers_cache;
#[path = "mcp/live_status.rs"]
mod live_status;
#[path = "mcp/no_silent.rs"]
mod no_silent;
#[path = "mcp/python_http.rs"]
mod python_http;
#[path = "mcp/remote.rs"]
mod remote;
#[path = "mcp/serve.rs"]
mod serve;
#[path = "mcp/serve_cancel.rs"]
mod serve_cancel;
#[path = "mcp/serve_inject.rs"]
mod serve_inject;
#[path = "mcp/serve_inject_http.rs"]
mod serve_inject_http;
#[path = "mcp/serve_inject_progress.rs"]
mod serve_inject_progress;
#[path = "mcp/serve_slow_client.rs"]
mod serve_slow_client;
#[path = "mcp/sse.rs"]
mod sse;
#[path = "mcp/wrap_fidelity.rs"]
mod wrap_fidelity;
#[path = "mcp/wrap_restart.rs"]
mod wrap_restart;
