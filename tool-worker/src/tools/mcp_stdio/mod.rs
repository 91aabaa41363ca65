//! `mcp_stdio`: runs a stdio MCP server as the worker's child and relays
//! JSON-RPC between it and the host (`bulkhead mcp wrap`).
//!
//! Client messages are passed on as the bytes they came as. Server
//! messages are split into lines under a hard cap *before* any parsing;
//! a line over the cap is dropped and the request it answers gets an error
//! instead; a `tools/call` result over `max_result_bytes` is cut to a valid,
//! smaller result that says what was cut; a line that is not JSON-RPC is
//! dropped. A server that keeps breaking the cap is stopped. When the
//! server ends, every request still open is answered with why.
//!
//! `jsonrpc` and `lines` are shared with `mcp_http`, the relay to remote
//! servers.
//!
//! One thread does it all with `poll`: after `CLONE_NEWPID` the worker may
//! start no thread (see `sandbox`).
//!
//! With `mcp wrap --inject`, stream faults act on the server's output as
//! the relay reads it, as if the server had done it (`inject`).
//!
//! # Caveats
//! - No restart: when the server dies the relay ends, and so does the
//!   `wrap` session (the client sees its server exit, as without bulkhead).
//! - An oversized answer is matched to its request by the request being the
//!   only one open, or by an `"id":` in its first 4 KiB; otherwise only the
//!   strike is counted and the request stays open until the server ends.

mod inject;
// Public, hidden: the fuzz checks (tests/src/fuzz_checks) call the cutter.
#[doc(hidden)]
pub mod jsonrpc;
mod relay;

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::time::Duration;

use bulkhead_ipc::ToolExit;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use schemars::JsonSchema;
use serde::Deserialize;

use self::relay::Relay;
use super::{OutputSink, Tool, ToolContext, ToolEnd, ToolFailure};
use crate::input::set_nonblocking;
use crate::tree;

/// The default hard cap on one server message, 4 MiB. Large enough for
/// any real tool result with an image or two; small enough that parsing
/// one cannot hurt the worker.
pub(crate) const DEFAULT_MAX_MESSAGE_BYTES: u64 = 4 << 20;

/// A `tools/call` result above this is cut: bulkhead's default output cap,
/// what an agent's context can usefully take.
pub(crate) const DEFAULT_MAX_RESULT_BYTES: u64 = 1 << 20;

/// bulkhead's default wall-clock limit of a tool call, for each
/// `tools/call` too.
pub(crate) const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(300);

/// Client input chunks the host may have in flight: 16 × 64 KiB = 1 MiB,
/// the same window as output.
pub(crate) const INPUT_WINDOW: u32 = 16;

/// Oversized answers before the server is stopped: one may be a fluke of a
/// huge file, three in one session is a server that will not stop.
pub(crate) const MAX_OVERSIZE: u32 = 3;

/// Lines that are not JSON-RPC before the server is stopped. Some servers
/// print a banner to stdout by mistake; a stream of garbage is not that.
pub(crate) const MAX_GARBAGE_LINES: u32 = 16;

/// The server's stderr kept for the summary.
pub(crate) const STDERR_TAIL_BYTES: usize = 4096;

/// How often the loop wakes with nothing to do, to notice a cancel.
pub(crate) const POLL_INTERVAL_MS: u16 = 100;

pub struct McpStdio;

