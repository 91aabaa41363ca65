//! The grammar of `bulkhead mcp …`: wrap, serve, status, call, fetch,
//! check and install.
//!
//! As in the parent module, the doc comments are clap's help text.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::{DEFAULT_INIT_TIMEOUT, InjectArgs, SandboxArgs, duration, size};

#[derive(Debug, Args)]
pub struct McpArgs {
    #[command(subcommand)]
    pub command: McpCommand,
}

#[derive(Debug, Subcommand)]
pub enum McpCommand {
    /// Run a stdio MCP server sandboxed and capped, and proxy to it: put
    /// `bulkhead mcp wrap --` before the server's command in any MCP client's
    /// config.
    Wrap(Box<WrapArgs>),
    /// One MCP server (stdio) with bulkhead's built-in tools and every
    /// configured server's tools (`server__tool`), each call sandboxed.
    Serve(Box<ServeArgs>),
    /// Show the running gateways' servers, live: state, restarts, memory,
    /// calls, errors, egress refused, uptime (`--probe`: start every
    /// configured server here and check it).
    Status(StatusArgs),
    /// Act as an MCP client: connect to a remote server (from a worker),
    /// initialize, list its tools, and call one if asked; print JSON.
    Call(CallArgs),
    /// Fetch a package launcher's package (`npx -y PKG`, `uvx PKG`,
    /// `pipx run PKG`, `bunx PKG`) into bulkhead's cache ahead of time, in
    /// a worker whose only network is the registry; print the version
    /// pinned and what the server will read.
    Fetch(FetchArgs),
    /// Start a stdio server exactly as `mcp wrap` would, initialize it and
    /// list its tools; print what it is, what it was allowed and refused,
    /// and either a client config that runs it or why it failed.
    Check(Box<CheckArgs>),
    /// Rewrite an MCP client's config (Claude Desktop, Cursor, VS Code,
    /// Codex, …) so every stdio server runs behind `bulkhead mcp wrap`;
    /// keeps a backup that `--undo` restores.
    Install(InstallArgs),
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// The client whose config to rewrite (`--list` shows each one's file).
    #[arg(
        required_unless_present = "list",
        value_parser = clap::builder::PossibleValuesParser::new(crate::cli::mcp_install::CLIENT_NAMES)
    )]
    pub client: Option<String>,
    /// The client's config file to rewrite, instead of its usual one.
    /// (Not `--config`: that global flag names bulkhead's own config.)
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// The client's config in the current directory (`.vscode/mcp.json`,
    /// `.mcp.json`, `.cursor/mcp.json`, …) instead of the user's.
    #[arg(long, conflicts_with = "file")]
    pub project: bool,
    /// Show the known clients, their config files and whether they exist.
    #[arg(long, exclusive = true)]
    pub list: bool,
    /// Show the change as a diff; write nothing.
    #[arg(long, conflicts_with = "undo")]
    pub dry_run: bool,
    /// Put back the file from before the install, and drop the backup.
    #[arg(long)]
    pub undo: bool,
    /// The bulkhead the client should run [default: this executable's
    /// absolute path]; e.g. `bulkhead` when it is on the client's PATH.
    #[arg(long, value_name = "NAME")]
    pub command: Option<String>,
    /// A flag for `mcp wrap` in each entry, before its `--` (repeatable).
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub wrap_arg: Vec<String>,
    /// More `mcp wrap` flags, after `--`: `mcp install cursor -- --net none`.
    #[arg(last = true, value_name = "WRAP_FLAGS")]
    pub wrap_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    /// How long each of initialize and tools/list may take (0: no limit).
    #[arg(long, value_parser = duration, default_value = DEFAULT_INIT_TIMEOUT)]
    pub init_timeout: Duration,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// The server's command and arguments, as in `mcp wrap`.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Resolve the newest version again and move the pin to it (a command
    /// without a version, or with @latest, otherwise keeps the version of
    /// its first fetch).
    #[arg(long)]
    pub update: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// The server's command, as in `mcp wrap`.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CallArgs {
    /// The server's Streamable HTTP endpoint.
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// Policy of the worker that reaches it; it needs network.
    #[arg(long, default_value = "trusted")]
    pub policy: String,
    /// The tool to call; without it, the tools are listed.
    pub tool: Option<String>,
    /// The tool's arguments as a JSON object.
    #[arg(default_value = "{}")]
    pub args_json: String,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The `mcpServers` JSON (Claude Desktop / Cursor format) [default: the
    /// config's `[mcp] servers_file`; none: built-in tools only].
    #[arg(long, value_name = "FILE")]
    pub servers: Option<PathBuf>,
    /// Serve on stdin/stdout (the default).
    #[arg(long, conflicts_with = "http")]
    pub stdio: bool,
    /// Serve Streamable HTTP instead, at PORT on loopback (127.0.0.1), or at
    /// ADDR:PORT. The Host and Origin headers must name it.
    #[arg(long, value_name = "[ADDR:]PORT", value_parser = super::http_addr)]
    pub http: Option<std::net::SocketAddr>,
    /// Require `Authorization: Bearer <token>`, the token read from this
    /// environment variable.
    #[arg(long, value_name = "VAR", requires = "http")]
    pub token_env: Option<String>,
    /// Serve this one server's catalogue unchanged (no built-in tools, no
    /// `server__` prefixes): a sandboxed stand-in for that server.
    #[arg(long, value_name = "SERVER")]
    pub expose: Option<String>,
    /// Name the gateway for `mcp status --gateway NAME` (its control
    /// socket is NAME.sock) [default: its pid].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Also accept requests whose Origin is this (repeatable).
    #[arg(long, value_name = "ORIGIN", requires = "http")]
    pub allow_origin: Vec<String>,
    /// Inject a fault into one server (repeatable), beside its
    /// `[servers.NAME] inject`: SERVER:FAULT[:ARG][@TRIGGER], e.g.
    /// everything:error@on:tools/call. MCP faults (drop, error[:CODE],
    /// timeout, disconnect, malformed) act on the requests the gateway
    /// sends that server (@on:METHOD or tool, @msg:N, @every:N, @p:P);
    /// process faults (kill, crash, oom, cpu, exit:N) on its worker, at
    /// once, @DUR or @msg:N (its Nth output chunk), or kill and crash at a
    /// request (@on:, @every:, @p:).
    #[arg(long = "inject", value_name = "SERVER:FAULT[@TRIGGER]", value_parser = crate::cli::mcp::server_fault)]
    pub inject: Vec<crate::cli::mcp::ServerFault>,
    /// Seed of the @p: draws, so a run can be repeated [default: from the
    /// clock, printed on stderr].
    #[arg(long = "inject-seed", value_name = "S")]
    pub inject_seed: Option<u64>,
    /// Chaos mode: a fault picked at random for a request to any server,
    /// at rate R per request, seeded (the same seed gives the same faults
    /// for the same requests); each is logged on stderr. Faults: error,
    /// drop, timeout, malformed, disconnect, kill, crash [default: all but
    /// crash].
    #[arg(long, value_name = "seed=S,rate=R[,faults=F|F…]", value_parser = crate::cli::mcp::chaos_spec)]
    pub chaos: Option<bulkhead_mcp::chaos::ChaosSpec>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Start the configured servers here and check them, instead of
    /// reading running gateways.
    #[arg(long)]
    pub probe: bool,
    /// The `mcpServers` JSON to probe [default: the config's `[mcp]
    /// servers_file`]; implies `--probe`.
    #[arg(long, value_name = "FILE")]
    pub servers: Option<PathBuf>,
    /// Read only this gateway: its pid, its `mcp serve --name`, or its
    /// control socket's path.
    #[arg(long, value_name = "PID|NAME|PATH", conflicts_with_all = ["probe", "servers"])]
    pub gateway: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct WrapArgs {
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    /// MCP faults (drop, error[:CODE], timeout, disconnect, malformed) act
    /// on the client's requests (@on:METHOD or tool, @msg:N, @every:N,
    /// @p:P); process faults act on the server's worker as under `run`.
    #[command(flatten)]
    pub inject: InjectArgs,
    /// Hard cap on one message from the server; an answer over it is
    /// dropped and its request answered with an error.
    #[arg(long, value_parser = size, default_value = "4MiB")]
    pub max_message: u64,
    /// A tools/call result over this is cut to a valid, smaller result
    /// that says what was cut.
    #[arg(long, value_parser = size, default_value = "1MiB")]
    pub max_result: u64,
    /// A tools/call unanswered after this long gets a timeout error, and the
    /// server a notifications/cancelled.
    #[arg(long, value_parser = duration, default_value = "5m")]
    pub call_timeout: Duration,
    /// Wall-clock limit of the whole session [default: none].
    #[arg(long, value_parser = duration)]
    pub session_timeout: Option<Duration>,
    /// With no answer to the client's initialize after this long, bulkhead
    /// answers it with an error that says why (policy, egress refused, the
    /// server's stderr, the flag that would likely fix it) and keeps the
    /// session; 0: never.
    #[arg(long, value_parser = duration, default_value = DEFAULT_INIT_TIMEOUT)]
    pub init_timeout: Duration,
    /// A remote MCP server (Streamable HTTP) to proxy to instead of a
    /// command, e.g. https://example.com/mcp. It is reached from the
    /// worker, so the policy must allow the network (e.g. --policy trusted).
    #[arg(long, value_name = "URL", conflicts_with = "command")]
    pub url: Option<String>,
    /// A header sent with every request to --url, as 'Name: value'
    /// (repeatable).
    #[arg(long = "header", value_name = "'K: V'", requires = "url")]
    pub headers: Vec<String>,
    /// Send `Authorization: Bearer $VAR` to --url. Only this variable is
    /// added to the worker's environment; the token is not put in the
    /// call's arguments.
    #[arg(long, value_name = "VAR", requires = "url")]
    pub bearer_env: Option<String>,
    /// Never fetch: a package launcher's package must already be in the
    /// cache (see `bulkhead mcp fetch`).
    #[arg(long, conflicts_with = "url")]
    pub no_fetch: bool,
    /// When the server dies, end the session (the client's next request
    /// fails) instead of restarting the server within its budget.
    #[arg(long, conflicts_with_all = ["max_restarts", "restart_window"])]
    pub no_restart: bool,
    /// Restarts allowed in --restart-window, after which a dying server
    /// ends the session [default: 3, as `[servers.NAME] max_restarts`].
    #[arg(long, value_name = "N")]
    pub max_restarts: Option<u32>,
    /// The window of --max-restarts [default: 60s, as `[servers.NAME]
    /// restart_window`].
    #[arg(long, value_parser = duration, value_name = "DUR")]
    pub restart_window: Option<Duration>,
    /// Also print the whole sandbox report, mechanism by mechanism, as one
    /// line of JSON (`bulkhead: mcp wrap: sandbox {…}`) to stderr at start.
    /// Without it the start is one readable line, so the client's MCP log
    /// shows the server's own messages.
    #[arg(long)]
    pub report_json: bool,
    /// The server's command and arguments: everything after the flags
    /// (or after `--`) belongs to the server.
    #[arg(
        required_unless_present = "url",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<String>,
}
