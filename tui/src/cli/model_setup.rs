//! Model mode for the TUI: when the config names a model (`[defaults]
//! model`, or the default agent's), the agent loop answers prompts. Built
//! the way `bulkhead chat` builds it, on the TUI's session.

use std::path::Path;

use bulkhead_agent::history::Budget;
use bulkhead_agent::tools::{ToolSet, ToolSetInput};
use bulkhead_agent::{Agent, CancellationToken};
use bulkhead_config::Config;
use bulkhead_host::ToolHost;
use bulkhead_store::{NewSession, SessionId, Store, StoreOptions, StoreThread};

use crate::cli::chat::{ChatArgs, choose_model, client_for, mcp_sessions, tool_policy};

/// The agent, its label (`provider:model`) and its session.
pub struct Built {
    pub agent: Agent,
    pub label: String,
}

/// `Ok(None)`: no model is configured (direct mode). `session`: the
/// session to continue; `None` creates one.
pub async fn build(
    config: Option<&Path>,
    host: &ToolHost,
    store_path: &Path,
    options: StoreOptions,
    session: Option<SessionId>,
) -> Result<Option<(Built, SessionId)>, String> {
    let set = Config::load(config).map_err(|e| e.to_string())?;
    let agent = set.agents.agent(None).map_err(|e| format!("agent: {e}"))?;
    let settings = &set.agents;
    if agent.model.is_none() && settings.default_model.is_none() {
        return Ok(None);
    }
    let args = ChatArgs {
        prompt: String::new(),
        agent: None,
        session: "new".into(),
        provider: None,
        base_url: None,
        model: None,
    };
    let model = choose_model(&args, &set, &agent)?;
    let label = format!("{}:{}", model.provider.name(), model.model);
    let store = Store::open_with(store_path, options).map_err(|e| e.to_string())?;
    let session = match session {
        Some(id) => id,
        None => {
            let id = store
                .create_session(&NewSession {
                    title: format!("TUI · {label}"),
                    model: Some(label.clone()),
                    config_json: None,
                })
                .map_err(|e| e.to_string())?;
            Agent::start_session(&store, id, &agent).map_err(|e| e.to_string())?;
            id
        }
    };
    let (policy, limits, cwd) = tool_policy(&set, &agent)?;
    let tools = ToolSet::new(
        host,
        ToolSetInput {
            agent: &agent,
            policy,
            limits,
            cwd,
            store: store_path,
            session,
            mcp: mcp_sessions(&set, &agent, host)?,
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    let client = client_for(&model)?;
    let built = Built {
        agent: Agent {
            host: host.clone(),
            client,
            store: StoreThread::spawn(store)
                .map_err(|e| format!("cannot start the session store's thread: {e}"))?,
            session,
            budget: Budget::new(&model),
            agent,
            model,
            tools,
            cancel: CancellationToken::new(),
            armed: bulkhead_agent::ArmedFaults::default(),
        },
        label,
    };
    Ok(Some((built, session)))
}
