//! Every `bulkhead` command: the argument grammar ([`args`]) and one
//! module per command. The interactive app itself is the `bulkhead_tui`
//! library (`src/app`); [`interactive`] starts it.

mod args;
mod chat;
mod doctor;
mod generate;
mod interactive;
mod mcp;
mod mcp_check;
mod mcp_diagnose;
mod mcp_fetch;
mod mcp_inject;
mod mcp_install;
mod mcp_remote;
mod mcp_stdin;
mod mcp_watch;
mod mcp_wrap;
mod model_setup;
mod policy_args;
mod run;
mod sessions;
mod tools;
pub(crate) mod version;

pub use args::*;

/// Runs the command `cli` names (the TUI when it names none), and returns
/// the process's exit code.
pub async fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    let config = cli.config.as_deref();
    let store = cli.store.as_deref();
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
            McpCommand::Wrap(args) => mcp_wrap::wrap(*args, config).await,
            McpCommand::Fetch(args) => mcp_fetch::fetch(args, config).await,
            McpCommand::Check(args) => mcp_check::check(*args, config).await,
            McpCommand::Serve(args) => mcp::serve(*args, config).await,
            McpCommand::Status(args) => mcp::status(args, config).await,
            McpCommand::Call(args) => mcp::call(args, config).await,
            McpCommand::Install(args) => mcp_install::install(args),
        },
        // The store is synchronous and each call short; this command
        // has nothing else to run meanwhile.
        Command::Sessions(args) => sessions::sessions(args, store, config),
        Command::Completions(args) => generate::completions(&args),
        Command::Man(args) => generate::man(&args),
    }
}

/// Logging for the process: to a file for the TUI, which owns the screen;
/// to stderr for every other command.
pub fn init_logging(interactive: bool) {
    if interactive {
        init_file_logging();
    } else {
        init_stderr_logging();
    }
}

/// Logs go to stderr, filtered by `BULKHEAD_LOG` (default: warnings).
fn init_stderr_logging() {
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
