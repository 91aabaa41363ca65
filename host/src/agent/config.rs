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
//! [agents.coder.limits]               # laid over the policy's
//! timeout = "2m"
//! output = "4MiB"
//! ```
//!
//! Errors name the file, the line and column, and the key.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::model::{ApiKey, ModelConfig, ModelLimits, ProviderKind};
use crate::policy::PolicyLimits;
use crate::policy::config::LimitsDef;
use crate::units::parse_size;

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
    ) -> Result<Self, String> {
        let at = |span: std::ops::Range<usize>, msg: String| {
            let (line, col) = line_col(input.text, span.start);
            format!("line {line}, column {col}: {msg}")
        };
        let mut out = AgentSettings::default();
        for (name, def) in input.models {
            let key = match (def.api_key_env, def.api_key) {
                (Some(_), Some(k)) => {
                    return Err(at(
                        k.span(),
                        format!("[models.{name}]: set api_key_env or api_key, not both"),
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
                return Err(format!(
                    "[models.{name}] context_tokens = {context_tokens} is below {MIN_CONTEXT_TOKENS}"
                ));
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
                    format!(
                        "{whose} model = \"{}\" is not a [models.NAME] table; the models are: {}",
                        m.get_ref(),
                        known(out.models.keys())
                    ),
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
                    format!(
                        "{table} policy = \"{}\" is not a defined policy",
                        p.get_ref()
                    ),
                ));
            }
            let limits = match &def.limits {
                Some(l) => l
                    .get_ref()
                    .to_limits()
                    .map_err(|e| at(l.span(), format!("{table} {e}")))?,
                None => PolicyLimits::default(),
            };
            let positive = |v: &Option<Spanned<u32>>, what: &str, default: u32| match v {
                Some(n) if *n.get_ref() == 0 => {
                    Err(at(n.span(), format!("{table} {what} must be at least 1")))
                }
                Some(n) => Ok(*n.get_ref()),
                None => Ok(default),
            };
            let budget = |v: &Spanned<String>, what: &str| {
                let bytes = parse_size(v.get_ref())
                    .map_err(|e| at(v.span(), format!("{table} {what}: {e}")))?;
                if bytes < MIN_RESULT_BUDGET {
                    return Err(at(
                        v.span(),
                        format!("{table} {what} must be at least {MIN_RESULT_BUDGET} bytes"),
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
                format!(
                    "[defaults] agent = \"{}\" is not an [agents.NAME] table; the agents are: {}",
                    a.get_ref(),
                    known(out.agents.keys())
                ),
            ));
        }
        out.default_model = input.default_model.map(Spanned::into_inner);
        out.default_agent = input.default_agent.map(Spanned::into_inner);
        Ok(out)
    }

    /// The agent called `name`, or the default one, or the built-in one.
    pub fn agent(&self, name: Option<&str>) -> Result<AgentSpec, String> {
        match name.or(self.default_agent.as_deref()) {
            Some(n) => self.agents.get(n).cloned().ok_or_else(|| {
                format!(
                    "unknown agent \"{n}\"; the agents are: {}",
                    known(self.agents.keys())
                )
            }),
            None => Ok(AgentSpec::builtin()),
        }
    }

    /// The model called `name` (a `[models.NAME]` table).
    pub fn model(&self, name: &str) -> Result<&ModelSpec, String> {
        self.models.get(name).ok_or_else(|| {
            format!(
                "unknown model \"{name}\"; the models are: {}",
                known(self.models.keys())
            )
        })
    }
}

fn known<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let list: Vec<&str> = names.map(String::as_str).collect();
    if list.is_empty() {
        "(none)".into()
    } else {
        list.join(", ")
    }
}

/// 1-based line and column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let col = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
    (line, col)
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
mod tests {
    use crate::PolicySet;
    use crate::model::{ModelLimits, ProviderKind};
    use std::path::Path;

    fn parse(text: &str) -> Result<PolicySet, String> {
        PolicySet::parse(text, Path::new("/etc/bulkhead.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn models_agents_and_defaults_resolve() {
        let set = parse(
            r#"
            [defaults]
            model = "local"
            agent = "coder"
            [models.local]
            provider = "openai"
            model = "qwen"
            base_url = "http://127.0.0.1:1/v1"
            api_key_env = "MY_KEY"
            context_tokens = 8000
            [models.claude]
            provider = "anthropic"
            model = "claude-sonnet"
            [agents.coder]
            model = "claude"
            system_prompt = "be brief"
            tools = ["shell"]
            policy = "untrusted"
            max_turns = 3
            result_budget = "2KiB"
            tool_budgets = { shell = "1KiB" }
            confirm = ["shell"]
            [agents.coder.limits]
            timeout = "10s"
            "#,
        )
        .unwrap();
        let a = &set.agents;
        assert_eq!(a.default_model.as_deref(), Some("local"));
        let local = a.model("local").unwrap();
        assert_eq!(local.context_tokens, 8000);
        assert!(matches!(&local.key, super::KeySource::Env(v) if v == "MY_KEY"));
        let claude = a.model("claude").unwrap();
        assert_eq!(claude.base_url, "https://api.anthropic.com/v1");
        assert!(matches!(&claude.key, super::KeySource::Env(v) if v == "ANTHROPIC_API_KEY"));
        let coder = a.agent(None).unwrap();
        assert_eq!(coder.name, "coder");
        assert_eq!(coder.max_turns, 3);
        assert_eq!(coder.budget_for("shell"), 1024);
        assert_eq!(coder.budget_for("read_file"), 2048);
        assert_eq!(
            coder.limits.timeout,
            Some(std::time::Duration::from_secs(10))
        );
        assert_eq!(coder.max_history_items, super::DEFAULT_MAX_HISTORY_ITEMS);
    }

    #[test]
    fn default_endpoints_are_the_providers_public_apis() {
        let set = parse(
            "[models.o]\nprovider = \"openai\"\nmodel = \"x\"\n\
             [models.a]\nprovider = \"anthropic\"\nmodel = \"y\"\n",
        )
        .unwrap();
        let endpoint = |name: &str| {
            let spec = set.agents.model(name).unwrap();
            spec.client_config(ModelLimits::default())
                .endpoint()
                .unwrap()
                .to_string()
        };
        assert_eq!(endpoint("o"), "https://api.openai.com/v1/chat/completions");
        assert_eq!(endpoint("a"), "https://api.anthropic.com/v1/messages");
        for provider in [ProviderKind::OpenAi, ProviderKind::Anthropic] {
            let flags = super::ModelSpec::from_flags(provider, "m".into(), None);
            let from_table = set
                .agents
                .model(if provider == ProviderKind::OpenAi {
                    "o"
                } else {
                    "a"
                })
                .unwrap();
            assert_eq!(flags.base_url, from_table.base_url);
        }
    }

    #[test]
    fn provider_names_are_lowercase() {
        let e = parse("[models.m]\nprovider = \"open_ai\"\nmodel = \"x\"\n").unwrap_err();
        assert!(e.contains("open_ai"), "{e}");
        assert_eq!("openai".parse::<ProviderKind>(), Ok(ProviderKind::OpenAi));
        assert_eq!(ProviderKind::Anthropic.name(), "anthropic");
    }

    #[test]
    fn no_agents_gives_the_builtin_one() {
        let set = parse("").unwrap();
        assert_eq!(set.agents.agent(None).unwrap().name, "default");
        assert!(set.agents.agent(Some("x")).is_err());
    }

    #[test]
    fn a_literal_key_never_shows_in_debug() {
        let set = parse(
            "[models.m]\nprovider = \"openai\"\nmodel = \"x\"\napi_key = \"sk-secret-123\"\n",
        )
        .unwrap();
        let m = set.agents.model("m").unwrap();
        assert_eq!(m.api_key().unwrap().expose(), "sk-secret-123");
        assert!(!format!("{set:?}").contains("sk-secret-123"));
    }

    #[test]
    fn bad_agent_configs_name_the_file_line_and_key() {
        let cases = [
            (
                "[models.m]\nprovider = \"gemini\"\nmodel = \"x\"\n",
                "line 2",
                "gemini",
            ),
            (
                "[models.m]\nprovider = \"openai\"\nmodle = \"x\"\n",
                "line 3",
                "unknown field `modle`",
            ),
            (
                "[models.m]\nprovider = \"openai\"\n",
                "line 1",
                "missing field `model`",
            ),
            (
                "[agents.a]\nmodel = \"ghost\"\n",
                "line 2, column 9",
                "model = \"ghost\" is not a [models.NAME] table",
            ),
            (
                "[agents.a]\npolicy = \"ghost\"\n",
                "line 2",
                "policy = \"ghost\" is not a defined policy",
            ),
            (
                "[agents.a]\nmax_turns = 0\n",
                "line 2",
                "max_turns must be at least 1",
            ),
            (
                "[agents.a]\nresult_budget = \"12\"\n",
                "line 2",
                "result_budget must be at least 512 bytes",
            ),
            (
                "[agents.a]\ntool_budgets = { shell = \"lots\" }\n",
                "line 2",
                "tool_budgets.shell",
            ),
            (
                "[defaults]\nagent = \"ghost\"\n",
                "line 2",
                "agent = \"ghost\"",
            ),
            (
                "[defaults]\nmodel = \"ghost\"\n",
                "line 2",
                "the models are: (none)",
            ),
            (
                "[agents.a.limits]\nmemory = \"lots\"\n",
                "line 1",
                "limits.memory",
            ),
            (
                "[models.m]\nprovider = \"openai\"\nmodel = \"x\"\napi_key_env = \"K\"\napi_key = \"k\"\n",
                "line 5",
                "not both",
            ),
        ];
        for (text, line, wanted) in cases {
            let e = parse(text).unwrap_err();
            assert!(e.contains("/etc/bulkhead.toml"), "{e}");
            assert!(e.contains(line), "{text:?}: wanted {line:?} in {e}");
            assert!(e.contains(wanted), "{text:?}: wanted {wanted:?} in {e}");
        }
    }

    #[test]
    fn a_literal_key_in_a_readable_file_warns() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bulkhead.toml");
        std::fs::write(
            &path,
            "[models.m]\nprovider = \"openai\"\nmodel = \"x\"\napi_key = \"k\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let set = PolicySet::load(Some(&path)).unwrap();
        assert!(
            set.agents.warnings[0].contains("chmod 600"),
            "{:?}",
            set.agents.warnings
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let set = PolicySet::load(Some(&path)).unwrap();
        assert!(set.agents.warnings.is_empty());
    }
}
