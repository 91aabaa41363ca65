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
    /// Where network `proxied` sends the tool's traffic; `None` for every
    /// other mode. A `proxied` call without it gets its private loopback
    /// and nothing else, and the report says the relay is missing.
    ///
    /// Must stay the last field: structs travel as positional arrays, and
    /// a field skipped when `None` keeps the frame of every other mode
    /// byte for byte what it was before this field existed (a test checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<EgressRelay>,
}

/// The host's egress proxy, as network `proxied` reaches it. The host runs
/// an HTTP proxy (plain requests and `CONNECT`) outside the sandbox that
/// applies the policy's allow-list; the worker relays every TCP connection
/// to `127.0.0.1:port` inside the tool's network namespace to that proxy's
/// Unix socket, and points the tool's proxy variables at the relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressRelay {
    /// Absolute path of the proxy's listening Unix socket, shorter than
    /// 108 bytes (`sun_path`). A path, not an abstract name: abstract
    /// sockets belong to a network namespace, and the tool's is not the
    /// host's.
    pub socket_path: String,
    /// Port of the relay on the namespace's own `127.0.0.1`; 0 lets the
    /// kernel pick one. Either way the tool's variables and the report
    /// carry the port actually bound.
    pub port: u16,
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
    /// A private loopback, as `Loopback`, with HTTP and HTTPS out only
    /// through the host's proxy ([`SandboxSpec::egress`]), which decides
    /// by its allow-list; nothing else is routable.
    Proxied,
}

impl NetworkMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Loopback => "loopback",
            Self::Full => "full",
            Self::Proxied => "proxied",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{decode_body, encode_frame};
    use crate::message::{HostMessage, Invoke, WorkerLimits};

    fn spec(network: NetworkMode, egress: Option<EgressRelay>) -> SandboxSpec {
        SandboxSpec {
            policy: "allow-list".into(),
            filesystem: Some(FsRules {
                read: vec!["/usr".into()],
                write: vec![],
                deny: vec![],
            }),
            network,
            isolate_processes: true,
            seccomp: true,
            on_missing: OnMissing::Require,
            egress,
        }
    }

    fn invoke(sandbox: SandboxSpec) -> HostMessage {
        HostMessage::Invoke(Box::new(Invoke {
            call_id: 7,
            tool: "shell".into(),
            args_json: "{}".into(),
            limits: WorkerLimits {
                cpu_seconds: None,
                data_bytes: None,
                address_space_bytes: None,
                open_files: 256,
                file_size_bytes: None,
                processes: None,
                max_output_bytes: 1 << 20,
                stop_at_output_cap: true,
            },
            sandbox: Some(sandbox),
            start_faults: Vec::new(),
        }))
    }

    fn roundtrip(msg: &HostMessage) -> HostMessage {
        let mut frame = Vec::new();
        encode_frame(msg, &mut frame, usize::MAX).unwrap();
        decode_body(&frame[crate::frame::HEADER_BYTES..]).unwrap()
    }

    #[test]
    fn a_proxied_spec_and_its_relay_survive_the_round_trip() {
        for port in [0, 1, 3128, u16::MAX] {
            let msg = invoke(spec(
                NetworkMode::Proxied,
                Some(EgressRelay {
                    socket_path: "/run/user/1000/bulkhead-egress-Xy3/proxy.sock".into(),
                    port,
                }),
            ));
            assert_eq!(roundtrip(&msg), msg, "port {port}");
        }
        assert_eq!(NetworkMode::Proxied.as_str(), "proxied");
    }

    /// The spec as it was before `egress`: six positional fields.
    #[derive(Serialize)]
    struct SpecBefore {
        policy: String,
        filesystem: Option<FsRules>,
        network: NetworkMode,
        isolate_processes: bool,
        seccomp: bool,
        on_missing: OnMissing,
    }

    #[test]
    fn without_a_relay_the_spec_encodes_as_it_did_before_the_field() {
        let new = spec(NetworkMode::Loopback, None);
        let old = SpecBefore {
            policy: new.policy.clone(),
            filesystem: new.filesystem.clone(),
            network: new.network,
            isolate_processes: new.isolate_processes,
            seccomp: new.seccomp,
            on_missing: new.on_missing,
        };
        let old_bytes = rmp_serde::to_vec(&old).unwrap();
        assert_eq!(rmp_serde::to_vec(&new).unwrap(), old_bytes);
        // And the old shape decodes, with no relay.
        let decoded: SandboxSpec = rmp_serde::from_slice(&old_bytes).unwrap();
        assert_eq!(decoded, new);
    }
}
