//! Command-line grammar.
//!
//! The doc comments here are clap's help text, shown to users as written:
//! `[store] path` names a config table and a URL is shown as text, so
//! rustdoc's link checks do not apply to them.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::bare_urls)]

use std::path::PathBuf;
use std::time::Duration;

use bulkhead_host::enforce::MemoryMechanism;
use bulkhead_host::units::{parse_duration, parse_size};
use clap::{Args, Parser, Subcommand};

mod mcp;
pub use mcp::*;

/// Exit code for a usage error (bad flag, bad JSON, bad size).
pub const EXIT_USAGE: u8 = 2;

/// How long `mcp wrap` and `mcp check` wait for a server's answer to
/// `initialize` before they say why there is none. Clients give up after
/// 15 s (the official inspector) to 60 s, and do so silently; a node
/// server is up in a second or two, so 10 s is well past a healthy start
/// and still before the first client stops listening.
pub const DEFAULT_INIT_TIMEOUT: &str = "10s";

const EXIT_CODES: &str = "\
Exit codes of `bulkhead run`:
  0  completed   the tool ran to its end
  3  truncated   output passed --max-output; the head (and tail) were kept
  4  killed      stopped for memory, cpu, timeout, output, a signal, or cancel
  5  failed      bad tool arguments, unknown tool, protocol violation, or a worker error
  2  usage error in the command line
  1  bulkhead itself could not run (e.g. bulkhead-worker not found)";

#[derive(Debug, Parser)]
#[command(
    name = "bulkhead",
    version = crate::cli::version::SHORT,
    about = "Run AI-agent tools in capped, killable worker processes.",
    long_about = "bulkhead runs each tool call in its own worker process under memory, CPU, time and \
                  output limits. A runaway call is cut or killed; the host's memory does not move.",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// Config file: policies, MCP servers, models, agents, the store
    /// (default: $BULKHEAD_CONFIG, else $XDG_CONFIG_HOME/bulkhead/bulkhead.toml,
    /// or ~/.config/bulkhead/bulkhead.toml without XDG_CONFIG_HOME, if it
    /// exists).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Open the interactive TUI on the most recent session.
    #[arg(long = "continue", conflicts_with = "session")]
    pub resume_last: bool,
    /// Open the interactive TUI on this session (an id from `/sessions`).
    #[arg(long, value_name = "ID")]
    pub session: Option<String>,
    /// Workers the interactive TUI runs at once [default: one per CPU].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: Option<u16>,
    /// Without a subcommand, bulkhead opens the interactive TUI.
    /// Session store file (default: $BULKHEAD_STORE, else the config's
    /// [store] path, else $XDG_DATA_HOME/bulkhead/sessions.db).
    #[arg(long, global = true, value_name = "PATH")]
    pub store: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one tool call in a capped worker and print its output.
    #[command(after_help = EXIT_CODES)]
    Run(Box<RunArgs>),
    /// List the built-in tools and their argument schemas.
    Tools(ToolsArgs),
    /// Report which limit and isolation mechanisms this machine offers.
    Doctor(DoctorArgs),
    /// MCP servers, sandboxed: `bulkhead mcp wrap -- CMD ARGS…`.
    Mcp(McpArgs),
    /// Run the agent loop headless: the prompt goes to the model, its tool
    /// calls to workers; the answer streams to stdout, tool calls to stderr.
    Chat(Box<crate::cli::chat::ChatArgs>),
    /// The session store: list, show, export, rm, gc, vacuum, stats.
    Sessions(SessionsArgs),
    /// Print a shell completion script: bash, zsh or fish.
    Completions(crate::cli::generate::CompletionsArgs),
    /// Print the man page (roff), or write one page per command to a directory.
    Man(crate::cli::generate::ManArgs),
}

