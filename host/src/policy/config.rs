//! The config file: default policies and user-defined ones.
//!
//! ```toml
//! worker = "/opt/bulkhead/bulkhead-worker"  # searched last; see spawn::find_worker
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
//!
//! [policies.research.limits]
//! memory = "512MiB"
//! cpu = "30s"
//! timeout = "2m"
//! pids = 64
//! open_files = 256
//! output = "1MiB"
//! file_size = "1GiB"
//! ```
//!
//! A table named after a preset changes that preset.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bulkhead_ipc::{NetworkMode, OnMissing};
use serde::Deserialize;

use super::{FsPolicy, Policy, PolicyError, PolicyLimits, presets};
use crate::units::{parse_duration, parse_size};

/// Largest config file read. A hand-written policy file is a few KiB; the
/// cap keeps a wrong path (a log, a disk image) from being slurped.
pub const CONFIG_MAX_BYTES: u64 = 1 << 20;

/// Every policy known: the presets and the config file's, resolved.
#[derive(Debug, Clone)]
pub struct PolicySet {
    policies: BTreeMap<String, Policy>,
    pub tool_default: String,
    pub mcp_default: String,
    /// The config file read, if any.
    pub source: Option<PathBuf>,
    /// `worker = "PATH"`: the worker binary, searched last (see
    /// `spawn::find_worker`).
    pub worker: Option<PathBuf>,
    /// `[mcp]`: where the `mcpServers` list is.
    pub mcp: crate::mcp::config::McpSection,
    /// `[servers.NAME]`: how each MCP server runs.
    pub servers: BTreeMap<String, crate::mcp::config::ServerSettings>,
    /// `[models.NAME]`, `[agents.NAME]` and their defaults: the agent loop.
    pub agents: crate::agent::config::AgentSettings,
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
    mcp: crate::mcp::config::McpSection,
    #[serde(default)]
    servers: BTreeMap<String, crate::mcp::config::ServerSettings>,
    #[serde(default)]
    models: BTreeMap<String, crate::agent::config::ModelDef>,
    #[serde(default)]
    agents: BTreeMap<String, crate::agent::config::AgentDef>,
    #[serde(default)]
    store: crate::store::StoreSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Defaults {
    tool_policy: Option<String>,
    mcp_policy: Option<String>,
    /// The agent loop's default model and agent (`crate::agent::config`).
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

/// `limits` of a policy (and of an agent, which lays its own over its
/// policy's).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitsDef {
    memory: Option<String>,
    cpu: Option<String>,
    timeout: Option<String>,
    pids: Option<u64>,
    open_files: Option<u64>,
    output: Option<String>,
    file_size: Option<String>,
}

impl Default for PolicySet {
    fn default() -> Self {
        let policies = presets::PRESET_NAMES
            .iter()
            .filter_map(|n| presets::preset(n).map(|p| ((*n).to_owned(), p)))
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

impl PolicySet {
    /// Loads `explicit`, else `$BULKHEAD_CONFIG`, else
    /// `$XDG_CONFIG_HOME/bulkhead/bulkhead.toml` (or `~/.config/…`) if it
    /// exists. An explicit file that is missing is an error; an absent
    /// default file is not.
    pub fn load(explicit: Option<&Path>) -> Result<Self, PolicyError> {
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
        let text = read_capped(&path)?;
        Self::parse(&text, &path)
    }

    /// Parses config text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, PolicyError> {
        let err = |message: String| PolicyError::Config {
            path: path.to_path_buf(),
            message,
        };
        let file: ConfigFile = toml::from_str(text).map_err(|e| err(e.to_string()))?;
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
                    None if presets::preset(name).is_some() => name.clone(),
                    None => "untrusted".into(),
                };
                let base = if &base_name == name {
                    presets::preset(name)
                        .ok_or_else(|| err(format!("policy \"{name}\" extends itself")))?
                } else if file.policies.contains_key(&base_name) {
                    if !done.contains(&base_name) {
                        later.push((name, def));
                        continue;
                    }
                    set.policies[&base_name].clone()
                } else {
                    presets::preset(&base_name).ok_or_else(|| {
                        err(format!(
                            "policy \"{name}\" extends \"{base_name}\", which is not defined; \
                             the presets are {}",
                            presets::PRESET_NAMES.join(", ")
                        ))
                    })?
                };
                let policy = apply_def(base, name, def)
                    .map_err(|m| err(format!("policy \"{name}\": {m}")))?;
                set.policies.insert(name.clone(), policy);
                done.insert(name.clone());
            }
            pending = later;
            if pending.is_empty() {
                break;
            }
        }
        if let Some((name, _)) = pending.first() {
            return Err(err(format!(
                "policy \"{name}\" is part of an `extends` cycle"
            )));
        }
        if let Some(w) = &file.worker
            && !w.is_absolute()
        {
            return Err(err(format!(
                "worker = \"{}\" must be an absolute path",
                w.display()
            )));
        }
        set.worker = file.worker;
        set.mcp = file.mcp;
        set.servers = file.servers;
        set.agents = crate::agent::config::AgentSettings::resolve(
            crate::agent::config::AgentInput {
                text,
                path,
                models: file.models,
                agents: file.agents,
                default_model: file.defaults.model,
                default_agent: file.defaults.agent,
            },
            |name| set.policies.contains_key(name),
        )
        .map_err(err)?;
        file.store.retention().map_err(err)?;
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
                return Err(err(format!(
                    "[defaults] {what} = \"{name}\" is not a defined policy"
                )));
            }
        }
        Ok(set)
    }

    /// The policy called `name`.
    pub fn get(&self, name: &str) -> Result<&Policy, PolicyError> {
        self.policies.get(name).ok_or_else(|| PolicyError::Unknown {
            name: name.to_owned(),
            known: self.policies.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    /// Every policy, presets first.
    pub fn all(&self) -> impl Iterator<Item = &Policy> {
        let presets = presets::PRESET_NAMES
            .iter()
            .filter_map(|n| self.policies.get(*n));
        let users = self
            .policies
            .iter()
            .filter(|(n, _)| !presets::PRESET_NAMES.contains(&n.as_str()))
            .map(|(_, p)| p);
        presets.chain(users)
    }
}

fn apply_def(mut p: Policy, name: &str, def: &PolicyDef) -> Result<Policy, String> {
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
                return Err("read/write/deny need a restricted filesystem; extend \"untrusted\" or \"workspace\"".into());
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
            return Err(format!("path \"{path}\" must be absolute or start with ~/"));
        }
    }
    if let Some(n) = def.network {
        p.network = match n {
            NetworkName::None => NetworkMode::None,
            NetworkName::Loopback => NetworkMode::Loopback,
            NetworkName::Full => NetworkMode::Full,
        };
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
        let over = l.to_limits()?;
        p.limits = PolicyLimits {
            memory_bytes: over.memory_bytes.or(p.limits.memory_bytes),
            cpu: over.cpu.or(p.limits.cpu),
            timeout: over.timeout.or(p.limits.timeout),
            pids: over.pids.or(p.limits.pids),
            open_files: over.open_files.or(p.limits.open_files),
            max_output_bytes: over.max_output_bytes.or(p.limits.max_output_bytes),
            file_size_bytes: over.file_size_bytes.or(p.limits.file_size_bytes),
        };
    }
    Ok(p)
}

