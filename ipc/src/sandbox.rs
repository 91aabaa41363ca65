//! The sandbox a worker builds around itself and its tool, as sent in
//! [`Invoke`](crate::Invoke), and what the worker reports back about it.
//!
//! The host resolves a named policy into a [`SandboxSpec`]: absolute paths,
//! no `~`, no globs. The worker applies it to itself before it runs anything
//! of the tool, and answers with one [`MechanismState`] per mechanism in
//! [`Confinement`](crate::Confinement), so a mechanism the kernel lacks is
//! named in the outcome instead of silently missing.

use serde::{Deserialize, Serialize};

/// What the worker must enforce. `None` in `Invoke` means the `trusted`
/// policy: limits only, no sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// The policy's name, for messages.
    pub policy: String,
    /// `None`: the filesystem is not restricted.
    pub filesystem: Option<FsRules>,
    pub network: NetworkMode,
    /// PID, IPC and UTS namespaces: the tool's processes cannot see or
    /// signal anything outside the call, and die with its first process.
    pub isolate_processes: bool,
    /// A seccomp filter denying the syscalls no tool needs (ptrace, bpf,
    /// mount, module loading, TIOCSTI, …).
    pub seccomp: bool,
    pub on_missing: OnMissing,
}

/// Filesystem access, as absolute paths. Read implies execute.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FsRules {
    pub read: Vec<String>,
    pub write: Vec<String>,
    /// Never readable or writable, even beneath a read or write root.
    pub deny: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetworkMode {
    /// No network at all, loopback included.
    None,
    /// Only a private loopback interface, not the host's.
    Loopback,
    /// The host's network.
    Full,
}

impl NetworkMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Loopback => "loopback",
            Self::Full => "full",
        }
    }
}

/// What happens when the kernel lacks a mechanism the policy asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OnMissing {
    /// Refuse to run the tool; the error names the missing mechanism.
    Require,
    /// Run, and record exactly what was not enforced.
    BestEffort,
}

impl OnMissing {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Require => "require",
            Self::BestEffort => "best-effort",
        }
    }
}

/// One mechanism of the sandbox, as the worker found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MechanismState {
    /// Stable name, e.g. `landlock_fs`, `net_ns`, `seccomp`.
    pub mechanism: String,
    /// The policy asked for what this mechanism provides.
    pub requested: bool,
    /// The mechanism is in force for the tool.
    pub enforced: bool,
    /// What it does, or why it is not in force (errno, ABI, sysctl).
    pub detail: String,
}
