//! `bulkhead`: the user's entry point. It hosts tool calls and never runs
//! one itself; the tools live in `bulkhead-worker`, which this binary does
//! not link (a test checks its dependency tree).

mod allocator;
mod chat;
mod cli;
mod doctor;
mod generate;
mod interactive;
mod mcp_http;
mod mcp_remote;
mod mcp_route;
mod mcp_serve;
mod mcp_wrap;
mod model_setup;
mod policy_args;
mod run;
mod sessions;
mod tools;
mod version;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use cli::{Cli, Command};

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
    let interactive = cli.command.is_none();
    if interactive {
        init_file_logging();
    } else {
        init_logging();
    }
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
    let config = cli.config.as_deref();
    let store = cli.store.as_deref();
    let result = runtime.block_on(async {
        let Some(command) = cli.command else {
            let resume = match (cli.resume_last, cli.session) {
                (true, _) => interactive::Resume::Last,
                (false, Some(id)) => interactive::Resume::Session(id),
                (false, None) => interactive::Resume::New,
            };
            return interactive::run(
                config,
                store.map(std::path::Path::to_path_buf),
                resume,
                cli.workers,
            )
            .await;
        };
        match command {
            Command::Run(args) => run::run(*args, config, store).await,
            Command::Tools(args) => tools::tools(args).await,
            Command::Doctor(args) => doctor::doctor(args, config).await,
            Command::Chat(args) => chat::chat(*args, config, store).await,
            Command::Mcp(args) => match args.command {
                cli::McpCommand::Wrap(args) => mcp_wrap::wrap(*args, config).await,
                cli::McpCommand::Serve(args) => mcp_serve::serve(args, config).await,
                cli::McpCommand::Status(args) => mcp_serve::status(args, config).await,
                cli::McpCommand::Call(args) => mcp_serve::call(args, config).await,
            },
            // The store is synchronous and each call short; this command
            // has nothing else to run meanwhile.
            Command::Sessions(args) => sessions::sessions(args, store, config),
            Command::Completions(args) => generate::completions(&args),
            Command::Man(args) => generate::man(&args),
        }
    });
    match result {
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
        command = command.long_version(version::long().leak() as &'static str);
    }
    let matches = command.try_get_matches()?;
    Cli::from_arg_matches(&matches)
}

/// Logs go to stderr, filtered by `BULKHEAD_LOG` (default: warnings).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BULKHEAD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The TUI owns the screen: its logs go to a file under the XDG state dir
/// (default level: info), never to the terminal. Without a writable state
/// dir there is no log, and the TUI still runs.
fn init_file_logging() {
    let Some(path) = interactive::log_path() else {
        return;
    };
    if let Some(dir) = path.parent()
        && std::fs::create_dir_all(dir).is_err()
    {
        return;
    }
    let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    else {
        return;
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BULKHEAD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
}
