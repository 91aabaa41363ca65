//! `bulkhead` with no subcommand: the interactive TUI in direct mode.

use std::path::{Path, PathBuf};

use bulkhead_config::{load_servers_file, servers_file, specs};
use bulkhead_host::{HostConfig, ToolHost};
use bulkhead_mcp::ServerSession;
use bulkhead_store::{StoreOptions, default_store_path};
use bulkhead_tui::app::model_mode::AgentLink;
use bulkhead_tui::app::store_io::{LazySession, StoreIo};
use bulkhead_tui::app::{self, CallSetup, Ctx, events, session_view, state::App, theme::Theme};
use tokio::sync::mpsc;

use crate::cli::policy_args::{Extra, Use, choose};
use crate::cli::{EXIT_USAGE, SandboxArgs};

/// Threads of the runtime tool calls run on.
const CALL_THREADS: usize = 2;

/// The sandbox flags of a call with none given: the config's tool policy.
fn no_flags() -> SandboxArgs {
    SandboxArgs {
        policy: None,
        allow_read: Vec::new(),
        allow_write: Vec::new(),
        allow_net: Vec::new(),
        memory: None,
        cpu: None,
        max_file_size: None,
        pids: None,
        address_space: None,
        cwd: None,
        memory_mechanism: None,
    }
}

/// Which session the app opens on.
pub enum Resume {
    /// A new one, created with the first thing recorded.
    New,
    /// `--continue`: the most recent.
    Last,
    /// `--session ID`.
    Session(String),
}

