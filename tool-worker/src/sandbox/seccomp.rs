//! The seccomp filter: syscalls no tool needs, which are the usual ways
//! out of a sandbox or into the kernel's attack surface.
//!
//! Denied calls fail with `EPERM` rather than killing the process, so a
//! tool that merely probes (a runtime checking for io_uring, a shell
//! trying `unshare`) degrades instead of crashing, and the escape tests can
//! tell *which* barrier stopped an attempt.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Denied whatever their arguments.
const DENIED: &[(&str, libc::c_long)] = &[
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("bpf", libc::SYS_bpf),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("move_mount", libc::SYS_move_mount),
    ("open_tree", libc::SYS_open_tree),
    ("fsopen", libc::SYS_fsopen),
    ("fsmount", libc::SYS_fsmount),
    ("fsconfig", libc::SYS_fsconfig),
    ("fspick", libc::SYS_fspick),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("unshare", libc::SYS_unshare),
    ("setns", libc::SYS_setns),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("reboot", libc::SYS_reboot),
    ("acct", libc::SYS_acct),
    ("quotactl", libc::SYS_quotactl),
    ("syslog", libc::SYS_syslog),
];

/// `clone` flags that create namespaces: a tool must not build a sandbox
/// of its own, with fresh capabilities inside, out of the kernel's less
/// audited paths.
const NAMESPACE_FLAGS: &[u64] = &[
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWCGROUP as u64,
];

/// Terminal ioctls that push input into, or act on, a terminal.
// The request type is `c_ulong` on glibc and `c_int` on musl: the cast is
// a no-op only here.
#[allow(clippy::unnecessary_cast)]
const DENIED_IOCTLS: &[u64] = &[libc::TIOCSTI as u64, libc::TIOCLINUX as u64];

/// Socket families refused when the network namespace is missing and the
/// policy says `none`: the fallback the issue names.
const DENIED_FAMILIES: &[u64] = &[
    libc::AF_INET as u64,
    libc::AF_INET6 as u64,
    libc::AF_PACKET as u64,
];

/// What the filter covers, for the report.
pub fn describe(deny_inet: bool) -> String {
    let names: Vec<&str> = DENIED.iter().map(|(n, _)| *n).collect();
    format!(
        "EPERM for {}; TIOCSTI/TIOCLINUX ioctls; clone with namespace flags{}; clone3 answers ENOSYS so libc falls back to clone",
        names.join(" "),
        if deny_inet {
            "; socket(AF_INET, AF_INET6, AF_PACKET)"
        } else {
            ""
        }
    )
}

/// Installs the filters on every thread of the worker (TSYNC); processes
/// started later inherit them. Needs no_new_privs, which `confine` sets.
pub fn install(deny_inet: bool) -> Result<(), String> {
    let arch = target_arch()?;
    let main = build_main(arch, deny_inet).map_err(|e| format!("seccomp filter: {e}"))?;
    // clone3 passes its flags in memory, out of a filter's reach, so it is
    // refused as if the kernel lacked it; libc then uses clone, whose flags
    // the main filter checks.
    let clone3 = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .and_then(BpfProgram::try_from)
    .map_err(|e| format!("seccomp clone3 filter: {e}"))?;
    seccompiler::apply_filter_all_threads(&main).map_err(|e| format!("seccomp: {e}"))?;
    seccompiler::apply_filter_all_threads(&clone3).map_err(|e| format!("seccomp (clone3): {e}"))
}

fn build_main(arch: TargetArch, deny_inet: bool) -> Result<BpfProgram, seccompiler::BackendError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        DENIED.iter().map(|(_, nr)| (*nr, Vec::new())).collect();
    let masked = |arg: u8, bit: u64| {
        SeccompCondition::new(
            arg,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(bit),
            bit,
        )
        .and_then(|c| SeccompRule::new(vec![c]))
    };
    let equal = |arg: u8, len: SeccompCmpArgLen, value: u64| {
        SeccompCondition::new(arg, len, SeccompCmpOp::Eq, value)
            .and_then(|c| SeccompRule::new(vec![c]))
    };
    rules.insert(
        libc::SYS_clone,
        NAMESPACE_FLAGS
            .iter()
            .map(|&f| masked(CLONE_FLAGS_ARG, f))
            .collect::<Result<_, _>>()?,
    );
    rules.insert(
        libc::SYS_ioctl,
        DENIED_IOCTLS
            .iter()
            .map(|&req| equal(1, SeccompCmpArgLen::Dword, req))
            .collect::<Result<_, _>>()?,
    );
    if deny_inet {
        rules.insert(
            libc::SYS_socket,
            DENIED_FAMILIES
                .iter()
                .map(|&fam| equal(0, SeccompCmpArgLen::Dword, fam))
                .collect::<Result<_, _>>()?,
        );
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )?;
    BpfProgram::try_from(filter)
}

/// `clone`'s flags are its first argument on the architectures seccompiler
/// supports.
const CLONE_FLAGS_ARG: u8 = 0;

fn target_arch() -> Result<TargetArch, String> {
    TargetArch::try_from(std::env::consts::ARCH).map_err(|_| {
        format!(
            "seccomp: no filter for architecture {}",
            std::env::consts::ARCH
        )
    })
}
