//! The config file as a whole: [`Config`], which reads and resolves it; its
//! top-level `worker` key, `[defaults]`, and the sandbox policies
//! (`[policies.NAME]`, each laid over a preset or another policy through
//! `extends`). The other tables are parsed by their modules: `[mcp]` and
//! `[servers.NAME]` by [`servers`](crate::servers), `[models.NAME]` and
//! `[agents.NAME]` by [`agents`](crate::agents), `[store]` by
//! [`store`](crate::store), limits by [`LimitsDef`](crate::LimitsDef).
//!
//! ```toml
//! worker = "/opt/bulkhead/bulkhead-worker"  # searched last: bulkhead_host::spawn::find_worker
//!
//! [defaults]
//! tool_policy = "workspace"   # `bulkhead run`
//! mcp_policy = "untrusted"    # MCP servers
//!
//! [policies.research]
//! extends = "untrusted"       # a preset or another policy; default "untrusted"
//! read = ["~/papers"]         # added to what the base reads
//! write = ["~/papers/out"]
//! deny = ["~/papers/private"]
//! network = "loopback"        # none | loopback | full
//! env = ["PATH", "LANG"]      # replaces the base's allowlist
//! on_missing = "require"      # require | best-effort
//! cwd = "~/papers"
//! isolate_processes = true    # its own PID namespace
//! seccomp = true              # the syscall filter
//!
//! [policies.research.limits]  # laid over the base's
//! memory = "512MiB"
//! timeout = "2m"
//! ```
//!
//! A table named after a preset changes that preset.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bulkhead_ipc::{NetworkMode, OnMissing};
use serde::Deserialize;

use bulkhead_host::policy::{FsPolicy, PRESET_NAMES, Policy, preset};

use crate::ConfigError;
use crate::capped_read::read_capped_text;
use crate::limits::{LimitsDef, lay_over};

/// Largest config file read. A hand-written policy file is a few KiB; the
/// cap keeps a wrong path (a log, a disk image) from being slurped.
pub const CONFIG_MAX_BYTES: u64 = 1 << 20;

