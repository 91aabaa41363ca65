//! MCP servers, as configured: the standard `mcpServers` JSON (the Claude
//! Desktop / Cursor format, read as is) for *what* to run, and bulkhead's
//! own TOML config (`[servers.NAME]`) for *how*: policy, roots, limits,
//! restart budget. [`crate::specs`] puts the two together.
//!
//! ```toml
//! [mcp]
//! servers_file = "~/.config/Claude/claude_desktop_config.json"
//!
//! [servers.filesystem]
//! policy = "untrusted"
//! allow_read = ["~/notes"]
//! allow_write = ["~/notes/out"]
//! memory = "512MiB"                # the limits' keys, inline: see LimitsDef
//! cpu = "10m"
//! pids = 64
//! max_message = "4MiB"
//! max_result = "1MiB"
//! call_timeout = "2m"
//! max_restarts = 3
//! restart_window = "60s"
//! cwd = "~/notes"
//! inject = ["error@on:tools/call"]  # faults under `mcp serve` (see below)
//! ```
//!
//! `inject` lists faults (`FAULT[:ARG][@TRIGGER]`, as `--inject` takes
//! them) that `bulkhead mcp serve` injects into this server, beside those
//! of `--inject SERVER:SPEC`; a spec that does not parse is refused with
//! its line. Other users of the servers (an agent, `mcp status`) ignore
//! it.
//!
//! A server lives as long as its session, so `timeout` and `output` are not
//! among its limits: `call_timeout` bounds each `tools/call` and
//! `max_result` its result.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use bulkhead_host::FaultSpec;
use bulkhead_host::limits::CallLimits;
use bulkhead_host::policy::CallPolicy;

use crate::ConfigError;
use crate::limits::LimitsDef;

/// Largest `mcpServers` file read: a client config is a few KiB.
pub const SERVERS_FILE_MAX_BYTES: u64 = 1 << 20;

/// `[mcp]` in bulkhead's config.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpSection {
    /// The `mcpServers` JSON to read (`~/` allowed).
    pub servers_file: Option<String>,
}

/// `[servers.NAME]` in bulkhead's config: how to run that server.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(from = "ServerTable")]
pub struct ServerSettings {
    pub policy: Option<String>,
    pub allow_read: Vec<String>,
    pub allow_write: Vec<String>,
    /// The limits' keys (`memory`, `cpu`, `pids`, `open_files`,
    /// `file_size`), written inline in the table, laid over the policy's.
    /// `timeout` and `output` are refused
    /// ([`ConfigError::NotAServerLimit`]).
    pub limits: LimitsDef,
    /// Hosts the server may reach through the egress proxy
    /// (`HOST[:PORT]`, `*.example.com`).
    pub allow_net: Vec<String>,
    pub max_message: Option<String>,
    pub max_result: Option<String>,
    pub call_timeout: Option<String>,
    pub max_restarts: Option<u32>,
    pub restart_window: Option<String>,
    pub cwd: Option<String>,
    /// Faults `mcp serve` injects into this server.
    pub inject: Vec<FaultSpec>,
}

/// `inject = ["FAULT[:ARG][@TRIGGER]", …]`, each parsed as `--inject`
/// parses it; a bad one fails the table with the parser's reason, at its
/// line.
fn fault_specs<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Vec<FaultSpec>, D::Error> {
    let texts = Vec::<String>::deserialize(de)?;
    texts
        .iter()
        .map(|t| {
            t.parse::<FaultSpec>()
                .map_err(|e| serde::de::Error::custom(format!("inject \"{t}\": {e}")))
        })
        .collect()
}

/// `[servers.NAME]` as written: [`LimitsDef`]'s keys inline beside the
/// server's own. Not `#[serde(flatten)]`, which would lose the TOML
/// parser's line of a bad key and its list of the keys allowed; the
/// struct literal in `From` fails to compile if `LimitsDef` gains a key
/// this table lacks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerTable {
    policy: Option<String>,
    #[serde(default)]
    allow_read: Vec<String>,
    #[serde(default)]
    allow_write: Vec<String>,
    #[serde(default)]
    allow_net: Vec<String>,
    memory: Option<String>,
    cpu: Option<String>,
    timeout: Option<String>,
    pids: Option<u64>,
    open_files: Option<u64>,
    output: Option<String>,
    file_size: Option<String>,
    max_message: Option<String>,
    max_result: Option<String>,
    call_timeout: Option<String>,
    max_restarts: Option<u32>,
    restart_window: Option<String>,
    cwd: Option<String>,
    #[serde(default, deserialize_with = "fault_specs")]
    inject: Vec<FaultSpec>,
}

