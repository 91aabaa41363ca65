//! A call's cgroups (v2, or v1 plus an optional v2 kill cgroup): sampling,
//! OOM detection, killing and removal.

use std::collections::HashSet;
use std::thread;
use std::time::{Duration, Instant};

use super::carry::SpawnCgroups;
use super::cgfs::{self, CgDir};
use super::proctree::{self, Signalled, Tracker};
use super::{Graveyard, KILL_PATIENCE, KillReport, Sample, cgroup_v1, cgroup_v2};

/// A pids cap the spawner thread may join for a spawn: it counts as one task
/// while inside, so with a cap of 1 the worker's own fork would be refused.
const MIN_CARRIED_PIDS: u64 = 2;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Flavor {
    V2,
    V1 { oom_kill_counter: bool },
}

#[derive(Debug)]
pub(crate) struct CgroupCage {
    flavor: Flavor,
    /// The memory cgroup: members are listed and usage is read here.
    primary: CgDir,
    /// Further hierarchies the call is attached to (v1 pids, hybrid v2).
    others: Vec<CgDir>,
    /// The directory whose `cgroup.kill` kills the call, if any.
    kill: Option<CgDir>,
    /// Directories the worker can be born in (see `carry`), with their
    /// controller names.
    carry: Vec<(&'static str, CgDir)>,
    tracker: Tracker,
    oom_seen: bool,
    last_failcnt: u64,
    last_processes: u32,
    graveyard: Graveyard,
}

impl CgroupCage {
    pub(crate) fn new(flavor: Flavor, primary: CgDir, graveyard: Graveyard) -> Self {
        let kill = match flavor {
            Flavor::V2 if primary.has("cgroup.kill") => Some(primary.clone()),
            _ => None,
        };
        CgroupCage {
            flavor,
            primary,
            others: Vec::new(),
            kill,
            carry: Vec::new(),
            tracker: Tracker::default(),
            oom_seen: false,
            last_failcnt: 0,
            last_processes: 0,
            graveyard,
        }
    }

    pub(crate) fn add(&mut self, dir: CgDir, use_for_kill: bool) {
        if use_for_kill && self.kill.is_none() {
            self.kill = Some(dir.clone());
        }
        self.others.push(dir);
    }

    /// Marks `dir` (a v1 `controller` cgroup of this cage) as one the worker
    /// may be spawned in; see [`SpawnCgroups`]. A pids cap below
    /// [`MIN_CARRIED_PIDS`] and simulated hierarchies are left to `attach`.
    pub(crate) fn carry(&mut self, controller: &'static str, dir: &CgDir, pids_max: Option<u64>) {
        if !dir.simulated && pids_max.is_none_or(|n| n >= MIN_CARRIED_PIDS) {
            self.carry.push((controller, dir.clone()));
        }
    }

    pub(crate) fn spawn_cgroups(&self) -> SpawnCgroups {
        let mut out = SpawnCgroups::default();
        for (controller, dir) in &self.carry {
            if let Some(mount) = dir.mount() {
                out.push(controller, mount, dir.path.clone());
            }
        }
        out
    }

    /// Attaches a worker spawned with [`Self::spawn_cgroups`] entered
    /// (`carried`): the carried directories already hold it, which is
    /// checked; the others are written now, except the cgroup2 kill
    /// directory, returned to be attached off the critical path (its write
    /// takes the lock this module avoids). Not carried: [`Self::attach`].
    pub(crate) fn attach_spawned(
        &mut self,
        pid: u32,
        carried: bool,
    ) -> Result<Option<DeferredAttach>, super::EnforceError> {
        let in_all = carried
            && !self.carry.is_empty()
            && self.carry.iter().all(|(_, d)| d.contains(pid as i32));
        if !in_all {
            self.attach(pid)?;
            return Ok(None);
        }
        let mut deferred = None;
        for dir in &self.others {
            if self.carry.iter().any(|(_, d)| d.path == dir.path) {
                continue;
            }
            match &self.kill {
                Some(k) if k.path == dir.path => {
                    deferred = Some(DeferredAttach {
                        dir: dir.clone(),
                        pid,
                    });
                }
                _ => dir.write("cgroup.procs", &pid.to_string())?,
            }
        }
        Ok(deferred)
    }

    fn dirs(&self) -> impl Iterator<Item = &CgDir> {
        std::iter::once(&self.primary).chain(self.others.iter())
    }

    pub(crate) fn primary(&self) -> &CgDir {
        &self.primary
    }

    pub(crate) fn others(&self) -> &[CgDir] {
        &self.others
    }