/// Answers request `id` (JSON text) with an error in the server's stead,
/// and closes it for the host. Best effort: the host may be gone; then it
/// answers the request itself (or the client sees EOF).
pub(crate) fn answer_in_stead(sink: &mut dyn OutputSink, id: &str, message: &str) {
    let _ = sink.write(
        bulkhead_ipc::StreamId::Stdout,
        &jsonrpc::error_response(id, message),
    );
    let _ = sink.request(id, false);
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct McpStdioArgs {
    /// The server's program and arguments.
    command: Vec<String>,
    /// Variables added to the server's environment.
    #[serde(default)]
    env: BTreeMap<String, String>,
    /// Hard cap on one message from the server, in bytes.
    #[serde(default = "default_max_message")]
    max_message_bytes: u64,
    /// A `tools/call` result above this many bytes is cut.
    #[serde(default = "default_max_result")]
    max_result_bytes: u64,
    /// A `tools/call` unanswered after this long gets a timeout error, and
    /// the server a `notifications/cancelled`.
    #[serde(default = "default_call_timeout")]
    call_timeout_ms: u64,
    /// Stream faults to apply to the server's output as if the server did
    /// (`mcp wrap --inject`; see `inject`).
    #[serde(default)]
    #[schemars(with = "Vec<serde_json::Value>")]
    inject: Vec<bulkhead_ipc::RelayFault>,
}

pub(crate) fn default_call_timeout() -> u64 {
    DEFAULT_CALL_TIMEOUT.as_millis() as u64
}

pub(crate) fn default_max_message() -> u64 {
    DEFAULT_MAX_MESSAGE_BYTES
}

pub(crate) fn default_max_result() -> u64 {
    DEFAULT_MAX_RESULT_BYTES
}

impl Tool for McpStdio {
    type Args = McpStdioArgs;
    const NAME: &'static str = "mcp_stdio";
    const DESCRIPTION: &'static str = "Runs a stdio MCP server and relays JSON-RPC with a hard per-message cap (used by `bulkhead mcp wrap`).";
    const SPAWNS_PROCESSES: bool = true;

    fn run(
        &self,
        args: McpStdioArgs,
        sink: &mut dyn OutputSink,
        ctx: &ToolContext<'_>,
    ) -> Result<ToolEnd, ToolFailure> {
        let Some((program, rest)) = args.command.split_first() else {
            return Err(ToolFailure::bad_args(
                "command: the server's program is missing",
            ));
        };
        let mut cmd = Command::new(program);
        cmd.args(rest)
            .envs(&args.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // After the server's own `env`: under network `proxied` its
        // configuration cannot point it around the relay.
        crate::sandbox::apply_egress_env(&mut cmd);
        tree::die_with_worker(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| {
            ToolFailure::io(format!("cannot start the MCP server \"{program}\""), e)
        })?;
        let pid = Pid::from_raw(child.id() as i32);
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(ToolFailure::io(
                "mcp_stdio",
                io::Error::other("pipes missing"),
            ));
        };
        drop(child);
        let stdin: OwnedFd = stdin.into();
        set_nonblocking(&stdin).map_err(|e| ToolFailure::io("server stdin", e))?;
        let max_message = usize::try_from(args.max_message_bytes).unwrap_or(usize::MAX);
        let mut relay = Relay::new(
            pid,
            File::from(stdin),
            max_message,
            usize::try_from(args.max_result_bytes).unwrap_or(usize::MAX),
            Duration::from_millis(args.call_timeout_ms),
            inject::StreamFaults::new(args.inject, max_message),
        );
        sink.grant_input(INPUT_WINDOW)
            .map_err(|e| ToolFailure::io("granting input", e))?;
        let result = relay.pump(sink, ctx, stdout.into(), stderr.into());
        tree::signal_descendants();
        let status = relay.wait_server();
        tree::kill_descendants();
        let why = relay.stop.clone().unwrap_or_else(|| match status {
            Some(WaitStatus::Exited(_, code)) => format!("the MCP server exited (code {code})"),
            Some(WaitStatus::Signaled(_, sig, _)) => {
                format!("the MCP server crashed (signal {})", sig as i32)
            }
            _ => "the MCP server ended".to_owned(),
        });
        // Requests that came but never reached the server are open too.
        let (unsent, _) = ctx.input.take();
        for chunk in unsent {
            let _ = relay.take_client_bytes(&chunk, sink);
        }
        // Whatever is still open will never be answered by the server. A
        // SIGKILL we did not send came from outside (the cgroup's OOM
        // killer, a kill of the cage): the host knows why, and answers the
        // requests left open with that.
        let killed_from_outside = relay.stop.is_none()
            && !relay.killed_by_fault
            && matches!(
                status,
                Some(WaitStatus::Signaled(
                    _,
                    nix::sys::signal::Signal::SIGKILL,
                    _
                ))
            );
        if !killed_from_outside {
            let open: Vec<String> = relay.pending.keys().cloned().collect();
            for id in open {
                relay.answer(sink, &id, &format!("bulkhead: {why} before answering"));
            }
        }
        result.map_err(|e| ToolFailure::io("relaying the MCP server", e))?;
        let exit = match status {
            Some(WaitStatus::Exited(_, code)) => ToolExit::Code(code),
            Some(WaitStatus::Signaled(_, sig, _)) => ToolExit::Signal(sig as i32),
            _ => ToolExit::Stopped,
        };
        let mut summary = serde_json::json!({
                "ended": why,
                "answered_by_bulkhead": relay.answered_by_us,
                "oversize_messages": relay.oversize,
                "non_json_lines": relay.garbage,
                "stderr_tail": String::from_utf8_lossy(&relay.stderr_tail),
        });
        // Only a session with stream faults says which fired.
        if let Some(injected) = relay.faults.as_ref().and_then(|f| f.injected_json()) {
            summary["injected"] = injected;
        }
        Ok(ToolEnd {
            exit,
            summary: Some(summary),
        })
    }
}
