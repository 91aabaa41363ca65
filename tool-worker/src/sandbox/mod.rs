//! The sandbox: the worker builds it around itself, from a [`SandboxSpec`],
//! after its rlimits and before any thread or tool starts.
//!
//! Order matters, and each step says why it comes where it does.
//! [`begin`] runs while the worker is single-threaded:
//! 1. user namespace, when another namespace follows: the kernel refuses
//!    it to a multi-threaded process, and the later namespaces need no
//!    privilege inside it;
//! 2. network namespace, for `loopback` and `proxied` (with `lo` up), and
//!    for `none` only where the filters of steps 5 and 6 cannot stand in
//!    for it (see `none_by_filters`); for `proxied`, the egress relay's
//!    listener inside it, the tool's proxy variables and the relay's
//!    thread ([`egress`]).
//!
//! The worker then starts its two service threads (signals, host reader),
//! because after step 3 it may start none. [`Pending::finish`] follows:
//! 3. PID, IPC and UTS namespaces, only for a tool that starts processes;
//! 4. capabilities dropped: the namespaces were what they were needed for;
//! 5. Landlock: filesystem rules, TCP for `none` (and for `proxied`
//!    without its namespace), signal and abstract socket scoping;
//! 6. seccomp last, on every thread, since it denies `unshare` itself; for
//!    `none` (and `proxied`) without a namespace, its socket-family
//!    allowlist.
//!
//! `proxied` without its namespace falls back to `none`'s filters: no
//! network at all rather than the host's, and `egress_relay` is reported
//! not in force.
//!
//! # Caveats
//! - Capabilities and Landlock apply to the thread that sets them and to
//!   what it starts later. The two service threads and the egress relay's,
//!   started before, keep the user namespace's capabilities and no
//!   Landlock domain; they run no tool code and start nothing. seccomp
//!   covers them (TSYNC).
//!
//! **Invariant:** a mechanism that was asked for and is not in force is
//! either named in the report (`best-effort`) or refuses the call
//! (`require`). Nothing degrades silently.

#[cfg(target_os = "linux")]
mod caps;
#[cfg(target_os = "linux")]
pub mod egress;
#[cfg(target_os = "linux")]
pub mod fs_rules;
#[cfg(target_os = "linux")]
mod namespaces;
#[cfg(target_os = "linux")]
pub mod probe;
#[cfg(target_os = "linux")]
mod seccomp;

use bulkhead_ipc::{MechanismState, NetworkMode, OnMissing, SandboxSpec};

/// `http://127.0.0.1:PORT` of the egress relay, once one runs (network
/// `proxied`): for the tools that build their own HTTP client or
/// environment rather than inherit the worker's.
static EGRESS_PROXY: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The egress relay's URL, if this call has one.
pub fn egress_proxy() -> Option<&'static str> {
    EGRESS_PROXY.get().map(String::as_str)
}

