//! The agent loop's part of the config file: models, agents, and which of
//! each is the default.
//!
//! ```toml
//! [defaults]
//! model = "local"
//! agent = "coder"
//!
//! [models.local]
//! provider = "openai"                 # openai | anthropic
//! model = "qwen2.5-coder:14b"
//! base_url = "http://127.0.0.1:11434/v1"
//! api_key_env = "OLLAMA_API_KEY"      # the variable's name; or api_key = "…"
//! max_tokens = 4096                   # the answer's cap, per request
//! context_tokens = 32000              # the request's budget
//!
//! [agents.coder]
//! model = "local"
//! system_prompt = "You are a careful engineer."
//! tools = ["search_files_content", "read_file", "list_directory", "shell"]
//! mcp_servers = ["filesystem"]
//! policy = "workspace"
//! max_turns = 24
//! max_history_items = 200
//! result_budget = "10KiB"             # the model's view of one tool result
//! tool_budgets = { shell = "4KiB" }
//! confirm = ["shell"]
//!
//! [agents.coder.limits]               # laid over the policy's; see LimitsDef
//! timeout = "2m"
//! output = "4MiB"
//! ```
//!
//! Errors name the file, the line and column, and the key.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::ConfigError;
use crate::error::known;
use crate::limits::LimitsDef;
use bulkhead_host::policy::PolicyLimits;
use bulkhead_host::units::parse_size;
use bulkhead_model::{ApiKey, ModelConfig, ModelLimits, ProviderKind};

/// The answer's own token cap when a model table sets none: room for a
/// long answer or several tool calls, small next to any context window.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;
/// The request's budget when a model table sets none. 32k tokens fit every
/// model bulkhead targets, local ones included; a bigger window is opt-in
/// because every token of it is paid for on every turn.
pub const DEFAULT_CONTEXT_TOKENS: u64 = 32_000;
/// The model's view of one tool result: about 2,500 tokens, enough for a
/// page of matches and the marker that says where the rest is.
pub const DEFAULT_RESULT_BUDGET: u64 = 10 * 1024;
/// Turns (model requests) one prompt may take before the loop stops; a
/// model that keeps calling tools past this is looping.
pub const DEFAULT_MAX_TURNS: u32 = 24;
/// Items of history sent per request at most; older ones stay in the
/// store, readable, but out of the window.
pub const DEFAULT_MAX_HISTORY_ITEMS: u32 = 200;
/// The smallest view budget that still shows a head, a tail and the marker.
const MIN_RESULT_BUDGET: u64 = 512;
/// The smallest context budget that holds a system prompt, a question and
/// one bounded result.
const MIN_CONTEXT_TOKENS: u64 = 1024;

/// Where a model's key comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// The named environment variable.
    Env(String),
    /// Written in the config file (which should then be private).
    Literal(ApiKey),
}

/// `[models.NAME]`, resolved.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    pub name: String,
    pub provider: ProviderKind,
    /// The provider's model id.
    pub model: String,
    pub base_url: String,
    pub key: KeySource,
    pub max_tokens: u32,
    pub context_tokens: u64,
}

impl ModelSpec {
    /// A model given only by the command line (`--provider … --model …`).
    pub fn from_flags(provider: ProviderKind, model: String, base_url: Option<String>) -> Self {
        Self {
            name: model.clone(),
            provider,
            model,
            base_url: base_url.unwrap_or_else(|| provider.default_base_url().to_owned()),
            key: KeySource::Env(provider.default_key_env().to_owned()),
            max_tokens: DEFAULT_MAX_TOKENS,
            context_tokens: DEFAULT_CONTEXT_TOKENS,
        }
    }

    /// The key, from where the config says. A missing variable is `None`:
    /// local servers (Ollama, llama.cpp) need none.
    pub fn api_key(&self) -> Option<ApiKey> {
        match &self.key {
            KeySource::Env(var) => ApiKey::from_env(var),
            KeySource::Literal(k) => Some(k.clone()),
        }
    }

    /// What the model client needs to reach this model.
    pub fn client_config(&self, limits: ModelLimits) -> ModelConfig {
        ModelConfig {
            provider: self.provider,
            base_url: self.base_url.clone(),
            api_key: self.api_key(),
            limits,
        }
    }
}

/// `[agents.NAME]`, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSpec {
    pub name: String,
    /// A `[models.NAME]`; `None` is `[defaults] model`.
    pub model: Option<String>,
    pub system_prompt: String,
    /// The built-in tools offered; `None` is every one.
    pub tools: Option<Vec<String>>,
    /// MCP servers (from `[mcp] servers_file`) whose tools join.
    pub mcp_servers: Vec<String>,
    /// The sandbox policy of its tool calls; `None` is `[defaults] tool_policy`.
    pub policy: Option<String>,
    /// Laid over the policy's limits.
    pub limits: PolicyLimits,
    pub max_turns: u32,
    pub max_history_items: u32,
    /// Bytes of one tool result the model sees.
    pub result_budget: u64,
    /// Per-tool view budgets, over `result_budget`.
    pub tool_budgets: BTreeMap<String, u64>,
    /// Tools that ask the user before they run.
    pub confirm: Vec<String>,
}