impl From<ServerTable> for ServerSettings {
    fn from(t: ServerTable) -> Self {
        Self {
            policy: t.policy,
            allow_read: t.allow_read,
            allow_write: t.allow_write,
            allow_net: t.allow_net,
            limits: LimitsDef {
                memory: t.memory,
                cpu: t.cpu,
                timeout: t.timeout,
                pids: t.pids,
                open_files: t.open_files,
                output: t.output,
                file_size: t.file_size,
            },
            max_message: t.max_message,
            max_result: t.max_result,
            call_timeout: t.call_timeout,
            max_restarts: t.max_restarts,
            restart_window: t.restart_window,
            cwd: t.cwd,
            inject: t.inject,
        }
    }
}

/// One entry of `mcpServers`. Fields other clients add (`type`,
/// `alwaysAllow`, `timeout`, …) are accepted and ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct ServerEntry {
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub url: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub cwd: Option<String>,
    #[serde(default)]
    pub disabled: bool,
}

#[derive(Debug, Deserialize)]
struct ServersFile {
    #[serde(rename = "mcpServers")]
    mcp_servers: BTreeMap<String, ServerEntry>,
}

/// How a server is reached.
#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    /// A program speaking MCP on stdio, run in a worker.
    Stdio {
        command: Vec<String>,
        env: BTreeMap<String, String>,
    },
    /// A Streamable HTTP server, reached from a worker.
    Http {
        url: String,
        headers: BTreeMap<String, String>,
    },
}

/// Restarts allowed: at most `max` in any `window`, then the server is
/// marked failed (Erlang/OTP's supervisor intensity and period).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartBudget {
    pub max: u32,
    pub window: Duration,
}

impl RestartBudget {
    /// Erlang/OTP's supervisor default is 1 restart in 5 s; a tool server
    /// that crashes on one bad input deserves a few more chances in a
    /// minute, and no more: beyond that it is crash-looping.
    pub const DEFAULT: Self = Self {
        max: 3,
        window: Duration::from_secs(60),
    };
}

/// A server ready to start: everything resolved.
#[derive(Debug, Clone)]
pub struct McpServerSpec {
    pub name: String,
    pub transport: Transport,
    pub policy: CallPolicy,
    pub limits: CallLimits,
    pub cwd: Option<PathBuf>,
    pub max_message: u64,
    pub max_result: u64,
    pub call_timeout: Duration,
    pub restart: RestartBudget,
    /// The package a package launcher runs from bulkhead's cache, as
    /// `npm NAME@VERSION`; set when the session prepares the command.
    pub package: Option<String>,
    /// Faults `mcp serve` injects into the server (`[servers.NAME]
    /// inject`); checked where they are applied.
    pub inject: Vec<FaultSpec>,
}

impl ServerSettings {
    /// Refuses the limits that have no meaning for a server, naming what
    /// to use instead.
    pub(crate) fn check_limits(&self, server: &str) -> Result<(), ConfigError> {
        let refused = [
            ("timeout", self.limits.timeout.is_some(), "call_timeout"),
            ("output", self.limits.output.is_some(), "max_result"),
        ];
        match refused.into_iter().find(|(_, set, _)| *set) {
            Some((key, _, instead)) => Err(ConfigError::NotAServerLimit {
                server: server.to_owned(),
                key,
                instead,
            }),
            None => Ok(()),
        }
    }
}

/// Reads an `mcpServers` JSON file. Errors name the file, the line and
/// column, and the field; each is a [`ConfigError::InServersFile`].
pub fn load_servers_file(path: &Path) -> Result<BTreeMap<String, ServerEntry>, ConfigError> {
    let fail = |problem: ConfigError| ConfigError::InServersFile {
        path: path.to_path_buf(),
        problem: Box::new(problem),
    };
    let text = crate::capped_read::read_capped_text(path, SERVERS_FILE_MAX_BYTES).map_err(fail)?;
    let de = &mut serde_json::Deserializer::from_str(&text);
    let parsed: ServersFile = serde_path_to_error::deserialize(de).map_err(|e| {
        let inner = e.inner();
        fail(ConfigError::Json {
            line: inner.line(),
            column: inner.column(),
            key: e.path().to_string(),
            message: inner.to_string(),
        })
    })?;
    Ok(parsed.mcp_servers)
}
