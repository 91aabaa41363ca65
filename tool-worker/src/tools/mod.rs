//! The built-in tools. They live only in the worker binary: the `bulkhead`
//! binary does not link this crate (a test reads `cargo metadata` to prove it).
//!
//! A tool gets its arguments as JSON text, parses them against its own
//! argument type (whose JSON Schema it publishes), and writes output to an
//! [`OutputSink`]. Like ripgrep's `Sink`, the sink answers `false` when the
//! tool must stop: the output cap was crossed or the call was cancelled.

use std::io;
use std::path::PathBuf;

use bulkhead_ipc::{MAX_CHUNK_BYTES, StreamId, ToolErrorKind, ToolExit, WorkerLimits};

pub mod args;
pub mod list_directory;
#[cfg(feature = "remote")]
pub mod mcp_http;
pub mod mcp_stdio;
pub mod read_file;
pub mod read_tool_result;
pub mod search;
pub mod shell;

/// Where a tool's output goes. Implemented by the worker's IPC sender, which
/// waits for credit (back-pressure) and counts bytes against the cap.
pub trait OutputSink {
    /// Writes `data` on `stream`. `Ok(true)`: keep going. `Ok(false)`: stop
    /// now (cap crossed or cancelled); the bytes were counted.
    fn write(&mut self, stream: StreamId, data: &[u8]) -> io::Result<bool>;

    /// Writes `data`, of any length, on `stream` as chunks of at most
    /// [`MAX_CHUNK_BYTES`]; `Ok` as for `write`, stopping between chunks.
    /// `newlines` is the number of `\n` bytes in `data`, counted by a tool
    /// that made the data and knows it: a sink that counts lines then need
    /// not scan the output again (the scan cost ~2 ms of a 65 ms search
    /// with 238,000 matches, BENCHMARKS.md).
    fn write_lines(&mut self, stream: StreamId, data: &[u8], newlines: u64) -> io::Result<bool> {
        let _ = newlines;
        in_chunks(data, |chunk| self.write(stream, chunk))
    }

    /// Reports progress; best effort, never blocks on credit.
    fn progress(&mut self, message: &str, done: u64, total: Option<u64>);

    /// True once the host cancelled the call.
    fn cancelled(&self) -> bool;

    /// Lets the host send `chunks` more input chunks. A tool that reads
    /// input ([`ToolContext::input`]) grants as it consumes.
    fn grant_input(&mut self, _chunks: u32) -> io::Result<()> {
        Ok(())
    }

    /// Reports a JSON-RPC request of the client open (passed on) or
    /// answered, so the host can answer the open ones if the call dies.
    fn request(&mut self, _id: &str, _open: bool) -> io::Result<()> {
        Ok(())
    }
}

/// Hands `data` to `write` a chunk of at most [`MAX_CHUNK_BYTES`] at a
/// time, until it answers `false` (stop) or the data is done.
pub(crate) fn in_chunks(
    data: &[u8],
    mut write: impl FnMut(&[u8]) -> io::Result<bool>,
) -> io::Result<bool> {
    for chunk in data.chunks(MAX_CHUNK_BYTES) {
        if !write(chunk)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Facts a tool may need besides its arguments.
pub struct ToolContext<'a> {
    pub limits: &'a WorkerLimits,
    /// What the host sends as the tool's input (an MCP client's messages).
    pub input: &'a crate::input::InputQueue,
}

/// How a tool ended, when it did not fail.
#[derive(Debug)]
pub struct ToolEnd {
    pub exit: ToolExit,
    /// Tool-specific counters, e.g. `{"matches": 2008, "files_searched": 412}`.
    pub summary: Option<serde_json::Value>,
}

/// Why a tool failed. `message` names the bad field for bad arguments.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ToolFailure {
    pub kind: ToolErrorKind,
    pub message: String,
}

impl ToolFailure {
    pub fn bad_args(message: impl Into<String>) -> Self {
        Self {
            kind: ToolErrorKind::BadArguments,
            message: message.into(),
        }
    }

