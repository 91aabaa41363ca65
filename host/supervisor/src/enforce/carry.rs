//! Spawning the worker inside its cgroup v1 cgroups, instead of moving it
//! there after the spawn.
//!
//! Writing a pid to `cgroup.procs` takes the kernel's global
//! `cgroup_threadgroup_rwsem` for writing, and taking it from idle waits for
//! an RCU grace period, which can be the largest single cost of a
//! `bulkhead run`. Once a write has taken it, the next writes within about
//! one grace period are cheap, which is why a long-running host calling
//! back to back rarely sees it, and a CLI process (one call, first write)
//! always does.
//!
//! Moving only the *calling thread* (`0` written to a v1 `tasks` file) is
//! the one migration the kernel does without that lock (see
//! `cgroup_procs_write_start`: no pid and no thread group, no lock). A child
//! is born in the cgroups of the thread that forks it. So the spawner thread
//! joins the call's v1 cgroups, spawns, and goes back where it was: the
//! worker is inside the memory and pids caps from its first instruction,
//! with no lock and no grace period. cgroup2 allows no such single-thread
//! move across domains; the hybrid layout's cgroup2 cgroup, used only for
//! `cgroup.kill`, is attached after the spawn (see `Cage::attach_spawned`).
//!
//! The spawner thread leaves right after it has handed the worker over,
//! off the call's critical path. The worker cannot fork before it has
//! exec'd, started and read its `Invoke`, which takes far longer than the
//! two writes of leaving.
//!
//! # Caveats
//! - The spawner thread's home is read once, when it starts. A host moved
//!   to another cgroup afterwards (by systemd, say) has its spawner thread
//!   go back to the old one after each spawn.
//! - While the spawner thread is inside, kernel memory it allocates is
//!   charged to the call's memory cgroup (user pages follow the host's
//!   `mm` owner, not the thread), and it counts as one task in the call's
//!   pids cgroup. That is why a pids cap below 2 is not carried; and a
//!   spawner thread descheduled for a millisecond between the hand-over
//!   and its leaving could make the tool's first fork fail at a cap of
//!   exactly 2 (an error of the call, never a process outside its caps).
//! - If the way back fails, the thread stays in the call's cgroups until
//!   the next spawn moves it again; the call cgroup's removal then fails
//!   with `EBUSY` and is retried by the graveyard. It is logged.

use std::path::PathBuf;

use super::cgfs;

/// One v1 hierarchy to carry the worker into.
#[derive(Debug, Clone)]
struct Entry {
    /// The controller as `/proc/PID/cgroup` names it (`memory`, `pids`).
    controller: &'static str,
    /// Mount point of the hierarchy.
    mount: PathBuf,
    /// The call's cgroup in it.
    dir: PathBuf,
}

/// The call's v1 cgroups the spawning thread joins for one spawn. Empty
/// (nothing to carry) in watchdog and cgroup v2 modes, and for simulated
/// hierarchies, where a thread's membership cannot be observed.
#[derive(Debug, Clone, Default)]
pub(crate) struct SpawnCgroups {
    entries: Vec<Entry>,
}

/// Proof that the calling thread is inside a [`SpawnCgroups`]; [`leave`]
/// takes it back home.
///
/// [`leave`]: Carried::leave
#[derive(Debug)]
#[must_use = "the thread stays in the call's cgroups until `leave`"]
pub(crate) struct Carried {
    homes: Vec<PathBuf>,
}

impl SpawnCgroups {
    pub(crate) fn push(&mut self, controller: &'static str, mount: PathBuf, dir: PathBuf) {
        self.entries.push(Entry {
            controller,
            mount,
            dir,
        });
    }

    /// Moves the calling thread into every cgroup. `None` if nothing is to
    /// be carried or a step failed (the thread is then back home, and the
    /// caller attaches the usual way).
    ///
    /// `home` is the thread's own `/proc/thread-self/cgroup` text, where
    /// [`Carried::leave`] takes it back; the spawner thread reads it once
    /// (see [`own_cgroups`]).
    pub(crate) fn enter(&self, home: &str) -> Option<Carried> {
        if self.entries.is_empty() {
            return None;
        }
        let mut carried = Carried { homes: Vec::new() };
        for entry in &self.entries {
            let Some(home) = home_of(home, entry.controller) else {
                carried.leave();
                return None;
            };
            let home = entry.mount.join(home.trim_start_matches('/')).join("tasks");
            if let Err(e) = cgfs::write(&entry.dir.join("tasks"), "0", false) {
                tracing::debug!(error = %e, "cannot carry the worker into its cgroup");
                carried.leave();
                return None;
            }
            carried.homes.push(home);
        }
        Some(carried)
    }
}

impl Carried {
    /// Moves the calling thread back to the cgroups it was in.
    pub(crate) fn leave(self) {
        for home in &self.homes {
            if let Err(e) = cgfs::write(home, "0", false) {
                tracing::warn!(error = %e, "the spawner thread cannot leave a call cgroup");
            }
        }
    }
}

/// The calling thread's cgroups, as `/proc/thread-self/cgroup` lists them;
/// empty if it cannot be read (nothing is carried then).
pub(crate) fn own_cgroups() -> String {
    std::fs::read_to_string("/proc/thread-self/cgroup").unwrap_or_default()
}

/// The path of the v1 hierarchy holding `controller` in `/proc/…/cgroup`
/// text (`4:memory:/user.slice`, or `7:cpu,cpuacct:/` for joined ones).
fn home_of<'a>(text: &'a str, controller: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let _id = parts.next()?;
        let controllers = parts.next()?;
        let path = parts.next()?;
        controllers
            .split(',')
            .any(|c| c == controller)
            .then_some(path)
    })
}

#[cfg(test)]
mod tests {
    use super::home_of;

    #[test]
    fn finds_the_hierarchy_of_a_controller() {
        let text = "12:pids:/system.slice/x.service\n7:cpu,cpuacct:/\n4:memory:/user.slice\n0::/init.scope\n";
        assert_eq!(home_of(text, "memory"), Some("/user.slice"));
        assert_eq!(home_of(text, "pids"), Some("/system.slice/x.service"));
        assert_eq!(home_of(text, "cpuacct"), Some("/"));
        assert_eq!(home_of(text, "freezer"), None);
    }
}
