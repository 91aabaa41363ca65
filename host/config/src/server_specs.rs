//! From the configured servers to ready-to-start [`McpServerSpec`]s: the
//! `mcpServers` entries ([`crate::servers`]) laid over the config's
//! policies and `[servers.NAME]` settings ([`Config`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bulkhead_egress::{AllowList, AllowRule};
use bulkhead_host::limits::CallLimits;
use bulkhead_host::policy::{ResolveContext, resolve};
use bulkhead_host::units::{UnitError, parse_duration, parse_size};

use crate::servers::{McpServerSpec, RestartBudget, ServerEntry, Transport};
use crate::{Config, ConfigError};

/// The MCP spec's default stdio message size bulkhead enforces: see the
/// worker's relay.
const DEFAULT_MAX_MESSAGE: u64 = 4 << 20;
/// A `tools/call` result above this is cut: bulkhead's default output cap.
const DEFAULT_MAX_RESULT: u64 = 1 << 20;
/// bulkhead's default tool-call time limit.
const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(300);
/// The default restart budget: see [`RestartBudget::DEFAULT`].
const DEFAULT_MAX_RESTARTS: u32 = RestartBudget::DEFAULT.max;
const DEFAULT_RESTART_WINDOW: Duration = RestartBudget::DEFAULT.window;

/// The hosts a server may reach: its `allow_net`, and for a remote server
/// under a sandboxed policy, its own URL's host and port. A remote server
/// is reached from the worker, whose network namespace reaches nothing
/// but the egress proxy; a policy without a sandbox already has the
/// host's network, and needs no rule.
fn allow_net(
    policy: &bulkhead_host::Policy,
    entries: &[String],
    transport: &Transport,
) -> Result<AllowList, ConfigError> {
    let mut rules = AllowList::parse(entries)?.rules().to_vec();
    if let (Transport::Http { url, .. }, false) = (transport, policy.is_trusted()) {
        let rule = AllowRule::for_url(url).map_err(|e| ConfigError::BadUrl {
            url: e.url,
            reason: e.reason,
        })?;
        rules.push(rule);
    }
    Ok(AllowList::new(rules))
}

/// What a server's command needs to read (`bulkhead_launch::analyze`):
/// its interpreter's real prefix, its venv, its script's project. A
/// package launcher's package is fetched when its session starts
/// (`bulkhead_mcp::prepare`), which adds what it needs then.
fn launch_reads(command: &[String]) -> Vec<PathBuf> {
    let Ok(env) = bulkhead_launch::LaunchEnv::from_process() else {
        return Vec::new();
    };
    bulkhead_launch::analyze(command, &env)
        .map(|plan| plan.read)
        .unwrap_or_default()
}