/// Points `cmd`'s proxy variables at the egress relay, over what the
/// tool's arguments set; nothing without a relay.
pub fn apply_egress_env(cmd: &mut std::process::Command) {
    #[cfg(target_os = "linux")]
    if let Some(url) = egress_proxy() {
        egress::apply_to(cmd, url);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

/// The policy requires mechanisms the kernel does not offer.
#[derive(Debug)]
pub struct Refused {
    pub message: String,
    pub states: Vec<MechanismState>,
}

/// A sandbox half built: namespaces that need a single-threaded worker.
#[derive(Debug)]
pub struct Pending {
    spec: SandboxSpec,
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    spawns_processes: bool,
    /// Paths the tool's arguments name, for [`fs_rules::nearest_rules`].
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    tool_paths: Vec<std::path::PathBuf>,
    states: Vec<MechanismState>,
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    net_ns: bool,
    /// Network `none` rests on the filters, by choice rather than as the
    /// fallback for a missing namespace.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    none_by_filters: bool,
}

/// What the sandbox needs to know of the tool it is built for.
pub struct ToolFacts {
    /// The tool starts programs (`shell`, an MCP server), which then get
    /// PID, IPC and UTS namespaces.
    pub spawns_processes: bool,
    /// Paths its arguments name: see [`fs_rules::nearest_rules`].
    pub paths: Vec<std::path::PathBuf>,
}

/// Builds the part of the sandbox that needs a single-threaded process.
pub fn begin(spec: &SandboxSpec, tool: ToolFacts) -> Pending {
    let mut pending = Pending {
        spawns_processes: tool.spawns_processes,
        tool_paths: tool.paths,
        spec: spec.clone(),
        states: Vec::new(),
        net_ns: false,
        none_by_filters: false,
    };
    build_first(&mut pending);
    pending
}

impl Pending {
    /// Builds the rest. `Ok` carries one state per mechanism; `Err` means
    /// the policy is `require` and something it needs is missing.
    pub fn finish(mut self) -> Result<Vec<MechanismState>, Refused> {
        build_rest(&mut self);
        verdict(&self.spec, self.states)
    }
}

/// `require` refuses when a mechanism the policy asked for is not in
/// force; `best-effort` runs, and the states say what is missing.
fn verdict(
    spec: &SandboxSpec,
    states: Vec<MechanismState>,
) -> Result<Vec<MechanismState>, Refused> {
    let missing: Vec<String> = states
        .iter()
        .filter(|s| s.requested && !s.enforced)
        .map(|s| format!("{} ({})", s.mechanism, s.detail))
        .collect();
    if spec.on_missing == OnMissing::Require && !missing.is_empty() {
        return Err(Refused {
            message: format!(
                "policy \"{}\" requires mechanisms this machine does not offer: {}. Run \
                 `bulkhead doctor` for details, or use a best-effort policy.",
                spec.policy,
                missing.join("; ")
            ),
            states,
        });
    }
    Ok(states)
}

fn state(mechanism: &str, requested: bool, result: Result<String, String>) -> MechanismState {
    let (enforced, detail) = match result {
        Ok(d) => (true, d),
        Err(e) => (false, e),
    };
    MechanismState {
        mechanism: mechanism.to_owned(),
        requested,
        enforced,
        detail,
    }
}

#[cfg(not(target_os = "linux"))]
fn build_first(_: &mut Pending) {}

#[cfg(not(target_os = "linux"))]
fn build_rest(p: &mut Pending) {
    let why = || Err(format!("not available on {}", std::env::consts::OS));
    let spec = &p.spec;
    p.states = vec![
        state("filesystem", spec.filesystem.is_some(), why()),
        state("network", spec.network != NetworkMode::Full, why()),
        state("processes", spec.isolate_processes, why()),
        state("syscalls", spec.seccomp, why()),
    ];
}

/// Landlock ABI that scopes abstract Unix sockets to the sandbox.
#[cfg(target_os = "linux")]
const SCOPE_ABI: i32 = 6;

/// Whether network `none` can rest on the filters alone, without a network
/// namespace: seccomp refuses `socket()` for every family but Unix and
/// route netlink (so no Internet socket exists to use, loopback included,
/// which `none` keeps down anyway), Landlock refuses TCP as a second wall,
/// and Landlock's scoping (ABI 6) keeps the tool from the host's abstract
/// Unix sockets, the one thing a namespace isolated that the filters would
/// not. What the namespace added beyond that was its own `/proc/net`, and
/// without a mount namespace every host process's `/proc/<pid>/net` stays
/// readable either way. The namespace cost ~0.6 ms of kernel time to build
/// and as much again to tear down (in a kworker), on every call.
///
/// A policy that turns seccomp off keeps the namespace.
#[cfg(target_os = "linux")]
fn none_by_filters(spec: &SandboxSpec) -> bool {
    spec.network == NetworkMode::None
        && spec.seccomp
        && fs_rules::kernel_abi().is_ok_and(|abi| abi >= SCOPE_ABI)
}

#[cfg(target_os = "linux")]
fn build_first(p: &mut Pending) {
    let spec = &p.spec;
    p.none_by_filters = none_by_filters(spec);
    let wants_net_ns = spec.network != NetworkMode::Full && !p.none_by_filters;
    // The user namespace is for making the others: a tool that gets none
    // (an in-process one under `none` by filters) is spared it.
    let wants_pid_ns = spec.isolate_processes && p.spawns_processes;
    if wants_net_ns || wants_pid_ns {
        // Without a user namespace root can still unshare; anyone else
        // cannot, and the steps below will say so.
        let note = match namespaces::enter_user_ns() {
            Ok(()) => Ok("own uid and gid mapped to themselves".into()),
            Err(e) if nix::unistd::geteuid().is_root() => Err(format!(
                "{e}; running as root, namespaces are made without it"
            )),
            Err(e) => Err(e),
        };
        p.states.push(state("user_ns", false, note));
    }
    if wants_net_ns {
        let r = namespaces::enter_net_ns().and_then(|()| match spec.network {
            NetworkMode::Loopback => namespaces::loopback_up()
                .map(|()| "private network namespace; only its own lo, up".to_owned()),
            NetworkMode::Proxied => namespaces::loopback_up().map(|()| {
                "private network namespace; only its own lo, up; out only through the egress \
                 relay"
                    .to_owned()
            }),
            _ => Ok("empty network namespace: no interface, lo down".to_owned()),
        });
        p.net_ns = r.is_ok();
        p.states.push(state("net_ns", true, r));
    }
    if spec.network == NetworkMode::Proxied {
        // Last in `begin`: it starts the relay's thread, and everything
        // before needs a single-threaded process.
        let r = if p.net_ns {
            egress::start(spec.egress.as_ref()).map(|started| {
                let detail = egress::describe(&started);
                let _ = EGRESS_PROXY.set(started.url);
                detail
            })
        } else {
            Err("no network namespace to relay from: the tool gets no network at all".into())
        };
        p.states.push(state("egress_relay", true, r));
    }
}

/// No network at all for the tool: network `none`, or `proxied` whose
/// namespace could not be made (never the host's network instead).
#[cfg(target_os = "linux")]
fn no_network(p: &Pending) -> bool {
    match p.spec.network {
        NetworkMode::None => true,
        NetworkMode::Proxied => !p.net_ns,
        NetworkMode::Loopback | NetworkMode::Full => false,
    }
}

#[cfg(target_os = "linux")]
fn build_rest(p: &mut Pending) {
    let deny_tcp = no_network(p);
    let spec = &p.spec;
    let spawns_processes = p.spawns_processes;
    let out = &mut p.states;
    if spec.isolate_processes {
        let r = if spawns_processes {
            namespaces::enter_pid_ipc_uts_ns().map(|()| {
                "PID, IPC and UTS namespaces: the tool is PID 1 of its own tree, which dies with it"
                    .to_owned()
            })
        } else {
            Ok("not needed: this tool runs in the worker and starts no process".to_owned())
        };
        out.push(state("pid_ns", true, r));
    }

    out.push(state("capabilities", true, caps::drop_all()));

    let landlock = fs_rules::restrict(
        spec.filesystem.as_ref(),
        fs_rules::Extras {
            deny_tcp,
            scope: true,
        },
        &p.tool_paths,
    );
    push_landlock(out, spec, &landlock, p.none_by_filters, deny_tcp);

    // No network without a namespace, by choice or because it is missing.
    let socket_allowlist = deny_tcp && !p.net_ns;
    if spec.seccomp || socket_allowlist {
        let r = seccomp::install(socket_allowlist).map(|()| seccomp::describe(socket_allowlist));
        if socket_allowlist {
            let why = if p.none_by_filters {
                "network none without a namespace; Landlock scopes abstract sockets"
            } else {
                "the fallback for a missing network namespace"
            };
            out.push(state(
                "seccomp_net",
                true,
                r.clone()
                    .map(|_| format!("{}: {why}", seccomp::SOCKET_ALLOWLIST)),
            ));
            if let Some(n) = out.iter_mut().find(|s| s.mechanism == "net_ns") {
                // The fallback covers `none`; the namespace is then not a
                // requirement, but its absence stays on record.
                n.requested = r.is_err();
            }
        }
        out.push(state("seccomp", spec.seccomp, r));
    }
}

#[cfg(target_os = "linux")]
fn push_landlock(
    out: &mut Vec<MechanismState>,
    spec: &SandboxSpec,
    ll: &fs_rules::LandlockResult,
    scope_required: bool,
    deny_tcp: bool,
) {
    use landlock::RulesetStatus;
    let in_force = matches!(
        ll.status,
        Ok(RulesetStatus::FullyEnforced | RulesetStatus::PartiallyEnforced)
    );
    let why_not = || match &ll.status {
        Err(e) if !e.is_empty() => e.clone(),
        _ => match fs_rules::kernel_abi() {
            Ok(abi) => format!("Landlock ABI {abi} lacks it"),
            Err(e) => e,
        },
    };
    if let Some(rules) = &spec.filesystem {
        let r = if in_force && ll.abi >= 1 {
            let partial = matches!(ll.status, Ok(RulesetStatus::PartiallyEnforced));
            Ok(format!(
                "Landlock ABI {}{}: {} read rules, {} write rules, {} denied paths carved out{}{}",
                ll.abi,
                if partial {
                    " (partial: rights of newer ABIs missing)"
                } else {
                    ""
                },
                ll.read_rules,
                ll.write_rules,
                rules.deny.len(),
                if ll.tool_rules == 0 {
                    String::new()
                } else {
                    format!(
                        "; {} read rule at the tool's own path (no new access: the kernel's \
                         check of each open stops there)",
                        ll.tool_rules
                    )
                },
                if ll.skipped.is_empty() {
                    String::new()
                } else {
                    format!("; {} roots absent", ll.skipped.len())
                }
            ))
        } else {
            Err(why_not())
        };
        out.push(state("landlock_fs", true, r));
    }
    if deny_tcp {
        let r = if in_force && ll.abi >= 4 {
            Ok("TCP bind and connect refused".to_owned())
        } else {
            Err(why_not())
        };
        // A second wall, for TCP only, behind the namespace or the socket
        // allowlist (`seccomp_net`).
        out.push(state("landlock_tcp", false, r));
    }
    let r = if in_force && ll.abi >= SCOPE_ABI {
        Ok("no signals or abstract Unix sockets to processes outside the sandbox".to_owned())
    } else {
        Err(why_not())
    };
    // An extra wall, unless network `none` rests on it for abstract sockets.
    out.push(state("landlock_scope", scope_required, r));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(on_missing: OnMissing) -> SandboxSpec {
        SandboxSpec {
            policy: "strict".into(),
            filesystem: None,
            network: NetworkMode::None,
            isolate_processes: true,
            seccomp: true,
            on_missing,
            egress: None,
        }
    }

    fn states() -> Vec<MechanismState> {
        vec![
            state("net_ns", true, Err("unshare(CLONE_NEWNET): EPERM".into())),
            state(
                "landlock_scope",
                false,
                Err("Landlock ABI 5 lacks it".into()),
            ),
            state("seccomp", true, Ok("installed".into())),
        ]
    }

    #[test]
    fn require_refuses_naming_the_missing_mechanism_and_why() {
        let refused = verdict(&spec(OnMissing::Require), states()).unwrap_err();
        assert!(
            refused.message.contains("policy \"strict\""),
            "{}",
            refused.message
        );
        assert!(
            refused
                .message
                .contains("net_ns (unshare(CLONE_NEWNET): EPERM)"),
            "{}",
            refused.message
        );
        // Not requested: an extra wall, not a requirement.
        assert!(
            !refused.message.contains("landlock_scope"),
            "{}",
            refused.message
        );
        assert_eq!(refused.states.len(), 3);
    }

    #[test]
    fn best_effort_runs_and_keeps_the_record() {
        let states = verdict(&spec(OnMissing::BestEffort), states()).unwrap();
        assert!(
            states
                .iter()
                .any(|s| s.mechanism == "net_ns" && s.requested && !s.enforced)
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn proxied_without_its_namespace_gets_no_network_rather_than_the_hosts() {
        let mut p = Pending {
            spec: SandboxSpec {
                network: NetworkMode::Proxied,
                ..spec(OnMissing::BestEffort)
            },
            spawns_processes: true,
            tool_paths: Vec::new(),
            states: Vec::new(),
            net_ns: false,
            none_by_filters: false,
        };
        assert!(no_network(&p));
        p.net_ns = true;
        assert!(!no_network(&p));
    }

    #[test]
    fn require_runs_when_only_unrequested_mechanisms_are_missing() {
        let mut s = states();
        s.remove(0);
        assert!(verdict(&spec(OnMissing::Require), s).is_ok());
    }
}
