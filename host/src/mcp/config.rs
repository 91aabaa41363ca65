//! MCP servers, as configured: the standard `mcpServers` JSON (the Claude
//! Desktop / Cursor format, read as is) for *what* to run, and bulkhead's
//! own TOML config (`[servers.NAME]`) for *how*: policy, roots, limits,
//! restart budget.
//!
//! ```toml
//! [mcp]
//! servers_file = "~/.config/Claude/claude_desktop_config.json"
//!
//! [servers.filesystem]
//! policy = "untrusted"
//! allow_read = ["~/notes"]
//! allow_write = ["~/notes/out"]
//! memory = "512MiB"
//! max_message = "4MiB"
//! call_timeout = "2m"
//! max_restarts = 3
//! restart_window = "60s"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::limits::CallLimits;
use crate::policy::{CallPolicy, PolicyLimits, PolicySet, ResolveContext, resolve};
use crate::units::{parse_duration, parse_size};

/// Largest `mcpServers` file read: a client config is a few KiB.
pub const SERVERS_FILE_MAX_BYTES: u64 = 1 << 20;

/// The MCP spec's default stdio message size bulkhead enforces: see the
/// worker's relay.
const DEFAULT_MAX_MESSAGE: u64 = 4 << 20;
/// A `tools/call` result above this is cut: bulkhead's default output cap.
const DEFAULT_MAX_RESULT: u64 = 1 << 20;
/// bulkhead's default tool-call time limit.
const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(300);
/// Erlang/OTP's supervisor default is 1 restart in 5 s; a tool server that
/// crashes on one bad input deserves a few more chances in a minute, and no
/// more: beyond that it is crash-looping.
const DEFAULT_MAX_RESTARTS: u32 = 3;
const DEFAULT_RESTART_WINDOW: Duration = Duration::from_secs(60);

/// `[mcp]` in bulkhead's config.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpSection {
    /// The `mcpServers` JSON to read (`~/` allowed).
    pub servers_file: Option<String>,
}

/// `[servers.NAME]` in bulkhead's config: how to run that server.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub policy: Option<String>,
    #[serde(default)]
    pub allow_read: Vec<String>,
    #[serde(default)]
    pub allow_write: Vec<String>,
    pub memory: Option<String>,
    pub cpu: Option<String>,
    pub pids: Option<u64>,
    pub max_message: Option<String>,
    pub max_result: Option<String>,
    pub call_timeout: Option<String>,
    pub max_restarts: Option<u32>,
    pub restart_window: Option<String>,
    pub cwd: Option<String>,
}

/// One entry of `mcpServers`. Fields other clients add (`type`,
/// `alwaysAllow`, `timeout`, …) are accepted and ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct ServerEntry {
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub url: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub cwd: Option<String>,
    #[serde(default)]
    pub disabled: bool,
}

#[derive(Debug, Deserialize)]
struct ServersFile {
    #[serde(rename = "mcpServers")]
    mcp_servers: BTreeMap<String, ServerEntry>,
}

/// How a server is reached.
#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    /// A program speaking MCP on stdio, run in a worker.
    Stdio {
        command: Vec<String>,
        env: BTreeMap<String, String>,
    },
    /// A Streamable HTTP server, reached from a worker.
    Http {
        url: String,
        headers: BTreeMap<String, String>,
    },
}

/// Restarts allowed: at most `max` in any `window`, then the server is
/// marked failed (Erlang/OTP's supervisor intensity and period).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartBudget {
    pub max: u32,
    pub window: Duration,
}

/// A server ready to start: everything resolved.
#[derive(Debug, Clone)]
pub struct McpServerSpec {
    pub name: String,
    pub transport: Transport,
    pub policy: CallPolicy,
    pub limits: CallLimits,
    pub cwd: Option<PathBuf>,
    pub max_message: u64,
    pub max_result: u64,
    pub call_timeout: Duration,
    pub restart: RestartBudget,
}

