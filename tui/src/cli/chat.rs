//! `bulkhead chat`: the agent loop, headless, for scripts and CI. The
//! answer streams to stdout; the session, each request, tool calls and
//! their outcomes go to stderr.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use bulkhead_agent::dispatch::Dispatched;
use bulkhead_agent::history::Budget;

use bulkhead_agent::tools::{ToolSet, ToolSetInput};
use bulkhead_agent::{Agent, AgentSpec, ModelSpec, Observer, RunEnd};
use bulkhead_config::{Config, load_servers_file, servers_file, specs};
use bulkhead_host::policy::{ResolveContext, resolve};
use bulkhead_host::units::format_size;
use bulkhead_host::{CallLimits, HostConfig, ToolHost};
use bulkhead_mcp::{NAMESPACE_SEPARATOR, ServerSession};
use bulkhead_model::{ModelClient, ModelLimits, ProviderKind, ToolCall};
use bulkhead_store::{NewSession, SessionId, Store, StoreThread};
use clap::Args;

use crate::cli::EXIT_USAGE;

/// Exit code when the loop stopped at `max_turns`.
const EXIT_MAX_TURNS: u8 = 3;
/// Exit code when the model, the store or a worker failed.
const EXIT_FAILED: u8 = 1;
/// Exit code after Ctrl-C: 128 + SIGINT, as shells report a process the
/// signal ended, so scripts see the usual "interrupted".
const EXIT_INTERRUPTED: u8 = 130;

#[derive(Debug, Args)]
pub struct ChatArgs {
    /// The prompt.
    pub prompt: String,
    /// An `[agents.NAME]` table [default: the config's `[defaults] agent`,
    /// else a built-in agent with every tool].
    #[arg(long, value_name = "NAME")]
    pub agent: Option<String>,
    /// `new` (the default), or a session id to continue.
    #[arg(long, value_name = "ID|new", default_value = "new")]
    pub session: String,
    /// The provider's wire format, overriding the config's model.
    #[arg(long, value_parser = provider)]
    pub provider: Option<ProviderKind>,
    /// The API root, e.g. http://127.0.0.1:11434/v1.
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// A `[models.NAME]` table, or the provider's model id.
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
}

fn provider(s: &str) -> Result<ProviderKind, String> {
    s.parse()
}

