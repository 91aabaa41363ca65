//! Command-line grammar.

use std::path::PathBuf;
use std::time::Duration;

use bulkhead_host::enforce::MemoryMechanism;
use bulkhead_host::units::{parse_duration, parse_size};
use clap::{Args, Parser, Subcommand};

/// Exit code for a usage error (bad flag, bad JSON, bad size).
pub const EXIT_USAGE: u8 = 2;

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
    version,
    about = "Run AI-agent tools in capped, killable worker processes.",
    long_about = "bulkhead runs each tool call in its own worker process under memory, CPU, time and \
                  output limits. A runaway call is cut or killed; the host's memory does not move.",
    after_help = EXIT_CODES
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one tool call in a capped worker and print its output.
    #[command(after_help = EXIT_CODES)]
    Run(RunArgs),
    /// List the built-in tools and their argument schemas.
    Tools(ToolsArgs),
    /// Report which limit and isolation mechanisms this machine offers.
    Doctor(DoctorArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Tool name, e.g. search_files_content, shell, read_file, list_directory.
    pub tool: String,
    /// Tool arguments as a JSON object, e.g. '{"pattern":"TODO","path":"."}'.
    #[arg(default_value = "{}")]
    pub args_json: String,
    /// Memory cap for the call's whole process tree (e.g. 256M, 1GiB).
    #[arg(long, value_parser = size, default_value = "1GiB")]
    pub memory: u64,
    /// CPU time cap for the call's whole process tree, in seconds.
    #[arg(long)]
    pub cpu: Option<u64>,
    /// Wall-clock limit (e.g. 500ms, 30s, 5m).
    #[arg(long, value_parser = duration, default_value = "5m")]
    pub timeout: Duration,
    /// Output kept; the rest is counted, not stored (e.g. 64K, 1M).
    #[arg(long, value_parser = size, default_value = "1M")]
    pub max_output: u64,
    /// Also keep this much of the end of the output (part of --max-output).
    /// The tool then runs to its end instead of being stopped at the cap.
    #[arg(long, value_parser = size, default_value = "0")]
    pub tail: u64,
    /// Processes the call may run at once.
    #[arg(long, default_value_t = bulkhead_host::limits::DEFAULT_PIDS)]
    pub pids: u64,
    /// RLIMIT_AS for every process (off by default: it breaks node, the JVM and Go).
    #[arg(long, value_parser = size)]
    pub address_space: Option<u64>,
    /// Working directory of the tool.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Force a memory mechanism instead of the strongest available.
    #[arg(long, value_parser = mechanism)]
    pub memory_mechanism: Option<MemoryMechanism>,
    /// Print exactly one JSON object instead of the output and a status line.
    #[arg(long)]
    pub json: bool,
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
}

fn size(s: &str) -> Result<u64, String> {
    parse_size(s).map_err(|e| e.to_string())
}

fn duration(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

fn mechanism(s: &str) -> Result<MemoryMechanism, String> {
    s.parse::<MemoryMechanism>().map_err(|e| e.to_string())
}
