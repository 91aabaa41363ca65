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

/// Under network `none`, `socket()` works for these families only: a tool
/// still gets Unix sockets (its own IPC, `socketpair`, local daemons it may
/// reach by path) and a route netlink socket, which `getifaddrs` (Node's
/// `os.networkInterfaces`, glibc's `AI_ADDRCONFIG`) opens to list
/// interfaces. Reading interfaces and routes shows nothing `/sys/class/net`
/// does not, and changing them needs `CAP_NET_ADMIN` in the host's network
/// namespace, which no worker has. Every other family (Internet, packet,
/// vsock, `AF_ALG` and the rest of the kernel's socket surface) is refused.
const ALLOWED_FAMILY: u64 = libc::AF_UNIX as u64;
const NETLINK: u64 = libc::AF_NETLINK as u64;
const NETLINK_ROUTE: u64 = libc::NETLINK_ROUTE as u64;

/// The allowlist in the words of reports and `doctor`.
pub const SOCKET_ALLOWLIST: &str =
    "socket() refused for every family but AF_UNIX and route netlink";

/// What the filter covers, for the report.
pub fn describe(socket_allowlist: bool) -> String {
    let names: Vec<&str> = DENIED.iter().map(|(n, _)| *n).collect();
    format!(
        "EPERM for {}; TIOCSTI/TIOCLINUX ioctls; clone with namespace flags{}; clone3 answers \
         ENOSYS so libc falls back to clone{}",
        names.join(" "),
        if socket_allowlist {
            format!("; {SOCKET_ALLOWLIST}")
        } else {
            String::new()
        },
        if cfg!(target_arch = "x86_64") {
            "; x32 system calls answer ENOSYS"
        } else {
            ""
        }
    )
}

/// Installs the filters on every thread of the worker (TSYNC); processes
/// started later inherit them. Needs no_new_privs, which `confine` sets.
/// `socket_allowlist` adds the socket-family allowlist of network `none`.
pub fn install(socket_allowlist: bool) -> Result<(), String> {
    let arch = target_arch()?;
    let main = build_main(arch, socket_allowlist).map_err(|e| format!("seccomp filter: {e}"))?;
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
    seccompiler::apply_filter_all_threads(&clone3).map_err(|e| format!("seccomp (clone3): {e}"))?;
    #[cfg(target_arch = "x86_64")]
    seccompiler::apply_filter_all_threads(&x32_guard())
        .map_err(|e| format!("seccomp (x32): {e}"))?;
    Ok(())
}