pub async fn chat(
    args: ChatArgs,
    config: Option<&Path>,
    store_flag: Option<&Path>,
) -> anyhow::Result<u8> {
    let set = match Config::load(config) {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    for w in &set.agents.warnings {
        eprintln!("bulkhead: warning: {w}");
    }
    let agent = match set.agents.agent(args.agent.as_deref()) {
        Ok(a) => a,
        Err(e) => return usage(format!("--agent: {e}")),
    };
    let model = match choose_model(&args, &set, &agent) {
        Ok(m) => m,
        Err(e) => return usage(e),
    };
    let store_path = match crate::cli::sessions::store_path(store_flag, &set) {
        Ok(p) => p,
        Err(e) => return usage(format!("{e:#}")),
    };
    let store = Store::open(&store_path)
        .with_context(|| format!("session store {}", store_path.display()))?;
    let session = match args.session.as_str() {
        "new" => {
            let title: String = args.prompt.chars().take(80).collect();
            let id = store.create_session(&NewSession {
                title,
                model: Some(format!("{}:{}", model.provider.name(), model.model)),
                config_json: None,
            })?;
            Agent::start_session(&store, id, &agent)?;
            id
        }
        other => {
            let id: SessionId = match other.parse() {
                Ok(id) => id,
                Err(e) => return usage(format!("--session: {e}")),
            };
            if let Err(e) = store.session(id) {
                return usage(format!("--session: {e}"));
            }
            id
        }
    };
    let (policy, limits, cwd) = match tool_policy(&set, &agent) {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    let host = ToolHost::new(HostConfig {
        worker_from_config: set.worker.clone(),
        ..HostConfig::default()
    })?;
    let mcp = match mcp_sessions(&set, &agent, &host) {
        Ok(m) => m,
        Err(e) => return usage(e),
    };
    let tools = match ToolSet::new(
        &host,
        ToolSetInput {
            agent: &agent,
            policy,
            limits,
            cwd,
            store: &store_path,
            session,
            mcp,
        },
    )
    .await
    {
        Ok(t) => t,
        Err(e) => return usage(e),
    };
    let client = match client_for(&model) {
        Ok(c) => c,
        Err(e) => return usage(e),
    };
    eprintln!(
        "bulkhead: session {session} · agent {} · model {} ({})",
        agent.name,
        model.model,
        model.provider.name()
    );
    let cancel = bulkhead_agent::CancellationToken::new();
    cancel_on_sigint(&cancel)?;
    let mut run = Agent {
        host,
        client,
        store: StoreThread::spawn(store).context("cannot start the session store's thread")?,
        session,
        budget: Budget::new(&model),
        agent,
        model,
        tools,
        cancel,
        armed: bulkhead_agent::ArmedFaults::default(),
    };
    let mut printer = Printer::default();
    let result = run.run(&args.prompt, &mut printer).await;
    printer.end_text();
    let peak_bytes = crate::cli::run::host_peak_rss_bytes();
    let peak = format!("{} ({peak_bytes} bytes)", format_size(peak_bytes));
    match result {
        Ok(RunEnd::Answered { turns }) => {
            eprintln!(
                "bulkhead: answered in {turns} turn(s) · session {session} · host peak {peak}"
            );
            Ok(0)
        }
        Ok(RunEnd::Cancelled { turn }) => {
            eprintln!(
                "bulkhead: interrupted in turn {turn} · session {session} · host peak {peak}"
            );
            Ok(EXIT_INTERRUPTED)
        }
        Ok(RunEnd::MaxTurns { turns }) => {
            eprintln!(
                "bulkhead: stopped at max_turns ({turns}) · session {session} · host peak {peak}"
            );
            Ok(EXIT_MAX_TURNS)
        }
        Err(e) => {
            eprintln!("bulkhead: chat failed: {e} · session {session}");
            Ok(EXIT_FAILED)
        }
    }
}

/// The HTTP client of `model` (also the TUI's in model mode).
pub(crate) fn client_for(model: &ModelSpec) -> Result<ModelClient, String> {
    ModelClient::new(model.client_config(ModelLimits::default()))
        .map_err(|e| format!("model \"{}\": {e}", model.name))
}

/// The first Ctrl-C cancels the run: the model stream is dropped, running
/// tools are killed and recorded, a notice is stored, and `chat` exits
/// 130. A second one exits at once (130); the workers die with the host
/// (their parent-death signal), and the store's last commit stands.
fn cancel_on_sigint(cancel: &bulkhead_agent::CancellationToken) -> anyhow::Result<()> {
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot handle SIGINT")?;
    let cancel = cancel.clone();
    tokio::spawn(async move {
        if sigint.recv().await.is_none() {
            return;
        }
        eprintln!("bulkhead: interrupted; stopping the model and the running tools");
        cancel.cancel();
        if sigint.recv().await.is_some() {
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
    });
    Ok(())
}

fn usage(e: impl std::fmt::Display) -> anyhow::Result<u8> {
    eprintln!("bulkhead: {e}");
    Ok(EXIT_USAGE)
}

/// The model from the flags over the agent's, over the config's default.
pub(crate) fn choose_model(
    args: &ChatArgs,
    set: &Config,
    agent: &AgentSpec,
) -> Result<ModelSpec, String> {
    let settings = &set.agents;
    // `--model NAME` naming a table picks it; otherwise it is a model id.
    let table = args
        .model
        .as_deref()
        .filter(|m| settings.models.contains_key(*m))
        .or(agent.model.as_deref())
        .or(settings.default_model.as_deref());
    let mut spec = match (table, args.provider) {
        (Some(name), _) => settings.model(name).map_err(|e| e.to_string())?.clone(),
        (None, Some(p)) => {
            let Some(model) = args.model.clone() else {
                return Err("--provider needs --model NAME".into());
            };
            ModelSpec::from_flags(p, model, None)
        }
        (None, None) => {
            return Err(
                "no model: pass --provider openai|anthropic --model NAME [--base-url URL], \
                 or add a [models.NAME] table and [defaults] model to the config"
                    .into(),
            );
        }
    };
    if let Some(p) = args.provider
        && p != spec.provider
    {
        spec = ModelSpec {
            name: spec.name,
            ..ModelSpec::from_flags(p, spec.model, None)
        };
    }
    if let Some(m) = &args.model
        && !settings.models.contains_key(m)
    {
        spec.model = m.clone();
    }
    if let Some(url) = &args.base_url {
        spec.base_url = url.clone();
    }
    Ok(spec)
}

/// Starts the agent's `mcp_servers`, from the config's servers file, each
/// under its own `[servers.NAME]` policy and limits.
pub(crate) fn mcp_sessions(
    set: &Config,
    agent: &AgentSpec,
    host: &ToolHost,
) -> Result<Vec<ServerSession>, String> {
    if agent.mcp_servers.is_empty() {
        return Ok(Vec::new());
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_absolute());
    let Some(file) = servers_file(None, set, home.as_deref()) else {
        return Err(format!(
            "agent \"{}\" lists mcp_servers, but the config names no servers file \
             ([mcp] servers_file)",
            agent.name
        ));
    };
    let entries = load_servers_file(&file).map_err(|e| e.to_string())?;
    let mut all = specs(set, &entries, home.as_deref()).map_err(|e| e.to_string())?;
    let mut sessions = Vec::new();
    for name in &agent.mcp_servers {
        let Some(at) = all.iter().position(|s| &s.name == name) else {
            return Err(format!(
                "agent \"{}\": mcp_servers lists \"{name}\", which {} does not define (or \
                 disables); it defines: {}",
                agent.name,
                file.display(),
                entries.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        };
        if name.contains(NAMESPACE_SEPARATOR) {
            return Err(format!(
                "server \"{name}\": names may not contain \"{NAMESPACE_SEPARATOR}\", which separates \
                 server and tool"
            ));
        }
        sessions.push(ServerSession::spawn(host.clone(), all.swap_remove(at)));
    }
    Ok(sessions)
}

/// The agent's tool calls: its policy (or the default tool policy) with
/// the current directory as workspace; its limits over the policy's.
pub(crate) fn tool_policy(
    set: &Config,
    agent: &AgentSpec,
) -> Result<(bulkhead_host::CallPolicy, CallLimits, PathBuf), String> {
    let name = agent.policy.as_deref().unwrap_or(&set.tool_default);
    let policy = set.get(name).map_err(|e| e.to_string())?;
    let cwd =
        std::env::current_dir().map_err(|e| format!("cannot read the current directory: {e}"))?;
    let ctx = ResolveContext {
        home: std::env::var_os("HOME")
            .map(PathBuf::from)
            .filter(|h| h.is_absolute()),
        workspace: Some(cwd.clone()),
        read: Vec::new(),
        write: Vec::new(),
        install_dir: None,
        allow_net: Default::default(),
    };
    let call_policy = resolve(policy, &ctx).map_err(|e| e.to_string())?;
    let limits = agent
        .limits
        .apply(policy.limits.apply(CallLimits::default()));
    limits
        .validate()
        .map_err(|e| format!("agent \"{}\": {e}", agent.name))?;
    Ok((call_policy, limits, cwd))
}

/// Prints the answer to stdout as it streams, the rest to stderr.
#[derive(Default)]
struct Printer {
    mid_line: bool,
}

impl Printer {
    fn end_text(&mut self) {
        if self.mid_line {
            println!();
            self.mid_line = false;
        }
    }
}

impl Observer for Printer {
    fn text(&mut self, delta: &str) {
        let mut out = std::io::stdout().lock();
        // A closed stdout must not stop the loop: the session is stored.
        let _ = out.write_all(delta.as_bytes());
        let _ = out.flush();
        self.mid_line = !delta.ends_with('\n') && (self.mid_line || !delta.is_empty());
    }

    fn request(&mut self, turn: u32, body_bytes: usize, items: usize, omitted: u64) {
        tracing::info!(turn, body_bytes, items, omitted, "model request");
    }

    fn tool_started(&mut self, call: &ToolCall) {
        self.end_text();
        let mut args = call.arguments.clone();
        if args.len() > 200 {
            let mut cut = 200;
            while !args.is_char_boundary(cut) {
                cut -= 1;
            }
            args.truncate(cut);
            args.push('…');
        }
        eprintln!("bulkhead: tool {} {args}", call.name);
    }

    fn tool_finished(&mut self, call: &ToolCall, done: &Dispatched) {
        eprintln!(
            "bulkhead: tool {} → {} · {} produced · stored as r{}",
            call.name,
            done.outcome_line,
            format_size(done.bytes_seen),
            done.item.0
        );
    }

    fn notice(&mut self, text: &str) {
        self.end_text();
        eprintln!("bulkhead: {text}");
    }
}
