//! Killing and reaping everything the tool started.
//!
//! The worker is a child subreaper (see `confine`), so every descendant,
//! including one that double-forked and called `setsid`, stays in the
//! worker's process tree until it is reaped. Walking `/proc` from our own pid
//! therefore finds the whole call.
//!
//! # Caveats
//! - This is the worker's own clean-up, for the normal end of a call, a
//!   cancel, and host death. The host does not trust it: it kills the call
//!   through the cgroup (or its own tree walk) whatever the worker does.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;

/// How long teardown keeps killing before it gives up. A fork bomb under the
/// pids cap is stopped in a few passes; far longer than that means something
/// refuses to die (uninterruptible sleep), and the host's cgroup takes over.
const TEARDOWN_BUDGET: Duration = Duration::from_secs(2);

/// True if this process has any child, live or zombie. As a subreaper the
/// worker is the parent of every orphan of the call, so no child means no
/// descendant at all, and the `/proc` walk (which grows with every process
/// on the machine) can be skipped. That is the common case for the tools
/// that run inside the worker.
fn has_children() -> bool {
    // SAFETY: waitid with WNOWAIT only inspects; a zeroed siginfo is valid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | libc::WSTOPPED | libc::WCONTINUED | libc::WNOHANG | libc::WNOWAIT;
    let rc = unsafe { libc::waitid(libc::P_ALL, 0, &mut info, flags) };
    !(rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD))
}

/// Pids of every live descendant of this process.
pub fn descendants() -> Vec<i32> {
    if !has_children() {
        return Vec::new();
    }
    let me = std::process::id() as i32;
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for entry in dir.filter_map(Result::ok) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if let Some(ppid) = parent_of(pid) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut out = Vec::new();
    let mut stack = vec![me];
    while let Some(p) = stack.pop() {
        if let Some(kids) = children.get(&p) {
            out.extend_from_slice(kids);
            stack.extend_from_slice(kids);
        }
    }
    out
}

/// The ppid field of /proc/PID/stat. The command name may hold spaces and
/// parentheses, so parse from the last ')'.
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let _state = fields.next()?;
    fields.next()?.parse().ok()
}

/// Reaps every exited child without blocking. Returns how many.
pub fn reap_exited() -> usize {
    let mut n = 0;
    while let Ok(status) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        if matches!(status, nix::sys::wait::WaitStatus::StillAlive) {
            break;
        }
        n += 1;
    }
    n
}

/// Kills every descendant and reaps them. Stops them first so a process
/// that forks in a loop cannot add children faster than we kill.
pub fn kill_descendants() {
    let deadline = Instant::now() + TEARDOWN_BUDGET;
    loop {
        reap_exited();
        let pids = descendants();
        if pids.is_empty() || Instant::now() > deadline {
            return;
        }
        for &pid in &pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGSTOP);
        }
        for &pid in &pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Sends SIGKILL to every descendant without reaping, so it is safe from any
/// thread while the main thread still waits on the tool's direct child.
pub fn signal_descendants() {
    for pid in descendants() {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// Makes a child the worker starts die with the worker (SIGKILL on its
/// parent's death), for the case where the worker is killed before its
/// teardown can run.
pub fn die_with_worker(cmd: &mut std::process::Command) {
    // SAFETY: only prctl, which is async-signal-safe, between fork and
    // exec. The worker is small, so the fork this forces is cheap; the rule
    // against pre_exec is for the host.
    #[cfg(target_os = "linux")]
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // Elsewhere there is no parent-death signal; the worker's teardown and
    // the host's tree kill are what stop the child.
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}
