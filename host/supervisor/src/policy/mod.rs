//! Sandbox policies: what a tool or an MCP server may touch.
//!
//! A [`Policy`] is what the user names: a preset ([`preset`], `--policy
//! untrusted`) or a `[policies.NAME]` table of the config file, which the
//! `bulkhead-config` crate reads into a `Policy`. [`resolve()`] turns it,
//! for one call, into a [`CallPolicy`]: absolute, canonical paths and a
//! [`SandboxSpec`] the worker can apply without judgement. The worker then
//! reports, mechanism by mechanism, what it could enforce
//! ([`crate::Enforcement::sandbox`]).
//!
//! **Architecture invariant:** the host only *describes* the sandbox. No
//! namespace, Landlock rule or seccomp filter is ever made in the host
//! process, which must stay free to supervise.

mod lenient;
mod presets;
mod resolve;

use std::time::Duration;

use bulkhead_ipc::{NetworkMode, OnMissing, SandboxSpec};

use crate::limits::CallLimits;

pub(crate) use presets::{HOME_SECRETS, SYSTEM_SECRETS};
pub use presets::{PRESET_NAMES, preset};
pub use resolve::{ResolveContext, policy_cwd, resolve};

/// A named sandbox policy, as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// The name it is known by (`untrusted`, a `[policies.NAME]` table).
    pub name: String,
    /// What the tool may read and write.
    pub filesystem: FsPolicy,
    /// What network the tool sees.
    pub network: NetworkMode,
    /// Hosts the tool may reach through bulkhead's egress proxy. Not empty:
    /// the tool's network is [`NetworkMode::Proxied`] whatever `network`
    /// says, since the list can only narrow what it reaches.
    pub allow_net: bulkhead_egress::AllowList,
    /// Variables passed from the host's environment; `None` is the host's
    /// default allowlist.
    pub env: Option<Vec<String>>,
    /// Limits the policy sets, over bulkhead's defaults.
    pub limits: PolicyLimits,
    /// Working directory (`~/` allowed); `None` is the caller's.
    pub cwd: Option<String>,
    /// The tool runs in a PID namespace of its own, where it cannot see or
    /// signal the host's processes.
    pub isolate_processes: bool,
    /// A seccomp filter denies the tool the system calls no tool needs.
    pub seccomp: bool,
    /// What the worker does when this machine lacks a mechanism the policy
    /// asks for: refuse the call, or run and say what was not enforced.
    pub on_missing: OnMissing,
}

/// Filesystem access. Paths may start with `~/`.
#[derive(Debug, Clone, PartialEq)]
pub enum FsPolicy {
    /// No filesystem rules: whatever the user running bulkhead may touch.
    Unrestricted,
    /// Only what is listed, and never the secrets.
    Restricted {
        /// Read all of `/` except what is denied.
        read_everything: bool,
        /// Read the system directories: programs, libraries, `/etc` (less
        /// its secrets), `/dev`, `/proc`, `/sys`.
        system: bool,
        /// The call's working directory is a write root.
        workspace_writable: bool,
        /// Further directories the tool may read.
        read: Vec<String>,
        /// Further directories the tool may write (and read).
        write: Vec<String>,
        /// Denied on top of the built-in secrets (`/etc/shadow`, `~/.ssh`,
        /// cloud credentials, browser profiles…) and `.env` files.
        deny: Vec<String>,
    },
}

/// Limits a policy sets; each `None` keeps bulkhead's default, and a
/// command-line flag overrides either.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyLimits {
    /// [`CallLimits::memory_bytes`].
    pub memory_bytes: Option<u64>,
    /// [`CallLimits::cpu`].
    pub cpu: Option<Duration>,
    /// [`CallLimits::timeout`].
    pub timeout: Option<Duration>,
    /// [`CallLimits::pids`].
    pub pids: Option<u64>,
    /// [`CallLimits::open_files`].
    pub open_files: Option<u64>,
    /// [`CallLimits::max_output_bytes`].
    pub max_output_bytes: Option<u64>,
    /// RLIMIT_FSIZE: the largest file a tool may write.
    pub file_size_bytes: Option<u64>,
}

impl PolicyLimits {
    /// `base` with this policy's limits laid over it.
    pub fn apply(&self, mut base: CallLimits) -> CallLimits {
        if let Some(v) = self.memory_bytes {
            base.memory_bytes = v;
        }
        if self.cpu.is_some() {
            base.cpu = self.cpu;
        }
        if let Some(v) = self.timeout {
            base.timeout = v;
        }
        if let Some(v) = self.pids {
            base.pids = v;
        }
        if let Some(v) = self.open_files {
            base.open_files = v;
        }
        if let Some(v) = self.max_output_bytes {
            base.max_output_bytes = v;
        }
        if let Some(v) = self.file_size_bytes {
            base.file_size_bytes = v;
        }
        base
    }
}