/// Reads an `mcpServers` JSON file. Errors name the file, the line and
/// column, and the field.
pub fn load_servers_file(path: &Path) -> Result<BTreeMap<String, ServerEntry>, String> {
    let fail = |m: String| format!("{}: {m}", path.display());
    let text =
        crate::policy::config::read_capped_text(path, SERVERS_FILE_MAX_BYTES).map_err(fail)?;
    let de = &mut serde_json::Deserializer::from_str(&text);
    let parsed: ServersFile = serde_path_to_error::deserialize(de).map_err(|e| {
        let inner = e.inner();
        fail(format!(
            "line {} column {}: at `{}`: {inner}",
            inner.line(),
            inner.column(),
            e.path()
        ))
    })?;
    Ok(parsed.mcp_servers)
}

/// Where the servers are listed: `explicit`, else the config's
/// `[mcp] servers_file`.
pub fn servers_file(
    explicit: Option<&Path>,
    set: &PolicySet,
    home: Option<&Path>,
) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    let configured = set.mcp.servers_file.as_deref()?;
    Some(match (configured.strip_prefix("~/"), home) {
        (Some(rest), Some(h)) => h.join(rest),
        _ => PathBuf::from(configured),
    })
}

/// Resolves every enabled server into a spec: its policy (the server's
/// `policy`, else the config's `mcp_policy`), its roots (declared, plus its
/// own install dir), its limits.
pub fn specs(
    set: &PolicySet,
    servers: &BTreeMap<String, ServerEntry>,
    home: Option<&Path>,
) -> Result<Vec<McpServerSpec>, String> {
    let mut out = Vec::new();
    for (name, entry) in servers.iter().filter(|(_, e)| !e.disabled) {
        let fail = |m: String| format!("server \"{name}\": {m}");
        let settings = set.servers.get(name).cloned().unwrap_or_default();
        let transport = match (&entry.command, &entry.url) {
            (Some(cmd), None) => Transport::Stdio {
                command: std::iter::once(cmd.clone())
                    .chain(entry.args.iter().cloned())
                    .collect(),
                env: entry.env.clone(),
            },
            (None, Some(url)) => Transport::Http {
                url: url.clone(),
                headers: entry.headers.clone(),
            },
            (Some(_), Some(_)) => {
                return Err(fail("has both `command` and `url`; give one".into()));
            }
            (None, None) => return Err(fail("has neither `command` nor `url`".into())),
        };
        let policy_name = settings.policy.as_deref().unwrap_or(&set.mcp_default);
        let policy = set.get(policy_name).map_err(|e| fail(e.to_string()))?;
        let tilde = |p: &String| match (p.strip_prefix("~/"), home) {
            (Some(rest), Some(h)) => h.join(rest),
            _ => PathBuf::from(p),
        };
        let mut read: Vec<PathBuf> = settings.allow_read.iter().map(tilde).collect();
        if let Transport::Stdio { command, .. } = &transport {
            read.extend(super::install_dirs(command));
        }
        let cwd = settings.cwd.as_ref().or(entry.cwd.as_ref()).map(tilde);
        let ctx = ResolveContext {
            home: home.map(Path::to_path_buf),
            workspace: cwd.clone(),
            read,
            write: settings.allow_write.iter().map(tilde).collect(),
            install_dir: None,
        };
        let call_policy = resolve(policy, &ctx).map_err(|e| fail(e.to_string()))?;
        // A remote server is reached from the worker, whose own network
        // namespace (`none`, or `loopback`: its own lo, not the host's)
        // cannot reach it. Say so rather than widen the policy.
        let no_network = call_policy
            .sandbox
            .as_ref()
            .is_some_and(|s| s.network != bulkhead_ipc::NetworkMode::Full);
        if matches!(transport, Transport::Http { .. }) && no_network {
            return Err(fail(format!(
                "is remote (`url`), but its policy \"{policy_name}\" has no network; give it a \
                 policy with network = \"full\" in [servers.{name}] (e.g. policy = \"trusted\")"
            )));
        }
        let size = |what: &str, v: &Option<String>, default: u64| {
            v.as_deref()
                .map(|s| parse_size(s).map_err(|e| fail(format!("{what}: {e}"))))
                .unwrap_or(Ok(default))
        };
        let dur = |what: &str, v: &Option<String>, default: Duration| {
            v.as_deref()
                .map(|s| parse_duration(s).map_err(|e| fail(format!("{what}: {e}"))))
                .unwrap_or(Ok(default))
        };
        let flags = PolicyLimits {
            memory_bytes: settings
                .memory
                .as_deref()
                .map(parse_size)
                .transpose()
                .map_err(|e| fail(format!("memory: {e}")))?,
            cpu: settings
                .cpu
                .as_deref()
                .map(parse_duration)
                .transpose()
                .map_err(|e| fail(format!("cpu: {e}")))?,
            // A server lives as long as the session; per-call limits are
            // `call_timeout`.
            timeout: Some(Duration::from_secs(10 * 365 * 24 * 3600)),
            pids: settings.pids,
            open_files: None,
            max_output_bytes: Some(u64::MAX),
            file_size_bytes: None,
        };
        let limits = flags.apply(policy.limits.apply(CallLimits::default()));
        limits.validate().map_err(fail)?;
        out.push(McpServerSpec {
            name: name.clone(),
            transport,
            policy: call_policy,
            limits,
            cwd,
            max_message: size("max_message", &settings.max_message, DEFAULT_MAX_MESSAGE)?,
            max_result: size("max_result", &settings.max_result, DEFAULT_MAX_RESULT)?,
            call_timeout: dur("call_timeout", &settings.call_timeout, DEFAULT_CALL_TIMEOUT)?,
            restart: RestartBudget {
                max: settings.max_restarts.unwrap_or(DEFAULT_MAX_RESTARTS),
                window: dur(
                    "restart_window",
                    &settings.restart_window,
                    DEFAULT_RESTART_WINDOW,
                )?,
            },
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("claude_desktop_config.json");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn the_standard_format_is_read_as_is() {
        let (_d, path) = write(
            r#"{"mcpServers": {
                "fs": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"],
                       "env": {"DEBUG": "1"}, "alwaysAllow": ["read_file"]},
                "remote": {"url": "https://example.invalid/mcp", "headers": {"X-Team": "a"}, "type": "http"}
            }, "globalShortcut": "Ctrl+Space"}"#,
        );
        let servers = load_servers_file(&path).unwrap();
        assert_eq!(servers["fs"].args.len(), 3);
        assert_eq!(
            servers["remote"].url.as_deref(),
            Some("https://example.invalid/mcp")
        );
        // A remote server under `untrusted` (no network) is refused…
        let e = specs(&PolicySet::default(), &servers, None).unwrap_err();
        assert!(
            e.contains("server \"remote\"") && e.contains("no network"),
            "{e}"
        );
        // …and runs under a policy with network.
        let mut set = PolicySet::default();
        set.servers.insert(
            "remote".into(),
            ServerSettings {
                policy: Some("trusted".into()),
                ..ServerSettings::default()
            },
        );
        let specs = specs(&set, &servers, None).unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(
            specs[0].policy.name, "untrusted",
            "mcp_policy is the default"
        );
        assert_eq!(specs[0].restart.max, DEFAULT_MAX_RESTARTS);
    }

    #[test]
    fn bad_files_name_the_line_and_the_field() {
        let (_d, path) = write("{\"mcpServers\": {\n  \"fs\": {\"command\": 3}\n}}");
        let e = load_servers_file(&path).unwrap_err();
        assert!(
            e.contains("claude_desktop_config.json") && e.contains("line 2"),
            "{e}"
        );
        assert!(e.contains("mcpServers.fs.command"), "{e}");
    }

    #[test]
    fn a_server_with_neither_command_nor_url_is_named() {
        let (_d, path) = write(r#"{"mcpServers": {"odd": {"args": []}}}"#);
        let servers = load_servers_file(&path).unwrap();
        let e = specs(&PolicySet::default(), &servers, None).unwrap_err();
        assert!(e.contains("server \"odd\"") && e.contains("neither"), "{e}");
    }
}