pub async fn run(
    config: Option<&Path>,
    store_path: Option<PathBuf>,
    resume: Resume,
    workers: Option<u16>,
) -> anyhow::Result<u8> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        eprintln!(
            "bulkhead: the interactive TUI needs a terminal; for scripts use `bulkhead run` \
             (see `bulkhead --help`)"
        );
        return Ok(EXIT_USAGE);
    }
    let chosen = match choose(&no_flags(), Extra::default(), Use::Tool, config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bulkhead: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let (wake_tx, mut wake_rx) = mpsc::channel(events::WAKE_CAPACITY);
    let (store, store_error) = match open_store(config, store_path, wake_tx.clone()) {
        Ok(s) => (Some(s), None),
        Err(e) => (None, Some(e)),
    };
    let store_at = store
        .as_ref()
        .map(|(_, path, options)| (path.clone(), options.clone()));
    let store = store.map(|(io, _, _)| io);
    if store.is_none() && !matches!(resume, Resume::New) {
        eprintln!(
            "bulkhead: cannot resume a session: {}",
            store_error.as_deref().unwrap_or("no store")
        );
        return Ok(EXIT_USAGE);
    }
    let mut host_config = HostConfig {
        worker_from_config: bulkhead_config::Config::load(config)
            .map(|set| set.worker.clone())
            .unwrap_or_default(),
        ..HostConfig::default()
    };
    if let Some(n) = workers {
        host_config.max_workers = usize::from(n);
    }
    // Tool calls and MCP sessions run on their own runtime, so the UI
    // task has the main thread to itself. Two threads: one per core here,
    // and the work is I/O.
    let calls_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(CALL_THREADS)
        .thread_name("calls")
        .enable_all()
        .build()?;
    let on_calls = calls_rt.enter();
    let host = ToolHost::new(host_config)?;
    let mcp = start_mcp(&host, config);
    drop(on_calls);
    let mcp = match mcp {
        Ok(m) => m,
        Err(e) => {
            eprintln!("bulkhead: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let (input_tx, mut input_rx) = mpsc::channel(events::INPUT_CAPACITY);
    let mut ctx = Ctx {
        host: host.clone(),
        calls: Some(calls_rt.handle().clone()),
        setup: CallSetup {
            policy: chosen.policy,
            limits: chosen.limits,
            cwd: chosen.cwd,
        },
        wake: wake_tx.clone(),
        mcp,
        store,
        agent: None,
    };
    let mut app = App::new(Theme::from_env());
    app.limits = ctx.setup.limits.clone();
    if let Some(e) = &store_error {
        app.note(&format!(
            "**session store**: {e}. Calls run, but nothing is recorded."
        ));
    }
    if let Some(store) = &ctx.store {
        app.session = Some(std::sync::Arc::new(LazySession::default()));
        let id = match resume {
            Resume::New => None,
            Resume::Last => match session_view::last(store) {
                Ok(Some(id)) => Some(id.to_string()),
                Ok(None) => {
                    app.note("No session to continue yet: this one is new.");
                    None
                }
                Err(e) => {
                    eprintln!("bulkhead: --continue: {e}");
                    return Ok(EXIT_USAGE);
                }
            },
            Resume::Session(id) => Some(id),
        };
        if let Some(id) = id
            && let Err(e) = session_view::open(&mut app, store, &id)
        {
            eprintln!("bulkhead: --session {id}: {e}");
            return Ok(EXIT_USAGE);
        }
    }
    if let Some((path, options)) = &store_at {
        let resumed = app.session.as_ref().and_then(|s| s.get());
        match crate::cli::model_setup::build(config, &host, path, options.clone(), resumed).await {
            Ok(Some((built, session))) => {
                app.status.model = Some(built.label.clone());
                app.session = Some(LazySession::existing(session));
                // `/inject` arms one slot for the user's calls and the
                // model's alike.
                let mut agent = built.agent;
                agent.armed = app.armed.clone();
                ctx.agent = Some(AgentLink::start(agent, built.label, wake_tx.clone())?);
            }
            Ok(None) => {}
            Err(e) => {
                eprintln!("bulkhead: model mode: {e}");
                return Ok(EXIT_USAGE);
            }
        }
    }
    app.status.max_workers = host.max_workers();
    app::probe_enforcement(&host, wake_tx);
    let mut guard = app::terminal::TerminalGuard::enter()?;
    app::terminal::spawn_input_thread(input_tx)?;
    let result = events::run_loop(
        &mut guard.terminal,
        &mut app,
        &ctx,
        &mut input_rx,
        &mut wake_rx,
        None,
    )
    .await;
    // Calls still running end with the app: their handles are dropped,
    // which kills their workers.
    app.kill_all();
    drop(guard);
    // Dropping a runtime inside another would block; its workers are told
    // to stop and the process exits.
    drop(ctx);
    calls_rt.shutdown_background();
    result?;
    Ok(0)
}

/// Starts the MCP servers the config names (`[mcp] servers_file`), each
/// in its sandboxed worker, as `bulkhead mcp serve` does; the status bar
/// counts them up or failed.
fn start_mcp(host: &ToolHost, config: Option<&Path>) -> Result<Vec<ServerSession>, String> {
    let set = bulkhead_config::Config::load(config).map_err(|e| e.to_string())?;
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_absolute());
    let Some(file) = servers_file(None, &set, home.as_deref()) else {
        return Ok(Vec::new());
    };
    let entries = load_servers_file(&file).map_err(|e| e.to_string())?;
    Ok(specs(&set, &entries, home.as_deref())
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|spec| ServerSession::spawn(host.clone(), spec))
        .collect())
}

/// Opens the session store: `--store`, else the config's `[store] path`,
/// else `$BULKHEAD_STORE` or the XDG data dir.
fn open_store(
    config: Option<&Path>,
    explicit: Option<PathBuf>,
    wake: mpsc::Sender<events::UiMsg>,
) -> Result<(StoreIo, PathBuf, StoreOptions), String> {
    let set = bulkhead_config::Config::load(config).map_err(|e| e.to_string())?;
    let path = explicit
        .or_else(|| set.store.path())
        .or_else(default_store_path)
        .ok_or("no store path: set $HOME, $BULKHEAD_STORE or [store] path")?;
    let options = StoreOptions {
        retention: set.store.retention().map_err(|e| e.to_string())?,
        ..StoreOptions::default()
    };
    let io = StoreIo::open(&path, options.clone(), wake)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((io, path, options))
}

/// Where the TUI's log goes: `$XDG_STATE_HOME/bulkhead/tui.log`, else
/// `~/.local/state/bulkhead/tui.log`.
pub fn log_path() -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .map(|h| h.join(".local/state"))
        })?;
    Some(state.join("bulkhead").join("tui.log"))
}