/// Every policy known: the presets and the config file's, resolved.
#[derive(Debug, Clone)]
pub struct Config {
    policies: BTreeMap<String, Policy>,
    pub tool_default: String,
    pub mcp_default: String,
    /// The config file read, if any.
    pub source: Option<PathBuf>,
    /// `worker = "PATH"`: the worker binary, searched last (see
    /// `bulkhead_host::spawn::find_worker`).
    pub worker: Option<PathBuf>,
    /// `[mcp]`: where the `mcpServers` list is.
    pub mcp: crate::servers::McpSection,
    /// `[servers.NAME]`: how each MCP server runs.
    pub servers: BTreeMap<String, crate::servers::ServerSettings>,
    /// `[models.NAME]`, `[agents.NAME]` and their defaults: the agent loop.
    pub agents: crate::agents::AgentSettings,
    /// `[store]`: the session store's path and size limits.
    pub store: crate::store::StoreSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    /// Where `bulkhead-worker` is, when it is neither next to `bulkhead`
    /// nor named by `BULKHEAD_WORKER` (the last place searched).
    worker: Option<PathBuf>,
    #[serde(default)]
    defaults: Defaults,
    #[serde(default)]
    policies: BTreeMap<String, PolicyDef>,
    #[serde(default)]
    mcp: crate::servers::McpSection,
    #[serde(default)]
    servers: BTreeMap<String, crate::servers::ServerSettings>,
    #[serde(default)]
    models: BTreeMap<String, crate::agents::ModelDef>,
    #[serde(default)]
    agents: BTreeMap<String, crate::agents::AgentDef>,
    #[serde(default)]
    store: crate::store::StoreSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Defaults {
    tool_policy: Option<String>,
    mcp_policy: Option<String>,
    /// The agent loop's default model and agent (`bulkhead_agent::config`).
    model: Option<toml::Spanned<String>>,
    agent: Option<toml::Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyDef {
    extends: Option<String>,
    #[serde(default)]
    read: Vec<String>,
    #[serde(default)]
    write: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
    network: Option<NetworkName>,
    #[serde(default)]
    allow_net: Vec<String>,
    env: Option<Vec<String>>,
    on_missing: Option<OnMissingName>,
    cwd: Option<String>,
    isolate_processes: Option<bool>,
    seccomp: Option<bool>,
    limits: Option<LimitsDef>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum NetworkName {
    None,
    Loopback,
    Full,
}

#[derive(Debug, Clone, Copy, Deserialize)]
enum OnMissingName {
    #[serde(rename = "require")]
    Require,
    #[serde(rename = "best-effort")]
    BestEffort,
}

impl Default for Config {
    fn default() -> Self {
        let policies = PRESET_NAMES
            .iter()
            .filter_map(|n| preset(n).map(|p| ((*n).to_owned(), p)))
            .collect();
        Self {
            policies,
            tool_default: "workspace".into(),
            mcp_default: "untrusted".into(),
            source: None,
            worker: None,
            mcp: Default::default(),
            servers: BTreeMap::new(),
            agents: Default::default(),
            store: Default::default(),
        }
    }
}

impl Config {
    /// Loads `explicit`, else `$BULKHEAD_CONFIG`, else
    /// `$XDG_CONFIG_HOME/bulkhead/bulkhead.toml` (or `~/.config/…`) if it
    /// exists. An explicit file that is missing is an error; an absent
    /// default file is not. Every error is a
    /// [`ConfigError::InConfigFile`].
    pub fn load(explicit: Option<&Path>) -> Result<Self, ConfigError> {
        let chosen = explicit
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("BULKHEAD_CONFIG").map(PathBuf::from));
        let path = match chosen {
            Some(p) => p,
            None => match default_config_path().filter(|p| p.exists()) {
                Some(p) => p,
                None => return Ok(Self::default()),
            },
        };
        let text =
            read_capped_text(&path, CONFIG_MAX_BYTES).map_err(|e| e.in_config_file(&path))?;
        Self::parse(&text, &path)
    }

    /// Parses config text; `path` names it in errors, each a
    /// [`ConfigError::InConfigFile`].
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        Self::parse_unwrapped(text, path).map_err(|e| e.in_config_file(path))
    }

    fn parse_unwrapped(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| ConfigError::toml(&e, text))?;
        let mut set = Self {
            source: Some(path.to_path_buf()),
            ..Self::default()
        };
        // Resolve `extends` in dependency order; a chain longer than the
        // number of tables is a cycle.
        let mut pending: Vec<(&String, &PolicyDef)> = file.policies.iter().collect();
        let mut done = std::collections::BTreeSet::new();
        for _ in 0..=file.policies.len() {
            let mut later = Vec::new();
            for (name, def) in pending {
                let base_name = match &def.extends {
                    Some(b) => b.clone(),
                    // A table named after a preset changes that preset.
                    None if preset(name).is_some() => name.clone(),
                    None => "untrusted".into(),
                };
                let base = if &base_name == name {
                    preset(name).ok_or_else(|| ConfigError::ExtendsItself {
                        policy: name.clone(),
                    })?
                } else if file.policies.contains_key(&base_name) {
                    if !done.contains(&base_name) {
                        later.push((name, def));
                        continue;
                    }
                    set.policies[&base_name].clone()
                } else {
                    preset(&base_name).ok_or_else(|| ConfigError::UndefinedBase {
                        policy: name.clone(),
                        base: base_name.clone(),
                    })?
                };
                let policy = apply_def(base, name, def).map_err(|e| ConfigError::InPolicy {
                    policy: name.clone(),
                    problem: Box::new(e),
                })?;
                set.policies.insert(name.clone(), policy);
                done.insert(name.clone());
            }
            pending = later;
            if pending.is_empty() {
                break;
            }
        }
        if let Some((name, _)) = pending.first() {
            return Err(ConfigError::ExtendsCycle {
                policy: (*name).clone(),
            });
        }
        if let Some(w) = &file.worker
            && !w.is_absolute()
        {
            return Err(ConfigError::RelativeWorker { path: w.clone() });
        }
        for (name, settings) in &file.servers {
            settings.check_limits(name)?;
        }
        set.worker = file.worker;
        set.mcp = file.mcp;
        set.servers = file.servers;
        set.agents = crate::agents::AgentSettings::resolve(
            crate::agents::AgentInput {
                text,
                path,
                models: file.models,
                agents: file.agents,
                default_model: file.defaults.model,
                default_agent: file.defaults.agent,
            },
            |name| set.policies.contains_key(name),
        )?;
        file.store.retention()?;
        set.store = file.store;
        if let Some(name) = file.defaults.tool_policy {
            set.tool_default = name;
        }
        if let Some(name) = file.defaults.mcp_policy {
            set.mcp_default = name;
        }
        for (what, name) in [
            ("tool_policy", &set.tool_default),
            ("mcp_policy", &set.mcp_default),
        ] {
            if !set.policies.contains_key(name) {
                return Err(ConfigError::UndefinedPolicy {
                    table: "[defaults]".into(),
                    key: what.into(),
                    value: name.clone(),
                });
            }
        }
        Ok(set)
    }