    pub(crate) fn attach(&mut self, pid: u32) -> Result<(), super::EnforceError> {
        // The kill cgroup first, so that from the earliest moment the call
        // can be killed as a whole; the memory cgroup last.
        let mut order: Vec<&CgDir> = self.others.iter().collect();
        order.push(&self.primary);
        for dir in order {
            dir.write("cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    pub(crate) fn sample(&mut self) -> Sample {
        let stats: Vec<_> = self
            .primary
            .procs()
            .into_iter()
            .filter_map(proctree::read_stat)
            .collect();
        let obs = self.tracker.observe(&stats);
        let peak_charged = match self.flavor {
            Flavor::V2 => {
                if let Some(ms) = cgroup_v2::cpu_ms(&self.primary) {
                    self.tracker.raise_cpu_ms(ms);
                }
                cgfs::read_u64(&self.primary.file("memory.peak"))
            }
            Flavor::V1 { oom_kill_counter } => {
                if !oom_kill_counter {
                    let failcnt = cgroup_v1::failcnt(&self.primary);
                    if failcnt > self.last_failcnt && obs.processes < self.last_processes {
                        self.oom_seen = true;
                    }
                    self.last_failcnt = failcnt;
                }
                cgfs::read_u64(&self.primary.file("memory.max_usage_in_bytes"))
            }
        };
        self.last_processes = obs.processes;
        let memory_exceeded = self.memory_limit_hit();
        self.oom_seen |= memory_exceeded;
        Sample {
            rss_bytes: obs.rss_bytes,
            peak_rss_bytes: obs.peak_rss_bytes,
            peak_charged_bytes: peak_charged,
            cpu_ms: self.tracker.cpu_ms(),
            processes: obs.processes,
            memory_exceeded,
        }
    }

    pub(crate) fn memory_limit_hit(&self) -> bool {
        self.oom_seen
            || match self.flavor {
                Flavor::V2 => cgroup_v2::oom_killed(&self.primary),
                Flavor::V1 { .. } => cgroup_v1::oom_kills(&self.primary).unwrap_or(0) > 0,
            }
    }

    /// Members of every cgroup of the call that are alive (not zombies),
    /// each with the directory it was listed in.
    fn alive_members(&self) -> Vec<(i32, &CgDir)> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for dir in self.dirs() {
            for pid in dir.procs() {
                if seen.insert(pid) && proctree::is_alive(pid, None) {
                    out.push((pid, dir));
                }
            }
        }
        out
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.alive_members().is_empty()
    }

    pub(crate) fn kill_all(&mut self) -> KillReport {
        let deadline = Instant::now() + KILL_PATIENCE;
        let mut killed: HashSet<i32> = HashSet::new();
        let mut members = self.alive_members();
        killed.extend(members.iter().map(|(p, _)| *p));
        if let Some(k) = self.kill.as_ref().filter(|_| !members.is_empty())
            && let Err(e) = k.write("cgroup.kill", "1")
        {
            tracing::warn!(error = %e, "cgroup.kill failed; killing members one by one");
        }
        let mut pause = Duration::from_millis(1);
        while !members.is_empty() && Instant::now() < deadline {
            for (pid, dir) in &members {
                // Redundant after cgroup.kill (dying members still list), and
                // harmless: SIGKILL to a dying process changes nothing.
                if proctree::signal_exact(*pid, None, |p| dir.contains(p), libc::SIGKILL)
                    == Signalled::Sent
                {
                    killed.insert(*pid);
                }
            }
            thread::sleep(pause);
            // Short first pauses: most processes are gone within a few ms.
            pause = (pause * 2).min(Duration::from_millis(20));
            members = self.alive_members();
        }
        let survivors = self.alive_members().len();
        if survivors > 0 {
            tracing::warn!(
                cgroup = %self.primary.path.display(),
                survivors,
                "processes survived SIGKILL; they may be stuck in the kernel (state D)"
            );
        }
        KillReport {
            killed: killed.len(),
            survivors,
        }
    }
}

/// The attach of a worker to the cgroup2 cgroup used only for
/// `cgroup.kill`, left for later by [`CgroupCage::attach_spawned`].
///
/// Until it has run, `cgroup.kill` misses the worker, and the processes it
/// starts before then stay outside that cgroup for good; they are all in
/// the call's v1 cgroups from birth, so `kill_all`'s loop over those kills
/// them. The caller must run it to its end before the worker can be reaped:
/// the pid written must still be the worker's.
#[derive(Debug)]
#[must_use = "the worker is not in its kill cgroup until this runs"]
pub(crate) struct DeferredAttach {
    dir: CgDir,
    pid: u32,
}

impl DeferredAttach {
    pub(crate) fn run(self) -> Result<(), super::EnforceError> {
        self.dir.write("cgroup.procs", &self.pid.to_string())
    }
}

impl Drop for CgroupCage {
    fn drop(&mut self) {
        if !self.is_empty() {
            self.kill_all();
        }
        let dirs: Vec<CgDir> = self.dirs().cloned().collect();
        for dir in dirs {
            if let Err(e) = cgfs::remove_cgroup(&dir.path, dir.simulated) {
                tracing::warn!(
                    cgroup = %dir.path.display(),
                    error = %e,
                    "cannot remove call cgroup; will retry when the next cage is created"
                );
                self.graveyard.bury(dir);
            }
        }
    }
}