/// Where the servers are listed: `explicit`, else the config's
/// `[mcp] servers_file`.
pub fn servers_file(explicit: Option<&Path>, set: &Config, home: Option<&Path>) -> Option<PathBuf> {
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
/// own install dir), its limits. Each error is a
/// [`ConfigError::InServer`].
pub fn specs(
    set: &Config,
    servers: &BTreeMap<String, ServerEntry>,
    home: Option<&Path>,
) -> Result<Vec<McpServerSpec>, ConfigError> {
    let mut out = Vec::new();
    for (name, entry) in servers.iter().filter(|(_, e)| !e.disabled) {
        let fail = |problem: ConfigError| ConfigError::InServer {
            server: name.clone(),
            problem: Box::new(problem),
        };
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
            (Some(_), Some(_)) => return Err(fail(ConfigError::CommandAndUrl)),
            (None, None) => return Err(fail(ConfigError::NoCommandOrUrl)),
        };
        let policy_name = settings.policy.as_deref().unwrap_or(&set.mcp_default);
        let policy = set.get(policy_name).map_err(fail)?;
        let tilde = |p: &String| match (p.strip_prefix("~/"), home) {
            (Some(rest), Some(h)) => h.join(rest),
            _ => PathBuf::from(p),
        };
        let mut read: Vec<PathBuf> = settings.allow_read.iter().map(tilde).collect();
        if let Transport::Stdio { command, .. } = &transport {
            read.extend(launch_reads(command));
        }
        let cwd = settings.cwd.as_ref().or(entry.cwd.as_ref()).map(tilde);
        let ctx = ResolveContext {
            home: home.map(Path::to_path_buf),
            workspace: cwd.clone(),
            read,
            write: settings.allow_write.iter().map(tilde).collect(),
            install_dir: None,
            allow_net: allow_net(policy, &settings.allow_net, &transport).map_err(fail)?,
        };
        let call_policy = resolve(policy, &ctx).map_err(|e| fail(e.into()))?;
        let bad = |key: &str, value: &str, reason: UnitError| {
            fail(ConfigError::BadValue {
                table: None,
                key: key.to_owned(),
                value: value.to_owned(),
                reason,
            })
        };
        let size = |key: &str, v: &Option<String>, default: u64| {
            v.as_deref()
                .map(|s| parse_size(s).map_err(|e| bad(key, s, e)))
                .unwrap_or(Ok(default))
        };
        let dur = |key: &str, v: &Option<String>, default: Duration| {
            v.as_deref()
                .map(|s| parse_duration(s).map_err(|e| bad(key, s, e)))
                .unwrap_or(Ok(default))
        };
        settings.check_limits(name).map_err(fail)?;
        let mut own = settings.limits.to_limits("").map_err(fail)?;
        // A server lives as long as the session; per-call limits are
        // `call_timeout` and `max_result`.
        own.timeout = Some(Duration::from_secs(10 * 365 * 24 * 3600));
        own.max_output_bytes = Some(u64::MAX);
        let limits = own.apply(policy.limits.apply(CallLimits::default()));
        limits.validate().map_err(|e| fail(e.into()))?;
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
            package: None,
            inject: settings.inject.clone(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::servers::{ServerSettings, load_servers_file};

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
        // A remote server under `untrusted` reaches its own host and port,
        // and nothing else, through the egress proxy…
        let sandboxed = specs(&Config::default(), &servers, None).unwrap();
        let remote = sandboxed.iter().find(|s| s.name == "remote").unwrap();
        let allowed: Vec<String> = remote
            .policy
            .egress
            .as_ref()
            .unwrap()
            .rules()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(allowed, ["example.invalid:443"]);
        assert_eq!(
            remote.policy.sandbox.as_ref().unwrap().network,
            bulkhead_ipc::NetworkMode::Proxied
        );
        let fs = sandboxed.iter().find(|s| s.name == "fs").unwrap();
        assert!(fs.policy.egress.is_none(), "a local server gets no network");
        // …and under a policy without a sandbox, it has the network as is.
        let mut set = Config::default();
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
        let e = load_servers_file(&path).unwrap_err().to_string();
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
        let e = specs(&Config::default(), &servers, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("server \"odd\"") && e.contains("neither"), "{e}");
    }

    fn config(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/bulkhead.toml"))
    }

    fn one_server() -> BTreeMap<String, ServerEntry> {
        let entry = serde_json::from_str(r#"{"command": "/bin/true"}"#).unwrap();
        BTreeMap::from([("fs".to_owned(), entry)])
    }

    #[test]
    fn server_limits_are_the_limits_keys_inline() {
        let set = config(
            "[servers.fs]\nmemory = \"512MiB\"\ncpu = \"10m\"\npids = 64\n\
             open_files = 128\nfile_size = \"1GiB\"\n",
        )
        .unwrap();
        let spec = specs(&set, &one_server(), None).unwrap().remove(0);
        assert_eq!(spec.limits.memory_bytes, 512 << 20);
        assert_eq!(spec.limits.cpu, Some(Duration::from_secs(600)));
        assert_eq!(spec.limits.pids, 64);
        assert_eq!(spec.limits.open_files, 128);
        assert_eq!(spec.limits.file_size_bytes, 1 << 30);
        assert_eq!(spec.limits.max_output_bytes, u64::MAX);
    }

    #[test]
    fn server_faults_are_parsed_and_a_bad_one_is_named_at_its_line() {
        let set = config("[servers.fs]\ninject = [\"error:-32000@on:tools/call\", \"kill@2s\"]\n")
            .unwrap();
        let spec = specs(&set, &one_server(), None).unwrap().remove(0);
        let inject: Vec<String> = spec.inject.iter().map(ToString::to_string).collect();
        assert_eq!(inject, ["error:-32000@on:tools/call", "kill@2000ms"]);
        let e = config("[servers.fs]\ninject = [\"explode\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 2")
                && e.contains("inject \"explode\"")
                && e.contains("the faults are"),
            "{e}"
        );
    }

    #[test]
    fn bad_server_settings_name_the_server_and_the_key() {
        let e = config("[servers.fs]\nmemry = \"1G\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 2") && e.contains("unknown field `memry`, expected one of"),
            "{e}"
        );
        for (key, instead) in [("timeout", "call_timeout"), ("output", "max_result")] {
            let e = config(&format!("[servers.fs]\n{key} = \"1m\"\n")).unwrap_err();
            assert!(
                matches!(e.problem(), ConfigError::NotAServerLimit { key: k, .. } if *k == key),
                "{e:?}"
            );
            let e = e.to_string();
            assert!(
                e.contains(&format!("[servers.fs] {key} is not")) && e.contains(instead),
                "{e}"
            );
        }
        let set = config("[servers.fs]\nmemory = \"lots\"\n").unwrap();
        let e = specs(&set, &one_server(), None).unwrap_err();
        let reason = parse_size("lots").unwrap_err();
        assert_eq!(e.to_string(), format!("server \"fs\": memory: {reason}"));
        assert!(
            matches!(e.problem(), ConfigError::BadValue { key, value, .. } if key == "memory" && value == "lots"),
            "{e:?}"
        );
    }
}
