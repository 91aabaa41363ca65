//! Watchdog mode: no cgroups; the call is the process tree rooted at the
//! worker, found by walking parent links in a snapshot of the process table
//! ([`super::proctable`]: `/proc` on Linux, libproc on macOS, `sysctl` on
//! FreeBSD) with [`super::treewalk`].
//!
//! Every process ever found is remembered with its start time, and each walk
//! starts from the worker *and* from every remembered process still alive.
//! So a process orphaned (reparented to init) when its parent died — the
//! worker included — stays part of the call, and its new children too,
//! without ever mistaking a process that later reuses its pid for it.
//!
//! Killing stops the whole tree with SIGSTOP first, re-walking until a walk
//! finds nothing new *and* shows every member stopped, so that a fork loop
//! cannot create processes faster than they are killed, nor fork a child
//! after the last walk that the SIGKILL would orphan out of sight; then
//! SIGKILLs everything; then repeats until a walk finds nobody alive.
//!
//! The wait for every member to show as stopped is what catches a shell
//! spawning `sleep`s in a loop: signalling without it left children forked
//! between the last walk and the SIGKILL alive, outside the call.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::thread;
use std::time::{Duration, Instant};

use super::proctree::{self, Pidfd, ProcStat, Signalled, Tracker};
use super::treewalk;
use super::{EnforceError, KILL_PATIENCE, KillReport, Sample};

/// How long one stop phase may take. A SIGSTOP takes effect within
/// microseconds, but each walk re-reads the whole process table: with ~600 members
/// one walk plus signalling took 20–70 ms here (debug build, loaded
/// machine), and a spawning tree needs a few walks. Half of
/// [`KILL_PATIENCE`] leaves the other half for the SIGKILL rounds; if it runs
/// out, SIGKILL follows anyway and only children forked after the last walk
/// can escape.
const STOP_SETTLE: Duration = Duration::from_millis(500);

/// Cannot fork before the next walk: stopped (`T`), stopped by a tracer
/// (`t`), or in uninterruptible sleep (`D`: it stops before returning to
/// user code; a vfork parent waits there for its stopped child, so waiting
/// for `T` would never end). A `D` process that is inside `fork` itself can
/// still complete that one fork: a narrow race, documented as a caveat.
fn is_settled(p: &ProcStat) -> bool {
    matches!(p.state, b'T' | b't' | b'D')
}

/// Up to this many known processes, [`WatchdogCage::known_empty`] checks
/// each with one `stat` instead of walking the whole table. A walk reads
/// every process on the machine (~5 µs each); past a few dozen known ones
/// the checks would cost as much, and a call that large is not ending in
/// a hurry anyway.
const MAX_KNOWN_FOR_STAT_CHECK: usize = 32;

#[derive(Debug)]
pub(crate) struct WatchdogCage {
    /// Attached processes: pid, start time, and a pidfd that keeps naming
    /// the worker after the supervisor reaps it.
    roots: Vec<(i32, u64, Option<Pidfd>)>,
    /// Every process found so far (pid → start time), roots included.
    known: HashMap<i32, u64>,
    cap: Option<u64>,
    exceeded: bool,
    tracker: Tracker,
    /// Live members found by the latest walk (`None` before the first).
    /// Zero means the call is over for good: a call with no live process
    /// has nobody left to fork, so `kill_all` and the drop need no further
    /// walk (each reads the whole process table).
    last_alive: Option<usize>,
}

impl WatchdogCage {
    pub(crate) fn new(cap: Option<u64>) -> Self {
        WatchdogCage {
            roots: Vec::new(),
            known: HashMap::new(),
            cap,
            exceeded: false,
            tracker: Tracker::default(),
            last_alive: None,
        }
    }

    pub(crate) fn attach(&mut self, pid: u32) -> Result<(), EnforceError> {
        let pid_i = i32::try_from(pid).map_err(|_| EnforceError::NoSuchProcess { pid })?;
        let pidfd = proctree::open_pidfd(pid_i);
        let stat = proctree::read_stat(pid_i)
            .filter(|s| !s.is_dead())
            .ok_or(EnforceError::NoSuchProcess { pid })?;
        self.roots.push((pid_i, stat.start, pidfd));
        self.known.insert(pid_i, stat.start);
        // A live process joined: whatever an earlier walk found, the cage
        // is not empty now.
        self.last_alive = None;
        Ok(())
    }

    /// Reads the process table and returns the call's processes (zombies
    /// included, they matter for CPU accounting), refreshing `known`.
    fn walk(&mut self) -> Vec<ProcStat> {
        let members = treewalk::members(&proctree::scan_all(), &self.known);
        // Forget the dead: a zombie cannot fork, and once reaped its pid may
        // come back as somebody else's process (the start time guards that,
        // but there is no point in remembering it).
        self.known = members
            .iter()
            .filter(|p| !p.is_dead())
            .map(|p| (p.pid, p.start))
            .collect();
        self.last_alive = Some(self.known.len());
        members
    }

