//! Attempts 6-8, 10 and 11: the host's process, from inside the call, and
//! processes that try to outlive or swamp it.

use crate::{Fixture, SECRET_VAR, attempt};
use bulkhead_tests::{marker, pids_with_marker};

/// In its own PID namespace the tool cannot even name the host (ESRCH);
/// Landlock's signal scoping refuses signals that leave the sandbox (EPERM).
#[test]
fn signal_the_host() {
    let fx = Fixture::new();
    let a = attempt(&fx, &["signal_host", "--pid", "HOSTPID"], &[]);
    assert!(a.host_pid > 0);
    a.assert_stopped_by(&["pid_ns", "landlock_scope"], &["ESRCH", "EPERM"]);
}

#[test]
fn ptrace_the_host() {
    let fx = Fixture::new();
    let a = attempt(&fx, &["ptrace_host", "--pid", "HOSTPID"], &[]);
    a.assert_stopped_by(&["seccomp"], &["EPERM"]);
}

/// The secret is in the host's environment. The worker's environment is an
/// allowlist without it, and `/proc/<host>/environ` is closed by Landlock,
/// which refuses ptrace-class access to processes outside the sandbox.
#[test]
fn read_the_hosts_environment() {
    let fx = Fixture::new();
    let a = attempt(
        &fx,
        &["read_environ", "--pid", "HOSTPID", "--secret", SECRET_VAR],
        &[],
    );
    assert_ne!(
        a.probe["stage"], "own_env",
        "the secret reached the tool: {}",
        a.probe
    );
    a.assert_stopped_by(&["landlock_fs"], &["EACCES"]);
}

/// A daemon (double fork + setsid) must not outlive the call: the tool is
/// PID 1 of its namespace, and the cgroup is killed whole besides.
#[test]
fn outlive_the_call() {
    let fx = Fixture::new();
    let mark = marker("escape-outlive");
    let a = attempt(&fx, &["outlive", "--marker", &mark], &[]);
    assert_eq!(a.probe["stage"], "spawned", "{}", a.probe);
    let survivors = pids_with_marker(&mark);
    assert!(survivors.is_empty(), "outlived the call: {survivors:?}");
    println!("| outlive | pid_ns + cgroup kill | nothing survives |");
}

/// The call's pids cap (64 here) stops the bomb; the machine does not
/// notice.
#[test]
fn fork_bomb() {
    let fx = Fixture::new();
    let a = attempt(&fx, &["fork_bomb", "--max", "2000"], &["--pids", "64"]);
    assert!(!a.escaped(), "{}", a.probe);
    assert_eq!(a.probe["stage"], "fork", "{}", a.probe);
    assert_eq!(a.errno_name(), "EAGAIN", "{}", a.probe);
    println!(
        "| fork_bomb | pids cap ({}) | blocked: fork EAGAIN |",
        a.report["enforcement"]["memory"]
    );
}