impl AgentSpec {
    /// The agent used when config defines none: every built-in tool, the
    /// default policy and bounds.
    pub fn builtin() -> Self {
        Self {
            name: "default".into(),
            model: None,
            system_prompt: "You are a helpful assistant with tools that run in a sandbox. \
                            Tool results you see may be cut; the marker says how to read the rest."
                .into(),
            tools: None,
            mcp_servers: Vec::new(),
            policy: None,
            limits: PolicyLimits::default(),
            max_turns: DEFAULT_MAX_TURNS,
            max_history_items: DEFAULT_MAX_HISTORY_ITEMS,
            result_budget: DEFAULT_RESULT_BUDGET,
            tool_budgets: BTreeMap::new(),
            confirm: Vec::new(),
        }
    }

    /// The view budget of `tool`'s results.
    pub fn budget_for(&self, tool: &str) -> u64 {
        self.tool_budgets
            .get(tool)
            .copied()
            .unwrap_or(self.result_budget)
    }
}

/// The models and agents of a config file.
#[derive(Debug, Clone, Default)]
pub struct AgentSettings {
    pub models: BTreeMap<String, ModelSpec>,
    pub agents: BTreeMap<String, AgentSpec>,
    pub default_model: Option<String>,
    pub default_agent: Option<String>,
    /// Things the user should fix that do not stop bulkhead (a literal key
    /// in a file others can read).
    pub warnings: Vec<String>,
}

/// `[models.NAME]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ModelDef {
    provider: ProviderKind,
    model: String,
    base_url: Option<String>,
    api_key_env: Option<String>,
    api_key: Option<Spanned<String>>,
    max_tokens: Option<u32>,
    context_tokens: Option<u64>,
}

/// `[agents.NAME]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AgentDef {
    model: Option<Spanned<String>>,
    system_prompt: Option<String>,
    tools: Option<Vec<String>>,
    #[serde(default)]
    mcp_servers: Vec<String>,
    policy: Option<Spanned<String>>,
    limits: Option<Spanned<LimitsDef>>,
    max_turns: Option<Spanned<u32>>,
    max_history_items: Option<Spanned<u32>>,
    result_budget: Option<Spanned<String>>,
    #[serde(default)]
    tool_budgets: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    confirm: Vec<String>,
}

/// What the policy parser hands over.
pub(crate) struct AgentInput<'a> {
    pub text: &'a str,
    pub path: &'a Path,
    pub models: BTreeMap<String, ModelDef>,
    pub agents: BTreeMap<String, AgentDef>,
    pub default_model: Option<Spanned<String>>,
    pub default_agent: Option<Spanned<String>>,
}