#[derive(Debug, Args)]
pub struct SessionsArgs {
    #[command(subcommand)]
    pub command: SessionsCommand,
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// Every session, most recently updated first.
    List {
        /// One JSON array of session summaries.
        #[arg(long)]
        json: bool,
    },
    /// A session and its last items (previews; outputs by size).
    Show {
        id: SessionIdArg,
        /// How many of the last items.
        #[arg(long, default_value = "20")]
        items: u32,
        #[arg(long)]
        json: bool,
    },
    /// The whole session, streamed: every item and every stored output.
    Export {
        id: SessionIdArg,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
    },
    /// Delete a session with its items and outputs.
    Rm { id: SessionIdArg },
    /// Mark results of dead writers interrupted, apply the size limits
    /// (oldest outputs pruned to a stub), checkpoint the WAL.
    Gc {
        #[arg(long)]
        json: bool,
    },
    /// Rewrite the store file without its free pages (needs free disk
    /// about the store's size; other bulkheads wait meanwhile).
    Vacuum,
    /// Sizes, counts and the largest outputs.
    Stats {
        #[arg(long)]
        json: bool,
    },
}

/// A session id on the command line.
pub type SessionIdArg = bulkhead_store::SessionId;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ExportFormat {
    /// One JSON object per item; a result's output is its `output` string.
    Jsonl,
    /// Headings per item, outputs in fenced blocks.
    Markdown,
}

/// `--session ID|new`.
#[derive(Debug, Clone, Copy)]
pub enum SessionChoice {
    New,
    Existing(bulkhead_store::SessionId),
}

impl std::str::FromStr for SessionChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "new" {
            Ok(SessionChoice::New)
        } else {
            s.parse().map(SessionChoice::Existing)
        }
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Tool name, e.g. search_files_content, shell, read_file, list_directory.
    pub tool: String,
    /// Tool arguments as a JSON object, e.g. '{"pattern":"TODO","path":"."}'.
    #[arg(default_value = "{}")]
    pub args_json: String,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    /// Wall-clock limit (e.g. 500ms, 30s, 5m) [default: the policy's, else 5m].
    #[arg(long, value_parser = duration)]
    pub timeout: Option<Duration>,
    /// Output kept; the rest is counted, not stored (e.g. 64K, 1M)
    /// [default: the policy's, else 1M].
    #[arg(long, value_parser = size)]
    pub max_output: Option<u64>,
    /// Also keep this much of the end of the output (part of --max-output).
    /// The tool then runs to its end instead of being stopped at the cap.
    #[arg(long, value_parser = size, default_value = "0")]
    pub tail: u64,
    /// Print exactly one JSON object instead of the output and a status line.
    #[arg(long)]
    pub json: bool,
    /// Record the call (and its output) into a session of the store: an id
    /// from `bulkhead sessions list`, or `new`.
    #[arg(long, value_name = "ID|new")]
    pub session: Option<SessionChoice>,
    #[command(flatten)]
    pub inject: InjectArgs,
}

/// Fault injection: `--inject FAULT[:ARG][@TRIGGER]` and its seed.
#[derive(Debug, Args)]
pub struct InjectArgs {
    /// Make the call fail on cue, the real way (repeatable):
    /// FAULT[:ARG][@TRIGGER], e.g. kill@200ms, oom, hang@bytes:64K,
    /// exit:3@msg:2, slow:1K. Faults: kill, crash, hang, oom, cpu, exit:N,
    /// delay:DUR, slow:RATE, cut:SIZE, garbage, oversize, truncate (and,
    /// under `mcp wrap`, drop, error[:CODE], timeout, disconnect,
    /// malformed). Triggers: @DUR, @bytes:SIZE, @msg:N, @on:NAME,
    /// @every:N, @p:PROBABILITY. The outcome is the real fault's; the
    /// report adds `injected`.
    #[arg(long = "inject", value_name = "FAULT[@TRIGGER]", value_parser = fault_spec)]
    pub specs: Vec<bulkhead_faults::FaultSpec>,
    /// Seed of the @p: draws, so a run can be repeated [default: from the
    /// clock, printed on stderr].
    #[arg(long = "inject-seed", value_name = "S")]
    pub seed: Option<u64>,
}

impl InjectArgs {
    /// The seed to use: the one given, else one from the clock, printed so
    /// the run can be repeated (only when a fault draws at all).
    pub fn seed(&self) -> Option<u64> {
        let draws = self
            .specs
            .iter()
            .any(|s| matches!(s.trigger, bulkhead_faults::Trigger::Probability(_)));
        match self.seed {
            Some(seed) => Some(seed),
            None if draws => {
                let seed = bulkhead_faults::seed_from_clock();
                eprintln!("bulkhead: inject seed {seed} (repeat with --inject-seed {seed})");
                Some(seed)
            }
            None => None,
        }
    }

