//! `bulkhead`: the user's entry point. It hosts tool calls and never runs
//! one itself; the tools live in `bulkhead-worker`, which this binary does
//! not link (a test checks its dependency tree).
//!
//! This file only sets the process up and dispatches: the commands are in
//! [`cli`], the interactive app in the `bulkhead_tui` library (`src/app`).

mod allocator;
mod cli;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use cli::Cli;

/// Exit code when bulkhead itself could not do its job (no worker binary,
/// no runtime). Distinct from a call's outcome codes.
const EXIT_INTERNAL: u8 = 1;

fn main() -> ExitCode {
    allocator::tune();
    let cli = match parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help and version to stdout with exit 0, and
            // usage errors to stderr; we keep its text, and use exit 2 for
            // every usage error as documented.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(cli::EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    cli::init_logging(cli.command.is_none());
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bulkhead: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_INTERNAL);
        }
    };
    match runtime.block_on(cli::dispatch(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("bulkhead: {e:#}");
            ExitCode::from(EXIT_INTERNAL)
        }
    }
}

/// Parses the command line. `--version` asks the worker for its version,
/// so the long version is only built when that flag is on the line.
fn parse() -> Result<Cli, clap::Error> {
    let mut command = Cli::command();
    if std::env::args_os().any(|a| a == "--version") {
        // clap wants a 'static string without its `string` feature; this
        // runs once, in a process that prints the version and exits.
        command = command.long_version(cli::version::long().leak() as &'static str);
    }
    let matches = command.try_get_matches()?;
    Cli::from_arg_matches(&matches)
}