    /// True if no walk could find a live member: the latest walk found
    /// none (see `last_alive`), or every process known is dead.
    ///
    /// The second case is what ends most calls: a call that finishes
    /// before its first sample knows only its worker, and once the worker
    /// has exited a walk cannot find anything. A walk starts from the known
    /// processes still alive, and a dead one has no children left to lead
    /// anywhere (the kernel reparents them when it exits, before it is
    /// reaped). So a `stat` per known process answers what a whole-table
    /// walk would, with the same result and, for the few processes most
    /// calls know, at a fraction of the cost (see
    /// [`MAX_KNOWN_FOR_STAT_CHECK`]). The processes that walk could not
    /// reach (orphaned after the last sample) are the gap the caveats of
    /// `enforce` name.
    pub(crate) fn known_empty(&mut self) -> bool {
        if self.last_alive == Some(0) {
            return true;
        }
        // Nothing known yet (not attached): not known to be empty.
        let all_dead = !self.known.is_empty()
            && self.known.len() <= MAX_KNOWN_FOR_STAT_CHECK
            && self
                .known
                .iter()
                .all(|(pid, start)| !proctree::is_alive(*pid, Some(*start)));
        if all_dead {
            self.last_alive = Some(0);
        }
        all_dead
    }

    fn alive(&mut self) -> Vec<ProcStat> {
        let mut m = self.walk();
        m.retain(|p| !p.is_dead());
        m
    }

    pub(crate) fn sample(&mut self) -> Sample {
        // The call's last sample, once its worker has exited, usually
        // finds nobody: then it costs a `stat`, not a walk.
        let members = if self.known_empty() {
            Vec::new()
        } else {
            self.walk()
        };
        let obs = self.tracker.observe(&members);
        if self.cap.is_some_and(|cap| obs.rss_bytes > cap) {
            self.exceeded = true;
        }
        Sample {
            rss_bytes: obs.rss_bytes,
            peak_rss_bytes: obs.peak_rss_bytes,
            peak_charged_bytes: None,
            cpu_ms: obs.cpu_ms,
            processes: obs.processes,
            memory_exceeded: self.exceeded,
        }
    }

    pub(crate) fn memory_limit_hit(&self) -> bool {
        self.exceeded
    }

    pub(crate) fn is_empty(&mut self) -> bool {
        self.alive().is_empty()
    }

    /// Signals `p`, through the worker's long-lived pidfd when `p` is a root.
    fn signal(&self, p: &ProcStat, sig: libc::c_int) -> Signalled {
        let root_fd = self
            .roots
            .iter()
            .find(|(pid, start, _)| *pid == p.pid && *start == p.start)
            .and_then(|(_, _, fd)| fd.as_ref());
        match root_fd {
            Some(fd) if proctree::is_alive(p.pid, Some(p.start)) => {
                if proctree::pidfd_signal(fd, sig) {
                    Signalled::Sent
                } else {
                    Signalled::NotOurs
                }
            }
            _ => proctree::signal_exact(p.pid, Some(p.start), |_| true, sig),
        }
    }

    pub(crate) fn kill_all(&mut self) -> KillReport {
        let deadline = Instant::now() + KILL_PATIENCE;
        let mut killed: HashSet<(i32, u64)> = HashSet::new();
        let mut pause = Duration::from_millis(1);
        loop {
            // Stop phase: done when a walk finds no new member and every
            // member not already SIGKILLed is stopped. Only then can no
            // member fork a child the walk has not seen: a child forked
            // after a walk but before its parent actually stopped would
            // otherwise be orphaned by the SIGKILL and never found again.
            let mut stopped: HashMap<(i32, u64), ProcStat> = HashMap::new();
            let settle = Instant::now() + STOP_SETTLE;
            loop {
                let members = self.alive();
                let mut settled = true;
                for p in members {
                    let key = (p.pid, p.start);
                    match stopped.entry(key) {
                        Entry::Vacant(slot) => {
                            self.signal(&p, libc::SIGSTOP);
                            slot.insert(p);
                            settled = false;
                        }
                        Entry::Occupied(_) => {
                            if !is_settled(&p) && !killed.contains(&key) {
                                settled = false;
                            }
                        }
                    }
                }
                if settled || Instant::now() >= settle {
                    break;
                }
                thread::yield_now();
            }
            if stopped.is_empty() {
                // The walk just made found nobody alive: nothing survives.
                return KillReport {
                    killed: killed.len(),
                    survivors: 0,
                };
            }
            for (key, p) in &stopped {
                if self.signal(p, libc::SIGKILL) == Signalled::Sent {
                    killed.insert(*key);
                }
            }
            if Instant::now() >= deadline {
                break;
            }
            thread::sleep(pause);
            // Short first pauses: most processes are gone within a few ms.
            pause = (pause * 2).min(Duration::from_millis(20));
        }
        let survivors = self.alive().len();
        if survivors > 0 {
            tracing::warn!(
                survivors,
                "processes of the call survived SIGKILL (process-tree walk)"
            );
        }
        KillReport {
            killed: killed.len(),
            survivors,
        }
    }
}

impl Drop for WatchdogCage {
    fn drop(&mut self) {
        if !self.roots.is_empty() && !self.known_empty() && !self.is_empty() {
            self.kill_all();
        }
    }
}
