//! `mcp_http`: relays JSON-RPC between the host (a stdio MCP client, via
//! `bulkhead mcp wrap --url`) and a remote MCP server over the Streamable
//! HTTP transport (spec 2025-06-18), from inside the worker.
//!
//! Why in a worker: the server decides how big and how long its answers
//! are. Reading them here puts the message cap where the bytes arrive, in a
//! process under the call's memory cap and sandbox, and the host only ever
//! sees capped messages through the credit window, as with `mcp_stdio`.
//!
//! Each client line is POSTed on its own (`exchange.rs`); the answer, JSON
//! or an SSE stream (`sse.rs`, a bounded parser), is read under the cap and
//! written to the sink as one line. The relay (`relay.rs`) tracks requests
//! exactly as `mcp_stdio` does: `sink.request`, per-call timeouts, a cut of
//! oversized `tools/call` results, and an answer for every request left
//! open at the end.
//!
//! # Caveats
//! - No standalone GET stream: the server can send requests and
//!   notifications only on the streams that answer the client's POSTs
//!   (the spec makes the GET stream optional for both sides).
//! - A stream of keep-alive comments with no answer holds its request open
//!   until the call timeout for `tools/call`, and until the session ends
//!   for other methods. It costs no memory: each event is capped.
//! - When the server ends the session (HTTP 404), requests fail with that
//!   reason; the relay does not initialize again on the client's behalf.

mod bridge;
mod exchange;
mod http_thread;
mod relay;
mod session;

use std::collections::BTreeMap;
use std::time::Duration;

use bulkhead_ipc::ToolExit;
use schemars::JsonSchema;
use serde::Deserialize;

use self::exchange::Shared;
use self::relay::Relay;
use self::session::{Connect, Session};
use super::mcp_stdio::INPUT_WINDOW;
use super::{OutputSink, Tool, ToolContext, ToolEnd, ToolFailure};

pub struct McpHttp;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct McpHttpArgs {
    /// The server's MCP endpoint, e.g. `https://example.com/mcp`.
    url: String,
    /// Headers sent with every request.
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// The variable of the worker's environment whose value is sent as
    /// `Authorization: Bearer …`. The token itself never travels in the
    /// arguments (which are logged and reported); `mcp wrap --bearer-env`
    /// adds this one variable to the call's environment allowlist.
    #[serde(default)]
    bearer_env: Option<String>,
    /// Hard cap on one message from the server (a JSON body or one SSE
    /// event), in bytes.
    #[serde(default = "super::mcp_stdio::default_max_message")]
    max_message_bytes: u64,
    /// A `tools/call` result above this many bytes is cut.
    #[serde(default = "super::mcp_stdio::default_max_result")]
    max_result_bytes: u64,
    /// A `tools/call` unanswered after this long gets a timeout error, and
    /// the server a `notifications/cancelled`.
    #[serde(default = "super::mcp_stdio::default_call_timeout")]
    call_timeout_ms: u64,
}

impl Tool for McpHttp {
    type Args = McpHttpArgs;
    const NAME: &'static str = "mcp_http";
    const DESCRIPTION: &'static str = "Relays JSON-RPC to a remote MCP server (Streamable HTTP) with a hard per-message cap (used by `bulkhead mcp wrap --url`).";
    // Starts no process, only threads (HTTP, name lookups): no PID
    // namespace, which would forbid them.
    const SPAWNS_PROCESSES: bool = false;

    fn run(
        &self,
        args: McpHttpArgs,
        sink: &mut dyn OutputSink,
        ctx: &ToolContext<'_>,
    ) -> Result<ToolEnd, ToolFailure> {
        let bearer = match &args.bearer_env {
            None => None,
            Some(var) => match std::env::var(var) {
                Ok(token) if !token.is_empty() => Some(token),
                _ => {
                    return Err(ToolFailure::bad_args(format!(
                        "bearer_env: {var} is not set in the worker's environment \
                         (`bulkhead mcp wrap --bearer-env {var}` passes it when it is set)"
                    )));
                }
            },
        };
        let session = Session::new(&Connect {
            url: &args.url,
            headers: &args.headers,
            bearer,
        })
        .map_err(ToolFailure::bad_args)?;
        let max_message = usize::try_from(args.max_message_bytes).unwrap_or(usize::MAX);
        let (outbox, mut inbox) = bridge::events().map_err(|e| ToolFailure::io("mcp_http", e))?;
        let (commands, thread) = http_thread::start(Shared {
            session,
            outbox,
            max_message,
        })
        .map_err(|e| ToolFailure::io("starting the HTTP thread", e))?;
        let mut relay = Relay::new(
            commands,
            max_message,
            usize::try_from(args.max_result_bytes).unwrap_or(usize::MAX),
            Duration::from_millis(args.call_timeout_ms),
        );
        sink.grant_input(INPUT_WINDOW)
            .map_err(|e| ToolFailure::io("granting input", e))?;
        let result = relay.pump(sink, ctx, &mut inbox);
        // Requests that came but were never sent are open too.
        let (unsent, _) = ctx.input.take();
        for chunk in unsent {
            relay.take_unsent(&chunk, sink);
        }
        let why = relay
            .stop
            .clone()
            .unwrap_or_else(|| "the client ended the session".to_owned());
        relay.finish(sink, &why);
        // Events still queued would block the HTTP thread's last sends;
        // it ends once the command channel is closed (by `finish`).
        drop(inbox);
        let _ = thread.join();
        result.map_err(|e| ToolFailure::io("relaying to the MCP server", e))?;
        Ok(ToolEnd {
            exit: ToolExit::Finished,
            summary: Some(serde_json::json!({
                "ended": why,
                "answered_by_bulkhead": relay.answered_by_us,
                "oversize_messages": relay.oversize,
                "non_json_messages": relay.non_json,
            })),
        })
    }
}
