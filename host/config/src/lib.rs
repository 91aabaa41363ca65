//! bulkhead's configuration, in one place: the config file
//! (`bulkhead.toml`) and the `mcpServers` JSON that MCP clients share.
//! Nothing else in the workspace knows the file's shape.
//!
//! # Which file
//!
//! [`Config::load`] reads, the first that applies:
//!
//! 1. the file given (`--config FILE`);
//! 2. `$BULKHEAD_CONFIG`;
//! 3. `$XDG_CONFIG_HOME/bulkhead/bulkhead.toml` ([`default_config_path`]),
//!    or `~/.config/bulkhead/bulkhead.toml` when `XDG_CONFIG_HOME` is unset
//!    (or not absolute), if that file exists.
//!
//! A file named by 1 or 2 that is missing is an error; a missing default
//! file is not, and gives the presets and bulkhead's defaults. The file is
//! read under a size cap ([`CONFIG_MAX_BYTES`]). No other place is looked
//! in (nothing under `/etc`).
//!
//! # The file's shape
//!
//! Every table, each optional (the modules say more about each):
//!
//! ```toml
//! worker = "/opt/bulkhead/bulkhead-worker"   # only if not beside bulkhead nor in $BULKHEAD_WORKER
//!
//! [defaults]
//! tool_policy = "workspace"   # `bulkhead run`, the TUI, agents without a policy
//! mcp_policy = "untrusted"    # MCP servers without a policy
//! model = "local"             # a [models.NAME]
//! agent = "coder"             # an [agents.NAME]
//!
//! [policies.research]         # sandbox policies (config_file.rs)
//! extends = "untrusted"       # a preset (untrusted, workspace, trusted) or another policy
//! read = ["~/papers"]
//! write = ["~/papers/out"]
//! network = "loopback"        # none | loopback | full
//!
//! [policies.research.limits]  # limits: the shape below
//! memory = "512MiB"
//! timeout = "2m"
//!
//! [mcp]                       # MCP servers (servers.rs)
//! servers_file = "~/.config/Claude/claude_desktop_config.json"
//!
//! [servers.filesystem]        # a name from the mcpServers file
//! policy = "research"
//! allow_read = ["~/notes"]
//! memory = "256MiB"           # limits, inline
//! call_timeout = "2m"
//!
//! [models.local]              # the agent loop (agents.rs)
//! provider = "openai"         # openai | anthropic
//! model = "qwen2.5-coder:14b"
//! base_url = "http://127.0.0.1:11434/v1"
//!
//! [agents.coder]
//! model = "local"
//! policy = "workspace"
//! confirm = ["shell"]
//!
//! [agents.coder.limits]       # limits, laid over the agent's policy's
//! output = "4MiB"
//!
//! [store]                     # the session store (store.rs)
//! max_store_bytes = "2GiB"
//! ```
//!
//! # Limits
//!
//! One shape, one parser ([`LimitsDef`]), wherever limits are written:
//! `[policies.NAME.limits]` (laid over the base policy's),
//! `[agents.NAME.limits]` (laid over the agent's policy's) and, inline,
//! `[servers.NAME]` (laid over the server's policy's).
//!
//! | key | unit | limits |
//! |---|---|---|
//! | `memory` | size: `"512MiB"`, `"512M"`, `"1.5G"` (binary: B, K, M, G, T) | the process tree's memory |
//! | `cpu` | duration: `"500ms"`, `"30s"`, `"2m"`, `"1h"` | CPU time |
//! | `timeout` | duration | wall-clock time of one call |
//! | `pids` | integer | processes and threads at once |
//! | `open_files` | integer | open file descriptors |
//! | `output` | size | output kept of one call |
//! | `file_size` | size | the largest file a tool may write |
//!
//! An MCP server lives as long as its session, so `[servers.NAME]` refuses
//! `timeout` and `output`: its `call_timeout` and `max_result` bound each
//! call.
//!
//! # Errors
//!
//! Every error is a [`ConfigError`]. One found in a file names the file
//! and, where the TOML or JSON parser knows it, the line and column; then
//! the table, the key and the bad value: `config file
//! /home/me/.config/bulkhead/bulkhead.toml: policy "research": limits.memory:
//! …`. One found while resolving names what it resolves: the server
//! ([`specs`]), the policy ([`Config::get`]), the agent or model
//! ([`agents::AgentSettings`]). Unknown keys are errors
//! (`deny_unknown_fields`), except in `mcpServers` entries, whose other
//! clients' keys are ignored. A bad config is never half-applied:
//! [`Config::load`] returns a whole [`Config`] or an error.

pub mod agents;
mod capped_read;
mod config_file;
mod error;
mod limits;
mod server_specs;
pub mod servers;
pub mod store;

pub use config_file::{CONFIG_MAX_BYTES, Config, default_config_path};
pub use error::ConfigError;
pub use limits::LimitsDef;
pub use server_specs::{servers_file, specs};
pub use servers::{McpServerSpec, RestartBudget, Transport, load_servers_file};

#[cfg(test)]
mod doc_tests;
