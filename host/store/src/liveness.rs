//! Which process writes a running result, and whether it still lives: so
//! `gc` marks the results of dead writers `interrupted`, and never those of
//! a writer still streaming in another bulkhead.

/// "PID:START" of this process (START: its start time in clock ticks since
/// boot, so a recycled pid is not mistaken for the writer).
pub(crate) fn this_process() -> String {
    let pid = std::process::id() as i32;
    format!("{pid}:{}", start_time(pid).unwrap_or(0))
}

/// False only when the writer is known to be gone: its pid does not exist
/// or belongs to a process started at another time. Anything unreadable
/// counts as alive, so a live writer is never interrupted.
pub(crate) fn is_alive(tag: &str) -> bool {
    let Some((pid, start)) = tag.split_once(':') else {
        return true;
    };
    let (Ok(pid), Ok(start)) = (pid.parse::<i32>(), start.parse::<u64>()) else {
        return true;
    };
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => parse_start(&stat).is_none_or(|s| s == start),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // No /proc at all says nothing about the pid.
            !std::path::Path::new("/proc/self/stat").exists()
        }
        Err(_) => true,
    }
}

fn start_time(pid: i32) -> Option<u64> {
    parse_start(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Field 22 of `/proc/PID/stat`, counted after the `)` that ends the
/// command name (which may itself hold spaces and parentheses).
fn parse_start(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After ')': state is field 3, so starttime (22) is the 20th.
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_is_alive_and_a_dead_pid_is_not() {
        let me = super::this_process();
        assert!(super::is_alive(&me));
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        child.wait().expect("wait");
        // Reaped: the pid is gone (unless reused, which then has another start).
        assert!(!super::is_alive(&format!("{pid}:1")));
        assert!(super::is_alive("garbage"));
    }
}