    pub fn io(context: impl std::fmt::Display, err: io::Error) -> Self {
        Self {
            kind: ToolErrorKind::Io,
            message: format!("{context}: {err}"),
        }
    }
}

/// A built-in tool: typed arguments, a name, and what it does with them.
pub trait Tool: Sync {
    /// The arguments, parsed from JSON and described by a JSON Schema.
    type Args: serde::de::DeserializeOwned + schemars::JsonSchema;
    const NAME: &'static str;
    /// One line, shown by `bulkhead tools`.
    const DESCRIPTION: &'static str;
    /// The tool starts processes. Only such a tool gets a PID namespace:
    /// after `unshare(CLONE_NEWPID)` the worker may not start threads,
    /// which in-process tools (a parallel search) need, and which protect
    /// nothing when no process is started.
    const SPAWNS_PROCESSES: bool = false;

    /// Paths the tool reads beneath, from its arguments: the sandbox puts
    /// a rule at each that it may (`sandbox::fs_rules::nearest_rules`), so
    /// the kernel's check of every file opened below ends there.
    fn paths(_args: &Self::Args) -> Vec<PathBuf> {
        Vec::new()
    }

    fn run(
        &self,
        args: Self::Args,
        sink: &mut dyn OutputSink,
        ctx: &ToolContext<'_>,
    ) -> Result<ToolEnd, ToolFailure>;
}

/// A tool as the worker sees it: named, described, and run from JSON text.
/// Every [`Tool`] is one; argument parsing and schemas live here once.
pub trait DynTool: Sync {
    fn name(&self) -> &'static str;
    fn description(&self) -> &'static str;
    /// JSON Schema of the arguments.
    fn schema(&self) -> serde_json::Value;
    fn spawns_processes(&self) -> bool;
    /// [`Tool::paths`] of `args_json`; none if it does not parse (the run
    /// then fails, naming the field).
    fn paths_json(&self, args_json: &str) -> Vec<PathBuf>;
    /// Parses `args_json` (errors name the bad field) and runs the tool.
    fn run_json(
        &self,
        args_json: &str,
        sink: &mut dyn OutputSink,
        ctx: &ToolContext<'_>,
    ) -> Result<ToolEnd, ToolFailure>;
}

impl<T: Tool> DynTool for T {
    fn name(&self) -> &'static str {
        T::NAME
    }

    fn description(&self) -> &'static str {
        T::DESCRIPTION
    }

    fn schema(&self) -> serde_json::Value {
        args::schema_of::<T::Args>()
    }

    fn spawns_processes(&self) -> bool {
        T::SPAWNS_PROCESSES
    }

    fn paths_json(&self, args_json: &str) -> Vec<PathBuf> {
        args::parse_args::<T::Args>(args_json)
            .map(|a| T::paths(&a))
            .unwrap_or_default()
    }

    fn run_json(
        &self,
        args_json: &str,
        sink: &mut dyn OutputSink,
        ctx: &ToolContext<'_>,
    ) -> Result<ToolEnd, ToolFailure> {
        let args = args::parse_args::<T::Args>(args_json)?;
        self.run(args, sink, ctx)
    }
}

/// Every built-in tool, in the order `bulkhead tools` lists them.
pub fn all() -> [&'static dyn DynTool; 4] {
    [
        &search::SearchFilesContent,
        &shell::Shell,
        &read_file::ReadFile,
        &list_directory::ListDirectory,
    ]
}

/// Tools that bulkhead itself drives and the catalogue does not list: they
/// need a host that feeds them input (`bulkhead mcp wrap`), or a session
/// store only the agent loop can name (`read_tool_result`).
pub fn internal() -> Vec<&'static dyn DynTool> {
    vec![
        &mcp_stdio::McpStdio,
        &read_tool_result::ReadToolResult,
        #[cfg(feature = "remote")]
        &mcp_http::McpHttp,
    ]
}

/// Looks a tool up by name, internal ones included.
pub fn find(name: &str) -> Option<&'static dyn DynTool> {
    all()
        .into_iter()
        .chain(internal())
        .find(|t| t.name() == name)
}