    /// The policy called `name`.
    pub fn get(&self, name: &str) -> Result<&Policy, ConfigError> {
        self.policies
            .get(name)
            .ok_or_else(|| ConfigError::UnknownPolicy {
                name: name.to_owned(),
                known: self.policies.keys().cloned().collect::<Vec<_>>().join(", "),
            })
    }

    /// Every policy, presets first.
    pub fn all(&self) -> impl Iterator<Item = &Policy> {
        let presets = PRESET_NAMES.iter().filter_map(|n| self.policies.get(*n));
        let users = self
            .policies
            .iter()
            .filter(|(n, _)| !PRESET_NAMES.contains(&n.as_str()))
            .map(|(_, p)| p);
        presets.chain(users)
    }
}

fn apply_def(mut p: Policy, name: &str, def: &PolicyDef) -> Result<Policy, ConfigError> {
    p.name = name.to_owned();
    if !(def.read.is_empty() && def.write.is_empty() && def.deny.is_empty()) {
        match &mut p.filesystem {
            FsPolicy::Restricted {
                read, write, deny, ..
            } => {
                read.extend(def.read.iter().cloned());
                write.extend(def.write.iter().cloned());
                deny.extend(def.deny.iter().cloned());
            }
            FsPolicy::Unrestricted => {
                return Err(ConfigError::NeedsRestrictedFilesystem);
            }
        }
    }
    for path in def
        .read
        .iter()
        .chain(&def.write)
        .chain(&def.deny)
        .chain(def.cwd.iter())
    {
        if !(path.starts_with('/') || path.starts_with("~/") || path == "~") {
            return Err(ConfigError::RelativePath { path: path.clone() });
        }
    }
    if let Some(n) = def.network {
        p.network = match n {
            NetworkName::None => NetworkMode::None,
            NetworkName::Loopback => NetworkMode::Loopback,
            NetworkName::Full => NetworkMode::Full,
        };
    }
    if !def.allow_net.is_empty() {
        let added = bulkhead_egress::AllowList::parse(&def.allow_net)?;
        p.allow_net = p
            .allow_net
            .rules()
            .iter()
            .chain(added.rules())
            .cloned()
            .collect();
    }
    if let Some(env) = &def.env {
        p.env = Some(env.clone());
    }
    if let Some(m) = def.on_missing {
        p.on_missing = match m {
            OnMissingName::Require => OnMissing::Require,
            OnMissingName::BestEffort => OnMissing::BestEffort,
        };
    }
    if def.cwd.is_some() {
        p.cwd = def.cwd.clone();
    }
    if let Some(v) = def.isolate_processes {
        p.isolate_processes = v;
    }
    if let Some(v) = def.seccomp {
        p.seccomp = v;
    }
    if let Some(l) = &def.limits {
        p.limits = lay_over(l.to_limits("limits.")?, &p.limits);
    }
    Ok(p)
}

