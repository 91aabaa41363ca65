//! `fork_bomb`: how many processes may the tool make? The sandbox's
//! process limit (RLIMIT_NPROC or a cgroup's pids.max) should stop it with
//! EAGAIN. Every child is killed and reaped before the report, and dies
//! with us if we are killed first, so even an unconfined run leaves nothing.

use crate::args::Args;
use crate::report::{Report, last_errno, strerror};

const DEFAULT_MAX: usize = 2000;
/// A bound on what --max may ask, so a typo cannot bring a machine down.
const HARD_MAX: usize = 10_000;

/// The child's whole life: wait to be killed.
fn child(parent: libc::pid_t) -> ! {
    // SAFETY: prctl/getppid/pause/_exit are async-signal-safe, as a child of
    // fork() requires; the probe is single-threaded here anyway.
    unsafe {
        // Die with the probe even if it is SIGKILLed before cleaning up.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
        // The probe died between fork and prctl: no signal will come.
        if libc::getppid() != parent {
            libc::_exit(0);
        }
        loop {
            libc::pause();
        }
    }
}

/// `fork_bomb [--max N]`
pub fn fork_bomb(args: &Args) -> Result<Report, String> {
    const ATTEMPT: &str = "fork_bomb";
    let max: usize = args.parsed("max")?.unwrap_or(DEFAULT_MAX);
    if max == 0 || max > HARD_MAX {
        return Err(format!("--max {max}: must be between 1 and {HARD_MAX}"));
    }
    // SAFETY: getpid cannot fail.
    let parent = unsafe { libc::getpid() };
    let mut kids: Vec<libc::pid_t> = Vec::with_capacity(max);
    let mut failure: Option<i32> = None;
    while kids.len() < max {
        // SAFETY: the child only runs `child`, which is fork-safe.
        match unsafe { libc::fork() } {
            -1 => {
                failure = Some(last_errno());
                break;
            }
            0 => child(parent),
            pid => kids.push(pid),
        }
    }
    for &pid in &kids {
        // SAFETY: pid is a child we forked and have not reaped: still ours.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let mut reaped = 0;
    for &pid in &kids {
        loop {
            // SAFETY: waiting for our own child; no status wanted.
            let rc = unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
            if rc == pid {
                reaped += 1;
            }
            if rc >= 0 || last_errno() != libc::EINTR {
                break;
            }
        }
    }
    let made = kids.len();
    let cleanup = format!("killed and reaped {reaped} of {made}");
    Ok(match failure {
        None => Report::escaped(
            ATTEMPT,
            format!("{made} forks succeeded (max {max}); {cleanup}"),
        ),
        Some(e) => Report::failure(
            ATTEMPT,
            "fork",
            format!(
                "{made} forks succeeded, fork #{} failed: {}; {cleanup}",
                made + 1,
                strerror(e)
            ),
        )
        .with_errno(Some(e)),
    })
}