    /// The process faults, which act on a worker (under `mcp wrap`, the
    /// server's).
    pub fn process_faults(&self) -> Vec<bulkhead_faults::FaultSpec> {
        self.specs
            .iter()
            .filter(|s| s.fault.kind() == bulkhead_faults::FaultKind::Process)
            .cloned()
            .collect()
    }

    /// The first fault that cannot apply to `target`, as a usage error.
    pub fn refused(&self, target: bulkhead_faults::Target) -> Option<String> {
        self.specs
            .iter()
            .find_map(|s| s.check(target).err())
            .map(|e| e.to_string())
    }
}

/// The sandbox and limits of a call or an MCP server.
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Sandbox policy: untrusted, workspace, trusted, or one from the config
    /// file [default: the config's tool_policy (run) or mcp_policy (mcp)].
    #[arg(long, value_name = "NAME")]
    pub policy: Option<String>,
    /// A directory or file the tool may read (repeatable), on top of the policy's.
    #[arg(long, value_name = "PATH")]
    pub allow_read: Vec<PathBuf>,
    /// A directory or file the tool may write (repeatable), on top of the policy's.
    #[arg(long, value_name = "PATH")]
    pub allow_write: Vec<PathBuf>,
    /// A host the tool may reach, as HOST[:PORT] or *.DOMAIN[:PORT]
    /// (repeatable; no port: any port). The tool's only way out is then
    /// bulkhead's egress proxy, which refuses every other host, IP literals
    /// and private addresses not listed, and names each refusal.
    #[arg(long, value_name = "HOST[:PORT]", value_parser = allow_rule)]
    pub allow_net: Vec<bulkhead_egress::AllowRule>,
    /// Memory cap for the whole process tree (e.g. 256M, 1GiB)
    /// [default: the policy's, else 1GiB].
    #[arg(long, value_parser = size)]
    pub memory: Option<u64>,
    /// CPU time cap for the whole process tree, in seconds.
    #[arg(long)]
    pub cpu: Option<u64>,
    /// Largest file the tool may write (RLIMIT_FSIZE; e.g. 100M)
    /// [default: the policy's, else 4GiB].
    #[arg(long, value_parser = size)]
    pub max_file_size: Option<u64>,
    /// Processes at once [default: the policy's, else 256].
    #[arg(long)]
    pub pids: Option<u64>,
    /// RLIMIT_AS for every process (off by default: it breaks node, the JVM and Go).
    #[arg(long, value_parser = size)]
    pub address_space: Option<u64>,
    /// Working directory, and the workspace the `workspace` policy lets it
    /// write [default: the policy's, else the current one].
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Force a memory mechanism instead of the strongest available.
    #[arg(long, value_parser = mechanism)]
    pub memory_mechanism: Option<MemoryMechanism>,
}

#[derive(Debug, Args)]
pub struct ToolsArgs {
    /// Print the catalogue as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Skip the trial call under each policy (only probe the kernel).
    #[arg(long)]
    pub no_trial: bool,
}

/// A bare port binds to loopback: a gateway on all interfaces must be
/// asked for by address.
fn http_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse()
        .map_err(|_| format!("\"{s}\" is neither a port nor an ADDR:PORT"))
}

fn size(s: &str) -> Result<u64, String> {
    parse_size(s).map_err(|e| e.to_string())
}

fn duration(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

fn fault_spec(s: &str) -> Result<bulkhead_faults::FaultSpec, String> {
    s.parse()
        .map_err(|e: bulkhead_faults::ParseError| e.to_string())
}

fn allow_rule(s: &str) -> Result<bulkhead_egress::AllowRule, String> {
    s.parse()
        .map_err(|e: bulkhead_egress::AllowError| e.to_string())
}

fn mechanism(s: &str) -> Result<MemoryMechanism, String> {
    s.parse::<MemoryMechanism>().map_err(|e| e.to_string())
}