/// `$XDG_CONFIG_HOME/bulkhead/bulkhead.toml` (an absolute
/// `XDG_CONFIG_HOME` only), else `$HOME/.config/bulkhead/bulkhead.toml`;
/// `None` without either variable. Whether the file exists is the caller's
/// question.
pub fn default_config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("bulkhead").join("bulkhead.toml"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("/etc/bulkhead.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn no_config_gives_the_presets_and_their_defaults() {
        let set = parse("").unwrap();
        assert_eq!(set.tool_default, "workspace");
        assert_eq!(set.mcp_default, "untrusted");
        let names: Vec<_> = set.all().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["untrusted", "workspace", "trusted"]);
    }

    #[test]
    fn a_policy_extends_another_and_adds_to_it() {
        let set = parse(
            r#"
            [defaults]
            tool_policy = "child"
            [policies.child]
            extends = "parent"
            read = ["~/more"]
            [policies.child.limits]
            memory = "256MiB"
            timeout = "2m"
            [policies.parent]
            extends = "untrusted"
            read = ["/data"]
            network = "loopback"
            on_missing = "require"
            "#,
        )
        .unwrap();
        let child = set.get("child").unwrap();
        assert_eq!(child.network, NetworkMode::Loopback);
        assert_eq!(child.on_missing, OnMissing::Require);
        let FsPolicy::Restricted { read, system, .. } = &child.filesystem else {
            panic!("restricted");
        };
        assert!(system);
        assert_eq!(read, &["/data".to_owned(), "~/more".to_owned()]);
        assert_eq!(child.limits.memory_bytes, Some(256 << 20));
        assert_eq!(child.limits.timeout, Some(Duration::from_secs(120)));
        assert_eq!(set.tool_default, "child");
        assert!(child.explain().starts_with("child: "));
    }

    #[test]
    fn a_table_named_after_a_preset_changes_it() {
        let set = parse("[policies.untrusted]\nnetwork = \"loopback\"\n").unwrap();
        assert_eq!(set.get("untrusted").unwrap().network, NetworkMode::Loopback);
    }

    #[test]
    fn bad_configs_name_the_file_and_the_problem() {
        let cases = [
            (
                "[policies.x]\nnetwrk = \"none\"\n",
                "unknown field `netwrk`",
            ),
            ("[policies.x]\nnetwork = \"some\"\n", "some"),
            (
                "[policies.x]\nextends = \"nope\"\n",
                "extends \"nope\", which is not defined",
            ),
            (
                "[policies.a]\nextends = \"b\"\n[policies.b]\nextends = \"a\"\n",
                "cycle",
            ),
            (
                "[policies.x]\nread = [\"relative/dir\"]\n",
                "must be absolute or start with ~/",
            ),
            ("[policies.x.limits]\nmemory = \"lots\"\n", "limits.memory"),
            (
                "[defaults]\ntool_policy = \"ghost\"\n",
                "tool_policy = \"ghost\" is not a defined policy",
            ),
            (
                "[policies.t]\nextends = \"trusted\"\nread = [\"/x\"]\n",
                "restricted filesystem",
            ),
            ("this is not toml", "/etc/bulkhead.toml"),
        ];
        for (text, wanted) in cases {
            let e = parse(text).unwrap_err();
            assert!(e.contains("/etc/bulkhead.toml"), "{e}");
            assert!(e.contains(wanted), "{text:?}: wanted {wanted:?} in {e}");
        }
    }

    #[test]
    fn an_unknown_policy_lists_the_known_ones() {
        let e = Config::default().get("strict").unwrap_err().to_string();
        assert!(
            e.contains("unknown policy \"strict\"") && e.contains("untrusted"),
            "{e}"
        );
    }

    #[test]
    fn an_explicit_config_file_that_is_missing_is_an_error() {
        let e = Config::load(Some(Path::new("/no/such/bulkhead.toml"))).unwrap_err();
        assert!(e.to_string().contains("/no/such/bulkhead.toml"), "{e}");
    }

    #[test]
    fn errors_keep_their_text_and_say_where() {
        let e = Config::parse(
            "[policies.x]\nextends = \"nope\"\n",
            Path::new("/etc/bulkhead.toml"),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "config file /etc/bulkhead.toml: policy \"x\" extends \"nope\", which is not \
             defined; the presets are untrusted, workspace, trusted"
        );
        assert_eq!(e.path(), Some(Path::new("/etc/bulkhead.toml")));
        assert!(matches!(e.problem(), ConfigError::UndefinedBase { base, .. } if base == "nope"));

        let e = Config::parse(
            "[policies.x.limits]\nmemory = \"lots\"\n",
            Path::new("/etc/bulkhead.toml"),
        )
        .unwrap_err();
        let reason = bulkhead_host::units::parse_size("lots").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("config file /etc/bulkhead.toml: policy \"x\": limits.memory: {reason}")
        );

        let e = Config::parse(
            "[defaults]\nmodel = \"ghost\"\n",
            Path::new("/etc/bulkhead.toml"),
        )
        .unwrap_err();
        assert_eq!(e.line(), Some(2));
        assert_eq!(
            e.to_string(),
            "config file /etc/bulkhead.toml: line 2, column 9: [defaults] model = \"ghost\" is \
             not a [models.NAME] table; the models are: (none)"
        );

        let e = Config::parse("[policies.x]\nnetwrk = 1\n", Path::new("/x.toml")).unwrap_err();
        assert_eq!(e.line(), Some(2));
        assert!(matches!(e.problem(), ConfigError::Toml { .. }));
    }
}