fn build_main(
    arch: TargetArch,
    socket_allowlist: bool,
) -> Result<BpfProgram, seccompiler::BackendError> {
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
    if socket_allowlist {
        // A rule denies when all its conditions hold; the rules of one call
        // are alternatives. The family and protocol are `int`s.
        let cond = |arg: u8, op: SeccompCmpOp, value: u64| {
            SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value)
        };
        let other_family = SeccompRule::new(vec![
            cond(0, SeccompCmpOp::Ne, ALLOWED_FAMILY)?,
            cond(0, SeccompCmpOp::Ne, NETLINK)?,
        ])?;
        let other_netlink = SeccompRule::new(vec![
            cond(0, SeccompCmpOp::Eq, NETLINK)?,
            cond(2, SeccompCmpOp::Ne, NETLINK_ROUTE)?,
        ])?;
        rules.insert(libc::SYS_socket, vec![other_family, other_netlink]);
        rules.insert(
            libc::SYS_socketpair,
            vec![SeccompRule::new(vec![cond(
                0,
                SeccompCmpOp::Ne,
                ALLOWED_FAMILY,
            )?])?],
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

/// x32 system calls: x86_64's arch value with bit 30 set in the number. The
/// filters above match numbers exactly, so on a kernel built with x32 a
/// denied call would get through under its x32 number; this refuses them
/// all, since nothing bulkhead runs is built for x32. Hand-written because
/// a number *range* is beyond seccompiler's rules. Other architectures are
/// left to the main filter, which kills them.
#[cfg(target_arch = "x86_64")]
fn x32_guard() -> BpfProgram {
    use seccompiler::sock_filter;
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    // EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE, from <linux/audit.h>.
    const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
    // Offsets in `struct seccomp_data`.
    const NR: u32 = 0;
    const ARCH: u32 = 4;
    let op = |code: u32, jt: u8, jf: u8, k: u32| sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let load = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let ret = libc::BPF_RET | libc::BPF_K;
    vec![
        op(load, 0, 0, ARCH),
        // Not x86_64: skip to the allow.
        op(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            0,
            3,
            AUDIT_ARCH_X86_64,
        ),
        op(load, 0, 0, NR),
        op(
            libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K,
            0,
            1,
            X32_SYSCALL_BIT,
        ),
        op(ret, 0, 0, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
        op(ret, 0, 0, libc::SECCOMP_RET_ALLOW),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `f`'s answer, run in a throwaway child with the filters installed
    /// (the probe's own way to try a mechanism).
    fn filtered(socket_allowlist: bool, f: fn() -> i32) -> i32 {
        let answer = crate::sandbox::probe::in_child(move || {
            nix::sys::prctl::set_no_new_privs().map_err(|e| e.to_string())?;
            install(socket_allowlist)?;
            Ok(f().to_string())
        });
        answer.unwrap().parse().unwrap()
    }

    /// 0 if `socket(family, SOCK_STREAM or DGRAM, protocol)` works, else its errno.
    fn socket_errno(family: i32, ty: i32, protocol: i32) -> i32 {
        // SAFETY: plain syscalls on an fd we own.
        unsafe {
            let fd = libc::socket(family, ty | libc::SOCK_CLOEXEC, protocol);
            if fd < 0 {
                return *libc::__errno_location();
            }
            libc::close(fd);
        }
        0
    }

    #[test]
    fn none_allows_unix_and_route_netlink_sockets_only() {
        let eperm = libc::EPERM;
        type Attempt = fn() -> i32;
        let cases: [(&str, Attempt, i32); 6] = [
            (
                "AF_INET",
                || socket_errno(libc::AF_INET, libc::SOCK_STREAM, 0),
                eperm,
            ),
            (
                "AF_INET6",
                || socket_errno(libc::AF_INET6, libc::SOCK_DGRAM, 0),
                eperm,
            ),
            (
                "AF_PACKET",
                || socket_errno(libc::AF_PACKET, libc::SOCK_DGRAM, 0),
                eperm,
            ),
            (
                "AF_NETLINK/NETLINK_AUDIT",
                || socket_errno(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_AUDIT),
                eperm,
            ),
            (
                "AF_UNIX",
                || socket_errno(libc::AF_UNIX, libc::SOCK_STREAM, 0),
                0,
            ),
            (
                "AF_NETLINK/NETLINK_ROUTE",
                || socket_errno(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE),
                0,
            ),
        ];
        for (name, f, want) in cases {
            assert_eq!(filtered(true, f), want, "socket({name})");
        }
        // Without the allowlist the filter leaves sockets alone.
        let inet = || socket_errno(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert_eq!(
            filtered(false, inet),
            0,
            "socket(AF_INET) without the allowlist"
        );
    }

    #[test]
    fn socketpair_is_unix_only_under_none() {
        fn pair(family: i32) -> i32 {
            let mut fds = [0; 2];
            // SAFETY: fds has room for the pair.
            let rc = unsafe { libc::socketpair(family, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) };
            if rc < 0 {
                // SAFETY: reads this thread's errno.
                return unsafe { *libc::__errno_location() };
            }
            0
        }
        assert_eq!(filtered(true, || pair(libc::AF_UNIX)), 0);
        assert_eq!(filtered(true, || pair(libc::AF_INET)), libc::EPERM);
    }

    /// The guard, run by a small interpreter of the instructions it uses:
    /// on a kernel without x32, a real x32 call answers ENOSYS with or
    /// without it, so only the program itself can show its jumps are right.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_x32_guard_refuses_x32_numbers_only() {
        fn run(prog: &[seccompiler::sock_filter], nr: u32, arch: u32) -> u32 {
            let (mut pc, mut acc) = (0usize, 0u32);
            loop {
                let i = &prog[pc];
                let code = u32::from(i.code);
                pc += 1;
                match code {
                    c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => {
                        acc = if i.k == 0 { nr } else { arch };
                    }
                    c if c == libc::BPF_RET | libc::BPF_K => return i.k,
                    c => {
                        let taken = if c == libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K {
                            acc == i.k
                        } else if c == libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K {
                            acc >= i.k
                        } else {
                            panic!("unexpected instruction {code:#x}")
                        };
                        pc += usize::from(if taken { i.jt } else { i.jf });
                    }
                }
            }
        }
        let prog = x32_guard();
        let x86_64 = 62 | 0x8000_0000 | 0x4000_0000;
        let enosys = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
        let getpid = libc::SYS_getpid as u32;
        assert_eq!(run(&prog, getpid, x86_64), libc::SECCOMP_RET_ALLOW);
        assert_eq!(run(&prog, 0x4000_0000 | getpid, x86_64), enosys);
        // i386 (int 0x80) is the main filter's to kill, not this one's.
        assert_eq!(
            run(&prog, 0x4000_0000 | getpid, 3 | 0x4000_0000),
            libc::SECCOMP_RET_ALLOW
        );
        // And the kernel takes it.
        let getpid_works = || {
            // SAFETY: a syscall without arguments.
            i32::from(unsafe { libc::syscall(libc::SYS_getpid) } <= 0)
        };
        assert_eq!(filtered(false, getpid_works), 0);
    }
}