impl LimitsDef {
    /// The limits this table sets; errors name the key (`limits.memory`).
    pub(crate) fn to_limits(&self) -> Result<PolicyLimits, String> {
        let size = |what: &str, v: &Option<String>| {
            v.as_deref()
                .map(|s| parse_size(s).map_err(|e| format!("limits.{what}: {e}")))
                .transpose()
        };
        let dur = |what: &str, v: &Option<String>| {
            v.as_deref()
                .map(|s| parse_duration(s).map_err(|e| format!("limits.{what}: {e}")))
                .transpose()
        };
        Ok(PolicyLimits {
            memory_bytes: size("memory", &self.memory)?,
            cpu: dur("cpu", &self.cpu)?,
            timeout: dur("timeout", &self.timeout)?,
            pids: self.pids,
            open_files: self.open_files,
            max_output_bytes: size("output", &self.output)?,
            file_size_bytes: size("file_size", &self.file_size)?,
        })
    }
}

fn default_config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("bulkhead").join("bulkhead.toml"))
}

/// Reads a small text file whole, refusing one over `max` bytes: a wrong
/// path (a log, a disk image) must not be slurped. The error says what went
/// wrong, without the path, which callers add.
pub(crate) fn read_capped_text(path: &Path, max: u64) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let mut text = String::new();
    file.take(max + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read: {e}"))?;
    if text.len() as u64 > max {
        return Err(format!("larger than {max} bytes; is this the right file?"));
    }
    Ok(text)
}

fn read_capped(path: &Path) -> Result<String, PolicyError> {
    read_capped_text(path, CONFIG_MAX_BYTES).map_err(|message| PolicyError::Config {
        path: path.to_path_buf(),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parse(text: &str) -> Result<PolicySet, String> {
        PolicySet::parse(text, Path::new("/etc/bulkhead.toml")).map_err(|e| e.to_string())
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
        let e = PolicySet::default().get("strict").unwrap_err().to_string();
        assert!(
            e.contains("unknown policy \"strict\"") && e.contains("untrusted"),
            "{e}"
        );
    }

    #[test]
    fn an_explicit_config_file_that_is_missing_is_an_error() {
        let e = PolicySet::load(Some(Path::new("/no/such/bulkhead.toml"))).unwrap_err();
        assert!(e.to_string().contains("/no/such/bulkhead.toml"), "{e}");
    }
}
