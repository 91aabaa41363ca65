//! Unit tests of the agent config: the `[models]`, `[agents]` and `[defaults]` tables.

use crate::Config;
use bulkhead_model::{ModelLimits, ProviderKind};
use std::path::Path;

fn parse(text: &str) -> Result<Config, String> {
    Config::parse(text, Path::new("/etc/bulkhead.toml")).map_err(|e| e.to_string())
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
    let set =
        parse("[models.m]\nprovider = \"openai\"\nmodel = \"x\"\napi_key = \"sk-secret-123\"\n")
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
    let set = Config::load(Some(&path)).unwrap();
    assert!(
        set.agents.warnings[0].contains("chmod 600"),
        "{:?}",
        set.agents.warnings
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let set = Config::load(Some(&path)).unwrap();
    assert!(set.agents.warnings.is_empty());
}
