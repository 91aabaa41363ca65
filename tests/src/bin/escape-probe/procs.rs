//! Reaching other processes: signal one, trace one, read its environment.
//! In a PID namespace the host's pids do not exist (ESRCH); without one,
//! a different uid or a seccomp filter should refuse (EPERM/EACCES).

use std::io::Read;

use crate::args::Args;
use crate::report::{Report, io_errno, last_errno, strerror};

/// `signal_host --pid P`: SIGCONT, which does nothing to a running process,
/// so a probe that escapes harms nothing.
pub fn signal_host(args: &Args) -> Result<Report, String> {
    const ATTEMPT: &str = "signal_host";
    let pid = args.pid()?;
    // SAFETY: plain syscall; pid is positive (checked), so never a group.
    let rc = unsafe { libc::kill(pid, libc::SIGCONT) };
    Ok(if rc == 0 {
        Report::escaped(ATTEMPT, format!("SIGCONT delivered to pid {pid}"))
    } else {
        Report::os_failure(
            ATTEMPT,
            "kill",
            last_errno(),
            &format!("kill({pid}, SIGCONT)"),
        )
    })
}

/// `ptrace_host --pid P`: PTRACE_SEIZE, which unlike PTRACE_ATTACH does not
/// stop the target, then detach.
pub fn ptrace_host(args: &Args) -> Result<Report, String> {
    const ATTEMPT: &str = "ptrace_host";
    let pid = args.pid()?;
    let null = std::ptr::null_mut::<libc::c_void>();
    // SAFETY: PTRACE_SEIZE takes no memory arguments.
    let rc = unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid, null, null) };
    if rc != 0 {
        return Ok(Report::os_failure(
            ATTEMPT,
            "ptrace",
            last_errno(),
            &format!("ptrace(PTRACE_SEIZE, {pid})"),
        ));
    }
    let how = match detach(pid) {
        Ok(()) => "detached".to_string(),
        Err(msg) => format!("{msg} (the kernel detaches it when we exit)"),
    };
    Ok(Report::escaped(
        ATTEMPT,
        format!("PTRACE_SEIZE of pid {pid} succeeded; {how}"),
    ))
}

/// Lets a seized process go. PTRACE_DETACH needs the tracee in a
/// ptrace-stop, which a seized, running process is not: PTRACE_INTERRUPT
/// brings it into one (no signal is sent), waitpid(__WALL) sees it arrive.
fn detach(pid: libc::pid_t) -> Result<(), String> {
    let null = std::ptr::null_mut::<libc::c_void>();
    // SAFETY: these requests take no memory arguments; status is ours.
    unsafe {
        if libc::ptrace(libc::PTRACE_INTERRUPT, pid, null, null) != 0 {
            return Err(format!("PTRACE_INTERRUPT: {}", strerror(last_errno())));
        }
        let mut status = 0;
        if libc::waitpid(pid, &mut status, libc::__WALL) != pid {
            return Err(format!("waitpid: {}", strerror(last_errno())));
        }
        if libc::ptrace(libc::PTRACE_DETACH, pid, null, null) != 0 {
            return Err(format!("PTRACE_DETACH: {}", strerror(last_errno())));
        }
    }
    Ok(())
}

/// Outcome of reading /proc/P/environ, before the own-environment check.
fn proc_environ(pid: libc::pid_t, name: &str) -> Report {
    const ATTEMPT: &str = "read_environ";
    let path = format!("/proc/{pid}/environ");
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            return Report::os_failure(ATTEMPT, "open", io_errno(&e), &format!("open {path}"));
        }
    };
    let mut data = Vec::new();
    if let Err(e) = file.read_to_end(&mut data) {
        return Report::os_failure(ATTEMPT, "read", io_errno(&e), &format!("read {path}"));
    }
    let prefix = format!("{name}=");
    let entries = data.split(|&b| b == 0).filter(|e| !e.is_empty());
    let count = entries.clone().count();
    if entries.clone().any(|e| e.starts_with(prefix.as_bytes())) {
        Report::escaped(ATTEMPT, format!("{path} is readable and contains {name}="))
    } else {
        // Not an escape (the secret is not there) but worth telling apart
        // from "could not open": the test may want both facts.
        Report::failure(
            ATTEMPT,
            "search",
            format!("{path} readable, variable absent ({count} variables, no {name}=)"),
        )
    }
}

/// `read_environ --pid P --secret NAME`
pub fn read_environ(args: &Args) -> Result<Report, String> {
    let pid = args.pid()?;
    let name = args.required("secret")?;
    if name.is_empty() || name.contains('=') || name.contains('\0') {
        return Err(format!("--secret {name:?}: not a variable name"));
    }
    let report = proc_environ(pid, name);
    if report.escaped {
        return Ok(report);
    }
    // The host handing its secret to the tool directly is a leak too.
    if std::env::var_os(name).is_some() {
        let mut own = Report::failure(
            "read_environ",
            "own_env",
            format!("{name} is set in the probe's own environment"),
        );
        own.escaped = true;
        own.detail.push_str(&format!("; /proc: {}", report.detail));
        return Ok(own);
    }
    Ok(report)
}
