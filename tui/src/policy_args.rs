//! From `bulkhead run`'s flags and the config file to one call's policy,
//! limits and working directory.

use std::path::PathBuf;

use bulkhead_host::policy::{PolicyError, PolicyLimits, ResolveContext, policy_cwd, resolve};
use bulkhead_host::{CallLimits, CallPolicy, PolicySet};

use crate::cli::RunArgs;

/// What a call runs under.
pub struct Chosen {
    pub policy: CallPolicy,
    pub limits: CallLimits,
    pub cwd: PathBuf,
}

/// Resolves the policy `args` name (or the configured default) and lays the
/// command line's limits over the policy's. Errors name the flag, file or
/// path at fault.
pub fn choose(args: &RunArgs, config: Option<&std::path::Path>) -> Result<Chosen, String> {
    let set = PolicySet::load(config).map_err(|e| e.to_string())?;
    let name = args.policy.as_deref().unwrap_or(&set.tool_default);
    let policy = set.get(name).map_err(|e| match e {
        PolicyError::Unknown { .. } => format!("--policy: {e}"),
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
    let ctx = ResolveContext {
        home,
        workspace: Some(cwd.clone()),
        read: args.allow_read.clone(),
        write: args.allow_write.clone(),
        install_dir: None,
    };
    let call_policy = resolve(policy, &ctx).map_err(|e| e.to_string())?;
    // The command line is laid over the policy, as the policy is over the
    // defaults.
    let flags = PolicyLimits {
        memory_bytes: args.memory,
        cpu: args.cpu.map(std::time::Duration::from_secs),
        timeout: args.timeout,
        pids: args.pids,
        open_files: None,
        max_output_bytes: args.max_output,
        file_size_bytes: args.max_file_size,
    };
    let mut limits = flags.apply(policy.limits.apply(CallLimits::default()));
    limits.tail_bytes = args.tail;
    limits.address_space_bytes = args.address_space;
    limits.validate()?;
    Ok(Chosen {
        policy: call_policy,
        limits,
        cwd,
    })
}