impl AgentSettings {
    /// Checks and resolves the tables; `policy_exists` answers for the
    /// policies the same file defines. Errors carry the line and column.
    pub(crate) fn resolve(
        input: AgentInput<'_>,
        policy_exists: impl Fn(&str) -> bool,
    ) -> Result<Self, ConfigError> {
        let at =
            |span: std::ops::Range<usize>, problem: ConfigError| problem.at(input.text, span.start);
        let mut out = AgentSettings::default();
        for (name, def) in input.models {
            let key = match (def.api_key_env, def.api_key) {
                (Some(_), Some(k)) => {
                    return Err(at(
                        k.span(),
                        ConfigError::Conflict {
                            table: format!("[models.{name}]"),
                            first: "api_key_env",
                            second: "api_key",
                        },
                    ));
                }
                (Some(var), None) => KeySource::Env(var),
                (None, Some(k)) => {
                    if let Some(w) = readable_by_others(input.path) {
                        out.warnings.push(format!(
                            "{}: [models.{name}] api_key is written in a file {w}; \
                             make it private (chmod 600) or use api_key_env",
                            input.path.display()
                        ));
                    }
                    KeySource::Literal(ApiKey::new(k.into_inner()))
                }
                (None, None) => KeySource::Env(def.provider.default_key_env().to_owned()),
            };
            let context_tokens = def.context_tokens.unwrap_or(DEFAULT_CONTEXT_TOKENS);
            if context_tokens < MIN_CONTEXT_TOKENS {
                return Err(ConfigError::BelowMinimum {
                    table: format!("[models.{name}]"),
                    key: "context_tokens".into(),
                    value: context_tokens,
                    min: MIN_CONTEXT_TOKENS,
                });
            }
            let spec = ModelSpec {
                name: name.clone(),
                provider: def.provider,
                model: def.model,
                base_url: def
                    .base_url
                    .unwrap_or_else(|| def.provider.default_base_url().to_owned()),
                key,
                max_tokens: def.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
                context_tokens,
            };
            out.models.insert(name, spec);
        }
        let model_exists = |m: &Spanned<String>, whose: &str| {
            if out.models.contains_key(m.get_ref()) {
                Ok(())
            } else {
                Err(at(
                    m.span(),
                    ConfigError::UndefinedModel {
                        table: whose.to_owned(),
                        value: m.get_ref().clone(),
                        known: known(out.models.keys()),
                    },
                ))
            }
        };
        for (name, def) in input.agents {
            let table = format!("[agents.{name}]");
            if let Some(m) = &def.model {
                model_exists(m, &table)?;
            }
            if let Some(p) = &def.policy
                && !policy_exists(p.get_ref())
            {
                return Err(at(
                    p.span(),
                    ConfigError::UndefinedPolicy {
                        table: table.clone(),
                        key: "policy".into(),
                        value: p.get_ref().clone(),
                    },
                ));
            }
            let limits = match &def.limits {
                Some(l) => l
                    .get_ref()
                    .to_limits_in(Some(&table), "limits.")
                    .map_err(|e| at(l.span(), e))?,
                None => PolicyLimits::default(),
            };
            let too_small =
                |key: &str, value: u64, min: u64, unit: &'static str| ConfigError::TooSmall {
                    table: table.clone(),
                    key: key.to_owned(),
                    value,
                    min,
                    unit,
                };
            let positive = |v: &Option<Spanned<u32>>, what: &str, default: u32| match v {
                Some(n) if *n.get_ref() == 0 => Err(at(n.span(), too_small(what, 0, 1, ""))),
                Some(n) => Ok(*n.get_ref()),
                None => Ok(default),
            };
            let budget = |v: &Spanned<String>, what: &str| {
                let bytes = parse_size(v.get_ref()).map_err(|e| {
                    let bad = ConfigError::BadValue {
                        table: Some(table.clone()),
                        key: what.to_owned(),
                        value: v.get_ref().clone(),
                        reason: e,
                    };
                    at(v.span(), bad)
                })?;
                if bytes < MIN_RESULT_BUDGET {
                    return Err(at(
                        v.span(),
                        too_small(what, bytes, MIN_RESULT_BUDGET, " bytes"),
                    ));
                }
                Ok(bytes)
            };
            let result_budget = match &def.result_budget {
                Some(b) => budget(b, "result_budget")?,
                None => DEFAULT_RESULT_BUDGET,
            };
            let mut tool_budgets = BTreeMap::new();
            for (tool, b) in &def.tool_budgets {
                tool_budgets.insert(tool.clone(), budget(b, &format!("tool_budgets.{tool}"))?);
            }
            let builtin = AgentSpec::builtin();
            let spec = AgentSpec {
                name: name.clone(),
                model: def.model.map(Spanned::into_inner),
                system_prompt: def.system_prompt.unwrap_or(builtin.system_prompt),
                tools: def.tools,
                mcp_servers: def.mcp_servers,
                policy: def.policy.map(Spanned::into_inner),
                limits,
                max_turns: positive(&def.max_turns, "max_turns", DEFAULT_MAX_TURNS)?,
                max_history_items: positive(
                    &def.max_history_items,
                    "max_history_items",
                    DEFAULT_MAX_HISTORY_ITEMS,
                )?,
                result_budget,
                tool_budgets,
                confirm: def.confirm,
            };
            out.agents.insert(name, spec);
        }
        if let Some(m) = &input.default_model {
            model_exists(m, "[defaults]")?;
        }
        if let Some(a) = &input.default_agent
            && !out.agents.contains_key(a.get_ref())
        {
            return Err(at(
                a.span(),
                ConfigError::UndefinedAgent {
                    value: a.get_ref().clone(),
                    known: known(out.agents.keys()),
                },
            ));
        }
        out.default_model = input.default_model.map(Spanned::into_inner);
        out.default_agent = input.default_agent.map(Spanned::into_inner);
        Ok(out)
    }

    /// The agent called `name`, or the default one, or the built-in one.
    pub fn agent(&self, name: Option<&str>) -> Result<AgentSpec, ConfigError> {
        match name.or(self.default_agent.as_deref()) {
            Some(n) => self
                .agents
                .get(n)
                .cloned()
                .ok_or_else(|| ConfigError::UnknownAgent {
                    name: n.to_owned(),
                    known: known(self.agents.keys()),
                }),
            None => Ok(AgentSpec::builtin()),
        }
    }

    /// The model called `name` (a `[models.NAME]` table).
    pub fn model(&self, name: &str) -> Result<&ModelSpec, ConfigError> {
        self.models
            .get(name)
            .ok_or_else(|| ConfigError::UnknownModel {
                name: name.to_owned(),
                known: known(self.models.keys()),
            })
    }
}

/// Why a file holding a key is not private, if it is not.
fn readable_by_others(path: &Path) -> Option<&'static str> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    if mode & 0o004 != 0 {
        Some("everyone can read")
    } else if mode & 0o040 != 0 {
        Some("its group can read")
    } else {
        None
    }
}

#[cfg(test)]
#[path = "agents_tests.rs"]
mod tests;
