//! `bulkhead-worker --probe-sandbox`: which sandbox mechanisms this kernel
//! offers, each tried for real in a throwaway child process, for
//! `bulkhead doctor`.
//!
//! Reading version numbers and sysctls says what *should* work; only trying
//! says what does (a container's seccomp profile, an LSM, or a sysctl can
//! each refuse what the kernel version promises). The sysctls are read
//! afterwards, to say *why* something failed.

use std::io::{Read, Write};

use serde::Serialize;

use super::{caps, fs_rules, namespaces, seccomp};

/// One row of the probe.
#[derive(Debug, Serialize)]
pub struct Probe {
    pub mechanism: &'static str,
    pub available: bool,
    pub detail: String,
}

pub fn run() -> Vec<Probe> {
    let root = nix::unistd::geteuid().is_root();
    // Namespaces as the worker makes them: in a user namespace first, or
    // without one when root may.
    let with_userns = move |f: fn() -> Result<(), String>| {
        move || {
            let user = namespaces::enter_user_ns();
            if let Err(e) = &user
                && !root
            {
                return Err(e.clone());
            }
            f().map(|()| {
                if user.is_ok() {
                    "inside a user namespace"
                } else {
                    "as root, without a user namespace"
                }
                .to_owned()
            })
        }
    };
    let abi = fs_rules::kernel_abi();
    let landlock = |min: i32, what: &str| match &abi {
        Ok(v) if *v >= min => Ok(format!("Landlock ABI {v}: {what}")),
        Ok(v) => Err(format!("Landlock ABI {v} < {min}, which {what} needs")),
        Err(e) => Err(e.clone()),
    };
    let mut rows = vec![
        row(
            "user_ns",
            in_child(|| {
                namespaces::enter_user_ns().map(|()| "unshare(CLONE_NEWUSER) works".into())
            }),
        ),
        row("net_ns", in_child(with_userns(namespaces::enter_net_ns))),
        row(
            "egress_relay",
            in_child(with_userns(egress_namespace_holds)).map(|d| {
                format!(
                    "network proxied: a private lo carries the relay's TCP, nothing else is \
                     routable ({d})"
                )
            }),
        ),
        row(
            "pid_ns",
            in_child(with_userns(namespaces::enter_pid_ipc_uts_ns)),
        ),
        row("capabilities", in_child(caps::drop_all)),
        row("landlock_fs", landlock(1, "filesystem rules")),
        row("landlock_tcp", landlock(4, "TCP bind/connect rules")),
        row(
            "landlock_scope",
            landlock(6, "signal and abstract-socket scoping"),
        ),
        row(
            "seccomp",
            in_child(|| {
                nix::sys::prctl::set_no_new_privs().map_err(|e| format!("no_new_privs: {e}"))?;
                seccomp::install(false)
                    .map(|()| "filters install (EPERM for the denied set)".into())
            }),
        ),
        row("seccomp_net", in_child(socket_allowlist_holds)),
    ];
    for r in &mut rows {
        r.detail = format!(
            "{}{}",
            r.detail,
            if root { "; running as root" } else { "" }
        );
    }
    rows
}

/// Network `none`'s socket allowlist, installed and then tried: an
/// Internet socket must be refused, a Unix one must still work.
fn socket_allowlist_holds() -> Result<String, String> {
    nix::sys::prctl::set_no_new_privs().map_err(|e| format!("no_new_privs: {e}"))?;
    seccomp::install(true)?;
    let inet = std::net::UdpSocket::bind("127.0.0.1:0");
    let unix = std::os::unix::net::UnixDatagram::unbound();
    match (inet, unix) {
        (Err(e), Ok(_)) if e.raw_os_error() == Some(libc::EPERM) => {
            Ok(seccomp::SOCKET_ALLOWLIST.into())
        }
        (inet, unix) => Err(format!(
            "the allowlist does not hold: AF_INET {}, AF_UNIX {}",
            inet.map_or_else(|e| e.to_string(), |_| "allowed".into()),
            unix.map_or_else(|e| e.to_string(), |_| "allowed".into())
        )),
    }
}

/// How long the probe's one outside connect may take. Inside the namespace
/// it fails at once (no route); the bound only matters if it somehow does
/// not, and keeps `doctor` from hanging then.
const OUTSIDE_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Network `proxied`'s namespace as the relay uses it: its own loopback
/// carries a TCP connection, and an outside address (192.0.2.1, TEST-NET-1,
/// never routed anywhere) has no route from it.
fn egress_namespace_holds() -> Result<(), String> {
    namespaces::enter_net_ns()?;
    namespaces::loopback_up()?;
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind on lo: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    std::net::TcpStream::connect(addr).map_err(|e| format!("connect over lo: {e}"))?;
    let outside = std::net::SocketAddr::from(([192, 0, 2, 1], 80));
    match std::net::TcpStream::connect_timeout(&outside, OUTSIDE_CONNECT_TIMEOUT) {
        Err(e) if e.raw_os_error() == Some(libc::ENETUNREACH) => Ok(()),
        Err(e) => Err(format!("192.0.2.1 should have no route, got: {e}")),
        Ok(_) => Err("192.0.2.1 was reachable from the namespace".into()),
    }
}

fn row(mechanism: &'static str, r: Result<String, String>) -> Probe {
    let (available, detail) = match r {
        Ok(d) => (true, d),
        Err(e) => (false, e),
    };
    Probe {
        mechanism,
        available,
        detail,
    }
}

/// Most bytes of one probe's answer; a line of text.
const ANSWER_CAP: u64 = 4096;

/// Runs `f` in a forked child, so whatever it changes (namespaces, filters)
/// dies with the child. The probe process is single-threaded, which is what
/// makes `fork` safe here. The seccomp unit tests also use it from the test
/// harness's threads: glibc's `fork` holds malloc's locks across the fork,
/// and their children only allocate and make system calls.
pub(super) fn in_child(f: impl FnOnce() -> Result<String, String>) -> Result<String, String> {
    let (rx, tx) = nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: the probe runs before any thread exists; the child only makes
    // syscalls and formats a string before it exits.
    match unsafe { nix::unistd::fork() }.map_err(|e| format!("fork: {e}"))? {
        nix::unistd::ForkResult::Child => {
            drop(rx);
            // A panic must end the child here: unwinding further would run
            // the caller's code (a test harness) a second time, in the child.
            let (code, text) = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
                Ok(Ok(t)) => (0, t),
                Ok(Err(e)) => (1, e),
                Err(_) => (1, "the probe panicked".to_owned()),
            };
            let mut tx = std::fs::File::from(tx);
            let _ = tx.write_all(text.as_bytes());
            // SAFETY: leave without running the parent's atexit handlers.
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(tx);
            let mut text = String::new();
            let _ = std::fs::File::from(rx)
                .take(ANSWER_CAP)
                .read_to_string(&mut text);
            let status =
                nix::sys::wait::waitpid(child, None).map_err(|e| format!("waitpid: {e}"))?;
            match status {
                nix::sys::wait::WaitStatus::Exited(_, 0) => Ok(text),
                nix::sys::wait::WaitStatus::Exited(..) => Err(text),
                other => Err(format!("probe child ended with {other:?}")),
            }
        }
    }
}
