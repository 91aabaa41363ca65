//! From the sandbox flags and the config file to one call's policy, limits
//! and working directory; shared by `bulkhead run` and `bulkhead mcp wrap`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bulkhead_config::{Config, ConfigError};
use bulkhead_host::policy::{PolicyLimits, ResolveContext, policy_cwd, resolve};
use bulkhead_host::{CallLimits, CallPolicy};

use crate::cli::SandboxArgs;

/// What a call runs under.
pub struct Chosen {
    pub policy: CallPolicy,
    pub limits: CallLimits,
    pub cwd: PathBuf,
    /// The config file's `worker` key.
    pub worker: Option<PathBuf>,
}

/// Which configured default applies when `--policy` is not given.
#[derive(Debug, Clone, Copy)]
pub enum Use {
    Tool,
    Mcp,
}

/// What the caller adds beyond the shared flags.
#[derive(Debug, Default)]
pub struct Extra {
    pub timeout: Option<Duration>,
    pub max_output: Option<u64>,
    /// Read roots the command itself needs (an MCP server's install dir).
    pub install_dirs: Vec<PathBuf>,
    /// A host the call needs under a sandboxed policy (a remote server's
    /// own, for `mcp wrap --url`); a policy without a sandbox has the
    /// network already, and gets no rule.
    pub needs_host: Option<bulkhead_egress::AllowRule>,
}

/// Resolves the policy the flags name (or the configured default) and
/// lays the command line's limits over the policy's. Errors name the flag,
/// file or path at fault.
pub fn choose(
    args: &SandboxArgs,
    extra: Extra,
    usage: Use,
    config: Option<&Path>,
) -> Result<Chosen, String> {
    let set = Config::load(config).map_err(|e| e.to_string())?;
    let default = match usage {
        Use::Tool => &set.tool_default,
        Use::Mcp => &set.mcp_default,
    };
    let name = args.policy.as_deref().unwrap_or(default);
    let policy = set.get(name).map_err(|e| match e {
        ConfigError::UnknownPolicy { .. } => format!("--policy: {e}"),
        other => other.to_string(),
    })?;
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_absolute());
    let cwd = match &args.cwd {
        Some(c) => c.clone(),
        None => match policy_cwd(policy, home.as_deref()).map_err(|e| e.to_string())? {
            Some(c) => c,
            None => std::env::current_dir()
                .map_err(|e| format!("cannot read the current directory: {e}"))?,
        },
    };
    if !cwd.is_dir() {
        let flag = if args.cwd.is_some() {
            "--cwd"
        } else {
            "working directory"
        };
        return Err(format!("{flag} {}: not a directory", cwd.display()));
    }
    let mut read = args.allow_read.clone();
    read.extend(extra.install_dirs);
    let mut allow_net = args.allow_net.clone();
    if let (Some(rule), false) = (extra.needs_host, policy.is_trusted()) {
        allow_net.push(rule);
    }
    let ctx = ResolveContext {
        allow_net: bulkhead_egress::AllowList::new(allow_net),
        home,
        workspace: Some(cwd.clone()),
        read,
        write: args.allow_write.clone(),
        install_dir: None,
    };
    let call_policy = resolve(policy, &ctx).map_err(|e| e.to_string())?;
    // The command line is laid over the policy, as the policy is over the
    // defaults.
    let flags = PolicyLimits {
        memory_bytes: args.memory,
        cpu: args.cpu.map(Duration::from_secs),
        timeout: extra.timeout,
        pids: args.pids,
        open_files: None,
        max_output_bytes: extra.max_output,
        file_size_bytes: args.max_file_size,
    };
    let mut limits = flags.apply(policy.limits.apply(CallLimits::default()));
    limits.address_space_bytes = args.address_space;
    Ok(Chosen {
        policy: call_policy,
        limits,
        cwd,
        worker: set.worker.clone(),
    })
}