impl Policy {
    /// The policy in one line, as `bulkhead doctor` and every outcome show it.
    pub fn explain(&self) -> String {
        let fs = match &self.filesystem {
            FsPolicy::Unrestricted => "filesystem unrestricted".to_owned(),
            FsPolicy::Restricted {
                read_everything,
                system,
                workspace_writable,
                read,
                write,
                deny,
            } => {
                let reads = if *read_everything {
                    "reads everything".to_owned()
                } else {
                    let mut parts = Vec::new();
                    if *system {
                        parts.push("the system".to_owned());
                    }
                    parts.push("its install dir and declared roots".to_owned());
                    if !read.is_empty() {
                        parts.push(read.join(", "));
                    }
                    format!("reads only {}", parts.join(", "))
                };
                let mut writes = vec!["a private temp dir".to_owned()];
                if *workspace_writable {
                    writes.insert(0, "the workspace".to_owned());
                }
                writes.push("declared write roots".to_owned());
                writes.extend(write.iter().cloned());
                format!(
                    "{reads} but secrets ({} paths and .env files{}); writes only {}",
                    SYSTEM_SECRETS.len() + HOME_SECRETS.len(),
                    if deny.is_empty() {
                        String::new()
                    } else {
                        format!(", plus {}", deny.join(", "))
                    },
                    writes.join(", ")
                )
            }
        };
        let env = match &self.env {
            Some(names) => format!("env {}", names.join(" ")),
            None => "env: the default allowlist".to_owned(),
        };
        let network = if self.allow_net.is_empty() {
            format!("network {}", self.network.as_str())
        } else {
            let hosts: Vec<String> = self
                .allow_net
                .rules()
                .iter()
                .map(|r| r.to_string())
                .collect();
            format!(
                "network only to {} through the egress proxy",
                hosts.join(", ")
            )
        };
        let mut parts = vec![fs, network];
        if self.isolate_processes {
            parts.push("own PID namespace".into());
        }
        if self.seccomp {
            parts.push("seccomp".into());
        }
        parts.push(env);
        if self.is_trusted() {
            parts.insert(0, "no sandbox, limits only".into());
        } else {
            parts.push(format!(
                "when a mechanism is missing: {}",
                self.on_missing.as_str()
            ));
        }
        format!("{}: {}", self.name, parts.join("; "))
    }

    /// Limits only: nothing for the worker to build.
    pub fn is_trusted(&self) -> bool {
        self.filesystem == FsPolicy::Unrestricted
            && self.network == NetworkMode::Full
            && self.allow_net.is_empty()
            && !self.isolate_processes
            && !self.seccomp
    }
}

/// One call's policy, resolved: what the host passes to the worker.
#[derive(Debug, Clone, PartialEq)]
pub struct CallPolicy {
    /// The name of the policy it came from, for reports.
    pub name: String,
    /// [`Policy::explain`] of the policy it came from.
    pub explained: String,
    /// `None`: no sandbox (the `trusted` policy).
    pub sandbox: Option<SandboxSpec>,
    /// Variables passed from the host's environment; `None` is the host's
    /// allowlist.
    pub env_allowlist: Option<Vec<String>>,
    /// The host makes a private temp dir for the call, a write root and
    /// `$TMPDIR`, and removes it afterwards.
    pub private_tmp: bool,
    /// The hosts the call may reach: the host runs an egress proxy for the
    /// call, and the sandbox's network is [`NetworkMode::Proxied`].
    pub egress: Option<bulkhead_egress::AllowList>,
}

impl Default for CallPolicy {
    /// The `trusted` policy: limits only. What a [`crate::CallRequest`]
    /// gets when the caller names no policy.
    fn default() -> Self {
        let trusted = presets::trusted();
        Self {
            name: trusted.name.clone(),
            explained: trusted.explain(),
            sandbox: None,
            env_allowlist: None,
            private_tmp: false,
            egress: None,
        }
    }
}

/// A policy that cannot be found or resolved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// No policy has this name.
    #[error("unknown policy \"{name}\"; the policies are: {known}")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The names there are, as a list for people.
        known: String,
    },
    /// A path of the policy or the call cannot be used: it does not exist,
    /// is not UTF-8, or starts with `~` while `$HOME` is not set.
    #[error("{what} {path}: {message}")]
    Path {
        /// What the path is (`working directory`, `read root`…).
        what: &'static str,
        /// The path as given.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// An allow list on a policy with no sandbox: nothing would keep the
    /// tool from going around the proxy.
    #[error(
        "policy \"{policy}\" has no sandbox, so an allow list (--allow-net, allow_net) cannot be enforced; use a sandboxed policy such as untrusted or workspace"
    )]
    EgressWithoutSandbox {
        /// The policy's name.
        policy: String,
    },
}
